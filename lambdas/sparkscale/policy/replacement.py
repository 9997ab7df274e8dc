"""Where a node lost to a spot interruption or rebalance recommendation should come back (pure).

Left alone, EMR replaces a lost task node in the SAME instance group, i.e. the same spot pool that is being
reclaimed. Instead the node moves:
- the interrupted group's requested count goes down by one (EMR then does not replace it in that pool), and
- another SPOT TASK group of a DIFFERENT instance type, the cheapest per usable GiB-hour that has room within
  its bounds and the diversification share, goes up by one;
- with no such spot group, an ON_DEMAND TASK group (when `on_demand_fallback`); otherwise nothing changes and
  EMR replaces the node as usual.
The total requested task nodes stay the same, so the next scaling decision does not add the node again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sparkscale.config import Config
from sparkscale.policy.constraints import RESIZABLE_STATUSES
from sparkscale.policy.fallback import blocked_groups, label
from sparkscale.policy.model import Cluster, GroupTarget, InstanceGroup, Market, Role, ScalerState
from sparkscale.policy.planner import Offer, share_ok


class ReplacementKind(StrEnum):
    REPLACED_SPOT = "replaced_spot"  # moved to another spot pool
    REPLACED_ON_DEMAND = "replaced_on_demand"  # no spot pool had room: on-demand fallback
    LEFT_TO_EMR = "left_to_emr"  # nothing changed; EMR replaces the node in its own group


@dataclass(frozen=True)
class ReplacementPlan:
    cluster_id: str
    group_id: str  # the interrupted group
    kind: ReplacementKind
    interrupted: InstanceGroup | None
    replacement: InstanceGroup | None
    changes: tuple[GroupTarget, ...]  # empty unless a replacement was chosen
    reasons: tuple[str, ...]


# The groups whose count may change now: the policy's own rule (RUNNING, or RESIZING: a new count interrupts
# a resize in progress), which EmrCapacityWriter mirrors.
_USABLE_STATUSES: Final = RESIZABLE_STATUSES


def usd_per_usable_gib_hour(group: InstanceGroup, config: Config) -> float:
    """USD per GiB-hour of memory YARN can allocate on a node of `group` (the planner's Offer ranking);
    inf when the price or the memory is unknown, so such a group comes last."""
    offer = Offer(
        key=group.id,
        instance_type=group.instance_type,
        memory_gib=group.memory_gib * config.usable_memory_fraction,
        usd_per_hour=group.usd_per_hour,
        market=group.market,
    )
    if not (group.usd_per_hour > 0 and math.isfinite(group.usd_per_hour)):
        return math.inf
    return offer.usd_per_gib_hour


def blocked(cluster: Cluster, state: ScalerState | None, now: datetime, config: Config) -> dict[str, str]:
    """TASK groups that get no new capacity now: the policy's spot-fallback rule (SUSPENDED/ARRESTED, EMR
    capacity errors, a shortfall older than spot_fallback_timeout_s), plus any group that is not RUNNING."""
    out = dict(blocked_groups(cluster, state or ScalerState(), now=now, config=config))
    for g in cluster.task_groups:
        if g.id not in out and g.status not in _USABLE_STATUSES:
            out[g.id] = f"Group {label(g)} is {g.status.value}: it gets no new capacity."
    return out


# a unit of a fleet is no one node: EMR keeps the fleet at its target units itself
_FLEET_LEFT_TO_EMR: Final = "an instance fleet's node: EMR replaces it within the fleet's target units"


def choose_replacement(
    *,
    cluster: Cluster,
    group_id: str,
    config: Config,
    now: datetime,
    state: ScalerState | None = None,
) -> ReplacementPlan:
    """Where the node lost from `group_id` should come back. See the module docstring for the rules."""
    g = cluster.group(group_id)
    if g is None:
        return _leave(cluster, group_id, None, [f"group {group_id} is not in cluster {cluster.id}"])
    why_not = _why_not_move_from(g, config) if g.fleet_id is None else _FLEET_LEFT_TO_EMR
    if why_not is not None:
        return _leave(cluster, group_id, g, [why_not])
    skipped: list[str] = []
    blocked_now = blocked(cluster, state, now, config)

    def candidates(market: Market) -> list[InstanceGroup]:
        return _candidates(
            cluster=cluster, lost=g, market=market, config=config, blocked_now=blocked_now, skipped=skipped
        )

    spot = candidates(Market.SPOT)
    if spot:
        return _plan(
            cluster=cluster,
            lost=g,
            to=spot[0],
            kind=ReplacementKind.REPLACED_SPOT,
            config=config,
            notes=skipped,
        )
    if not config.on_demand_fallback:
        why = "no other spot TASK group can take the node (on-demand fallback off)"
        return _leave(cluster, group_id, g, [why, *skipped])
    on_demand = candidates(Market.ON_DEMAND)
    if not on_demand:
        return _leave(
            cluster, group_id, g, ["no other spot or on-demand TASK group can take the node", *skipped]
        )
    notes = ["no other spot group can take the node: on-demand fallback", *skipped]
    return _plan(
        cluster=cluster,
        lost=g,
        to=on_demand[0],
        kind=ReplacementKind.REPLACED_ON_DEMAND,
        config=config,
        notes=notes,
    )


def _leave(
    cluster: Cluster, group_id: str, interrupted: InstanceGroup | None, reasons: Sequence[str]
) -> ReplacementPlan:
    return ReplacementPlan(
        cluster.id, group_id, ReplacementKind.LEFT_TO_EMR, interrupted, None, (), tuple(reasons)
    )


def _why_not_move_from(g: InstanceGroup, config: Config) -> str | None:
    """Why the node lost from `g` must not be moved (EMR replaces it, or it needs no replacement)."""
    if g.role is not Role.TASK:
        return f"{g.id} is a {g.role} group: EMR replaces its nodes"
    if g.requested < 1:
        return f"{g.id} already requests 0 nodes: nothing to replace"
    if g.running > g.requested:
        return (
            f"{g.id} is shrinking ({g.running} running > {g.requested} requested): the loss counts toward it"
        )
    if g.status not in _USABLE_STATUSES:
        return f"{g.id} is {g.status.value}: it cannot be resized now, EMR replaces the node in its group"
    own = config.bounds_for(g.id, g.name)
    if g.requested - 1 < own.min_nodes:
        return f"{g.id} is at its minimum of {own.min_nodes}: EMR replaces the node in its group"
    return None


def _candidates(
    *,
    cluster: Cluster,
    lost: InstanceGroup,
    market: Market,
    config: Config,
    blocked_now: Mapping[str, str],
    skipped: list[str],
) -> list[InstanceGroup]:
    # TASK memory by instance type once the lost node is gone (what the planner calls "existing")
    existing: dict[str, float] = {}
    for t in cluster.task_groups:
        nodes = t.requested - (t.id == lost.id)
        existing[t.instance_type] = existing.get(t.instance_type, 0.0) + nodes * t.memory_gib
    out: list[InstanceGroup] = []
    for c in cluster.task_groups:
        if c.id == lost.id or c.market is not market:
            continue
        if market is Market.SPOT and c.instance_type == lost.instance_type:
            skipped.append(f"{c.id}: same instance type {c.instance_type} (the same spot pool)")
            continue
        if c.id in blocked_now:
            skipped.append(blocked_now[c.id])
            continue
        bounds = config.bounds_for(c.id, c.name)
        if c.requested + 1 > bounds.max_nodes:
            skipped.append(f"{c.id}: at its maximum of {bounds.max_nodes} nodes")
            continue
        if not share_ok({c.instance_type: c.memory_gib}, existing, config.max_share_per_instance_type):
            skipped.append(
                f"{c.id}: {c.instance_type} would exceed max_share_per_instance_type "
                f"{config.max_share_per_instance_type:g} of task memory"
            )
            continue
        out.append(c)
    return sorted(out, key=lambda c: (usd_per_usable_gib_hour(c, config), c.usd_per_hour, c.id))


def _target(g: InstanceGroup, delta: int) -> GroupTarget:
    return GroupTarget(
        g.id, g.name, g.instance_type, g.market, g.requested, g.requested + delta, g.usd_per_hour
    )


def _plan(
    *,
    cluster: Cluster,
    lost: InstanceGroup,
    to: InstanceGroup,
    kind: ReplacementKind,
    config: Config,
    notes: Sequence[str],
) -> ReplacementPlan:
    rate = usd_per_usable_gib_hour(to, config)
    priced = f"${rate:.5g}/usable GiB-h" if math.isfinite(rate) else "price unknown"
    reasons = (
        f"{lost.id} ({lost.instance_type}) {lost.requested} -> {lost.requested - 1}: EMR does not replace "
        "the node in the interrupted pool",
        f"{to.id} ({to.instance_type}, {to.market}) {to.requested} -> {to.requested + 1}: cheapest eligible, "
        f"{priced}",
        *notes,
    )
    return ReplacementPlan(cluster.id, lost.id, kind, lost, to, (_target(lost, -1), _target(to, +1)), reasons)
