"""service.run_once with in-memory ports: every outcome, the order record-before-notify, the lease on every
path, and once-only notices."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sparkscale.config import Config
from sparkscale.errors import GroupBusy, InvalidRequest, SparkscaleError, Throttled, TransientAwsError
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.policy.model import (
    ClusterState,
    Direction,
    GroupStatus,
    GroupTarget,
    Market,
    MetricsSnapshot,
    Sample,
    Signal,
)
from sparkscale.policy.reasons import ReasonCode
from sparkscale.ports import PauseMark, Ports
from sparkscale.usecases.scale import needs_evaluation, reconcile_once, run_once
from sparkscale.usecases.shell import Outcome

from tests.scale.shell_support import T0, cluster, group, pressure

CID = "j-TEST0001"


def on_target(now: Any, *, task_nodes: int = 2) -> MetricsSnapshot:
    """YARN at its 85 % target of what World's cluster runs: CORE 2 x 24 GiB + task_nodes x 48 GiB usable.
    The policy measures against the cluster read, not MemoryTotalMB. 2 nodes: 144 GiB, 122.4 GiB allocated."""
    total = (48.0 + 48.0 * task_nodes) * 1024.0
    alloc = 0.85 * total
    at = now - timedelta(seconds=120)
    vals = {
        Signal.MEMORY_TOTAL_MB: total,
        Signal.MEMORY_ALLOCATED_MB: alloc,
        Signal.MEMORY_AVAILABLE_MB: total - alloc,
        Signal.YARN_MEMORY_AVAILABLE_PCT: 15.0,
        Signal.CONTAINER_PENDING: 0.0,
        Signal.APPS_RUNNING: 2.0,
        Signal.APPS_PENDING: 0.0,
    }
    return MetricsSnapshot({sig: Sample(v, at) for sig, v in vals.items()})


# the burst rule off: these tests pin the shell (record, notify, lease) around a whole shortfall at once
CFG = Config.from_mapping(
    {"clusters": [CID], "max_task_nodes": 8, "group_max_nodes": 8, "burst_first_step_nodes": 0}
)


class World:
    def __init__(self, *, task_requested: int = 2, status: GroupStatus = GroupStatus.RUNNING) -> None:
        self.emr = FakeEmr(cluster(CID, group("ig-TASK1", requested=task_requested, status=status)))
        self.metrics = FixedMetrics({CID: pressure(T0)})
        self.store = InMemoryStateStore()
        self.notifier = CollectingNotifier()

    def ports(self, **over: Any) -> Ports:
        base = Ports(self.emr, self.metrics, self.emr, self.store, self.notifier, ledger=self.store)
        return replace(base, **over)

    def run(self, *, at: Any = T0, config: Config = CFG, owner: str = "me", **over: Any) -> Any:
        return run_once(now=at, cluster_id=CID, ports=self.ports(**over), config=config, owner=owner)


class Raising:
    """A port whose every method raises `exc` (and counts calls)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        def fail(*_a: Any, **_k: Any) -> Any:
            self.calls += 1
            raise self.exc

        return fail


def test_applied_scale_out_is_recorded_then_notified_and_the_lease_released() -> None:
    w = World()
    r = w.run()
    assert r.outcome == Outcome.APPLIED
    assert r.scaling_actions == 1
    assert r.decision is not None
    assert r.decision.direction is Direction.OUT
    [(cid, changes)] = w.emr.resizes
    assert cid == CID
    assert [(t.group_id, t.current) for t in changes] == [("ig-TASK1", 2)]
    assert 2 < changes[0].target <= 8
    assert r.desired_task_nodes == changes[0].target
    assert (r.running_task_nodes, r.requested_task_nodes) == (2, 2)
    assert w.store.states[CID].last_scale_out_at == T0  # cooldown starts: the action was applied
    assert [d.direction for _, d in w.store.audit[CID]] == [Direction.OUT]
    assert CID not in w.store.leases
    [notice] = w.notifier.notices
    assert notice.kind == "action"
    assert notice.subject.startswith(f"sparkscale {CID}: scale out 2 -> {changes[0].target} TASK nodes")
    assert "ig-TASK1" in notice.body
    assert "Why:" in notice.body


def test_a_second_wake_up_in_the_cooldown_does_not_scale_again() -> None:
    w = World()
    assert w.run().outcome == Outcome.APPLIED
    r = w.run(at=T0 + timedelta(seconds=30), owner="other")
    assert r.outcome == Outcome.HOLD
    assert len(w.emr.resizes) == 1


def test_lease_held_reads_nothing_and_changes_nothing() -> None:
    w = World()
    assert w.store.acquire_lease(CID, "someone-else", T0, 90)
    r = w.run()
    assert (r.outcome, r.detail) == (Outcome.LEASE_HELD, "evaluation in progress")
    assert w.metrics.calls == 0
    assert w.emr.resizes == []
    assert w.store.leases[CID][0] == "someone-else"  # not released by us


def test_hold_records_state_and_sends_nothing() -> None:
    w = World()
    w.metrics.snapshots[CID] = on_target(T0)
    r = w.run()
    assert r.outcome == Outcome.HOLD
    assert r.scaling_actions == 0
    assert w.emr.resizes == []
    assert CID in w.store.states
    assert w.notifier.notices == []


def test_cluster_gone_is_notified_once_and_then_no_longer_read() -> None:
    w = World()
    w.emr.clusters[CID] = replace(w.emr.clusters[CID], state=ClusterState.TERMINATED)
    r = w.run()
    assert r.outcome == Outcome.CLUSTER_GONE
    [notice] = w.notifier.notices
    assert notice.kind == "cluster_gone"
    assert "no longer managed" in notice.subject
    reader = Raising(AssertionError("must not be read"))
    r2 = w.run(at=T0 + timedelta(days=2), clusters=reader)
    assert r2.outcome == Outcome.CLUSTER_GONE
    assert reader.calls == 0
    assert len(w.notifier.notices) == 1
    assert w.emr.resizes == []


def test_a_gone_clusters_notice_says_what_the_operator_has_to_do() -> None:
    # in the static `clusters` setting: the operator removes it; managed by tag: discovery releases it
    static, tagged = World(), World()
    for w in (static, tagged):
        w.emr.clusters[CID] = replace(w.emr.clusters[CID], state=ClusterState.TERMINATED)
    static.run()
    tagged.run(config=replace(CFG, clusters=[]))
    assert "Remove it from the `clusters` setting" in static.notifier.notices[0].body
    assert "managed by tag" in tagged.notifier.notices[0].body
    assert "`clusters` setting" not in tagged.notifier.notices[0].body


def test_group_busy_holds_and_does_not_start_a_cooldown() -> None:
    w = World()
    r = w.run(capacity=Raising(GroupBusy("instance group ig-TASK1 is RESIZING")))
    assert r.outcome == Outcome.GROUP_BUSY
    assert r.decision is not None
    assert r.decision.reason_texts[-1].startswith("Not applied: instance group ig-TASK1 is RESIZING")
    assert w.store.states[CID].last_scale_out_at is None  # nothing happened, so no cooldown
    assert w.notifier.notices == []
    assert CID not in w.store.leases
    assert w.run(at=T0 + timedelta(seconds=60)).outcome == Outcome.APPLIED  # next evaluation retries


def test_throttled_reads_give_up_cleanly() -> None:
    w = World()
    r = w.run(metrics=Raising(Throttled("GetMetricData: Throttling")))
    assert r.outcome == Outcome.THROTTLED
    assert r.failed
    assert CID not in w.store.states
    assert CID not in w.store.leases


def test_invalid_request_is_notified_at_most_hourly_and_never_retried_in_a_storm() -> None:
    w = World()
    writer = Raising(InvalidRequest("ModifyInstanceGroups: ValidationException: bad count"))
    r = w.run(capacity=writer)
    assert r.outcome == Outcome.INVALID
    [notice] = w.notifier.notices
    assert notice.kind == "failure"
    assert "ValidationException" in notice.body
    w.run(at=T0 + timedelta(minutes=10), capacity=writer)
    assert len(w.notifier.notices) == 1  # the same failure again within the hour: no second email
    w.metrics.snapshots[CID] = pressure(T0 + timedelta(minutes=61))  # fresh data an hour later
    w.run(at=T0 + timedelta(minutes=61), capacity=writer)
    assert len(w.notifier.notices) == 2
    assert writer.calls == 3  # one attempt per evaluation, no retry loop


def test_sns_failure_never_loses_the_decision_record() -> None:
    w = World()
    w.notifier.fail_with = RuntimeError("SNS is down")
    r = w.run()
    assert r.outcome == Outcome.APPLIED
    assert (r.notices_sent, r.notify_failures) == (0, 1)
    assert [d.direction for _, d in w.store.audit[CID]] == [Direction.OUT]
    assert w.store.states[CID].last_scale_out_at == T0


def test_transient_errors_raise_release_the_lease_and_tell_operators() -> None:
    w = World()
    with pytest.raises(TransientAwsError):
        w.run(metrics=Raising(TransientAwsError("GetMetricData: InternalError")))
    assert CID not in w.store.leases
    assert [n.kind for n in w.notifier.notices] == ["failure"]


def test_a_failing_lease_release_does_not_mask_the_outcome() -> None:
    w = World()

    class BadRelease(InMemoryStateStore):
        def release_lease(self, cluster_id: str, owner: str) -> None:
            raise SparkscaleError("DeleteItem: boom")

    store = BadRelease()
    assert w.run(state=store, ledger=store).outcome == Outcome.APPLIED


def test_dry_run_never_resizes_and_is_notified_once_per_proposal() -> None:
    w = World()
    cfg = replace(CFG, dry_run=True)
    r = w.run(config=cfg)
    assert r.outcome == Outcome.DRY_RUN
    assert w.emr.resizes == []
    [notice] = w.notifier.notices
    assert notice.kind == "dry_run"
    assert notice.subject.startswith("[DRY RUN]")
    assert notice.body.startswith("DRY RUN - nothing was changed.")
    assert w.store.states[CID].last_scale_out_at is None
    w.run(at=T0 + timedelta(minutes=1), config=cfg)
    assert len(w.notifier.notices) == 1


def test_a_paused_cluster_decides_and_notifies_but_never_resizes_until_resumed() -> None:
    w = World()
    w.store.save_pause(CID, PauseMark(at=T0 - timedelta(hours=1), by="cli:alice", why="maintenance"))
    r = w.run()
    assert r.outcome == Outcome.DRY_RUN
    assert w.emr.resizes == []
    assert r.decision is not None
    assert r.decision.direction is Direction.OUT
    assert r.decision.dry_run
    assert r.decision.reason_codes[-1] is ReasonCode.PAUSED
    assert "Paused by an operator (cli:alice since" in r.decision.reason_texts[-1]
    assert "maintenance" in r.decision.reason_texts[-1]
    [(_, recorded)] = w.store.audit[CID]
    assert recorded.dry_run
    assert w.store.states[CID].last_scale_out_at is None  # nothing done: no cooldown
    [notice] = w.notifier.notices
    assert notice.kind == "dry_run"
    assert notice.subject.startswith(f"[PAUSED] sparkscale {CID}: would scale out")
    assert notice.body.startswith("PAUSED by an operator - nothing was changed.")
    assert "paused by an operator (cli:alice" in notice.body.lower()

    w.store.save_pause(CID, None)  # resumed: the next evaluation acts
    assert w.run(at=T0 + timedelta(minutes=1)).outcome == Outcome.APPLIED
    assert len(w.emr.resizes) == 1


def test_a_paused_clusters_holds_are_recorded_as_dry_runs_without_a_pause_reason() -> None:
    w = World()
    w.metrics.snapshots[CID] = on_target(T0)
    w.store.save_pause(CID, PauseMark(at=T0, by="cli:bob"))
    r = w.run()
    assert r.outcome == Outcome.HOLD
    assert r.decision is not None
    assert r.decision.dry_run
    assert ReasonCode.PAUSED not in r.decision.reason_codes
    assert w.notifier.notices == []


def test_at_max_under_pressure_is_notified_at_most_hourly() -> None:
    # 8 nodes (the maximum): 48 + 8 x 48 = 432 GiB counted, all of it allocated, and 40 containers wait:
    # pressure (the shared `pressure` snapshot says 78 GiB allocated, a small share of 432 GiB)
    w = World(task_requested=8)
    full = on_target(T0, task_nodes=8)
    w.metrics.snapshots[CID] = MetricsSnapshot(
        {
            **full.samples,
            Signal.MEMORY_ALLOCATED_MB: full.samples[Signal.MEMORY_TOTAL_MB],
            Signal.CONTAINER_PENDING: Sample(40.0, full.samples[Signal.MEMORY_TOTAL_MB].at),
        }
    )
    r = w.run()
    assert r.decision is not None
    assert r.decision.at_max_under_pressure
    assert [n.kind for n in w.notifier.notices] == ["at_max"]
    assert "still under pressure" in w.notifier.notices[0].subject
    w.run(at=T0 + timedelta(minutes=5))
    assert len(w.notifier.notices) == 1


def test_prices_replace_the_on_demand_table_prices_of_task_groups() -> None:
    w = World()

    class Prices:
        def usd_per_hour(self, cluster: Any, now: Any) -> dict[str, float]:
            return {"ig-TASK1": 0.123, "ig-CORE": 9.0}

    r = w.run(prices=Prices())
    assert r.decision is not None
    assert r.decision.targets[0].usd_per_hour_per_node == 0.123


def test_no_ledger_still_works() -> None:
    w = World()
    assert w.run(ledger=None).outcome == Outcome.APPLIED


def test_reconcile_skips_a_cluster_at_its_minimum_without_an_alarm() -> None:
    w = World(task_requested=0)
    r = reconcile_once(now=T0, cluster_id=CID, ports=w.ports(), config=CFG, owner="r", in_alarm=False)
    assert r.outcome == Outcome.SKIPPED
    assert w.metrics.calls == 0
    r = reconcile_once(now=T0, cluster_id=CID, ports=w.ports(), config=CFG, owner="r", in_alarm=True)
    assert r.outcome == Outcome.APPLIED


def test_reconcile_evaluates_a_cluster_above_its_minimum() -> None:
    w = World(task_requested=3)
    w.metrics.snapshots[CID] = on_target(T0, task_nodes=3)
    r = reconcile_once(now=T0, cluster_id=CID, ports=w.ports(), config=CFG, owner="r", in_alarm=False)
    assert r.outcome != Outcome.SKIPPED
    assert w.metrics.calls == 1


@pytest.mark.parametrize(
    ("requested", "cfg", "expected"),
    [
        (0, {}, False),  # min_task_nodes 0, group min 0, at 0
        (1, {}, True),  # above
        (2, {"min_task_nodes": 2}, False),  # at the total minimum
        (1, {"min_task_nodes": 2}, True),  # below it
        (3, {"group_min_nodes": 3}, False),  # at the group's minimum
        (2, {"group_min_nodes": 3}, True),  # below the group's minimum
    ],
)
def test_needs_evaluation(requested: int, cfg: dict[str, int], expected: bool) -> None:
    c = cluster(CID, group("ig-TASK1", requested=requested))
    assert needs_evaluation(c, Config.from_mapping(cfg)) is expected


def test_changes_passed_to_the_writer_are_task_groups_only() -> None:
    w = World()
    w.run()
    [(_, changes)] = w.emr.resizes
    assert all(isinstance(t, GroupTarget) and t.market is Market.SPOT for t in changes)
    assert {t.group_id for t in changes} <= {"ig-TASK1"}
