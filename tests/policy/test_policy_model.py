"""Cluster.derived: values computed from an immutable Cluster, kept with it and never part of its value;
MetricsSnapshot.of_batches."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from model_builders import group
from sparkscale.config import Config
from sparkscale.policy.model import Cluster, ClusterState, MetricsSnapshot, Role, Sample, SampleBatch, Signal
from sparkscale.policy.signals import read_signals


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
