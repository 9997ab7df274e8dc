"""decide(): one behaviour per test, expected numbers worked out in the comments.

Unless a test says otherwise: CORE 2 x r5.2xlarge (48 GiB usable each) and TASK group ig-a, SPOT r5.2xlarge,
48 GiB usable per node, $0.16/h; YARN total = CORE + running TASK nodes x 48 GiB.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from policy_builders import NOW, ago, cfg, cluster, group, metrics, targets, yarn
from sparkscale.policy import (
    METRICS_MISSING,
    ClusterState,
    Direction,
    GroupStatus,
    Market,
    Recommendation,
    ScalerState,
    Signal,
    decide,
)


def run(c, m, *, config=None, state=None):
    return decide(now=NOW, cluster=c, metrics=m, config=config or cfg(), state=state or ScalerState())


def a(requested=2, **kw):
    return group("ig-a", requested=requested, **kw)


# --- scale out in proportion to pressure --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "used", "target"),
    [
        # 80 % / 75 % = 1.067, inside the 10 % deadband: hold
        ({}, 80, 2),
        # 83 %: 1.107 > 1.1; allocated 159.36 GiB / 0.75 = 212.48 wanted, 192 have: +20.48 -> 1 node
        ({}, 83, 3),
        # 90 %: 172.8 / 0.75 = 230.4 wanted: +38.4 GiB -> 1 node of 48 GiB
        ({}, 90, 3),
        # 99 %: 190.08 / 0.75 = 253.44: +61.44 GiB -> 2 nodes (96 GiB)
        ({}, 99, 4),
        # 100 % + 20 pending x 4 GiB (default size): (192 + 80) / 0.75 = 362.67: +170.67 -> 4 nodes (192 GiB)
        ({"ContainerPending": 20}, 100, 6),
    ],
)
def test_scale_out_in_proportion(extra, used, target):
    d = run(cluster(a()), metrics(**yarn(192, used, **extra)))
    assert targets(d) == {"ig-a": target}
    assert d.direction is (Direction.OUT if target > 2 else Direction.HOLD)


def test_decision_fields_for_a_scale_out():
    d = run(cluster(a()), metrics(**yarn(192, 90)))
    assert d.driving_signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert d.driving_value == pytest.approx(10.0)  # YARNMemoryAvailablePercentage = 100 - 90
    assert d.desired_task_nodes == 3  # 2 + 1
    assert d.desired_task_memory_gib == pytest.approx(144.0)  # 3 x 48
    assert d.usd_per_hour_before == pytest.approx(0.32)  # 2 x 0.16
    assert d.usd_per_hour_after == pytest.approx(0.48)  # 3 x 0.16
    assert d.reasons[0].startswith("YARN memory used 90.0 % > target 75.0 % (deadband 10 %)")
    assert any(
        r.startswith("Adding 1 node to group task-ig-a (ig-a, SPOT r5.2xlarge): +48 GiB") for r in d.reasons
    )
    assert all(r.endswith(".") for r in d.reasons)
    assert not d.dry_run
    assert d.is_action


def test_in_flight_nodes_are_counted_so_a_second_trigger_adds_nothing():
    # ig-a asks for 3, 2 run: 48 GiB coming. 90 % of 192 wants 230.4, counted 240: nothing to add
    d = run(cluster(a(3, running=2)), metrics(**yarn(192, 90)))
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 3}
    assert any("already requested" in r for r in d.reasons)


def test_cheapest_memory_first_across_groups():
    # need 38.4 GiB: ig-b (m5.4xlarge 48 GiB usable for $0.12 = $0.0025/GiB-h) beats ig-a ($0.0033/GiB-h)
    b = group("ig-b", instance_type="m5.4xlarge", usd=0.12)
    d = run(cluster(a(), b), metrics(**yarn(192, 90)))
    assert targets(d) == {"ig-a": 2, "ig-b": 1}


# --- bounds -------------------------------------------------------------------------------------------------
def test_step_limit():
    # 100 % + 200 pending containers: (192 + 800) / 0.75 = 1322.7 GiB: far more than 3 nodes; step 3 -> 5
    d = run(
        cluster(a()), metrics(**yarn(192, 100, ContainerPending=200)), config=cfg(max_scale_out_step_nodes=3)
    )
    assert targets(d) == {"ig-a": 5}
    assert not d.at_max_under_pressure  # limited by the step, not at max
    assert any("max_scale_out_step_nodes" in r for r in d.reasons)
    assert d.desired_task_nodes > 5  # the estimate before the step


def test_total_max_and_at_max_under_pressure():
    d = run(cluster(a()), metrics(**yarn(192, 100, ContainerPending=200)), config=cfg(max_task_nodes=4))
    assert targets(d) == {"ig-a": 4}
    assert d.at_max_under_pressure
    assert any("max_task_nodes 4" in r for r in d.reasons)


def test_group_max_sends_the_rest_to_the_next_group():
    # need: 99 % + 4 pending x 4 GiB: (190.08 + 16) / 0.75 = 274.77 - 192 = 82.77 GiB.
    # ig-a may grow by 1 (max 3): 48 GiB; the other 34.77 GiB: 2 x 24 GiB of ig-b (m5.2xlarge, $0.10)
    b = group("ig-b", instance_type="m5.2xlarge", memory_gib=32, usd=0.10)
    config = cfg(group_bounds={"ig-a": {"min_nodes": 0, "max_nodes": 3}})
    d = run(cluster(a(), b), metrics(**yarn(192, 99, ContainerPending=4)), config=config)
    assert targets(d) == {"ig-a": 3, "ig-b": 2}


def test_budget_cap():
    # $0.50/h budget, 2 x 0.16 = 0.32 spent: one more node ($0.16) fits, two do not
    d = run(cluster(a()), metrics(**yarn(192, 99)), config=cfg(budget_usd_per_hour=0.5))
    assert targets(d) == {"ig-a": 3}
    assert d.usd_per_hour_after <= 0.5
    assert d.at_max_under_pressure
    assert any("budget_usd_per_hour" in r for r in d.reasons)


def test_bounds_correction_raises_a_group_to_its_min():
    config = cfg(group_bounds={"ig-a": {"min_nodes": 3, "max_nodes": 10}})
    d = run(cluster(a()), metrics(**yarn(192, 75)), config=config)
    assert targets(d) == {"ig-a": 3}
    assert any("3-10" in r for r in d.reasons)


def test_total_min():
    d = run(cluster(a(0)), metrics(**yarn(96, 75)), config=cfg(min_task_nodes=2))
    assert targets(d) == {"ig-a": 2}
    assert any("min_task_nodes" in r for r in d.reasons)


def test_master_and_core_are_never_targets():
    d = run(cluster(a()), metrics(**yarn(192, 100, ContainerPending=500)))
    assert {t.group_id for t in d.targets} == {"ig-a"}


# --- gates --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "acts"),
    [
        (ClusterState.RUNNING, True),
        (ClusterState.WAITING, True),
        (ClusterState.STARTING, False),
        (ClusterState.BOOTSTRAPPING, False),
        (ClusterState.TERMINATING, False),
    ],
)
def test_only_running_or_waiting_clusters(state, acts):
    d = run(cluster(a(), state=state), metrics(**yarn(192, 99)))
    assert d.is_action is acts
    if not acts:
        assert state.value in d.reasons[0]


def test_groups_that_are_not_running_get_no_new_target():
    resizing = a(status=GroupStatus.RESIZING)
    b = group("ig-b", instance_type="m5.4xlarge", usd=0.30)  # dearer, but RUNNING
    d = run(cluster(resizing, b), metrics(**yarn(192, 90)))
    assert targets(d) == {"ig-a": 2, "ig-b": 1}


def test_hold_when_no_group_can_take_nodes():
    d = run(cluster(a(status=GroupStatus.RESIZING)), metrics(**yarn(192, 90)))
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 2}
    # not "at max": no configured limit binds, the only group is busy resizing (transient)
    assert not d.at_max_under_pressure
    assert any("no RUNNING TASK group that delivers can take new nodes now" in r for r in d.reasons)


def test_no_task_group_holds():
    d = run(cluster(), metrics(**yarn(96, 99)))
    assert d.direction is Direction.HOLD
    assert d.targets == ()


@pytest.mark.parametrize(
    "m",
    [
        metrics(),  # nothing at all
        metrics(ago(1000), **yarn(192, 10)),  # EMR metrics older than 900 s
        metrics(ago(200), JvmHeapUsedPercent=5),  # heap older than 180 s
        metrics(AppsRunning=1),  # no capacity signal
    ],
)
def test_metrics_missing_holds_and_never_scales_in(m):
    d = run(cluster(a(6)), m)
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 6}
    assert d.reasons[0].startswith(METRICS_MISSING)
    assert d.desired_task_nodes is None


def test_stale_signal_is_ignored_but_fresh_ones_drive():
    # heap 95 % is stale (200 s > 180 s) and ignored; YARN 90 % fresh drives
    m = metrics(**yarn(192, 90))
    m = replace(m, samples={**m.samples, **metrics(ago(200), JvmHeapUsedPercent=95).samples})
    d = run(cluster(a()), m)
    assert d.driving_signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert any("JvmHeapUsedPercent ignored" in r for r in d.reasons)


def test_dry_run_passes_through():
    d = run(cluster(a()), metrics(**yarn(192, 90)), config=cfg(dry_run=True))
    assert d.dry_run
    assert d.direction is Direction.OUT
    assert targets(d) == {"ig-a": 3}
    assert any(r.startswith("Dry run") for r in d.reasons)


# --- scale in and stability ---------------------------------------------------------------------------------
# ig-a 4 nodes: YARN 96 + 192 = 288 GiB. 20 % used = 57.6 GiB -> wants 76.8: surplus 211.2 GiB of TASK memory
def test_scale_in_step():
    d = run(cluster(a(4)), metrics(**yarn(288, 20)))
    assert targets(d) == {"ig-a": 0}  # 4 x 48 = 192 <= 211.2, step 4
    d = run(cluster(a(4)), metrics(**yarn(288, 20)), config=cfg(max_scale_in_step_nodes=1))
    assert targets(d) == {"ig-a": 3}
    assert d.direction is Direction.IN


def test_scale_in_removes_most_expensive_memory_first():
    # on-demand ig-od ($0.504 per 48 GiB) goes before spot; surplus 211.2, step 1
    od = group("ig-od", market=Market.ON_DEMAND, requested=1, usd=0.504)
    d = run(cluster(a(3), od), metrics(**yarn(288, 20)), config=cfg(max_scale_in_step_nodes=1))
    assert targets(d) == {"ig-a": 3, "ig-od": 0}


def test_no_partial_node_below_the_need():
    # 66 % of 192 = 126.72 GiB -> wants 168.96: surplus 23.04 GiB < one 48 GiB node: hold
    d = run(cluster(a()), metrics(**yarn(192, 66)))
    assert d.direction is Direction.HOLD
    assert any("No whole node fits" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("rec_age_s", "target"),
    [
        (300, 3),  # 5 min ago the estimate wanted 144 GiB (3 nodes): not below it within 600 s
        (599, 3),
        (601, 0),  # outside the window: down to the current estimate (0 nodes)
    ],
)
def test_scale_in_stabilization(rec_age_s, target):
    state = ScalerState(recommendations=(Recommendation(ago(rec_age_s), 3, 144.0),))
    d = run(cluster(a(4)), metrics(**yarn(288, 20)), state=state)
    assert targets(d) == {"ig-a": target}


def test_stabilization_hold_says_so():
    state = ScalerState(recommendations=(Recommendation(ago(60), 4, 192.0),))
    d = run(cluster(a(4)), metrics(**yarn(288, 20)), state=state)
    assert d.direction is Direction.HOLD
    assert any(r.startswith("Stabilization") and "600 s" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("state", "used", "acts"),
    [
        (ScalerState(last_scale_in_at=ago(100)), 20, False),  # scale-in cooldown 300 s blocks scale-in
        (ScalerState(last_scale_in_at=ago(301)), 20, True),
        (ScalerState(last_scale_out_at=ago(60)), 20, False),  # scale-out cooldown 120 s blocks everything
        (ScalerState(last_scale_out_at=ago(60)), 100, False),
        (ScalerState(last_scale_out_at=ago(121)), 100, True),
        (ScalerState(last_scale_in_at=ago(100)), 100, True),  # a scale-out right after a scale-in is allowed
    ],
)
def test_cooldowns(state, used, acts):
    d = run(cluster(a(4)), metrics(**yarn(288, used)), state=state)
    assert d.is_action is acts
    if not acts:
        assert any(r.startswith("Cooldown") for r in d.reasons)


def test_deadband_holds():
    # 70 % / 75 % = 0.933: within ± 10 %
    d = run(cluster(a(4)), metrics(**yarn(288, 70)))
    assert d.direction is Direction.HOLD
    assert any("within the deadband" in r for r in d.reasons)
    assert d.desired_task_memory_gib == pytest.approx(192.0)  # what it has


def test_no_scale_in_while_containers_wait():
    # YARN 20 % but 1 container pending (demand 57.6 + 4 = 61.6 GiB, still far below target): no scale-in
    d = run(cluster(a(4)), metrics(**yarn(288, 20, ContainerPending=1)))
    assert d.direction is Direction.HOLD
    assert any("waiting: no scale-in" in r for r in d.reasons)


def test_no_scale_in_while_heap_is_over_target():
    # YARN 20 % would scale in, but heap 75 % > 70 % target: heap wants 288 x 75/70 = 308.6 GiB -> drives;
    # 1.071 is inside the deadband -> hold, never in
    d = run(cluster(a(4)), metrics(**yarn(288, 20, JvmHeapUsedPercent=75)))
    assert d.direction is Direction.HOLD
    assert d.driving_signal is Signal.HEAP_USED_PCT


# --- idle ---------------------------------------------------------------------------------------------------
IDLE = {"AppsRunning": 0, "AppsPending": 0}


@pytest.mark.parametrize(
    ("quiet_s", "config", "target"),
    [
        (1000, {}, 0),  # > idle_after_s 900: to the minimum (0), all 6 at once (step 4 ignored)
        (1000, {"group_bounds": {"ig-a": {"min_nodes": 1, "max_nodes": 20}}}, 1),
        (1000, {"min_task_nodes": 2}, 2),
        (600, {}, 6),  # quiet for 600 s < 900 s: not idle, and YARN is on target: hold
    ],
)
def test_idle_goes_to_the_minimum(quiet_s, config, target):
    # YARN 96 + 288 = 384 GiB at 75 % (on target): only idleness moves it
    state = ScalerState(last_active_at=ago(quiet_s))
    d = run(cluster(a(6)), metrics(**yarn(384, 75, **IDLE)), config=cfg(**config), state=state)
    assert targets(d) == {"ig-a": target}
    if target < 6:
        assert d.reasons[0].startswith("Idle: no application ran or waited for 1000 s")


def test_idle_clock_needs_a_first_observation():
    # no last_active_at yet: the idle clock starts now, nothing happens
    d = run(cluster(a(6)), metrics(**yarn(384, 75, **IDLE)))
    assert targets(d) == {"ig-a": 6}


def test_idle_by_is_idle_metric_and_not_when_active():
    state = ScalerState(last_active_at=ago(2000))
    d = run(cluster(a(6)), metrics(**yarn(384, 75, IsIdle=1)), state=state)
    assert targets(d) == {"ig-a": 0}
    d = run(cluster(a(6)), metrics(**yarn(384, 75, AppsRunning=1)), state=state)
    assert targets(d) == {"ig-a": 6}
