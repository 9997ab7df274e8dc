"""A demand trace from a cluster's own CloudWatch history (`sparkscale replay --cloudwatch j-… --days N`).

Demand = memory YARN allocated + memory the pending containers wait for:
  demand_gib = (MemoryAllocatedMB + ContainerPending × container_mb) / 1024,
with container_mb = MemoryAllocatedMB / ContainerAllocated where containers are allocated, else the config's
default_container_memory_mb (EMR publishes no pending-memory metric). One GetMetricData call per page (all
three metrics together), 300 s periods (3600 s beyond CloudWatch's 63-day retention of 5-minute data).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sparkscale import names

from sparkscale_tools.replay.trace import Trace, TraceError

_QUERIES = (
    ("alloc", names.EMR_MEMORY_ALLOCATED_MB),
    ("pending", names.EMR_CONTAINER_PENDING),
    ("calloc", names.EMR_CONTAINER_ALLOCATED),
)
MAX_DAYS = 455  # CloudWatch keeps hourly data for 455 days


def period_for(days: float) -> int:
    return names.EMR_PERIOD_S if days <= 63 else 3600


def fetch_series(
    cloudwatch: Any,
    *,
    cluster_id: str,
    start: datetime,
    end: datetime,
    period_s: int,
    extra: Sequence[tuple[str, str]] = (),
) -> dict[str, dict[datetime, float]]:
    """The three demand metrics (ids alloc, pending, calloc) and any `extra` (id, EMR metric name), Average
    per period, in one GetMetricData query per page."""
    wanted = (*_QUERIES, *extra)
    queries = [
        {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": names.EMR_NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}],
                },
                "Period": period_s,
                "Stat": "Average",
            },
            "ReturnData": True,
        }
        for qid, metric in wanted
    ]
    out: dict[str, dict[datetime, float]] = {qid: {} for qid, _ in wanted}
    token: str | None = None
    for _page in range(1000):
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        if token:
            kwargs["NextToken"] = token
        resp = cloudwatch.get_metric_data(**kwargs)
        for r in resp.get("MetricDataResults", []):
            series = out.get(r.get("Id", ""))
            if series is None:
                continue
            for ts, v in zip(r.get("Timestamps", []), r.get("Values", []), strict=False):
                series[ts] = float(v)
        token = resp.get("NextToken")
        if not token:
            break
    return out


def trace_from_cloudwatch(
    cloudwatch: Any, *, cluster_id: str, end: datetime, days: float, default_container_mb: int
) -> Trace:
    if not (0 < days <= MAX_DAYS):
        raise TraceError(f"--days must be in (0, {MAX_DAYS}], got {days:g}")
    if not (cluster_id.startswith("j-") and cluster_id[2:].isalnum()):
        raise TraceError(f"--cloudwatch: {cluster_id!r} is not an EMR cluster id (j-XXXXXXXX)")
    period = period_for(days)
    start = end - timedelta(days=days)
    series = fetch_series(cloudwatch, cluster_id=cluster_id, start=start, end=end, period_s=period)
    return trace_from_series(
        series, cluster_id=cluster_id, days=days, default_container_mb=default_container_mb
    )


def trace_from_series(
    series: dict[str, dict[datetime, float]], *, cluster_id: str, days: float, default_container_mb: int
) -> Trace:
    """The demand trace from what fetch_series returned (time 0 at the first datapoint)."""
    alloc, pending, calloc = series["alloc"], series["pending"], series["calloc"]
    stamps = sorted(set(alloc) | set(pending))
    if not stamps:
        raise TraceError(
            f"{cluster_id}: no {names.EMR_MEMORY_ALLOCATED_MB} or {names.EMR_CONTAINER_PENDING} datapoints "
            f"in the last {days:g} days"
        )
    t0 = stamps[0]
    times: list[float] = []
    values: list[float] = []
    for ts in stamps:
        a = alloc.get(ts, 0.0)
        c = calloc.get(ts, 0.0)
        container_mb = a / c if a > 0 and c > 0 else float(default_container_mb)
        demand_mb = a + pending.get(ts, 0.0) * container_mb
        times.append((ts - t0).total_seconds())
        values.append(max(0.0, demand_mb / 1024.0))
    return Trace(tuple(times), tuple(values), f"cloudwatch:{cluster_id}")
