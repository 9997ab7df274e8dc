"""The event loop on a golden step trace, driven by EMR's default custom rules; alarm evaluation from the
stack's AlarmSpecs; spot interruptions and shortfalls; determinism."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
from replay_helpers import tiny_cluster
from sparkscale import names
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config
from sparkscale_tools.replay.cloudwatch_sim import (
    AlarmBank,
    AlarmEvaluator,
    MetricStream,
    compile_expression,
    state_function,
)
from sparkscale_tools.replay.engine import RunRecord, World
from sparkscale_tools.replay.model import SimParams, emr_signals, heap_signals
from sparkscale_tools.replay.policies import EmrRules, EmrRulesController
from sparkscale_tools.replay.run import PolicySpec, run_replay

# Golden trace: 30 GiB for 10 min, 100 GiB for 20 min, 30 GiB for 30 min (60 steps of 60 s).
GOLDEN = [30.0] * 10 + [100.0] * 20 + [30.0] * 30


def test_emr_custom_rules_on_the_golden_trace_by_hand() -> None:
    """Core 48 GiB usable, one SPOT task group of 96 GiB nodes at $0.30/h, default SimParams:
    EMR samples at 0, 300, 600 … visible 120 s later; alarms evaluated at :50 of every minute;
    a node is usable 360 s after the request; a scale-in node is billed 120 s more.

    t=0     warm start: ⌈(30−48)/96⌉ = 0 task nodes; available 18/48 = 37.5 % (no rule fires)
    t=600   demand 100 (step 10): supply 48 < 100, the under-provisioning episode starts
    t=600   EMR sample: available 0 %; visible at 720
    t=770   first evaluation that sees it: 0 < 15 → ALARM → +1 node (request at 770: reaction 170 s)
    t=1130  the node is usable: supply 144 from step 19 (t=1140); under-provisioned steps 10..18 = 9
            the group is RUNNING again at 1130: cooldown until 1430 (the 900 s sample, still 0 %, is ignored)
    t=1800  demand 30 (step 30); sample: available (144−30)/144 = 79.2 % > 75; visible at 1920
    t=1970  evaluation → scale-in ALARM → −1 node: not usable from step 33 (t=1980), billed until 2090
    cost    1 node billed 770 → 2090 s = 1320 s × $0.30/h = $0.11; actions 2
    τ_U     9/60 = 15 %;  θ_U = 100 · 9 · (100−48)/100 / 60 = 7.8 %
    θ_O     steps 0-9: 18/30 = 0.6 × 10 = 6.0; 19-29: 44/100 × 11 = 4.84; 30-32: 114/30 × 3 = 11.4;
            33-59: 0.6 × 27 = 16.2 → 38.44 · 100/60 = 64.0667 %;  τ_O = (10 + 41)/60 = 85 %
    oracle  1 node for steps 10..29 = 20 node-minutes = $0.10 → ratio 1.1
    whole-node floor: one offering, so the oracle's $0.10; foresight bound: that node billed from 6 steps
            before (360 s) to 2 steps after (120 s) its use: steps 4..31 = 28 node-minutes = $0.14
    """
    cfg = Config.from_mapping({"max_task_nodes": 5})
    result = run_replay(
        GOLDEN,
        policies=[PolicySpec("emr-custom-rules", "emr-custom-rules"), PolicySpec("oracle", "oracle")],
        config=cfg,
        cluster=tiny_cluster(),
        params=SimParams(),
    )
    run = result.runs["emr-custom-rules"]
    assert run.supply_gib == [48.0] * 19 + [144.0] * 14 + [48.0] * 27
    assert run.scale_out_times_s == [770.0]
    # the node requested at 770 s is launching at the samples of steps 13..18 (780-1080 s), usable at 1130
    assert run.launching_gib == [0.0] * 13 + [96.0] * 6 + [0.0] * 41
    s = result.scores["emr-custom-rules"]
    assert s.cost_usd == pytest.approx(0.11)
    assert s.actions == 2
    assert s.tau_u_pct == pytest.approx(15.0)
    assert s.theta_u_pct == pytest.approx(7.8)
    assert s.theta_o_pct == pytest.approx(64.0667, abs=1e-3)
    assert s.tau_o_pct == pytest.approx(85.0)
    assert s.reaction_s_p50 == pytest.approx(170.0)
    assert s.reaction_s_max == pytest.approx(170.0)
    assert result.scores["oracle"].cost_usd == pytest.approx(0.10)
    assert s.cost_ratio_vs_oracle == pytest.approx(1.1)
    assert result.oracle_cost_usd == pytest.approx(0.10)
    assert result.whole_node_floor_usd == pytest.approx(0.10)
    assert result.foresight_cost_usd == pytest.approx(0.14)
    assert result.core_gib == 48.0
    assert result.emr_rules is not None
    assert "< 15" in result.emr_rules
    assert "cooldown 300 s" in result.emr_rules


def test_signals_from_demand_and_supply() -> None:
    p = SimParams()
    # 100 GiB wanted on 48 GiB: all 48 allocated, 52 pending = 13 containers of 4 GiB; 12 allocated
    e = emr_signals(100.0, 48.0, container_gib=4.0, p=p)
    assert e.yarn_memory_available_pct == 0.0
    assert e.memory_allocated_mb == 48 * 1024
    assert e.memory_available_mb == 0.0
    assert (e.container_pending, e.container_allocated) == (13.0, 12.0)
    assert e.container_pending_ratio == pytest.approx(13 / 12)
    assert (e.apps_running, e.apps_pending, e.is_idle) == (
        1.0,
        1.0,
        0.0,
    )  # ⌈100/64⌉ = 2 apps, ⌈48/64⌉ = 1 runs
    fed = emr_signals(30.0, 48.0, container_gib=4.0, p=p)
    assert fed.yarn_memory_available_pct == pytest.approx(37.5)
    assert fed.container_pending == 0.0
    assert fed.apps_pending == 0.0
    assert emr_signals(0.1, 48.0, container_gib=4.0, p=p).is_idle == 1.0
    h = heap_signals(100.0, 48.0, container_gib=4.0, p=p)
    assert h.used_pct == pytest.approx(min(98.0, 60.0 * 100 / 48))  # 125 → capped at 98
    assert h.max_bytes == pytest.approx(48 * 0.9 * 2**30)
    assert heap_signals(30.0, 48.0, container_gib=4.0, p=p).used_pct == pytest.approx(60.0)
    assert heap_signals(0.0, 48.0, container_gib=4.0, p=p).used_pct is None


def test_heap_wake_alarm_is_one_minute_from_the_stack_spec() -> None:
    spec = next(s for s in alarm_specs(Config(), "j-X") if s.kind == names.ALARM_KIND_HEAP_PCT)
    assert (spec.period_s, spec.evaluation_periods, spec.datapoints_to_alarm) == (60, 1, 1)
    stream = MetricStream(lag_s=10.0)
    ev = AlarmEvaluator(spec, stream)
    gib = 2.0**30
    stream.add(30, {names.HEAP_EXECUTOR_USED_BYTES: 50 * gib, names.HEAP_EXECUTOR_MAX_BYTES: 100 * gib})
    assert ev.evaluate(50) == ("OK", True)
    stream.add(90, {names.HEAP_EXECUTOR_USED_BYTES: 90 * gib, names.HEAP_EXECUTOR_MAX_BYTES: 100 * gib})
    assert ev.evaluate(99) == ("OK", False)  # not visible yet (10 s lag)
    assert ev.evaluate(110) == ("ALARM", True)  # one breaching minute wakes the scaler


def test_alarm_evaluator_two_of_three_minutes_on_the_heap_spec() -> None:
    # The evaluator's M-of-N logic (heap-critical and the bytes alarm use 2 of 3), on the heap-percent query.
    cfg = Config()
    spec = next(s for s in alarm_specs(cfg, "j-X") if s.kind == names.ALARM_KIND_HEAP_PCT)
    spec = replace(spec, evaluation_periods=3, datapoints_to_alarm=2)
    stream = MetricStream(lag_s=10.0)
    ev = AlarmEvaluator(spec, stream)
    gib = 2.0**30

    def put(t: float, pct: float) -> None:
        stream.add(t, {names.HEAP_EXECUTOR_USED_BYTES: pct * gib, names.HEAP_EXECUTOR_MAX_BYTES: 100 * gib})

    put(30, 50.0)
    assert ev.evaluate(50) == ("OK", True)
    put(90, 90.0)
    assert ev.evaluate(110) == ("OK", False)  # one breaching minute of three
    put(150, 90.0)
    assert ev.evaluate(155) == ("OK", False)  # not visible yet (10 s lag): window [0, 1] unchanged
    assert ev.window(170) == [50.0, 90.0, 90.0]
    assert ev.evaluate(170) == ("ALARM", True)
    assert ev.transitions == 2


def test_an_alarm_bank_matches_each_alarm_on_its_own_stream() -> None:
    """The bank shares per-period values (heap-percent and heap-critical read the same query) and skips
    unchanged windows; each alarm alone, on a stream of its own, must see the same transitions. The heap
    agent goes silent for 20 minutes (the missing-data alarm) and demand swings across every threshold."""
    cfg = Config.from_mapping({"heap_used_alarm_bytes": 200 * 2**30})
    p = SimParams()
    specs = alarm_specs(cfg, "j-X", include_yarn=False)  # the replay has no YARN collector stream (yet)
    emr_lag, heap_lag = p.emr_lag_s, p.heap_lag_s

    def streams() -> dict[str, MetricStream]:
        return {names.EMR_NAMESPACE: MetricStream(emr_lag), names.HEAP_NAMESPACE: MetricStream(heap_lag)}

    shared = streams()
    bank = AlarmBank([AlarmEvaluator(s, shared[s.namespace]) for s in specs])
    alone = [(s, streams()) for s in specs]
    everyone = [shared] + [own for _, own in alone]
    evaluators = [AlarmEvaluator(s, own[s.namespace]) for s, own in alone]
    seen_bank: list[tuple[int, str, str]] = []
    seen_alone: list[tuple[int, str, str]] = []
    for k in range(600):
        t = 60.0 * k
        demand = 0.0 if 200 <= k < 260 else 400.0 + 380.0 * math.sin(k / 15.0)
        for st in everyone:
            if k % 5 == 0:
                st[names.EMR_NAMESPACE].add(t, emr_signals(demand, 500.0, container_gib=4.0, p=p).by_metric())
            if not 400 <= k < 420:
                heap = heap_signals(demand, 500.0, container_gib=4.0, p=p).by_metric()
                st[names.HEAP_NAMESPACE].add(t + 30.0, heap)
        now = t + 50.0
        seen_bank += [(k, a.spec.kind, state) for a, state in bank.evaluate(now)]
        for a in evaluators:
            state, changed = a.evaluate(now)
            if changed:
                seen_alone.append((k, a.spec.kind, state))
        assert bank.in_alarm == any(a.state == "ALARM" for a in evaluators)
    assert seen_bank == seen_alone
    assert {kind for _, kind, state in seen_bank if state == "ALARM"} >= {
        names.ALARM_KIND_HEAP_PCT,
        names.ALARM_KIND_HEAP_CRITICAL,
        names.ALARM_KIND_HEAP_MISSING,
        names.ALARM_KIND_IDLE,
    }


def test_an_alarm_with_a_longer_window_added_later_reads_the_dropped_periods_again() -> None:
    spec = next(s for s in alarm_specs(Config(), "j-X") if s.kind == names.ALARM_KIND_HEAP_PCT)
    stream = MetricStream(lag_s=10.0)
    gib = 2.0**30
    for k in range(40):
        pct = 90.0 if k < 3 else 50.0
        stream.add(
            60 * k + 30, {names.HEAP_EXECUTOR_USED_BYTES: pct * gib, names.HEAP_EXECUTOR_MAX_BYTES: 100 * gib}
        )
    short = AlarmEvaluator(spec, stream)
    assert short.evaluate(60 * 39 + 50) == ("OK", True)  # 40 periods taken in, the early ones dropped
    wide = AlarmEvaluator(replace(spec, evaluation_periods=40, datapoints_to_alarm=3), stream)
    assert wide.window(60 * 39 + 50)[:4] == [90.0, 90.0, 90.0, 50.0]
    assert wide.evaluate(60 * 39 + 50) == ("ALARM", True)


def test_metric_math() -> None:
    f = compile_expression("100 * a / (b - 1)", {"a", "b"})
    assert f({"a": 2.0, "b": 5.0}) == pytest.approx(50.0)
    assert f({"a": 2.0, "b": 1.0}) is None  # division by zero: no value
    assert f({"a": 2.0}) is None
    with pytest.raises(ValueError, match="unsupported"):
        compile_expression("SUM(METRICS())", {"a"})


def _spot_run(seed: int) -> RunRecord:
    cfg = Config.from_mapping({"max_task_nodes": 10})
    rec = RunRecord("emr-custom-rules")
    world = World(
        demand_gib=[400.0] * 600,
        cluster=tiny_cluster(spot_risk=0.5, shortfalls_per_day=12.0),
        config=cfg,
        params=SimParams(),
        seed=seed,
        record=rec,
        initial_task_nodes={"ig-T": 4},
    )
    return world.run(EmrRulesController(cfg, tiny_cluster()))


def test_interruptions_and_shortfalls_are_seeded() -> None:
    a, b, c = _spot_run(7), _spot_run(7), _spot_run(8)
    assert a.counters["interruptions"] > 0
    assert a.counters["shortfall_episodes"] > 0
    assert (a.supply_gib, a.cost_usd, a.counters) == (b.supply_gib, b.cost_usd, b.counters)
    assert (a.supply_gib, a.counters) != (c.supply_gib, c.counters)
    # an interrupted node is lost: supply dips below the 4 warm-started nodes at some point
    assert min(a.supply_gib) < 48.0 + 4 * 96.0


def test_a_shortfall_delays_launches_until_it_ends() -> None:
    cfg = Config.from_mapping({"max_task_nodes": 10})
    rec = RunRecord("manual")
    world = World(
        demand_gib=[0.0] * 30, cluster=tiny_cluster(), config=cfg, params=SimParams(), seed=0, record=rec
    )
    g = world.by_id["ig-T"]
    world._shortfall_start(g, end=600.0)
    world.set_requested(g, 2)
    assert (g.waiting, len(g.provisioning), g.status.value) == (2, 0, "RESIZING")
    assert world.rate_usd_per_h == 0.0  # not launched: not billed
    world.now_s = 600.0
    world._shortfall_end(g)
    assert (g.waiting, len(g.provisioning)) == (0, 2)
    assert world.rate_usd_per_h == pytest.approx(0.60)


def test_periods_holding_several_datapoints_take_each_query_s_statistic() -> None:
    """Five-minute alarms over the one-minute heap stream: metric math over per-period sums (datapoints
    without the metrics left out), and a SampleCount."""
    specs = {s.kind: s for s in alarm_specs(Config(), "j-X")}
    pct = replace(specs[names.ALARM_KIND_HEAP_PCT], period_s=300, evaluation_periods=2)
    count = replace(specs[names.ALARM_KIND_HEAP_MISSING], period_s=300, evaluation_periods=2)
    stream = MetricStream(lag_s=10.0)
    gib = 2.0**30
    for k, (used, top) in enumerate([(10, 100), (30, 100), (20, 50), (0, 0), (0, 0), (40, 100)]):
        row = {names.HEAP_EXECUTOR_USED_BYTES: used * gib, names.HEAP_EXECUTOR_MAX_BYTES: top * gib}
        stream.add(60 * k + 30, {**row, names.HEAP_JVM_COUNT: 4.0} if top else {})
    by_pct, by_count = AlarmEvaluator(pct, stream), AlarmEvaluator(count, stream)
    assert by_pct.window(400) == [pytest.approx(100 * 60 / 250), pytest.approx(100 * 40 / 100)]
    assert by_count.window(400) == [3.0, 1.0]
    assert by_pct.window(290) == [None, pytest.approx(100 * 60 / 250)]  # the latest period still open


def test_the_compiled_state_function_is_state_for() -> None:
    """state_function(spec) (what the replay's alarms run) against AlarmSpec.state_for on every full window
    of values below, at and above each threshold, missing and NaN, for every alarm of the stack and EMR's
    rules, with every missing-data rule."""
    config = Config()
    specs = alarm_specs(config, "j-1", include_yarn=True)
    specs += [EmrRules().alarm("j-1", scale_out=out) for out in (True, False)]
    specs += [
        replace(s, treat_missing_data=t)
        for s in specs
        for t in ("breaching", "notBreaching", "ignore", "missing")
    ]
    for spec in specs:
        fn = state_function(spec)
        points = (None, math.nan, spec.threshold - 1.0, spec.threshold, spec.threshold + 1.0)
        for window in itertools.product(points, repeat=spec.evaluation_periods):
            assert fn(window) == spec.state_for(window), (spec.kind, spec.treat_missing_data, window)
