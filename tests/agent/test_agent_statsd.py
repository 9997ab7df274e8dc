"""Parsing Spark's StatsD lines: real captured lines, names read from the right, and bad input counted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sparkscale.agent.aggregate import HeapAggregator
from sparkscale.agent.statsd import MAX_PACKET_BYTES, Counters, HeapReading, parse_line, parse_packet

from tests.agent.conftest import spark_lines


def _counted(counters: Counters) -> int:
    """Every line lands in exactly one of these."""
    return (
        counters.heap_lines
        + counters.ignored_lines
        + counters.malformed_lines
        + counters.invalid_values
        + counters.unattributed_lines
    )


def test_real_spark_lines_give_the_heap_gauges_of_three_jvms_and_nothing_else():
    counters = Counters()
    readings = [r for line in spark_lines() for r in parse_packet(line, counters)]
    assert counters.packets == 637
    assert counters.malformed_lines == counters.invalid_values == counters.unattributed_lines == 0
    # used, max and committed of the driver and executors 0 and 1 (init and usage are not taken)
    assert len(readings) == counters.heap_lines == 9
    assert counters.ignored_lines == 637 - 9
    assert {(r.jvm, r.driver) for r in readings} == {
        ("app-20261125112810-0000.driver", True),
        ("app-20261125112810-0000.0", False),
        ("app-20261125112810-0000.1", False),
    }
    assert HeapReading("app-20261125112810-0000.1", False, "max", 536870912.0) in readings


def test_snapshot_of_real_lines_agrees_with_sparks_own_heap_usage_gauge():
    """Spark also sends `jvm.heap.usage` (used/max, 2 decimals); the agent's percents must agree with it."""
    lines = spark_lines()
    counters = Counters()
    table = HeapAggregator(silent_after_s=30, counters=counters)
    for line in lines:
        for reading in parse_packet(line, counters):
            table.add(reading, now=100.0)
    usage = {
        line.split(b".jvm.heap.usage:")[0].decode(): float(line.split(b":")[1].split(b"|")[0]) * 100
        for line in lines
        if b".jvm.heap.usage:" in line
    }
    snap = table.snapshot(now=101.0)
    assert snap.executor_jvms == 2
    assert snap.driver_jvms == 1
    assert snap.executor_used_bytes == 55948288 + 51264264
    assert snap.executor_max_bytes == 2 * 536870912
    assert snap.executor_max_jvm_used_pct == pytest.approx(
        max(usage["app-20261125112810-0000.0"], usage["app-20261125112810-0000.1"]), abs=0.5
    )
    assert snap.executor_used_pct == pytest.approx(100 * (55948288 + 51264264) / (2 * 536870912))
    assert snap.driver_used_bytes == 70550784
    assert snap.driver_max_bytes == 1073741824
    assert snap.driver_used_pct == pytest.approx(usage["app-20261125112810-0000.driver"], abs=0.5)


@pytest.mark.parametrize(
    ("line", "jvm", "driver", "field"),
    [
        ("app-1.3.jvm.heap.used:10|g", "app-1.3", False, "used"),
        ("app-1.driver.jvm.heap.max:10|g", "app-1.driver", True, "max"),
        ("app-1.<driver>.jvm.heap.committed:10|g", "app-1.<driver>", True, "committed"),
        # a sink prefix and a spark.metrics.namespace with dots, and an app name with a colon
        ("spark.prod.my.job:v2.17.jvm.heap.used:10|g", "spark.prod.my.job:v2.17", False, "used"),
        ("ns.jvm.heap.7.jvm.heap.used:10|g", "ns.jvm.heap.7", False, "used"),
        ("app-1.3.jvm.heap.used:10|g|@0.5", "app-1.3", False, "used"),  # a sample rate is tolerated
        ("  app-1.3.jvm.heap.used:10|g\r", "app-1.3", False, "used"),
    ],
)
def test_names_are_read_from_the_right(line, jvm, driver, field):
    counters = Counters()
    assert parse_packet(line.encode(), counters) == [HeapReading(jvm, driver, field, 10.0)]


def test_two_applications_executor_1_are_two_jvms():
    counters = Counters()
    table = HeapAggregator(silent_after_s=30, counters=counters)
    for line in (
        b"app-A.1.jvm.heap.used:100|g",
        b"app-B.1.jvm.heap.used:300|g",
        b"app-A.1.jvm.heap.used:200|g",
    ):
        for reading in parse_packet(line, counters):
            table.add(reading, now=1.0)
    snap = table.snapshot(now=1.0)
    assert snap.executor_jvms == 2
    assert snap.executor_used_bytes == 500  # last value of A (200) + B (300)


@pytest.mark.parametrize(
    ("line", "counter"),
    [
        ("app.1.jvm.heap.used", "malformed_lines"),  # no value
        ("app.1.jvm.heap.used:12", "malformed_lines"),  # no type
        ("app.1.jvm.heap.used:|g", "malformed_lines"),
        (":12|g", "malformed_lines"),
        ("app.1.jvm.heap.used:12|c", "malformed_lines"),  # a heap name that is not a gauge
        ("app.1.jvm.heap.used:12|ms", "malformed_lines"),
        ("app.1.jvm.heap.used:abc|g", "malformed_lines"),
        ("app.1.jvm.heap.used:1,5|g", "malformed_lines"),  # a locale's decimal comma
        ("app.1.jvm.heap.used:+12|g", "malformed_lines"),  # a StatsD gauge delta, never sent by Spark
        (".jvm.heap.used:12|g", "malformed_lines"),  # empty executor id
        ("app..jvm.heap.used:12|g", "malformed_lines"),
        ("x" * 600 + ".1.jvm.heap.used:12|g", "malformed_lines"),
        ("app.1.jvm.heap.used:-1|g", "invalid_values"),
        ("app.1.jvm.heap.max:-1|g", "invalid_values"),  # a JVM with no defined max reports -1
        ("app.1.jvm.heap.used:NaN|g", "invalid_values"),
        ("app.1.jvm.heap.used:nan|g", "invalid_values"),
        ("app.1.jvm.heap.used:inf|g", "invalid_values"),
        ("app.1.jvm.heap.used:-Infinity|g", "invalid_values"),
        ("jvm.heap.used:12|g", "unattributed_lines"),  # spark.app.id / executor id unset
        ("app.1.jvm.non-heap.used:12|g", "ignored_lines"),
        ("app.1.jvm.pools.G1-Old-Gen.used:12|g", "ignored_lines"),
        ("app.1.jvm.heap.usage:0.5|g", "ignored_lines"),
        ("app.1.jvm.heap.init:12|g", "ignored_lines"),
        ("app.1.executor.heap.used:12|g", "ignored_lines"),
    ],
)
def test_bad_or_foreign_lines_are_counted_not_taken(line, counter):
    counters = Counters()
    assert parse_line(line, counters) is None
    assert getattr(counters, counter) == 1
    assert _counted(counters) == 1


def test_non_utf8_and_oversized_packets_are_dropped_whole_and_counted():
    counters = Counters()
    assert parse_packet(b"app.1.jvm.heap.used:\xff\xfe|g", counters) == []
    assert parse_packet(b"app.1.jvm.heap.used:1|g\n" * (MAX_PACKET_BYTES // 10), counters) == []
    assert (counters.packets, counters.non_utf8_packets, counters.oversized_packets, counters.lines) == (
        2,
        1,
        1,
        0,
    )
    assert counters.dropped == 2


def test_a_packet_of_several_lines_keeps_the_good_ones():
    counters = Counters()
    packet = b"app.1.jvm.heap.used:5|g\n\ngarbage\napp.1.jvm.heap.max:NaN|g\napp.1.jvm.heap.max:9|g\n"
    readings = parse_packet(packet, counters)
    assert [(r.field, r.value) for r in readings] == [("used", 5.0), ("max", 9.0)]
    assert (counters.lines, counters.malformed_lines, counters.invalid_values) == (4, 1, 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_PACKET_BYTES + 64))
def test_no_bytes_make_the_parser_raise_and_every_line_is_counted_once(data):
    counters = Counters()
    readings = parse_packet(data, counters)
    assert counters.packets == 1
    assert _counted(counters) == counters.lines
    assert len(readings) == counters.heap_lines
    assert all(r.value >= 0 and r.field in ("used", "max", "committed") for r in readings)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["app-1", "a.b.c", "spark:ns", ""]),
            st.sampled_from(["driver", "0", "17", ""]),
            st.sampled_from(["used", "max", "committed", "usage", "init"]),
            st.one_of(
                st.integers(-5, 2**40).map(str), st.floats(allow_nan=True).map(repr), st.text(max_size=4)
            ),
            st.sampled_from(["g", "c", "ms", ""]),
        ),
        max_size=20,
    )
)
def test_spark_shaped_lines_are_counted_once_each(parts):
    lines = [f"{app}.{ex}.jvm.heap.{field}:{value}|{kind}" for app, ex, field, value, kind in parts]
    counters = Counters()
    parse_packet("\n".join(lines).encode("utf-8", "surrogatepass"), counters)
    assert _counted(counters) == counters.lines
