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

from dataclasses import replace
from datetime import datetime

from sparkscale.config import Config
from sparkscale.policy.burst import read_burst
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
from sparkscale.policy.fleet import policy_config
from sparkscale.policy.forecast import DemandHistory, forecast, sample_at
from sparkscale.policy.gates import METRICS_MISSING, cluster_gate, idle, idle_for, metrics_missing
from sparkscale.policy.model import (
    Cluster,
    Decision,
    DemandSample,
    Direction,
    Forecast,
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
from sparkscale.policy.streaming import STREAMING_SIGNALS

__all__ = ["METRICS_MISSING", "decide", "evaluate"]

_DRY_RUN = Reason(ReasonCode.DRY_RUN, "Dry run: this decision is logged and notified, not applied.")
# the reason of most holds (a Reason is immutable: one for all of them)
_WITHIN_DEADBAND = Reason(ReasonCode.WITHIN_DEADBAND, "Every signal is within its deadband: holding.")


def decide(
    *,
    now: datetime,
    cluster: Cluster,
    metrics: MetricsSnapshot,
    config: Config,
    state: ScalerState,
    history: DemandHistory | None = None,
) -> Decision:
    """Decide the TASK groups' targets. Never raises on well-typed input; MASTER/CORE are never targets.
    `history`: the demand's 5-minute peaks (forecast.history_ranges) for the seasonal forecast."""
    return evaluate(now=now, cluster=cluster, metrics=metrics, config=config, state=state, history=history)[0]


def evaluate(
    *,
    now: datetime,
    cluster: Cluster,
    metrics: MetricsSnapshot,
    config: Config,
    state: ScalerState,
    history: DemandHistory | None = None,
) -> tuple[Decision, Observation | None]:
    """`decide`, and what it observed that next_state needs too (None when the cluster was not evaluated: not
    RUNNING or WAITING, or no TASK group). Passing it to next_state reads the metrics once per evaluation."""
    config = policy_config(config, cluster)  # a fleet cluster: its units are one "instance type"
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
    sample = fc = None
    if config.forecast_mode != "off" and est.driving is not None:
        at = sample_at(est.driving.signal, readings.samples, now)
        sample = DemandSample(at, est.driving.desired_gib)
        fc = forecast(
            now=now,
            state=state,
            sample=sample,
            history=history or {},
            seasonal_rule=config.forecast_seasonal,
        )
    acting = fc if config.forecast_mode == "act" else None
    ctx = Context(now, cluster, config, state, readings, blocked, cap, est, acting)
    active = active_from(readings)

    idle_since = idle_for(ctx, active)
    if idle_since is not None and not est.over_target:
        out = idle(ctx, idle_since)
    elif est.driving is None:
        out = StepResult(UNCHANGED, [metrics_missing()], bounds=False)
    else:
        out = _by_pressure(ctx, est.driving)
    decision = _decision(now, cluster=cluster, config=config, out=out, ctx=ctx)
    if fc is not None:
        decision = replace(decision, forecast=fc)
    burst = read_burst(est, cap, config)
    return decision, Observation(active, est.heap_used_pct, measured, sample, burst)


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
    wants_more = any(n.desired_gib > cap.counted_gib + EPS for n in pressed)
    if ctx.forecast is not None or wants_more:
        out = (
            scale_out(ctx, driving)
            if ctx.forecast is None
            else _ahead(ctx, ctx.forecast, driving, wants_more=wants_more)
        )
        if out is not None:
            return out
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
        return _lower(ctx, lower)
    out = move_back(ctx)
    if out is not None:
        return out
    if lower is None:
        text = (
            "Only the executor heap reports, and it is not over its target: the heap alone never scales in."
        )
        why = Reason(ReasonCode.HEAP_ONLY, text)
    elif lower.signal in STREAMING_SIGNALS and _others_want_less(est.needs, cap, band):
        why = _stream_holds(lower)
    else:
        why = _WITHIN_DEADBAND
    return hold(why, ctx, cap.task_nodes, cap.task_gib)


def _others_want_less(needs: tuple[Need, ...], cap: Capacity, band: float) -> bool:
    """A signal that may ask for less, other than a stream's, wants less than the deadband allows."""
    return any(
        n.scale_in and n.signal not in STREAMING_SIGNALS and _capacity_ratio(n.desired_gib, cap) < 1.0 - band
        for n in needs
    )


def _stream_holds(need: Need) -> Reason:
    """A stream behind or not caught up holds a scale-in the other signals want."""
    what = need.text if isinstance(need.text, str) else need.text()
    values = dict(need.values or {})
    if values.get("caught_up"):
        text = f"{what}. No scale-in below the capacity that keeps up with the input."
        return Reason(ReasonCode.STREAM_KEEP_UP_FLOOR, text, values, need.signal)
    text = f"{what}. No scale-in while a stream is behind or catching up."
    return Reason(ReasonCode.STREAM_NOT_CAUGHT_UP, text, values, need.signal)


# --- forecast_mode act: size for the demand expected when new nodes would be usable -------------------------
def _ahead(ctx: Context, fc: Forecast, driving: Need, *, wants_more: bool) -> StepResult | None:
    """Scale out to the forecast when it is above the capacity counted (and a signal wants more, or the
    forecast is beyond the deadband); hold when a signal wants more but the forecast does not (the burst is
    forecast to end before new nodes could be usable); None: the other rules decide."""
    counted, band = ctx.cap.counted_gib, ctx.config.deadband_pct / 100.0
    f = fc.value_gib
    if f > counted + EPS and (wants_more or f > counted * (1.0 + band)):
        text = (
            f"Forecast: {gib(f)} of demand at {fc.target_at.isoformat()} ({fc.method}; lead time "
            f"{fc.lead_time_s:.0f} s + datapoint age {fc.signal_age_s:.0f} s; {gib(fc.current_gib)} now), "
            f"{gib(counted)} running or requested: sizing for it (+{gib(f - counted)})."
        )
        lead = Reason(ReasonCode.FORECAST, text, _fc_values(fc, counted), fc.method)
        return scale_out(ctx, driving, need_gib=f - counted, lead=lead)
    if not wants_more:
        return None
    text = (
        f"Burst ends before new nodes: {gib(fc.current_gib)} of demand now, but {gib(f)} forecast at "
        f"{fc.target_at.isoformat()} when nodes requested now would be usable (lead time "
        f"{fc.lead_time_s:.0f} s + datapoint age {fc.signal_age_s:.0f} s), within the {gib(counted)} running "
        "or requested: buying nothing."
    )
    why = Reason(ReasonCode.BURST_ENDS_BEFORE_NODES, text, _fc_values(fc, counted), fc.method)
    return hold(why, ctx, ctx.cap.task_nodes, ctx.cap.task_gib)


def _lower(ctx: Context, lower: Need) -> StepResult:
    """Scale in for `lower`; with forecast_mode act never below the forecast (a hold when it keeps all)."""
    fc, cap = ctx.forecast, ctx.cap
    if fc is None:
        return scale_in(ctx, lower)
    if _capacity_ratio(max(lower.desired_gib, fc.value_gib), cap) < 1.0 - ctx.config.deadband_pct / 100.0:
        return scale_in(ctx, lower, floor_gib=fc.value_gib)
    return hold(_kept_by_forecast(fc, cap), ctx, cap.task_nodes, cap.task_gib)


def _kept_by_forecast(fc: Forecast, cap: Capacity) -> Reason:
    text = (
        f"Forecast: {gib(fc.value_gib)} of demand at {fc.target_at.isoformat()} ({fc.method}): never scaling "
        f"in below it ({gib(cap.counted_gib)} running or requested)."
    )
    return Reason(ReasonCode.FORECAST, text, _fc_values(fc, cap.counted_gib), fc.method)


def _fc_values(fc: Forecast, counted: float) -> dict[str, float]:
    return {
        "forecast_gib": fc.value_gib,
        "current_gib": fc.current_gib,
        "counted_gib": counted,
        "lead_time_s": fc.lead_time_s,
        "signal_age_s": fc.signal_age_s,
    }


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


def _requested_within_bounds(cluster: Cluster, config: Config) -> bool:
    """enforce_bounds moves nothing when every group keeps its requested count and no group is blocked: once
    per Cluster value and Config (Cluster.derived_for)."""
    return cluster.derived_for(
        "requested_within_bounds",
        config,
        lambda c: not enforce_bounds(c, current(c), blocked={}, config=config),
    )


def _decision(
    now: datetime,
    *,
    cluster: Cluster,
    config: Config,
    out: StepResult,
    ctx: Context | None = None,
) -> Decision:
    blocked = ctx.blocked if ctx is not None else {}
    if out.targets or (out.bounds and (blocked or not _requested_within_bounds(cluster, config))):
        targets = current(cluster)
        if out.targets:
            targets.update({k: v for k, v in out.targets.items() if k in targets})
        # the outcome's own targets, before the bounds (compared only when it has some)
        planned = targets.copy() if out.bounds and out.targets else targets
        bounded = enforce_bounds(cluster, targets, blocked=blocked, config=config) if out.bounds else []
    else:  # a hold that the bounds leave as it is (most evaluations): the requested counts, read no further
        targets = planned = {}
        bounded = []
    # without a target from the outcome and none moved by the bounds (they give a reason for each one they
    # move), every group keeps its requested count
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
