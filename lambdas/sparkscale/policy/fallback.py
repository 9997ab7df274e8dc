"""Spot fallback: which TASK groups may not get new capacity now, and why.

A SPOT group is blocked when its requested nodes have not all been running for longer than
spot_fallback_timeout_s (ScalerState.shortfall_since, kept by next_state), or when EMR reported it lacks
capacity (ScalerState.capacity_errors, recorded by the shell from instance-group events or resize errors; an
error blocks for at least spot_fallback_timeout_s and until the group has all its requested nodes running).
Any TASK group that is SUSPENDED or ARRESTED is blocked too. A blocked group keeps its requested count (EMR
keeps trying), but its undelivered nodes no longer count as coming, so the estimate asks for that memory
again and the planner puts it on the next cheapest SPOT group, then on an ON_DEMAND TASK group when
config.on_demand_fallback allows. When the group delivers (its shortfall clears) it is no longer blocked, and
the surplus then goes, most expensive memory first.
"""

from __future__ import annotations

from datetime import datetime

from sparkscale.config import Config
from sparkscale.policy.fleet import noun
from sparkscale.policy.model import Cluster, GroupStatus, InstanceGroup, Market, ScalerState

FAILED_STATUSES = frozenset({GroupStatus.SUSPENDED, GroupStatus.ARRESTED})


def _age_s(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()


def label(g: InstanceGroup) -> str:
    """'Spot r5 (ig-1, SPOT r5.2xlarge)', or 'ig-1 (SPOT r5.2xlarge)' for a group without its own name."""
    if g.name and g.name != g.id:
        return f"{g.name} ({g.id}, {g.market.value} {g.instance_type})"
    return f"{g.id} ({g.market.value} {g.instance_type})"


def blocked_groups(cluster: Cluster, state: ScalerState, *, now: datetime, config: Config) -> dict[str, str]:
    """TASK group id -> a sentence saying why it gets no new capacity. Groups are checked in cluster order."""
    if not state.capacity_errors and not state.shortfall_since:
        # only a failed status blocks then: known from the cluster alone, once per Cluster value
        return dict(cluster.derived("failed_groups", _failed_groups))
    out: dict[str, str] = {}
    for g in cluster.task_groups:
        if g.status in FAILED_STATUSES:
            out[g.id] = _failed_reason(g)
            continue
        if g.market is not Market.SPOT:
            continue
        err_at = state.capacity_errors.get(g.id)
        if (
            err_at is not None
            and g.requested <= g.running
            and _age_s(now, err_at) >= config.spot_fallback_timeout_s
        ):
            err_at = None  # delivered since, and the error is older than the timeout: next_state clears it
        if err_at is not None:
            out[g.id] = (
                f"EMR reported insufficient capacity for group {label(g)} at {err_at.isoformat()}: "
                f"it gets no new capacity until it delivers its requested {noun(g)}."
            )
            continue
        since = state.shortfall_since.get(g.id)
        if since is not None and g.requested > g.running:
            waited = (now - since).total_seconds()
            if waited > config.spot_fallback_timeout_s:
                units = noun(g)
                out[g.id] = (
                    f"Group {label(g)} has {g.running} of {g.requested} requested {units} running after "
                    f"{waited:.0f} s (spot_fallback_timeout_s {config.spot_fallback_timeout_s} s): its "
                    f"{g.requested - g.running} missing {units} no longer count, and it gets no new capacity."
                )
    return out


def _failed_reason(g: InstanceGroup) -> str:
    return f"Group {label(g)} is {g.status.value}: it gets no new capacity."


def _failed_groups(cluster: Cluster) -> tuple[tuple[str, str], ...]:
    """The SUSPENDED or ARRESTED TASK groups, with why they are blocked, in cluster order."""
    return tuple((g.id, _failed_reason(g)) for g in cluster.task_groups if g.status in FAILED_STATUSES)
