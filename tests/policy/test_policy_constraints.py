"""Step 3, constraints, on its own: cooldowns, stabilization floor, offers within bounds, the bounds pass."""

from __future__ import annotations

import pytest
from policy_builders import NOW, ago, cfg, cluster, group
from sparkscale.policy.constraints import (
    add_offers,
    cooldown_blocks,
    enforce_bounds,
    remove_offers,
    stabilization_floor,
)
from sparkscale.policy.model import GroupStatus, Market, Recommendation, ScalerState
from sparkscale.policy.reasons import ReasonCode


@pytest.mark.parametrize(
    ("state", "scale_in", "blocked"),
    [
        (ScalerState(), True, False),
        (ScalerState(last_scale_out_at=ago(119)), False, True),  # cooldown_after_scale_out_s 120
        (ScalerState(last_scale_out_at=ago(120)), False, False),
        (ScalerState(last_scale_out_at=ago(119)), True, True),  # a scale-out blocks scale-in too
        (ScalerState(last_scale_in_at=ago(119)), True, True),  # cooldown_after_scale_in_s 120
        (ScalerState(last_scale_in_at=ago(119)), False, False),  # ... but not a scale-out
        (ScalerState(last_scale_in_at=ago(120)), True, False),
    ],
)
def test_cooldown_blocks(state, scale_in, blocked):
    why = cooldown_blocks(state, now=NOW, config=cfg(), scale_in=scale_in)
    assert (why is not None) is blocked
    if why is not None:
        assert why.code is ReasonCode.COOLDOWN
        # 119 s ago, 120 s cooldown: 1 s left, of the cooldown that binds
        assert (why.values["cooldown_s"], why.values["left_s"]) == (120, pytest.approx(1.0))
        side = "out" if state.last_scale_out_at is not None else "in"
        assert why.subject == f"cooldown_after_scale_{side}_s"
        assert why.text.startswith("Cooldown: the last scale-")
        assert why.text.endswith("s more.")


def test_stabilization_floor_is_the_highest_recommendation_in_the_window():
    state = ScalerState(
        recommendations=(
            Recommendation(ago(900), 9, 432.0),  # outside 600 s
            Recommendation(ago(500), 4, 192.0),
            Recommendation(ago(100), 2, 96.0),
            Recommendation(ago(50), 3, None),  # no memory figure: not used
        )
    )
    assert stabilization_floor(state, now=NOW, config=cfg(), current_gib=48.0) == 192.0
    assert stabilization_floor(state, now=NOW, config=cfg(), current_gib=300.0) == 300.0
    assert (
        stabilization_floor(state, now=NOW, config=cfg(scale_in_stabilization_s=200), current_gib=0.0) == 96.0
    )


def test_offers_respect_group_bounds_status_and_blocking():
    c = cluster(
        group("a", requested=3),
        group("b", requested=1, status=GroupStatus.RECONFIGURING),
        group("r", requested=3, running=1, status=GroupStatus.RESIZING),
        group("c", requested=2),
        group("od", market=Market.ON_DEMAND, requested=1),
    )
    config = cfg(group_bounds={"a": {"min_nodes": 1, "max_nodes": 5}})
    adds = add_offers(c, blocked={"c": "x"}, config=config, market=Market.SPOT)
    # b reconfiguring, c blocked; a has room 5 - 3; r is RESIZING (EMR takes a new count): room 20 - 3
    assert [(o.key, o.max_nodes) for o in adds] == [("a", 2), ("r", 17)]
    assert adds[0].memory_gib == 48.0  # 64 GiB x 0.75
    removes = remove_offers(c, blocked={}, config=config)
    # a keeps its min 1
    assert [(o.key, o.max_nodes) for o in removes] == [("a", 2), ("r", 3), ("c", 2), ("od", 1)]
    # only nodes not yet running: r's 3 - 1 = 2
    coming = remove_offers(c, blocked={}, config=config, in_flight_only=True)
    assert [(o.key, o.max_nodes) for o in coming] == [("a", 0), ("r", 2), ("c", 0), ("od", 0)]


@pytest.mark.parametrize("options", [{}, {"bounded": False}, {"in_flight_only": True}])
def test_remove_offers_never_offer_more_nodes_than_a_group_requested(options):
    # what decide relies on to skip the planner when no group with requested nodes has one that fits
    c = cluster(
        group("a", requested=0, running=2),  # shrinking: its running nodes are already going
        group("b", requested=3, running=1),
        group("c", requested=0),
    )
    offers = remove_offers(c, blocked={}, config=cfg(group_min_nodes=0), **options)
    requested = {g.id: g.requested for g in c.task_groups}
    assert offers
    assert all((o.max_nodes or 0) <= requested[o.key] for o in offers)


def test_enforce_bounds():
    c = cluster(group("a", requested=8, usd=0.16), group("b", requested=1, usd=0.50))
    config = cfg(group_max_nodes=6, max_task_nodes=5)
    t = {"a": 8, "b": 1}
    reasons = enforce_bounds(c, t, blocked={}, config=config)
    # a: 8 -> its max 6; total 7 > 5: the dearer memory goes first: b 1 -> 0, then a 6 -> 5
    assert t == {"a": 5, "b": 0}
    assert [(r.code, r.subject) for r in reasons] == [
        (ReasonCode.BOUNDS, "a"),
        (ReasonCode.BOUNDS, "max_task_nodes"),
    ]
    assert (reasons[0].values["planned"], reasons[0].values["target"]) == (8, 6)
    assert (reasons[1].values["planned"], reasons[1].values["target"]) == (7, 5)
    t = {"a": 0, "b": 0}
    enforce_bounds(c, t, blocked={}, config=cfg(min_task_nodes=3))
    assert t == {"a": 3, "b": 0}  # raised on the cheapest SPOT group
