"""The pure part of interruption handling: parsing, the replacement choice, the notice; and the orchestration
through fake ports (no AWS)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sparkscale.config import Config
from sparkscale.errors import BadEvent, GroupBusy, InvalidRequest, LeaseHeld, Throttled, TransientAwsError
from sparkscale.events.spot import SpotEvent, SpotEventKind, parse_spot_event
from sparkscale.notices import interruption_notice
from sparkscale.policy.constraints import RESIZABLE_STATUSES
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    GroupStatus,
    GroupTarget,
    InstanceGroup,
    Market,
    Role,
    ScalerState,
)
from sparkscale.policy.replacement import ReplacementKind, choose_replacement, usd_per_usable_gib_hour
from sparkscale.ports import InstanceLocation, Lookup, Notice, PauseMark, Ports
from sparkscale.usecases.shell import LeaseWait, Outcome, with_prices
from sparkscale.usecases.spot_events import handle_spot_event

from tests import model_builders

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws-samples" / "eventbridge"
NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
S, OD = Market.SPOT, Market.ON_DEMAND


def g(
    gid: str,
    itype: str,
    market: Market = S,
    *,
    requested: int = 2,
    running: int | None = None,
    mem: float = 64.0,
    usd: float = 0.2,
    role: Role = Role.TASK,
    status: GroupStatus = GroupStatus.RUNNING,
) -> InstanceGroup:
    return model_builders.group(
        gid,
        name=f"name-{gid}",
        instance_type=itype,
        requested=requested,
        usd=usd,
        role=role,
        market=market,
        memory_gib=mem,
        running=running,
        status=status,
    )


def cluster(*groups: InstanceGroup) -> Cluster:
    base = (
        g("ig-master", "m5.xlarge", OD, requested=1, role=Role.MASTER),
        g("ig-core", "m5.2xlarge", OD, requested=2, role=Role.CORE),
    )
    return Cluster(id="j-TEST", name="test", state=ClusterState.WAITING, groups=base + groups)


CFG = Config.from_mapping({"clusters": ["j-TEST"]})


def changes(plan) -> dict[str, tuple[int, int]]:
    return {t.group_id: (t.current, t.target) for t in plan.changes}


# --- parsing ------------------------------------------------------------------------------------------------


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_parses_the_real_interruption_warning_sample():
    ev = parse_spot_event(load("EC2_Spot_Instance_Interruption_Warning.json"))
    assert ev == SpotEvent(
        kind=SpotEventKind.INTERRUPTION,
        instance_id="i-1234567890abcdef0",
        at=datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        region="us-east-2",
        event_id="12345678-1234-1234-1234-123456789012",
        action="terminate",
    )


def test_parses_the_real_rebalance_recommendation_sample():
    ev = parse_spot_event(load("EC2_Instance_Rebalance_Recommendation.json"))
    assert (ev.kind, ev.instance_id, ev.action) == (SpotEventKind.REBALANCE, "i-1234567890abcdef0", None)


def _mutated(**changes: object) -> dict:
    ev = load("EC2_Spot_Instance_Interruption_Warning.json")
    for k, v in changes.items():
        ev[k.replace("_", "-")] = v
    return ev


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (None, "not an EventBridge event"),
        ([1, 2], "not an EventBridge event"),
        ({}, "not an EventBridge event"),
        (_mutated(source="aws.emr"), "not an EC2 event"),
        (_mutated(detail_type="EC2 Instance State-change Notification"), "not a spot interruption"),
        (_mutated(detail_type=7), "not an EventBridge event"),
        (_mutated(detail="x"), "no detail"),
        (_mutated(detail={"instance-id": "sir-123"}), "bad instance-id"),
        (_mutated(detail={}), "bad instance-id"),
        (_mutated(time="yesterday"), "bad time"),
        (_mutated(time="2026-03-02T12:00:00"), "bad time"),  # no zone
        (_mutated(time=None), "bad time"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(event, why):
    with pytest.raises(BadEvent, match=why):
        parse_spot_event(event)


# --- the choice ---------------------------------------------------------------------------------------------


def test_moves_the_node_to_the_cheapest_spot_group_of_another_type():
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=4, usd=0.12),  # interrupted
        # m5.4xlarge: 64 GiB, 0.30 $/h -> 0.30 / (64 * 0.75) = 0.00625 $/usable GiB-h
        g("ig-b", "m5.4xlarge", requested=2, usd=0.30),
        # r6g.2xlarge: 64 GiB, 0.10 $/h -> 0.10 / 48 = 0.00208 $/usable GiB-h: cheapest
        g("ig-c", "r6g.2xlarge", requested=1, usd=0.10),
    )
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    assert plan.kind is ReplacementKind.REPLACED_SPOT
    assert plan.replacement is not None
    assert plan.replacement.id == "ig-c"
    assert changes(plan) == {"ig-a": (4, 3), "ig-c": (1, 2)}
    assert plan.changes[0] == GroupTarget("ig-a", "name-ig-a", "r5.2xlarge", S, 4, 3, 0.12)


def test_ranking_is_per_usable_gib_not_per_node():
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=2),
        # the cheaper node (0.10 $/h) has 16 GiB: 0.10/12 = 0.00833 $/usable GiB-h;
        # the dearer (0.20 $/h) has 64 GiB: 0.20/48 = 0.00417 $/usable GiB-h
        g("ig-small", "m5.xlarge", mem=16, usd=0.10),
        g("ig-big", "r6g.2xlarge", mem=64, usd=0.20),
    )
    assert usd_per_usable_gib_hour(c.groups[3], CFG) == pytest.approx(0.10 / 12)
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    assert plan.replacement is not None
    assert plan.replacement.id == "ig-big"


def test_never_the_same_instance_type_even_when_cheaper():
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=2, usd=0.12),
        g("ig-twin", "r5.2xlarge", requested=1, usd=0.05),  # same spot pool, cheapest: not allowed
        g("ig-b", "m5.4xlarge", requested=1, usd=0.30),
    )
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    assert changes(plan) == {"ig-a": (2, 1), "ig-b": (1, 2)}
    assert any("ig-twin: same instance type" in r for r in plan.reasons)


@pytest.mark.parametrize(
    ("tweak", "skipped_reason"),
    [
        ({"group_bounds": {"ig-c": {"min_nodes": 0, "max_nodes": 1}}}, "ig-c: at its maximum of 1"),
        ({"group_bounds": {"name-ig-c": {"min_nodes": 0, "max_nodes": 1}}}, "ig-c: at its maximum of 1"),
        ({"group_max_nodes": 1, "group_bounds": {"ig-b": {"min_nodes": 0, "max_nodes": 5}}}, "maximum of 1"),
    ],
)
def test_a_group_at_its_maximum_is_skipped(tweak, skipped_reason):
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=1, usd=0.12),
        g("ig-b", "m5.4xlarge", requested=1, usd=0.30),
        g("ig-c", "r6g.2xlarge", requested=1, usd=0.10),  # cheapest, but full
    )
    cfg = Config.from_mapping({"clusters": ["j-TEST"], **tweak})
    plan = choose_replacement(cluster=c, group_id="ig-a", config=cfg, now=NOW)
    assert changes(plan) == {"ig-a": (1, 0), "ig-b": (1, 2)}
    assert any(skipped_reason in r for r in plan.reasons)


@pytest.mark.parametrize(
    ("state", "status", "cheapest_allowed"),
    [
        (ScalerState(), GroupStatus.RUNNING, True),
        (ScalerState(), GroupStatus.RESIZING, True),  # a new count interrupts a resize in progress (EMR)
        (ScalerState(), GroupStatus.SUSPENDED, False),
        (ScalerState(), GroupStatus.ARRESTED, False),
        (ScalerState(), GroupStatus.PROVISIONING, False),
        (ScalerState(capacity_errors={"ig-c": NOW - timedelta(minutes=1)}), GroupStatus.RUNNING, False),
        # requested > running for longer than spot_fallback_timeout_s (600 s): not delivering
        (ScalerState(shortfall_since={"ig-c": NOW - timedelta(seconds=601)}), GroupStatus.RUNNING, False),
        # ... for less: still counted as coming
        (ScalerState(shortfall_since={"ig-c": NOW - timedelta(seconds=300)}), GroupStatus.RUNNING, True),
    ],
)
def test_groups_the_spot_fallback_blocks_get_no_replacement(state, status, cheapest_allowed):
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=3, usd=0.12),
        g("ig-b", "m5.4xlarge", requested=1, usd=0.30),
        g("ig-c", "r6g.2xlarge", requested=2, running=1, usd=0.10, status=status),
    )
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW, state=state)
    assert plan.replacement is not None
    assert plan.replacement.id == ("ig-c" if cheapest_allowed else "ig-b")


def test_falls_back_to_an_on_demand_task_group_when_no_spot_group_can_take_it():
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=2, usd=0.12),
        g("ig-twin", "r5.2xlarge", requested=1, usd=0.10),  # same pool
        g("ig-od-dear", "m5.4xlarge", OD, requested=0, usd=0.768),  # 0.768/48 = 0.016
        g(
            "ig-od", "r5.2xlarge", OD, requested=0, usd=0.504
        ),  # 0.504/48 = 0.0105: same type is fine on-demand
    )
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    assert plan.kind is ReplacementKind.REPLACED_ON_DEMAND
    assert changes(plan) == {"ig-a": (2, 1), "ig-od": (0, 1)}
    assert "on-demand fallback" in plan.reasons[2]


def test_without_on_demand_fallback_it_is_left_to_emr():
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=2),
        g("ig-od", "m5.4xlarge", OD, requested=0),
    )
    cfg = Config.from_mapping({"on_demand_fallback": False})
    plan = choose_replacement(cluster=c, group_id="ig-a", config=cfg, now=NOW)
    assert (plan.kind, plan.changes) == (ReplacementKind.LEFT_TO_EMR, ())
    assert "on-demand fallback off" in plan.reasons[0]


def test_only_spot_group_and_no_on_demand_group_is_left_to_emr():
    c = cluster(g("ig-a", "r5.2xlarge", requested=2))
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    assert (plan.kind, plan.changes) == (ReplacementKind.LEFT_TO_EMR, ())


@pytest.mark.parametrize(
    ("interrupted", "cfg", "why"),
    [
        (g("ig-a", "r5.2xlarge", requested=2), {"group_min_nodes": 2}, "at its minimum of 2"),
        (g("ig-a", "r5.2xlarge", requested=0, running=0), {}, "already requests 0"),
        (g("ig-a", "r5.2xlarge", requested=1, running=3), {}, "is shrinking"),
        (g("ig-a", "r5.2xlarge", requested=2, status=GroupStatus.RECONFIGURING), {}, "is RECONFIGURING"),
    ],
)
def test_interrupted_group_that_cannot_give_a_node_is_left_to_emr(interrupted, cfg, why):
    c = cluster(interrupted, g("ig-b", "m5.4xlarge", requested=1))
    plan = choose_replacement(cluster=c, group_id="ig-a", config=Config.from_mapping(cfg), now=NOW)
    assert (plan.kind, plan.changes) == (ReplacementKind.LEFT_TO_EMR, ())
    assert why in plan.reasons[0]


def test_core_and_unknown_groups_are_left_to_emr():
    c = cluster(g("ig-b", "m5.4xlarge", requested=1))
    core = choose_replacement(cluster=c, group_id="ig-core", config=CFG, now=NOW)
    assert core.kind is ReplacementKind.LEFT_TO_EMR
    assert "CORE group" in core.reasons[0]
    gone = choose_replacement(cluster=c, group_id="ig-nope", config=CFG, now=NOW)
    assert gone.kind is ReplacementKind.LEFT_TO_EMR
    assert gone.interrupted is None


def test_diversification_share_limits_the_replacement():
    # After losing one r5 node: r5 3 x 64 = 192 GiB, m5 1 x 64 = 64, r6g 1 x 64 = 64 (320 in all).
    # +1 r6g: 128 of 384 = 33% ; +1 m5: 128 / 384 = 33%. With max share 0.3 neither fits; 0.34 both do.
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=4, usd=0.12),
        g("ig-b", "m5.4xlarge", requested=1, usd=0.30),
        g("ig-c", "r6g.2xlarge", requested=1, usd=0.10),
    )
    tight = Config.from_mapping({"max_share_per_instance_type": 0.3, "on_demand_fallback": False})
    plan = choose_replacement(cluster=c, group_id="ig-a", config=tight, now=NOW)
    assert plan.kind is ReplacementKind.LEFT_TO_EMR
    assert any("max_share_per_instance_type" in r for r in plan.reasons)
    loose = Config.from_mapping({"max_share_per_instance_type": 0.34})
    assert choose_replacement(cluster=c, group_id="ig-a", config=loose, now=NOW).replacement.id == "ig-c"


def test_a_group_without_a_price_ranks_last():
    c = cluster(
        g("ig-a", "r5.2xlarge", requested=2),
        g("ig-free", "m5.4xlarge", requested=1, usd=0.0),  # unknown price, not free
        g("ig-b", "r6g.2xlarge", requested=1, usd=0.5),
    )
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    assert plan.replacement.id == "ig-b"


TYPES = ["r5.2xlarge", "m5.4xlarge", "r6g.2xlarge"]


@st.composite
def clusters(draw):
    n = draw(st.integers(1, 5))
    groups = []
    for i in range(n):
        req = draw(st.integers(0, 6))
        groups.append(
            g(
                f"ig-{i}",
                draw(st.sampled_from(TYPES)),
                draw(st.sampled_from([S, S, OD])),
                requested=req,
                running=draw(st.integers(0, req + 1)),
                mem=draw(st.sampled_from([16.0, 32.0, 64.0])),
                usd=draw(st.sampled_from([0.0, 0.1, 0.3, 0.5])),
                status=draw(
                    st.sampled_from([GroupStatus.RUNNING, GroupStatus.RESIZING, GroupStatus.SUSPENDED])
                ),
            )
        )
    return cluster(*groups)


@settings(max_examples=300, deadline=None)
@given(
    c=clusters(),
    idx=st.integers(0, 4),
    max_nodes=st.integers(0, 6),
    min_nodes=st.integers(0, 2),
    share=st.sampled_from([0.3, 0.5, 1.0]),
    fallback=st.booleans(),
)
def test_property_a_move_keeps_the_total_and_every_bound(  # noqa: PLR0917 - hypothesis arguments
    c, idx, max_nodes, min_nodes, share, fallback
):
    cfg = Config.from_mapping(
        {
            "group_min_nodes": min(min_nodes, max_nodes),
            "group_max_nodes": max_nodes,
            "max_share_per_instance_type": share,
            "on_demand_fallback": fallback,
        }
    )
    tasks = c.task_groups
    lost = tasks[idx % len(tasks)]
    plan = choose_replacement(cluster=c, group_id=lost.id, config=cfg, now=NOW)
    if not plan.changes:
        assert plan.kind is ReplacementKind.LEFT_TO_EMR
        assert plan.reasons
        return
    down, up = plan.changes
    assert (down.group_id, down.target - down.current, up.target - up.current) == (lost.id, -1, 1)
    assert sum(t.target for t in plan.changes) == sum(t.current for t in plan.changes)  # the total stays
    to = c.group(up.group_id)
    assert to is not None
    assert to.role is Role.TASK
    assert to.id != lost.id
    assert to.status in RESIZABLE_STATUSES
    assert lost.status in RESIZABLE_STATUSES
    assert cfg.group_min_nodes <= down.target
    assert up.target <= cfg.group_max_nodes
    if to.market is S:
        assert to.instance_type != lost.instance_type
        assert plan.kind is ReplacementKind.REPLACED_SPOT
    else:
        assert fallback
        assert plan.kind is ReplacementKind.REPLACED_ON_DEMAND
    if share < 1.0:  # the type that gained holds at most max_share of the task memory, or no more than before
        mem = {t.id: t.requested * t.memory_gib for t in tasks}
        mem[lost.id] -= lost.memory_gib
        before = sum(v for k, v in mem.items() if c.group(k).instance_type == to.instance_type)
        total = sum(mem.values()) + to.memory_gib
        assert before + to.memory_gib <= max(before, share * total) + 1e-6


# --- the notice ---------------------------------------------------------------------------------------------


def _event(kind: SpotEventKind = SpotEventKind.INTERRUPTION) -> SpotEvent:
    return SpotEvent(
        kind,
        "i-0123456789abcdef0",
        NOW,
        "us-east-1",
        "evt-1",
        "terminate" if kind == "interruption" else None,
    )


def test_notice_for_a_move():
    c = cluster(g("ig-a", "r5.2xlarge", requested=2, usd=0.12), g("ig-b", "m5.4xlarge", requested=1, usd=0.3))
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    n = interruption_notice(event=_event(), plan=plan, applied=True)
    assert n.kind == "interruption"
    assert n.cluster_id == "j-TEST"
    assert n.subject == "sparkscale j-TEST: interruption i-0123456789abcdef0: moved to m5.4xlarge"
    assert len(n.subject) < 100
    assert "ig-a name-ig-a r5.2xlarge SPOT: 2 -> 1" in n.body
    assert "ig-b name-ig-b m5.4xlarge SPOT: 1 -> 2" in n.body
    assert "instance-action: terminate" in n.body


def test_notice_for_a_rebalance_says_it_is_a_recommendation():
    c = cluster(g("ig-a", "r5.2xlarge", requested=2), g("ig-od", "m5.4xlarge", OD, requested=0))
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    n = interruption_notice(event=_event(SpotEventKind.REBALANCE), plan=plan, applied=True)
    assert n.subject == "sparkscale j-TEST: rebalance i-0123456789abcdef0: moved to m5.4xlarge on-demand"
    assert "a RECOMMENDATION" in n.body
    assert "on-demand fallback" in n.body
    assert n.kind == "fallback"  # to on-demand: an alert, emailed by default


def test_a_replacement_that_failed_is_its_own_kind_and_emailed_by_default():
    c = cluster(g("ig-a", "r5.2xlarge", requested=2, usd=0.12), g("ig-b", "m5.4xlarge", requested=1, usd=0.3))
    plan = choose_replacement(cluster=c, group_id="ig-a", config=CFG, now=NOW)
    n = interruption_notice(event=_event(), plan=plan, applied=False, error="ThrottlingException")
    assert n.kind == "replacement_failed"
    assert "replacement FAILED" in n.subject
    assert n.kind in Config().email_notice_kinds
    assert "interruption" not in Config().email_notice_kinds  # a node moved to another spot pool is routine


def test_subjects_stay_under_100_characters():
    c = cluster(g("ig-a", "r5.2xlarge", requested=2), g("ig-od", "r6gd.16xlarge", OD, requested=0))
    plan = choose_replacement(cluster=replace(c, id="j-" + "X" * 40), group_id="ig-a", config=CFG, now=NOW)
    n = interruption_notice(event=_event(SpotEventKind.REBALANCE), plan=plan, applied=False, dry_run=True)
    assert len(n.subject) == 99
    assert n.subject.startswith("sparkscale j-XXXX")
    assert n.subject.endswith("...")
    assert "Outcome:    replaced_on_demand (dry run: nothing changed)" in n.body


# --- orchestration with fake ports --------------------------------------------------------------------------


@dataclass
class Fakes:
    cluster: Cluster
    lease_free_after: int = 0  # acquire_lease fails this many times first
    resize_error: Exception | None = None
    notify_error: Exception | None = None
    claim_error: Exception | None = None
    price_error: Exception | None = None
    release_error: Exception | None = None
    pause: PauseMark | None = None
    calls: list[tuple] = field(default_factory=list)
    claims: dict[tuple[str, str], datetime] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    # ClusterReader
    def read_cluster(self, cluster_id: str) -> Cluster:
        self.calls.append(("read", cluster_id))
        return self.cluster

    def read_metrics(self, cluster_id, now):  # pragma: no cover - never used here
        raise AssertionError

    # CapacityWriter
    def resize(self, cluster_id, changes):
        self.calls.append(("resize", cluster_id, tuple((t.group_id, t.target) for t in changes)))
        if self.resize_error:
            raise self.resize_error

    # StateStore
    def acquire_lease(self, cluster_id, owner, now, ttl_s):
        self.calls.append(("acquire", cluster_id, owner, ttl_s))
        self.lease_free_after -= 1
        return self.lease_free_after < 0

    def release_lease(self, cluster_id, owner):
        self.calls.append(("release", cluster_id, owner))
        if self.release_error:
            raise self.release_error

    def load_state(self, cluster_id):
        return ScalerState()

    def load_pause(self, cluster_id):
        return self.pause

    def save_pause(self, cluster_id, mark):  # pragma: no cover
        raise AssertionError

    def save(self, *a):  # pragma: no cover
        raise AssertionError

    # NoticeLedger
    def claim(self, cluster_id, key, now, ttl_s):
        self.calls.append(("claim", cluster_id, key, ttl_s))
        if self.claim_error:
            raise self.claim_error
        return self.claims.setdefault((cluster_id, key), now) == now

    def claimed_at(self, cluster_id, key, now):
        return self.claims.get((cluster_id, key))

    # Notifier
    def notify(self, notice):
        if self.notify_error:
            raise self.notify_error
        self.notices.append(notice)

    # PriceSource
    def usd_per_hour(self, cluster, now):
        if self.price_error:
            raise self.price_error
        return {"ig-b": 0.9, "ig-c": 0.1}

    def ports(self, prices: bool = True) -> Ports:
        return Ports(
            clusters=self,
            metrics=self,
            capacity=self,
            state=self,
            notifier=self,
            prices=self if prices else None,
            ledger=self,
        )


class Locator:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def locate(self, instance_id, managed_clusters):
        self.asked.append((instance_id, tuple(managed_clusters)))
        return self.lookup


HERE = Lookup(InstanceLocation("j-TEST", "ig-a", "i-0123456789abcdef0"))
C3 = cluster(
    g("ig-a", "r5.2xlarge", requested=3, usd=0.12),
    g("ig-b", "m5.4xlarge", requested=1, usd=0.05),  # cheapest as read, but the price source says 0.9
    g("ig-c", "r6g.2xlarge", requested=1, usd=0.5),  # ... and 0.1 for this one
)


def run(f: Fakes, lookup: Lookup = HERE, cfg: Config = CFG, prices: bool = True):
    return handle_spot_event(
        now=NOW,
        event=_event(),
        ports=f.ports(prices),
        locator=Locator(lookup),
        config=cfg,
        owner="me",
        lease_wait=LeaseWait(sleep=f.sleeps.append),
    )


def test_applies_with_fresh_prices_under_the_lease_and_notifies():
    f = Fakes(C3)
    res = run(f)
    assert res.outcome is Outcome.APPLIED
    assert f.calls == [
        ("acquire", "j-TEST", "me", CFG.lease_ttl_s),
        ("read", "j-TEST"),
        ("resize", "j-TEST", (("ig-a", 2), ("ig-c", 2))),  # the price source made ig-c the cheapest
        ("claim", "j-TEST", "spot-interruption-i-0123456789abcdef0", 6 * 3600),
        ("release", "j-TEST", "me"),
    ]
    assert [n.kind for n in f.notices] == ["interruption"]
    assert f.notices[0] == res.notice


def test_a_duplicate_event_changes_nothing_but_another_kind_for_the_same_instance_does():
    f = Fakes(C3)
    assert run(f).outcome is Outcome.APPLIED
    again = run(f)
    assert again.outcome is Outcome.DUPLICATE
    assert [c[0] for c in f.calls].count("resize") == 1
    assert len(f.notices) == 1
    assert f.calls[-1] == ("release", "j-TEST", "me")
    rebalance = handle_spot_event(
        now=NOW,
        event=_event(SpotEventKind.REBALANCE),
        ports=f.ports(),
        locator=Locator(HERE),
        config=CFG,
        owner="me",
    )
    assert rebalance.outcome is Outcome.APPLIED


def test_without_a_price_source_it_uses_the_prices_read_with_the_cluster():
    f = Fakes(C3)
    assert run(f, prices=False).plan.replacement.id == "ig-b"


def test_unmanaged_instance_is_ignored_without_touching_anything():
    f = Fakes(C3)
    res = run(f, Lookup(None, "i-0123456789abcdef0 is not an instance of a managed cluster (j-TEST)"))
    assert (res.outcome, res.reason.endswith("(j-TEST)")) == (Outcome.IGNORED, True)
    assert f.calls == []
    assert f.notices == []


def test_waits_for_the_scaler_lease_then_gives_up_with_lease_held():
    f = Fakes(C3, lease_free_after=2)
    assert run(f).outcome is Outcome.APPLIED
    assert f.sleeps == [1.0, 1.0]
    busy = Fakes(C3, lease_free_after=99)
    with pytest.raises(LeaseHeld):
        run(busy)
    assert [c[0] for c in busy.calls] == ["acquire"] * 5  # never read, never released what it does not hold


def test_a_refused_resize_is_reported_and_the_lease_released():
    f = Fakes(C3, resize_error=GroupBusy("ig-c is resizing"))
    res = run(f)
    assert res.outcome is Outcome.FAILED
    assert "GroupBusy" in res.reason
    assert "replacement FAILED" in f.notices[0].subject
    assert f.calls[-1] == ("release", "j-TEST", "me")


@pytest.mark.parametrize("error", [Throttled("slow down"), InvalidRequest("bad")])
def test_transient_errors_propagate_for_a_retry_others_are_reported(error):
    f = Fakes(C3, resize_error=error)
    if isinstance(error, Throttled):
        with pytest.raises(Throttled):
            run(f)
        assert f.notices == []
        assert not any(c[0] == "claim" for c in f.calls)  # not remembered: Lambda's retry handles it
    else:
        assert run(f).outcome is Outcome.FAILED
    assert f.calls[-1] == ("release", "j-TEST", "me")


def test_dry_run_notifies_and_does_not_resize():
    f = Fakes(C3)
    res = run(f, cfg=Config.from_mapping({"dry_run": True}))
    assert res.outcome is Outcome.DRY_RUN
    assert not any(c[0] == "resize" for c in f.calls)
    assert "would move" in f.notices[0].subject


def test_a_paused_cluster_moves_no_node_and_says_why():
    f = Fakes(C3, pause=PauseMark(at=NOW, by="cli:alice", why="upgrade"))
    res = run(f)
    assert res.outcome is Outcome.DRY_RUN
    assert not any(c[0] == "resize" for c in f.calls)
    assert res.reason.startswith("paused by an operator (cli:alice since")
    [notice] = f.notices
    assert "would move" in notice.subject
    assert "(paused by an operator (cli:alice since 2026-03-02 12:00:30 UTC: upgrade): nothing changed)" in (
        notice.body
    )
    assert f.calls[-1] == ("release", "j-TEST", "me")


def test_left_to_emr_is_still_told_to_operators():
    f = Fakes(cluster(g("ig-a", "r5.2xlarge", requested=2)))
    res = run(f)
    assert res.outcome is Outcome.LEFT_TO_EMR
    assert not any(c[0] == "resize" for c in f.calls)
    assert f.notices[0].subject.endswith("left to EMR")


def test_with_prices_only_replaces_known_groups():
    c = with_prices(C3, {"ig-c": 0.42})
    assert [x.usd_per_hour for x in c.task_groups] == [0.12, 0.05, 0.42]
    assert replace(C3, groups=C3.groups) == C3


def test_after_the_move_no_bookkeeping_failure_makes_lambda_retry_it():
    # the ledger, SNS and the lease release all fail: the move stands, is reported, and nothing raises
    f = Fakes(
        C3,
        claim_error=TransientAwsError("PutItem(notice): 500"),
        notify_error=TransientAwsError("Publish: 500"),
        release_error=TransientAwsError("DeleteItem(lease): 500"),
    )
    res = run(f)
    assert res.outcome is Outcome.APPLIED
    assert res.notify_failures == 1
    assert [c[0] for c in f.calls] == ["acquire", "read", "resize", "claim", "release"]


def test_a_failing_price_source_falls_back_to_the_prices_read_with_the_cluster():
    f = Fakes(C3, price_error=TransientAwsError("DescribeSpotPriceHistory: 500"))
    assert run(f).plan.replacement.id == "ig-b"  # ig-b is cheapest at the prices read with the cluster


def test_the_cluster_found_is_handled_with_its_own_settings():
    # located among every managed cluster with the base settings, then handled with the cluster's (a tagged
    # cluster's profile): here a profile in dry run moves nothing
    f = Fakes(C3)
    asked: list[str] = []

    def config_for(cluster_id: str) -> Config:
        asked.append(cluster_id)
        return Config.from_mapping({"dry_run": True})

    res = handle_spot_event(
        now=NOW,
        event=_event(),
        ports=f.ports(),
        locator=Locator(HERE),
        config=CFG,
        owner="me",
        lease_wait=LeaseWait(sleep=f.sleeps.append),
        config_for=config_for,
    )
    assert asked == ["j-TEST"]
    assert res.outcome is Outcome.DRY_RUN
    assert not any(c[0] == "resize" for c in f.calls)
