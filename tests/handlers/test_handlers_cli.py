"""`sparkscale parse-event` and `sparkscale decide` (the latter against a ThreadedMotoServer via
AWS_ENDPOINT_URL, exactly as a user would point it at an endpoint)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sparkscale_tools.cli import main

from tests.handlers.conftest import Deployment
from tests.scale.shell_support import FIXTURES, group_counts, published


def test_parse_event_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-event", str(FIXTURES / "sns/emr-alarm-sns-metric-math.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["cluster_id"], out["state"], out["metric_name"]) == (
        "j-2AXXXXXXGAPLF",
        "ALARM",
        "JvmHeapUsed",
    )


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("sns/sns-event.json", "SNS Message is not JSON"),
        (
            "eventbridge/CloudWatch_Alarm_State_Change_single_metric.json",
            "not an EMR, Spark heap or YARN collector metric",
        ),
    ],
)
def test_parse_event_rejects_with_one_line_and_exit_2(path: str, why: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sparkscale_tools.cli", "parse-event", str(FIXTURES / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert why in lines[0]
    assert "Traceback" not in proc.stderr


def test_parse_event_truncated_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "cut.json"
    f.write_text((FIXTURES / "sns/emr-alarm-sns-single-metric.json").read_text()[:200])
    assert main(["parse-event", str(f)]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["parse-event", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_decide_is_a_dry_run_against_the_configured_endpoint(
    deployment_both: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment_both
    cid = d.cluster.cluster_id
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"clusters": [cid], "max_task_nodes": 8, "group_max_nodes": 8}))
    before = group_counts(d.aws.emr, cid)
    assert main(["decide", "--cluster", cid, "--config", str(cfg), "--table", d.table]) == 0
    text = capsys.readouterr().out
    assert f"cluster {cid}: dry_run" in text
    assert "decision: scale_out (dry run)" in text
    assert "reasons:" in text
    assert group_counts(d.aws.emr, cid) == before  # nothing resized
    assert published(d.sqs, d.topic) == []  # nothing published
    assert d.aws.dynamodb.scan(TableName=d.table)["Items"] == []  # nothing written
    assert main(["decide", "--cluster", cid, "--config", str(cfg), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "dry_run"
    assert data["decision"]["dry_run"] is True
    assert data["decision"]["reasons"]


def test_decide_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decide", "--cluster", "cluster-1"]) == 2
    assert "not an EMR cluster id" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"max_task_nodes": -1}')
    assert main(["decide", "--cluster", "j-ABC", "--config", str(bad)]) == 2
    assert "max_task_nodes" in capsys.readouterr().err
