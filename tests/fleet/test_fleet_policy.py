"""The policy on a fleet cluster: the TASK fleet's markets are groups of one-unit nodes (policy/fleet.py), so
scale-out, spot fallback, move back and scale-in work in units, with the same settings as for groups.

The TASK fleet: r5.2xlarge (64 GiB) worth 2 units and r5.4xlarge (128 GiB) worth 4 -> 32 GiB per unit either
way, 24 GiB usable at usable_memory_fraction 0.75. Spot $0.07 per unit-hour, on-demand $0.252.
CORE: 2 x r5.2xlarge (48 GiB usable each). Demand is constant: 172.8 GiB allocated, so at a 75 % YARN target
the cluster should have 172.8 / 0.75 = 230.4 GiB.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sparkscale import notices
from sparkscale.config import Config
from sparkscale.policy import Direction, GroupStatus, Market, ReasonCode, ScalerState, decide, next_state
from sparkscale.policy.fleet import (
    FleetInstanceType,
    InstanceFleet,
    market_groups,
    policy_config,
    split_market_group_id,
    unit_memory_gib,
)
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    Decision,
    InstanceGroup,
    MetricsSnapshot,
    Role,
    Signal,
)
from sparkscale.ports import Notice

from tests import model_builders

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MIB = 1024.0
SPOT, OD = "if-TASK/SPOT", "if-TASK/ON_DEMAND"
TYPES = (
    FleetInstanceType("r5.2xlarge", 2, 64.0, 8, 0.504),
    FleetInstanceType("r5.4xlarge", 4, 128.0, 16, 1.008),
)
# the burst rule off: these tests pin a whole shortfall bought at once, in units
CONFIG = Config.from_mapping(
    {"yarn_memory_used_target_pct": 75, "deadband_pct": 10, "burst_first_step_nodes": 0}
)


def fleet_cluster(
    spot: tuple[int, int] = (4, 4), od: tuple[int, int] = (0, 0), status: GroupStatus = GroupStatus.RUNNING
) -> Cluster:
    task = InstanceFleet(
        "if-TASK", "Task fleet", Role.TASK, status, TYPES, od[0], spot[0], od[1], spot[1], spot_timeout_s=600
    )
    priced = tuple(
        replace(g, usd_per_hour=0.07) if g.market is Market.SPOT else g for g in market_groups(task)
    )
    core = model_builders.group(
        "ig-core",
        name="Core",
        role=Role.CORE,
        market=Market.ON_DEMAND,
        instance_type="r5.2xlarge",
        requested=2,
        usd=0.504,
    )
    return Cluster("j-FLEET", "fleet", ClusterState.RUNNING, (core, *priced), fleets=(task,))


def demand(c: Cluster, at: datetime) -> MetricsSnapshot:
    total = sum(g.running * g.memory_gib * 0.75 for g in c.groups if g.role is not Role.MASTER)
    values = {"MemoryTotalMB": total * MIB, "MemoryAllocatedMB": 172.8 * MIB}
    return model_builders.snapshot(at, {Signal(k): v for k, v in values.items()})


def step(
    c: Cluster, state: ScalerState, at: datetime, config: Config = CONFIG
) -> tuple[Decision, ScalerState]:
    m = demand(c, at)
    d = decide(now=at, cluster=c, metrics=m, config=config, state=state)
    return d, next_state(previous=state, decision=d, cluster=c, metrics=m, now=at, config=config)


def targets(d: Decision) -> dict[str, int]:
    return {t.group_id: t.target for t in d.targets}


def test_a_market_is_a_group_whose_node_is_one_unit() -> None:
    c = fleet_cluster(spot=(6, 4))
    spot = c.group(SPOT)
    assert isinstance(spot, InstanceGroup)
    assert (spot.requested, spot.running, spot.memory_gib, spot.fleet_id) == (6, 4, 32.0, "if-TASK")
    assert split_market_group_id(SPOT) == ("if-TASK", Market.SPOT)
    assert split_market_group_id("ig-ABC") is None
    assert unit_memory_gib(TYPES, "average") == pytest.approx(192 / 6)


def test_spot_units_first_then_on_demand_when_spot_does_not_come_then_back() -> None:
    t0 = NOW
    # 1. 192 GiB running (96 CORE + 4 units x 24) for 230.4 wanted: +38.4 GiB -> 2 spot units (48 GiB)
    d, st = step(fleet_cluster(), ScalerState(), t0)
    assert targets(d) == {SPOT: 6, OD: 0}
    add = [r for r in d.reasons if r.code is ReasonCode.ADD_NODES]
    assert "Adding 2 units to group" in add[0].text
    assert st.shortfall_since == {SPOT: t0}

    # 2. t0+700 s > spot_fallback_timeout_s: the 2 spot units never came (EMR's spot resize timed out) ->
    #    they no longer count, and the on_demand_fallback buys them as 2 on-demand units
    c = fleet_cluster(spot=(6, 4))
    t1 = t0 + timedelta(seconds=700)
    d, st = step(c, st, t1)
    assert targets(d) == {SPOT: 6, OD: 2}
    assert d.fallback_groups == (SPOT,)
    assert d.fallback_to == (OD,)
    blocked = next(r for r in d.reasons if r.code is ReasonCode.SPOT_BLOCKED)
    assert "4 of 6 requested units running" in blocked.text

    # 3. spot delivers again, both markets full: 96 + 6 x 24 + 2 x 24 = 288 GiB for 230.4: the dearest
    #    memory goes first -> the 2 on-demand units
    c = fleet_cluster(spot=(6, 6), od=(2, 2))
    d, st = step(c, replace(st, last_scale_out_at=None), t1 + timedelta(seconds=1200))
    assert d.direction is Direction.IN
    assert targets(d) == {SPOT: 6, OD: 0}


def test_units_are_one_instance_type_so_the_diversification_share_does_not_apply() -> None:
    config = Config.from_mapping(
        {
            "yarn_memory_used_target_pct": 75,
            "deadband_pct": 10,
            "max_share_per_instance_type": 0.5,
            "burst_first_step_nodes": 0,
        }
    )
    c = fleet_cluster()
    assert policy_config(config, c).max_share_per_instance_type == 1.0
    assert policy_config(config, replace(c, fleets=())) is config
    d, _ = step(c, ScalerState(), NOW, config)
    assert targets(d) == {SPOT: 6, OD: 0}
    assert not any(r.code is ReasonCode.PLANNER for r in d.reasons)  # no "share relaxed"


def test_a_suspended_fleet_gets_nothing_and_the_decision_says_why() -> None:
    d, _ = step(fleet_cluster(status=GroupStatus.SUSPENDED), ScalerState(), NOW)
    assert d.direction is Direction.HOLD
    assert set(d.fallback_groups) == {SPOT, OD}
    assert any("SUSPENDED" in r.text for r in d.reasons if r.code is ReasonCode.SPOT_BLOCKED)


def test_the_decision_notice_speaks_in_units() -> None:
    c = fleet_cluster()
    d, _ = step(c, ScalerState(), NOW)
    n: Notice = notices.decision_notice(d, c, running=4)
    assert "4 -> 6 TASK units" in n.subject
    assert "4 -> 6 units at $0.0700/unit-hour" in n.body
    assert "TASK units requested: 4 -> 6" in n.body
