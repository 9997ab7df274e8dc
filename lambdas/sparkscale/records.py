"""JSON-safe forms of the use cases' values (decisions, run results) for the audit trail, logs and the CLI."""

from __future__ import annotations

from typing import Any

from sparkscale.policy.model import Decision, Forecast


def forecast_to_dict(f: Forecast) -> dict[str, Any]:
    return {
        "target_at": f.target_at.isoformat(),
        "lead_time_s": f.lead_time_s,
        "signal_age_s": f.signal_age_s,
        "horizon_s": f.horizon_s,
        "current_gib": f.current_gib,
        "trend_gib": f.trend_gib,
        "slope_gib_per_s": f.slope_gib_per_s,
        "seasonal_gib": f.seasonal_gib,
        "value_gib": f.value_gib,
        "method": f.method,
    }


def decision_to_dict(d: Decision) -> dict[str, Any]:
    out = _decision_dict(d)
    if d.forecast is not None:  # forecast_mode observe or act; a decision without one is recorded as before
        out["forecast"] = forecast_to_dict(d.forecast)
    return out


def _decision_dict(d: Decision) -> dict[str, Any]:
    return {
        "cluster_id": d.cluster_id,
        "at": d.at.isoformat(),
        "direction": d.direction.value,
        "dry_run": d.dry_run,
        "is_action": d.is_action,
        "driving_signal": d.driving_signal.value if d.driving_signal is not None else None,
        "driving_value": d.driving_value,
        "desired_task_nodes": d.desired_task_nodes,
        "desired_task_memory_gib": d.desired_task_memory_gib,
        "at_max_under_pressure": d.at_max_under_pressure,
        "usd_per_hour_before": d.usd_per_hour_before,
        "usd_per_hour_after": d.usd_per_hour_after,
        "targets": [
            {
                "group_id": t.group_id,
                "group_name": t.group_name,
                "instance_type": t.instance_type,
                "market": t.market.value,
                "current": t.current,
                "target": t.target,
                "usd_per_hour_per_node": t.usd_per_hour_per_node,
            }
            for t in d.targets
        ],
        "fallback_groups": list(d.fallback_groups),
        "fallback_to": list(d.fallback_to),
        "reasons": list(d.reason_texts),
        "reason_codes": [c.value for c in d.reason_codes],
    }
