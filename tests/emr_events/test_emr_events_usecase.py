"""EMR capacity events without AWS: parsing (the real and derived samples, and anything else), the capacity
reason patterns, the fallback notice, the orchestration through in-memory ports, and record_capacity_error on
both stores (the DynamoDB one against moto)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from sparkscale import notices
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.config import Config
from sparkscale.errors import BadEvent, LeaseHeld
from sparkscale.events.emr import EmrEvent, EmrEventKind, capacity_reason, parse_emr_event
from sparkscale.memory import (
    CollectingNotifier,
    FakeEmr,
    FixedMetrics,
    InMemoryStateStore,
    ReadOnlyStateStore,
)
from sparkscale.notices import fallback_notice
from sparkscale.policy import Reason, ReasonCode
from sparkscale.policy.model import (
    ClusterState,
    Decision,
    Direction,
    GroupTarget,
    Market,
    MetricsSnapshot,
    ScalerState,
)
from sparkscale.ports import CapacityErrorRecorder, Notice, Ports
from sparkscale.usecases.emr_events import handle_emr_event
from sparkscale.usecases.scale import RunResult
from sparkscale.usecases.shell import GONE_TTL_S, KEY_CLUSTER_GONE, LeaseWait, Outcome

from tests.scale.shell_support import T0, cluster, create_table, fake_aws_env, group, pressure

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws-samples" / "eventbridge"
CID = "j-TEST0001"
CHEAP, NEXT, OD = "ig-SPOTA", "ig-SPOTB", "ig-ONDEM"

# the burst rule off: these tests pin the capacity moved for a whole shortfall bought at once
WHOLE = {"burst_first_step_nodes": 0}


def sample(name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return out


def stuck(group_id: str = CHEAP, *, at: datetime = T0, **detail: Any) -> dict[str, Any]:
    ev = sample("EMR_Instance_Group_State_Change_stuck_insufficient_capacity.json")
    ev["time"] = at.isoformat()
    ev["detail"].update({"clusterId": CID, "instanceGroupId": group_id, **detail})
    return ev


# --- parsing ------------------------------------------------------------------------------------------------
def test_the_derived_stuck_sample_is_a_capacity_event() -> None:
    ev = parse_emr_event(sample("EMR_Instance_Group_State_Change_stuck_insufficient_capacity.json"))
    assert ev.kind is EmrEventKind.CAPACITY
    assert (ev.cluster_id, ev.group_id, ev.instance_type) == (
        "j-123456789ABCD",
        "ig-SPOTR54XLARGE",
        "r5.4xlarge",
    )
    assert (ev.requested, ev.running) == (6, 2)  # the detail's numbers are strings
    assert ev.reason == "EC2 provisioning - Insufficient Instance Capacity"
    assert ev.at == datetime(2016, 12, 16, 21, 5, 12, tzinfo=UTC)
    assert (ev.state, ev.severity, ev.event_id) == (
        "RESIZING",
        "WARNING",
        "999cccaa-eaaa-0000-1111-123456789013",
    )


def test_the_derived_arrested_sample_is_acted_on_whatever_its_reason() -> None:
    ev = parse_emr_event(sample("EMR_Instance_Group_State_Change_arrested.json"))
    assert ev.kind is EmrEventKind.ARRESTED
    assert ev.reason == "Failed to provision instances due to throttling from Amazon EC2"
    assert not capacity_reason(ev.reason)


def test_the_real_terminated_sample_names_its_reason() -> None:
    ev = parse_emr_event(sample("EMR_Cluster_State_Change_TERMINATED.json"))
    assert ev.kind is EmrEventKind.CLUSTER_TERMINATED
    assert ev.state == "TERMINATED"
    assert ev.reason == "USER_REQUEST: Terminated by user request"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EC2 provisioning - Insufficient Instance Capacity", True),
        ("InsufficientInstanceCapacity: We currently do not have sufficient r5.4xlarge capacity", True),
        ("Amazon EC2 has INSUFFICIENT SPOT CAPACITY for r5.4xlarge", True),
        ("There is no Spot capacity available that matches your request", True),
        ("no spot capacity", True),
        ("Capacity not available for the requested instance type", True),
        ("capacity is not available in us-east-1a", True),
        ("UnfulfillableCapacity", True),
        ("There is not enough capacity to fulfill your request", True),
        ("The bootstrap action failed on 2 instances", False),
        ("Failed to provision instances due to throttling from Amazon EC2", False),
        ("The requested instance type is not supported in the availability zone", False),
        ("capacity reservation expired", False),
        ("", False),
    ],
)
def test_capacity_reasons(text: str, expected: bool) -> None:
    assert capacity_reason(text) is expected


def test_an_unmanaged_cluster_is_rejected_without_naming_it_as_a_dimension() -> None:
    with pytest.raises(BadEvent) as err:
        parse_emr_event(stuck(), managed_clusters=["j-OTHER00001"])
    assert (
        err.value.reason
        == f"EMR Instance Group State Change: cluster {CID} is not managed by this deployment"
    )
    assert err.value.cluster_id is None


def test_a_managed_clusters_non_capacity_event_is_rejected_with_its_cluster() -> None:
    with pytest.raises(BadEvent) as err:
        parse_emr_event(stuck(instanceGroupType="MASTER"), managed_clusters=[CID])
    assert err.value.reason == f"{CHEAP} in {CID} is a MASTER group: only SPOT TASK groups fall back"
    assert err.value.cluster_id == CID


_text = st.text(max_size=20) | st.sampled_from(["TASK", "SPOT", "SUSPENDED", "\n RESIZING\t", "x" * 500])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = ["source", "detail-type", "detail", "time", "id"]
_DETAIL_KEYS = [
    "clusterId",
    "instanceGroupId",
    "instanceGroupType",
    "market",
    "state",
    "severity",
    "message",
    "requestedInstanceCount",
    "runningInstanceCount",
    "instanceType",
    "stateChangeReason",
]


@settings(max_examples=500, deadline=None)
@given(
    top=st.dictionaries(st.sampled_from(_KEYS), _json, max_size=3),
    detail=st.dictionaries(st.sampled_from(_DETAIL_KEYS), _json, max_size=4),
    name=st.sampled_from(
        [
            "EMR_Instance_Group_State_Change_stuck_insufficient_capacity.json",
            "EMR_Instance_Group_State_Change_arrested.json",
            "EMR_Instance_Group_State_Change_RUNNING.json",
            "EMR_Cluster_State_Change_TERMINATED.json",
        ]
    ),
)
def test_property_any_mangled_sample_parses_or_is_rejected_never_raises(
    top: dict[str, Any], detail: dict[str, Any], name: str
) -> None:
    ev = sample(name)
    ev.update(top)
    if isinstance(ev.get("detail"), dict):
        ev["detail"].update(detail)
    try:
        parsed = parse_emr_event(ev, managed_clusters=["j-123456789ABCD"])
    except BadEvent as exc:
        reason = exc.reason
    else:
        reason = ""
    if reason:
        assert "\n" not in reason  # one line (EMR's own text is quoted with its whitespace squashed)
        assert len(reason) < 600  # quoted values are cut short
        return
    assert parsed.cluster_id == "j-123456789ABCD"
    if parsed.kind is not EmrEventKind.CLUSTER_TERMINATED:
        assert parsed.group_id is not None


# --- the orchestration through in-memory ports --------------------------------------------------------------
class World:
    """MASTER, CORE, two SPOT TASK groups (CHEAP cheapest per usable GiB-hour, then NEXT), one ON_DEMAND."""

    def __init__(self, *, state: ClusterState = ClusterState.RUNNING) -> None:
        self.emr = FakeEmr(
            cluster(
                CID,
                group(
                    CHEAP, itype="r5.4xlarge", memory_gib=128.0, requested=1, usd=0.30
                ),  # $0.0031/usable GiB-h
                group(NEXT, itype="r5.2xlarge", memory_gib=64.0, requested=1, usd=0.20),  # $0.0042
                group(
                    OD, itype="m5.2xlarge", memory_gib=32.0, requested=0, usd=0.384, market=Market.ON_DEMAND
                ),  # $0.016
                state=state,
            )
        )
        self.metrics = FixedMetrics({CID: pressure(T0)})
        self.store = InMemoryStateStore()
        self.notifier = CollectingNotifier()
        self.sleeps: list[float] = []

    def ports(self, **over: Any) -> Ports:
        return replace(
            Ports(self.emr, self.metrics, self.emr, self.store, self.notifier, ledger=self.store), **over
        )

    def requested(self) -> dict[str, int]:
        return {g.id: g.requested for g in self.emr.clusters[CID].task_groups}

    def handle(self, raw: Any, *, now: datetime = T0, config: Config | None = None, **over: Any) -> Any:
        cfg = config or Config.from_mapping({"clusters": [CID], "max_task_nodes": 20, **WHOLE})
        return handle_emr_event(
            now=now,
            event=parse_emr_event(raw, managed_clusters=[CID]),
            ports=self.ports(**over),
            config=cfg,
            owner="emr-events",
            lease_wait=LeaseWait(attempts=3, wait_s=0.5, sleep=self.sleeps.append),
        )


def test_a_capacity_event_records_the_error_moves_the_capacity_and_sends_one_notice() -> None:
    w = World()
    r = w.handle(stuck())
    assert r.outcome is Outcome.FALLBACK
    assert r.new_error is True
    assert w.store.load_state(CID).capacity_errors == {CHEAP: T0}
    after = w.requested()
    assert after[CHEAP] == 1
    assert after[NEXT] > 1
    assert after[OD] == 0
    assert r.run is not None
    assert r.run.outcome == Outcome.APPLIED
    [n] = w.notifier.notices  # the decision's own notice travels inside the fallback notice
    assert n is r.notice
    assert n.kind == "fallback"
    assert n.subject == f"sparkscale {CID}: spot fallback: {CHEAP} (no capacity) -> r5.2xlarge"
    assert len(n.subject) < 100
    assert f"  {NEXT} (SPOT r5.2xlarge): 1 -> {after[NEXT]} nodes" in n.body
    assert "The scaler's decision (sparkscale j-TEST0001: scale out" in n.body
    assert f"Blocked, gets no new capacity: {CHEAP} (SPOT r5.4xlarge)" in n.body
    assert n.message.count("kind ") == 1  # one footer, the fallback notice's own
    assert w.store.leases == {}  # released


def test_a_second_event_within_the_hour_tells_no_one_but_still_re_decides() -> None:
    w = World()
    w.handle(stuck())
    w.emr.deliver(CID)
    again = w.handle(stuck(at=T0 + timedelta(minutes=5)), now=T0 + timedelta(minutes=5))
    assert again.outcome is Outcome.FALLBACK
    assert again.new_error is False
    assert again.notice is None
    assert again.run is not None
    # no second fallback notice; whatever the scaler decided now went out as its own notice, not held back
    assert [n.kind for n in w.notifier.notices].count("fallback") == 1
    assert {n.kind for n in w.notifier.notices[1:]} <= {"action", "at_max"}
    assert w.store.load_state(CID).capacity_errors == {CHEAP: T0 + timedelta(minutes=5)}  # the later report


def test_without_fresh_metrics_nothing_moves_and_the_notice_says_so() -> None:
    w = World()
    w.metrics.snapshots[CID] = MetricsSnapshot()  # "Metrics missing": the scaler holds
    r = w.handle(stuck())
    assert r.run is not None
    assert r.run.outcome == Outcome.HOLD
    assert w.requested() == {CHEAP: 1, NEXT: 1, OD: 0}
    [n] = w.notifier.notices
    assert n.subject == f"sparkscale {CID}: spot fallback: {CHEAP} (no capacity)"
    assert "What the scaler did now: no change (hold)" in n.body


def test_dry_run_records_the_error_changes_no_group_and_says_so() -> None:
    w = World()
    cfg = Config.from_mapping({"clusters": [CID], "max_task_nodes": 20, "dry_run": True, **WHOLE})
    r = w.handle(stuck(), config=cfg)
    assert w.store.load_state(CID).capacity_errors == {CHEAP: T0}
    assert w.emr.resizes == []
    [n] = w.notifier.notices
    assert n.subject.startswith(f"[DRY RUN] sparkscale {CID}: spot fallback: {CHEAP} (no capacity) -> ")
    assert "(DRY RUN: nothing changed)" in n.body
    assert r.run is not None
    assert r.run.outcome == Outcome.DRY_RUN


def test_an_event_from_the_future_is_recorded_at_now() -> None:
    w = World()
    w.handle(stuck(at=T0 + timedelta(minutes=3)))
    assert w.store.load_state(CID).capacity_errors == {CHEAP: T0}


def test_a_failing_notifier_loses_only_the_message() -> None:
    w = World()
    w.notifier.fail_with = RuntimeError("SNS is down")
    r = w.handle(stuck())
    assert r.notify_failures == 1
    assert r.notice is not None
    assert w.store.load_state(CID).capacity_errors == {CHEAP: T0}
    assert w.requested()[NEXT] > 1


def test_without_a_ledger_every_event_is_told() -> None:
    w = World()
    w.handle(stuck(), ledger=None)
    w.handle(stuck(), ledger=None)
    assert [n.kind for n in w.notifier.notices] == ["fallback", "fallback"]


def test_the_scalers_lease_is_waited_for_then_the_event_fails_for_a_retry() -> None:
    w = World()
    assert w.store.acquire_lease(CID, "reconcile", T0, 90)
    with pytest.raises(LeaseHeld):
        w.handle(stuck())
    assert w.sleeps == [0.5, 0.5]  # three attempts
    assert w.store.load_state(CID) == ScalerState()
    assert w.emr.resizes == []
    assert w.notifier.notices == []


def test_a_store_that_cannot_record_errors_is_ignored_with_a_reason() -> None:
    """A store without the optional CapacityErrorRecorder (the read-only one `sparkscale decide` uses):
    nothing breaks."""
    replay_store = ReadOnlyStateStore(InMemoryStateStore())
    assert not isinstance(replay_store, CapacityErrorRecorder)
    assert isinstance(InMemoryStateStore(), CapacityErrorRecorder)
    w = World()
    r = w.handle(stuck(), state=replay_store)
    assert r.outcome is Outcome.IGNORED
    assert r.reason == "the state store (ReadOnlyStateStore) cannot record capacity errors"
    assert w.emr.resizes == []


def test_a_terminated_cluster_is_marked_gone_once_then_its_events_are_ignored() -> None:
    w = World(state=ClusterState.TERMINATED)
    terminated = sample("EMR_Cluster_State_Change_TERMINATED.json")
    terminated["detail"]["clusterId"] = CID
    first = w.handle(terminated)
    assert first.outcome is Outcome.CLUSTER_GONE
    assert first.run is not None
    assert first.run.outcome == Outcome.CLUSTER_GONE
    assert "USER_REQUEST: Terminated by user request" in first.reason
    [n] = w.notifier.notices
    assert n.kind == "cluster_gone"
    assert w.handle(terminated).outcome is Outcome.CLUSTER_GONE
    late = w.handle(stuck())
    assert late.outcome is Outcome.IGNORED
    assert late.reason == f"cluster {CID} is gone: no longer managed"
    assert len(w.notifier.notices) == 1
    assert w.store.load_state(CID) == ScalerState()


def test_a_termination_event_emr_does_not_confirm_marks_nothing() -> None:
    """Anyone who may put events (or invoke the Lambda) could send TERMINATED: EMR is asked first."""
    w = World()  # EMR reports the cluster RUNNING
    terminated = sample("EMR_Cluster_State_Change_TERMINATED.json")
    terminated["detail"]["clusterId"] = CID
    r = w.handle(terminated)
    assert r.outcome is Outcome.IGNORED
    assert f"DescribeCluster reports {CID} as RUNNING: not marked gone" in r.reason
    assert w.notifier.notices == []
    assert w.store.claimed_at(CID, KEY_CLUSTER_GONE, T0) is None
    assert w.handle(stuck()).outcome is Outcome.FALLBACK  # still managed


def test_the_gone_mark_expires_after_gone_ttl() -> None:
    w = World(state=ClusterState.TERMINATED)
    terminated = sample("EMR_Cluster_State_Change_TERMINATED.json")
    terminated["detail"]["clusterId"] = CID
    assert w.handle(terminated).outcome is Outcome.CLUSTER_GONE
    assert w.store.claimed_at(CID, KEY_CLUSTER_GONE, T0 + timedelta(seconds=GONE_TTL_S - 1)) == T0
    assert w.store.claimed_at(CID, KEY_CLUSTER_GONE, T0 + timedelta(seconds=GONE_TTL_S)) is None


def test_a_cluster_found_gone_by_the_evaluation_gets_its_gone_notice_only() -> None:
    w = World(state=ClusterState.TERMINATED)
    r = w.handle(stuck())
    assert r.run is not None
    assert r.run.outcome == Outcome.CLUSTER_GONE
    assert [n.kind for n in w.notifier.notices] == ["cluster_gone"]
    assert r.notice is None


# --- the notices (pure) -------------------------------------------------------------------------------------
def _decision(**over: Any) -> Decision:
    targets = (
        GroupTarget(CHEAP, "spot-a", "r5.4xlarge", Market.SPOT, 1, 1, 0.30),
        GroupTarget(NEXT, "spot-b", "r5.2xlarge", Market.SPOT, 1, 4, 0.20),
        GroupTarget(OD, "od", "m5.2xlarge", Market.ON_DEMAND, 0, 0, 0.384),
    )
    base = Decision(CID, T0, Direction.OUT, targets, (Reason(ReasonCode.NEED, "because"),), dry_run=False)
    return replace(base, **over)


def test_a_decision_notice_names_the_blocked_group_and_where_the_capacity_went() -> None:
    d = _decision(fallback_groups=(CHEAP,), fallback_to=(NEXT,))
    body = notices.decision_notice(d).body
    assert "Spot fallback:\n" in body
    assert f"  Blocked, gets no new capacity: spot-a ({CHEAP}, SPOT r5.4xlarge)" in body
    assert f"  Capacity went to: spot-b ({NEXT}, SPOT r5.2xlarge) 1 -> 4 nodes" in body
    assert body.index("Spot fallback:") < body.index("Why:")


def test_a_decision_notice_without_fallback_has_no_such_part() -> None:
    assert "Spot fallback" not in notices.decision_notice(_decision()).body


def test_a_blocked_group_with_nowhere_to_go_says_so() -> None:
    d = _decision(fallback_groups=(CHEAP,), fallback_to=())
    assert "  Capacity went to: no group in their place in this decision." in notices.decision_notice(d).body


def test_fallback_notice_subjects_stay_under_100_characters() -> None:
    ev = EmrEvent(
        kind=EmrEventKind.ARRESTED,
        cluster_id="j-" + "X" * 40,
        at=T0,
        event_id="e",
        state="SUSPENDED",
        severity="ERROR",
        message="Instance group was arrested",
        group_id="ig-" + "Y" * 40,
    )
    d = _decision(fallback_groups=(CHEAP,), fallback_to=(NEXT, OD))
    run = RunResult(CID, Outcome.APPLIED.value, d)
    n = fallback_notice(event=ev, run=run, config=Config(), held=[Notice("action", CID, "s", "b")])
    assert len(n.subject) == 99
    assert n.subject.endswith("...")
    assert "The scaler's decision (s):" in n.body


# --- record_capacity_error on the stores --------------------------------------------------------------------
def test_in_memory_store_keeps_the_latest_report() -> None:
    store = InMemoryStateStore()
    assert store.record_capacity_error(CID, CHEAP, T0) is True
    assert store.record_capacity_error(CID, CHEAP, T0 - timedelta(minutes=1)) is False
    assert store.load_state(CID).capacity_errors == {CHEAP: T0}
    assert store.record_capacity_error(CID, NEXT, T0) is True
    assert store.load_state(CID).capacity_errors == {CHEAP: T0, NEXT: T0}


@pytest.fixture
def dynamo(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake_aws_env(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        yield client, create_table(client)


def test_dynamo_store_records_into_a_fresh_state(dynamo: Any) -> None:
    client, table = dynamo
    store = DynamoStateStore(client, table)
    assert store.record_capacity_error(CID, CHEAP, T0) is True
    assert store.load_state(CID) == ScalerState(capacity_errors={CHEAP: T0})
    assert store.audit(CID) == []  # an observation, not a decision


def test_dynamo_store_changes_only_the_capacity_errors(dynamo: Any) -> None:
    client, table = dynamo
    store = DynamoStateStore(client, table)
    before = ScalerState(last_scale_out_at=T0 - timedelta(minutes=9), shortfall_since={NEXT: T0})
    store.save(CID, before, _decision(), T0 - timedelta(minutes=9))
    item = client.get_item(TableName=table, Key={"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "state"}})["Item"]

    assert store.record_capacity_error(CID, CHEAP, T0) is True
    assert store.record_capacity_error(CID, CHEAP, T0 - timedelta(seconds=1)) is False  # older: kept T0

    assert store.load_state(CID) == replace(before, capacity_errors={CHEAP: T0})
    now_item = client.get_item(TableName=table, Key={"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "state"}})[
        "Item"
    ]
    assert now_item["updated_at"] == item["updated_at"]
    assert now_item["last_direction"] == item["last_direction"]


def test_dynamo_store_replaces_an_unreadable_state(dynamo: Any) -> None:
    client, table = dynamo
    client.put_item(
        TableName=table, Item={"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "state"}, "state": {"S": "{oops"}}
    )
    store = DynamoStateStore(client, table)
    assert store.record_capacity_error(CID, CHEAP, T0) is True
    assert store.load_state(CID) == ScalerState(capacity_errors={CHEAP: T0})


class _Racing:
    """The DynamoDB client, with another writer changing the state between the store's read and its write
    (once)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client, self._table, self.raced = client, table, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_item(self, **kw: Any) -> Any:
        if not self.raced:
            self.raced += 1
            DynamoStateStore(self._client, self._table).save(
                CID, ScalerState(last_scale_in_at=T0), _decision(direction=Direction.IN), T0
            )
        return self._client.update_item(**kw)


def test_dynamo_store_re_reads_when_another_writer_got_in_between(dynamo: Any) -> None:
    client, table = dynamo
    racing = _Racing(client, table)
    store = DynamoStateStore(racing, table)
    assert store.record_capacity_error(CID, CHEAP, T0) is True
    assert racing.raced == 1
    assert store.load_state(CID) == ScalerState(last_scale_in_at=T0, capacity_errors={CHEAP: T0})
