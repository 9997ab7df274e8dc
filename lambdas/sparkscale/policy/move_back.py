"""The move back to spot: once SPOT groups deliver again, capacity that the on-demand fallback bought moves
back. Phase 1 adds SPOT memory for the ON_DEMAND nodes above their minimum; phase 2, once no SPOT group falls
short, removes the ON_DEMAND nodes that the surplus covers. Never while a SPOT group is blocked, a signal is
over target or a cooldown runs."""

from __future__ import annotations

from sparkscale.policy.constraints import (
    add_offers,
    changeable,
    cooldown_blocks,
    remove_offers,
    total_requested,
)
from sparkscale.policy.context import (
    Context,
    StepResult,
    alloc_reasons,
    apply,
    budget_left,
    current,
    planner_reasons,
)
from sparkscale.policy.estimate import gib
from sparkscale.policy.gates import waiting
from sparkscale.policy.model import Market
from sparkscale.policy.planner import EPS, Offer, plan_memory
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.removal import plan_removal


def move_back(ctx: Context) -> StepResult | None:
    """The move back's outcome (its reason leads), or None when there is nothing to move back now."""
    cfg, cluster = ctx.config, ctx.cluster
    if not ctx.cap.on_demand_nodes:
        return None  # nothing runs on ON_DEMAND: nothing to move back (the common case, kept cheap)
    spot = [g for g in cluster.task_groups if g.market is Market.SPOT]
    if not spot or any(g.id in ctx.blocked for g in spot) or ctx.est.over_target:
        return None
    od_offers = remove_offers(cluster, blocked=ctx.blocked, config=cfg, markets=(Market.ON_DEMAND,))
    od_gib = sum(o.memory_gib * (o.max_nodes or 0) for o in od_offers)
    lower = ctx.est.scale_in_desired_gib
    desired = None if lower is None else max(0.0, ctx.cap.task_gib + lower - ctx.cap.counted_gib)
    if od_gib <= EPS or desired is None or not any(changeable(g, ctx.blocked) for g in spot):
        return None
    if not any(g.requested > g.running for g in spot) and waiting(ctx) is None:
        if cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=True) is not None:
            return None
        released = _release_on_demand(ctx, od_offers, desired)
        if released is not None:
            return released
    return _buy_spot_back(ctx, od_gib, desired)


def on_demand_to_move_back_gib(ctx: Context) -> float:
    """ON_DEMAND TASK memory above the groups' minimums that moves back to spot (0 while a SPOT group is
    blocked or there is no SPOT group to move to)."""
    spot = [g for g in ctx.cluster.task_groups if g.market is Market.SPOT]
    if not spot or any(g.id in ctx.blocked for g in spot):
        return 0.0
    offers = remove_offers(ctx.cluster, blocked=ctx.blocked, config=ctx.config, markets=(Market.ON_DEMAND,))
    return sum(o.memory_gib * (o.max_nodes or 0) for o in offers)


def _release_on_demand(ctx: Context, od_offers: list[Offer], desired: float) -> StepResult | None:
    """Phase 2: the ON_DEMAND nodes that the surplus over the desired TASK memory covers go."""
    cfg, cluster, cap = ctx.config, ctx.cluster, ctx.cap
    surplus = cap.task_gib - desired
    removal = plan_removal(
        memory_gib=surplus,
        offers=od_offers,
        max_nodes=max(0, min(cfg.max_scale_in_step_nodes, total_requested(cluster) - cfg.min_task_nodes)),
    )
    if not removal.nodes:
        return None
    targets = current(cluster)
    apply(targets, removal, sign=-1)
    text = (
        f"Back to spot: SPOT groups deliver again and the {gib(surplus)} surplus covers "
        f"{gib(removal.memory_gib)} of ON_DEMAND fallback nodes, so they go."
    )
    head = Reason(
        ReasonCode.MOVE_BACK_RELEASE, text, {"surplus_gib": surplus, "memory_gib": removal.memory_gib}
    )
    reasons = [head, *ctx.need_reasons(), *alloc_reasons(cluster, removal, removing=True)]
    return StepResult(targets, reasons, cap.task_nodes - removal.nodes, desired)


def _buy_spot_back(ctx: Context, od_gib: float, desired: float) -> StepResult | None:
    """Phase 1: SPOT memory for the ON_DEMAND nodes above their minimum that the surplus does not cover."""
    cfg, cluster, cap = ctx.config, ctx.cluster, ctx.cap
    missing = od_gib - max(0.0, cap.task_gib - desired)
    if missing <= EPS or cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=False) is not None:
        return None
    room = max(0, cfg.max_task_nodes - total_requested(cluster))
    plan = plan_memory(
        memory_gib=missing,
        offers=add_offers(cluster, blocked=ctx.blocked, config=cfg, market=Market.SPOT),
        max_share=cfg.max_share_per_instance_type,
        max_nodes=min(cfg.max_scale_out_step_nodes, room),
        max_usd_per_hour=budget_left(cluster, cfg),
        existing_gib_by_type=cap.task_gib_by_type,
        premium_weight=cfg.node_premium_weight,
    )
    if not plan.nodes:
        return None
    targets = current(cluster)
    apply(targets, plan, sign=1)
    text = (
        f"Back to spot: {gib(od_gib)} of ON_DEMAND fallback nodes run above their minimum and every SPOT "
        f"group delivers again: adding {gib(plan.memory_gib)} on SPOT first; the ON_DEMAND nodes go once "
        "it runs."
    )
    head = Reason(
        ReasonCode.MOVE_BACK_BUY_SPOT, text, {"on_demand_gib": od_gib, "memory_gib": plan.memory_gib}
    )
    texts = alloc_reasons(cluster, plan, removing=False)
    reasons = [head, *ctx.need_reasons(), *planner_reasons(plan), *texts]
    return StepResult(targets, reasons, cap.task_nodes, desired)
