"""The streaming queries of the one GetMetricData call, against moto (in process and over HTTP): Spark's
streaming metrics (Sparkscale/SparkStreaming) and the Kinesis iterator age per stream, only for a cluster with
streaming configured; put_metric_data, then read back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sparkscale import clock, names
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.cloudwatch import CloudWatchMetricsSource, metric_queries, streaming_queries
from sparkscale.config import Config
from sparkscale.policy import Direction, ScalerState, decide
from sparkscale.policy.model import Signal
from sparkscale.ports import MetricsSource, StreamingMetricsSource, supports
from sparkscale.usecases.scale import read_metrics

from tests.policy.policy_builders import cluster, group

CID = "j-CWSTREAM001"


def _count_calls(client: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.*.GetMetricData", lambda params, **_: calls.append(params)
    )
    return calls


def _put_streaming(cw: Any, at: datetime, **values: float) -> None:
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": CID}]
    cw.put_metric_data(
        Namespace=names.STREAMING_NAMESPACE,
        MetricData=[
            {"MetricName": k, "Dimensions": dims, "Timestamp": at, "Value": v} for k, v in values.items()
        ],
    )


def _put_age(cw: Any, stream: str, at: datetime, ms: float) -> None:
    cw.put_metric_data(
        Namespace=names.KINESIS_NAMESPACE,
        MetricData=[
            {
                "MetricName": names.KINESIS_ITERATOR_AGE,
                "Dimensions": [{"Name": names.DIM_STREAM_NAME, "Value": stream}],
                "Timestamp": at,
                "Value": ms,
            }
        ],
    )


def _minute(now: datetime, minutes_ago: int) -> datetime:
    return now.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)


def test_a_cluster_without_streaming_asks_for_no_streaming_query(aws: AwsClients) -> None:
    now = clock.utcnow()
    calls = _count_calls(aws.cloudwatch)
    source = CloudWatchMetricsSource(aws.cloudwatch)
    read_metrics(source, CID, now, Config())
    (params,) = calls
    assert len(params["MetricDataQueries"]) == len(metric_queries())
    namespaces = {q["MetricStat"]["Metric"]["Namespace"] for q in params["MetricDataQueries"]}
    assert names.STREAMING_NAMESPACE not in namespaces
    assert names.KINESIS_NAMESPACE not in namespaces


def test_streaming_metrics_and_iterator_ages_come_in_the_same_one_call(aws: AwsClients) -> None:
    now = clock.utcnow().replace(microsecond=0)
    cw = aws.cloudwatch
    # two drivers on two nodes publish in the same minute: rates and waiting batches sum, latency is the most
    at = _minute(now, 2)
    _put_streaming(cw, at, StreamingInputRowsPerSecond=900, StreamingProcessedRowsPerSecond=500)
    _put_streaming(cw, at, StreamingInputRowsPerSecond=600, StreamingProcessedRowsPerSecond=500)
    _put_streaming(cw, at, StreamingBatchLatencyMs=40_000)
    _put_streaming(cw, at, StreamingBatchLatencyMs=90_000)
    # "orders.v2" rises 100 -> 460 s over 6 minutes, "clicks-eu" stays at 5 s: the most per minute counts
    for i, age_s in enumerate([100, 160, 220, 280, 340, 400, 460]):
        _put_age(cw, "orders.v2", _minute(now, 8 - i), age_s * 1000.0)
        _put_age(cw, "clicks-eu", _minute(now, 8 - i), 5_000.0)
    _put_age(cw, "not-ours", _minute(now, 2), 9e9)
    calls = _count_calls(cw)
    config = Config.from_mapping({"streams": ["orders.v2", "clicks-eu"]})
    snap = read_metrics(CloudWatchMetricsSource(cw), CID, now, config)
    assert len(calls) == 1
    assert len(calls[0]["MetricDataQueries"]) == len(metric_queries()) + 5 + 2
    assert snap.get(Signal.STREAMING_INPUT_ROWS_PER_S).value == 1500  # type: ignore[union-attr]
    assert snap.get(Signal.STREAMING_PROCESSED_ROWS_PER_S).value == 1000  # type: ignore[union-attr]
    assert snap.get(Signal.STREAMING_BATCH_LATENCY_MS).value == 90_000  # type: ignore[union-attr]
    assert snap.get(Signal.STREAMING_SCHEDULING_DELAY_MS) is None  # no DStreams: absent
    age = snap.get(Signal.KINESIS_ITERATOR_AGE_MS)
    assert age is not None
    assert (age.value, age.at) == (460_000.0, _minute(now, 2))
    history = snap.history[Signal.KINESIS_ITERATOR_AGE_MS]
    assert [s.value / 1000 for s in history] == [100, 160, 220, 280, 340, 400, 460]  # oldest first
    # the policy reads it: behind (rate 1.5, latency 1.5, the age rising 6 minutes at slope 1.0 -> at most 10)
    c = cluster(group("ig-a", requested=2))
    d = decide(now=now, cluster=c, metrics=snap, config=config, state=ScalerState())
    assert d.direction is Direction.OUT
    assert d.driving_signal is Signal.KINESIS_ITERATOR_AGE_MS


def test_stream_queries_name_each_stream_once_with_its_dimension() -> None:
    qs = streaming_queries(["a", "b.c", "a"])
    kinesis = [q for q in qs if q.signal is Signal.KINESIS_ITERATOR_AGE_MS]
    assert [(q.query_id, q.dimension, q.stat, q.period_s) for q in kinesis] == [
        ("kinesis_0", (names.DIM_STREAM_NAME, "a"), "Maximum", 60),
        ("kinesis_1", (names.DIM_STREAM_NAME, "b.c"), "Maximum", 60),
    ]
    stats = {q.metric_name: q.stat for q in qs if q.namespace == names.STREAMING_NAMESPACE}
    assert stats == {
        "StreamingInputRowsPerSecond": "Sum",
        "StreamingProcessedRowsPerSecond": "Sum",
        "StreamingBatchLatencyMs": "Maximum",
        "StreamingSchedulingDelayMs": "Maximum",
        "StreamingWaitingBatches": "Sum",
    }


class _PlainSource:
    def __init__(self) -> None:
        self.reads = 0

    def read_metrics(self, cluster_id: str, now: datetime) -> Any:
        self.reads += 1
        return None


def test_a_source_without_streaming_is_read_as_before_even_with_streams_configured() -> None:
    plain = _PlainSource()
    assert not supports(plain, StreamingMetricsSource)
    source: MetricsSource = plain
    read_metrics(source, CID, clock.utcnow(), Config.from_mapping({"streams": ["s"]}))
    assert plain.reads == 1


def test_streaming_signal_alone_reads_spark_metrics_without_kinesis(aws: AwsClients) -> None:
    calls = _count_calls(aws.cloudwatch)
    config = Config.from_mapping({"streaming_signal": True})
    read_metrics(CloudWatchMetricsSource(aws.cloudwatch), CID, clock.utcnow(), config)
    namespaces = [q["MetricStat"]["Metric"]["Namespace"] for q in calls[0]["MetricDataQueries"]]
    assert names.KINESIS_NAMESPACE not in namespaces
    assert namespaces.count(names.STREAMING_NAMESPACE) == 5
