"""CloudWatch: every signal of a cluster in ONE GetMetricData call, and which clusters have an alarm in ALARM.

The query window is computed from the injected `now` on every call (never at import: a warm Lambda would
otherwise query a stale window). A signal without a datapoint in the window is simply absent from the
snapshot; the policy decides what missing data means.

EMR metrics (AWS/ElasticMapReduce, dimension JobFlowId, 300 s) are read with Average. The heap agent's
metrics (Sparkscale/SparkHeap, dimension JobFlowId, 60 s) are published by every node to the same
per-cluster metric, so bytes and JVM counts are read with Sum (the cluster total), and the cluster-wide heap
percentage is computed here as 100 * sum(used) / sum(max) from the SAME period, never averaged from
per-node percentages. SparkExecutorsNeeded/Target ride in the heap namespace (Sum: every driver's). The YARN
collector's metrics (Sparkscale/Yarn, dimension JobFlowId, 60 s, one publisher: the master node) are read with
Maximum (demand at its peak of the minute), YarnAvailableMemoryMB with Minimum (free room at its lowest).

Only for a cluster with streaming configured (Config.streaming; `read_streaming_metrics`), the same one call
also reads Spark's streaming metrics (Sparkscale/SparkStreaming, dimension JobFlowId, 60 s: rates and waiting
batches with Sum over the drivers' nodes, latency and scheduling delay with Maximum) and, per Kinesis stream
it consumes, GetRecords.IteratorAgeMilliseconds (AWS/Kinesis, dimension StreamName, Maximum, 60 s): the most
of the streams per minute is the signal, and its minutes in the window are the snapshot's history (is it
rising?). Other clusters' requests are unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale import names
from sparkscale.adapters.aws_errors import translate
from sparkscale.policy.model import MetricsSnapshot, Sample, Signal, SignalSource

log = logging.getLogger(__name__)

_MAX_PAGES: Final = 10  # NextToken pages of the one GetMetricData request (a few hundred datapoints: 1 page)


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One MetricDataQuery: a signal read from one CloudWatch metric with one statistic."""

    query_id: str  # ^[a-z][a-zA-Z0-9_]*$
    signal: Signal
    namespace: str
    metric_name: str
    stat: str
    period_s: int
    dimension: tuple[str, str] | None = None  # (name, value); None: JobFlowId = the cluster id


EMR_SIGNALS: Final = tuple(s for s in Signal if s.source is SignalSource.EMR)
# Heap: the metrics read directly (Sum over nodes). HEAP_USED_PCT is derived from the used and max sums.
HEAP_SUMS: Final = (
    (Signal.HEAP_USED_BYTES, names.HEAP_EXECUTOR_USED_BYTES),
    (Signal.HEAP_MAX_BYTES, names.HEAP_EXECUTOR_MAX_BYTES),
    (Signal.JVM_COUNT, names.HEAP_JVM_COUNT),
    (Signal.SPARK_EXECUTORS_NEEDED, names.SPARK_EXECUTORS_NEEDED),
    (Signal.SPARK_EXECUTORS_TARGET, names.SPARK_EXECUTORS_TARGET),
)
# The YARN collector (one publisher, the master node): demand at its peak of the minute, free room at its
# lowest (names.YARN_*).
YARN_STATS: Final[tuple[tuple[Signal, str, str], ...]] = (
    # Average for these two: the policy adds them, and the Maxima of a minute come from different polls
    (Signal.YARN_PENDING_MEMORY_MB, names.YARN_PENDING_MEMORY_MB, "Average"),
    (Signal.YARN_ALLOCATED_MEMORY_MB, names.YARN_ALLOCATED_MEMORY_MB, "Average"),
    (Signal.YARN_AVAILABLE_MEMORY_MB, names.YARN_AVAILABLE_MEMORY_MB, "Minimum"),
    (Signal.YARN_TOTAL_MEMORY_MB, names.YARN_TOTAL_MEMORY_MB, "Maximum"),
    (Signal.YARN_CONTAINERS_PENDING, names.YARN_CONTAINERS_PENDING, "Maximum"),
    (Signal.YARN_APPS_PENDING, names.YARN_APPS_PENDING, "Maximum"),
    (Signal.YARN_APPS_RUNNING, names.YARN_APPS_RUNNING, "Maximum"),
)


# Spark's streaming metrics (the agent on the drivers' nodes, names.STREAMING_*): rates and waiting batches
# summed over queries and nodes, latency and scheduling delay the slowest
STREAMING_STATS: Final[tuple[tuple[Signal, str, str], ...]] = (
    (Signal.STREAMING_INPUT_ROWS_PER_S, names.STREAMING_INPUT_ROWS_PER_S, "Sum"),
    (Signal.STREAMING_PROCESSED_ROWS_PER_S, names.STREAMING_PROCESSED_ROWS_PER_S, "Sum"),
    (Signal.STREAMING_BATCH_LATENCY_MS, names.STREAMING_BATCH_LATENCY_MS, "Maximum"),
    (Signal.STREAMING_SCHEDULING_DELAY_MS, names.STREAMING_SCHEDULING_DELAY_MS, "Maximum"),
    (Signal.STREAMING_WAITING_BATCHES, names.STREAMING_WAITING_BATCHES, "Sum"),
)


def streaming_queries(streams: Sequence[str]) -> tuple[MetricQuery, ...]:
    """The streaming queries: Spark's metrics, then one iterator-age query per Kinesis stream."""
    qs = [
        MetricQuery(
            f"stream_{metric.lower()}", s, names.STREAMING_NAMESPACE, metric, stat, names.STREAMING_PERIOD_S
        )
        for s, metric, stat in STREAMING_STATS
    ]
    qs += [
        MetricQuery(
            f"kinesis_{i}",
            Signal.KINESIS_ITERATOR_AGE_MS,
            names.KINESIS_NAMESPACE,
            names.KINESIS_ITERATOR_AGE,
            "Maximum",
            names.KINESIS_PERIOD_S,
            (names.DIM_STREAM_NAME, stream),
        )
        for i, stream in enumerate(dict.fromkeys(streams))
    ]
    return tuple(qs)


def metric_queries() -> tuple[MetricQuery, ...]:
    """The queries of every signal, in a stable order."""
    qs = [
        MetricQuery(f"emr_{s.value.lower()}", s, names.EMR_NAMESPACE, s.value, "Average", names.EMR_PERIOD_S)
        for s in EMR_SIGNALS
    ]
    qs += [
        MetricQuery(f"heap_{metric.lower()}", s, names.HEAP_NAMESPACE, metric, "Sum", names.HEAP_PERIOD_S)
        for s, metric in HEAP_SUMS
    ]
    qs += [
        MetricQuery(f"yarn_{metric.lower()}", s, names.YARN_NAMESPACE, metric, stat, names.YARN_PERIOD_S)
        for s, metric, stat in YARN_STATS
    ]
    return tuple(qs)


def _utc(ts: Any) -> datetime:
    if not isinstance(ts, datetime):
        raise TypeError(f"not a timestamp: {ts!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _points(result: Mapping[str, Any]) -> dict[datetime, float]:
    out: dict[datetime, float] = {}
    for ts, value in zip(result.get("Timestamps", []) or [], result.get("Values", []) or [], strict=False):
        v = float(value)
        if math.isfinite(v):
            out[_utc(ts)] = v
    return out


_PER_NODE: Final = frozenset(
    (SignalSource.HEAP_AGENT, SignalSource.STREAMING)
)  # every node's agent publishes
_ALIGN_S: Final = 300  # the longest period read (EMR's), a multiple of every other


class CloudWatchMetricsSource:
    """ports.MetricsSource over one GetMetricData call per evaluation.

    lookback_s: how far back the one query window reaches (older datapoints are useless to the policy anyway:
    default 1200 s covers emr_metric_max_age_s 900 plus one EMR period). heap_settle_s: a heap period younger
    than this is skipped when an older complete one exists, because not every node has published into it yet
    (its Sum would be too small).
    """

    def __init__(self, cloudwatch: Any, *, lookback_s: int = 1200, heap_settle_s: int = 15) -> None:
        self._cw = cloudwatch
        self._lookback = timedelta(seconds=lookback_s)
        self._settle = timedelta(seconds=heap_settle_s)
        self._queries = metric_queries()
        self.calls = 0  # GetMetricData requests made (pages included), for tests

    def request(
        self, cluster_id: str, now: datetime, queries: Sequence[MetricQuery] | None = None
    ) -> dict[str, Any]:
        """The GetMetricData parameters for `cluster_id` at `now` (public for tests and the CLI); `queries`:
        the cluster's (default: every signal but the streaming ones)."""
        end = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        # The window starts on a 5-minute clock boundary, a multiple of every period read (60 s, 300 s):
        # CloudWatch rounds StartTime down to the minute anyway and answers faster for aligned times, and
        # every datapoint then keeps its own period's timestamp instead of the start of an unaligned bucket
        # (which made the YARN collector's minute look up to 59 s older than it is).
        start = end - self._lookback
        start -= timedelta(seconds=start.timestamp() % _ALIGN_S)
        dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
        return {
            "MetricDataQueries": [
                {
                    "Id": q.query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": q.namespace,
                            "MetricName": q.metric_name,
                            "Dimensions": dims
                            if q.dimension is None
                            else [{"Name": q.dimension[0], "Value": q.dimension[1]}],
                        },
                        "Period": q.period_s,
                        "Stat": q.stat,
                    },
                    "ReturnData": True,
                }
                for q in (self._queries if queries is None else queries)
            ],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
        }

    def read_metrics(self, cluster_id: str, now: datetime) -> MetricsSnapshot:
        return self._read(cluster_id, now, self._queries)

    def read_streaming_metrics(
        self, cluster_id: str, now: datetime, streams: Sequence[str]
    ) -> MetricsSnapshot:
        """ports.StreamingMetricsSource: every signal, Spark's streaming metrics and the iterator age of
        `streams`, in the same one GetMetricData call."""
        return self._read(cluster_id, now, self._queries + streaming_queries(streams))

    def _read(self, cluster_id: str, now: datetime, queries: tuple[MetricQuery, ...]) -> MetricsSnapshot:
        params = self.request(cluster_id, now, queries)
        by_id: dict[str, dict[datetime, float]] = {q.query_id: {} for q in queries}
        token: str | None = None
        try:
            for _ in range(_MAX_PAGES):
                self.calls += 1
                resp = self._cw.get_metric_data(**params, **({"NextToken": token} if token else {}))
                for r in resp.get("MetricDataResults", []):
                    if r.get("StatusCode") not in (None, "Complete", "PartialData"):
                        log.warning(
                            "GetMetricData %s: status %s %s",
                            r.get("Id"),
                            r.get("StatusCode"),
                            r.get("Messages"),
                        )
                    by_id.setdefault(str(r.get("Id")), {}).update(_points(r))
                token = resp.get("NextToken")
                if not token:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetMetricData") from exc
        return self.snapshot(by_id, now, queries)

    def snapshot(
        self,
        by_id: Mapping[str, Mapping[datetime, float]],
        now: datetime,
        queries: Sequence[MetricQuery] | None = None,
    ) -> MetricsSnapshot:
        """The latest datapoint per signal from the per-query series (pure; public for tests). The Kinesis
        queries' series are combined first: the most of the streams, per minute."""
        samples: dict[Signal, Sample] = {}
        history: dict[Signal, tuple[Sample, ...]] = {}
        ages: dict[datetime, float] = {}
        for q in self._queries if queries is None else queries:
            series = by_id.get(q.query_id) or {}
            if not series:
                continue
            if q.signal is Signal.KINESIS_ITERATOR_AGE_MS:
                for at, v in series.items():
                    ages[at] = max(v, ages.get(at, v))
                continue
            # the agent runs on every node: its newest period may still miss some (see _settled); EMR
            # and the YARN collector are one publisher each, so their newest datapoint is complete
            heap = q.signal.source in _PER_NODE
            at = self._settled(series, now) if heap else max(series)
            samples[q.signal] = Sample(series[at], at)
        used = by_id.get(f"heap_{names.HEAP_EXECUTOR_USED_BYTES.lower()}") or {}
        cap = by_id.get(f"heap_{names.HEAP_EXECUTOR_MAX_BYTES.lower()}") or {}
        common = {t: (used[t], cap[t]) for t in used.keys() & cap.keys() if cap[t] > 0}
        if common:
            at = self._settled(common, now)
            u, m = common[at]
            samples[Signal.HEAP_USED_PCT] = Sample(100.0 * u / m, at)
            samples[Signal.HEAP_USED_BYTES] = Sample(u, at)
            samples[Signal.HEAP_MAX_BYTES] = Sample(m, at)
        if ages:
            history[Signal.KINESIS_ITERATOR_AGE_MS] = tuple(Sample(ages[t], t) for t in sorted(ages))
            samples[Signal.KINESIS_ITERATOR_AGE_MS] = history[Signal.KINESIS_ITERATOR_AGE_MS][-1]
        return MetricsSnapshot(samples, history)

    def _settled(self, series: Iterable[datetime], now: datetime) -> datetime:
        """The newest heap period every node has published into: the agents stamp a snapshot with the
        minute it was taken at and send it within seconds, so a period starting less than heap_settle_s ago
        may still miss nodes; it is used only when there is nothing older."""
        stamps = sorted(series, reverse=True)
        cutoff = now - self._settle
        return next((t for t in stamps if t <= cutoff), stamps[0])


def _dims(raw: Any) -> dict[str, str]:
    """Dimensions as {name: value}: the API's [{"Name","Value"}] list (any key case) or a dict."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for d in raw or []:
        if isinstance(d, Mapping):
            low = {str(k).lower(): v for k, v in d.items()}
            if "name" in low and "value" in low:
                out[str(low["name"])] = str(low["value"])
    return out


def job_flow_id(dimensions: Any) -> str | None:
    """The JobFlowId (or JobFlowID) dimension's value, if any."""
    for k, v in _dims(dimensions).items():
        if k.lower() == names.DIM_JOB_FLOW_ID.lower():
            return v
    return None


class CloudWatchAlarmReader:
    """Which managed clusters have one of the stack's alarms (by name prefix) in ALARM (DescribeAlarms)."""

    def __init__(self, cloudwatch: Any) -> None:
        self._cw = cloudwatch

    def clusters_in_alarm(self, prefix: str) -> dict[str, list[str]]:
        """cluster id -> names of its alarms in ALARM, for every alarm whose name starts with `prefix`."""
        out: dict[str, list[str]] = {}
        try:
            pages = self._cw.get_paginator("describe_alarms").paginate(
                AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm"]
            )
            for page in pages:
                for alarm in page.get("MetricAlarms", []):
                    # filtered again here: moto 5.2 applies only one of AlarmNamePrefix / StateValue
                    if alarm.get("StateValue") != "ALARM" or not str(alarm.get("AlarmName", "")).startswith(
                        prefix
                    ):
                        continue
                    cid = self._cluster_of(alarm, prefix)
                    if cid:
                        out.setdefault(cid, []).append(str(alarm.get("AlarmName")))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "DescribeAlarms") from exc
        return out

    @staticmethod
    def _cluster_of(alarm: Mapping[str, Any], prefix: str) -> str | None:
        cid = job_flow_id(alarm.get("Dimensions"))
        if cid:
            return cid
        for m in alarm.get("Metrics", []) or []:
            cid = job_flow_id(((m.get("MetricStat") or {}).get("Metric") or {}).get("Dimensions"))
            if cid:
                return cid
        rest = str(alarm.get("AlarmName", ""))[len(prefix) :].lstrip("-")
        if rest.startswith("j-"):
            return rest.split("-")[0] + "-" + rest.split("-")[1]
        return None
