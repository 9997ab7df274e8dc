"""`sparkscale status / history / pause / resume` against a deployed stack on moto (mock_aws): the state
table created as the stack creates it, the stack's outputs from CloudFormation, an EMR cluster, the real
scale use case writing its records through the real adapters, and the CLI reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws
from sparkscale.adapters.aws import AwsClients, aws_ports
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.clock import utcnow
from sparkscale.config import Config
from sparkscale.usecases.scale import run_once
from sparkscale.usecases.shell import Outcome
from sparkscale_tools.cli import main
from sparkscale_tools.cli.deployed import alarm_states, history_row, outcome_of, stack_outputs
from sparkscale_tools.cli.operate import parse_since

from tests.scale.shell_support import (
    EmrCluster,
    clients,
    create_cluster,
    create_table,
    fake_aws_env,
    group_counts,
    put_pressure,
)

TABLE = "sparkscale-state-A1B2"
PREFIX = "sscale"


@dataclass
class Deployed:
    aws: AwsClients
    emr: EmrCluster
    store: DynamoStateStore
    topic_arn: str

    @property
    def cid(self) -> str:
        return self.emr.cluster_id

    def evaluate(self, now: datetime) -> Any:
        """One run of the real scale use case on the real adapters, with the cluster under pressure."""
        put_pressure(self.aws.cloudwatch, self.cid, now)
        config = Config.from_mapping({"clusters": [self.cid], "alarm_prefix": PREFIX})
        ports = aws_ports(clients=self.aws, config=config, table_name=TABLE, topic_arn=self.topic_arn)
        return run_once(now=now, cluster_id=self.cid, ports=ports, config=config, owner="test")


def _template() -> str:
    """A stack with the outputs the CLI reads (the real stack's are tested in tests/infra)."""
    return json.dumps(
        {
            "Resources": {"Operators": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                "StateTableName": {"Value": TABLE},
                "AlarmPrefix": {"Value": PREFIX},
            },
        }
    )


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    fake_aws_env(monkeypatch)
    with mock_aws():
        aws = clients()
        create_table(aws.dynamodb, TABLE)
        emr = create_cluster(aws.emr, tasks=(("spot-r5", "r5.2xlarge", "SPOT", 1),))
        import boto3

        boto3.client("cloudformation").create_stack(StackName="Sparkscale", TemplateBody=_template())
        for cid, kind, state in (
            (emr.cluster_id, "yarn-pending-memory", "ALARM"),
            (emr.cluster_id, "idle", "OK"),
            ("j-SOMEONEELSE", "idle", "ALARM"),  # another cluster's: never shown
        ):
            name = f"{PREFIX}-{cid}-{kind}"
            aws.cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/ElasticMapReduce",
                MetricName="IsIdle",
                Dimensions=[{"Name": "JobFlowId", "Value": cid}],
                Statistic="Average",
                Period=300,
                EvaluationPeriods=1,
                Threshold=1.0,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
            aws.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")
        topic = aws.sns.create_topic(Name="ops")["TopicArn"]
        yield Deployed(aws, emr, DynamoStateStore(aws.dynamodb, TABLE), topic)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_shows_groups_alarms_last_decision_cooldown_and_pause(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow()
    assert deployed.evaluate(now).outcome == Outcome.APPLIED
    code, out, err = _cli(capsys, "status", "--cluster", deployed.cid)
    assert (code, err) == (0, "")
    assert f"cluster {deployed.cid} (analytics)" in out
    assert "not paused" in out
    task = next(line for line in out.splitlines() if line.startswith("TASK"))
    assert deployed.emr.tasks["spot-r5"] in task
    assert "spot-r5" in task
    alarms = [line.split()[:2] for line in out.splitlines() if line.startswith(("yarn-pending", "idle"))]
    assert alarms == [["idle", "OK"], ["yarn-pending-memory", "ALARM"]]  # this cluster's only, by name
    assert "j-SOMEONEELSE" not in out
    scale_out = next(line for line in out.splitlines() if line.startswith("cooldown_after_scale_out_s"))
    assert "s left (until" in scale_out  # the scale-out just applied started it
    decision = next(line for line in out.splitlines() if line.startswith("20") and " scale_out " in line)
    assert "applied" in decision
    assert "1 -> " in decision

    code, out, _ = _cli(capsys, "status", "--cluster", deployed.cid, "--json")
    doc = json.loads(out)
    assert doc["paused"] is None
    assert [(a["kind"], a["state"]) for a in doc["alarms"]] == [
        ("idle", "OK"),
        ("yarn-pending-memory", "ALARM"),
    ]
    assert doc["decisions"][0]["outcome"] == "applied"
    assert doc["decisions"][0]["first_reason"]
    assert doc["cooldowns"][0]["left_s"] > 0


def test_pause_stops_the_actions_but_not_the_decisions_and_resume_ends_it(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "pause", "--cluster", deployed.cid, "--reason", "EMR upgrade")
    assert code == 0
    assert out.startswith(f"paused {deployed.cid}: it still decides")
    mark = deployed.store.load_pause(deployed.cid)
    assert mark is not None
    assert mark.by.startswith("cli:")
    assert mark.why == "EMR upgrade"
    counts = group_counts(deployed.aws.emr, deployed.cid)

    result = deployed.evaluate(utcnow())
    assert result.outcome == Outcome.DRY_RUN  # decided and recorded ...
    assert group_counts(deployed.aws.emr, deployed.cid) == counts  # ... nothing resized

    _, out, _ = _cli(capsys, "status", "--cluster", deployed.cid)
    assert "PAUSED by cli:" in out
    assert ": EMR upgrade." in out
    _, out, _ = _cli(capsys, "history", "--cluster", deployed.cid, "--since", "1h")
    row = next(line for line in out.splitlines() if " scale_out " in line)
    assert "paused" in row
    _, out, _ = _cli(capsys, "history", "--cluster", deployed.cid, "--json")
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["dry_run"] is True
    assert "paused" in record["reason_codes"]
    assert "Paused by an operator (cli:" in record["reasons"][-1]

    code, out, _ = _cli(capsys, "resume", "--cluster", deployed.cid)
    assert code == 0
    assert out.startswith(f"resumed {deployed.cid} (paused by cli:")
    assert deployed.store.load_pause(deployed.cid) is None
    assert deployed.evaluate(utcnow() + timedelta(minutes=1)).outcome == Outcome.APPLIED
    _, out, _ = _cli(capsys, "resume", "--cluster", deployed.cid)
    assert "was not paused" in out


def test_history_reads_the_records_since_the_given_time_newest_first(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utcnow()
    deployed.evaluate(now - timedelta(hours=3))
    deployed.evaluate(now - timedelta(minutes=30))
    _, out, _ = _cli(capsys, "history", "--cluster", deployed.cid, "--since", "2h", "--json")
    assert len(out.splitlines()) == 1
    _, out, _ = _cli(capsys, "history", "--cluster", deployed.cid, "--since", "6h", "--json")
    times = [json.loads(line)["at"] for line in out.splitlines()]
    assert len(times) == 2
    assert times == sorted(times, reverse=True)
    _, out, _ = _cli(capsys, "history", "--cluster", deployed.cid, "--since", "10m")
    assert out.startswith(f"no decision recorded for {deployed.cid} since")


def test_flags_name_the_table_without_the_stack(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(
        capsys,
        "status",
        "--cluster",
        deployed.cid,
        "--stack",
        "NoSuchStack",
        "--table",
        TABLE,
        "--alarm-prefix",
        PREFIX,
    )
    assert (code, err) == (0, "")
    assert "yarn-pending-memory" in out
    code, _, err = _cli(capsys, "status", "--cluster", deployed.cid, "--stack", "NoSuchStack")
    assert code == 2
    assert err.startswith("sparkscale status: stack NoSuchStack:")
    assert "--table" in err


def test_a_bad_cluster_id_or_since_is_one_line_and_exit_2(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(capsys, "pause", "--cluster", "nope")[0] == 2
    code, _, err = _cli(capsys, "history", "--cluster", deployed.cid, "--since", "yesterday")
    assert code == 2
    assert "--since 'yesterday'" in err


def test_the_small_readers(deployed: Deployed) -> None:
    import boto3

    assert stack_outputs(boto3.client("cloudformation"), "Sparkscale") == {
        "StateTableName": TABLE,
        "AlarmPrefix": PREFIX,
    }
    states = alarm_states(deployed.aws.cloudwatch, PREFIX, deployed.cid)
    assert [(a.kind, a.state) for a in states] == [("idle", "OK"), ("yarn-pending-memory", "ALARM")]


@pytest.mark.parametrize(
    ("record", "outcome"),
    [
        ({"direction": "hold", "is_action": False}, "hold"),
        ({"direction": "scale_out", "is_action": True, "dry_run": False}, "applied"),
        ({"direction": "scale_out", "is_action": True, "dry_run": True}, "dry run"),
        ({"direction": "scale_in", "is_action": True, "dry_run": True, "reason_codes": ["paused"]}, "paused"),
        (
            {"direction": "scale_in", "is_action": True, "reason_codes": ["need", "not_applied"]},
            "not applied",
        ),
    ],
)
def test_outcome_of_a_record(record: dict[str, Any], outcome: str) -> None:
    assert outcome_of(record) == outcome


def test_history_row_of_a_record() -> None:
    row = history_row(
        {
            "at": "2026-03-02T12:00:00+00:00",
            "direction": "scale_out",
            "is_action": True,
            "dry_run": False,
            "targets": [{"current": 1, "target": 3}, {"current": 2, "target": 2}],
            "usd_per_hour_before": 0.45,
            "usd_per_hour_after": 0.75,
            "driving_signal": "container_pending",
            "driving_value": 40.0,
            "reasons": ["40 containers wait.", "in flight"],
        }
    )
    assert row["task_nodes_before"] == 3
    assert row["task_nodes_after"] == 5
    assert row["driving_signal"] == "container_pending=40"
    assert row["first_reason"] == "40 containers wait."


def test_parse_since() -> None:
    now = utcnow()
    assert parse_since("6h", now) == now - timedelta(hours=6)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-03-02T12:00:00", now).isoformat() == "2026-03-02T12:00:00+00:00"
    with pytest.raises(ValueError, match="--since"):
        parse_since("soon", now)
