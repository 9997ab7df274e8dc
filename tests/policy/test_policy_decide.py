"""decide(): one behaviour per test, expected numbers worked out in the comments.

Unless a test says otherwise: CORE 2 x r5.2xlarge (48 GiB usable each) and TASK group ig-a, SPOT r5.2xlarge,
48 GiB usable per node, $0.16/h; YARN total = CORE + running TASK nodes x 48 GiB. Defaults: YARN memory used
target 85 %, heap target 70 %, deadband 8 % (scale out above 91.8 % of the capacity counted, in below 78.2 %).
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
    ReasonCode,
    Recommendation,
    ScalerState,
    Signal,
    decide,
)


def run(c, m, *, config=None, state=None):
    return decide(now=NOW, cluster=c, metrics=m, config=config or cfg(), state=state or ScalerState())


def a(requested=2, **kw):
    return group("ig-a", requested=requested, **kw)


def codes(d):
    return [r.code for r in d.reasons]


def first(d, code):
    """The first reason with `code` (AssertionError when there is none)."""
    found = [r for r in d.reasons if r.code is code]
    assert found, (code, d.reason_texts)
    return found[0]


# --- scale out in proportion to pressure --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "used", "target"),
    [
        # 80 % / 85 % = 0.941, inside the 8 % deadband: hold
        ({}, 80, 2),
        # 91 % / 85 % = 1.071 < 1.08: still inside: hold
        ({}, 91, 2),
        # 93 %: 1.094 > 1.08; allocated 178.56 GiB / 0.85 = 210.07 wanted, 192 have: +18.07 -> 1 node
        ({}, 93, 3),
        # 99 %: 190.08 / 0.85 = 223.62: +31.62 GiB -> 1 node of 48 GiB
        ({}, 99, 3),
        # 100 % + 5 pending x 4 GiB (default size): (192 + 20) / 0.85 = 249.41: +57.41 -> 2 nodes (96 GiB)
        ({"ContainerPending": 5}, 100, 4),
        # 100 % + 20 pending x 4 GiB: (192 + 80) / 0.85 = 320: +128 -> 3 nodes (144 GiB)
        ({"ContainerPending": 20}, 100, 5),
    ],
)
def test_scale_out_in_proportion(extra, used, target):
    d = run(cluster(a()), metrics(**yarn(192, used, **extra)))
    assert targets(d) == {"ig-a": target}
    assert d.direction is (Direction.OUT if target > 2 else Direction.HOLD)


def test_decision_fields_for_a_scale_out():
    # 95 % of 192 = 182.4 GiB allocated wants 182.4 / 0.85 = 214.59: +22.59 GiB -> 1 node
    d = run(cluster(a()), metrics(**yarn(192, 95)))
    assert d.driving_signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert d.driving_value == pytest.approx(5.0)  # YARNMemoryAvailablePercentage = 100 - 95
    assert d.desired_task_nodes == 3  # 2 + 1
    assert d.desired_task_memory_gib == pytest.approx(144.0)  # 3 x 48
    assert d.usd_per_hour_before == pytest.approx(0.32)  # 2 x 0.16
    assert d.usd_per_hour_after == pytest.approx(0.48)  # 3 x 0.16
    lead = d.reasons[0]  # the need that drove the scale-out
    assert (lead.code, lead.subject) == (ReasonCode.NEED, Signal.YARN_MEMORY_AVAILABLE_PCT)
    assert lead.values["desired_gib"] == pytest.approx(214.588, abs=1e-3)  # 182.4 / 0.85
    assert lead.values["counted_gib"] == pytest.approx(192.0)
    # the wording is the point here: what operators read
    assert str(lead).startswith(
        "YARN memory used 95.0 % of 192 GiB running or requested (182 GiB allocated; EMR's 5-minute metric, "
        "0 s old) > target 85.0 % (deadband 8 %)"
    )
    added = first(d, ReasonCode.ADD_NODES)
    assert added.subject == "ig-a"
    assert (added.values["nodes"], added.values["memory_gib"]) == (1, pytest.approx(48.0))
    assert added.text.startswith("Adding 1 node to group task-ig-a (ig-a, SPOT r5.2xlarge): +48 GiB")
    assert all(t.endswith(".") for t in d.reason_texts)
    assert not d.dry_run
    assert d.is_action


def test_in_flight_nodes_are_counted_so_a_second_trigger_adds_nothing():
    # ig-a asks for 3, 2 run: 48 GiB coming. 95 % of the 192 GiB running = 182.4 allocated wants 214.59;
    # counted 96 + 3 x 48 = 240: nothing to add (and the 25.4 GiB surplus is less than a node: nothing goes)
    d = run(cluster(a(3, running=2)), metrics(**yarn(192, 95)))
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 3}
    assert first(d, ReasonCode.NEED).values["counted_gib"] == pytest.approx(240.0)
    assert any("of 240 GiB running or requested" in t for t in d.reason_texts)
    assert first(d, ReasonCode.IN_FLIGHT).values["in_flight_gib"] == pytest.approx(48.0)


def test_nodes_that_just_joined_count_although_memory_total_is_stale():
    # the cluster read says ig-a runs 4 nodes (2 joined after EMR's last datapoint, which still says 192 GiB
    # at 95 %): 182.4 allocated wants 214.59 of the 96 + 4 x 48 = 288 GiB that run: no scale-out (the old
    # rule compared with the stale 192 GiB and bought the same memory again)
    d = run(cluster(a(4)), metrics(**yarn(192, 95)))
    assert d.direction is not Direction.OUT
    assert targets(d)["ig-a"] <= 4


def test_a_pressed_heap_scales_out_once_per_episode_beyond_nodes_in_flight():
    # ig-a 3 requested, 2 running (48 GiB coming); YARN 80 % of 192 (153.6 allocated) is covered; the heap
    # at 85 % is beyond its deadband (70 x 1.08 = 75.6 %): the executors hold 153.6 GiB and want
    # 153.6 x 85/70 = 186.5 < 240 counted - covered too, but the nodes coming were asked for before the
    # pressure: one node more (the smallest any group can add, 48 GiB), once per heap-pressure episode
    c = cluster(a(3, running=2))
    m = metrics(**yarn(192, 80, JvmHeapUsedPercent=85))
    d = run(c, m, state=ScalerState(last_scale_out_at=ago(200)))
    assert targets(d) == {"ig-a": 4}
    # the heap rule drove this scale-out: its reason leads (the needs it overrides come after)
    assert d.reasons[0].code is ReasonCode.HEAP_PRESSURE
    assert d.reasons[0].values["heap_used_pct"] == pytest.approx(85.0)
    assert "beyond its deadband since" in str(d.reasons[0])
    # a node was requested since the pressure began: nothing more
    pressed = ScalerState(last_scale_out_at=ago(200), heap_pressure_since=ago(300))
    d = run(c, m, state=pressed)
    assert targets(d) == {"ig-a": 3}
    # the same heap under its deadband (75 %): nothing either
    d = run(c, metrics(**yarn(192, 80, JvmHeapUsedPercent=75)), state=ScalerState(last_scale_out_at=ago(200)))
    assert targets(d) == {"ig-a": 3}


def test_a_pressed_heap_adds_no_node_while_yarn_sits_below_its_deadband():
    # ig-a 3 nodes (240 GiB counted); YARN 10 % used of 192 < 85 x 0.92 = 78.2 %: YARN has room for more
    # executors without a node. The heap at 85 % is beyond its deadband, but the once-per-episode extra node
    # would only be taken back by the next scale-in (the no-oscillation property found this flip-flop)
    c = cluster(a(3))
    d = run(c, metrics(**yarn(192, 10, JvmHeapUsedPercent=85)), state=ScalerState(last_scale_out_at=ago(200)))
    assert d.direction is not Direction.OUT
    assert ReasonCode.HEAP_PRESSURE not in codes(d)


def test_heap_alone_never_scales_in():
    # only the heap agent reports (EMR's first datapoint is not there yet), 60 % < 70 %: hold
    d = run(cluster(a(6)), metrics(JvmHeapUsed=60 * 2**30, JvmHeapMax=100 * 2**30))
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 6}
    assert d.reasons[0].code is ReasonCode.HEAP_ONLY
    assert "the heap alone never scales in" in str(d.reasons[0])


def test_heap_under_target_does_not_hold_idle_yarn_memory():
    # ig-a 6 nodes: 96 + 288 = 384 GiB; YARN 40 % = 153.6 allocated wants 180.7; heap 60 %. The old heap rule
    # wanted 384 x 60/70 = 329 GiB and held the cluster there; now YARN decides: surplus 203.3 -> 4 nodes go
    d = run(cluster(a(6)), metrics(**yarn(384, 40, JvmHeapUsedPercent=60)))
    assert targets(d) == {"ig-a": 2}
    # YARN drove the scale-in: its need leads (the heap's, 153.6 GiB held x max(1, 60/70), comes after)
    assert (d.reasons[0].code, d.reasons[0].subject) == (ReasonCode.NEED, Signal.YARN_MEMORY_AVAILABLE_PCT)
    assert codes(d)[:2] == [ReasonCode.NEED, ReasonCode.NEED]
    assert d.reasons[1].subject == Signal.HEAP_USED_PCT


def test_cheapest_memory_first_across_groups():
    # need 22.59 GiB: ig-b (m5.4xlarge 48 GiB usable for $0.12 = $0.0025/GiB-h) beats ig-a ($0.0033/GiB-h)
    b = group("ig-b", instance_type="m5.4xlarge", usd=0.12)
    d = run(cluster(a(), b), metrics(**yarn(192, 95)))
    assert targets(d) == {"ig-a": 2, "ig-b": 1}


@pytest.mark.parametrize(("weight", "bought"), [(None, "ig-big"), (1.0, "ig-a")])
def test_small_increments_buy_the_cheaper_memory_not_the_small_dear_node(weight, bought):
    # need 22.59 GiB (as above). ig-a: r5.2xlarge 48 GiB usable at the replay's spot $0.17136/h
    # ($0.00357/GiB-h); ig-big: r6g.4xlarge 96 GiB usable at $0.28224/h ($0.00294/GiB-h). Cheapest per hour
    # now: one ig-a node;
    # but ig-a's premium over the cheaper memory, 0.17136 - 48 x 0.00294 = $0.03024/h, lasts as long as the
    # node, and counts node_premium_weight times (default 8): 0.17136 + 7 x 0.03024 = $0.38304 > $0.28224,
    # so one ig-big node, whose 73 spare GiB the next increment uses. Weight 1 is the old planner.
    big = group("ig-big", instance_type="r6g.4xlarge", memory_gib=128.0, usd=0.28224)
    config = cfg() if weight is None else cfg(node_premium_weight=weight)
    d = run(cluster(a(usd=0.17136), big), metrics(**yarn(192, 95)), config=config)
    assert targets(d) == {
        "ig-a": 3 if bought == "ig-a" else 2,
        "ig-big": 1 if bought == "ig-big" else 0,
    }
    assert d.usd_per_hour_after == pytest.approx(2 * 0.17136 + (0.28224 if bought == "ig-big" else 0.17136))


# --- bounds -------------------------------------------------------------------------------------------------
def test_step_limit():
    # 100 % + 200 pending containers: (192 + 800) / 0.85 = 1167.1 GiB: far more than 3 nodes; step 3 -> 5
    d = run(
        cluster(a()), metrics(**yarn(192, 100, ContainerPending=200)), config=cfg(max_scale_out_step_nodes=3)
    )
    assert targets(d) == {"ig-a": 5}
    assert not d.at_max_under_pressure  # limited by the step, not at max
    limit = first(d, ReasonCode.LIMIT)
    assert limit.subject == "max_scale_out_step_nodes"
    assert limit.values["max_scale_out_step_nodes"] == 3
    assert d.desired_task_nodes > 5  # the estimate before the step


def test_total_max_and_at_max_under_pressure():
    d = run(cluster(a()), metrics(**yarn(192, 100, ContainerPending=200)), config=cfg(max_task_nodes=4))
    assert targets(d) == {"ig-a": 4}
    assert d.at_max_under_pressure
    limit = first(d, ReasonCode.LIMIT)
    assert "max_task_nodes" in limit.subject.split(",")
    assert (limit.values["max_task_nodes"], limit.values["room_nodes"]) == (4, 2)


def test_group_max_sends_the_rest_to_the_next_group():
    # need: 99 % + 10 pending x 4 GiB: (190.08 + 40) / 0.85 = 270.68 - 192 = 78.68 GiB.
    # ig-a may grow by 1 (max 3): 48 GiB; the other 30.68 GiB: 2 x 24 GiB of ig-b (m5.2xlarge, $0.10)
    b = group("ig-b", instance_type="m5.2xlarge", memory_gib=32, usd=0.10)
    config = cfg(group_bounds={"ig-a": {"min_nodes": 0, "max_nodes": 3}})
    d = run(cluster(a(), b), metrics(**yarn(192, 99, ContainerPending=10)), config=config)
    assert targets(d) == {"ig-a": 3, "ig-b": 2}


def test_budget_cap():
    # 100 % + 10 pending: (192 + 40) / 0.85 = 272.94: +80.94 GiB wants 2 nodes;
    # $0.50/h budget, 2 x 0.16 = 0.32 spent: one more node ($0.16) fits, two do not
    d = run(cluster(a()), metrics(**yarn(192, 100, ContainerPending=10)), config=cfg(budget_usd_per_hour=0.5))
    assert targets(d) == {"ig-a": 3}
    assert d.usd_per_hour_after <= 0.5
    assert d.at_max_under_pressure
    limit = first(d, ReasonCode.LIMIT)
    assert "budget_usd_per_hour" in limit.subject.split(",")
    assert limit.values["budget_usd_per_hour"] == pytest.approx(0.5)
    assert limit.values["budget_left_usd_per_hour"] == pytest.approx(0.18)  # 0.5 - 0.32


def test_bounds_correction_raises_a_group_to_its_min():
    config = cfg(group_bounds={"ig-a": {"min_nodes": 3, "max_nodes": 10}})
    d = run(cluster(a()), metrics(**yarn(192, 75)), config=config)
    assert targets(d) == {"ig-a": 3}
    # the bound drove this scale-out (the signals alone would hold): its reason leads
    lead = d.reasons[0]
    assert (lead.code, lead.subject) == (ReasonCode.BOUNDS, "ig-a")
    assert (lead.values["min_nodes"], lead.values["max_nodes"], lead.values["target"]) == (3, 10, 3)
    assert "3-10" in str(lead)


def test_total_min():
    d = run(cluster(a(0)), metrics(**yarn(96, 75)), config=cfg(min_task_nodes=2))
    assert targets(d) == {"ig-a": 2}
    bound = first(d, ReasonCode.BOUNDS)
    assert bound.subject == "min_task_nodes"
    assert (bound.values["min_task_nodes"], bound.values["planned"], bound.values["target"]) == (2, 0, 2)
    assert d.reasons[0] is bound  # it drove the scale-out


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
        assert (d.reasons[0].code, d.reasons[0].subject) == (ReasonCode.CLUSTER_INACTIVE, state.value)
        assert state.value in str(d.reasons[0])


@pytest.mark.parametrize("status", [GroupStatus.RECONFIGURING, GroupStatus.PROVISIONING])
def test_groups_that_cannot_take_a_new_count_get_no_new_target(status):
    busy = a(status=status)
    b = group("ig-b", instance_type="m5.4xlarge", usd=0.30)  # dearer, but RUNNING
    d = run(cluster(busy, b), metrics(**yarn(192, 95)))
    assert targets(d) == {"ig-a": 2, "ig-b": 1}


def test_a_resizing_group_takes_a_new_count():
    # EMR (4.1.0+) takes a new count while a group is RESIZING (it overrides the previous request): the
    # cheapest group keeps getting the nodes instead of spilling into the dearer ig-b
    resizing = a(3, running=2, status=GroupStatus.RESIZING)
    b = group("ig-b", instance_type="m5.4xlarge", usd=0.30)
    # 100 % of 192 + 10 pending: (192 + 40) / 0.85 = 272.94 of 240 counted: +32.94 -> 1 node
    d = run(cluster(resizing, b), metrics(**yarn(192, 100, ContainerPending=10)))
    assert targets(d) == {"ig-a": 4, "ig-b": 0}


def test_hold_when_no_group_can_take_nodes():
    d = run(cluster(a(status=GroupStatus.RECONFIGURING)), metrics(**yarn(192, 95)))
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 2}
    # not "at max": no configured limit binds, the only group is busy reconfiguring (transient)
    assert not d.at_max_under_pressure
    assert (d.reasons[0].code, d.reasons[0].subject) == (ReasonCode.LIMIT, "no_offer")
    assert "no RUNNING or RESIZING TASK group that delivers can take new nodes now" in str(d.reasons[0])


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
    assert d.reasons[0].code is ReasonCode.METRICS_MISSING
    assert d.reason_texts[0].startswith(METRICS_MISSING)
    assert d.desired_task_nodes is None


def test_stale_signal_is_ignored_but_fresh_ones_drive():
    # heap 95 % is stale (200 s > 180 s) and ignored; YARN 95 % fresh drives
    m = metrics(**yarn(192, 95))
    m = replace(m, samples={**m.samples, **metrics(ago(200), JvmHeapUsedPercent=95).samples})
    d = run(cluster(a()), m)
    assert d.driving_signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert "JvmHeapUsedPercent ignored" in str(first(d, ReasonCode.METRIC_IGNORED))


def test_dry_run_passes_through():
    d = run(cluster(a()), metrics(**yarn(192, 95)), config=cfg(dry_run=True))
    assert d.dry_run
    assert d.direction is Direction.OUT
    assert targets(d) == {"ig-a": 3}
    assert d.reasons[-1].code is ReasonCode.DRY_RUN


# --- scale in and stability ---------------------------------------------------------------------------------
# ig-a 4 nodes: YARN 96 + 192 = 288 GiB. 20 % used = 57.6 GiB -> wants 67.76: surplus 220.2 GiB of TASK memory
def test_scale_in_step():
    d = run(cluster(a(4)), metrics(**yarn(288, 20)))
    assert targets(d) == {"ig-a": 0}  # 4 x 48 = 192 <= 220.2, step 10
    d = run(cluster(a(4)), metrics(**yarn(288, 20)), config=cfg(max_scale_in_step_nodes=1))
    assert targets(d) == {"ig-a": 3}
    assert d.direction is Direction.IN


def test_scale_in_removes_most_expensive_memory_first():
    # on-demand ig-od ($0.504 per 48 GiB) goes before spot; surplus 220.2, step 1
    od = group("ig-od", market=Market.ON_DEMAND, requested=1, usd=0.504)
    d = run(cluster(a(3), od), metrics(**yarn(288, 20)), config=cfg(max_scale_in_step_nodes=1))
    assert targets(d) == {"ig-a": 3, "ig-od": 0}


def test_no_partial_node_below_the_need():
    # 66 % of 192 = 126.72 GiB -> wants 149.08: surplus 42.92 GiB < one 48 GiB node: hold
    d = run(cluster(a()), metrics(**yarn(192, 66)))
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.NO_NODE_FITS
    # the surplus stated is what may go after stabilization, measured from the ideal removal (none here)
    assert d.reasons[0].values["surplus_gib"] == 0.0


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
    lead = d.reasons[0]
    assert lead.code is ReasonCode.STABILIZATION
    assert (lead.values["stabilization_s"], lead.values["floor_gib"]) == (600, pytest.approx(192.0))


@pytest.mark.parametrize(
    ("state", "used", "acts"),
    [
        (ScalerState(last_scale_in_at=ago(100)), 20, False),  # scale-in cooldown 120 s blocks scale-in
        (ScalerState(last_scale_in_at=ago(121)), 20, True),
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
        assert d.reasons[0].code is ReasonCode.COOLDOWN


def test_deadband_holds():
    # 80 % / 85 % = 0.941: within ± 8 %
    d = run(cluster(a(4)), metrics(**yarn(288, 80)))
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.WITHIN_DEADBAND
    assert "within the deadband" in str(first(d, ReasonCode.NEED))
    assert d.desired_task_memory_gib == pytest.approx(192.0)  # what it has


def test_no_scale_in_while_containers_wait():
    # YARN 20 % but 1 container pending (demand 57.6 + 4 = 61.6 GiB, far below target): no scale-in
    d = run(cluster(a(4)), metrics(**yarn(288, 20, ContainerPending=1)))
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.WAITING
    assert (d.reasons[0].values["containers_pending"], d.reasons[0].values["apps_pending"]) == (1, 0)


def test_no_scale_in_while_heap_is_over_target():
    # YARN 20 % would scale in (57.6 GiB allocated wants 67.76 of 288), but heap 75 % > 70 % target vetoes it
    # (it wants the 57.6 GiB executors hold x 75/70 = 61.7 GiB: no scale-out either) -> hold
    d = run(cluster(a(4)), metrics(**yarn(288, 20, JvmHeapUsedPercent=75)))
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 4}
    assert (d.reasons[0].code, d.reasons[0].subject) == (ReasonCode.OVER_TARGET, Signal.HEAP_USED_PCT)
    assert d.reason_texts[0] == "JvmHeapUsedPercent is over its target: no scale-in."  # the wording


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
    # YARN 96 + 288 = 384 GiB at 85 % (on target): only idleness moves it
    state = ScalerState(last_active_at=ago(quiet_s))
    d = run(cluster(a(6)), metrics(**yarn(384, 85, **IDLE)), config=cfg(**config), state=state)
    assert targets(d) == {"ig-a": target}
    if target < 6:
        assert d.reasons[0].code is ReasonCode.IDLE
        assert d.reasons[0].values["quiet_s"] == pytest.approx(1000.0)
        assert d.reason_texts[0].startswith("Idle: no application ran or waited for 1000 s")


def test_idle_clock_needs_a_first_observation():
    # no last_active_at yet: the idle clock starts now, nothing happens
    d = run(cluster(a(6)), metrics(**yarn(384, 85, **IDLE)))
    assert targets(d) == {"ig-a": 6}


def test_idle_by_is_idle_metric_and_not_when_active():
    state = ScalerState(last_active_at=ago(2000))
    d = run(cluster(a(6)), metrics(**yarn(384, 85, IsIdle=1)), state=state)
    assert targets(d) == {"ig-a": 0}
    d = run(cluster(a(6)), metrics(**yarn(384, 85, AppsRunning=1)), state=state)
    assert targets(d) == {"ig-a": 6}
