"""`decide`: a snapshot of a cluster and its metrics in, a Decision with reasons out. Pure and deterministic.

The steps, in order (each a named pure function in its own module, with its own tests):
 0. gates         cluster RUNNING/WAITING, has TASK groups (gates.cluster_gate); fresh metrics only
                  (signals.read_signals); spot fallback (fallback.blocked_groups)
 1. estimate      desired YARN memory per signal, the largest need drives (estimate.estimate)
 2. idle          no application for idle_after_s: every changeable group to its minimum (gates.idle)
 3. direction     the driving need against the capacity counted (running CORE + requested TASK nodes), with
                  a deadband (here, _by_pressure); a heap-pressure episode adds at least one node beyond what
                  is coming (scale_out.heap_pressure); scale-in only on signals that may ask for less (not the
                  heap), never while any signal is over its target or containers wait (gates.scale_in_veto)
 4. expand        whole nodes by USD per GiB-hour within the limits: scale_out, scale_in, and move_back (the
                  on-demand fallback's capacity back to spot), with cooldowns and stabilization (constraints)
 5. bounds        every changeable group and the TASK total within their min/max (constraints.enforce_bounds)

A Decision's first reason is the one that drove its direction; for a hold, why it holds.
"""

from __future__ import annotations

from datetime import datetime

from sparkscale.config import Config
from sparkscale.policy.constraints import enforce_bounds, usd_per_hour
from sparkscale.policy.context import UNCHANGED, Context, StepResult, current, hold
from sparkscale.policy.estimate import (
    HUGE_RATIO,
    Capacity,
    Need,
    NodeCounts,
    capacity_of,
    count_nodes,
    estimate,
    gib,
    settled_scale,
)
from sparkscale.policy.fallback import blocked_groups
from sparkscale.policy.gates import METRICS_MISSING, cluster_gate, idle, idle_for, metrics_missing
from sparkscale.policy.model import (
    Cluster,
    Decision,
    Direction,
    GroupTarget,
    MetricsSnapshot,
    Observation,
    ScalerState,
)
from sparkscale.policy.move_back import move_back
from sparkscale.policy.planner import EPS
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.scale_in import scale_in
from sparkscale.policy.scale_out import heap_pressure, scale_out
from sparkscale.policy.signals import active_from, read_signals

__all__ = ["METRICS_MISSING", "decide", "evaluate"]

_DRY_RUN = Reason(ReasonCode.DRY_RUN, "Dry run: this decision is logged and notified, not applied.")


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
    gate = cluster_gate(cluster)
    if gate is not None:
        return _decision(
            now, cluster=cluster, config=config, out=StepResult(UNCHANGED, [gate], bounds=False)
        ), None
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
    ctx = Context(now, cluster, config, state, readings, blocked, cap, est)
    active = active_from(readings)

    idle_since = idle_for(ctx, active)
    if idle_since is not None and not est.over_target:
        out = idle(ctx, idle_since)
    elif est.driving is None:
        out = StepResult(UNCHANGED, [metrics_missing()], bounds=False)
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


# --- step 3: direction by pressure --------------------------------------------------------------------------
def _by_pressure(ctx: Context, driving: Need) -> StepResult:
    cap, est = ctx.cap, ctx.est
    band = ctx.config.deadband_pct / 100.0
    # a signal beyond its deadband that wants more than the capacity counted scales out (for YARN memory both
    # say the same; the heap may be beyond its band while YARN still has room for more executors)
    pressed = [n for n in est.needs if n.ratio > 1.0 + band]
    if any(n.desired_gib > cap.counted_gib + EPS for n in pressed):
        return scale_out(ctx, driving)
    pressure = heap_pressure(ctx)
    if pressure is not None:
        return scale_out(ctx, driving, pressure=pressure)
    if pressed:  # a signal is over its target, but the capacity counted already covers what it asks for
        if cap.in_flight_gib > EPS:
            text = (
                f"Nodes already requested cover it: {gib(cap.in_flight_gib)} of TASK memory is still being "
                "provisioned."
            )
        else:
            text = "The capacity running or requested already covers what it asks for: holding."
        why = Reason(ReasonCode.COVERED, text, {"in_flight_gib": cap.in_flight_gib})
        return hold(why, ctx, cap.task_nodes, cap.task_gib)
    lower = est.scale_in_need
    if lower is not None and _capacity_ratio(lower.desired_gib, cap) < 1.0 - band:
        return scale_in(ctx, lower)
    out = move_back(ctx)
    if out is not None:
        return out
    if lower is None:
        text = (
            "Only the executor heap reports, and it is not over its target: the heap alone never scales in."
        )
        why = Reason(ReasonCode.HEAP_ONLY, text)
    else:
        why = Reason(ReasonCode.WITHIN_DEADBAND, "Every signal is within its deadband: holding.")
    return hold(why, ctx, cap.task_nodes, cap.task_gib)


def _capacity_ratio(desired_gib: float, cap: Capacity) -> float:
    """Desired memory over the capacity counted (running CORE + requested TASK nodes)."""
    if cap.counted_gib > 0:
        return desired_gib / cap.counted_gib
    return HUGE_RATIO if desired_gib > EPS else 1.0


# --- the Decision -------------------------------------------------------------------------------------------
def _direction(cluster: Cluster, targets: dict[str, int]) -> Direction:
    up = down = False
    for g in cluster.task_groups:
        t = targets[g.id]
        up = up or t > g.requested
        down = down or t < g.requested
    return Direction.OUT if up else Direction.IN if down else Direction.HOLD


def _decision(
    now: datetime,
    *,
    cluster: Cluster,
    config: Config,
    out: StepResult,
    ctx: Context | None = None,
) -> Decision:
    targets = current(cluster)
    if out.targets:
        targets.update({k: v for k, v in out.targets.items() if k in targets})
    planned = targets.copy() if out.bounds else targets  # the outcome's own targets, before the bounds
    blocked = ctx.blocked if ctx is not None else {}
    bounded = enforce_bounds(cluster, targets, blocked=blocked, config=config) if out.bounds else []
    # else every group keeps its requested count: no target from the outcome, none moved by the bounds (they
    # give a reason for each one they move)
    direction = _direction(cluster, targets) if out.targets or bounded else Direction.HOLD
    reasons = list(out.reasons)
    if bounded:  # when the bounds changed the direction the outcome planned, they drove it: they lead
        led = direction is not (_direction(cluster, planned) if out.targets else Direction.HOLD)
        reasons = [*bounded, *reasons] if led else [*reasons, *bounded]
    if ctx is not None:
        reasons += ctx.notes
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
        reasons.append(_DRY_RUN)
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
