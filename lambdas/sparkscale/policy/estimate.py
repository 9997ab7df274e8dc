"""Step 1, estimate: how much YARN memory the cluster should have, from each signal's ratio to its target.

Target tracking: each fresh signal says "the memory that produced me, times value / target", measured against
ONE current view of the capacity (capacity.Capacity: running CORE nodes plus the requested nodes of the
healthy TASK groups). The largest need drives.

One signal is one function of one shape, `(readings, capacity, config) -> Need | None` (None: the signal does
not report, or has nothing to say), listed in SIGNALS: a new signal is one new function added to that tuple.

Signals (all in GiB of usable memory, the capacity's units):
- YARN memory used: allocated / yarn_memory_used_target_pct (only when EMR reports an allocation).
- pending containers: (allocated + ContainerPending x container size) / yarn_memory_used_target_pct; the
  container size is MemoryAllocatedMB / ContainerAllocated, else default_container_memory_mb. Only when
  containers wait.
- executor heap used % (sum JvmHeapUsed / sum JvmHeapMax, else JvmHeapUsedPercent) wants the memory the
  executors hold x used / target. The heap is a scale-OUT signal: under its target it never asks for less
  (executors only hold the memory YARN gave them, so a quiet heap says nothing about idle YARN memory); over
  its target it may drive a scale-out and vetoes any scale-in.
- TotalLoad per running CORE+TASK node, when total_load_target_per_node > 0, wants the running memory x
  per-node / target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.capacity import (
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
from sparkscale.policy.signals import Readings, heap_used_pct

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


# Need and Estimate are NamedTuples: immutable records that never leave the policy, built in a fraction of a
# frozen dataclass's time (every evaluation builds an Estimate and its Needs)
class Need(NamedTuple):
    """What one signal asks for."""

    signal: Signal  # the Decision's driving signal when this need wins
    value: float  # in the unit of `signal` (the Decision's driving value)
    ratio: float  # pressure relative to its target: 1.0 = on target
    desired_gib: float  # total usable memory this signal wants
    text: str  # "YARN memory used 91.0 % > target 75.0 % (deadband 10 %)"
    scale_in: bool = True  # False: this signal may ask for more, never for less (the heap)

    @property
    def over_target(self) -> bool:
        return self.ratio > 1.0 + 1e-9


class Estimate(NamedTuple):
    capacity: Capacity
    needs: tuple[Need, ...]  # largest desired memory first
    container_pending: float = 0.0
    reasons: tuple[Reason, ...] = ()  # reason(n) for each of the needs, in their order
    heap_used_pct: float | None = None  # signals.heap_used_pct of the readings (the Observation's too)
    heap: Need | None = None  # the executor heap's need, one of `needs` (None: the heap does not report)

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
        return next((n for n in self.needs if n.scale_in), None)

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
        return tuple(n for n in self.needs if n.over_target)

    def reason(self, need: Need) -> Reason:
        """A full sentence: the signal against its target, and what it asks for."""
        have = self.capacity.counted_gib
        return _reason(need, have, gib(have))


def _reason(need: Need, have: float, have_text: str) -> Reason:
    """Estimate.reason, with the capacity counted (`have`) already formatted."""
    delta = need.desired_gib - have
    tail = "" if need.scale_in or need.over_target else " (the heap never asks for less)"
    text = (
        f"{need.text}: wants {gib(need.desired_gib)} of YARN memory, {have_text} running or requested "
        f"({'+' if delta >= 0 else '-'}{gib(abs(delta))}){tail}."
    )
    values = {"value": need.value, "ratio": need.ratio, "desired_gib": need.desired_gib, "counted_gib": have}
    return Reason(ReasonCode.NEED, text, values, need.signal)


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


# --- the signals: one function each, one shape --------------------------------------------------------------
SignalNeed = Callable[[Readings, Capacity, Config], Need | None]


def yarn_memory_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """YARN memory used: EMR's allocation (up to ~7 minutes old), raised to what the executors hold now when
    that is more, over yarn_memory_used_target_pct. Only when EMR reports an allocation."""
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
        _text(
            "YARN memory used",
            f"{used_pct:.1f} % of {gib(counted)} running or requested ({gib(alloc)} allocated)",
            f"{y_target:.1f} %",
            ratio,
            config,
        ),
    )


def pending_containers_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """Pending containers: what was allocated (as of EMR's datapoint; with no allocation data, what runs is
    full) plus the containers waiting, over yarn_memory_used_target_pct. Only when containers wait."""
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
        _text(
            f"{pending:.0f} pending containers of {gib(size_gib)} ({how}) make YARN demand",
            shown,
            f"{y_target:.1f} %",
            ratio,
            config,
        ),
    )


def heap_need(readings: Readings, cap: Capacity, config: Config) -> Need | None:
    """Executor heap used %: the memory the executors hold x used / target, never less than they hold."""
    heap_pct = heap_used_pct(readings)
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
        _text(
            "Executor heap used",
            f"{heap_pct:.1f} % (executors hold {gib(held)})",
            f"{h_target:.1f} %",
            ratio,
            config,
        ),
        scale_in=False,
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
        _text(
            f"TotalLoad per node ({load:g} over {cap.running_nodes} nodes)",
            f"{per_node:.1f}",
            f"{config.total_load_target_per_node:g}",
            ratio,
            config,
        ),
    )


# Every capacity signal (needs are ordered by desired memory, ties by Signal's enum order): a new signal is
# one function of the SignalNeed shape added here.
SIGNALS: tuple[SignalNeed, ...] = (yarn_memory_need, pending_containers_need, heap_need, total_load_need)


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
    have = gib(counted)  # formatted once: every reason states it
    reasons = tuple([_reason(n, counted, have) for n in needs])
    heap = next((n for n in needs if n.signal is Signal.HEAP_USED_PCT), None)
    pending = readings.values.get(Signal.CONTAINER_PENDING) or 0.0
    return Estimate(cap, tuple(needs), pending, reasons, heap_used_pct(readings), heap)


_ORDER = {s: i for i, s in enumerate(Signal)}
