"""Scores on hand-checked numbers, and the two analytic baselines (oracle, static-peak)."""

from __future__ import annotations

import pytest
from replay_helpers import tiny_cluster
from sparkscale.config import Config
from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.scores import (
    covered_steps,
    episodes,
    exact_onsets,
    heap_reaction_times,
    reaction_times,
    score,
)


def test_elasticity_metrics_by_hand() -> None:
    # step d   s   under/max(d,1)  over/max(d,1)
    #  0   10  20   -               10/10 = 1.0
    #  1   20  10   10/20 = 0.5     -
    #  2   30  30   -               -
    #  3   10  40   -               30/10 = 3.0
    #  4   0.5 0    0.5/1 = 0.5     -          (demand below 1 GiB is divided by 1 GiB)
    # θ_U = 100·(0.5+0.5)/5 = 20 %, θ_O = 100·(1+3)/5 = 80 %, τ_U = 2/5 = 40 %, τ_O = 2/5 = 40 %
    # episodes of s<d: steps [1] (starts 60 s) and [4] (starts 240 s); scale-outs at 90 s and 250 s
    # → reactions 30 s and 10 s: p50 = 20 s, max = 30 s
    s = score(
        demand=[10, 20, 30, 10, 0.5],
        supply=[20, 10, 30, 40, 0],
        step_s=60,
        cost_usd=3.0,
        oracle_cost_usd=2.0,
        actions=4,
        scale_out_times_s=[250.0, 90.0, 400.0],
    )
    assert s.theta_u_pct == pytest.approx(20.0)
    assert s.theta_o_pct == pytest.approx(80.0)
    assert s.tau_u_pct == pytest.approx(40.0)
    assert s.tau_o_pct == pytest.approx(40.0)
    assert s.cost_ratio_vs_oracle == pytest.approx(1.5)
    assert s.actions == 4
    assert s.reaction_s_p50 == pytest.approx(20.0)
    assert s.reaction_s_max == pytest.approx(30.0)


def test_reaction_only_counts_requests_inside_the_episode() -> None:
    flags = [False, True, True, False, True, False]
    assert episodes(flags) == [(1, 3), (4, 5)]
    # a request before the first episode and one after the second's end do not count
    assert reaction_times(flags, [10.0, 100.0, 400.0], 60) == [40.0]
    assert reaction_times([True, True], [], 60) == []
    assert heap_reaction_times([50.0, 80.0, 90.0, float("nan")], 77.0, [150.0], 60) == [90.0]


def test_an_episode_answered_before_it_began_is_timed_from_its_first_uncovered_step() -> None:
    # The SWIM case: a request at 52 s (before the episode) launches 48 GiB; steps of 60 s.
    # step  demand  supply  launching  short  covered (supply + launching >= demand)
    #  0     90     192       0        no     yes
    #  1    202     192      48        yes    yes  (240 >= 202)  <- episode starts at 60 s
    #  2    216     192      48        yes    yes
    #  3    281     192      48        yes    no   (240 < 281)   <- the demand outgrew what was asked for
    #  4    300     240       0        yes    no
    #  5    200     336       0        no     yes
    demand = [90.0, 202.0, 216.0, 281.0, 300.0, 200.0]
    supply = [192.0, 192.0, 192.0, 192.0, 240.0, 336.0]
    launching = [0.0, 48.0, 48.0, 48.0, 0.0, 0.0]
    covered = covered_steps(demand, supply, launching)
    assert covered == [True, True, True, False, False, True]
    flags = [s < d for d, s in zip(demand, supply, strict=True)]
    requests = [52.0, 232.0]
    # counting only requests within the episode: 232 - 60 = 172 s
    assert reaction_times(flags, requests, 60) == [172.0]
    # the 52 s request answered its start; the next one answers the uncovered step 3: 232 - 180 = 52 s
    assert reaction_times(flags, requests, 60, covered=covered) == [52.0]
    # covered to its end: no reaction time (like an episode that ends without a request)
    assert reaction_times(flags[:3], [52.0], 60, covered=covered[:3]) == []

    # the same through score(), and without `launching` (the oracle's runs) the strict rule
    def scored(launching: list[float]) -> float | None:
        return score(
            demand=demand,
            supply=supply,
            step_s=60,
            cost_usd=1.0,
            oracle_cost_usd=1.0,
            actions=2,
            scale_out_times_s=requests,
            launching=launching,
        ).reaction_s_max

    assert scored(launching) == 52.0
    assert scored([]) == 172.0
    assert covered_steps(demand, supply, []) is None


def test_a_request_within_the_first_step_stays_the_answer_even_when_its_nodes_cover_the_demand() -> None:
    # the episode starts at 60 s; a request at 60 s launches 96 GiB at once (covered at step 1): its
    # reaction is that request (0 s), not skipped as answered before the episode began
    demand, supply, launching = [50.0, 150.0, 150.0], [100.0, 100.0, 100.0], [0.0, 96.0, 96.0]
    covered = covered_steps(demand, supply, launching)
    assert reaction_times([False, True, True], [60.0], 60, covered=covered) == [0.0]


def test_an_episode_that_starts_between_steps_is_timed_from_the_supply_drop() -> None:
    # demand 100 GiB all along, steps of 60 s; sampled supply 200, 200, 50, 50 (flags F F T T: the episode's
    # first step is 2, t0 = 120 s). Between the steps: at 65 s supply fell to 150 (still enough), at 90 s to
    # 50 (short). The policy asked for nodes at 100 s, before the sampled start.
    demand = [100.0, 100.0, 100.0, 100.0]
    changes = [(65.0, 150.0), (90.0, 50.0)]
    # sampled only: the 100 s request is before t0 = 120 and does not count; no later request
    assert reaction_times([False, False, True, True], [100.0], 60) == []
    onset = exact_onsets(demand, changes, 60, lambda d, s: s < d)
    assert onset(2) == 90.0  # the walk back stops at 65 s: 150 GiB was not short of 100
    assert onset(0) == 0.0
    s = score(
        demand=demand,
        supply=[200.0, 200.0, 50.0, 50.0],
        step_s=60,
        cost_usd=1.0,
        oracle_cost_usd=1.0,
        actions=1,
        scale_out_times_s=[100.0],
        supply_changes=changes,
    )
    assert (s.reaction_s_p50, s.reaction_s_max) == (10.0, 10.0)  # 100 - 90
    # a change at a step's own time is in that step's sample: it never moves an onset before that step
    assert exact_onsets(demand, [(60.0, 50.0)], 60, lambda d, s: s < d)(2) == 120.0
    # a drop in an earlier step does not reach back further than one step
    assert exact_onsets(demand, [(10.0, 50.0)], 60, lambda d, s: s < d)(2) == 120.0


def test_heap_reaction_uses_the_model_heap_for_the_exact_start() -> None:
    # heap model for the test: 60 % while demand fits, 98 % otherwise; threshold 75 %
    def heap_of(d: float, s: float) -> float | None:
        return 60.0 if s >= d else 98.0

    heap = [60.0, 60.0, 98.0]
    assert heap_reaction_times(heap, 75.0, [100.0], 60) == []
    rt = heap_reaction_times(
        heap, 75.0, [100.0], 60, heap_of=heap_of, demand=[100.0] * 3, supply_changes=[(70.0, 40.0)]
    )
    assert rt == [30.0]


def test_no_under_provisioning_means_no_reaction_and_a_free_oracle_gives_ratio_one() -> None:
    s = score(
        demand=[1, 1],
        supply=[2, 2],
        step_s=60,
        cost_usd=0.0,
        oracle_cost_usd=0.0,
        actions=0,
        scale_out_times_s=[],
    )
    assert s.reaction_s_p50 is None
    assert s.reaction_s_max is None
    assert s.cost_ratio_vs_oracle == 1.0
    with pytest.raises(ValueError, match="same, non-zero length"):
        score(
            demand=[1],
            supply=[],
            step_s=60,
            cost_usd=0,
            oracle_cost_usd=None,
            actions=0,
            scale_out_times_s=[],
        )


def test_oracle_and_static_peak_by_hand() -> None:
    # core: 1 × 64 GiB × 0.75 = 48 GiB; task node 128 × 0.75 = 96 GiB usable at $0.30/h; steps of 60 s
    # demand  40  100  250  40
    # oracle nodes ⌈(d−48)/96⌉ = 0, ⌈52/96⌉ = 1, ⌈202/96⌉ = 3, 0 → supply 48, 144, 336, 48
    # oracle cost = (0+1+3+0) node-minutes × $0.30/60 = $0.02; actions: 0→1, 1→3, 3→0 = 3
    # static-peak: ⌈202/96⌉ = 3 nodes all the time: 12 node-minutes = $0.06
    cluster = tiny_cluster()
    cfg, p = Config(), SimParams()
    offer = cluster.cheapest_task_group(cfg.usable_memory_fraction)
    demand = [40.0, 100.0, 250.0, 40.0]
    o = pol.oracle_run(demand, core_gib=48.0, offer=offer, config=cfg, p=p)
    assert o.supply_gib == [48.0, 144.0, 336.0, 48.0]
    assert o.cost_usd == pytest.approx(0.02)
    assert o.actions == 3
    assert o.scale_out_times_s == [60.0, 120.0]
    st = pol.static_peak_run(demand, core_gib=48.0, offer=offer, config=cfg, p=p)
    assert st.supply_gib == [336.0] * 4
    assert st.cost_usd == pytest.approx(0.06)
    assert st.actions == 0
