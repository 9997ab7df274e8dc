"""Step 0: which datapoints may be used. A metric older than its source's maximum age (EMR:
emr_metric_max_age_s, heap agent: heap_metric_max_age_s, YARN collector: yarn_metric_max_age_s) or not a
finite number is ignored, per signal, with a reason. A silent YARN collector's stale metrics are reported
once, as the collector being stale (Readings.yarn_stale_age_s), not one reason per metric."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.model import BatchSamples, MetricsSnapshot, Sample, Signal, SignalSource


class Readings(NamedTuple):
    """The fresh values of a snapshot (signal -> value) and what was left out, and why. A NamedTuple: a record
    internal to one evaluation, built once per evaluation from mappings made for it (not copied)."""

    values: Mapping[Signal, float] = MappingProxyType({})
    ignored: tuple[str, ...] = ()
    samples: Mapping[Signal, Sample] = MappingProxyType({})  # the snapshot read: see `at`
    now: datetime | None = None  # when it was read (`age_s`)
    # the YARN collector has datapoints but none is fresh: the age of its newest one (else None)
    yarn_stale_age_s: float | None = None
    # derived from `values` once, in read_signals/read_some (several steps ask): see fresh_yarn, heap_used_pct
    yarn_demand_fresh: bool = False
    heap_pct: float | None = None
    # MetricsSnapshot.history: the recent datapoints of the signals whose trend is read (streaming)
    history: Mapping[Signal, tuple[Sample, ...]] = MappingProxyType({})

    def get(self, signal: Signal) -> float | None:
        return self.values.get(signal)

    def at(self, signal: Signal) -> datetime | None:
        """The datapoint time of a fresh value (None: no fresh value). Read from the snapshot's sample: few
        times are ever asked for (from its batch, when it has them: no Sample made)."""
        if signal not in self.values:
            return None
        samples = self.samples
        return samples.at(signal) if isinstance(samples, BatchSamples) else samples[signal].at

    def age_s(self, signal: Signal) -> float | None:
        """Seconds between the read and a fresh value's datapoint (None: no fresh value or no read time)."""
        at = self.at(signal)
        return None if at is None or self.now is None else (self.now - at).total_seconds()


def max_age_s(signal: Signal, config: Config) -> int:
    return _limits(config)[_SRC[signal]]


def _limits(config: Config) -> tuple[int, int, int, int, int]:
    """The maximum ages, indexed like _SRC: EMR, heap agent, YARN collector, Spark streaming, Kinesis."""
    streaming = config.streaming_metric_max_age_s
    return (
        config.emr_metric_max_age_s,
        config.heap_metric_max_age_s,
        config.yarn_metric_max_age_s,
        streaming,
        streaming,
    )


_SOURCE_INDEX = {
    SignalSource.EMR: 0,
    SignalSource.HEAP_AGENT: 1,
    SignalSource.YARN_COLLECTOR: 2,
    SignalSource.STREAMING: 3,
    SignalSource.KINESIS: 4,
}
_SRC = {s: _SOURCE_INDEX[s.source] for s in Signal}
_YARN = frozenset(s for s in Signal if s.source is SignalSource.YARN_COLLECTOR)


_ORDER = {s: i for i, s in enumerate(Signal)}


def read_signals(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> Readings:
    """Keep each signal whose datapoint is at most its maximum age old (a datapoint from the future, clock
    skew, counts as fresh) and is a finite number >= 0. Everything else is ignored with a reason."""
    values: dict[Signal, float] = {}
    ignored: list[tuple[int, str]] = []
    limits = _limits(config)
    youngest_limit = min(limits)
    yarn_stale: list[tuple[int, str, float]] = []  # the YARN collector's stale datapoints
    # a batch's datapoints share their timestamp (MetricsSnapshot.batches): one age for all of them
    for at, batch in metrics.batches:
        age = (now - at).total_seconds()
        if age <= youngest_limit and _all_valid(batch):  # fresh whatever its source, and every value kept
            values.update(batch)
            continue
        fresh = (age <= limits[0], age <= limits[1], age <= limits[2], age <= limits[3], age <= limits[4])
        for signal, v in batch.items():
            src = _SRC[signal]
            if not 0 <= v < math.inf:  # NaN too
                why = f"{signal.value} ignored: value {v!r} is not a finite number >= 0."
                ignored.append((_ORDER[signal], why))
            elif fresh[src]:
                values[signal] = v
            else:
                why = f"{signal.value} ignored: its datapoint is {age:.0f} s old (max {limits[src]} s)."
                if src == 2:
                    yarn_stale.append((_ORDER[signal], why, age))
                else:
                    ignored.append((_ORDER[signal], why))
    stale: float | None = None
    # the collector is silent (none of its values fresh; asked only when some are stale): one reason for all
    # of it (Context.notes)
    if yarn_stale and _YARN.isdisjoint(values):
        stale = min(a for _, _, a in yarn_stale)
    else:  # some of its metrics are fresh: the stale ones are ignored one by one, like any other
        ignored += [(order, why) for order, why, _ in yarn_stale]
    ignored.sort()  # enum order: deterministic reasons
    texts = tuple([text for _, text in ignored])
    return Readings(
        values, texts, metrics.samples, now, stale, _yarn_demand(values), _heap_pct(values), metrics.history
    )


def _all_valid(batch: Mapping[Signal, float]) -> bool:
    """Every value is a finite number >= 0 (what read_signals keeps), checked without a loop per value: a
    sum that is finite has no NaN and no infinity in it (fsum raises on an overflow or on inf - inf)."""
    numbers = batch.values()
    try:
        return math.isfinite(math.fsum(numbers)) and min(numbers) >= 0
    except (ValueError, OverflowError, TypeError):  # inf - inf, an overflow, no value at all, not a number
        return False


def active_from(readings: Readings) -> bool | None:
    """True when an application runs or waits, False when none does, None when unknown (no fresh data).
    YarnAppsRunning/YarnAppsPending (the YARN collector) decide when fresh, else EMR's
    AppsRunning/AppsPending, else IsIdle (1 = idle)."""
    return _active(readings.values)


def _active(values: Mapping[Signal, float]) -> bool | None:
    running, pending = values.get(Signal.YARN_APPS_RUNNING), values.get(Signal.YARN_APPS_PENDING)
    if running is None and pending is None:  # the ResourceManager's own counts when fresh, else EMR's
        running, pending = values.get(Signal.APPS_RUNNING), values.get(Signal.APPS_PENDING)
    if running is not None or pending is not None:
        return (running or 0.0) + (pending or 0.0) > 0
    idle = values.get(Signal.IS_IDLE)
    if idle is not None:
        return idle < 0.5
    return None


_ACTIVITY = (
    Signal.YARN_APPS_RUNNING,
    Signal.YARN_APPS_PENDING,
    Signal.APPS_RUNNING,
    Signal.APPS_PENDING,
    Signal.IS_IDLE,
)
HEAP_SIGNALS = (Signal.HEAP_USED_BYTES, Signal.HEAP_MAX_BYTES, Signal.HEAP_USED_PCT)


def read_some(
    metrics: MetricsSnapshot, signals: tuple[Signal, ...], *, now: datetime, config: Config
) -> Readings:
    """`read_signals` for a few signals only (no reasons): the fresh, finite, non-negative values."""
    values = _fresh(metrics, signals, now, config)
    return Readings(values, yarn_demand_fresh=_yarn_demand(values), heap_pct=_heap_pct(values))


def _fresh(
    metrics: MetricsSnapshot, signals: tuple[Signal, ...], now: datetime, config: Config
) -> dict[Signal, float]:
    values: dict[Signal, float] = {}
    for signal in signals:
        sample = metrics.get(signal)
        if sample is None or not 0 <= sample.value < math.inf:
            continue
        if (now - sample.at).total_seconds() <= max_age_s(signal, config):
            values[signal] = sample.value
    return values


def is_active(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> bool | None:
    """`active_from` the fresh readings of a snapshot (only the three activity signals are read)."""
    return _active(_fresh(metrics, _ACTIVITY, now, config))


def heap_used_pct(readings: Readings) -> float | None:
    """Executor heap used %, cluster-wide, at most 100 (used cannot exceed max; skewed datapoints can).
    Computed once per read (Readings.heap_pct)."""
    return readings.heap_pct


def fresh_heap_used_pct(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> float | None:
    """`heap_used_pct` of the fresh heap readings of a snapshot (only the heap signals are read)."""
    return _heap_pct(_fresh(metrics, HEAP_SIGNALS, now, config))


def _heap_pct(values: Mapping[Signal, float]) -> float | None:
    used = values.get(Signal.HEAP_USED_BYTES)
    mx = values.get(Signal.HEAP_MAX_BYTES)
    if used is not None and mx is not None and mx > 0:
        return min(100.0, 100.0 * used / mx)
    pct = values.get(Signal.HEAP_USED_PCT)
    return None if pct is None else min(100.0, pct)


def heap_pressed(pct: float | None, config: Config) -> bool:
    """The executors' heap is beyond its deadband: above heap_used_target_pct x (1 + deadband_pct/100), the
    heap alarm's threshold."""
    return pct is not None and pct > config.heap_used_target_pct * (1.0 + config.deadband_pct / 100.0)


def fresh_yarn(readings: Readings) -> bool:
    """The YARN collector's demand is fresh: its allocated memory and what waits (pending memory, else
    pending containers). Then the estimate reads YARN's demand from it and EMR's YARN needs step aside.
    Computed once per read (Readings.yarn_demand_fresh): four steps of an evaluation ask."""
    return readings.yarn_demand_fresh


def _yarn_demand(values: Mapping[Signal, float]) -> bool:
    return Signal.YARN_ALLOCATED_MEMORY_MB in values and (
        Signal.YARN_PENDING_MEMORY_MB in values or Signal.YARN_CONTAINERS_PENDING in values
    )


def pending_now(readings: Readings) -> tuple[float, float]:
    """(containers, applications) waiting: the YARN collector's counts while it is fresh (fresh_yarn: EMR's
    minutes-old counts are not mixed in), else EMR's; 0 for a count not reported."""
    values = readings.values
    if readings.yarn_demand_fresh:
        containers = values.get(Signal.YARN_CONTAINERS_PENDING)
        apps = values.get(Signal.YARN_APPS_PENDING)
    else:
        containers = values.get(Signal.CONTAINER_PENDING)
        apps = values.get(Signal.APPS_PENDING)
    return containers or 0.0, apps or 0.0
