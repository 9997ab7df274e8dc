"""Fault injection on every port call of every use case (issue #18 item 6): never lose a record, never act
twice, always release the lease.

Each scenario is first run without faults to list its calls ("state.put_intent", the n-th of its kind, ...).
Then, for every call and every fault that call can meet (tests/reliability/faults.py: throttling, a 5xx
before and after the call took effect, a lost condition, SNS down), a fresh world runs the use case with that
one fault (an error fails the invocation, as in Lambda), then once more without faults (the Lambda/SNS retry,
the redelivered event, or the next reconcile, after the first lease expired), and asserts:

- no double action: EMR received exactly one resize that took effect, at the decision's targets;
- no lost record: exactly one audit record of the applied decision and its cooldown in the state (scale), the
  event marked handled (spot), the capacity error kept (EMR events), the gone mark (termination); no intent
  left pending;
- the operator notice of the action at most once, and exactly once unless SNS was down or the ledger said it
  had gone out;
- the lease released.

A second family injects each fault into the retry that settles an ambiguous resize (the first attempt's
ModifyInstanceGroups answered 5xx after EMR applied it), then retries once more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sparkscale import notices
from sparkscale.config import Config
from sparkscale.errors import SparkscaleError
from sparkscale.events.emr import parse_emr_event
from sparkscale.events.spot import SpotEvent, SpotEventKind
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    Decision,
    Direction,
    GroupTarget,
    Market,
    ReasonCode,
    ScalerState,
)
from sparkscale.policy.reasons import Reason
from sparkscale.ports import INTENT_SCALE, InstanceLocation, Intent, Lookup, Notice, Ports
from sparkscale.usecases.emr_events import handle_emr_event
from sparkscale.usecases.scale import needs_evaluation, reconcile_once, run_once
from sparkscale.usecases.shell import KEY_CLUSTER_GONE, LeaseWait
from sparkscale.usecases.spot_events import dedup_key, handle_spot_event

from tests.emr_events.test_emr_events_usecase import CHEAP, NEXT, OD, sample, stuck
from tests.reliability.faults import Fault, Faulty, Plan, applicable
from tests.scale.shell_support import T0, cluster, group, pressure

CID = "j-TEST0001"
# the burst rule off: a state write lost to a fault would start a new burst (one more first-step node); these
# tests pin one resize per ambiguous settle of a whole shortfall bought at once
CFG = Config.from_mapping({"clusters": [CID], "max_task_nodes": 20, "burst_first_step_nodes": 0})
RETRY_AFTER = timedelta(seconds=CFG.lease_ttl_s + 1)  # a failed release: the lease has expired by then
NO_WAIT = LeaseWait(attempts=1, wait_s=0.0, sleep=lambda _s: None)


def silent_allowed(w: World) -> bool:
    """May the action's notice be missing? When SNS was down (logged and counted), or the ledger said it
    had gone out already (a lost condition on its claim). Never may it be doubled."""
    at, fault = w.injected
    return fault is Fault.SNS_DOWN or (fault is Fault.CONFLICT and at[0] == "ledger.claim")


def repeat_allowed(w: World) -> bool:
    """May a repeatable notice (fallback: at most hourly per group) go out twice? Only when the ledger
    could not take its claim: the shell then sends anyway (a repeated notice rather than a lost one)."""
    at, fault = w.injected
    return at[0] == "ledger.claim" and fault in (Fault.THROTTLE, Fault.BEFORE_5XX)


@dataclass
class World:
    """The in-memory ports of one cluster, each behind a Faulty wrapper sharing one Plan."""

    emr: FakeEmr
    metrics: FixedMetrics = field(default_factory=FixedMetrics)
    store: InMemoryStateStore = field(default_factory=InMemoryStateStore)
    notifier: CollectingNotifier = field(default_factory=CollectingNotifier)
    plan: Plan = field(default_factory=Plan)
    injected: tuple[tuple[str, int], Fault | None] = (("", 0), None)  # the one fault this world met

    def ports(self) -> Ports:
        p = self.plan
        return Ports(
            clusters=Faulty(self.emr, "clusters", p),
            metrics=Faulty(self.metrics, "metrics", p),
            capacity=Faulty(self.emr, "capacity", p),
            state=Faulty(self.store, "state", p),
            notifier=Faulty(self.notifier, "notifier", p),
            ledger=Faulty(self.store, "ledger", p),
        )

    def kinds(self, kind: str) -> int:
        return sum(1 for n in self.notifier.notices if n.kind == kind)

    def settled(self) -> None:
        """Nothing pending, nothing held."""
        assert self.store.intents == {}
        assert self.store.leases == {}


def attempt(run: Callable[[World, datetime, str], Any], w: World, at: datetime, owner: str) -> None:
    with contextlib.suppress(SparkscaleError):  # the invocation fails; Lambda, SNS or the schedule retries
        run(w, at, owner)


# --- the scenarios ------------------------------------------------------------------------------------------
def scale_world() -> World:
    w = World(FakeEmr(cluster(CID, group("ig-TASK1", requested=1))))
    w.metrics.snapshots[CID] = pressure(T0)
    return w


def run_scale(w: World, at: datetime, owner: str) -> None:
    run_once(now=at, cluster_id=CID, ports=w.ports(), config=CFG, owner=owner)


def run_reconcile(w: World, at: datetime, owner: str) -> None:
    ports = w.ports()
    reconcile_once(now=at, cluster_id=CID, ports=ports, config=CFG, owner=owner, in_alarm=False)


def check_scale(w: World) -> None:
    assert len(w.emr.resizes) == 1, w.emr.resizes
    [(_, changes)] = w.emr.resizes
    requested = {g.id: g.requested for g in w.emr.read_cluster(CID).groups}
    assert all(requested[t.group_id] == t.target for t in changes)
    applied = [
        d
        for _, d in w.store.audit.get(CID, [])
        if d.is_action and ReasonCode.NOT_APPLIED not in d.reason_codes
    ]
    assert len(applied) == 1, applied
    assert applied[0].changes == changes
    assert w.store.states[CID].last_scale_out_at is not None  # the cooldown
    actions = w.kinds(notices.KIND_ACTION)
    assert actions <= 1
    assert actions == 1 or silent_allowed(w)
    w.settled()


SPOT_CID = "j-TEST"
SPOT_CFG = Config.from_mapping({"clusters": [SPOT_CID]})
INSTANCE = "i-0123456789abcdef0"
SPOT_EVENT = SpotEvent(SpotEventKind.INTERRUPTION, INSTANCE, T0, "us-east-1", "ev-1", "terminate")


class Locator:
    def locate(self, instance_id: str, managed_clusters: Any) -> Lookup:
        return Lookup(InstanceLocation(SPOT_CID, "ig-a", instance_id))


def spot_world() -> World:
    c = cluster(
        SPOT_CID,
        group("ig-a", itype="r5.2xlarge", requested=4, usd=0.12, memory_gib=64.0),
        group("ig-c", itype="r6g.2xlarge", requested=1, usd=0.10, memory_gib=64.0),
    )
    return World(FakeEmr(c))


def run_spot(w: World, at: datetime, owner: str) -> None:
    handle_spot_event(
        now=at,
        event=SPOT_EVENT,
        ports=w.ports(),
        locator=Locator(),
        config=SPOT_CFG,
        owner=owner,
        lease_wait=NO_WAIT,
    )


def check_spot(w: World) -> None:
    assert len(w.emr.resizes) == 1, w.emr.resizes  # one node moved, never a second
    assert w.store.claimed_at(SPOT_CID, dedup_key(SPOT_EVENT), T0 + RETRY_AFTER) is not None
    moved = w.kinds(notices.KIND_INTERRUPTION)
    assert moved <= 1
    assert moved == 1 or silent_allowed(w)
    w.settled()


def emr_world() -> World:
    c: Cluster = cluster(
        CID,
        group(CHEAP, itype="r5.4xlarge", memory_gib=128.0, requested=1, usd=0.30),
        group(NEXT, itype="r5.2xlarge", memory_gib=64.0, requested=1, usd=0.20),
        group(OD, itype="m5.2xlarge", memory_gib=32.0, requested=0, usd=0.384, market=Market.ON_DEMAND),
    )
    w = World(FakeEmr(c))
    w.metrics.snapshots[CID] = pressure(T0)
    return w


def run_capacity_event(w: World, at: datetime, owner: str) -> None:
    event = parse_emr_event(stuck(), managed_clusters=[CID])
    handle_emr_event(now=at, event=event, ports=w.ports(), config=CFG, owner=owner, lease_wait=NO_WAIT)


def check_capacity_event(w: World) -> None:
    check_scale_effects(w)
    assert CHEAP in w.store.states[CID].capacity_errors
    fallback, actions = w.kinds(notices.KIND_FALLBACK), w.kinds(notices.KIND_ACTION)
    assert fallback <= (2 if repeat_allowed(w) else 1)
    assert actions <= 1
    assert fallback + actions >= 1 or silent_allowed(w)
    w.settled()


def check_scale_effects(w: World) -> None:
    assert len(w.emr.resizes) == 1, w.emr.resizes
    applied = [
        d
        for _, d in w.store.audit.get(CID, [])
        if d.is_action and ReasonCode.NOT_APPLIED not in d.reason_codes
    ]
    assert len(applied) == 1


def terminated_world(state: ClusterState) -> World:
    return World(FakeEmr(cluster(CID, group("ig-TASK1"), state=state)))


def run_terminated(w: World, at: datetime, owner: str) -> None:
    raw = sample("EMR_Cluster_State_Change_TERMINATED.json")
    raw["detail"]["clusterId"] = CID
    event = parse_emr_event(raw, managed_clusters=[CID])
    handle_emr_event(now=at, event=event, ports=w.ports(), config=CFG, owner=owner, lease_wait=NO_WAIT)


def check_gone(w: World) -> None:
    assert w.store.claimed_at(CID, KEY_CLUSTER_GONE, T0 + RETRY_AFTER) is not None
    gone = w.kinds(notices.KIND_CLUSTER_GONE)
    assert gone <= 1
    assert gone == 1 or silent_allowed(w)
    assert w.emr.resizes == []
    w.settled()


def check_not_gone(w: World) -> None:
    assert w.store.claimed_at(CID, KEY_CLUSTER_GONE, T0 + RETRY_AFTER) is None
    assert w.kinds(notices.KIND_CLUSTER_GONE) == 0
    assert w.emr.resizes == []
    w.settled()


@dataclass(frozen=True)
class Scenario:
    name: str
    world: Callable[[], World]
    run: Callable[[World, datetime, str], Any]
    check: Callable[[World], None]


SCENARIOS = (
    Scenario("scale.run_once", scale_world, run_scale, check_scale),
    Scenario("scale.reconcile_once", scale_world, run_reconcile, check_scale),
    Scenario("spot_events", spot_world, run_spot, check_spot),
    Scenario("emr_events.capacity", emr_world, run_capacity_event, check_capacity_event),
    Scenario(
        "emr_events.terminated", lambda: terminated_world(ClusterState.TERMINATED), run_terminated, check_gone
    ),
    Scenario(
        "emr_events.terminated_unconfirmed",
        lambda: terminated_world(ClusterState.RUNNING),
        run_terminated,
        check_not_gone,
    ),
)


def _calls(run: Callable[[World], None], world: World) -> list[tuple[str, int]]:
    """Every port call of a fault-free run, as (call, n-th of its kind)."""
    run(world)
    seen: dict[str, int] = {}
    out = []
    for call in world.plan.calls:
        seen[call] = seen.get(call, 0) + 1
        out.append((call, seen[call]))
    return out


def _first_attempt_cases() -> list[Any]:
    cases = []
    for sc in SCENARIOS:
        for call, nth in _calls(lambda w, sc=sc: sc.run(w, T0, "first"), sc.world()):
            cases += [
                pytest.param(sc, (call, nth), f, id=f"{sc.name}:{call}#{nth}:{f}") for f in applicable(call)
            ]
    return cases


FIRST = _first_attempt_cases()


@pytest.mark.parametrize(("scenario", "at", "fault"), FIRST)
def test_one_fault_in_the_first_attempt_then_a_retry(
    scenario: Scenario, at: tuple[str, int], fault: Fault
) -> None:
    w = scenario.world()
    w.plan.at, w.plan.fault, w.injected = at, fault, (at, fault)
    attempt(scenario.run, w, T0, "first")
    assert w.plan.fired
    if at[0] != "state.release_lease":
        assert w.store.leases == {}  # released on every path (a failed release expires by itself)
    w.plan.at = None
    attempt(scenario.run, w, T0 + RETRY_AFTER, "retry")
    scenario.check(w)


# --- faults while settling an ambiguous resize ------------------------------------------------------------
AMBIGUOUS = [sc for sc in SCENARIOS if sc.name in ("scale.run_once", "spot_events", "emr_events.capacity")]


def _ambiguous(sc: Scenario) -> World:
    """A world whose first attempt's resize took effect and answered 5xx: the intent is pending."""
    w = sc.world()
    w.plan.at, w.plan.fault = ("capacity.resize", 1), Fault.AFTER_5XX
    attempt(sc.run, w, T0, "first")
    assert len(w.emr.resizes) == 1
    assert CID in w.store.intents or SPOT_CID in w.store.intents
    w.plan.at = None
    w.plan.calls.clear()
    return w


def _settling_cases() -> list[Any]:
    cases = []
    for sc in AMBIGUOUS:
        w = _ambiguous(sc)
        start = len(w.plan.calls)
        sc.run(w, T0 + RETRY_AFTER, "retry")
        seen: dict[str, int] = {}
        for call in w.plan.calls[start:]:
            seen[call] = seen.get(call, 0) + 1
            cases += [
                pytest.param(sc, (call, seen[call]), f, id=f"{sc.name}:settle:{call}#{seen[call]}:{f}")
                for f in applicable(call)
            ]
    return cases


SETTLING = _settling_cases()


@pytest.mark.parametrize(("scenario", "at", "fault"), SETTLING)
def test_one_fault_while_settling_an_ambiguous_resize(
    scenario: Scenario, at: tuple[str, int], fault: Fault
) -> None:
    w = _ambiguous(scenario)
    w.plan.at, w.plan.fault, w.injected = at, fault, (at, fault)
    attempt(scenario.run, w, T0 + RETRY_AFTER, "retry")
    assert w.plan.fired
    w.plan.at = None
    attempt(scenario.run, w, T0 + 2 * RETRY_AFTER, "again")
    scenario.check(w)


def test_the_fault_matrix_is_not_empty_and_covers_every_use_case() -> None:
    names = {p.values[0].name for p in FIRST}
    assert names == {sc.name for sc in SCENARIOS}
    calls = {p.values[1][0] for p in FIRST}
    assert {"capacity.resize", "state.put_intent", "state.record_intent", "notifier.notify"} <= calls
    assert {"state.acquire_lease", "state.release_lease", "clusters.read_cluster"} <= calls
    print(f"fault cases: {len(FIRST)} first-attempt + {len(SETTLING)} while settling")


def test_a_5xx_after_the_resize_is_settled_once_by_the_retry() -> None:
    """The issue's case, spelled out: ModifyInstanceGroups applied, the answer lost."""
    w = _ambiguous(SCENARIOS[0])
    assert w.store.audit.get(CID, []) == []  # nothing recorded yet
    assert w.notifier.notices == [] or {n.kind for n in w.notifier.notices} == {notices.KIND_FAILURE}
    run_once(now=T0 + RETRY_AFTER, cluster_id=CID, ports=w.ports(), config=CFG, owner="retry")
    check_scale(w)
    second = run_once(now=T0 + 2 * RETRY_AFTER, cluster_id=CID, ports=w.ports(), config=CFG, owner="again")
    assert len(w.emr.resizes) == 1  # the cooldown holds it
    assert second.scaling_actions == 0


def test_an_intent_emr_did_not_apply_is_dropped_and_decided_afresh() -> None:
    w = scale_world()
    w.plan.at, w.plan.fault = ("capacity.resize", 1), Fault.BEFORE_5XX
    attempt(run_scale, w, T0, "first")
    assert w.emr.resizes == []
    assert CID in w.store.intents  # ambiguous to the scaler: left for the retry
    retry = run_once(now=T0 + RETRY_AFTER, cluster_id=CID, ports=w.ports(), config=CFG, owner="retry")
    assert retry.outcome == "applied"
    check_scale(w)


def test_spot_redelivery_after_a_lost_answer_moves_no_second_node() -> None:
    w = _ambiguous(SCENARIOS[2])
    run_spot(w, T0 + RETRY_AFTER, "redelivered")
    run_spot(w, T0 + 2 * RETRY_AFTER, "redelivered-again")
    check_spot(w)


def test_a_capacity_error_recorded_while_an_intent_was_pending_is_kept() -> None:
    w = _ambiguous(SCENARIOS[0])
    w.store.record_capacity_error(CID, "ig-TASK1", T0)
    run_scale(w, T0 + RETRY_AFTER, "retry")
    assert w.store.states[CID].capacity_errors == {"ig-TASK1": T0}
    assert w.store.states[CID].last_scale_out_at is not None


def test_reconcile_settles_a_pending_intent_even_at_the_minimum() -> None:
    """A scale-in to the minimum applied with its answer lost: the schedule would skip the cluster (at its
    minimum, no alarm), so a pending intent makes it evaluate, and the record and notice are not lost."""
    cfg = Config.from_mapping({"clusters": [CID], "min_task_nodes": 1})
    w = World(FakeEmr(cluster(CID, group("ig-TASK1", requested=1))))
    [target] = [
        GroupTarget("ig-TASK1", "ig-TASK1", "r5.2xlarge", Market.SPOT, 3, 1, 0.15),
    ]
    decision = Decision(CID, T0, Direction.IN, (target,), (Reason(ReasonCode.NEED, "idle"),), dry_run=False)
    notice = Notice(notices.KIND_ACTION, CID, "scale in", "body")
    state = ScalerState(last_scale_in_at=T0)
    intent = Intent("i-1", INTENT_SCALE, T0, "first", (target,), notice, decision, state)
    assert w.store.put_intent(CID, intent)
    assert not needs_evaluation(w.emr.read_cluster(CID), cfg)
    r = reconcile_once(
        now=T0 + RETRY_AFTER, cluster_id=CID, ports=w.ports(), config=cfg, owner="r", in_alarm=False
    )
    assert r.outcome == "applied"
    assert [d for _, d in w.store.audit[CID]] == [decision]
    assert w.store.states[CID].last_scale_in_at == T0
    assert [n.subject for n in w.notifier.notices] == ["scale in"]
    w.settled()
