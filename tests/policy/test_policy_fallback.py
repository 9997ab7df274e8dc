"""Spot fallback (issue 7 item 3), step by step through decide -> apply -> next_state.

Groups (48 GiB usable per node each):
  s1  SPOT      r5.2xlarge  $0.16/h  -> $0.00333 per GiB-hour (cheapest)
  s2  SPOT      m5.4xlarge  $0.20/h  -> $0.00417 per GiB-hour
  od  ON_DEMAND r5.2xlarge  $0.504/h -> $0.0105 per GiB-hour
CORE 2 x 48 GiB. Demand is constant: 172.8 GiB allocated (90 % of the first 192 GiB), so YARN wants
172.8 / 0.75 = 230.4 GiB throughout. The worked numbers here are about the fallback, so the configuration pins
the YARN target at 75 % with a 10 % deadband (not the defaults).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from policy_builders import MIB, NOW, cfg, cluster, group, metrics, targets
from sparkscale.policy import (
    Cluster,
    Direction,
    GroupStatus,
    Market,
    ReasonCode,
    ScalerState,
    blocked_groups,
    decide,
    next_state,
)

ALLOCATED_GIB = 172.8
USABLE = 48.0


def fcfg(**kw):
    """The configuration of these tests: YARN target 75 %, deadband 10 %, plus `kw`."""
    return cfg(yarn_memory_used_target_pct=75, deadband_pct=10, **kw)


CONFIG = fcfg()


def fleet(s1=(2, 2), s2=(0, 0), od=(0, 0), s1_status=GroupStatus.RUNNING) -> Cluster:
    return cluster(
        group("s1", requested=s1[0], running=s1[1], usd=0.16, status=s1_status),
        group("s2", instance_type="m5.4xlarge", requested=s2[0], running=s2[1], usd=0.20),
        group("od", market=Market.ON_DEMAND, requested=od[0], running=od[1], usd=0.504),
    )


def demand(c: Cluster, at):
    """YARN as EMR would report it: total = running CORE + TASK nodes x 48 GiB; allocated is the demand."""
    total = sum(g.running for g in c.groups if g.role.value != "MASTER") * USABLE
    return metrics(at, MemoryTotalMB=total * MIB, MemoryAllocatedMB=ALLOCATED_GIB * MIB)


def step(c: Cluster, state: ScalerState, at, config=CONFIG):
    m = demand(c, at)
    d = decide(now=at, cluster=c, metrics=m, config=config, state=state)
    return d, next_state(previous=state, decision=d, cluster=c, metrics=m, now=at, config=config)


def test_fallback_to_the_next_spot_group_then_on_demand_then_back_to_spot():
    t0 = NOW
    # 1. t0: 90 % used -> +38.4 GiB -> one node on the cheapest group, s1
    c = fleet()
    d, st = step(c, ScalerState(), t0)
    assert targets(d) == {"s1": 3, "s2": 0, "od": 0}
    assert d.fallback_groups == ()
    assert st.shortfall_since == {"s1": t0}  # requested 3, running 2 from now on

    # 2. t0+300 s: the node is still coming (counted): nothing new
    c = fleet(s1=(3, 2))
    d, st = step(c, st, t0 + timedelta(seconds=300))
    assert d.direction is Direction.HOLD
    assert st.shortfall_since == {"s1": t0}

    # 3. t0+700 s > spot_fallback_timeout_s 600: s1 is blocked, its missing node no longer counts; the
    #    unmet 38.4 GiB goes to the next cheapest SPOT group, s2
    t2 = t0 + timedelta(seconds=700)
    d, st = step(c, st, t2)
    assert targets(d) == {"s1": 3, "s2": 1, "od": 0}
    assert d.fallback_groups == ("s1",)
    assert d.fallback_to == ("s2",)
    blocked = [r for r in d.reasons if r.code is ReasonCode.SPOT_BLOCKED]
    assert [r.subject for r in blocked] == ["s1"]
    assert "spot_fallback_timeout_s 600 s" in str(blocked[0])
    assert [r.subject for r in d.reasons if r.code is ReasonCode.SPOT_FALLBACK] == ["s1"]

    # 4. EMR reports insufficient capacity for s2 (the shell records it); t2+200 s: no SPOT group can deliver
    #    -> ON_DEMAND fallback
    st = replace(st, capacity_errors={"s2": t2 + timedelta(seconds=60)})
    c = fleet(s1=(3, 2), s2=(1, 0))
    t3 = t2 + timedelta(seconds=200)
    d, st = step(c, st, t3)
    assert targets(d) == {"s1": 3, "s2": 1, "od": 1}
    assert set(d.fallback_groups) == {"s1", "s2"}
    assert d.fallback_to == ("od",)
    od_fallback = [r for r in d.reasons if r.code is ReasonCode.ON_DEMAND_FALLBACK]
    assert [r.subject for r in od_fallback] == ["od"]
    assert od_fallback[0].values["short_gib"] == pytest.approx(38.4)
    assert d.direction is Direction.OUT

    # 5. t3+700 s: both SPOT groups delivered; 336 GiB running for 230.4 wanted: 105.6 GiB surplus.
    #    The most expensive memory goes first: od (48), then s2 (48); s1's 48 > 9.6 left stays.
    c = fleet(s1=(3, 3), s2=(1, 1), od=(1, 1))
    t4 = t3 + timedelta(seconds=700)
    assert (
        blocked_groups(c, st, now=t4, config=CONFIG) == {}
    )  # recovered: error older than 600 s, no shortfall
    d, st = step(c, st, t4)
    assert targets(d) == {"s1": 3, "s2": 0, "od": 0}
    assert d.direction is Direction.IN
    assert st.capacity_errors == {}
    assert st.shortfall_since == {}


def test_capacity_error_blocks_even_without_shortfall_for_the_timeout():
    c = fleet()
    st = ScalerState(capacity_errors={"s1": NOW - timedelta(seconds=30)})
    d, _ = step(c, st, NOW)
    assert targets(d) == {"s1": 2, "s2": 1, "od": 0}  # the need (38.4 GiB) went to s2
    assert d.fallback_groups == ("s1",)


def test_suspended_or_arrested_spot_group_gets_nothing():
    for status in (GroupStatus.SUSPENDED, GroupStatus.ARRESTED):
        d, _ = step(fleet(s1_status=status), ScalerState(), NOW)
        assert targets(d) == {"s1": 2, "s2": 1, "od": 0}
        blocked = [r for r in d.reasons if r.code is ReasonCode.SPOT_BLOCKED]
        assert [r.subject for r in blocked] == ["s1"]
        assert status.value in str(blocked[0])


def test_no_on_demand_when_disabled():
    config = fcfg(on_demand_fallback=False)
    st = ScalerState(capacity_errors={"s1": NOW, "s2": NOW})
    d, _ = step(fleet(), st, NOW, config)
    assert d.direction is Direction.HOLD
    assert targets(d) == {"s1": 2, "s2": 0, "od": 0}
    # operators hear of it through fallback_groups; no configured maximum binds, so not "at max"
    assert d.fallback_groups == ("s1", "s2")
    assert not d.at_max_under_pressure


def test_on_demand_is_not_used_while_spot_delivers():
    # s1 and s2 healthy: even at their max, the on-demand group is not a spill-over
    config = fcfg(
        group_bounds={"s1": {"min_nodes": 0, "max_nodes": 2}, "s2": {"min_nodes": 0, "max_nodes": 0}}
    )
    d, _ = step(fleet(), ScalerState(), NOW, config)
    assert targets(d) == {"s1": 2, "s2": 0, "od": 0}
    assert d.at_max_under_pressure


def test_move_back_to_spot_in_two_phases():
    # od runs 1 node above its min (0) while s1 is healthy. YARN: 96 + 96 + 48 = 240 GiB, 180 GiB allocated
    # (75 %, on target). Phase 1: buy 48 GiB of spot first (s1 +1).
    alloc = 180.0

    def m(c, at):
        total = sum(g.running for g in c.groups if g.role.value != "MASTER") * USABLE
        return metrics(at, MemoryTotalMB=total * MIB, MemoryAllocatedMB=alloc * MIB)

    def go(c, state, at):
        d = decide(now=at, cluster=c, metrics=m(c, at), config=CONFIG, state=state)
        return d, next_state(previous=state, decision=d, cluster=c, metrics=m(c, at), now=at, config=CONFIG)

    c = fleet(od=(1, 1))
    d, st = go(c, ScalerState(), NOW)
    assert targets(d) == {"s1": 3, "s2": 0, "od": 1}
    assert d.direction is Direction.OUT
    assert d.reasons[0].code is ReasonCode.MOVE_BACK_BUY_SPOT  # it drove the scale-out
    assert d.reasons[0].values["on_demand_gib"] == pytest.approx(48.0)
    # while the spot node is coming: nothing more (no second purchase, the od node stays)
    c = fleet(s1=(3, 2), od=(1, 1))
    d, st = go(c, st, NOW + timedelta(seconds=130))
    assert d.direction is Direction.HOLD
    # phase 2: the spot node runs; 288 GiB for 240 wanted -> the on-demand node goes
    c = fleet(s1=(3, 3), od=(1, 1))
    d, st = go(c, st, NOW + timedelta(seconds=400))
    assert targets(d) == {"s1": 3, "s2": 0, "od": 0}
    assert d.direction is Direction.IN
    # an ordinary scale-in (240 of 288 GiB wanted) that takes the dearest memory first: the need leads
    assert (d.reasons[0].code, d.reasons[0].values["desired_gib"]) == (ReasonCode.NEED, pytest.approx(240.0))
    assert [r.subject for r in d.reasons if r.code is ReasonCode.REMOVE_NODES] == ["od"]
    # and then it is stable
    c = fleet(s1=(3, 3))
    d, _ = go(c, st, NOW + timedelta(seconds=800))
    assert d.direction is Direction.HOLD
