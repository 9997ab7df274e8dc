"""Scale-out: whole nodes for the driving need, cheapest USD per GiB-hour first, within the step, the groups'
and the total maximums and the budget; SPOT first, ON_DEMAND only as the fallback when SPOT cannot deliver.

A pressed heap (used beyond its deadband) adds at least one node beyond what runs or is coming, once per
heap-pressure episode (heap_pressure), unless it is a shortfall YARN shows and nodes already requested are
starting for (waiting_for_nodes, `heap_pressure_waits_for_nodes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sparkscale.policy.burst import first_step
from sparkscale.policy.constraints import add_offers, cooldown_blocks, total_requested
from sparkscale.policy.context import (
    UNCHANGED,
    Context,
    StepResult,
    alloc_reasons,
    apply,
    budget_left,
    current,
    money,
    nodes_for,
    planner_reasons,
)
from sparkscale.policy.estimate import Need, gib
from sparkscale.policy.model import Market, Signal
from sparkscale.policy.pending_share import share_cap
from sparkscale.policy.planner import EPS, Offer, plan_memory
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.signals import heap_pressed
from sparkscale.policy.streaming import STREAMING_SIGNALS


def heap_pressure(ctx: Context) -> Reason | None:
    """HEAP_PRESSURE when the executors' heap is beyond its deadband (the heap alarm's threshold) and no node
    was requested since that pressure began, although the capacity running or requested looks enough: a
    pressed heap (used close to max) hides how much more memory the work needs, and the nodes already coming
    were asked for before it showed. Then at least one node more is requested, once per heap-pressure
    episode (ScalerState.heap_pressure_since)."""
    heap = ctx.est.heap
    if heap is None or not heap_pressed(heap.value, ctx.config):
        return None
    # YARN's own view of the memory running now (nodes in flight left out, which are the point of this rule):
    # below its deadband YARN has room for more executors without a new node, and a node added now would be
    # taken back by the next scale-in (the no-oscillation property found that flip-flop).
    used = _yarn_used_pct(ctx)
    low = ctx.config.yarn_memory_used_target_pct * (1.0 - ctx.config.deadband_pct / 100.0)
    if used is not None and used < low:
        return None
    since = ctx.state.heap_pressure_since or ctx.now
    last = ctx.state.last_scale_out_at
    if last is not None and last >= since:
        return None
    if ctx.config.heap_pressure_waits_for_nodes and waiting_for_nodes(ctx):
        return None
    text = (
        f"Executor heap used {heap.value:.1f} % is beyond its deadband since {since.isoformat()} and no node "
        "was requested since: a pressed heap hides the real need, so at least one node more than the "
        "capacity running or requested."
    )
    return Reason(ReasonCode.HEAP_PRESSURE, text, {"heap_used_pct": heap.value}, Signal.HEAP_USED_PCT)


def waiting_for_nodes(ctx: Context) -> bool:
    """The pressed heap is a shortfall YARN already shows and nodes already requested answer: the YARN
    collector is fresh and reports memory pending, and TASK nodes requested are still starting (heap_pressure
    is reached only when the capacity counted, running + requested, covers every need). The executors are
    full because work waits for the containers those nodes bring, and the need is not hidden. Then the
    heap-pressure node waits for them: if the heap is still pressed once they run, the rule adds it then (no
    node was requested since the pressure began). Why: on `make demo`'s day it added a second node to two
    small bursts while the first was starting, which served no minute more ($0.16, 4 % of the day's cost)."""
    if ctx.cap.in_flight_gib <= EPS or not ctx.readings.yarn_demand_fresh:
        return False
    return (ctx.readings.values.get(Signal.YARN_PENDING_MEMORY_MB) or 0.0) > 0.0


def _yarn_used_pct(ctx: Context) -> float | None:
    """YARN memory allocated, % of YARN's total: the YARN collector's YarnAllocatedMemoryMB /
    YarnTotalMemoryMB while fresh, else 100 - YARNMemoryAvailablePercentage (the EMR-based need's value)."""
    values = ctx.readings.values
    total = values.get(Signal.YARN_TOTAL_MEMORY_MB)
    alloc = values.get(Signal.YARN_ALLOCATED_MEMORY_MB)
    if alloc is not None and total is not None and total > 0:
        return min(100.0, 100.0 * alloc / total)
    yarn = next((n for n in ctx.est.needs if n.signal is Signal.YARN_MEMORY_AVAILABLE_PCT), None)
    return None if yarn is None else 100.0 - yarn.value


def od_allowed(ctx: Context) -> bool:
    """ON_DEMAND TASK groups are a fallback: used when a SPOT group cannot deliver, or there is none."""
    spot = [g for g in ctx.cluster.task_groups if g.market is Market.SPOT]
    return ctx.config.on_demand_fallback and (not spot or any(g.id in ctx.blocked for g in spot))


class _Bought(NamedTuple):
    """What the SPOT plan and the ON_DEMAND fallback add, within the step, the maximums and the budget."""

    targets: dict[str, int]
    reasons: list[Reason]  # the planners' own
    texts: list[Reason]  # the node changes and the fallbacks
    fallback_to: list[str]
    short_gib: float
    nodes: int
    gib: float


def scale_out(
    ctx: Context,
    driving: Need,
    *,
    pressure: Reason | None = None,
    need_gib: float | None = None,
    lead: Reason | None = None,
) -> StepResult:
    """`driving`: the largest need (its reason leads unless `pressure`, the heap-pressure rule, or `lead`
    drove). `need_gib`: the memory to add when not the driving need's (the forecast's, forecast_mode act)."""
    cfg, cluster, cap = ctx.config, ctx.cluster, ctx.cap
    heads = [r for r in (pressure, lead) if r is not None]
    reasons = [*heads, *ctx.need_reasons()]
    od_ok = od_allowed(ctx)
    markets = [Market.SPOT, Market.ON_DEMAND] if od_ok else [Market.SPOT]
    # the estimate in whole nodes, before bounds, steps, budget and cooldowns
    free = [
        o
        for m in markets
        for o in add_offers(cluster, blocked=ctx.blocked, config=cfg, market=m, bounded=False)
    ]
    # heap pressure: at least the smallest node any group can add, beyond what runs or is requested
    floor = min((o.memory_gib for o in free), default=2 * EPS) if pressure is not None else 0.0
    need = max(ctx.est.need_gib if need_gib is None else need_gib, floor)
    desired_nodes, desired_gib = _ideal(ctx, free, need)
    blocker = cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=False)
    if blocker is not None:
        return StepResult(UNCHANGED, [blocker, *reasons], desired_nodes, desired_gib, bounds=False)
    room = max(0, cfg.max_task_nodes - total_requested(cluster))
    budget = budget_left(cluster, cfg)
    # a stream behind is bought whole: its lag grows until it is caught up, it does not end on its own
    burst_rule = pressure is None and driving.signal not in STREAMING_SIGNALS
    unconfirmed = first_step(ctx, heap_pressure) if burst_rule else None
    # the burst rule's first step leaves the rest of the shortfall by choice: not at max, no limit to name
    burst_capped = False
    if unconfirmed is not None:  # a young shortfall episode: a small first step (policy/burst.py)
        step_nodes, hold, pressed = unconfirmed
        reasons.insert(0, hold)
        if pressed is not None:  # a held burst's executors under heap pressure gave it its first step again
            reasons.insert(0, pressed)
        if step_nodes == 0:
            return StepResult(UNCHANGED, reasons, desired_nodes, desired_gib, bounds=False)
        burst_capped = step_nodes < room
        room = min(room, step_nodes)
    elif burst_rule:  # a confirmed burst: a share of the memory waiting (policy/pending_share.py)
        capped = share_cap(ctx, need)
        if capped is not None:
            reasons.insert(0, capped[1])
            if capped[0] <= EPS:
                return StepResult(UNCHANGED, reasons, desired_nodes, desired_gib, bounds=False)
            need = capped[0]
    bought = _buy(ctx, need, room, budget, od_ok=od_ok)
    texts = bought.texts
    step_limited = bought.nodes >= cfg.max_scale_out_step_nodes and room > cfg.max_scale_out_step_nodes
    at_max = False
    if bought.short_gib > EPS and not (burst_capped and bought.nodes):
        at_max = not step_limited and _limits_bind(ctx, markets, need, need - bought.short_gib)
        limit = _limit_reason(ctx, bought.short_gib, step_limited, room, budget, any_offer=bool(free))
        if bought.nodes:
            texts.append(limit)
        else:  # nothing can be added: the limit is why this holds
            reasons.insert(0, limit)
    # Remember what was bought (when bounds forced more than the ideal), so that stabilization keeps it.
    desired_gib = max(desired_gib, cap.task_gib + bought.gib)
    fallback_to = tuple(dict.fromkeys(bought.fallback_to))
    return StepResult(
        bought.targets, [*reasons, *bought.reasons, *texts], desired_nodes, desired_gib, at_max, fallback_to
    )


def _ideal(ctx: Context, free: list[Offer], need: float) -> tuple[int, float]:
    """The TASK nodes and memory the need asks for with no step, maximum, budget or cooldown."""
    cfg, cap = ctx.config, ctx.cap
    ideal = plan_memory(
        memory_gib=need,
        offers=free,
        max_share=cfg.max_share_per_instance_type,
        existing_gib_by_type=cap.task_gib_by_type,
        premium_weight=cfg.node_premium_weight,
    )
    if ideal.allocations:
        return cap.task_nodes + ideal.nodes, cap.task_gib + ideal.memory_gib
    return cap.task_nodes + nodes_for(ctx.cluster, cfg, need), cap.task_gib + need


def _buy(ctx: Context, need: float, room: int, budget: float | None, *, od_ok: bool) -> _Bought:
    """SPOT first; the part no SPOT group can deliver goes to ON_DEMAND when that is allowed (od_ok)."""
    cfg, cluster = ctx.config, ctx.cluster
    step_nodes = max(0, min(cfg.max_scale_out_step_nodes, room))
    existing = dict(ctx.cap.task_gib_by_type)
    targets = current(cluster)
    plan = plan_memory(
        memory_gib=need,
        offers=add_offers(cluster, blocked=ctx.blocked, config=cfg, market=Market.SPOT),
        max_share=cfg.max_share_per_instance_type,
        max_nodes=step_nodes,
        max_usd_per_hour=budget,
        existing_gib_by_type=existing,
        premium_weight=cfg.node_premium_weight,
    )
    apply(targets, plan, sign=1)
    reasons = planner_reasons(plan)
    texts = alloc_reasons(cluster, plan, removing=False)
    bought = _Bought(targets, reasons, texts, [], plan.shortfall_gib, plan.nodes, plan.memory_gib)
    if bought.short_gib > EPS and od_ok:
        for a in plan.allocations:
            existing[a.instance_type] = existing.get(a.instance_type, 0.0) + a.memory_gib
        od_budget = None if budget is None else max(0.0, budget - plan.usd_per_hour)
        bought = _on_demand(ctx, bought, step_nodes, od_budget, existing)
    spot_blocked = [g.id for g in cluster.task_groups if g.id in ctx.blocked and g.market is Market.SPOT]
    if spot_blocked and plan.allocations:
        bought.fallback_to[:0] = [a.key for a in plan.allocations]
        text = (
            f"Spot fallback: the unmet part of {', '.join(spot_blocked)} goes to the cheapest SPOT group "
            "that can deliver."
        )
        bought.texts.append(Reason(ReasonCode.SPOT_FALLBACK, text, subject=",".join(spot_blocked)))
    return bought


def _on_demand(
    ctx: Context, bought: _Bought, step_nodes: int, budget: float | None, existing: dict[str, float]
) -> _Bought:
    """The ON_DEMAND fallback for what the SPOT plan left short."""
    cfg, short = ctx.config, bought.short_gib
    od = plan_memory(
        memory_gib=short,
        offers=add_offers(ctx.cluster, blocked=ctx.blocked, config=cfg, market=Market.ON_DEMAND),
        max_share=cfg.max_share_per_instance_type,
        max_nodes=step_nodes - bought.nodes,
        max_usd_per_hour=budget,
        existing_gib_by_type=existing,
        premium_weight=cfg.node_premium_weight,
    )
    if not od.allocations:
        return bought
    apply(bought.targets, od, sign=1)
    keys = [a.key for a in od.allocations]
    text = (
        f"On-demand fallback: no SPOT group can deliver {gib(short)}, so it goes to ON_DEMAND TASK "
        f"group{'s' if len(keys) > 1 else ''} {', '.join(keys)}."
    )
    texts = [
        *bought.texts,
        *alloc_reasons(ctx.cluster, od, removing=False),
        Reason(ReasonCode.ON_DEMAND_FALLBACK, text, {"short_gib": short}, ",".join(keys)),
    ]
    return _Bought(
        bought.targets,
        [*bought.reasons, *planner_reasons(od)],
        texts,
        [*bought.fallback_to, *keys],
        od.shortfall_gib,
        bought.nodes + od.nodes,
        bought.gib + od.memory_gib,
    )


def _limits_bind(ctx: Context, markets: Sequence[Market], need: float, planned_gib: float) -> bool:
    """True when the configured maximums (max_task_nodes, the groups' max_nodes, the budget) are what stop the
    scale-out: without them, the same step would add more. False when no group can take nodes at all."""
    cfg = ctx.config
    free = [
        o
        for m in markets
        for o in add_offers(ctx.cluster, blocked=ctx.blocked, config=cfg, market=m, bounded=False)
    ]
    if not free:
        return False
    unbounded = plan_memory(
        memory_gib=need,
        offers=free,
        max_share=cfg.max_share_per_instance_type,
        max_nodes=cfg.max_scale_out_step_nodes,
        existing_gib_by_type=ctx.cap.task_gib_by_type,
        premium_weight=cfg.node_premium_weight,
    )
    return unbounded.memory_gib > planned_gib + EPS


def _limit_reason(
    ctx: Context, short: float, step_limited: bool, room: int, budget: float | None, *, any_offer: bool
) -> Reason:
    """LIMIT: the part of the need that cannot be added now, and why (subject: what binds: no_offer,
    max_scale_out_step_nodes, or max_task_nodes / budget_usd_per_hour / max_nodes as they apply)."""
    cfg = ctx.config
    values = {"short_gib": short}
    if not any_offer:
        subject, why = "no_offer", "no RUNNING or RESIZING TASK group that delivers can take new nodes now"
    elif step_limited:
        subject = "max_scale_out_step_nodes"
        why = (
            f"at most {cfg.max_scale_out_step_nodes} nodes are added per decision (max_scale_out_step_nodes)"
        )
        values["max_scale_out_step_nodes"] = cfg.max_scale_out_step_nodes
    else:
        parts, binds = [], []
        if room <= cfg.max_scale_out_step_nodes:
            parts.append(f"{room} more TASK nodes fit under max_task_nodes {cfg.max_task_nodes}")
            binds.append("max_task_nodes")
            values.update(room_nodes=room, max_task_nodes=cfg.max_task_nodes)
        if budget is not None:
            parts.append(
                f"{money(budget)} is left of budget_usd_per_hour {money(cfg.budget_usd_per_hour or 0.0)}"
            )
            binds.append("budget_usd_per_hour")
            values.update(budget_left_usd_per_hour=budget, budget_usd_per_hour=cfg.budget_usd_per_hour or 0.0)
        parts.append(
            "each group stops at its max_nodes, and only RUNNING or RESIZING groups that deliver get new "
            "nodes"
        )
        binds.append("max_nodes")
        subject, why = ",".join(binds), "; ".join(parts)
    return Reason(ReasonCode.LIMIT, f"{gib(short)} of the need cannot be added now: {why}.", values, subject)
