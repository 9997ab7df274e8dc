"""Parse Spark's StatsdSink datagrams, keeping only the JVM heap gauges.

Spark's `StatsdReporter` sends one metric per datagram, `<name>:<value>|<type>`, where `<name>` is `[<sink
prefix>.]<spark.metrics.namespace or app id>.<executor id | driver>.jvm.heap.<field>` for JvmSource's heap
gauges (`used`, `max`, `committed`, `init`, `usage`); integers are sent as `Long.toString`, doubles as
`%2.2f`, whitespace in names becomes `-`. Prefixes, namespaces and app names may contain dots, so a name is
read from its right end: the field, then `jvm.heap`, then the executor id; everything left of `.jvm.heap.`
is the JVM's key (so executor "1" of two applications are two JVMs).

With dynamic allocation on, the driver also sends ExecutorAllocationManagerSource's gauges,
`<prefix/namespace>.driver.ExecutorAllocationManager.executors.<field>`; `numberMaxNeededExecutors` and
`numberTargetExecutors` are kept (read from the right end the same way, keyed by the driver JVM).

Streaming (docs/streaming.md), driver only. Structured Streaming with `spark.sql.streaming.metricsEnabled`
registers one source per query, `spark.streaming.<query name or id>` (MetricsReporter.scala), so its gauges
arrive as `<prefix/namespace>.driver.spark.streaming.<query>.<gauge>`; `inputRate-total`,
`processingRate-total` (doubles) and `latency` (a long, ms) are kept. The query name may hold dots and the
prefix may too, so the gauge is read from the right and the rest must hold `.driver.spark.streaming.`; the
whole rest is the query's key (two applications' queries of the same name are two queries). DStreams
(StreamingSource.scala, still in Spark 4, deprecated) register `<app name>.StreamingMetrics` with gauges
`streaming.<gauge>`: `<prefix>.driver.<app name>.StreamingMetrics.streaming.<gauge>` for
`lastCompletedBatch_schedulingDelay` and `waitingBatches` are kept, keyed by everything left of
`.StreamingMetrics.streaming`; a delay of -1 is Spark's "no batch completed yet" and is skipped.

Nothing here raises on input: every datagram and line lands in exactly one counter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

# Spark's datagrams are ~60-250 bytes (one metric each); a StatsD client may batch lines up to a network MTU.
MAX_PACKET_BYTES = 8192
MAX_NAME_CHARS = 512
HEAP_FIELDS = ("used", "max", "committed")
DRIVER_IDS = ("driver", "<driver>")  # "<driver>" is what Spark 1.x called it
_HEAP_BASE = "jvm.heap"
_HEAP_BASE_SUFFIX = ".jvm.heap"
# ExecutorAllocationManagerSource (Spark): source name "ExecutorAllocationManager", gauges "executors.<g>"
ALLOCATION_FIELDS = {"numberMaxNeededExecutors": "needed", "numberTargetExecutors": "target"}
_ALLOCATION_BASE_SUFFIX = ".ExecutorAllocationManager.executors"
# Structured Streaming (MetricsReporter) and DStreams (StreamingSource): gauge → StreamReading.field
STRUCTURED_FIELDS = {
    "inputRate-total": "input_rows_per_s",
    "processingRate-total": "processed_rows_per_s",
    "latency": "batch_latency_ms",
}
DSTREAM_FIELDS = {
    "lastCompletedBatch_schedulingDelay": "scheduling_delay_ms",
    "waitingBatches": "waiting_batches",
}
_STRUCTURED_MARK = ".driver.spark.streaming."
_DSTREAM_BASE_SUFFIX = ".StreamingMetrics.streaming"
# Values beyond these are not a real query's: dropped and counted as invalid (a bug or junk, never a signal).
MAX_ROWS_PER_S = 1e10  # ten billion rows a second, far above any one cluster
MAX_DELAY_MS = 30 * 24 * 3600 * 1000.0  # thirty days behind
MAX_WAITING_BATCHES = 1e7
STREAM_LIMITS = {
    "input_rows_per_s": MAX_ROWS_PER_S,
    "processed_rows_per_s": MAX_ROWS_PER_S,
    "batch_latency_ms": MAX_DELAY_MS,
    "scheduling_delay_ms": MAX_DELAY_MS,
    "waiting_batches": MAX_WAITING_BATCHES,
}


class HeapReading(NamedTuple):
    jvm: str  # everything left of ".jvm.heap." (or ".ExecutorAllocationManager.executors."): one JVM
    driver: bool
    field: str  # one of HEAP_FIELDS, or "needed" / "target" (ALLOCATION_FIELDS' values, driver only)
    value: float


class StreamReading(NamedTuple):
    source: str  # everything left of the gauge (Structured) or of ".StreamingMetrics.streaming" (DStreams)
    dstream: bool
    field: str  # one of STRUCTURED_FIELDS' or DSTREAM_FIELDS' values
    value: float


class Counters:
    """What happened to every datagram and line since the agent started. Plain ints, never reset."""

    __slots__ = (
        "allocation_lines",
        "evicted_jvms",
        "flood_dropped_packets",
        "heap_lines",
        "ignored_lines",
        "invalid_values",
        "jvm_limit_dropped",
        "lines",
        "malformed_lines",
        "non_utf8_packets",
        "oversized_packets",
        "packets",
        "stream_limit_dropped",
        "streaming_lines",
        "unattributed_lines",
    )

    def __init__(self) -> None:
        self.packets = 0  # datagrams received
        self.oversized_packets = 0  # longer than MAX_PACKET_BYTES: dropped unread
        self.flood_dropped_packets = 0  # over the per-second packet budget: dropped unread
        self.non_utf8_packets = 0
        self.lines = 0  # non-empty lines in accepted datagrams
        self.heap_lines = 0  # heap gauges taken
        self.allocation_lines = 0  # dynamic allocation gauges taken (numberMaxNeeded/TargetExecutors)
        self.streaming_lines = 0  # streaming gauges taken (Structured Streaming queries, DStreams apps)
        self.ignored_lines = (
            0  # well-formed, but not a heap used/max/committed gauge (the bulk of Spark's lines)
        )
        self.malformed_lines = 0  # not `name:value|type`, a heap name with a non-gauge type, a bad number
        self.invalid_values = 0  # a kept gauge with a negative, NaN, infinite (or, streaming, absurd) value
        self.unattributed_lines = 0  # a heap gauge with no app/executor id (spark.app.id unset)
        self.jvm_limit_dropped = 0  # a new JVM while the table was full
        self.evicted_jvms = 0  # JVMs (and streaming queries) dropped after being silent too long
        self.stream_limit_dropped = 0  # a new streaming query while the query table was full

    @property
    def dropped(self) -> int:
        """Everything thrown away because it was bad or too much (not the ordinary non-heap lines)."""
        return (
            self.oversized_packets
            + self.flood_dropped_packets
            + self.non_utf8_packets
            + self.malformed_lines
            + self.invalid_values
            + self.unattributed_lines
            + self.jvm_limit_dropped
            + self.stream_limit_dropped
        )

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def parse_packet(data: bytes, counters: Counters) -> list[HeapReading | StreamReading]:
    """All heap and streaming readings in one datagram; every other line is counted and skipped."""
    counters.packets += 1
    if len(data) > MAX_PACKET_BYTES:
        counters.oversized_packets += 1
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        counters.non_utf8_packets += 1
        return []
    readings: list[HeapReading | StreamReading] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        counters.lines += 1
        reading = parse_line(line, counters)
        if reading is not None:
            readings.append(reading)
    return readings


def parse_line(  # noqa: PLR0911 - one exit per counter
    line: str, counters: Counters
) -> HeapReading | StreamReading | None:
    """One `name:value|type[|...]` line → a heap or streaming reading, or None (one counter incremented)."""
    metric, bar, kind_part = line.partition("|")
    name, colon, value_text = metric.rpartition(":")
    if not bar or not colon or not name or not value_text or len(name) > MAX_NAME_CHARS:
        counters.malformed_lines += 1
        return None
    base, _, field = name.rpartition(".")
    if field in ALLOCATION_FIELDS:
        return _allocation(base, ALLOCATION_FIELDS[field], value_text, kind_part, counters)
    if field in STRUCTURED_FIELDS:
        return _structured(base, STRUCTURED_FIELDS[field], value_text, kind_part, counters)
    if field in DSTREAM_FIELDS:
        return _dstream(base, DSTREAM_FIELDS[field], value_text, kind_part, counters)
    if field not in HEAP_FIELDS:
        counters.ignored_lines += 1
        return None
    if base == _HEAP_BASE:
        counters.unattributed_lines += 1
        return None
    if not base.endswith(_HEAP_BASE_SUFFIX):
        counters.ignored_lines += 1
        return None
    jvm = base[: -len(_HEAP_BASE_SUFFIX)]
    executor_id = jvm.rpartition(".")[2]
    if not executor_id or kind_part.partition("|")[0] != "g" or value_text[0] == "+":
        counters.malformed_lines += 1
        return None
    value = _gauge_value(value_text, counters)
    if value is None:
        return None
    counters.heap_lines += 1
    return HeapReading(jvm, executor_id in DRIVER_IDS, field, value)


def _allocation(
    base: str, field: str, value_text: str, kind_part: str, counters: Counters
) -> HeapReading | None:
    """`<jvm>.ExecutorAllocationManager.executors.<gauge>`: only a driver has this source."""
    if not base.endswith(_ALLOCATION_BASE_SUFFIX):
        counters.ignored_lines += 1
        return None
    jvm = base[: -len(_ALLOCATION_BASE_SUFFIX)]
    prefix, _, executor_id = jvm.rpartition(".")
    if executor_id not in DRIVER_IDS:
        counters.ignored_lines += 1  # no executor has this source; a foreign name that merely looks alike
        return None
    if not prefix:
        counters.unattributed_lines += 1
        return None
    if kind_part.partition("|")[0] != "g" or value_text[0] == "+":
        counters.malformed_lines += 1
        return None
    value = _gauge_value(value_text, counters)
    if value is None:
        return None
    counters.allocation_lines += 1
    return HeapReading(jvm, True, field, value)


def _structured(
    base: str, field: str, value_text: str, kind_part: str, counters: Counters
) -> StreamReading | None:
    """`<prefix>.driver.spark.streaming.<query>`: the query's key is the whole base."""
    if base.startswith(_STRUCTURED_MARK[1:]):
        counters.unattributed_lines += 1  # no app id or namespace: cannot tell two applications apart
        return None
    mark = base.find(_STRUCTURED_MARK)
    if mark <= 0:
        counters.ignored_lines += 1  # another source's "latency" (or a foreign name that merely looks alike)
        return None
    return _stream_reading(base, False, field, value_text=value_text, kind_part=kind_part, counters=counters)


def _dstream(
    base: str, field: str, value_text: str, kind_part: str, counters: Counters
) -> StreamReading | None:
    """`<prefix>.driver.<app>.StreamingMetrics.streaming`: keyed by the part left of `.StreamingMetrics`."""
    if not base.endswith(_DSTREAM_BASE_SUFFIX):
        counters.ignored_lines += 1
        return None
    source = base[: -len(_DSTREAM_BASE_SUFFIX)]
    if source.startswith("driver."):
        counters.unattributed_lines += 1
        return None
    if ".driver." not in source:
        counters.ignored_lines += 1  # only a driver has this source
        return None
    return _stream_reading(source, True, field, value_text=value_text, kind_part=kind_part, counters=counters)


def _stream_reading(
    source: str, dstream: bool, field: str, *, value_text: str, kind_part: str, counters: Counters
) -> StreamReading | None:
    if kind_part.partition("|")[0] != "g" or value_text[0] == "+":
        counters.malformed_lines += 1
        return None
    if dstream and value_text == "-1":
        counters.ignored_lines += 1  # StreamingSource's "no completed batch yet": no reading, not bad input
        return None
    value = _gauge_value(value_text, counters, STREAM_LIMITS[field])
    if value is None:
        return None
    counters.streaming_lines += 1
    return StreamReading(source, dstream, field, value)


def _gauge_value(text: str, counters: Counters, limit: float = math.inf) -> float | None:
    try:
        value = float(text)
    except ValueError:
        counters.malformed_lines += 1
        return None
    if not math.isfinite(value) or value < 0 or value > limit:
        counters.invalid_values += 1
        return None
    return value
