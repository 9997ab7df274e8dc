"""Where the one Config comes from: cdk.json context (stack), a JSON file (CLI), the Lambda environment."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sparkscale.config import CONTEXT_KEY, Config, ConfigError
from sparkscale.names import ENV_CONFIG_JSON, ENV_DRY_RUN


def from_cdk_context(context: Mapping[str, Any] | None) -> Config:
    """`context` is cdk.json's "context" (or the app's node context); settings sit under "sparkscale"."""
    raw = (context or {}).get(CONTEXT_KEY, {})
    if isinstance(raw, str):  # `cdk synth -c sparkscale='{"clusters": [...]}'` passes a string
        return Config.from_json(raw, source=f"cdk context {CONTEXT_KEY!r}")
    if not isinstance(raw, Mapping):
        raise ConfigError("<document>", "must be an object", source=f"cdk context {CONTEXT_KEY!r}")
    return Config.from_mapping(raw, source=f"cdk context {CONTEXT_KEY!r}")


def from_file(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {p}: {exc.strerror}", source=str(p)) from None
    return Config.from_json(text, source=str(p))


def from_environment(environ: Mapping[str, str]) -> Config:
    """The Lambda's view: the JSON the stack validated, with SPARKSCALE_DRY_RUN=true as an emergency brake."""
    text = environ.get(ENV_CONFIG_JSON, "{}")
    raw = json.loads(text) if text.strip() else {}
    if not isinstance(raw, dict):
        raise ConfigError("<document>", "must be a JSON object", source=ENV_CONFIG_JSON)
    if environ.get(ENV_DRY_RUN, "").lower() == "true":
        raw["dry_run"] = True
    return Config.from_mapping(raw, source=ENV_CONFIG_JSON)
