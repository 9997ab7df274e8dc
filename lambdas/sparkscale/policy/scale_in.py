"""Scale-in: remove the most expensive memory first, down to what the signals that may ask for less want (not
the heap), within the step, the minimums, the cooldown and the stabilization window; while nodes are still
coming, only nodes not yet running go. Never while something waits or a signal is over its target
(gates.scale_in_veto). When it holds, capacity may still move back to spot (move_back)."""

from __future__ import annotations

from sparkscale.policy.constraints import cooldown_blocks, remove_offers, stabilization_floor, total_requested
from sparkscale.policy.context import (
    Context,
    StepResult,
    alloc_reasons,
    apply,
    blocked_hold,
    current,
    hold,
)
from sparkscale.policy.estimate import Need, gib
from sparkscale.policy.gates import scale_in_veto
from sparkscale.policy.move_back import move_back, on_demand_to_move_back_gib
from sparkscale.policy.planner import EPS
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.removal import FIT_GIB, plan_removal


def scale_in(ctx: Context, lower: Need, *, floor_gib: float = 0.0) -> StepResult:
    """`lower`: the largest need among the signals that may ask for less (its reason leads a scale-in).
    `floor_gib`: never below this demand (the forecast, forecast_mode act)."""
    cfg, cluster, cap = ctx.config, ctx.cluster, ctx.cap
    surplus = cap.counted_gib - max(lower.desired_gib, floor_gib)
    desired_gib, desired_nodes = cap.task_gib, cap.task_nodes
    if may_remove(ctx, surplus):
        ideal = plan_removal(
            memory_gib=surplus,
            offers=remove_offers(cluster, blocked=ctx.blocked, config=cfg, bounded=False),
            max_share=cfg.max_share_per_instance_type,
            existing_gib_by_type=cap.task_gib_by_type,
        )
        desired_gib, desired_nodes = cap.task_gib - ideal.memory_gib, cap.task_nodes - ideal.nodes
    veto = scale_in_veto(ctx)
    if veto is not None:
        return _hold_or_move_back(ctx, veto, desired_nodes, desired_gib)
    blocker = cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=True)
    if blocker is not None:
        return blocked_hold(blocker, ctx, desired_nodes, desired_gib)
    floor = stabilization_floor(ctx.state, now=ctx.now, config=cfg, current_gib=desired_gib)
    allowed = cap.task_gib - floor
    # while nodes are still coming, only those are cancelled: a running node removed now would leave a gap
    # until they run (they were asked for to replace or add to it)
    coming = cap.in_flight_gib > EPS
    if coming:  # SPOT nodes coming while ON_DEMAND fallback nodes run are their replacements: keep them
        allowed -= on_demand_to_move_back_gib(ctx)
    removal = None
    if may_remove(ctx, allowed):
        removal = plan_removal(
            memory_gib=allowed,
            offers=remove_offers(cluster, blocked=ctx.blocked, config=cfg, in_flight_only=coming),
            max_nodes=max(0, min(cfg.max_scale_in_step_nodes, total_requested(cluster) - cfg.min_task_nodes)),
            max_share=cfg.max_share_per_instance_type,
            existing_gib_by_type=cap.task_gib_by_type,
        )
    if removal is None or not removal.nodes:
        why = _why_none(ctx, floor, desired_gib, allowed)
        return _hold_or_move_back(ctx, why, desired_nodes, desired_gib)
    targets = current(cluster)
    apply(targets, removal, sign=-1)
    texts = alloc_reasons(cluster, removal, removing=True)
    if floor > desired_gib + EPS:
        text = (
            f"Stabilization: not below {gib(floor)} of TASK memory, the highest recommendation of the last "
            f"{cfg.scale_in_stabilization_s} s."
        )
        texts.append(Reason(ReasonCode.STABILIZATION, text, _window(ctx, floor)))
    if floor_gib > lower.desired_gib + EPS:
        text = f"Forecast: not below the {gib(floor_gib)} of demand forecast for when new nodes could run."
        texts.append(Reason(ReasonCode.FORECAST, text, {"forecast_gib": floor_gib}))
    return StepResult(targets, [*_lead(ctx, lower), *texts], desired_nodes, desired_gib)


def _lead(ctx: Context, lower: Need) -> list[Reason]:
    """The needs' reasons, the one of `lower` (which drove the scale-in) first."""
    needs, reasons = ctx.est.needs, ctx.need_reasons()
    i = next(i for i, n in enumerate(needs) if n is lower)
    return [reasons[i], *reasons[:i], *reasons[i + 1 :]]


def _window(ctx: Context, floor: float) -> dict[str, float]:
    return {"floor_gib": floor, "stabilization_s": ctx.config.scale_in_stabilization_s}


def _why_none(ctx: Context, floor: float, desired_gib: float, allowed: float) -> Reason:
    """Why no node goes although the signals want less: stabilization, nodes coming, or no whole node fits.
    Its sentence is made when read (most holds' never are)."""
    cfg, cap = ctx.config, ctx.cap
    if floor > desired_gib + EPS:
        window, task_gib = cfg.scale_in_stabilization_s, cap.task_gib
        return Reason(
            ReasonCode.STABILIZATION,
            lambda: (
                f"Stabilization: the highest recommendation of the last {window} s is "
                f"{gib(floor)} of TASK memory and the TASK groups have {gib(task_gib)}: no scale-in yet."
            ),
            {**_window(ctx, floor), "task_gib": task_gib},
        )
    surplus = max(0.0, allowed)
    coming = cap.in_flight_gib
    if coming > EPS:
        return Reason(
            ReasonCode.NODES_COMING,
            lambda: (
                f"Nodes are still coming ({gib(coming)}): until they run, only nodes not yet "
                f"running may go, and none fits in the {gib(surplus)} surplus: holding."
            ),
            {"in_flight_gib": coming, "surplus_gib": surplus},
        )
    return Reason(
        ReasonCode.NO_NODE_FITS,
        lambda: (
            f"No whole node fits in the {gib(surplus)} surplus within the group and total minimums: holding."
        ),
        {"surplus_gib": surplus},
    )


def may_remove(ctx: Context, memory_gib: float) -> bool:
    """False when plan_removal surely removes nothing from `memory_gib`: every TASK group with a node to give
    (remove_offers never offers more than a group's requested nodes) has larger nodes. That is most scale-in
    evaluations (a surplus smaller than one node, or only empty groups small enough), which then skip the
    planner."""
    return ctx.cap.smallest_node_gib <= max(0.0, memory_gib) + FIT_GIB  # plan_removal's test


def _hold_or_move_back(ctx: Context, why: Reason, desired_nodes: int, desired_gib: float) -> StepResult:
    out = move_back(ctx)
    if out is not None:
        return out
    return hold(why, ctx, desired_nodes, desired_gib)
