"""reactive-ideal: the oracle's node count, requested the moment demand changes, with the simulated delays."""

from __future__ import annotations

import pytest
from replay_helpers import tiny_cluster
from sparkscale.config import Config
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.policies import DEFAULT_POLICIES, POLICIES, REACTIVE_IDEAL
from sparkscale_tools.replay.run import PolicySpec, ReplayError, parse_policies, run_replay

# 30 GiB for 5 min, 200 GiB for 10 min, 100 GiB for 10 min, 30 GiB for 5 min (30 steps of 60 s)
STEP_TRACE = [30.0] * 5 + [200.0] * 10 + [100.0] * 10 + [30.0] * 5


def test_reactive_ideal_on_a_step_up_and_down_by_hand() -> None:
    """Core 48 GiB usable; task nodes of 96 GiB usable at $0.30/h; provisioning 360 s, decommission 120 s.

    t=0     warm start ⌈(30−48)/96⌉ → 0 nodes
    t=300   demand 200 (step 5): ⌈(200−48)/96⌉ = ⌈1.58⌉ = 2 nodes requested at once (reaction 0 s);
            usable at 660: supply 48 for steps 0..10, 48 + 2·96 = 240 from step 11
    t=900   demand 100 (step 15): ⌈52/96⌉ = 1 → one node released: supply 144 from step 15, billed to 1020
    t=1500  demand 30 (step 25): 0 → the last node released: supply 48 from step 25, billed to 1620
    cost    (1020 − 300) + (1620 − 300) = 2040 node-s × $0.30/3600 = $0.17; actions 3 (1 out, 2 in)
    τ_U     steps 5..10 (200 wanted, 48 there) = 6/30 = 20 %;  θ_U = 100 · 6 · (152/200) / 30 = 15.2 %
    oracle  2 nodes × 10 steps + 1 node × 10 steps = 30 node-min = $0.15 → ×oracle 0.17/0.15 = 1.1333
    """
    result = run_replay(
        STEP_TRACE,
        policies=[PolicySpec(REACTIVE_IDEAL, REACTIVE_IDEAL), PolicySpec("oracle", "oracle")],
        config=Config(),
        cluster=tiny_cluster(),
        params=SimParams(),
    )
    run = result.runs[REACTIVE_IDEAL]
    assert run.supply_gib == [48.0] * 11 + [240.0] * 4 + [144.0] * 10 + [48.0] * 5
    assert run.scale_out_times_s == [300.0]
    s = result.scores[REACTIVE_IDEAL]
    assert s.cost_usd == pytest.approx(0.17)
    assert s.actions == 3
    assert s.tau_u_pct == pytest.approx(20.0)
    assert s.theta_u_pct == pytest.approx(15.2)
    assert s.reaction_s_p50 == 0.0
    assert s.reaction_s_max == 0.0
    assert result.scores["oracle"].cost_usd == pytest.approx(0.15)
    assert s.cost_ratio_vs_oracle == pytest.approx(0.17 / 0.15)


def test_reactive_ideal_is_known_but_not_in_the_default_set() -> None:
    assert REACTIVE_IDEAL in POLICIES
    assert REACTIVE_IDEAL not in DEFAULT_POLICIES
    assert [p.name for p in parse_policies("oracle,reactive-ideal")] == ["oracle", REACTIVE_IDEAL]
    with pytest.raises(ReplayError, match="reactive-ideal"):
        parse_policies("nope")
