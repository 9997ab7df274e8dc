"""`cdk synth` with the pinned CLI (npm aws-cdk from package.json, installed by `make venv`), exactly as
`make synth` runs it: offline, no AWS credentials, no Docker, telemetry/notices/version check off. The app
registers cdk-nag, so this also proves that synth fails on no unacknowledged finding."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CDK = REPO / "node_modules" / ".bin" / "cdk"
VENV_BIN = REPO / ".venv" / "bin"

pytestmark = pytest.mark.slow


def offline_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # the wheel's Node 24 and the venv's python3
        HOME=str(home),  # no ~/.aws, no ~/.cdk cache
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
        CDK_DISABLE_VERSION_CHECK="1",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    return env


def test_pinned_cdk_cli_synthesizes_offline(tmp_path: Path) -> None:
    assert CDK.exists(), "node_modules/.bin/cdk missing: run `make venv`"
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]["aws-cdk"]
    version = subprocess.run(
        [str(CDK), "--version"],
        check=False,
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.stdout.startswith(pinned), version.stdout + version.stderr

    out = tmp_path / "cdk.out"
    proc = subprocess.run(
        [str(CDK), "synth", "--no-notices", "--quiet", "--output", str(out)],
        check=False,
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    template = json.loads((out / "Sparkscale.template.json").read_text())
    alarms = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(a["Properties"].get("AlarmName") == "sparkscale-j-EXAMPLE12345-total-load" for a in alarms)
