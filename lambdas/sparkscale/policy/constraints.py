"""Step 3, constraints: what is allowed now. Pure functions over the config, the state and `now`.

- cooldowns: no action of any kind within cooldown_after_scale_out_s of a scale-out; no scale-in within
  cooldown_after_scale_in_s of a scale-in (a scale-out right after a scale-in is allowed: pressure wins).
- stabilization: scale in only down to the highest recommendation of the last scale_in_stabilization_s.
- limits for the planner: per-group bounds (config.bounds_for), total min/max TASK nodes, the step per
  decision, the budget in USD per hour. The planner works inside them, so whole-node plans stay optimal.
- bounds: a final pass that keeps every changeable group inside its bounds and the total inside min/max.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sparkscale.config import Config
from sparkscale.policy.capacity import usable_gib
from sparkscale.policy.model import Cluster, GroupStatus, InstanceGroup, Market, ScalerState
from sparkscale.policy.planner import Offer
from sparkscale.policy.reasons import Reason, ReasonCode


def cooldown_blocks(state: ScalerState, *, now: datetime, config: Config, scale_in: bool) -> Reason | None:
    """A COOLDOWN reason when a cooldown forbids this direction now (subject: the setting), else None."""
    if state.last_scale_out_at is not None:
        cooldown = config.cooldown_after_scale_out_s
        left = cooldown - (now - state.last_scale_out_at).total_seconds()
        if left > 0:
            text = (
                f"Cooldown: the last scale-out was {cooldown - left:.0f} s ago "
                f"(cooldown_after_scale_out_s {cooldown} s): no action for {left:.0f} s more."
            )
            values = {"cooldown_s": cooldown, "left_s": left}
            return Reason(ReasonCode.COOLDOWN, text, values, "cooldown_after_scale_out_s")
    if scale_in and state.last_scale_in_at is not None:
        cooldown = config.cooldown_after_scale_in_s
        left = cooldown - (now - state.last_scale_in_at).total_seconds()
        if left > 0:
            text = (
                f"Cooldown: the last scale-in was {cooldown - left:.0f} s ago "
                f"(cooldown_after_scale_in_s {cooldown} s): no scale-in for {left:.0f} s more."
            )
            values = {"cooldown_s": cooldown, "left_s": left}
            return Reason(ReasonCode.COOLDOWN, text, values, "cooldown_after_scale_in_s")
    return None


def window_start(now: datetime, seconds: float) -> datetime:
    """The oldest time in the trailing window of `seconds` that ends at `now`: r.at >= window_start(...) is
    now - r.at <= seconds (datetime.min when the window reaches back that far)."""
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:
        return datetime.min.replace(tzinfo=now.tzinfo)


def stabilization_floor(state: ScalerState, *, now: datetime, config: Config, current_gib: float) -> float:
    """The highest TASK memory recommended within the stabilization window, this decision's included."""
    start = window_start(now, config.scale_in_stabilization_s)
    recent = [
        r.task_memory_gib
        for r in state.recommendations
        if r.task_memory_gib is not None and start <= r.at <= now
    ]
    return max([current_gib, *recent])


# EMR (4.1.0 and later) takes a new ModifyInstanceGroups count while a group is still RESIZING: the new
# count overrides the previous request ("Interrupting a resize", EMR Management Guide, emr-manage-resize).
# Provisioning, bootstrapping and reconfiguring groups, and failed ones, take no new count.
RESIZABLE_STATUSES = frozenset({GroupStatus.RUNNING, GroupStatus.RESIZING})


def changeable(g: InstanceGroup, blocked: Mapping[str, str]) -> bool:
    """A TASK group whose count this decision may change: RUNNING or RESIZING, and not blocked by the spot
    fallback (a group whose requested nodes do not arrive, see fallback.blocked_groups)."""
    return g.is_task and g.status in RESIZABLE_STATUSES and g.id not in blocked


def add_offers(
    cluster: Cluster, *, blocked: Mapping[str, str], config: Config, market: Market, bounded: bool = True
) -> list[Offer]:
    """Offers to add nodes to changeable TASK groups of one market, up to each group's max (when bounded)."""
    out = []
    for g in cluster.task_groups:
        if not changeable(g, blocked) or g.market is not market:
            continue
        room = max(0, config.bounds_for(g.id, g.name).max_nodes - g.requested) if bounded else None
        out.append(Offer(g.id, g.instance_type, usable_gib(g, config), g.usd_per_hour, g.market, room))
    return out


def remove_offers(
    cluster: Cluster,
    *,
    blocked: Mapping[str, str],
    config: Config,
    bounded: bool = True,
    markets: Sequence[Market] = (Market.SPOT, Market.ON_DEMAND),
    in_flight_only: bool = False,
) -> list[Offer]:
    """Offers to remove nodes from changeable TASK groups, down to each group's min (when bounded). With
    `in_flight_only`, only nodes requested and not yet running (a lower count cancels those first)."""
    out = []
    for g in cluster.task_groups:
        # changeable(g, blocked), inlined (a hot path): task_groups are TASK groups
        if g.status not in RESIZABLE_STATUSES or g.id in blocked or g.market not in markets:
            continue
        floor = config.bounds_for(g.id, g.name).min_nodes if bounded else 0
        most = max(0, g.requested - floor)
        if in_flight_only:
            most = min(most, max(0, g.requested - g.running))
        out.append(Offer(g.id, g.instance_type, usable_gib(g, config), g.usd_per_hour, g.market, most))
    return out


def total_requested(cluster: Cluster) -> int:
    return sum(g.requested for g in cluster.task_groups)


def usd_per_hour(cluster: Cluster, counts: Mapping[str, int]) -> float:
    return sum(counts.get(g.id, g.requested) * g.usd_per_hour for g in cluster.task_groups)


def enforce_bounds(
    cluster: Cluster, targets: dict[str, int], *, blocked: Mapping[str, str], config: Config
) -> list[Reason]:
    """Bring changeable groups into their [min, max] and the TASK total into [min_task_nodes, max_task_nodes].
    Bounds are hard: this runs after the planner and wins over the signals. Mutates `targets`; returns
    reasons."""
    reasons: list[Reason] = []
    for g in cluster.task_groups:
        if g.status in RESIZABLE_STATUSES:
            b = config.bounds_for(g.id, g.name)
            t = targets[g.id]
            if t > b.max_nodes or (t < b.min_nodes and g.id not in blocked):
                new = min(max(t, b.min_nodes), b.max_nodes)
                text = (
                    f"Group {g.name or g.id} ({g.id}) must stay within {b.min_nodes}-{b.max_nodes} nodes: "
                    f"target {new} instead of {t}."
                )
                values = {"min_nodes": b.min_nodes, "max_nodes": b.max_nodes, "target": new, "planned": t}
                reasons.append(Reason(ReasonCode.BOUNDS, text, values, g.id))
                targets[g.id] = new
    total = sum(targets.values())
    if total > config.max_task_nodes:
        excess = total - config.max_task_nodes
        groups = {g.id: g for g in cluster.task_groups}
        order = sorted(
            (g for g in groups.values() if g.status in RESIZABLE_STATUSES),
            key=lambda g: (-(g.usd_per_hour / max(usable_gib(g, config), 1e-9)), g.id),
        )
        for g in order:
            floor = config.bounds_for(g.id, g.name).min_nodes
            take = min(excess, max(0, targets[g.id] - floor))
            targets[g.id] -= take
            excess -= take
        text = (
            f"At most {config.max_task_nodes} TASK nodes in total (max_task_nodes): "
            f"{total} reduced to {sum(targets.values())}."
        )
        values = {"max_task_nodes": config.max_task_nodes, "planned": total, "target": sum(targets.values())}
        reasons.append(Reason(ReasonCode.BOUNDS, text, values, "max_task_nodes"))
    elif total < config.min_task_nodes:
        missing = config.min_task_nodes - total
        groups = {g.id: g for g in cluster.task_groups}
        order = sorted(
            (g for g in groups.values() if changeable(g, blocked)),
            key=lambda g: (
                g.market is not Market.SPOT,
                g.usd_per_hour / max(usable_gib(g, config), 1e-9),
                g.id,
            ),
        )
        for g in order:
            room = max(0, config.bounds_for(g.id, g.name).max_nodes - targets[g.id])
            add = min(missing, room)
            targets[g.id] += add
            missing -= add
        text = (
            f"At least {config.min_task_nodes} TASK nodes in total (min_task_nodes): "
            f"{total} raised to {sum(targets.values())}."
        )
        values = {"min_task_nodes": config.min_task_nodes, "planned": total, "target": sum(targets.values())}
        reasons.append(Reason(ReasonCode.BOUNDS, text, values, "min_task_nodes"))
    return reasons
