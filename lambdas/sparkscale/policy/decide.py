"""`decide`: a snapshot of a cluster and its metrics in, a Decision with reasons out. Pure and deterministic.

The steps, in order (each a named pure function with its own tests):
 0. gates         cluster RUNNING/WAITING, has TASK groups; fresh metrics only (signals.read_signals);
                  spot fallback (fallback.blocked_groups)
 1. estimate      desired YARN memory per signal, the largest need drives (estimate.estimate)
 2. idle          no application for idle_after_s: every changeable group to its minimum
 3. direction     the driving need against the capacity counted (running CORE + requested TASK nodes), with
                  a deadband; a heap-pressure episode adds at least one node beyond what is coming; scale-in
                  only on signals that may ask for less (not the heap), never while any signal is over its
                  target or containers wait, and only nodes not yet running while nodes are coming
 4. expand        whole nodes by USD per GiB-hour within the limits (planner.plan_memory / plan_removal),
                  cooldowns and scale-in stabilization (constraints), spot fallback and the move back to spot
 5. bounds        every changeable group and the TASK total within their min/max (constraints.enforce_bounds)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.constraints import (
    add_offers,
    changeable,
    cooldown_blocks,
    enforce_bounds,
    remove_offers,
    stabilization_floor,
    total_requested,
    usd_per_hour,
)
from sparkscale.policy.estimate import (
    HUGE_RATIO,
    Capacity,
    Estimate,
    Need,
    NodeCounts,
    capacity_of,
    count_nodes,
    estimate,
    gib,
    settled_scale,
    usable_gib,
)
from sparkscale.policy.fallback import blocked_groups, label
from sparkscale.policy.model import (
    Cluster,
    Decision,
    Direction,
    GroupTarget,
    Market,
    MetricsSnapshot,
    Observation,
    ScalerState,
    Signal,
)
from sparkscale.policy.planner import EPS, FIT_GIB, Allocation, Offer, Plan, plan_memory, plan_removal
from sparkscale.policy.signals import Readings, active_from, heap_pressed, read_signals

METRICS_MISSING = "Metrics missing"


# _Ctx and _Outcome are NamedTuples: as immutable as a frozen dataclass, and built in a third of the time
# (each is built once per evaluation, on the hot path)
class _Ctx(NamedTuple):
    now: datetime
    cluster: Cluster
    config: Config
    state: ScalerState
    readings: Readings
    blocked: Mapping[str, str]
    cap: Capacity
    est: Estimate

    @property
    def notes(self) -> list[str]:
        """Informational reasons appended to every decision: nodes still coming, blocked groups, ignored
        metrics."""
        coming = []
        if self.cap.in_flight_gib > EPS:
            coming.append(
                f"{gib(self.cap.in_flight_gib)} of TASK memory requested and not yet running counts as "
                "capacity (nodes already requested are not asked for twice)."
            )
        return [*coming, *self.blocked.values(), *self.readings.ignored]

    def need_reasons(self) -> tuple[str, ...]:
        return self.est.reasons


class _Outcome(NamedTuple):
    """What a path of `decide` produced, before bounds and the final Decision."""

    targets: Mapping[str, int]  # the groups whose count changes (_UNCHANGED: none)
    reasons: Sequence[str]
    desired_nodes: int | None = None
    desired_gib: float | None = None
    at_max: bool = False
    fallback_to: tuple[str, ...] = ()
    bounds: bool = True  # apply enforce_bounds (not for holds on missing data, cooldowns, inactive clusters)


# _Outcome.targets of a hold: every group keeps its requested count
_UNCHANGED: Mapping[str, int] = MappingProxyType({})


def _current(cluster: Cluster) -> dict[str, int]:
    """Each TASK group's requested count (a copy: callers change it)."""
    return cluster.derived("requested", _requested).copy()


def _requested(cluster: Cluster) -> dict[str, int]:
    return {g.id: g.requested for g in cluster.task_groups}  # kept by the Cluster: only ever copied


def _money(x: float) -> str:
    return f"${x:.2f}/h"


def _alloc_text(cluster: Cluster, a: Allocation, *, removing: bool) -> str:
    g = cluster.group(a.key)
    who = label(g) if g is not None else a.key
    rate = a.usd_per_hour / a.memory_gib if a.memory_gib > 0 else 0.0
    sign = "-" if removing else "+"
    verb = "Removing" if removing else "Adding"
    prep = "from" if removing else "to"
    return (
        f"{verb} {a.nodes} node{'s' if a.nodes != 1 else ''} {prep} group {who}: "
        f"{sign}{gib(a.memory_gib)} usable "
        f"at ${rate:.4f} per GiB-hour ({sign}{_money(a.usd_per_hour)})."
    )


def _apply(targets: dict[str, int], plan: Plan, *, sign: int) -> None:
    for a in plan.allocations:
        targets[a.key] = targets.get(a.key, 0) + sign * a.nodes


def _nodes_for(cap: Capacity, cluster: Cluster, config: Config, gib_amount: float) -> int:
    """Whole nodes of the TASK groups' average usable size for an amount of memory (no offer to plan with)."""
    sizes = [usable_gib(g, config) for g in cluster.task_groups if g.memory_gib > 0]
    if not sizes:
        return 0
    return math.ceil(gib_amount / (sum(sizes) / len(sizes)) - 1e-9)


# --- the public entry point ---------------------------------------------------------------------------------
def decide(
    *, now: datetime, cluster: Cluster, metrics: MetricsSnapshot, config: Config, state: ScalerState
) -> Decision:
    """Decide the TASK groups' targets. Never raises on well-typed input; MASTER/CORE are never targets."""
    return evaluate(now=now, cluster=cluster, metrics=metrics, config=config, state=state)[0]


def evaluate(
    *, now: datetime, cluster: Cluster, metrics: MetricsSnapshot, config: Config, state: ScalerState
) -> tuple[Decision, Observation | None]:
    """`decide`, and what it observed that next_state needs too (None when the cluster was not evaluated: not
    RUNNING or WAITING, or no TASK group). Passing it to next_state reads the metrics once per evaluation."""
    if not cluster.state.is_active:
        reason = (
            f"Cluster {cluster.id} is {cluster.state.value}: only RUNNING or WAITING clusters are scaled."
        )
        out = _Outcome(_UNCHANGED, [reason], bounds=False)
        return _decision(now, cluster=cluster, config=config, out=out), None
    if not cluster.task_groups:
        reason = (
            f"Cluster {cluster.id} has no TASK instance group: nothing to scale (MASTER, CORE never change)."
        )
        out = _Outcome(_UNCHANGED, [reason], bounds=False)
        return _decision(now, cluster=cluster, config=config, out=out), None
    readings = read_signals(metrics, now=now, config=config)
    blocked = blocked_groups(cluster, state, now=now, config=config)
    counts = count_nodes(cluster, blocked=blocked, config=config)
    # YARN GiB per derived GiB: measured now when the cluster is settled, else the last measured, else 1
    measured = _measured_yarn_scale(counts, metrics, state, now=now, config=config)
    if measured is not None:
        scale = measured
    else:
        scale = state.yarn_memory_scale if state.yarn_memory_scale is not None else 1.0
    cap = capacity_of(counts, readings, config=config, scale=scale)
    est = estimate(readings, cap, config=config)
    ctx = _Ctx(now, cluster, config, state, readings, blocked, cap, est)
    active = active_from(readings)

    idle_since = _idle_for(ctx, active)
    if idle_since is not None and not est.over_target:
        out = _idle(ctx, idle_since)
    elif est.driving is None:
        out = _Outcome(
            _UNCHANGED,
            [
                f"{METRICS_MISSING}: no fresh YARN memory, pending container, executor heap or TotalLoad "
                "datapoint; holding (never scaling in on missing data)."
            ],
            bounds=False,
        )
    else:
        out = _by_pressure(ctx, est.driving)
    decision = _decision(now, cluster=cluster, config=config, out=out, ctx=ctx)
    return decision, Observation(active, est.heap_used_pct, measured)


def _measured_yarn_scale(
    counts: NodeCounts, metrics: MetricsSnapshot, state: ScalerState, *, now: datetime, config: Config
) -> float | None:
    """estimate.yarn_memory_scale after the scaler's latest resize (None: not measurable now)."""
    out_at, in_at = state.last_scale_out_at, state.last_scale_in_at
    last = in_at if out_at is None else out_at if in_at is None else max(out_at, in_at)  # the latest resize
    return settled_scale(metrics, counts.settled_gib, now=now, config=config, last_resize_at=last)


def _decision(
    now: datetime,
    *,
    cluster: Cluster,
    config: Config,
    out: _Outcome,
    ctx: _Ctx | None = None,
) -> Decision:
    targets = _current(cluster)
    if out.targets:
        targets.update({k: v for k, v in out.targets.items() if k in targets})
    reasons = list(out.reasons)
    blocked = ctx.blocked if ctx is not None else {}
    bounded = enforce_bounds(cluster, targets, blocked=blocked, config=config) if out.bounds else []
    reasons += bounded
    if ctx is not None:
        reasons += ctx.notes
    up = down = False
    # else every group keeps its requested count: no target from the outcome, none moved by the bounds (they
    # give a reason for each one they move)
    if out.targets or bounded:
        for g in cluster.task_groups:
            t = targets[g.id]
            up = up or t > g.requested
            down = down or t < g.requested
    direction = Direction.OUT if up else Direction.IN if down else Direction.HOLD
    before = round(cluster.requested_usd_per_hour, 6)
    if direction is Direction.HOLD:
        # every group keeps its requested count: the cluster's own targets, and the cost after is the cost
        # before, summed the same way
        group_targets, after = cluster.unchanged_targets, before
    else:
        group_targets = tuple(
            GroupTarget(g.id, g.name, g.instance_type, g.market, g.requested, targets[g.id], g.usd_per_hour)
            for g in cluster.task_groups
        )
        after = round(usd_per_hour(cluster, targets), 6)
    if config.dry_run and direction is not Direction.HOLD:
        reasons.append("Dry run: this decision is logged and notified, not applied.")
    driving = ctx.est.driving if ctx is not None else None
    return Decision(
        cluster_id=cluster.id,
        at=now,
        direction=direction,
        targets=group_targets,
        reasons=tuple(reasons),
        dry_run=config.dry_run,
        driving_signal=driving.signal if driving is not None else None,
        driving_value=driving.value if driving is not None else None,
        desired_task_nodes=out.desired_nodes,
        at_max_under_pressure=out.at_max,
        usd_per_hour_before=before,
        usd_per_hour_after=after,
        desired_task_memory_gib=None if out.desired_gib is None else round(out.desired_gib, 6),
        fallback_groups=tuple(blocked),
        fallback_to=out.fallback_to,
    )


# --- step 2: idle -------------------------------------------------------------------------------------------
def _idle_for(ctx: _Ctx, active: bool | None) -> float | None:
    """Seconds without any application (`active` is False), when that is at least idle_after_s; else None."""
    if active is not False or ctx.state.last_active_at is None:
        return None
    quiet = (ctx.now - ctx.state.last_active_at).total_seconds()
    return quiet if quiet >= ctx.config.idle_after_s else None


def _idle(ctx: _Ctx, quiet_s: float) -> _Outcome:
    cfg, cluster = ctx.config, ctx.cluster
    head = (
        f"Idle: no application ran or waited for {quiet_s:.0f} s (idle_after_s {cfg.idle_after_s} s): "
        f"going to the minimum (min_task_nodes {cfg.min_task_nodes}, each group's min_nodes) in one step."
    )
    removal = plan_removal(
        memory_gib=ctx.cap.task_gib + 1.0,
        offers=remove_offers(cluster, blocked=ctx.blocked, config=cfg),
        max_nodes=max(0, total_requested(cluster) - cfg.min_task_nodes),
    )
    desired_gib = max(0.0, ctx.cap.task_gib - removal.memory_gib)
    desired_nodes = max(0, ctx.cap.task_nodes - removal.nodes)
    blocker = cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=True)
    if blocker is not None and removal.nodes:
        return _Outcome(_UNCHANGED, [head, blocker], desired_nodes, desired_gib, bounds=False)
    targets = _current(cluster)
    _apply(targets, removal, sign=-1)
    texts = [_alloc_text(cluster, a, removing=True) for a in removal.allocations]
    if not removal.nodes:
        texts.append("Every TASK group is already at its minimum.")
    return _Outcome(targets, [head, *texts], desired_nodes, desired_gib)


# --- step 3: direction by pressure --------------------------------------------------------------------------
def _by_pressure(ctx: _Ctx, driving: Need) -> _Outcome:
    cfg, cap, est = ctx.config, ctx.cap, ctx.est
    band = cfg.deadband_pct / 100.0
    # a signal beyond its deadband that wants more than the capacity counted scales out (for YARN memory both
    # say the same; the heap may be beyond its band while YARN still has room for more executors)
    pressed = [n for n in est.needs if n.ratio > 1.0 + band]
    if any(n.desired_gib > cap.counted_gib + EPS for n in pressed):
        return _scale_out(ctx, driving)
    pressure = _heap_pressure(ctx)
    if pressure is not None:
        return _scale_out(ctx, driving, heap_pressure=pressure)
    reasons = ctx.need_reasons()
    if pressed:  # a signal is over its target, but the capacity counted already covers what it asks for
        if cap.in_flight_gib > EPS:
            why = (
                f"Nodes already requested cover it: {gib(cap.in_flight_gib)} of TASK memory is still being "
                "provisioned."
            )
        else:
            why = "The capacity running or requested already covers what it asks for: holding."
        return _Outcome(_UNCHANGED, [*reasons, why], cap.task_nodes, cap.task_gib)
    lower = est.scale_in_need
    if lower is not None and _capacity_ratio(lower.desired_gib, cap) < 1.0 - band:
        return _scale_in(ctx, lower, reasons)
    out = _move_back(ctx)
    if out is not None:
        return out
    if lower is None:
        why = "Only the executor heap reports, and it is not over its target: the heap alone never scales in."
    else:
        why = "Every signal is within its deadband: holding."
    return _Outcome(_UNCHANGED, [*reasons, why], cap.task_nodes, cap.task_gib)


def _capacity_ratio(desired_gib: float, cap: Capacity) -> float:
    """Desired memory over the capacity counted (running CORE + requested TASK nodes)."""
    if cap.counted_gib > 0:
        return desired_gib / cap.counted_gib
    return HUGE_RATIO if desired_gib > EPS else 1.0


def _heap_pressure(ctx: _Ctx) -> str | None:
    """A sentence when the executors' heap is beyond its deadband (the heap alarm's threshold) and no node
    was requested since that pressure began, although the capacity running or requested looks enough: a
    pressed heap (used close to max) hides how much more memory the work needs, and the nodes already coming
    were asked for before it showed. Then at least one node more is requested, once per heap-pressure
    episode (ScalerState.heap_pressure_since)."""
    heap = ctx.est.heap
    if heap is None or not heap_pressed(heap.value, ctx.config):
        return None
    yarn = next((n for n in ctx.est.needs if n.signal is Signal.YARN_MEMORY_AVAILABLE_PCT), None)
    # yarn.value is YARNMemoryAvailablePercentage: YARN's own view of the memory running now (nodes in flight
    # left out, which are the point of this rule). Below its deadband YARN has room for more executors
    # without a new node, and a node added now would be taken back by the next scale-in (the no-oscillation
    # property found that flip-flop).
    low = ctx.config.yarn_memory_used_target_pct * (1.0 - ctx.config.deadband_pct / 100.0)
    if yarn is not None and 100.0 - yarn.value < low:
        return None
    since = ctx.state.heap_pressure_since or ctx.now
    last = ctx.state.last_scale_out_at
    if last is not None and last >= since:
        return None
    return (
        f"Executor heap used {heap.value:.1f} % is beyond its deadband since {since.isoformat()} and no node "
        "was requested since: a pressed heap hides the real need, so at least one node more than the "
        "capacity running or requested."
    )


def _od_allowed(ctx: _Ctx) -> bool:
    """ON_DEMAND TASK groups are a fallback: used when a SPOT group cannot deliver, or there is none."""
    spot = [g for g in ctx.cluster.task_groups if g.market is Market.SPOT]
    return ctx.config.on_demand_fallback and (not spot or any(g.id in ctx.blocked for g in spot))


def _scale_out(ctx: _Ctx, driving: Need, *, heap_pressure: str | None = None) -> _Outcome:
    cfg, cluster, cap = ctx.config, ctx.cluster, ctx.cap
    reasons = [*ctx.need_reasons(), *([heap_pressure] if heap_pressure is not None else [])]
    od_ok = _od_allowed(ctx)
    markets = [Market.SPOT, Market.ON_DEMAND] if od_ok else [Market.SPOT]
    existing = dict(cap.task_gib_by_type)
    # the estimate in whole nodes, before bounds, steps, budget and cooldowns
    free = [
        o
        for m in markets
        for o in add_offers(cluster, blocked=ctx.blocked, config=cfg, market=m, bounded=False)
    ]
    # heap pressure: at least the smallest node any group can add, beyond what runs or is requested
    floor = min((o.memory_gib for o in free), default=2 * EPS) if heap_pressure is not None else 0.0
    need = max(ctx.est.need_gib, floor)
    ideal = plan_memory(
        memory_gib=need, offers=free, max_share=cfg.max_share_per_instance_type, existing_gib_by_type=existing
    )
    if ideal.allocations:
        desired_nodes, desired_gib = cap.task_nodes + ideal.nodes, cap.task_gib + ideal.memory_gib
    else:
        desired_nodes, desired_gib = cap.task_nodes + _nodes_for(cap, cluster, cfg, need), cap.task_gib + need
    blocker = cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=False)
    if blocker is not None:
        return _Outcome(_UNCHANGED, [*reasons, blocker], desired_nodes, desired_gib, bounds=False)

    room = max(0, cfg.max_task_nodes - total_requested(cluster))
    step_nodes = max(0, min(cfg.max_scale_out_step_nodes, room))
    budget = _budget_left(cluster, cfg)
    targets = _current(cluster)
    plan = plan_memory(
        memory_gib=need,
        offers=add_offers(cluster, blocked=ctx.blocked, config=cfg, market=Market.SPOT),
        max_share=cfg.max_share_per_instance_type,
        max_nodes=step_nodes,
        max_usd_per_hour=budget,
        existing_gib_by_type=existing,
    )
    _apply(targets, plan, sign=1)
    reasons += plan.reasons
    texts = [_alloc_text(cluster, a, removing=False) for a in plan.allocations]
    fallback_to: list[str] = []
    short = plan.shortfall_gib
    planned_nodes, planned_usd, planned_gib = plan.nodes, plan.usd_per_hour, plan.memory_gib
    if short > EPS and od_ok:
        for a in plan.allocations:
            existing[a.instance_type] = existing.get(a.instance_type, 0.0) + a.memory_gib
        od = plan_memory(
            memory_gib=short,
            offers=add_offers(cluster, blocked=ctx.blocked, config=cfg, market=Market.ON_DEMAND),
            max_share=cfg.max_share_per_instance_type,
            max_nodes=step_nodes - planned_nodes,
            max_usd_per_hour=None if budget is None else max(0.0, budget - planned_usd),
            existing_gib_by_type=existing,
        )
        if od.allocations:
            _apply(targets, od, sign=1)
            reasons += od.reasons
            texts += [_alloc_text(cluster, a, removing=False) for a in od.allocations]
            texts.append(
                f"On-demand fallback: no SPOT group can deliver {gib(short)}, so it goes to ON_DEMAND TASK "
                f"group{'s' if len(od.allocations) > 1 else ''} {', '.join(a.key for a in od.allocations)}."
            )
            fallback_to += [a.key for a in od.allocations]
            short = od.shortfall_gib
            planned_nodes += od.nodes
            planned_usd += od.usd_per_hour
            planned_gib += od.memory_gib
    spot_blocked = [g.id for g in cluster.task_groups if g.id in ctx.blocked and g.market is Market.SPOT]
    if spot_blocked and plan.allocations:
        fallback_to = [a.key for a in plan.allocations] + fallback_to
        texts.append(
            f"Spot fallback: the unmet part of {', '.join(spot_blocked)} goes to the cheapest SPOT group "
            "that can deliver."
        )
    step_limited = planned_nodes >= cfg.max_scale_out_step_nodes and room > cfg.max_scale_out_step_nodes
    at_max = False
    if short > EPS:
        at_max = not step_limited and _limits_bind(ctx, markets, need, need - short)
        texts.append(_limit_text(ctx, short, step_limited, room, budget, any_offer=bool(free)))
    # Remember what was bought (when bounds forced more than the ideal), so that stabilization keeps it.
    desired_gib = max(desired_gib, cap.task_gib + planned_gib)
    return _Outcome(
        targets, [*reasons, *texts], desired_nodes, desired_gib, at_max, tuple(dict.fromkeys(fallback_to))
    )


def _limits_bind(ctx: _Ctx, markets: Sequence[Market], need: float, planned_gib: float) -> bool:
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
    )
    return unbounded.memory_gib > planned_gib + EPS


def _limit_text(
    ctx: _Ctx, short: float, step_limited: bool, room: int, budget: float | None, *, any_offer: bool
) -> str:
    cfg = ctx.config
    if not any_offer:
        why = "no RUNNING or RESIZING TASK group that delivers can take new nodes now"
    elif step_limited:
        why = (
            f"at most {cfg.max_scale_out_step_nodes} nodes are added per decision (max_scale_out_step_nodes)"
        )
    else:
        parts = []
        if room <= cfg.max_scale_out_step_nodes:
            parts.append(f"{room} more TASK nodes fit under max_task_nodes {cfg.max_task_nodes}")
        if budget is not None:
            parts.append(
                f"{_money(budget)} is left of budget_usd_per_hour {_money(cfg.budget_usd_per_hour or 0.0)}"
            )
        parts.append(
            "each group stops at its max_nodes, and only RUNNING or RESIZING groups that deliver get new "
            "nodes"
        )
        why = "; ".join(parts)
    return f"{gib(short)} of the need cannot be added now: {why}."


# --- scale in and the move back to spot ---------------------------------------------------------------------
def _scale_in(ctx: _Ctx, lower: Need, reasons: Sequence[str]) -> _Outcome:
    """`reasons`: the needs' sentences (ctx.need_reasons())."""
    cfg, cluster, cap = ctx.config, ctx.cluster, ctx.cap
    surplus = cap.counted_gib - lower.desired_gib
    desired_gib, desired_nodes = cap.task_gib, cap.task_nodes
    if _may_remove(ctx, surplus):
        ideal = plan_removal(
            memory_gib=surplus,
            offers=remove_offers(cluster, blocked=ctx.blocked, config=cfg, bounded=False),
            max_share=cfg.max_share_per_instance_type,
            existing_gib_by_type=cap.task_gib_by_type,
        )
        desired_gib, desired_nodes = cap.task_gib - ideal.memory_gib, cap.task_nodes - ideal.nodes
    waiting = _waiting(ctx)
    if waiting is None and ctx.est.over_target:
        over = ctx.est.over_target[0]
        waiting = f"{over.signal.value} is over its target: no scale-in."
    if waiting is not None:
        return _hold_or_move_back(ctx, [*reasons, waiting], desired_nodes, desired_gib)
    blocker = cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=True)
    if blocker is not None:
        return _Outcome(_UNCHANGED, [*reasons, blocker], desired_nodes, desired_gib, bounds=False)
    floor = stabilization_floor(ctx.state, now=ctx.now, config=cfg, current_gib=desired_gib)
    allowed = cap.task_gib - floor
    # while nodes are still coming, only those are cancelled: a running node removed now would leave a gap
    # until they run (they were asked for to replace or add to it)
    coming = cap.in_flight_gib > EPS
    if coming:  # SPOT nodes coming while ON_DEMAND fallback nodes run are their replacements: keep them
        allowed -= _on_demand_to_move_back_gib(ctx)
    removal = None
    if _may_remove(ctx, allowed):
        removal = plan_removal(
            memory_gib=allowed,
            offers=remove_offers(cluster, blocked=ctx.blocked, config=cfg, in_flight_only=coming),
            max_nodes=max(0, min(cfg.max_scale_in_step_nodes, total_requested(cluster) - cfg.min_task_nodes)),
            max_share=cfg.max_share_per_instance_type,
            existing_gib_by_type=cap.task_gib_by_type,
        )
    if removal is None or not removal.nodes:
        if floor > desired_gib + EPS:
            why = (
                f"Stabilization: the highest recommendation of the last {cfg.scale_in_stabilization_s} s is "
                f"{gib(floor)} of TASK memory and the TASK groups have {gib(cap.task_gib)}: no scale-in yet."
            )
        elif coming:
            why = (
                f"Nodes are still coming ({gib(cap.in_flight_gib)}): until they run, only nodes not yet "
                f"running may go, and none fits in the {gib(max(0.0, allowed))} surplus: holding."
            )
        else:
            why = (
                f"No whole node fits in the {gib(max(0.0, allowed))} surplus within the group and total "
                "minimums: holding."
            )
        return _hold_or_move_back(ctx, [*reasons, why], desired_nodes, desired_gib)
    targets = _current(cluster)
    _apply(targets, removal, sign=-1)
    texts = [_alloc_text(cluster, a, removing=True) for a in removal.allocations]
    if floor > desired_gib + EPS:
        texts.append(
            f"Stabilization: not below {gib(floor)} of TASK memory, the highest recommendation of the last "
            f"{cfg.scale_in_stabilization_s} s."
        )
    return _Outcome(targets, [*reasons, *texts], desired_nodes, desired_gib)


def _may_remove(ctx: _Ctx, memory_gib: float) -> bool:
    """False when plan_removal surely removes nothing from `memory_gib`: every TASK group with a node to give
    (remove_offers never offers more than a group's requested nodes) has larger nodes. That is most scale-in
    evaluations (a surplus smaller than one node, or only empty groups small enough), which then skip the
    planner."""
    return ctx.cap.smallest_node_gib <= max(0.0, memory_gib) + FIT_GIB  # plan_removal's test


def _waiting(ctx: _Ctx) -> str | None:
    pending = ctx.readings.get(Signal.CONTAINER_PENDING) or 0.0
    apps = ctx.readings.get(Signal.APPS_PENDING) or 0.0
    if pending > 0 or apps > 0:
        return f"{pending:.0f} containers and {apps:.0f} applications are waiting: no scale-in."
    return None


def _hold_or_move_back(ctx: _Ctx, reasons: list[str], desired_nodes: int, desired_gib: float) -> _Outcome:
    out = _move_back(ctx)
    if out is not None:
        return out
    return _Outcome(_UNCHANGED, reasons, desired_nodes, desired_gib)


def _move_back(ctx: _Ctx) -> _Outcome | None:
    """Capacity moves back to spot once SPOT groups deliver again: first add SPOT memory for the ON_DEMAND
    nodes above their minimum (phase 1), then, once no SPOT group falls short, remove those ON_DEMAND nodes
    that the surplus covers (phase 2). Never while a SPOT group is blocked, a signal is over target or a
    cooldown runs."""
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
    if not any(g.requested > g.running for g in spot) and _waiting(ctx) is None:
        if cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=True) is not None:
            return None
        released = _release_on_demand(ctx, od_offers, desired)
        if released is not None:
            return released
    return _buy_spot_back(ctx, od_gib, desired)


def _on_demand_to_move_back_gib(ctx: _Ctx) -> float:
    """ON_DEMAND TASK memory above the groups' minimums that moves back to spot (0 while a SPOT group is
    blocked or there is no SPOT group to move to)."""
    spot = [g for g in ctx.cluster.task_groups if g.market is Market.SPOT]
    if not spot or any(g.id in ctx.blocked for g in spot):
        return 0.0
    offers = remove_offers(ctx.cluster, blocked=ctx.blocked, config=ctx.config, markets=(Market.ON_DEMAND,))
    return sum(o.memory_gib * (o.max_nodes or 0) for o in offers)


def _release_on_demand(ctx: _Ctx, od_offers: list[Offer], desired: float) -> _Outcome | None:
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
    targets = _current(cluster)
    _apply(targets, removal, sign=-1)
    texts = [_alloc_text(cluster, a, removing=True) for a in removal.allocations]
    head = (
        f"Back to spot: SPOT groups deliver again and the {gib(surplus)} surplus covers "
        f"{gib(removal.memory_gib)} of ON_DEMAND fallback nodes, so they go."
    )
    return _Outcome(targets, [*ctx.need_reasons(), head, *texts], cap.task_nodes - removal.nodes, desired)


def _buy_spot_back(ctx: _Ctx, od_gib: float, desired: float) -> _Outcome | None:
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
        max_usd_per_hour=_budget_left(cluster, cfg),
        existing_gib_by_type=cap.task_gib_by_type,
    )
    if not plan.nodes:
        return None
    targets = _current(cluster)
    _apply(targets, plan, sign=1)
    head = (
        f"Back to spot: {gib(od_gib)} of ON_DEMAND fallback nodes run above their minimum and every SPOT "
        f"group delivers again: adding {gib(plan.memory_gib)} on SPOT first; the ON_DEMAND nodes go once "
        "it runs."
    )
    texts = [_alloc_text(cluster, a, removing=False) for a in plan.allocations]
    return _Outcome(targets, [*ctx.need_reasons(), head, *plan.reasons, *texts], cap.task_nodes, desired)


def _budget_left(cluster: Cluster, cfg: Config) -> float | None:
    """USD per hour that may still be added under budget_usd_per_hour (None: no budget)."""
    if cfg.budget_usd_per_hour is None:
        return None
    return max(0.0, cfg.budget_usd_per_hour - cluster.requested_usd_per_hour)
