"""In-memory model builders shared by the policy tests (tests/policy/policy_builders.py) and the shell tests
(tests/scale/shell_support.py). Each suite wraps `group` with its own defaults: its worked numbers depend
on them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypedDict

from sparkscale.policy.model import GroupStatus, InstanceGroup, Market, MetricsSnapshot, Role, Sample, Signal


class GroupOptions(TypedDict, total=False):
    """What both suites' `group` pass through unchanged."""

    role: Role
    market: Market
    memory_gib: float
    running: int | None
    status: GroupStatus


def group(
    gid: str,
    *,
    name: str,
    instance_type: str,
    requested: int,
    usd: float,
    role: Role = Role.TASK,
    market: Market = Market.SPOT,
    memory_gib: float = 64.0,
    running: int | None = None,
    status: GroupStatus = GroupStatus.RUNNING,
) -> InstanceGroup:
    """An 8-vCPU group, SPOT TASK unless told otherwise; `running` defaults to `requested`."""
    return InstanceGroup(
        id=gid,
        name=name,
        role=role,
        market=market,
        instance_type=instance_type,
        memory_gib=memory_gib,
        vcpu=8,
        requested=requested,
        running=requested if running is None else running,
        status=status,
        usd_per_hour=usd,
    )


def snapshot(at: datetime, values: Mapping[Signal, float]) -> MetricsSnapshot:
    """Every datapoint at `at`."""
    return MetricsSnapshot({signal: Sample(float(v), at) for signal, v in values.items()})
