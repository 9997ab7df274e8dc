"""A confirmed burst buys a share of the memory waiting (policy/pending_share.py, `pending_share_pct`).

Cluster as in test_policy_burst: CORE 2 x r5.2xlarge (48 GiB usable each), TASK group ig-a SPOT r5.2xlarge,
48 GiB usable per node; YARN memory used target 85 %, deadband 8 %. The burst began on 192 GiB (its base),
600 s ago, and the cluster's earlier bursts were long (LONG_ONES): the burst rule buys the whole shortfall.

Worked numbers: ig-a 3 requested, 2 running: counted 96 + 144 = 240 GiB, running 192 GiB, all of it
allocated; 100 containers of 4 GiB wait (400 GiB). Demand 192 + 400 = 592 GiB; at 85 %: 696.5 GiB wanted,
696.5 - 240 = 456.5 GiB short -> 10 nodes (480 GiB) bought whole: ig-a 13.
"""

from __future__ import annotations

import pytest
from policy_builders import NOW, cfg, cluster, group, metrics, targets, yarn
from sparkscale.config import Config
from sparkscale.policy import Direction, ReasonCode, ScalerState, decide
from sparkscale.policy.model import BurstLevel
from test_policy_burst import LONG_ONES, ON, ago

QUEUE = yarn(192, 100, ContainerPending=100, AppsRunning=1)


def confirmed(base_gib: float = 192.0) -> ScalerState:
    return ScalerState(
        burst_levels=(BurstLevel(ago(600), base_gib),),
        burst_short=True,
        burst_out_of_memory=True,
        burst_durations_s=LONG_ONES,
        last_scale_out_at=ago(400),
    )


def run(state: ScalerState, *, requested: int = 3, running: int = 2, **settings: float):
    return decide(
        now=NOW,
        cluster=cluster(group("ig-a", requested=requested, running=running)),
        metrics=metrics(**QUEUE),
        config=cfg(**{**ON, **settings}),
        state=state,
    )


def test_the_default_buys_the_whole_shortfall():
    assert Config().pending_share_pct == 100.0
    d = run(confirmed())
    assert targets(d) == {"ig-a": 13}
    assert all(r.code is not ReasonCode.PENDING_SHARE for r in d.reasons)


def test_a_share_buys_for_the_base_plus_that_share_of_what_waits():
    # 400 GiB wait beyond the 192 allocated; 192 (base) + 25 % x 400 / 0.85 = 309.6 GiB; 309.6 - 240 counted =
    # 69.6 GiB -> 2 nodes (96 GiB), not 10
    d = run(confirmed(), pending_share_pct=25)
    assert d.direction is Direction.OUT
    assert targets(d) == {"ig-a": 5}
    why = d.reasons[0]
    assert why.code is ReasonCode.PENDING_SHARE
    assert why.values["waiting_gib"] == pytest.approx(400.0)
    assert why.values["target_gib"] == pytest.approx(192 + 100 / 0.85)
    assert why.values["allowed_gib"] == pytest.approx(192 + 100 / 0.85 - 240)
    assert "25 %" in why.text
    assert "pending_share_pct" in why.text
    assert d.desired_task_nodes == 13  # the audit still shows the whole need (3 + 10 nodes)
    assert not d.at_max_under_pressure  # the rest is left by choice


def test_it_is_measured_from_the_base_not_from_what_runs_now():
    # a higher base (what the cluster had when the burst began) asks for more: 288 + 117.6 = 405.6 GiB,
    # 165.6 more than the 240 counted -> 4 nodes. What runs now (192) does not raise it: adding a share of the
    # queue to what runs would grow at every evaluation until the queue is gone
    assert targets(run(confirmed(288.0), pending_share_pct=25)) == {"ig-a": 7}


def test_nodes_already_counted_for_the_share_hold():
    # ig-a 6 requested: counted 96 + 288 = 384 GiB >= the 309.6 the share asks for: nothing more, and why
    d = run(confirmed(), requested=6, pending_share_pct=25)
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.PENDING_SHARE
    assert d.reasons[0].values["allowed_gib"] == 0.0


def test_never_below_what_is_allocated():
    # base 0 (a burst that began on an empty cluster): the share alone would ask 117.6 GiB, below the 192
    # allocated; the floor is what runs at the target's fill, 192 / 0.85 = 225.9 < 240 counted: hold
    d = run(confirmed(0.0), pending_share_pct=25)
    assert d.direction is Direction.HOLD
    assert d.reasons[0].values["target_gib"] == pytest.approx(192 / 0.85)


def test_a_wait_within_the_whole_multiple_is_bought_whole():
    # pending_whole_multiple 3: up to 3 x 192 = 576 GiB of waiting memory is bought whole; the 400 GiB waiting
    # is within it, so the whole shortfall is bought, as with 100 %
    assert targets(run(confirmed(), pending_share_pct=25, pending_whole_multiple=3)) == {"ig-a": 13}


def test_beyond_the_whole_multiple_only_the_share_is_cut():
    # pending_whole_multiple 1: 192 GiB bought whole, 25 % of the other 208: 192 + (192 + 52) / 0.85 =
    # 479.1 GiB; 239.1 more than the 240 counted -> 5 nodes (240 GiB), not 10
    d = run(confirmed(), pending_share_pct=25, pending_whole_multiple=1)
    assert targets(d) == {"ig-a": 8}
    assert d.reasons[0].values["whole_gib"] == pytest.approx(192.0)
    assert d.reasons[0].values["target_gib"] == pytest.approx(192 + 244 / 0.85)


def test_without_a_burst_going_on_it_does_not_apply():
    # the burst rule off: no burst is followed, every scale-out buys the whole shortfall
    d = run(ScalerState(), pending_share_pct=25, burst_first_step_nodes=0)
    assert targets(d) == {"ig-a": 13}


def test_a_young_burst_still_gets_its_first_step():
    # this evaluation starts a burst: the burst rule's one node, the share does not apply yet
    d = run(ScalerState(), pending_share_pct=25)
    assert targets(d) == {"ig-a": 4}
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("pending_share_pct", 0),
        ("pending_share_pct", -5),
        ("pending_share_pct", 101),
        ("pending_share_pct", "half"),
        ("pending_whole_multiple", -1),
    ],
)
def test_the_settings_are_checked(name, bad):
    with pytest.raises(ValueError, match=name):
        Config.from_mapping({name: bad})
