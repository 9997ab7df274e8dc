"""Last heap value per JVM, and the node-level snapshot published each interval.

Pure: the caller passes `now` (a monotonic clock reading, seconds) to every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparkscale.agent.statsd import Counters, HeapReading, StreamReading

DEFAULT_MAX_JVMS = 4096  # a node runs tens of executors; the cap only bounds memory under junk input
DEFAULT_MAX_STREAMS = 1024  # a driver runs a few queries; the cap only bounds memory under junk input


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


class _Stream:
    __slots__ = (
        "batch_latency_ms",
        "dstream",
        "input_rows_per_s",
        "last_seen",
        "processed_rows_per_s",
        "scheduling_delay_ms",
        "waiting_batches",
    )

    def __init__(self, dstream: bool, now: float) -> None:
        self.dstream = dstream
        self.input_rows_per_s: float | None = None
        self.processed_rows_per_s: float | None = None
        self.batch_latency_ms: float | None = None
        self.scheduling_delay_ms: float | None = None
        self.waiting_batches: float | None = None
        self.last_seen = now


@dataclass(frozen=True)
class StreamingSnapshot:
    """One node's streaming queries at one moment. None: no query on this node reported it (no datum then;
    a zero would read as "nothing arriving" or "caught up")."""

    queries: int  # Structured Streaming queries reporting
    dstream_apps: int  # DStreams applications reporting
    input_rows_per_s: float | None  # sum over queries
    processed_rows_per_s: float | None  # sum over queries
    batch_latency_ms: float | None  # the slowest query's last batch
    scheduling_delay_ms: float | None  # the worst DStreams application's last completed batch
    waiting_batches: float | None  # sum over DStreams applications

    @property
    def empty(self) -> bool:
        return not (self.queries or self.dstream_apps)


def _sum(values: list[float]) -> float | None:
    return sum(values) if values else None


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


class StreamingAggregator:
    """The last value of each streaming gauge per query (or DStreams application); forgets a silent one."""

    def __init__(
        self, *, silent_after_s: float, counters: Counters, max_streams: int = DEFAULT_MAX_STREAMS
    ) -> None:
        if silent_after_s <= 0 or max_streams <= 0:
            raise ValueError("silent_after_s and max_streams must be positive")
        self.silent_after_s = silent_after_s
        self.max_streams = max_streams
        self.counters = counters
        self._streams: dict[str, _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, reading: StreamReading, now: float) -> bool:
        """Record one reading; False when it was dropped because the table is full."""
        stream = self._streams.get(reading.source)
        if stream is None:
            if len(self._streams) >= self.max_streams and self.evict(now) == 0:
                self.counters.stream_limit_dropped += 1
                return False
            stream = self._streams[reading.source] = _Stream(reading.dstream, now)
        stream.last_seen = now
        setattr(stream, reading.field, reading.value)
        return True

    def evict(self, now: float) -> int:
        """Forget every query not heard from for `silent_after_s` (it stopped, or its driver did)."""
        oldest_allowed = now - self.silent_after_s
        stale = [key for key, stream in self._streams.items() if stream.last_seen < oldest_allowed]
        for key in stale:
            del self._streams[key]
        self.counters.evicted_jvms += len(stale)
        return len(stale)

    def snapshot(self, now: float) -> StreamingSnapshot:
        self.evict(now)
        structured = [s for s in self._streams.values() if not s.dstream]
        dstreams = [s for s in self._streams.values() if s.dstream]

        def present(streams: list[_Stream], field: str) -> list[float]:
            return [v for v in (getattr(s, field) for s in streams) if v is not None]

        return StreamingSnapshot(
            queries=len(structured),
            dstream_apps=len(dstreams),
            input_rows_per_s=_sum(present(structured, "input_rows_per_s")),
            processed_rows_per_s=_sum(present(structured, "processed_rows_per_s")),
            batch_latency_ms=_max(present(structured, "batch_latency_ms")),
            scheduling_delay_ms=_max(present(dstreams, "scheduling_delay_ms")),
            waiting_batches=_sum(present(dstreams, "waiting_batches")),
        )
