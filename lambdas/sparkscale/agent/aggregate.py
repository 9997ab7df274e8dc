"""Last heap value per JVM, and the node-level snapshot published each interval.

Pure: the caller passes `now` (a monotonic clock reading, seconds) to every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkscale.agent.statsd import Counters, HeapReading

DEFAULT_MAX_JVMS = 4096  # a node runs tens of executors; the cap only bounds memory under junk input


class _Jvm:
    __slots__ = ("committed", "driver", "last_seen", "max", "needed", "target", "used")

    def __init__(self, driver: bool, now: float) -> None:
        self.driver = driver
        self.used: float | None = None
        self.max: float | None = None
        self.committed: float | None = None
        self.needed: float | None = None  # dynamic allocation (drivers only): numberMaxNeededExecutors
        self.target: float | None = None  # numberTargetExecutors
        self.last_seen = now


@dataclass(frozen=True)
class HeapSnapshot:
    """One node's heap at one moment: bytes are sums over its JVMs; percents are 0 when no JVM reports."""

    executor_jvms: int
    executor_used_bytes: float
    executor_max_bytes: float
    executor_used_pct: float  # sum(used) / sum(max) over executors that reported both
    executor_max_jvm_used_pct: float  # the fullest single executor
    driver_jvms: int
    driver_used_bytes: float
    driver_max_bytes: float
    driver_used_pct: float  # the fullest driver on this node
    # dynamic allocation: drivers on this node that sent ExecutorAllocationManager gauges, and their sums
    allocation_drivers: int = 0
    executors_needed: float = 0.0
    executors_target: float = 0.0


class HeapAggregator:
    """Keeps the last used/max/committed per JVM; forgets a JVM silent for `silent_after_s`."""

    def __init__(
        self, *, silent_after_s: float, counters: Counters, max_jvms: int = DEFAULT_MAX_JVMS
    ) -> None:
        if silent_after_s <= 0 or max_jvms <= 0:
            raise ValueError("silent_after_s and max_jvms must be positive")
        self.silent_after_s = silent_after_s
        self.max_jvms = max_jvms
        self.counters = counters
        self._jvms: dict[str, _Jvm] = {}

    def __len__(self) -> int:
        return len(self._jvms)

    def add(self, reading: HeapReading, now: float) -> bool:
        """Record one reading; False when it was dropped because the JVM table is full."""
        jvm = self._jvms.get(reading.jvm)
        if jvm is None:
            if len(self._jvms) >= self.max_jvms and self.evict(now) == 0:
                self.counters.jvm_limit_dropped += 1
                return False
            jvm = self._jvms[reading.jvm] = _Jvm(reading.driver, now)
        jvm.last_seen = now
        setattr(jvm, reading.field, reading.value)
        return True

    def evict(self, now: float) -> int:
        """Forget every JVM not heard from for `silent_after_s`; returns how many."""
        oldest_allowed = now - self.silent_after_s
        stale = [key for key, jvm in self._jvms.items() if jvm.last_seen < oldest_allowed]
        for key in stale:
            del self._jvms[key]
        self.counters.evicted_jvms += len(stale)
        return len(stale)

    def snapshot(self, now: float) -> HeapSnapshot:
        self.evict(now)
        ex_jvms = dr_jvms = 0
        ex_used = ex_max = pair_used = pair_max = ex_worst = 0.0
        dr_used = dr_max = dr_worst = 0.0
        alloc_drivers = 0
        needed = target = 0.0
        for jvm in self._jvms.values():
            if jvm.needed is not None or jvm.target is not None:
                alloc_drivers += 1
                needed += jvm.needed or 0.0
                target += jvm.target or 0.0
            used = jvm.used or 0.0
            top = jvm.max or 0.0
            # a percent only from a JVM that sent both (a JVM with no max reports -1, which parsing drops)
            pct = 100.0 * used / top if jvm.used is not None and top > 0 else None
            if jvm.driver:
                dr_jvms += jvm.used is not None
                dr_used += used
                dr_max += top
                if pct is not None:
                    dr_worst = max(dr_worst, pct)
            else:
                ex_jvms += jvm.used is not None
                ex_used += used
                ex_max += top
                if pct is not None:
                    pair_used += used
                    pair_max += top
                    ex_worst = max(ex_worst, pct)
        return HeapSnapshot(
            executor_jvms=ex_jvms,
            executor_used_bytes=ex_used,
            executor_max_bytes=ex_max,
            executor_used_pct=100.0 * pair_used / pair_max if pair_max > 0 else 0.0,
            executor_max_jvm_used_pct=ex_worst,
            driver_jvms=dr_jvms,
            driver_used_bytes=dr_used,
            driver_max_bytes=dr_max,
            driver_used_pct=dr_worst,
            allocation_drivers=alloc_drivers,
            executors_needed=needed,
            executors_target=target,
        )
