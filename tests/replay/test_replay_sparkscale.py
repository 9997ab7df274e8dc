"""The real sparkscale path (service.run_once through the simulated ports), determinism, the oracle bound."""

from __future__ import annotations

import json

import pytest
from replay_helpers import tiny_cluster
from sparkscale.config import Config
from sparkscale.policy.model import Market, Role
from sparkscale_tools.replay import outputs, synthetic
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec, default_cluster
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.policies import POLICIES
from sparkscale_tools.replay.run import PolicySpec, run_replay

GOLDEN = [30.0] * 10 + [100.0] * 20 + [30.0] * 30


def test_sparkscale_reacts_to_heap_pressure_through_the_alarm_by_hand() -> None:
    """Tiny cluster (core 48 GiB usable, 96 GiB task nodes), golden trace, default SimParams and Config; the
    cluster starts with 0 TASK nodes, its minimum.

    t=600  demand 100 GiB on 48 GiB (step 10): the under-provisioning episode starts
    t=630  heap sample: used 60 % × 100/48 = 125 % → capped at 98 %; visible at 640 (10 s lag)
    t=650  heap alarm (the stack's wake-up alarm: 60 s periods, 1 of 1 above 70 × 1.08 = 75.6 %): [98] → ALARM
           → SNS → alarm Lambda run_once at 652 → scale out (reaction 52 s; the reconcile, every 120 s, last
           ran at 601 and skipped: TASK groups at their minimum and nothing in ALARM)
    t=1012 the node is usable (652 + 360): supply 144 from step 17 (t=1020); under-provisioned: steps 10..16
    τ_U = 7/60 = 11.67 %; θ_U = 100 · 7 · (100−48)/100 / 60 = 6.067 %; reaction p50 = max = 52 s
    """
    result = run_replay(
        GOLDEN,
        policies=[PolicySpec("sparkscale", "sparkscale"), PolicySpec("oracle", "oracle")],
        config=Config.from_mapping({"max_task_nodes": 5}),
        cluster=tiny_cluster(),
        params=SimParams(),
    )
    run = result.runs["sparkscale"]
    s = result.scores["sparkscale"]
    assert run.scale_out_times_s[0] == pytest.approx(652.0)
    assert run.supply_gib[:17] == [48.0] * 17
    assert run.supply_gib[17] == 144.0
    assert s.tau_u_pct == pytest.approx(100 * 7 / 60)
    assert s.theta_u_pct == pytest.approx(100 * 7 * 0.52 / 60)
    assert s.reaction_s_p50 == pytest.approx(52.0)
    assert s.reaction_s_max == pytest.approx(52.0)
    # every resize came from run_once's "applied" outcome; the schedule skipped while at the minimum
    assert run.counters["run_applied"] == s.actions
    assert run.counters["alarm_alarm"] >= 1
    assert run.counters["run_skipped"] >= 6  # 0:01, 2:01 … 10:01 at 0 TASK nodes with no alarm in ALARM
    assert sum(v for k, v in run.counters.items() if k.startswith("run_")) >= 30  # the 2-minute schedule
    assert result.scores["oracle"].cost_usd <= s.cost_usd


def test_above_its_minimum_the_scaler_runs_on_every_reconcile_and_reacts_within_a_minute() -> None:
    """Without the YARN collector and Spark's executor demand (the signals before they existed).
    Demand 100 GiB for 10 min, then 300 GiB. Warm start: ⌈(100−48)/96⌉ = 1 TASK node (144 GiB), above the
    minimum of 0, so the reconcile schedule runs run_once every time (every 120 s).

    t=600  demand 300 on 144 GiB: the episode starts
    t=630  heap 60 % × 300/144 = 125 % → 98 %, visible at 640
    t=650  the heap wake-up alarm (1 of 1 above 75.6 %) → run_once at 652 (the reconcile at 721 would have
           run it too: the cluster is above its minimum) → heap 98 % > 70 %: the executors hold
           144 × 0.9 (heap) × 1.1 (overhead) = 142.6 GiB (the heap datapoint is newer than EMR's 100 GiB
           allocated) and want 142.6 × 98/70 = 199.6 GiB of the 144 counted → +1 node of 96 GiB
           (reaction 52 s)
    t=1012 the node is usable: supply 240 GiB from step 17 (t=1020)
    """
    result = run_replay(
        [100.0] * 10 + [300.0] * 20,
        policies=[PolicySpec("sparkscale", "sparkscale")],
        config=Config.from_mapping({"max_task_nodes": 5}),
        cluster=tiny_cluster(),
        params=SimParams(yarn_collector=False, dynamic_allocation=False),  # EMR's metrics and the heap only
    )
    run = result.runs["sparkscale"]
    assert run.supply_gib[:17] == [144.0] * 17
    assert run.supply_gib[17] == 240.0
    assert run.scale_out_times_s[0] == pytest.approx(652.0)
    assert result.scores["sparkscale"].reaction_s_p50 == pytest.approx(52.0)
    assert "run_skipped" not in run.counters


def _spot_replay(seed: int) -> str:
    cluster = default_cluster().with_spot_risk(
        interruption_rate_per_node_hour=0.2, shortfall_episodes_per_day=6.0, shortfall_duration_s=3600
    )
    cfg = Config.from_mapping(
        {"max_task_nodes": 30, "group_max_nodes": 30, "max_share_per_instance_type": 0.5}
    )
    trace = synthetic.bursty_batch(days=0.5, peak_gib=1200, seed=2)
    result = run_replay(
        trace.resample(60),
        policies=[PolicySpec(p, p) for p in POLICIES],
        config=cfg,
        cluster=cluster,
        params=SimParams(),
        seed=seed,
    )
    counters = {name: run.counters for name, run in result.runs.items()}
    return outputs.json_text(result) + outputs.timeline_text(result) + json.dumps(counters, sort_keys=True)


def test_identical_seeds_give_identical_results() -> None:
    a, b = _spot_replay(5), _spot_replay(5)
    assert a == b
    assert '"interruptions"' in a  # the spot market really was exercised
    assert '"spot_' in a  # interruption warnings reached the real spot events handler
    assert _spot_replay(6) != a


@pytest.mark.parametrize("shape", ["diurnal", "bursty-batch"])
def test_the_oracle_costs_no_more_than_any_policy(shape: str) -> None:
    trace = synthetic.GENERATORS[shape](days=0.5, peak_gib=800, seed=1)
    cfg = Config.from_mapping({"max_task_nodes": 30, "group_max_nodes": 30})
    result = run_replay(
        trace.resample(60),
        policies=[PolicySpec(p, p) for p in POLICIES],
        config=cfg,
        cluster=default_cluster(),
        params=SimParams(),
    )
    oracle = result.scores["oracle"].cost_usd
    assert oracle > 0
    for name, s in result.scores.items():
        assert oracle <= s.cost_usd + 1e-9, name
        assert s.cost_ratio_vs_oracle is not None
        assert s.cost_ratio_vs_oracle >= 1.0 - 1e-12


def _shortfall_cluster(shortfalls: float = 1e6) -> ClusterSpec:
    """Core 48 GiB usable; SPOT group A (60 GiB usable nodes, the cheapest per GiB) in a capacity shortfall
    for the whole run (an episode starts within the first second, lasts 10^9 s); SPOT group B (96 GiB nodes)
    always delivers."""
    return ClusterSpec(
        "j-FALLBACK001",
        "fallback",
        (
            GroupSpec("ig-M", "master", Role.MASTER, Market.ON_DEMAND, "m5.xlarge", 16.0, 4, 0.192, nodes=1),
            GroupSpec("ig-C", "core", Role.CORE, Market.ON_DEMAND, "r5.2xlarge", 64.0, 8, 0.504, nodes=1),
            GroupSpec(
                "ig-A",
                "a",
                Role.TASK,
                Market.SPOT,
                "r6g.2xlarge",
                80.0,
                8,
                0.12,
                shortfall_episodes_per_day=shortfalls,
                shortfall_duration_s=1e9,
            ),
            GroupSpec("ig-B", "b", Role.TASK, Market.SPOT, "r5.4xlarge", 128.0, 16, 0.30),
        ),
    )


def test_a_group_in_a_capacity_shortfall_never_delivers_and_the_policy_falls_back() -> None:
    demand = [30.0] * 5 + [300.0] * 55
    base = {"max_task_nodes": 10}
    no_fallback = {**base, "spot_fallback_timeout_s": 10**9, "on_demand_fallback": False}
    result = run_replay(
        demand,
        policies=[
            PolicySpec("fallback", "sparkscale", Config.from_mapping(base)),
            PolicySpec(
                "no-fallback", "sparkscale", Config.from_mapping(no_fallback), handle_interruptions=False
            ),
        ],
        config=Config.from_mapping(base),
        cluster=_shortfall_cluster(),
        params=SimParams(),
    )
    for run in result.runs.values():
        assert run.counters["shortfall_episodes"] == 1
        # supply comes in whole B nodes (96 GiB) on top of core only: A's 60 GiB nodes never arrive
        assert all((s - 48.0) % 96.0 == 0 for s in run.supply_gib)
    # the real policy saw A's requested > running for longer than spot_fallback_timeout_s and fell back
    assert result.runs["fallback"].counters.get("decisions_with_fallback", 0) > 0
    assert result.runs["no-fallback"].counters.get("decisions_with_fallback", 0) == 0
    # without the shortfall the same replay does use A's 60 GiB nodes (so the check above can fail)
    healthy = run_replay(
        demand,
        policies=[PolicySpec("fallback", "sparkscale", Config.from_mapping(base))],
        config=Config.from_mapping(base),
        cluster=_shortfall_cluster(shortfalls=0.0),
        params=SimParams(),
    )
    assert any((s - 48.0) % 96.0 != 0 for s in healthy.runs["fallback"].supply_gib)


def test_with_sparks_executor_demand_the_first_scale_out_is_sized_in_one_step() -> None:
    """The same burst with Spark dynamic allocation modelled: the heap wake-up alarm runs run_once at 652 s,
    as above, but now SparkExecutorsNeeded (visible at 640 s) states the whole demand, 300 GiB of executors,
    so the first request asks for all of it: 300 / 0.93 target ≈ 323 GiB wanted of the 144 counted → +2
    nodes of 96 GiB (336 GiB) at once instead of +1 and the rest minutes later."""
    for collector in (True, False):
        result = run_replay(
            [100.0] * 10 + [300.0] * 20,
            policies=[PolicySpec("sparkscale", "sparkscale")],
            # the burst rule off: this pins how Spark's demand sizes a whole shortfall in one request
            config=Config.from_mapping({"max_task_nodes": 5, "burst_first_step_nodes": 0}),
            cluster=tiny_cluster(),
            params=SimParams(yarn_collector=collector),
        )
        run = result.runs["sparkscale"]
        assert run.supply_gib[:17] == [144.0] * 17
        assert run.supply_gib[17] == 336.0
        assert run.scale_out_times_s[0] == pytest.approx(652.0)
