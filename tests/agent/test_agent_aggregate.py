"""The JVM table: last value wins, silent JVMs are forgotten, memory is bounded, zeros when empty."""

from __future__ import annotations

import pytest
from sparkscale.agent.aggregate import HeapAggregator, HeapSnapshot
from sparkscale.agent.statsd import Counters, HeapReading

MiB = 1024 * 1024


def _table(**kwargs) -> HeapAggregator:
    return HeapAggregator(silent_after_s=kwargs.pop("silent_after_s", 30.0), counters=Counters(), **kwargs)


def _jvm(
    table: HeapAggregator, jvm: str, *, used: float, top: float | None, now: float, driver: bool = False
):
    table.add(HeapReading(jvm, driver, "used", used), now)
    if top is not None:
        table.add(HeapReading(jvm, driver, "max", top), now)


def test_empty_table_snapshots_all_zeros():
    assert _table().snapshot(now=0.0) == HeapSnapshot(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0)


def test_sums_percents_and_worst_jvm():
    table = _table()
    _jvm(table, "a.1", used=100 * MiB, top=400 * MiB, now=1.0)  # 25 %
    _jvm(table, "a.2", used=300 * MiB, top=400 * MiB, now=1.0)  # 75 %
    _jvm(table, "a.driver", used=50 * MiB, top=1000 * MiB, now=1.0, driver=True)  # 5 %
    snap = table.snapshot(now=2.0)
    assert snap.executor_jvms == 2
    assert snap.executor_used_bytes == 400 * MiB
    assert snap.executor_max_bytes == 800 * MiB
    assert snap.executor_used_pct == pytest.approx(50.0)  # 400 / 800
    assert snap.executor_max_jvm_used_pct == pytest.approx(75.0)
    assert (snap.driver_jvms, snap.driver_used_bytes, snap.driver_max_bytes) == (1, 50 * MiB, 1000 * MiB)
    assert snap.driver_used_pct == pytest.approx(5.0)


def test_last_value_wins():
    table = _table()
    _jvm(table, "a.1", used=100.0, top=1000.0, now=1.0)
    _jvm(table, "a.1", used=700.0, top=1000.0, now=2.0)
    snap = table.snapshot(now=3.0)
    assert (snap.executor_jvms, snap.executor_used_bytes, snap.executor_used_pct) == (1, 700.0, 70.0)


def test_a_jvm_without_max_counts_and_adds_bytes_but_not_percent():
    table = _table()
    _jvm(table, "a.1", used=100.0, top=None, now=1.0)
    _jvm(table, "a.2", used=50.0, top=200.0, now=1.0)
    snap = table.snapshot(now=1.0)
    assert snap.executor_jvms == 2
    assert snap.executor_used_bytes == 150.0
    assert snap.executor_used_pct == pytest.approx(25.0)  # only a.2: 50 / 200
    assert snap.executor_max_jvm_used_pct == pytest.approx(25.0)


def test_a_jvm_silent_for_three_periods_is_forgotten():
    table = _table(silent_after_s=30.0)  # 3 x Spark's 10 s period
    _jvm(table, "a.1", used=1.0, top=2.0, now=100.0)
    _jvm(table, "a.2", used=1.0, top=2.0, now=100.0)
    table.add(HeapReading("a.2", False, "used", 1.5), 125.0)  # a.2 keeps reporting
    assert table.snapshot(now=130.0).executor_jvms == 2  # a.1 silent exactly 30 s: still kept
    snap = table.snapshot(now=130.5)
    assert snap.executor_jvms == 1
    assert snap.executor_used_bytes == 1.5
    assert table.counters.evicted_jvms == 1
    assert table.snapshot(now=1000.0) == HeapSnapshot(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0)


def test_the_table_is_bounded_and_new_jvms_beyond_it_are_counted():
    table = _table(max_jvms=3)
    for i in range(5):
        table.add(HeapReading(f"flood.{i}", False, "used", 1.0), 1.0)
    assert len(table) == 3
    assert table.counters.jvm_limit_dropped == 2
    table.add(HeapReading("flood.0", False, "used", 2.0), 2.0)  # known JVMs still update
    assert table.snapshot(2.0).executor_used_bytes == 4.0
    # once the old ones go silent, a new JVM gets a place again
    assert table.add(HeapReading("late.1", False, "used", 1.0), 100.0)
    assert len(table) == 1


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError, match="positive"):
        HeapAggregator(silent_after_s=0, counters=Counters())
