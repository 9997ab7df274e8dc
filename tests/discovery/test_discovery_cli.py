"""`sparkscale discover` against a moto server on 127.0.0.1 (the endpoint boto3 is configured for)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config
from sparkscale_tools.cli import main

from tests.scale.shell_support import clients, create_cluster, create_table, fake_aws_env, moto_server


def test_discover_lists_the_clusters_and_the_alarms_and_dry_run_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_aws_env(monkeypatch)
    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"profiles": {"small": {"max_task_nodes": 3}}}))
    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        aws = clients(url)
        table = create_table(aws.dynamodb)
        tagged = create_cluster(aws.emr).cluster_id
        aws.emr.add_tags(
            ResourceId=tagged,
            Tags=[
                {"Key": "sparkscale:managed", "Value": "true"},
                {"Key": "sparkscale:profile", "Value": "small"},
            ],
        )
        other = create_cluster(aws.emr).cluster_id
        assert main(["discover", "--config", str(cfg), "--table", table, "--dry-run", "--json"]) == 0
        dry = json.loads(capsys.readouterr().out)
        assert dry["dry_run"]
        assert [m["cluster_id"] for m in dry["managed"]] == [tagged]
        assert aws.cloudwatch.describe_alarms()["MetricAlarms"] == []
        assert main(["discover", "--config", str(cfg), "--table", table]) == 0
        text = capsys.readouterr().out
        assert f"{tagged}  analytics  profile small" in text
        assert f"alarms created: {len(alarm_specs(Config(), tagged))}" in text
        names = {a["AlarmName"] for a in aws.cloudwatch.describe_alarms()["MetricAlarms"]}
        assert names == {s.name for s in alarm_specs(Config(), tagged)}
        assert not any(other in n for n in names)
        assert main(["discover", "--config", str(cfg), "--table", table, "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["alarms_created"] == []
        assert again["alarms_deleted"] == []


def test_discover_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"profiles": {"x": {"clusters": []}}}))
    assert main(["discover", "--config", str(cfg)]) == 2
    assert "a profile overrides policy settings only" in capsys.readouterr().err


def test_cluster_template_prints_a_create_cluster_command_for_a_managed_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shlex

    from sparkscale_tools.cli.discover import SPARK_METRICS

    cfg = tmp_path / "settings.json"
    cfg.write_text(json.dumps({"profiles": {"etl": {"max_task_nodes": 40}}}))
    args = [
        "cluster-template",
        "--config",
        str(cfg),
        "--profile",
        "etl",
        "--log-bucket",
        "b1",
        "--region",
        "eu-west-1",
    ]
    assert main(args) == 0
    words = shlex.split(capsys.readouterr().out.replace("\\\n", " "))
    assert words[:3] == ["aws", "emr", "create-cluster"]
    opts = {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and i + 1 < len(words)}
    assert words[words.index("--tags") + 1 : words.index("--tags") + 3] == [
        "sparkscale:managed=true",
        "sparkscale:profile=etl",
    ]
    assert opts["--log-uri"] == "s3://b1/emr-logs/"
    assert "Path=s3://b1/sparkscale/install-heap-agent.sh" in opts["--bootstrap-actions"]
    assert json.loads(opts["--configurations"]) == SPARK_METRICS
    assert (
        json.loads((Path(__file__).parents[2] / "bootstrap/spark-metrics.json").read_text()) == SPARK_METRICS
    )
    tasks = [g for g in json.loads(opts["--instance-groups"]) if g["InstanceGroupType"] == "TASK"]
    assert len({g["InstanceType"] for g in tasks}) >= 3
    assert all(g["Market"] == "SPOT" for g in tasks)
    assert main(["cluster-template", "--config", str(cfg), "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
