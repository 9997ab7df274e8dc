"""handlers.emr_events end to end against moto 5.2.5 (mock_aws): EMR "Instance Group State Change" samples
(the real RUNNING one and two derived from the EMR guide's message templates, see PROVENANCE.md) in; the
persisted capacity error, ModifyInstanceGroups, the SNS operator message (read back through an SQS
subscription) and the EMF metrics out.

The moto cluster: MASTER, CORE, SPOT r5.4xlarge x1, SPOT r5.2xlarge x1 and an ON_DEMAND m5.2xlarge TASK group
at 0. moto prices every spot type at the same 0.00001 USD/h, so per usable GiB-hour r5.4xlarge (128 GiB) is
the cheapest spot group and r5.2xlarge (64 GiB) the next; ON_DEMAND m5.2xlarge comes from the on-demand table
($0.384/h). The first test shows that ranking without any event. `now` is injected by replacing the
handlers' clock (common.set_clock); the CloudWatch datapoints are written relative to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from handlers import common
from moto import mock_aws
from sparkscale import clock, names
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.errors import LeaseHeld
from sparkscale.policy import state_from_dict
from sparkscale.policy.model import ScalerState
from sparkscale.usecases.shell import LeaseWait

from tests.scale.shell_support import (
    REGION,
    EmrCluster,
    FakeLambdaContext,
    Topic,
    clients,
    create_cluster,
    create_table,
    create_topic_with_queue,
    emf_documents,
    fake_aws_env,
    fixture,
    group_counts,
    published,
    put_emr_metric,
    put_pressure,
)

SPOT_4X, SPOT_2X, OD = "spot-r5-4x", "spot-r5-2x", "od-m5"
STUCK = "eventbridge/EMR_Instance_Group_State_Change_stuck_insufficient_capacity.json"
ARRESTED = "eventbridge/EMR_Instance_Group_State_Change_arrested.json"
TYPES = {SPOT_4X: "r5.4xlarge", SPOT_2X: "r5.2xlarge", OD: "m5.2xlarge"}


@dataclass
class Site:
    aws: AwsClients
    sqs: Any
    cluster: EmrCluster
    table: str
    topic: Topic
    monkeypatch: pytest.MonkeyPatch
    now: datetime
    requests: list[str] = field(default_factory=list)

    @property
    def cid(self) -> str:
        return self.cluster.cluster_id

    def configure(self, **settings: Any) -> None:
        # the burst rule off: these tests pin a whole shortfall bought at once
        cfg = {
            "clusters": [self.cid],
            "max_task_nodes": 20,
            "group_max_nodes": 8,
            "burst_first_step_nodes": 0,
            **settings,
        }
        self.monkeypatch.setenv(names.ENV_CONFIG_JSON, json.dumps(cfg))
        common.set_runtime(None)

    def counts(self) -> dict[str, int]:
        """TASK group name -> requested count."""
        by_id = group_counts(self.aws.emr, self.cid)
        return {name: by_id[gid][1] for name, gid in self.cluster.tasks.items()}

    def state(self) -> ScalerState:
        item = self.aws.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": f"cluster#{self.cid}"}, "sk": {"S": "state"}}
        ).get("Item")
        return ScalerState() if item is None else state_from_dict(json.loads(item["state"]["S"]))

    def messages(self) -> list[dict[str, Any]]:
        return published(self.sqs, self.topic)

    def pressure(self) -> None:
        put_pressure(self.aws.cloudwatch, self.cid, self.now)

    def low_load(self) -> None:
        """Well under every target, nothing waiting: the scaler scales in."""
        at = self.now - timedelta(seconds=120)
        for metric, value in (
            (names.EMR_YARN_MEMORY_AVAILABLE_PCT, 70.0),
            (names.EMR_CONTAINER_PENDING, 0.0),
            (names.EMR_CONTAINER_ALLOCATED, 6.0),
            (names.EMR_MEMORY_ALLOCATED_MB, 25_000.0),
            (names.EMR_MEMORY_TOTAL_MB, 84_000.0),
            (names.EMR_MEMORY_AVAILABLE_MB, 59_000.0),
            (names.EMR_APPS_RUNNING, 2.0),
            (names.EMR_APPS_PENDING, 0.0),
        ):
            put_emr_metric(self.aws.cloudwatch, self.cid, metric, value, at)

    def event(self, sample: str, group: str, **detail: Any) -> dict[str, Any]:
        """A derived sample made to name this cluster's group, at `now`."""
        ev: dict[str, Any] = fixture(sample)
        gid = self.cluster.tasks[group]
        ev["time"] = self.now.isoformat().replace("+00:00", "Z")
        ev["detail"]["message"] = (
            ev["detail"]["message"].replace("ig-SPOTR54XLARGE", gid).replace("j-123456789ABCD", self.cid)
        )
        ev["detail"].update({"clusterId": self.cid, "instanceGroupId": gid, "instanceType": TYPES[group]})
        ev["detail"].update(detail)
        return ev

    def invoke(self, event: Any) -> dict[str, Any]:
        from handlers import emr_events

        self.requests.append(f"req-{len(self.requests) + 1}")
        out: dict[str, Any] = emr_events.handler(event, FakeLambdaContext(aws_request_id=self.requests[-1]))
        return out

    def reconcile(self) -> dict[str, Any]:
        from handlers import reconcile

        self.requests.append(f"req-{len(self.requests) + 1}")
        [result] = reconcile.handler({}, FakeLambdaContext(aws_request_id=self.requests[-1]))["results"]
        out: dict[str, Any] = result
        return out


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    fake_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sparkscale-emr-events")
    monkeypatch.setenv(names.ENV_POWERTOOLS_SERVICE_NAME, "sparkscale")
    monkeypatch.setenv(names.ENV_POWERTOOLS_METRICS_NAMESPACE, names.SCALER_NAMESPACE)
    monkeypatch.setenv(names.ENV_ALARM_PREFIX, "sparkscale")
    monkeypatch.delenv(names.ENV_DRY_RUN, raising=False)
    with mock_aws():
        aws = clients()
        sqs = boto3.session.Session(region_name=REGION).client("sqs")
        cluster = create_cluster(
            aws.emr,
            tasks=[
                (SPOT_4X, TYPES[SPOT_4X], "SPOT", 1),
                (SPOT_2X, TYPES[SPOT_2X], "SPOT", 1),
                (OD, TYPES[OD], "ON_DEMAND", 0),
            ],
        )
        table = create_table(aws.dynamodb)
        topic = create_topic_with_queue(aws.sns, sqs)
        monkeypatch.setenv(names.ENV_TABLE_NAME, table)
        monkeypatch.setenv(names.ENV_OPERATOR_TOPIC_ARN, topic.arn)
        s = Site(aws, sqs, cluster, table, topic, monkeypatch, clock.utcnow().replace(microsecond=0))

        from handlers import emr_events

        common.set_clock(lambda: s.now)
        monkeypatch.setattr(emr_events, "LEASE_WAIT", LeaseWait(wait_s=0.0))
        s.configure()
        yield s
    common.set_runtime(None)
    common.set_clock(None)


def _v(doc: dict[str, Any], name: str) -> Any:
    value = doc[name]
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def test_without_a_capacity_event_the_cheapest_spot_group_gets_the_nodes(site: Site) -> None:
    """The control for the tests below: under pressure, r5.4xlarge (cheapest per GiB-hour) grows."""
    site.pressure()
    assert site.reconcile()["outcome"] == "applied"
    after = site.counts()
    assert after[SPOT_4X] > 1
    assert (after[SPOT_2X], after[OD]) == (1, 0)


def test_stuck_for_capacity_moves_the_unmet_part_to_the_next_cheapest_spot_group(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.pressure()
    out = site.invoke(site.event(STUCK, SPOT_4X))

    assert out["result"] == "fallback"
    assert out["outcome"] == "applied"
    assert out["new_error"] is True
    blocked = site.cluster.tasks[SPOT_4X]
    assert site.state().capacity_errors == {blocked: site.now}  # persisted: the event's time
    after = site.counts()
    assert after[SPOT_4X] == 1  # the blocked group gets none
    assert after[SPOT_2X] > 1  # the next cheapest spot group gets the nodes
    assert after[OD] == 0  # a spot group could deliver: no on-demand

    [msg] = site.messages()  # one operator message, the scaler's decision inside it
    assert {k: v["Value"] for k, v in msg["MessageAttributes"].items()} == {
        "cluster": site.cid,
        "kind": "fallback",
    }
    assert msg["Subject"] == f"sparkscale {site.cid}: spot fallback: {blocked} (no capacity) -> r5.2xlarge"
    body = msg["Message"]
    assert f"Blocked, gets no new capacity: {SPOT_4X} ({blocked}, SPOT r5.4xlarge)" in body
    moved = site.cluster.tasks[SPOT_2X]
    assert f"Capacity went to: {SPOT_2X} ({moved}, SPOT r5.2xlarge) 1 -> {after[SPOT_2X]} nodes" in body
    assert "EC2 provisioning - Insufficient Instance Capacity" in body

    docs = emf_documents(capsys.readouterr().out)
    by_metric = {m["Name"]: d for d in docs for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert _v(by_metric[names.M_CAPACITY_EVENTS], names.M_CAPACITY_EVENTS) == 1
    assert _v(by_metric[names.M_SCALING_ACTIONS], names.M_SCALING_ACTIONS) == 1
    assert {d[names.DIM_CLUSTER_ID] for d in docs} == {site.cid}


def test_the_same_event_delivered_again_adds_nothing_and_tells_no_one_twice(site: Site) -> None:
    site.pressure()
    ev = site.event(STUCK, SPOT_4X)
    site.invoke(ev)
    first = site.counts()
    assert len(site.messages()) == 1

    again = site.invoke(ev)

    assert again["result"] == "fallback"
    assert again["new_error"] is False
    assert site.counts() == first  # the scale-out cooldown holds; nothing is added twice
    assert site.messages() == []
    assert site.state().capacity_errors == {site.cluster.tasks[SPOT_4X]: site.now}


def test_an_arrested_spot_group_falls_back_whatever_the_reason(site: Site) -> None:
    site.pressure()
    out = site.invoke(site.event(ARRESTED, SPOT_4X))
    assert out["result"] == "fallback"
    blocked = site.cluster.tasks[SPOT_4X]
    assert blocked in site.state().capacity_errors
    assert site.counts()[SPOT_4X] == 1
    assert site.counts()[SPOT_2X] > 1
    [msg] = [m for m in site.messages() if m["MessageAttributes"]["kind"]["Value"] == "fallback"]
    assert msg["Subject"] == f"sparkscale {site.cid}: spot fallback: {blocked} (arrested) -> r5.2xlarge"


def test_after_the_timeout_with_the_group_delivering_capacity_moves_back_to_spot(site: Site) -> None:
    """The next cheapest spot group is at its maximum, so the fallback goes on-demand; once the blocked group
    has delivered and spot_fallback_timeout_s has passed, spot takes the capacity back."""
    site.configure(
        group_bounds={SPOT_2X: {"min_nodes": 0, "max_nodes": 1}},
        group_max_nodes=12,
        spot_fallback_timeout_s=600,
    )
    t0 = site.now
    site.pressure()
    assert site.invoke(site.event(STUCK, SPOT_4X))["outcome"] == "applied"
    fallback = site.counts()
    assert fallback[SPOT_4X] == 1
    assert fallback[OD] > 0  # on-demand took the unmet part
    [msg] = [m for m in site.messages() if m["MessageAttributes"]["kind"]["Value"] == "fallback"]
    assert msg["Subject"].endswith("(no capacity) -> m5.2xlarge on-demand")

    # still inside the timeout (moto delivers at once, so the group is running all it requested): blocked
    site.now = t0 + timedelta(seconds=300)
    site.pressure()
    site.reconcile()
    still = site.counts()
    assert still[SPOT_4X] == 1
    assert site.cluster.tasks[SPOT_4X] in site.state().capacity_errors

    # past the timeout and delivering: the error is cleared and spot capacity comes back first
    site.now = t0 + timedelta(seconds=601)
    site.pressure()
    assert site.reconcile()["outcome"] == "applied"
    back = site.counts()
    assert back[SPOT_4X] > 1
    assert back[OD] == still[OD]  # the on-demand nodes go only once the spot nodes run

    # then the on-demand fallback nodes go (the dearest memory first), while spot keeps capacity
    for _ in range(12):
        if site.counts()[OD] == 0:
            break
        before = site.counts()
        site.now += timedelta(seconds=400)
        site.low_load()
        site.reconcile()
        after = site.counts()
        assert after[OD] <= before[OD]
        if after[OD] == before[OD]:
            continue
        assert after[SPOT_4X] == before[SPOT_4X] or after[OD] == 0  # spot shrinks only after on-demand
    assert site.counts()[OD] == 0
    assert site.counts()[SPOT_4X] >= 1
    assert site.state().capacity_errors == {}  # next_state cleared it once the group ran what it asked for


def test_cluster_terminated_marks_it_gone_once_and_later_events_are_ignored(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    ev: dict[str, Any] = fixture("eventbridge/EMR_Cluster_State_Change_TERMINATED.json")
    ev["detail"]["clusterId"] = site.cid
    unconfirmed = site.invoke(ev)  # EMR still runs it: the event alone does not switch scaling off
    assert unconfirmed["result"] == "rejected"
    assert "not marked gone" in unconfirmed["reason"]
    assert site.messages() == []
    site.aws.emr.terminate_job_flows(JobFlowIds=[site.cid])
    out = site.invoke(ev)
    assert out["result"] == "cluster_gone"
    assert out["outcome"] == "cluster_gone"
    [msg] = site.messages()
    assert msg["MessageAttributes"]["kind"]["Value"] == "cluster_gone"
    assert "TERMINATED" in msg["Message"]

    assert site.invoke(ev)["result"] == "cluster_gone"  # a duplicate: marked already, no second message
    assert site.messages() == []

    before = site.counts()
    site.pressure()
    capsys.readouterr()
    late = site.invoke(site.event(STUCK, SPOT_4X))
    assert late == {"result": "rejected", "reason": f"cluster {site.cid} is gone: no longer managed"}
    assert site.counts() == before
    assert site.state() == ScalerState()
    [doc] = emf_documents(capsys.readouterr().out)
    assert _v(doc, names.M_REJECTED_EVENTS) == 1


def _rejections(site: Site) -> list[tuple[Any, str]]:
    """(event, what its reason must say): none of them may change anything."""
    gid, cid = site.cluster.tasks[SPOT_4X], site.cid
    other_reason = site.event(STUCK, SPOT_4X)
    other_reason["detail"]["message"] = other_reason["detail"]["message"].replace(
        "EC2 provisioning - Insufficient Instance Capacity", "The bootstrap action failed on 2 instances"
    )
    resize_started = site.event(
        STUCK,
        SPOT_4X,
        severity="INFO",
        message=f"A resize for instance group {gid} in Amazon EMR cluster {cid} (analytics) started at "
        "2026-03-02 12:00 UTC. It is resizing from an instance count of 1 to 6.",
    )
    unmanaged = site.event(STUCK, SPOT_4X, clusterId="j-SOMEONEELSE1")
    core_stuck = site.event(STUCK, SPOT_4X, instanceGroupType="CORE", instanceGroupId=site.cluster.core)
    bad_time = site.event(STUCK, SPOT_4X)
    bad_time["time"] = "yesterday"
    verbatim = {}
    for name in (
        "EMR_Instance_Group_State_Change_RUNNING",
        "EMR_Cluster_State_Change_STARTING",
        "EMR_Step_Status_Change_FAILED",
    ):
        verbatim[name] = fixture(f"eventbridge/{name}.json")
        verbatim[name]["detail"]["clusterId"] = cid
    return [
        (other_reason, "is stuck for a reason that is not about capacity: The bootstrap action failed"),
        (resize_started, "INFO RESIZING event is not a capacity problem"),
        (verbatim["EMR_Instance_Group_State_Change_RUNNING"], "is a CORE group"),
        (core_stuck, "is a CORE group"),
        (site.event(STUCK, OD, market="ON_DEMAND"), "is an ON_DEMAND TASK group"),
        (verbatim["EMR_Cluster_State_Change_STARTING"], f"cluster {cid} is STARTING"),
        (verbatim["EMR_Step_Status_Change_FAILED"], "'EMR Step Status Change' from 'aws.emr' is not an EMR"),
        (unmanaged, "cluster j-SOMEONEELSE1 is not managed by this deployment"),
        (bad_time, "bad time 'yesterday'"),
        (
            fixture("eventbridge/EC2_Spot_Instance_Interruption_Warning.json"),
            "is not an EMR instance-group or cluster state change",
        ),
        ({"source": "aws.emr", "detail-type": "EMR Instance Group State Change"}, "no detail"),
        ("not an event", "not an EventBridge event: str"),
        (None, "not an EventBridge event: NoneType"),
    ]


def test_rejected_events_change_nothing_and_are_counted(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.pressure()
    before = site.counts()
    for ev, expected in _rejections(site):
        capsys.readouterr()
        out = site.invoke(ev)
        assert out["result"] == "rejected", expected
        assert expected in out["reason"]
        assert "\n" not in out["reason"]
        [doc] = emf_documents(capsys.readouterr().out)
        assert _v(doc, names.M_REJECTED_EVENTS) == 1, expected
        assert doc[names.DIM_CLUSTER_ID] in (site.cid, "unknown"), expected
    assert site.counts() == before
    assert site.state() == ScalerState()
    assert site.messages() == []


def test_waits_for_the_scalers_lease_then_fails_for_a_retry(site: Site) -> None:
    store = DynamoStateStore(site.aws.dynamodb, site.table)
    assert store.acquire_lease(site.cid, "reconcile:run_once", site.now, 90)
    site.pressure()
    ev = site.event(STUCK, SPOT_4X)
    before = site.counts()
    with pytest.raises(LeaseHeld):
        site.invoke(ev)
    assert site.counts() == before
    assert site.state() == ScalerState()
    store.release_lease(site.cid, "reconcile:run_once")
    assert site.invoke(ev)["result"] == "fallback"  # Lambda's retry, once the scaler is done
