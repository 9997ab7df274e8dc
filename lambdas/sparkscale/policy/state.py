"""The scaler's memory between invocations: how it evolves after a decision, and its JSON-safe form.

`next_state` is the only place ScalerState changes (besides the shell recording EMR capacity errors in
`capacity_errors`). It is pure: `now` and everything else are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sparkscale.config import Config
from sparkscale.policy.model import (
    Cluster,
    Decision,
    Direction,
    MetricsSnapshot,
    Recommendation,
    ScalerState,
)
from sparkscale.policy.signals import is_active

MAX_RECOMMENDATIONS = 256  # a hard cap on the persisted window, whatever the invocation rate


def next_state(
    *,
    previous: ScalerState,
    decision: Decision,
    cluster: Cluster,
    metrics: MetricsSnapshot,
    now: datetime,
    config: Config,
) -> ScalerState:
    """The state after `decision` was applied (or not: a dry run, a hold, a failed resize all count as 'not').

    - last_scale_out_at / last_scale_in_at: set to `now` when the decision is a real action (not a dry run).
    - last_active_at: `now` when an application runs or waits; also `now` the first time anything is seen, so
      the idle clock starts at the first observation, never in the past.
    - recommendations: this decision's estimate appended; entries older than the stabilization window dropped.
    - shortfall_since: per TASK group with requested > running, when that began; dropped when it clears.
      A group the decision just grew starts a new shortfall clock now, not at an older one.
    - capacity_errors: kept while the group still falls short or the error is younger than
      spot_fallback_timeout_s; cleared on recovery.
    """
    acted = decision.is_action and not decision.dry_run
    last_out = previous.last_scale_out_at
    last_in = previous.last_scale_in_at
    if acted and decision.direction is Direction.OUT:
        last_out = now
    elif acted and decision.direction is Direction.IN:
        last_in = now

    active = is_active(metrics, now=now, config=config)
    last_active = previous.last_active_at
    if active is True or last_active is None:
        last_active = now

    window = timedelta(seconds=config.scale_in_stabilization_s)
    recs = [r for r in previous.recommendations if now - r.at <= window and r.at <= now]
    if decision.desired_task_nodes is not None:
        recs.append(Recommendation(now, decision.desired_task_nodes, decision.desired_task_memory_gib))
    recs = recs[-MAX_RECOMMENDATIONS:]

    grown = {t.group_id for t in decision.changes if t.target > t.current} if acted else set()
    shortfall: dict[str, datetime] = {}
    for g in cluster.task_groups:
        requested = g.requested
        if acted:
            tgt = next((t for t in decision.targets if t.group_id == g.id), None)
            if tgt is not None:
                requested = tgt.target
        if requested > g.running:
            since = previous.shortfall_since.get(g.id)
            shortfall[g.id] = now if since is None or g.id in grown else min(since, now)
    errors: dict[str, datetime] = {}
    timeout = timedelta(seconds=config.spot_fallback_timeout_s)
    for gid, at in previous.capacity_errors.items():
        group = cluster.group(gid)
        if group is None or not group.is_task:
            continue
        if gid in shortfall or now - at < timeout:
            errors[gid] = at
    return ScalerState(
        last_scale_out_at=last_out,
        last_scale_in_at=last_in,
        last_active_at=last_active,
        recommendations=tuple(recs),
        shortfall_since=shortfall,
        capacity_errors=errors,
    )


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
    }


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

    return ScalerState(
        last_scale_out_at=_parse(d.get("last_scale_out_at"), "last_scale_out_at"),
        last_scale_in_at=_parse(d.get("last_scale_in_at"), "last_scale_in_at"),
        last_active_at=_parse(d.get("last_active_at"), "last_active_at"),
        recommendations=tuple(recs),
        shortfall_since=mapping("shortfall_since"),
        capacity_errors=mapping("capacity_errors"),
    )
