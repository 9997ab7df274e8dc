"""Step 1, estimate: how much YARN memory the cluster should have, from each signal's ratio to its target.

Target tracking: each fresh signal says "the memory that produced me, times value / target", measured against
ONE current view of the capacity (capacity.Capacity: running CORE nodes plus the requested nodes of the
healthy TASK groups). The largest need drives.

One signal is one function of one shape, `(readings, capacity, config) -> Need | None` (None: the signal does
not report, or has nothing to say), listed in SIGNALS: a new signal is one new function added to that tuple.

Signals (all in GiB of usable memory, the capacity's units):
- YARN memory asked for, from the YARN collector (the ResourceManager polled on the master node, a minute
  old): (YarnAllocatedMemoryMB + YarnPendingMemoryMB) / yarn_memory_used_target_pct; without a pending-memory
  datum, YarnContainersPending x default_container_memory_mb stands for it. Only while the collector is fresh
  (signals.fresh_yarn, yarn_metric_max_age_s); then the two EMR-based YARN needs below step aside (they read
  the same demand up to seven minutes later: counting both would let a stale view drive).
- YARN memory used: allocated / yarn_memory_used_target_pct (only when EMR reports an allocation).
- pending containers: (allocated + ContainerPending x container size) / yarn_memory_used_target_pct; the
  container size is MemoryAllocatedMB / ContainerAllocated, else default_container_memory_mb. Only when
  containers wait.
- executor heap used % (sum JvmHeapUsed / sum JvmHeapMax, else JvmHeapUsedPercent) wants the memory the
  executors hold x used / target. The heap is a scale-OUT signal: under its target it never asks for less
  (executors only hold the memory YARN gave them, so a quiet heap says nothing about idle YARN memory); over
  its target it may drive a scale-out and vetoes any scale-in.
- Spark executors needed (dynamic allocation's numberMaxNeededExecutors, summed over drivers) x one executor's
  container: the heap agent's JvmHeapMax / JvmCount x (1 + executor_memory_overhead_pct), else EMR's
  MemoryAllocatedMB / ContainerAllocated, else default_container_memory_mb; over yarn_memory_used_target_pct.
  A scale-OUT signal like the heap: it leaves out drivers, application masters and non-Spark work, so it may
  ask for more, never for less.
- TotalLoad per running CORE+TASK node, when total_load_target_per_node > 0, wants the running memory x
  per-node / target.
- a stream (Spark's streaming metrics, the Kinesis iterator age: policy/streaming.py) that is behind wants
  the memory running x what it asks for (input / processed rate, latency / target, or from the iterator
  age's slope), never less than the capacity counted; one not caught up yet wants the capacity counted (no
  scale-in); one caught up sets a floor, the memory running x input / processed rate x (1 +
  streaming_headroom_pct) but never more than the capacity counted (without both rates it says nothing: the
  other signals decide, within the stabilization window).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.capacity import (
    BYTES_PER_GIB,
    HUGE_RATIO,
    MIB_PER_GIB,
    SETTLE_S,
    Capacity,
    NodeCounts,
    capacity,
    capacity_of,
    count_nodes,
    settled_scale,
    usable_gib,
    yarn_memory_scale,
)
from sparkscale.policy.model import Signal
from sparkscale.policy.reasons import Reason, ReasonCode, gib
from sparkscale.policy.signals import Readings, pending_now
from sparkscale.policy.streaming import STREAMING_SIGNALS, StreamStatus, assess, observe

__all__ = [
    "HUGE_RATIO",
    "SETTLE_S",
    "SIGNALS",
    "Capacity",
    "Estimate",
    "Need",
    "NodeCounts",
    "SignalNeed",
    "capacity",
    "capacity_of",
    "count_nodes",
    "estimate",
    "gib",
    "settled_scale",
    "usable_gib",
    "yarn_memory_scale",
]


_OVER_TARGET = 1.0 + 1e-9  # a ratio above it is over its target (Need.over_target)


# Need and Estimate are NamedTuples: immutable records that never leave the policy, built in a fraction of a
# frozen dataclass's time (every evaluation builds an Estimate and its Needs)
class Need(NamedTuple):
    """What one signal asks for."""

    signal: Signal  # the Decision's driving signal when this need wins
    value: float  # in the unit of `signal` (the Decision's driving value)
    ratio: float  # pressure relative to its target: 1.0 = on target
    desired_gib: float  # total usable memory this signal wants
    # "YARN memory used 91.0 % > target 75.0 % (deadband 10 %)", or a zero-argument callable that makes it
    # when the need's reason is read (most decisions' sentences never are)
    text: str | Callable[[], str]
    scale_in: bool = True  # False: this signal may ask for more, never for less (the heap)
    values: Mapping[str, float] | None = None  # more numbers its reason states (GiB, MB, seconds), by name

    @property
    def over_target(self) -> bool:
        return self.ratio > _OVER_TARGET


class Estimate(NamedTuple):
    capacity: Capacity
    needs: tuple[Need, ...]  # largest desired memory first
    container_pending: float = 0.0
    reasons: tuple[Reason, ...] = ()  # reason(n) for each of the needs, in their order
    heap_used_pct: float | None = None  # signals.heap_used_pct of the readings (the Observation's too)
    heap: Need | None = None  # the executor heap's need, one of `needs` (None: the heap does not report)
    apps_pending: float = 0.0  # applications waiting (signals.pending_now, like container_pending)

    @property
    def driving(self) -> Need | None:
        return self.needs[0] if self.needs else None

    @property
    def desired_gib(self) -> float | None:
        d = self.driving
        return None if d is None else d.desired_gib

    @property
    def need_gib(self) -> float:
        """Memory to add (> 0) for the driving signal, counting in-flight nodes (< 0: it wants less)."""
        d = self.desired_gib
        return 0.0 if d is None else d - self.capacity.counted_gib

    @property
    def scale_in_need(self) -> Need | None:
        """The largest need among the signals that may ask for less (not the heap)."""
        for n in self.needs:  # a loop, not next(generator): asked several times per evaluation
            if n.scale_in:
                return n
        return None

    @property
    def scale_in_desired_gib(self) -> float | None:
        n = self.scale_in_need
        return None if n is None else n.desired_gib

    @property
    def desired_task_gib(self) -> float | None:
        """TASK memory (requested basis) the driving signal wants."""
        d = self.desired_gib
        return None if d is None else max(0.0, self.capacity.task_gib + d - self.capacity.counted_gib)

    @property
    def over_target(self) -> tuple[Need, ...]:
        """The needs over their target (Need.over_target, inlined: asked several times per evaluation)."""
        return tuple([n for n in self.needs if n.ratio > _OVER_TARGET])

    def reason(self, need: Need) -> Reason:
        """A full sentence: the signal against its target, and what it asks for."""
        return _reason(need, self.capacity.counted_gib)


def _reason(need: Need, have: float) -> Reason:
    """Estimate.reason, against the capacity counted (`have`); its sentence and its values are made when
    read (every evaluation has a reason per need, and a replay reads none of them)."""
    return Reason(
        ReasonCode.NEED, lambda: _reason_text(need, have), lambda: _reason_values(need, have), need.signal
    )


def _reason_values(need: Need, have: float) -> dict[str, float]:
    values = {"value": need.value, "ratio": need.ratio, "desired_gib": need.desired_gib, "counted_gib": have}
    if need.values:
        values.update(need.values)
    return values


def _reason_text(need: Need, have: float) -> str:
    delta = need.desired_gib - have
    tail = ""
    if not (need.scale_in or need.over_target):
        tail = f" ({_NEVER_LESS.get(need.signal, 'it')} never asks for less)"
    what = need.text if isinstance(need.text, str) else need.text()
    return (
        f"{what}: wants {gib(need.desired_gib)} of YARN memory, {gib(have)} running or requested "
        f"({'+' if delta >= 0 else '-'}{gib(abs(delta))}){tail}."
    )


_NEVER_LESS = {Signal.HEAP_USED_PCT: "the heap", Signal.SPARK_EXECUTORS_NEEDED: "Spark's executor demand"}


def age_text(age_s: float) -> str:
    """A datapoint's age for a reason: seconds under two minutes, else minutes."""
    return f"{age_s:.0f} s old" if age_s < 120 else f"{age_s / 60:.0f} min old"


def emr_source(readings: Readings, *signals: Signal) -> str:
    """Where an EMR-based need's numbers come from, for its reason: "EMR's 5-minute metric, 4 min old" (the
    age of the first of `signals` that is fresh), and why the YARN collector's fresher view is not used when
    it has gone stale."""
    age = next((a for s in signals if (a := readings.age_s(s)) is not None), None)
    text = "EMR's 5-minute metric" + ("" if age is None else f", {age_text(age)}")
    if readings.yarn_stale_age_s is not None:
        text += f"; the YARN collector is stale, {age_text(readings.yarn_stale_age_s)}"
    return text


def _compare(ratio: float, band: float) -> str:
    if ratio > 1 + band:
        return ">"
    if ratio < 1 - band:
        return "<"
    return "within ±"


def _text(what: str, value: str, target: str, ratio: float, config: Config) -> str:
    band = config.deadband_pct / 100.0
    cmp = _compare(ratio, band)
    if cmp == "within ±":
        return f"{what} {value} is within the deadband of target {target} (± {config.deadband_pct:g} %)"
    return f"{what} {value} {cmp} target {target} (deadband {config.deadband_pct:g} %)"


def _share(demand: float, counted: float, none: str) -> str:
    """A demand as a share of the capacity counted, for a need's sentence (`none`: no demand, no capacity)."""
    if counted > 0:
        return f"{100.0 * demand / counted:.1f} % of {gib(counted)} running or requested"
    return "more than 0 GiB" if demand > 0 else none


# --- the signals: one function each, one shape --------------------------------------------------------------
SignalNeed = Callable[[Readings, Capacity, Config], Need | None]


def yarn_memory_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """YARN memory used: EMR's allocation (up to ~7 minutes old), raised to what the executors hold now when
    that is more, over yarn_memory_used_target_pct. Only when EMR reports an allocation, and not while the
    YARN collector is fresh (fresh_yarn_need reads the same demand then, minutes earlier)."""
    if readings.yarn_demand_fresh:  # signals.fresh_yarn
        return None
    counted, alloc = cap.counted_gib, cap.held_gib
    if cap.allocated_gib is None or alloc is None or counted <= 0:
        return None
    y_target = config.yarn_memory_used_target_pct
    used_pct = 100.0 * alloc / counted
    ratio = used_pct / y_target
    reported = readings.values.get(Signal.YARN_MEMORY_AVAILABLE_PCT)
    if reported is None:
        measured = cap.measured_total_gib
        base = measured if measured is not None else cap.running_gib * cap.yarn_scale
        reported = 100.0 - 100.0 * alloc * cap.yarn_scale / base if base > 0 else 0.0
    return Need(
        Signal.YARN_MEMORY_AVAILABLE_PCT,
        round(max(0.0, min(100.0, reported)), 6),
        ratio,
        alloc * 100.0 / y_target,
        lambda: _text(
            "YARN memory used",
            f"{used_pct:.1f} % of {gib(counted)} running or requested ({gib(alloc)} allocated; "
            f"{emr_source(readings, *_EMR_ALLOCATION)})",
            f"{y_target:.1f} %",
            ratio,
            config,
        ),
    )


def pending_containers_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """Pending containers: what was allocated (as of EMR's datapoint; with no allocation data, what runs is
    full) plus the containers waiting, over yarn_memory_used_target_pct. Only when containers wait, and not
    while the YARN collector is fresh (fresh_yarn_need counts what waits then)."""
    if readings.yarn_demand_fresh:  # signals.fresh_yarn
        return None
    values = readings.values
    pending = values.get(Signal.CONTAINER_PENDING) or 0.0
    if pending <= 0:
        return None
    alloc_mb = values.get(Signal.MEMORY_ALLOCATED_MB)
    allocated_n = values.get(Signal.CONTAINER_ALLOCATED)
    if alloc_mb is not None and allocated_n is not None and alloc_mb > 0 and allocated_n >= 1:
        size_gib = alloc_mb / allocated_n / MIB_PER_GIB / cap.yarn_scale
        how = "MemoryAllocatedMB / ContainerAllocated"
    else:
        size_gib = config.default_container_memory_mb / MIB_PER_GIB / cap.yarn_scale
        how = "default_container_memory_mb"
    counted, y_target = cap.counted_gib, config.yarn_memory_used_target_pct
    base = cap.allocated_gib if cap.allocated_gib is not None else cap.running_gib
    demand = base + pending * size_gib
    ratio = (100.0 * demand / counted / y_target) if counted > 0 else HUGE_RATIO
    shown = f"{100.0 * demand / counted:.1f} %" if counted > 0 else "more than 0 GiB"
    return Need(
        Signal.CONTAINER_PENDING,
        pending,
        ratio,
        demand * 100.0 / y_target,
        lambda: _text(
            f"{pending:.0f} pending containers of {gib(size_gib)} ({how}; "
            f"{emr_source(readings, Signal.CONTAINER_PENDING)}) make YARN demand",
            shown,
            f"{y_target:.1f} %",
            ratio,
            config,
        ),
    )


def fresh_yarn_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """YARN memory asked for, from the YARN collector: allocated + pending memory (YARN's own MB, converted
    with the capacity's yarn_scale) over yarn_memory_used_target_pct. Without a pending-memory datum (an old
    ResourceManager without pendingMB and a failed JMX read), pending containers x
    default_container_memory_mb. Only while fresh (signals.fresh_yarn). Its driving signal:
    YarnPendingMemoryMB when memory waits (value: the MB pending), else YarnAllocatedMemoryMB (value: the MB
    allocated)."""
    if not readings.yarn_demand_fresh:  # signals.fresh_yarn
        return None
    values = readings.values
    alloc_mb = values[Signal.YARN_ALLOCATED_MEMORY_MB]
    pending_mb = values.get(Signal.YARN_PENDING_MEMORY_MB)
    how = ""
    if pending_mb is None:
        containers = values.get(Signal.YARN_CONTAINERS_PENDING) or 0.0
        pending_mb = containers * config.default_container_memory_mb
        how = f" ({containers:.0f} containers x default_container_memory_mb)"
    scale = cap.yarn_scale
    alloc, pending = alloc_mb / MIB_PER_GIB / scale, pending_mb / MIB_PER_GIB / scale
    demand = alloc + pending
    counted, y_target = cap.counted_gib, config.yarn_memory_used_target_pct
    ratio = 100.0 * demand / counted / y_target if counted > 0 else (HUGE_RATIO if demand > 0 else 0.0)
    age = readings.age_s(Signal.YARN_ALLOCATED_MEMORY_MB)
    signal, value = (
        (Signal.YARN_PENDING_MEMORY_MB, pending_mb)
        if pending_mb > 0
        else (Signal.YARN_ALLOCATED_MEMORY_MB, alloc_mb)
    )
    extra = {"allocated_gib": alloc, "pending_gib": pending, "demand_gib": demand}
    if age is not None:
        extra["age_s"] = age
    return Need(
        signal,
        value,
        ratio,
        demand * 100.0 / y_target,
        lambda: _text(
            f"YARN memory asked for: {gib(alloc)} allocated + {gib(pending)} pending{how} "
            f"(ResourceManager{'' if age is None else f', {age_text(age)}'}) is",
            _share(demand, counted, "0 GiB"),
            f"{y_target:.1f} %",
            ratio,
            config,
        ),
        True,  # scale_in (positional: a NamedTuple built with keywords costs twice as much)
        extra,  # values
    )


def executor_size_gib(readings: Readings, cap: Capacity, config: Config) -> tuple[float, str]:
    """One executor's container (GiB of usable memory) and where it comes from: the heap agent's
    JvmHeapMax / JvmCount x (1 + executor_memory_overhead_pct) (the executors' own heap, a minute old), else
    EMR's MemoryAllocatedMB / ContainerAllocated (every container, application masters included), else
    default_container_memory_mb."""
    values = readings.values
    mx, jvms = values.get(Signal.HEAP_MAX_BYTES), values.get(Signal.JVM_COUNT)
    if mx is not None and jvms is not None and mx > 0 and jvms >= 1:
        size = mx / jvms / BYTES_PER_GIB * (1.0 + config.executor_memory_overhead_pct / 100.0)
        return size / cap.yarn_scale, "JvmHeapMax / JvmCount + overhead"
    alloc_mb, allocated_n = values.get(Signal.MEMORY_ALLOCATED_MB), values.get(Signal.CONTAINER_ALLOCATED)
    if alloc_mb is not None and allocated_n is not None and alloc_mb > 0 and allocated_n >= 1:
        return alloc_mb / allocated_n / MIB_PER_GIB / cap.yarn_scale, "MemoryAllocatedMB / ContainerAllocated"
    return config.default_container_memory_mb / MIB_PER_GIB / cap.yarn_scale, "default_container_memory_mb"


def spark_executors_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """Spark executors needed (dynamic allocation) x one executor's container, over
    yarn_memory_used_target_pct: a scale-out signal only (it leaves out drivers, application masters and
    non-Spark work). Only when Spark reports executors needed."""
    needed = readings.values.get(Signal.SPARK_EXECUTORS_NEEDED)
    if needed is None or needed <= 0:
        return None
    size, how = executor_size_gib(readings, cap, config)
    demand = needed * size
    counted, y_target = cap.counted_gib, config.yarn_memory_used_target_pct
    ratio = 100.0 * demand / counted / y_target if counted > 0 else HUGE_RATIO
    return Need(
        Signal.SPARK_EXECUTORS_NEEDED,
        needed,
        ratio,
        demand * 100.0 / y_target,
        lambda: _text(
            f"Spark asks for {needed:.0f} executors of {gib(size)} ({how}): {gib(demand)}, which is",
            _share(demand, counted, "more than 0 GiB"),
            f"{y_target:.1f} %",
            ratio,
            config,
        ),
        False,  # scale_in
        {"executor_gib": size, "demand_gib": demand},  # values
    )


def heap_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """Executor heap used %: the memory the executors hold x used / target, never less than they hold."""
    heap_pct = readings.heap_pct  # signals.heap_used_pct
    held = cap.held_gib
    if heap_pct is None or held is None or held <= 0:
        return None
    h_target = config.heap_used_target_pct
    ratio = heap_pct / h_target
    return Need(
        Signal.HEAP_USED_PCT,
        round(heap_pct, 6),
        ratio,
        held * max(1.0, ratio),
        lambda: _text(
            "Executor heap used",
            f"{heap_pct:.1f} % (executors hold {gib(held)})",
            f"{h_target:.1f} %",
            ratio,
            config,
        ),
        False,  # scale_in
    )


def total_load_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """TotalLoad per running CORE+TASK node: the running memory x per-node / target (when a target is set)."""
    load = readings.values.get(Signal.TOTAL_LOAD)
    if load is None or config.total_load_target_per_node <= 0 or cap.running_nodes <= 0:
        return None
    per_node = load / cap.running_nodes
    ratio = per_node / config.total_load_target_per_node
    return Need(
        Signal.TOTAL_LOAD,
        load,
        ratio,
        cap.running_gib * ratio,
        lambda: _text(
            f"TotalLoad per node ({load:g} over {cap.running_nodes} nodes)",
            f"{per_node:.1f}",
            f"{config.total_load_target_per_node:g}",
            ratio,
            config,
        ),
    )


def streaming_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """A stream behind asks for the memory running x its ratio (at least the capacity counted: while it is
    behind or catching up nothing may go); caught up, or no streaming metric fresh: None."""
    values = readings.values
    if values.keys().isdisjoint(STREAMING_SIGNALS):  # most clusters: no streaming metric at all
        return None
    found = assess(observe(values, readings.history), config)
    if found is None:
        return None
    counted = cap.counted_gib
    if found.status is StreamStatus.CAUGHT_UP:
        # caught up: a floor, never more than the capacity counted, at the capacity that keeps up with the
        # input (no floor without both rates: the other signals decide, within the stabilization window)
        if found.keep_up_ratio is None:
            return None
        floor = min(counted, cap.running_gib * found.keep_up_ratio)
        return Need(
            Signal.STREAMING_PROCESSED_ROWS_PER_S,
            found.observation.processed_rows_per_s or 0.0,
            floor / counted if counted > 0 else 0.0,
            floor,
            found.text,
            True,  # scale_in: it may go down to the floor, never below
            {**found.values(), "caught_up": 1.0, "floor_gib": floor},
        )
    ratio = found.sizing_ratio(nodes_coming=cap.in_flight_gib > 1e-9)
    desired = max(counted, cap.running_gib * ratio)
    return Need(
        found.signal,
        found.value,
        ratio,
        desired,
        found.text,
        True,  # scale_in: it asks for at least the capacity counted, so it holds every scale-in
        {**found.values(), "caught_up": 0.0},
    )


# Every capacity signal (needs are ordered by desired memory, ties by Signal's enum order): a new signal is
# one function of the SignalNeed shape added here.
SIGNALS: tuple[SignalNeed, ...] = (
    fresh_yarn_need,
    yarn_memory_need,
    pending_containers_need,
    spark_executors_need,
    heap_need,
    total_load_need,
    streaming_need,
)


def estimate(
    readings: Readings, cap: Capacity, *, config: Config, signals: tuple[SignalNeed, ...] = SIGNALS
) -> Estimate:
    """Every fresh capacity signal's need, the largest first (ties: enum order of the signal)."""
    needs = []
    for signal_need in signals:
        need = signal_need(readings, cap, config)
        if need is not None:
            needs.append(need)
    if len(needs) > 1:
        needs.sort(key=lambda n: (-n.desired_gib, _ORDER[n.signal]))
    counted = cap.counted_gib
    reasons = tuple([_reason(n, counted) for n in needs])
    heap = next((n for n in needs if n.signal is Signal.HEAP_USED_PCT), None)
    containers, apps = pending_now(readings)  # read once: gates.waiting asks for both again
    return Estimate(cap, tuple(needs), containers, reasons, readings.heap_pct, heap, apps)


_ORDER = {s: i for i, s in enumerate(Signal)}
# the datapoints EMR's allocation is read from (capacity._allocated), for the age its reason states
_EMR_ALLOCATION = (Signal.MEMORY_ALLOCATED_MB, Signal.MEMORY_AVAILABLE_MB, Signal.YARN_MEMORY_AVAILABLE_PCT)
