"""Shared by the infra tests: synthesize a stack from cdk.json's context (plus overrides), and small readers
of the synthesized template. Logical IDs are never hard-coded: resources are found by their properties and
references are resolved through the constructs (`stack.resolve`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cfnlint.api
from aws_cdk import Stack
from aws_cdk.assertions import Template
from cfnlint.config import ManualArgs
from sparkscale_cdk.settings import StackSettings
from sparkscale_cdk.stack import SparkscaleStack
from sparkscale_cdk.wiring import app_with_context, build_stack


@dataclass(frozen=True)
class Synth:
    stack: SparkscaleStack
    settings: StackSettings
    template: Template
    doc: dict[str, Any]
    outdir: Path

    def resources(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.doc["Resources"].items() if v["Type"] == rtype}

    def props(self, rtype: str) -> list[dict[str, Any]]:
        return [v.get("Properties", {}) for v in self.resources(rtype).values()]

    def ref(self, value: Any) -> Any:
        """How a construct attribute (token) appears in the template, e.g. {"Ref": "…"}."""
        return self.stack.resolve(value)

    def alarm(self, name: str) -> dict[str, Any]:
        found = [p for p in self.props("AWS::CloudWatch::Alarm") if p.get("AlarmName") == name]
        assert len(found) == 1, f"{len(found)} alarms named {name}"
        return found[0]

    def function(self, handler: str) -> dict[str, Any]:
        found = [p for p in self.props("AWS::Lambda::Function") if p.get("Handler") == handler]
        assert len(found) == 1, f"{len(found)} functions with handler {handler}"
        return found[0]

    def policy_statements(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(policy logical id, statement) of every identity policy (IAM::Policy and inline role policies)."""
        for key, res in self.resources("AWS::IAM::Policy").items():
            for st in res["Properties"]["PolicyDocument"]["Statement"]:
                yield key, st
        for key, res in self.resources("AWS::IAM::Role").items():
            for pol in res["Properties"].get("Policies", []):
                for st in pol["PolicyDocument"]["Statement"]:
                    yield key, st

    def role_statements(self, role: Any) -> list[dict[str, Any]]:
        """Statements of the policies attached to one role construct."""
        role_ref = self.ref(role.role_name)
        out: list[dict[str, Any]] = []
        for res in self.resources("AWS::IAM::Policy").values():
            if role_ref in res["Properties"].get("Roles", []):
                out.extend(res["Properties"]["PolicyDocument"]["Statement"])
        return out


def synth(context: Mapping[str, Any] | None = None, *, outdir: Path) -> Synth:
    app = app_with_context(context, outdir=str(outdir))
    stack = build_stack(app)
    template = Template.from_stack(stack)
    settings = StackSettings.from_context(app.node.try_get_context)
    return Synth(stack=stack, settings=settings, template=template, doc=template.to_json(), outdir=outdir)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def cfn_lint(doc: dict[str, Any]) -> list[str]:
    """Every cfn-lint error and warning, no rule ignored."""
    matches = cfnlint.api.lint(json.dumps(doc), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in matches]


def nag_findings(stack: Stack) -> list[str]:
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(stack)
    return [
        f"{v.rule_name}: {v.description} at {[r.construct_path for r in v.violating_resources]}"
        for v in report.violations
    ]
