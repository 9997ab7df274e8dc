"""Discovery against moto (EMR ListClusters and tags, CloudWatch alarms, the DynamoDB registry), through the
real adapters and the real handlers: the event path, the sweep, orphans, a missed TERMINATED event, a
TERMINATED event for a cluster EMR still reports running, 100 clusters in one sweep, an untagged cluster
beside them never touched; then the scaler's handlers manage a discovered cluster with no redeploy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from handlers import alarm as alarm_handler
from handlers import common
from handlers import discovery as discovery_handler
from moto import mock_aws
from sparkscale import clock, names
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.discovery import (
    CloudWatchAlarmWriter,
    DynamoClusterRegistry,
    EmrClusterDirectory,
)
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config
from sparkscale.errors import Throttled
from sparkscale.ports import DiscoveryPorts

from tests.scale.shell_support import (
    REGION,
    FakeLambdaContext,
    alarm_body,
    clients,
    create_cluster,
    create_table,
    create_topic_with_queue,
    fake_aws_env,
    put_pressure,
    sns_event_for,
)

TAGS = [{"Key": "sparkscale:managed", "Value": "true"}]


@dataclass
class Account:
    aws: AwsClients
    table: str
    alarm_topic: str
    operator_topic: str
    operator_alarm_topic: str  # where the created alarms meant for people send their ALARM
    monkeypatch: pytest.MonkeyPatch

    def configure(self, **settings: Any) -> None:
        self.monkeypatch.setenv(names.ENV_CONFIG_JSON, json.dumps(settings))
        common.set_runtime(None)

    def cluster(self, *, tags: list[dict[str, str]] | None = None) -> str:
        cid = create_cluster(self.aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 1)]).cluster_id
        if tags:
            self.aws.emr.add_tags(ResourceId=cid, Tags=tags)
        return cid

    def alarms(self, cid: str) -> list[dict[str, Any]]:
        pages = self.aws.cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=f"sparkscale-{cid}-"
        )
        return [
            a for p in pages for a in p["MetricAlarms"] if a["AlarmName"].startswith(f"sparkscale-{cid}-")
        ]


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    fake_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sparkscale-discovery")
    monkeypatch.setenv(names.ENV_ALARM_PREFIX, "sparkscale")
    monkeypatch.delenv(names.ENV_DRY_RUN, raising=False)
    monkeypatch.setattr(CloudWatchAlarmWriter, "_pace", lambda self: None)  # paced in its own test below
    with mock_aws():
        aws = clients()
        sqs = boto3.session.Session(region_name=REGION).client("sqs")
        table = create_table(aws.dynamodb)
        operators = create_topic_with_queue(aws.sns, sqs)
        alarm_topic = aws.sns.create_topic(Name="sparkscale-alarms")["TopicArn"]
        people = aws.sns.create_topic(Name="sparkscale-operator-alarms")["TopicArn"]
        for k, v in {
            names.ENV_TABLE_NAME: table,
            names.ENV_OPERATOR_TOPIC_ARN: operators.arn,
            names.ENV_ALARM_TOPIC_ARN: alarm_topic,
            names.ENV_OPERATOR_ALARM_TOPIC_ARN: people,
        }.items():
            monkeypatch.setenv(k, v)
        acc = Account(aws, table, alarm_topic, operators.arn, people, monkeypatch)
        acc.configure()
        yield acc
    common.set_runtime(None)


def _event(detail_type: str, source: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6f87d04b-9f74-4f04-a780-7acf4b0a9b38",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": clock.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def state_change(cid: str, state: str) -> dict[str, Any]:
    # the shape of EMR's "Amazon EMR cluster state change" event (EMR Management Guide, event types)
    return _event(
        names.DETAIL_EMR_CLUSTER_STATE_CHANGE,
        names.EVENT_SOURCE_EMR,
        {
            "severity": "INFO",
            "stateChangeReason": "{}",
            "name": "analytics",
            "clusterId": cid,
            "state": state,
            "message": f"Amazon EMR cluster {cid} (analytics) is {state.lower()}.",
        },
    )


SCHEDULE = _event(names.DETAIL_SCHEDULED_EVENT, names.EVENT_SOURCE_SCHEDULE, {})


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return dict(discovery_handler.handler(event, FakeLambdaContext(function_name="sparkscale-discovery")))


def test_the_event_path_creates_the_alarms_from_alarm_specs_with_the_topics(account: Account) -> None:
    cid = account.cluster(tags=TAGS)
    out = invoke(state_change(cid, "STARTING"))
    assert out["action"] == "adopted"
    got = {a["AlarmName"]: a for a in account.alarms(cid)}
    specs = alarm_specs(Config(), cid)
    assert sorted(got) == sorted(s.name for s in specs)
    for spec in specs:
        a = got[spec.name]
        assert a["Threshold"] == spec.threshold
        assert a["ComparisonOperator"] == spec.comparison
        assert account.alarm_topic in a["AlarmActions"]
        assert a["OKActions"] == [account.alarm_topic]  # a recovery only wakes the scaler, as the stack's
        assert (account.operator_alarm_topic in a["AlarmActions"]) == spec.to_operators
        assert account.operator_topic not in a["AlarmActions"]  # the notices' topic carries no alarms
        if spec.is_math:
            assert {m["Id"] for m in a["Metrics"]} == {"e1", "heap_used", "heap_max"}
        else:
            assert a["Dimensions"] == [{"Name": "JobFlowId", "Value": cid}]
    # the registry item in the state table
    regs = DynamoClusterRegistry(account.aws.dynamodb, account.table).registrations(clock.utcnow())
    assert regs[cid].active
    assert regs[cid].alarms == tuple(s.name for s in specs)


def test_terminated_deletes_the_alarms_and_a_premature_terminated_changes_nothing(account: Account) -> None:
    cid = account.cluster(tags=TAGS)
    invoke(state_change(cid, "RUNNING"))
    n = len(account.alarms(cid))
    kept = invoke(state_change(cid, "TERMINATED"))  # EMR still says WAITING
    assert kept["action"] == "kept"
    assert len(account.alarms(cid)) == n
    account.aws.emr.terminate_job_flows(JobFlowIds=[cid])
    out = invoke(state_change(cid, "TERMINATED"))
    assert out["action"] == "released"
    assert len(out["alarms_deleted"]) == n
    assert account.alarms(cid) == []


def test_the_sweep_catches_a_missed_terminated_event_and_orphans(account: Account) -> None:
    cid = account.cluster(tags=TAGS)
    invoke(SCHEDULE)
    assert account.alarms(cid)
    account.aws.emr.terminate_job_flows(JobFlowIds=[cid])  # its event is lost
    writer = CloudWatchAlarmWriter(
        account.aws.cloudwatch, alarm_topic_arn="", operator_alarm_topic_arn="", rate_per_s=0
    )
    writer.put_alarms(alarm_specs(Config(), "j-ORPHAN1"))
    out = invoke(SCHEDULE)
    assert [c["action"] for c in out["changes"]] == ["released"]
    assert account.alarms(cid) == []
    assert account.alarms("j-ORPHAN1") == []
    assert len(out["orphans_deleted"]) == len(alarm_specs(Config(), "j-ORPHAN1"))


def test_100_tagged_clusters_in_one_sweep_and_the_untagged_one_untouched(account: Account) -> None:
    ids = [account.cluster(tags=TAGS) for _ in range(100)]
    other = account.cluster(tags=[{"Key": "team", "Value": "data"}])
    assert len(EmrClusterDirectory(account.aws.emr).active_clusters()) == 101  # every ListClusters page
    out = invoke(SCHEDULE)
    assert sorted(m["cluster_id"] for m in out["managed"]) == sorted(ids)
    assert len(out["alarms_created"]) == 100 * len(alarm_specs(Config(), ids[0]))
    assert account.alarms(other) == []
    again = invoke(SCHEDULE)
    assert again["changes"] == []
    assert again["alarms_created"] == []


def test_a_discovered_cluster_is_scaled_by_the_alarm_handler_with_its_profile(account: Account) -> None:
    account.configure(max_task_nodes=8, profiles={"small": {"max_task_nodes": 3, "group_max_nodes": 3}})
    cid = account.cluster(tags=[*TAGS, {"Key": "sparkscale:profile", "Value": "small"}])
    put_pressure(account.aws.cloudwatch, cid, clock.utcnow())
    before = alarm_handler.handler(sns_event_for(alarm_body(cid), "m-1"), FakeLambdaContext())
    assert before["results"][0]["outcome"] == "rejected"  # not managed yet
    invoke(state_change(cid, "RUNNING"))
    out = alarm_handler.handler(sns_event_for(alarm_body(cid), "m-2"), FakeLambdaContext())
    result = out["results"][0]
    assert result["outcome"] == "applied"
    assert result["desired_task_nodes"] <= 3


def test_the_pause_tag_makes_the_alarm_handler_dry_run(account: Account) -> None:
    cid = account.cluster(tags=[*TAGS, {"Key": "sparkscale:paused", "Value": "true"}])
    put_pressure(account.aws.cloudwatch, cid, clock.utcnow())
    invoke(state_change(cid, "RUNNING"))
    out = alarm_handler.handler(sns_event_for(alarm_body(cid), "m-3"), FakeLambdaContext())
    assert out["results"][0]["outcome"] == "dry_run"


def test_a_users_own_alarm_in_any_namespace_wakes_the_scaler(account: Account) -> None:
    cid = account.cluster(tags=TAGS)
    put_pressure(account.aws.cloudwatch, cid, clock.utcnow())
    invoke(state_change(cid, "RUNNING"))
    body = alarm_body(cid)
    body["AlarmName"] = f"sparkscale-{cid}-kinesis-backlog"
    body["Trigger"]["Namespace"] = "MyTeam/Streaming"
    body["Trigger"]["MetricName"] = "BacklogRecords"
    out = alarm_handler.handler(sns_event_for(body, "m-4"), FakeLambdaContext())
    assert out["results"][0]["outcome"] in ("applied", "hold")


def test_the_alarm_writer_paces_to_three_writes_a_second() -> None:
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    class Cw:
        def put_metric_alarm(self, **_: Any) -> None: ...

    w = CloudWatchAlarmWriter(
        Cw(), alarm_topic_arn="a", operator_alarm_topic_arn="o", sleep=sleep, monotonic=lambda: t[0]
    )
    w.put_alarms(alarm_specs(Config(), "j-1")[:4])
    assert slept == pytest.approx([1 / 3] * 3)
    assert t[0] == pytest.approx(1.0)


def test_the_alarm_writer_backs_off_when_throttled(aws_env: None) -> None:
    cw = boto3.client("cloudwatch", region_name=REGION)
    stub = Stubber(cw)
    stub.add_client_error("delete_alarms", service_error_code="Throttling", http_status_code=400)
    stub.add_response("delete_alarms", {}, {"AlarmNames": ["sparkscale-j-1-idle"]})
    slept: list[float] = []
    w = CloudWatchAlarmWriter(
        cw, alarm_topic_arn="", operator_alarm_topic_arn="", rate_per_s=0, sleep=slept.append
    )
    with stub:
        w.delete_alarms(["sparkscale-j-1-idle"])
    assert slept == [0.5]
    stub2 = Stubber(cw)
    for _ in range(2):
        stub2.add_client_error("delete_alarms", service_error_code="Throttling", http_status_code=400)
    w2 = CloudWatchAlarmWriter(
        cw, alarm_topic_arn="", operator_alarm_topic_arn="", rate_per_s=0, attempts=2, sleep=lambda _: None
    )
    with stub2, pytest.raises(Throttled):
        w2.delete_alarms(["sparkscale-j-1-idle"])


def test_a_sweep_stops_before_the_lambdas_timeout_and_the_next_goes_on(account: Account) -> None:
    ids = [account.cluster(tags=TAGS) for _ in range(3)]
    ctx = FakeLambdaContext(function_name="sparkscale-discovery", remaining_ms=10_000)
    out = discovery_handler.handler(SCHEDULE, ctx)
    assert out["incomplete"]
    assert out["managed"] == []
    out = invoke(SCHEDULE)
    assert not out["incomplete"]
    assert sorted(m["cluster_id"] for m in out["managed"]) == sorted(ids)


def test_describe_of_an_unknown_cluster_is_none(account: Account) -> None:
    assert EmrClusterDirectory(account.aws.emr).describe("j-NOSUCHCLUSTER") is None


def test_ports_of_the_handler_are_real_adapters(account: Account) -> None:
    rt = common.runtime()
    ports = discovery_handler.discovery_ports(rt)
    assert isinstance(ports, DiscoveryPorts)
    assert isinstance(ports.directory, EmrClusterDirectory)


def test_reconcile_evaluates_the_discovered_clusters_and_forgets_them_when_they_end(account: Account) -> None:
    from handlers import reconcile

    cid = account.cluster(tags=TAGS)
    untagged = account.cluster()
    put_pressure(account.aws.cloudwatch, cid, clock.utcnow())
    invoke(state_change(cid, "RUNNING"))
    out = reconcile.handler(SCHEDULE, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert [r["cluster_id"] for r in out["results"]] == [cid]  # never the untagged one
    account.aws.emr.terminate_job_flows(JobFlowIds=[cid])
    invoke(state_change(cid, "TERMINATED"))
    out = reconcile.handler(SCHEDULE, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert out["results"] == []
    assert untagged not in json.dumps(out)
