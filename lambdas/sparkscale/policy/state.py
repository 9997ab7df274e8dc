"""The scaler's memory between invocations: how it evolves after a decision, and its JSON-safe form.

`next_state` is the only place ScalerState changes (besides the shell recording EMR capacity errors in
`capacity_errors`). It is pure: `now` and everything else are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sparkscale.config import Config
from sparkscale.policy.burst import next_burst
from sparkscale.policy.capacity import yarn_memory_scale
from sparkscale.policy.constraints import window_start
from sparkscale.policy.forecast import add_sample, lead_time_s, measure_lead
from sparkscale.policy.model import (
    BurstLevel,
    Cluster,
    Decision,
    DemandSample,
    Direction,
    InstanceGroup,
    MetricsSnapshot,
    Observation,
    PendingScaleOut,
    Recommendation,
    ScalerState,
)
from sparkscale.policy.signals import fresh_heap_used_pct, heap_pressed, is_active

MAX_RECOMMENDATIONS = 256  # a hard cap on the persisted window, whatever the invocation rate


def next_state(
    *,
    previous: ScalerState,
    decision: Decision,
    cluster: Cluster,
    metrics: MetricsSnapshot,
    now: datetime,
    config: Config,
    observed: Observation | None = None,
) -> ScalerState:
    """The state after `decision` was applied (or not: a dry run, a hold, a failed resize all count as 'not').
    `observed`: what `evaluate` observed of the same cluster, metrics, now, config and (previous) state; read
    from the metrics again when None.

    - last_scale_out_at / last_scale_in_at: set to `now` when the decision is a real action (not a dry run).
    - last_active_at: `now` when an application runs or waits; also `now` the first time anything is seen, so
      the idle clock starts at the first observation, never in the past.
    - recommendations: this decision's estimate appended; entries older than the stabilization window dropped.
    - shortfall_since: per TASK group with requested > running, since when it has been waiting without
      progress; dropped when it clears. The clock restarts when the group delivered nodes since it was last
      seen (its running count grew: the nodes still missing get their full timeout); it does NOT restart
      when the decision only grows the group, so a group that never delivers is blocked after
      spot_fallback_timeout_s however often more nodes are asked of it. shortfall_running keeps the running
      count last seen.
    - capacity_errors: kept while the group still falls short or the error is younger than
      spot_fallback_timeout_s; cleared on recovery.
    - yarn_memory_scale: MemoryTotalMB over the derived running memory when the cluster is settled
      (estimate.yarn_memory_scale), else the previous value.
    - demand_samples, lead_times_s, pending_scale_out (forecast_mode observe or act; kept as they are with
      off): the demand observed added to the trend window (forecast.add_sample); a scale-out's request ->
      usable delay measured once its nodes run (forecast.measure_lead).
    - burst_levels, burst_short, burst_out_of_memory, burst_durations_s: the bursts going on, what the last
      evaluation saw, and the last bursts' durations
      (burst.next_burst; followed only while burst_first_step_nodes > 0, else no burst and the history kept).
    - heap_pressure_since: when the executors' heap went beyond its deadband (the heap alarm's threshold),
      kept while it stays there, None once it is back (or its datapoint is missing).
    """
    acted = decision.is_action and not decision.dry_run
    last_out = now if acted and decision.direction is Direction.OUT else previous.last_scale_out_at
    last_in = now if acted and decision.direction is Direction.IN else previous.last_scale_in_at

    if observed is None:
        observed = _observe(previous, cluster, metrics, now=now, config=config)
    active = observed.active
    scale = observed.yarn_memory_scale
    if scale is None:
        scale = previous.yarn_memory_scale
    last_active = previous.last_active_at
    if active is True or last_active is None:
        last_active = now

    pressure_since = None
    if heap_pressed(observed.heap_used_pct, config):
        since = previous.heap_pressure_since
        pressure_since = now if since is None or since > now else since

    start = window_start(now, config.scale_in_stabilization_s)
    recs = [r for r in previous.recommendations if start <= r.at <= now]
    if decision.desired_task_nodes is not None:
        recs.append(Recommendation(now, decision.desired_task_nodes, decision.desired_task_memory_gib))
    recs = recs[-MAX_RECOMMENDATIONS:]

    shortfall, seen = _shortfall(previous, decision, cluster, acted=acted, now=now)
    errors = _capacity_errors(previous, cluster, shortfall, now=now, config=config)
    samples, leads, pending = _forecast_fields(previous, decision, cluster, observed, acted=acted, now=now)
    return ScalerState(
        last_scale_out_at=last_out,
        last_scale_in_at=last_in,
        last_active_at=last_active,
        recommendations=tuple(recs),
        shortfall_since=shortfall,
        capacity_errors=errors,
        shortfall_running=seen,
        yarn_memory_scale=scale,
        heap_pressure_since=pressure_since,
        demand_samples=samples,
        lead_times_s=leads,
        pending_scale_out=pending,
        **_burst_fields(previous, observed, last_out=last_out, now=now, config=config),
    )


def _burst_fields(
    previous: ScalerState, observed: Observation, *, last_out: datetime | None, now: datetime, config: Config
) -> dict[str, Any]:
    """burst_levels, burst_short, burst_out_of_memory, burst_durations_s after this evaluation."""
    levels, (short, out_of_memory), durations = next_burst(
        previous.burst_levels,
        (previous.burst_short, previous.burst_out_of_memory),
        previous.burst_durations_s,
        observed.burst,
        last_step_at=previous.last_scale_out_at,
        stepped=last_out == now and previous.last_scale_out_at != now,
        lead_s=lead_time_s(previous),
        now=now,
        config=config,
    )
    return {
        "burst_levels": levels,
        "burst_short": short,
        "burst_out_of_memory": out_of_memory,
        "burst_durations_s": durations,
    }


def _forecast_fields(
    previous: ScalerState,
    decision: Decision,
    cluster: Cluster,
    observed: Observation,
    *,
    acted: bool,
    now: datetime,
) -> tuple[tuple[DemandSample, ...], tuple[float, ...], PendingScaleOut | None]:
    """demand_samples, lead_times_s, pending_scale_out after the decision (see next_state); unchanged when
    nothing was observed for the forecast (forecast_mode off: observed.demand is None)."""
    if observed.demand is None:
        return previous.demand_samples, previous.lead_times_s, previous.pending_scale_out
    leads, pending = measure_lead(previous, cluster, decision, acted=acted, now=now)
    return add_sample(previous.demand_samples, observed.demand), leads, pending


def _observe(
    previous: ScalerState, cluster: Cluster, metrics: MetricsSnapshot, *, now: datetime, config: Config
) -> Observation:
    """What `evaluate` observes, read from the metrics (next_state called without it). With the burst rule on
    (burst_first_step_nodes > 0) that needs the whole estimate: evaluate itself observes it."""
    if config.burst_first_step_nodes > 0:
        from sparkscale.policy.decide import evaluate  # noqa: PLC0415  (decide's steps import this module's peers)

        seen = evaluate(now=now, cluster=cluster, metrics=metrics, config=config, state=previous)[1]
        if seen is not None:
            return seen
    out_at, in_at = previous.last_scale_out_at, previous.last_scale_in_at
    last_resize = in_at if out_at is None else out_at if in_at is None else max(out_at, in_at)
    return Observation(
        is_active(metrics, now=now, config=config),
        fresh_heap_used_pct(metrics, now=now, config=config),
        yarn_memory_scale(cluster, metrics, now=now, config=config, last_resize_at=last_resize),
    )


def _shortfall(
    previous: ScalerState, decision: Decision, cluster: Cluster, *, acted: bool, now: datetime
) -> tuple[dict[str, datetime], dict[str, int]]:
    """shortfall_since and shortfall_running after the decision (see next_state)."""
    applied = {t.group_id: t.target for t in decision.targets} if acted else {}
    shortfall: dict[str, datetime] = {}
    seen: dict[str, int] = {}
    # without an action only the groups with requested nodes not yet running fall short (once per Cluster)
    for g in cluster.task_groups if acted else cluster.derived("coming", _coming):
        requested = applied.get(g.id, g.requested)
        if requested > g.running:
            since = previous.shortfall_since.get(g.id)
            before = previous.shortfall_running.get(g.id)
            progressed = before is not None and g.running > before
            shortfall[g.id] = now if since is None or progressed else min(since, now)
            seen[g.id] = g.running
    return shortfall, seen


def _capacity_errors(
    previous: ScalerState,
    cluster: Cluster,
    shortfall: Mapping[str, datetime],
    *,
    now: datetime,
    config: Config,
) -> dict[str, datetime]:
    """capacity_errors kept: while the group still falls short, or younger than spot_fallback_timeout_s."""
    errors: dict[str, datetime] = {}
    if not previous.capacity_errors:  # nearly always: no timeout to build
        return errors
    timeout = timedelta(seconds=config.spot_fallback_timeout_s)
    for gid, at in previous.capacity_errors.items():
        group = cluster.group(gid)
        if group is None or not group.is_task:
            continue
        if gid in shortfall or now - at < timeout:
            errors[gid] = at
    return errors


def _coming(cluster: Cluster) -> tuple[InstanceGroup, ...]:
    """The TASK groups with requested nodes not yet running."""
    return tuple(g for g in cluster.task_groups if g.requested > g.running)


# --- JSON-safe form -----------------------------------------------------------------------------------------
def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.astimezone(UTC).isoformat()


def _parse(v: Any, key: str) -> datetime | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"state field {key!r}: expected an ISO-8601 string, got {v!r}")
    try:
        d = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"state field {key!r}: not an ISO-8601 datetime: {v!r}") from None
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _req(v: Any, key: str) -> datetime:
    d = _parse(v, key)
    if d is None:
        raise ValueError(f"state field {key!r}: missing datetime")
    return d


def state_to_dict(state: ScalerState) -> dict[str, Any]:
    """JSON-safe: datetimes as ISO-8601 UTC strings, numbers as int/float, mappings as dicts."""
    return {
        "last_scale_out_at": _iso(state.last_scale_out_at),
        "last_scale_in_at": _iso(state.last_scale_in_at),
        "last_active_at": _iso(state.last_active_at),
        "recommendations": [
            {"at": _iso(r.at), "task_nodes": int(r.task_nodes), "task_memory_gib": r.task_memory_gib}
            for r in state.recommendations
        ],
        "shortfall_since": {k: _iso(v) for k, v in sorted(state.shortfall_since.items())},
        "capacity_errors": {k: _iso(v) for k, v in sorted(state.capacity_errors.items())},
        "shortfall_running": {k: int(v) for k, v in sorted(state.shortfall_running.items())},
        "yarn_memory_scale": state.yarn_memory_scale,
        "heap_pressure_since": _iso(state.heap_pressure_since),
        **_forecast_to_dict(state),
        **_burst_to_dict(state),
    }


def _burst_to_dict(state: ScalerState) -> dict[str, Any]:
    """The burst fields, only when set (a state without them is stored as before)."""
    out: dict[str, Any] = {}
    if state.burst_levels:
        out["burst_levels"] = [
            {"since": _iso(b.since), "base_gib": b.base_gib, "need_gib": b.need_gib}
            for b in state.burst_levels
        ]
    if state.burst_short:
        out["burst_short"] = True
    if state.burst_out_of_memory:
        out["burst_out_of_memory"] = True
    if state.burst_durations_s:
        out["burst_durations_s"] = list(state.burst_durations_s)
    return out


def _burst_from_dict(
    d: Mapping[str, Any],
) -> tuple[tuple[BurstLevel, ...], tuple[bool, bool], tuple[float, ...]]:
    """Inverse of _burst_to_dict; ValueError naming the field when malformed."""
    levels: list[BurstLevel] = []
    raw_levels = d.get("burst_levels") or []
    if not isinstance(raw_levels, list | tuple):
        raise ValueError("state field 'burst_levels': expected a list")
    for i, r in enumerate(raw_levels):
        try:
            since = _req(r.get("since"), f"burst_levels[{i}].since")
            levels.append(BurstLevel(since, _number(r["base_gib"]), _number(r.get("need_gib", 0.0))))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"state field 'burst_levels[{i}]': {exc}") from None
    flags = (d.get("burst_short", False), d.get("burst_out_of_memory", False))
    for name, flag in zip(("burst_short", "burst_out_of_memory"), flags, strict=True):
        if not isinstance(flag, bool):
            raise ValueError(f"state field {name!r}: expected true or false, got {flag!r}")
    raw = d.get("burst_durations_s") or []
    try:
        if not isinstance(raw, list | tuple):
            raise TypeError
        durations = tuple(_number(v) for v in raw)
    except (TypeError, ValueError):
        raise ValueError("state field 'burst_durations_s': expected a list of numbers") from None
    return tuple(levels), (flags[0], flags[1]), durations


def _forecast_to_dict(state: ScalerState) -> dict[str, Any]:
    """The forecast's fields, only when set (a state of forecast_mode off is stored as before)."""
    out: dict[str, Any] = {}
    if state.demand_samples:
        out["demand_samples"] = [{"at": _iso(s.at), "gib": s.gib} for s in state.demand_samples]
    if state.lead_times_s:
        out["lead_times_s"] = list(state.lead_times_s)
    if state.pending_scale_out is not None:
        p = state.pending_scale_out
        out["pending_scale_out"] = {"at": _iso(p.at), "task_nodes": p.task_nodes}
    return out


def _forecast_from_dict(
    d: Mapping[str, Any],
) -> tuple[tuple[DemandSample, ...], tuple[float, ...], PendingScaleOut | None]:
    """Inverse of _forecast_to_dict; ValueError naming the field when malformed."""
    samples: list[DemandSample] = []
    for i, r in enumerate(d.get("demand_samples") or []):
        try:
            samples.append(DemandSample(_req(r.get("at"), f"demand_samples[{i}].at"), _number(r.get("gib"))))
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"state field 'demand_samples[{i}]': {exc}") from None
    try:
        leads = tuple(_number(v) for v in d.get("lead_times_s") or [])
    except (TypeError, ValueError):
        raise ValueError("state field 'lead_times_s': expected a list of numbers") from None
    raw = d.get("pending_scale_out")
    pending = None
    if raw is not None:
        try:
            pending = PendingScaleOut(_req(raw.get("at"), "pending_scale_out.at"), int(raw["task_nodes"]))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ValueError("state field 'pending_scale_out': needs at and task_nodes") from None
    return tuple(samples), leads, pending


def _number(v: Any) -> float:
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {v!r}")
    return x


def state_from_dict(d: Mapping[str, Any]) -> ScalerState:
    """Inverse of state_to_dict. Missing keys take their defaults (an empty dict is a fresh state); a
    malformed value raises ValueError naming the field. Numbers may arrive as Decimal (DynamoDB): they are
    converted."""
    recs: list[Recommendation] = []
    raw_recs = d.get("recommendations")
    raw_recs = [] if raw_recs is None else raw_recs
    if not isinstance(raw_recs, list | tuple):
        raise ValueError("state field 'recommendations': expected a list")
    for i, r in enumerate(raw_recs):
        if not isinstance(r, Mapping):
            raise ValueError(f"state field 'recommendations[{i}]': expected an object")
        try:
            nodes = int(r["task_nodes"])
            mem_raw = r.get("task_memory_gib")
            mem = None if mem_raw is None else float(mem_raw)
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"state field 'recommendations[{i}]': needs task_nodes (and number memory)"
            ) from None
        recs.append(Recommendation(_req(r.get("at"), f"recommendations[{i}].at"), nodes, mem))

    def mapping(key: str) -> dict[str, datetime]:
        raw = d.get(key)
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            raise ValueError(f"state field {key!r}: expected an object")
        return {str(k): _req(v, f"{key}.{k}") for k, v in raw.items()}

    raw_seen = d.get("shortfall_running")
    raw_seen = {} if raw_seen is None else raw_seen
    if not isinstance(raw_seen, Mapping):
        raise ValueError("state field 'shortfall_running': expected an object")
    seen: dict[str, int] = {}
    for k, v in raw_seen.items():
        try:
            seen[str(k)] = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"state field 'shortfall_running.{k}': expected a whole number") from None
    raw_scale = d.get("yarn_memory_scale")
    try:
        scale = None if raw_scale is None else float(raw_scale)
    except (TypeError, ValueError):
        raise ValueError(f"state field 'yarn_memory_scale': expected a number, got {raw_scale!r}") from None
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"state field 'yarn_memory_scale': expected a number > 0, got {raw_scale!r}")
    samples, leads, pending = _forecast_from_dict(d)
    burst_levels, burst_short, burst_durations = _burst_from_dict(d)
    return ScalerState(
        last_scale_out_at=_parse(d.get("last_scale_out_at"), "last_scale_out_at"),
        last_scale_in_at=_parse(d.get("last_scale_in_at"), "last_scale_in_at"),
        last_active_at=_parse(d.get("last_active_at"), "last_active_at"),
        recommendations=tuple(recs),
        shortfall_since=mapping("shortfall_since"),
        capacity_errors=mapping("capacity_errors"),
        shortfall_running=seen,
        yarn_memory_scale=scale,
        heap_pressure_since=_parse(d.get("heap_pressure_since"), "heap_pressure_since"),
        demand_samples=samples,
        lead_times_s=leads,
        pending_scale_out=pending,
        burst_levels=burst_levels,
        burst_short=burst_short[0],
        burst_out_of_memory=burst_short[1],
        burst_durations_s=burst_durations,
    )
