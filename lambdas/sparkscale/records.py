"""JSON-safe forms of the use cases' values (decisions, run results) for the audit trail, logs and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sparkscale.policy.model import Decision, Direction, Forecast, GroupTarget, Market, Signal
from sparkscale.policy.reasons import Reason, ReasonCode


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


def target_to_dict(t: GroupTarget) -> dict[str, Any]:
    """One group's change as recorded: in an audit record's `targets` and in a write-ahead intent."""
    return {
        "group_id": t.group_id,
        "group_name": t.group_name,
        "instance_type": t.instance_type,
        "market": t.market.value,
        "current": t.current,
        "target": t.target,
        "usd_per_hour_per_node": t.usd_per_hour_per_node,
    }


def target_from_dict(t: Mapping[str, Any]) -> GroupTarget:
    """The inverse of target_to_dict. KeyError / ValueError when malformed."""
    return GroupTarget(
        group_id=str(t["group_id"]),
        group_name=str(t["group_name"]),
        instance_type=str(t["instance_type"]),
        market=Market(t["market"]),
        current=int(t["current"]),
        target=int(t["target"]),
        usd_per_hour_per_node=float(t["usd_per_hour_per_node"]),
    )


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
        "targets": [target_to_dict(t) for t in d.targets],
        "fallback_groups": list(d.fallback_groups),
        "fallback_to": list(d.fallback_to),
        "reasons": list(d.reason_texts),
        "reason_codes": [c.value for c in d.reason_codes],
    }


def decision_from_dict(d: Mapping[str, Any]) -> Decision:
    """The inverse of decision_to_dict, for a decision written ahead of its resize (adapters/dynamodb.py):
    decision_to_dict(decision_from_dict(x)) == x. A reason keeps its code and sentence (its values and
    subject are not recorded). KeyError / ValueError when malformed."""
    codes = d.get("reason_codes") or [ReasonCode.NOT_APPLIED.value] * len(d["reasons"])
    f = d.get("forecast")
    signal = d.get("driving_signal")
    return Decision(
        cluster_id=str(d["cluster_id"]),
        at=datetime.fromisoformat(d["at"]),
        direction=Direction(d["direction"]),
        targets=tuple(target_from_dict(t) for t in d["targets"]),
        reasons=tuple(Reason(ReasonCode(c), str(text)) for c, text in zip(codes, d["reasons"], strict=True)),
        dry_run=bool(d["dry_run"]),
        driving_signal=None if signal is None else Signal(signal),
        driving_value=d.get("driving_value"),
        desired_task_nodes=d.get("desired_task_nodes"),
        at_max_under_pressure=bool(d.get("at_max_under_pressure", False)),
        usd_per_hour_before=float(d.get("usd_per_hour_before", 0.0)),
        usd_per_hour_after=float(d.get("usd_per_hour_after", 0.0)),
        desired_task_memory_gib=d.get("desired_task_memory_gib"),
        fallback_groups=tuple(d.get("fallback_groups") or ()),
        fallback_to=tuple(d.get("fallback_to") or ()),
        forecast=None if f is None else _forecast_from_dict(f),
    )


def _forecast_from_dict(f: Mapping[str, Any]) -> Forecast:
    return Forecast(
        target_at=datetime.fromisoformat(f["target_at"]),
        lead_time_s=float(f["lead_time_s"]),
        signal_age_s=float(f["signal_age_s"]),
        current_gib=float(f["current_gib"]),
        trend_gib=float(f["trend_gib"]),
        slope_gib_per_s=float(f["slope_gib_per_s"]),
        seasonal_gib=None if f.get("seasonal_gib") is None else float(f["seasonal_gib"]),
        value_gib=float(f["value_gib"]),
        method=str(f["method"]),
    )
