"""Step 0: which datapoints may be used. A metric older than its maximum age (EMR: emr_metric_max_age_s, heap:
heap_metric_max_age_s) or not a finite number is ignored, per signal, with a reason."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.model import MetricsSnapshot, Sample, Signal


class Readings(NamedTuple):
    """The fresh values of a snapshot (signal -> value) and what was left out, and why. A NamedTuple: a record
    internal to one evaluation, built once per evaluation from mappings made for it (not copied)."""

    values: Mapping[Signal, float] = MappingProxyType({})
    ignored: tuple[str, ...] = ()
    samples: Mapping[Signal, Sample] = MappingProxyType({})  # the snapshot read: see `at`

    def get(self, signal: Signal) -> float | None:
        return self.values.get(signal)

    def at(self, signal: Signal) -> datetime | None:
        """The datapoint time of a fresh value (None: no fresh value). Read from the snapshot's sample: few
        times are ever asked for."""
        return self.samples[signal].at if signal in self.values else None


def max_age_s(signal: Signal, config: Config) -> int:
    return config.emr_metric_max_age_s if signal.is_emr else config.heap_metric_max_age_s


_ORDER = {s: i for i, s in enumerate(Signal)}


def read_signals(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> Readings:
    """Keep each signal whose datapoint is at most its maximum age old (a datapoint from the future, clock
    skew, counts as fresh) and is a finite number >= 0. Everything else is ignored with a reason."""
    values: dict[Signal, float] = {}
    ignored: list[tuple[int, str]] = []
    emr_limit, heap_limit = config.emr_metric_max_age_s, config.heap_metric_max_age_s
    last_at: datetime | None = None  # the datapoints of one GetMetricData share their timestamp: the age
    age, emr_fresh, heap_fresh = 0.0, False, False  # of the previous sample's, reused for the same datetime
    for signal, sample in metrics.samples.items():
        v = sample.value
        at = sample.at
        if at is not last_at:
            age = (now - at).total_seconds()
            last_at = at
            emr_fresh, heap_fresh = age <= emr_limit, age <= heap_limit
        if not 0 <= v < math.inf:  # NaN too
            why = f"{signal.value} ignored: value {v!r} is not a finite number >= 0."
            ignored.append((_ORDER[signal], why))
        elif heap_fresh if signal in _HEAP else emr_fresh:
            values[signal] = v
        else:
            limit = heap_limit if signal in _HEAP else emr_limit
            ignored.append(
                (_ORDER[signal], f"{signal.value} ignored: its datapoint is {age:.0f} s old (max {limit} s).")
            )
    ignored.sort()  # enum order: deterministic reasons
    return Readings(values, tuple([text for _, text in ignored]), metrics.samples)


_HEAP = frozenset(s for s in Signal if not s.is_emr)


def active_from(readings: Readings) -> bool | None:
    """True when an application runs or waits, False when none does, None when unknown (no fresh data).
    AppsRunning/AppsPending decide when present; IsIdle (1 = idle) otherwise."""
    return _active(readings.values)


def _active(values: Mapping[Signal, float]) -> bool | None:
    running, pending = values.get(Signal.APPS_RUNNING), values.get(Signal.APPS_PENDING)
    if running is not None or pending is not None:
        return (running or 0.0) + (pending or 0.0) > 0
    idle = values.get(Signal.IS_IDLE)
    if idle is not None:
        return idle < 0.5
    return None


_ACTIVITY = (Signal.APPS_RUNNING, Signal.APPS_PENDING, Signal.IS_IDLE)
HEAP_SIGNALS = (Signal.HEAP_USED_BYTES, Signal.HEAP_MAX_BYTES, Signal.HEAP_USED_PCT)


def read_some(
    metrics: MetricsSnapshot, signals: tuple[Signal, ...], *, now: datetime, config: Config
) -> Readings:
    """`read_signals` for a few signals only (no reasons): the fresh, finite, non-negative values."""
    return Readings(_fresh(metrics, signals, now, config))


def _fresh(
    metrics: MetricsSnapshot, signals: tuple[Signal, ...], now: datetime, config: Config
) -> dict[Signal, float]:
    values: dict[Signal, float] = {}
    for signal in signals:
        sample = metrics.get(signal)
        if sample is None or not 0 <= sample.value < math.inf:
            continue
        limit = config.heap_metric_max_age_s if signal in _HEAP else config.emr_metric_max_age_s
        if (now - sample.at).total_seconds() <= limit:
            values[signal] = sample.value
    return values


def is_active(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> bool | None:
    """`active_from` the fresh readings of a snapshot (only the three activity signals are read)."""
    return _active(_fresh(metrics, _ACTIVITY, now, config))


def heap_used_pct(readings: Readings) -> float | None:
    """Executor heap used %, cluster-wide, at most 100 (used cannot exceed max; skewed datapoints can)."""
    return _heap_pct(readings.values)


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
