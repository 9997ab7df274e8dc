"""Cluster.derived: values computed from an immutable Cluster, kept with it and never part of its value;
MetricsSnapshot.of_batches."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from model_builders import group
from sparkscale.config import Config
from sparkscale.policy.model import Cluster, ClusterState, MetricsSnapshot, Role, Sample, SampleBatch, Signal
from sparkscale.policy.signals import max_age_s, read_signals


def _cluster(requested: int = 3) -> Cluster:
    return Cluster(
        "j-TEST",
        "test",
        ClusterState.RUNNING,
        (
            group("ig-core", name="core", instance_type="r5.2xlarge", requested=2, usd=0.5, role=Role.CORE),
            group("ig-a", name="a", instance_type="r6g.4xlarge", requested=requested, usd=0.3, running=1),
        ),
    )


def test_derived_computes_once_per_key_and_value() -> None:
    c = _cluster()
    calls: list[str] = []

    def running(cl: Cluster) -> int:
        calls.append("running")
        return sum(g.running for g in cl.task_groups)

    assert c.derived("running", running) == 1
    assert c.derived("running", running) == 1
    assert calls == ["running"]
    assert c.derived(("running", "again"), running) == 1  # another key: computed again
    assert calls == ["running", "running"]


def test_derived_values_are_not_part_of_equality_repr_or_copies() -> None:
    c, fresh = _cluster(), _cluster()
    c.derived("x", lambda cl: 42)
    assert c == fresh
    assert hash(c) == hash(fresh)
    assert repr(c) == repr(fresh)
    changed = replace(c, groups=(*c.groups[:1], replace(c.groups[1], requested=5)))
    # a new value starts with nothing derived: the hold targets follow its groups, not the old cluster's
    assert changed.derived("x", lambda cl: 7) == 7
    assert [t.target for t in changed.unchanged_targets] == [5]
    assert [t.target for t in c.unchanged_targets] == [3]
    assert changed.requested_usd_per_hour == 5 * 0.3
    for clone in (copy.deepcopy(c), pickle.loads(pickle.dumps(c))):
        assert clone == c
        # a copy has the same groups, so whatever it derives (or carries over) is the same
        assert clone.unchanged_targets == c.unchanged_targets
        assert clone.requested_usd_per_hour == c.requested_usd_per_hour


def test_a_snapshot_of_batches_reads_as_the_same_samples() -> None:
    """MetricsSnapshot.of_batches (the replay's): the same samples, equality and readings as a snapshot built
    from Samples; a signal in two batches is refused."""
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    emr_at, heap_at = now - timedelta(seconds=400), now - timedelta(seconds=30)
    emr = {Signal.MEMORY_TOTAL_MB: 4096.0, Signal.CONTAINER_PENDING: float("nan")}
    heap = {Signal.JVM_COUNT: 3.0, Signal.HEAP_MAX_BYTES: 2.0**31}
    batched = MetricsSnapshot.of_batches([SampleBatch(emr_at, emr), SampleBatch(heap_at, heap)])
    plain = MetricsSnapshot(
        {**{s: Sample(v, emr_at) for s, v in emr.items()}, **{s: Sample(v, heap_at) for s, v in heap.items()}}
    )
    assert batched == plain
    assert dict(batched.samples) == dict(plain.samples)
    assert batched.get(Signal.JVM_COUNT) == Sample(3.0, heap_at)
    assert batched.get(Signal.YARN_PENDING_MEMORY_MB) is None
    assert Signal.MEMORY_TOTAL_MB in batched.samples
    assert len(batched.samples) == 4
    config = Config()
    assert read_signals(batched, now=now, config=config) == read_signals(plain, now=now, config=config)
    with pytest.raises(ValueError, match="two batches"):
        MetricsSnapshot.of_batches([SampleBatch(emr_at, emr), SampleBatch(heap_at, emr)])


def test_derived_for_keeps_one_value_for_the_last_setting_asked_with() -> None:
    c = _cluster()
    a, b = Config(), Config(min_task_nodes=1)
    calls: list[Config] = []

    def with_min(cfg: Config) -> Callable[[Cluster], int]:
        def compute(cl: Cluster) -> int:
            calls.append(cfg)
            return sum(g.requested for g in cl.task_groups) - cfg.min_task_nodes

        return compute

    assert c.derived_for("above_min", a, with_min(a)) == 3
    assert c.derived_for("above_min", a, with_min(a)) == 3
    assert c.derived_for("above_min", b, with_min(b)) == 2  # an equal-looking key, another setting
    assert c.derived_for("above_min", a, with_min(a)) == 3  # compared by identity: computed again
    assert calls == [a, b, a]
    assert replace(c, name="other").derived_for("above_min", a, with_min(a)) == 3  # a new value: its own
    assert len(calls) == 4


def _reference_read(metrics: MetricsSnapshot, now: datetime, config: Config) -> dict[Signal, float]:
    """What read_signals keeps, value by value: fresh for its source, a finite number >= 0."""
    out = {}
    for signal, sample in metrics.samples.items():
        fresh = (now - sample.at).total_seconds() <= max_age_s(signal, config)
        if fresh and 0 <= sample.value < math.inf:
            out[signal] = sample.value
    return out


_ODD_VALUES = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -0.0, 0.0, 1e308, 7.5])


@given(
    emr=st.lists(st.one_of(_ODD_VALUES, st.floats(allow_nan=True)), min_size=0, max_size=4),
    heap=st.lists(st.one_of(_ODD_VALUES, st.floats(min_value=0, max_value=1e12)), min_size=0, max_size=3),
    emr_age=st.integers(0, 1200),
    heap_age=st.integers(0, 400),
)
def test_read_signals_keeps_exactly_the_fresh_finite_non_negative_values(
    emr: list[float], heap: list[float], emr_age: int, heap_age: int
) -> None:
    # a whole batch kept at once (fresh for every source, every value finite and >= 0) or value by value: the
    # same values, in the same order, as a check of each value
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    emr_signals = (Signal.MEMORY_TOTAL_MB, Signal.MEMORY_ALLOCATED_MB, Signal.APPS_RUNNING, Signal.IS_IDLE)
    heap_signals = (Signal.HEAP_USED_BYTES, Signal.HEAP_MAX_BYTES, Signal.JVM_COUNT)
    batches = [
        SampleBatch(now - timedelta(seconds=emr_age), dict(zip(emr_signals, emr, strict=False))),
        SampleBatch(now - timedelta(seconds=heap_age), dict(zip(heap_signals, heap, strict=False))),
    ]
    metrics = MetricsSnapshot.of_batches(batches)
    config = Config()
    readings = read_signals(metrics, now=now, config=config)
    expected = _reference_read(metrics, now, config)
    assert list(readings.values.items()) == list(expected.items())
    # every other value is ignored with its reason
    assert len(readings.values) + len(readings.ignored) == len(emr) + len(heap)
