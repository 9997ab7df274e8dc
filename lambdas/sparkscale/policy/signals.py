"""Step 0: which datapoints may be used. A metric older than its maximum age (EMR: emr_metric_max_age_s, heap:
heap_metric_max_age_s) or not a finite number is ignored, per signal, with a reason."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from sparkscale.config import Config
from sparkscale.policy.model import MetricsSnapshot, Signal


@dataclass(frozen=True)
class Readings:
    """The fresh values of a snapshot (signal -> value) and what was left out, and why."""

    values: Mapping[Signal, float] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def get(self, signal: Signal) -> float | None:
        return self.values.get(signal)


def max_age_s(signal: Signal, config: Config) -> int:
    return config.emr_metric_max_age_s if signal.is_emr else config.heap_metric_max_age_s


def read_signals(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> Readings:
    """Keep each signal whose datapoint is at most its maximum age old (a datapoint from the future, clock
    skew, counts as fresh) and is a finite number >= 0. Everything else is ignored with a reason."""
    values: dict[Signal, float] = {}
    ignored: list[str] = []
    for signal in Signal:  # enum order: deterministic reasons
        sample = metrics.get(signal)
        if sample is None:
            continue
        age = (now - sample.at).total_seconds()
        limit = max_age_s(signal, config)
        if not math.isfinite(sample.value) or sample.value < 0:
            ignored.append(f"{signal.value} ignored: value {sample.value!r} is not a finite number >= 0.")
        elif age > limit:
            ignored.append(f"{signal.value} ignored: its datapoint is {age:.0f} s old (max {limit} s).")
        else:
            values[signal] = sample.value
    return Readings(values, tuple(ignored))


def is_active(metrics: MetricsSnapshot, *, now: datetime, config: Config) -> bool | None:
    """True when an application runs or waits, False when none does, None when unknown (no fresh data).
    AppsRunning/AppsPending decide when present; IsIdle (1 = idle) otherwise."""
    r = read_signals(metrics, now=now, config=config)
    running, pending = r.get(Signal.APPS_RUNNING), r.get(Signal.APPS_PENDING)
    if running is not None or pending is not None:
        return (running or 0.0) + (pending or 0.0) > 0
    idle = r.get(Signal.IS_IDLE)
    if idle is not None:
        return idle < 0.5
    return None
