"""Spark streaming gauges through the agent: parsing (names read from the right, bad values counted),
the per-node sums and maxima, the datums (none for what no query reported) and their own PutMetricData call.

Real lines: tests/fixtures/spark_streaming_statsd_lines.txt (pyspark 4.3.0, see its header).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest
from botocore.serialize import create_serializer
from botocore.stub import Stubber
from sparkscale import names
from sparkscale.agent.aggregate import StreamingAggregator, StreamingSnapshot
from sparkscale.agent.publish import (
    DEFAULT_MAX_PENDING_BATCHES,
    STREAMING_METRICS,
    Boto3Sink,
    Publisher,
    PublishError,
    iso_utc,
    streaming_metric_data,
)
from sparkscale.agent.server import HeapAgent, publish_loop
from sparkscale.agent.statsd import Counters, HeapReading, StreamReading, parse_line, parse_packet

from tests.agent.test_agent_publish import T0, FakeClock, FakeStop

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spark_streaming_statsd_lines.txt"
QUERY = "local-1796595064497.driver.spark.streaming.orders.enriched"
DSTREAM_APP = "local-1796595135506.driver.dstream.probe"


def fixture_lines() -> list[bytes]:
    return [line for line in FIXTURE.read_bytes().split(b"\n") if line and not line.startswith(b"#")]


def test_real_pyspark4_lines_give_one_query_and_one_dstreams_app():
    counters = Counters()
    readings = [r for line in fixture_lines() for r in parse_packet(line, counters)]
    assert all(isinstance(r, StreamReading) for r in readings)
    assert {(r.source, r.dstream) for r in readings} == {(QUERY, False), (DSTREAM_APP, True)}
    assert {r.field for r in readings if not r.dstream} == {
        "input_rows_per_s",
        "processed_rows_per_s",
        "batch_latency_ms",
    }
    assert {r.field for r in readings if r.dstream} == {"scheduling_delay_ms", "waiting_batches"}
    # the last query values; the DStreams -1 lines ("no batch yet") are skipped, not counted bad
    assert [r.value for r in readings if r.source == QUERY][-3:] == [242.42, 3280.0, 243.83]
    assert counters.malformed_lines == counters.invalid_values == counters.unattributed_lines == 0
    assert counters.streaming_lines == len(readings)
    assert counters.ignored_lines > 0  # watermark, state rows, processingDelay, -1 delays, receivers …


@pytest.mark.parametrize(
    ("line", "source", "dstream", "field"),
    [
        # query names and namespaces with dots; the app id or namespace tells applications apart
        (
            "app-1.driver.spark.streaming.q.latency:5|g",
            "app-1.driver.spark.streaming.q",
            False,
            "batch_latency_ms",
        ),
        (
            "my.ns.app-2.driver.spark.streaming.orders.v2.by.region.inputRate-total:12.50|g",
            "my.ns.app-2.driver.spark.streaming.orders.v2.by.region",
            False,
            "input_rows_per_s",
        ),
        (
            "pfx.app-3.driver.spark.streaming.2f9d1c6e-5a4b-4c3d-9e8f-0a1b2c3d4e5f.processingRate-total:7|g",
            "pfx.app-3.driver.spark.streaming.2f9d1c6e-5a4b-4c3d-9e8f-0a1b2c3d4e5f",
            False,
            "processed_rows_per_s",
        ),
        # a query named like the DStreams source is still a Structured Streaming query
        (
            "a.driver.spark.streaming.x.StreamingMetrics.streaming.latency:9|g",
            "a.driver.spark.streaming.x.StreamingMetrics.streaming",
            False,
            "batch_latency_ms",
        ),
        (
            "app-4.driver.my.app.v1.StreamingMetrics.streaming.waitingBatches:3|g",
            "app-4.driver.my.app.v1",
            True,
            "waiting_batches",
        ),
        (
            "app-5.driver.kinesis app.StreamingMetrics.streaming.lastCompletedBatch_schedulingDelay:1200|g",
            "app-5.driver.kinesis app",
            True,
            "scheduling_delay_ms",
        ),
    ],
)
def test_names_are_read_from_the_right(line, source, dstream, field):
    counters = Counters()
    reading = parse_line(line, counters)
    assert isinstance(reading, StreamReading)
    assert (reading.source, reading.dstream, reading.field) == (source, dstream, field)
    assert counters.streaming_lines == 1


@pytest.mark.parametrize(
    ("line", "counter"),
    [
        ("driver.spark.streaming.q.latency:5|g", "unattributed_lines"),  # no app id: applications merge
        ("driver.app.StreamingMetrics.streaming.waitingBatches:1|g", "unattributed_lines"),
        ("app.1.spark.streaming.q.latency:5|g", "ignored_lines"),  # an executor has no such source
        ("app.driver.HiveExternalCatalog.latency:5|g", "ignored_lines"),  # another source's "latency"
        ("app.1.my.StreamingMetrics.streaming.waitingBatches:1|g", "ignored_lines"),  # not a driver
        ("app.driver.x.StreamingMetrics.other.waitingBatches:1|g", "ignored_lines"),
        ("app.driver.a.StreamingMetrics.streaming.lastCompletedBatch_schedulingDelay:-1|g", "ignored_lines"),
        ("app.driver.spark.streaming.q.latency:abc|g", "malformed_lines"),
        ("app.driver.spark.streaming.q.latency:5|c", "malformed_lines"),  # a counter, not a gauge
        ("app.driver.spark.streaming.q.latency:+5|g", "malformed_lines"),  # a StatsD delta
        ("app.driver.spark.streaming.q.inputRate-total:nan|g", "invalid_values"),
        ("app.driver.spark.streaming.q.inputRate-total:inf|g", "invalid_values"),
        ("app.driver.spark.streaming.q.inputRate-total:-3.00|g", "invalid_values"),
        ("app.driver.spark.streaming.q.inputRate-total:1e12|g", "invalid_values"),  # absurd
        ("app.driver.spark.streaming.q.latency:9999999999999|g", "invalid_values"),  # > 30 days
        ("app.driver.x.StreamingMetrics.streaming.waitingBatches:1e9|g", "invalid_values"),
        ("app.driver.x.StreamingMetrics.streaming.lastCompletedBatch_schedulingDelay:-2|g", "invalid_values"),
    ],
)
def test_bad_or_foreign_lines_give_no_reading_and_one_counter(line, counter):
    counters = Counters()
    assert parse_line(line, counters) is None
    counts = counters.as_dict()
    assert counts[counter] == 1
    assert sum(counts.values()) == 1
    assert counters.dropped == (counter not in ("ignored_lines",))


def test_heap_and_streaming_lines_in_one_datagram_both_count():
    counters = Counters()
    readings = parse_packet(
        b"app.driver.jvm.heap.used:10|g\napp.driver.spark.streaming.q.latency:7|g\nbad line\n", counters
    )
    assert [type(r) for r in readings] == [HeapReading, StreamReading]
    assert (counters.heap_lines, counters.streaming_lines, counters.malformed_lines) == (1, 1, 1)


def _feed(agg: StreamingAggregator, lines: list[str], now: float) -> None:
    for line in lines:
        reading = parse_line(line, agg.counters)
        assert isinstance(reading, StreamReading), line
        agg.add(reading, now)


def test_the_node_sums_rates_over_queries_and_apps_and_takes_the_worst_latency():
    agg = StreamingAggregator(silent_after_s=30, counters=Counters())
    _feed(
        agg,
        [
            # two queries of one app and one query of the same name in another app: three queries
            "app-1.driver.spark.streaming.a.inputRate-total:100.00|g",
            "app-1.driver.spark.streaming.a.processingRate-total:60.00|g",
            "app-1.driver.spark.streaming.a.latency:4000|g",
            "app-1.driver.spark.streaming.b.c.inputRate-total:10.00|g",
            "app-1.driver.spark.streaming.b.c.processingRate-total:20.00|g",
            "app-1.driver.spark.streaming.b.c.latency:300|g",
            "app-2.driver.spark.streaming.a.inputRate-total:1.50|g",
            "app-2.driver.spark.streaming.a.processingRate-total:2.50|g",
            "app-2.driver.spark.streaming.a.latency:9000|g",
            "app-2.driver.spark.streaming.a.latency:8000|g",  # the last value counts
            # two DStreams applications
            "app-3.driver.ingest.StreamingMetrics.streaming.lastCompletedBatch_schedulingDelay:1500|g",
            "app-3.driver.ingest.StreamingMetrics.streaming.waitingBatches:4|g",
            "app-4.driver.ingest.StreamingMetrics.streaming.lastCompletedBatch_schedulingDelay:200|g",
            "app-4.driver.ingest.StreamingMetrics.streaming.waitingBatches:1|g",
        ],
        now=0.0,
    )
    # 100 + 10 + 1.5 in; 60 + 20 + 2.5 processed; max(4000, 300, 8000); max(1500, 200); 4 + 1 waiting
    assert agg.snapshot(now=1.0) == StreamingSnapshot(
        queries=3,
        dstream_apps=2,
        input_rows_per_s=111.5,
        processed_rows_per_s=82.5,
        batch_latency_ms=8000.0,
        scheduling_delay_ms=1500.0,
        waiting_batches=5.0,
    )


def test_what_no_query_reported_is_none_and_a_silent_query_is_forgotten():
    counters = Counters()
    agg = StreamingAggregator(silent_after_s=30, counters=counters)
    assert agg.snapshot(now=0.0).empty
    _feed(agg, ["app.driver.spark.streaming.q.latency:50|g"], now=0.0)
    snap = agg.snapshot(now=10.0)
    assert (snap.queries, snap.batch_latency_ms, snap.input_rows_per_s, snap.waiting_batches) == (
        1,
        50.0,
        None,
        None,
    )
    assert agg.snapshot(now=31.0).empty  # the query stopped (or its driver did)
    assert counters.evicted_jvms == 1


def test_the_query_table_is_bounded_and_counts_what_it_drops():
    counters = Counters()
    agg = StreamingAggregator(silent_after_s=30, counters=counters, max_streams=2)
    _feed(agg, [f"app.driver.spark.streaming.q{i}.latency:1|g" for i in range(3)], now=0.0)
    assert len(agg) == 2
    assert counters.stream_limit_dropped == 1
    assert counters.dropped == 1


def test_datums_only_for_what_was_reported_with_the_jobflowid_dimension_only():
    assert (
        streaming_metric_data(
            StreamingSnapshot(0, 0, None, None, None, None, None), cluster_id="j-1", timestamp=T0
        )
        == []
    )
    snap = StreamingSnapshot(1, 0, 100.0, 0.0, 3421.0, None, None)  # a real 0: nothing processed yet
    data = streaming_metric_data(snap, cluster_id="j-ABC", timestamp=T0)
    assert [(d["MetricName"], d["Value"], d["Unit"]) for d in data] == [
        (names.STREAMING_INPUT_ROWS_PER_S, 100.0, "Count/Second"),
        (names.STREAMING_PROCESSED_ROWS_PER_S, 0.0, "Count/Second"),
        (names.STREAMING_BATCH_LATENCY_MS, 3421.0, "Milliseconds"),
    ]
    assert all(d["Dimensions"] == [{"Name": "JobFlowId", "Value": "j-ABC"}] for d in data)
    assert all(d["Timestamp"] == iso_utc(T0) for d in data)
    assert [m for m, _, _ in STREAMING_METRICS] == list(names.STREAMING_METRICS)


FULL = StreamingSnapshot(2, 1, 1e9, 1e9, 1e8, 1e8, 1e6)


def test_a_full_retry_buffer_is_one_valid_call_within_putmetricdatas_limits(aws_env):
    """An hour of unsent minutes with every metric: 300 datums (limit 1,000) in one call the real CloudWatch
    model accepts (the Stubber checks it), and a request body well under 1 MB as botocore serializes it."""
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    pub = Publisher(sink=Boto3Sink(cw), namespace=names.STREAMING_NAMESPACE)
    cluster = "j-" + "A" * 64  # the longest id the agent accepts
    for minute in range(DEFAULT_MAX_PENDING_BATCHES + 5):
        pub.enqueue(streaming_metric_data(FULL, cluster_id=cluster, timestamp=T0 + 60 * minute))
    assert pub.dropped_batches == 5  # the buffer is bounded: the five oldest went
    with Stubber(cw) as stub:
        stub.add_response("put_metric_data", {})
        assert pub.attempt(now=0.0).datums == DEFAULT_MAX_PENDING_BATCHES * len(STREAMING_METRICS)
        stub.assert_no_pending_responses()
    model = cw.meta.service_model.operation_model("PutMetricData")
    data = [
        datum
        for minute in range(DEFAULT_MAX_PENDING_BATCHES)
        for datum in streaming_metric_data(FULL, cluster_id=cluster, timestamp=T0 + 60 * minute)
    ]
    request = create_serializer(model.metadata["protocol"]).serialize_to_request(
        {"Namespace": names.STREAMING_NAMESPACE, "MetricData": data}, model
    )
    body = request["body"]
    size = len(body) if isinstance(body, (bytes, str)) else len(urlencode(body))
    assert size < 100_000, size  # measured 56,812 bytes: about 6 % of the 1 MB limit


class NamespaceSink:
    name = "fake"

    def __init__(self, failing: str = "") -> None:
        self.calls: list[tuple[str, list[dict]]] = []
        self.failing = failing

    def put(self, namespace: str, data: list[dict]) -> None:
        self.calls.append((namespace, data))
        if namespace == self.failing:
            raise PublishError("Throttling: Rate exceeded", code="Throttling")


def _run(sink: NamespaceSink, lines: list[bytes], *, run_s: float) -> tuple[list[str], Publisher]:
    clock = FakeClock(T0 + 59.0)
    agent = HeapAgent(cluster_id="j-ABC", silent_after_s=1000.0)
    for line in lines:
        agent.on_datagram(line, clock.mono)
    heap = Publisher(sink=sink, jitter=lambda: 1.0)
    streaming = Publisher(sink=sink, namespace=names.STREAMING_NAMESPACE, jitter=lambda: 1.0)
    log: list[str] = []
    publish_loop(
        agent=agent,
        publisher=heap,
        interval_s=60.0,
        stop=FakeStop(clock, after_s=run_s),  # type: ignore[arg-type]
        wall_clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
        log=log.append,
        streaming=streaming,
    )
    return log, streaming


def test_each_minute_the_streaming_batch_is_its_own_call_in_its_own_namespace():
    sink = NamespaceSink()
    log, _ = _run(sink, [b"app.driver.spark.streaming.q.latency:70|g"], run_s=121.0)
    assert [(ns, len(data)) for ns, data in sink.calls] == [
        (names.HEAP_NAMESPACE, 8),
        (names.STREAMING_NAMESPACE, 1),
        (names.HEAP_NAMESPACE, 8),
        (names.STREAMING_NAMESPACE, 1),
    ]
    assert [line.split()[:4] for line in log if line.startswith("streaming")] == [
        ["streaming", "ok", "queries=1", "dstream_apps=0"]
    ] * 2
    assert "latency_ms=70.00 scheduling_delay_ms=- waiting_batches=-" in log[1]


def test_no_streaming_call_at_all_when_no_query_reports():
    sink = NamespaceSink()
    log, _ = _run(sink, [b"app.1.jvm.heap.used:5|g"], run_s=121.0)
    assert {ns for ns, _ in sink.calls} == {names.HEAP_NAMESPACE}
    assert not [line for line in log if line.startswith("streaming")]


def test_a_failing_streaming_namespace_never_holds_the_heap_batches():
    sink = NamespaceSink(failing=names.STREAMING_NAMESPACE)
    log, streaming = _run(sink, [b"app.driver.spark.streaming.q.latency:70|g"], run_s=121.0)
    heap_calls = [data for ns, data in sink.calls if ns == names.HEAP_NAMESPACE]
    assert len(heap_calls) == 2
    assert streaming.pending_batches == 2  # kept, each with its own minute, for the next try
    assert any(line.startswith("streaming-retry failed") for line in log)
    assert log[-1].startswith("streaming-final failed")
