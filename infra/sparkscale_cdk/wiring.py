"""Build the app from its context: used by app.py and by the tests (which must not import app.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from sparkscale_cdk.settings import StackSettings
from sparkscale_cdk.stack import REPO_ROOT, SparkscaleStack

CDK_JSON: Final = REPO_ROOT / "cdk.json"


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's "context" (the CLI passes it to the app; tests pass it to App(context=...))."""
    data = json.loads(path.read_text(encoding="utf-8"))
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{path}: context must be an object")
    return context


def build_stack(app: App) -> SparkscaleStack:
    """Validate the settings from the app's context and add the stack. Does not synthesize."""
    settings = StackSettings.from_context(app.node.try_get_context)
    return SparkscaleStack(app, settings.stack_name, settings=settings)


def add_nag(app: App) -> None:
    """cdk-nag (3.x: a CDK policy-validation plugin): any unacknowledged AwsSolutions finding fails synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def app_with_context(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> App:
    """An App with cdk.json's context overlaid by `context` (for tests and tools)."""
    merged = cdk_json_context()
    merged.update(context or {})
    return App(context=merged, outdir=outdir)
