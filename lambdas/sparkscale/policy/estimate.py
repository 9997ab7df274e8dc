"""Step 1, estimate: how much YARN memory the cluster should have, from each signal's ratio to its target.

Target tracking: each fresh signal says "the memory that produced me, times value / target". The signal asking
for the most memory wins and becomes the driving signal. The need is measured against what is running PLUS
what is requested and still coming (healthy TASK groups' in-flight nodes), so a second trigger while nodes
are being provisioned adds nothing new.

Signals (all in GiB of YARN memory; `total` is the running YARN memory, see `capacity`):
- YARN memory used % = allocated / total (MemoryAllocatedMB / MemoryTotalMB, or 100 -
  YARNMemoryAvailablePercentage) wants allocated / yarn_memory_used_target_pct.
- pending containers: (allocated + ContainerPending x container size) / yarn_memory_used_target_pct; the
  container size is MemoryAllocatedMB / ContainerAllocated, else default_container_memory_mb. Only when
  containers wait.
- executor heap used % (sum JvmHeapUsed / sum JvmHeapMax, else JvmHeapUsedPercent) wants
  total x used / target.
- TotalLoad per running CORE+TASK node, when total_load_target_per_node > 0, wants total x per-node / target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sparkscale.config import Config
from sparkscale.policy.model import Cluster, InstanceGroup, Role, Signal
from sparkscale.policy.signals import Readings

MIB_PER_GIB = 1024.0
HUGE_RATIO = 1e6  # demand with no capacity at all


def usable_gib(group: InstanceGroup, config: Config) -> float:
    """YARN-usable memory of one node of `group`."""
    return group.memory_gib * config.usable_memory_fraction


def gib(x: float) -> str:
    """A memory amount for a reason: whole GiB unless small."""
    return f"{x:.1f} GiB" if abs(x) < 10 and abs(x - round(x)) > 0.05 else f"{x:.0f} GiB"


@dataclass(frozen=True)
class Capacity:
    """The memory a decision starts from."""

    yarn_total_gib: float  # running YARN memory: MemoryTotalMB, else derived from running CORE+TASK nodes
    yarn_total_measured: bool
    allocated_gib: float | None  # YARN memory allocated to containers, when known
    in_flight_gib: (
        float  # requested-but-not-running TASK nodes of healthy groups (they still count as coming)
    )
    task_gib: float  # TASK memory counted: requested nodes of healthy groups, running nodes of blocked ones
    task_nodes: int  # TASK nodes counted the same way
    task_gib_by_type: Mapping[str, float] = field(default_factory=dict)
    running_nodes: int = 0  # running CORE + TASK nodes (TotalLoad per node)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_gib_by_type", MappingProxyType(dict(self.task_gib_by_type)))

    @property
    def counted_gib(self) -> float:
        """Running YARN memory plus memory still coming: what the signals see once provisioning is done."""
        return self.yarn_total_gib + self.in_flight_gib


def capacity(cluster: Cluster, readings: Readings, *, blocked: Mapping[str, str], config: Config) -> Capacity:
    derived = sum(
        g.running * usable_gib(g, config) for g in cluster.groups if g.role in (Role.CORE, Role.TASK)
    )
    total_mb = readings.get(Signal.MEMORY_TOTAL_MB)
    alloc_mb = readings.get(Signal.MEMORY_ALLOCATED_MB)
    avail_mb = readings.get(Signal.MEMORY_AVAILABLE_MB)
    avail_pct = readings.get(Signal.YARN_MEMORY_AVAILABLE_PCT)
    measured = True
    if total_mb is not None and total_mb > 0:
        total = total_mb / MIB_PER_GIB
    elif alloc_mb is not None and avail_mb is not None and alloc_mb + avail_mb > 0:
        total = (alloc_mb + avail_mb) / MIB_PER_GIB
    else:
        total, measured = derived, False
    allocated: float | None = None
    if alloc_mb is not None:
        allocated = alloc_mb / MIB_PER_GIB
    elif measured and avail_mb is not None:
        allocated = max(0.0, total - avail_mb / MIB_PER_GIB)
    elif avail_pct is not None:
        allocated = total * max(0.0, 100.0 - min(avail_pct, 100.0)) / 100.0
    if allocated is not None:
        allocated = min(allocated, total)  # datapoints of different minutes can disagree
    in_flight = 0.0
    task_gib = 0.0
    task_nodes = 0
    by_type: dict[str, float] = {}
    for g in cluster.task_groups:
        counted = g.running if g.id in blocked else max(g.requested, g.running)
        if g.id not in blocked:
            in_flight += max(0, g.requested - g.running) * usable_gib(g, config)
        mem = counted * usable_gib(g, config)
        task_gib += mem
        task_nodes += counted
        by_type[g.instance_type] = by_type.get(g.instance_type, 0.0) + mem
    running_nodes = sum(g.running for g in cluster.groups if g.role in (Role.CORE, Role.TASK))
    return Capacity(total, measured, allocated, in_flight, task_gib, task_nodes, by_type, running_nodes)


@dataclass(frozen=True, slots=True)
class Need:
    """What one signal asks for."""

    signal: Signal  # the Decision's driving signal when this need wins
    value: float  # in the unit of `signal` (the Decision's driving value)
    ratio: float  # pressure relative to its target: 1.0 = on target
    desired_gib: float  # total YARN memory this signal wants
    text: str  # "YARN memory used 91.0 % > target 75.0 % (deadband 10 %)"


@dataclass(frozen=True)
class Estimate:
    capacity: Capacity
    needs: tuple[Need, ...]  # largest desired memory first
    container_pending: float = 0.0

    @property
    def driving(self) -> Need | None:
        return self.needs[0] if self.needs else None

    @property
    def desired_gib(self) -> float | None:
        d = self.driving
        return None if d is None else d.desired_gib

    @property
    def need_gib(self) -> float:
        """Memory to add (> 0) or that could go (< 0) for the driving signal, counting in-flight nodes."""
        d = self.desired_gib
        return 0.0 if d is None else d - self.capacity.counted_gib

    @property
    def desired_task_gib(self) -> float | None:
        """TASK memory (requested basis) the driving signal wants."""
        return None if self.desired_gib is None else max(0.0, self.capacity.task_gib + self.need_gib)

    @property
    def over_target(self) -> tuple[Need, ...]:
        return tuple(n for n in self.needs if n.ratio > 1.0 + 1e-9)

    def reason(self, need: Need) -> str:
        """A full sentence: the signal against its target, and what it asks for."""
        have = self.capacity.counted_gib
        delta = need.desired_gib - have
        return (
            f"{need.text}: wants {gib(need.desired_gib)} of YARN memory, {gib(have)} running or requested "
            f"({'+' if delta >= 0 else '-'}{gib(abs(delta))})."
        )


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


def estimate(readings: Readings, cap: Capacity, *, config: Config) -> Estimate:
    """Every fresh capacity signal's need, the largest first (ties: enum order of the signal)."""
    needs: list[Need] = []
    total = cap.yarn_total_gib
    alloc = cap.allocated_gib
    y_target = config.yarn_memory_used_target_pct
    if alloc is not None and total > 0:
        used_pct = 100.0 * alloc / total
        ratio = used_pct / y_target
        needs.append(
            Need(
                Signal.YARN_MEMORY_AVAILABLE_PCT,
                round(100.0 - used_pct, 6),
                ratio,
                alloc * 100.0 / y_target,
                _text("YARN memory used", f"{used_pct:.1f} %", f"{y_target:.1f} %", ratio, config),
            )
        )
    pending = readings.get(Signal.CONTAINER_PENDING) or 0.0
    if pending > 0:
        alloc_mb = readings.get(Signal.MEMORY_ALLOCATED_MB)
        allocated_n = readings.get(Signal.CONTAINER_ALLOCATED)
        if alloc_mb is not None and allocated_n is not None and alloc_mb > 0 and allocated_n >= 1:
            size_gib, how = alloc_mb / allocated_n / MIB_PER_GIB, "MemoryAllocatedMB / ContainerAllocated"
        else:
            size_gib, how = config.default_container_memory_mb / MIB_PER_GIB, "default_container_memory_mb"
        base = alloc if alloc is not None else total  # containers wait: with no allocation data, assume full
        demand = base + pending * size_gib
        ratio = (100.0 * demand / total / y_target) if total > 0 else HUGE_RATIO
        shown = f"{100.0 * demand / total:.1f} %" if total > 0 else "more than 0 GiB"
        needs.append(
            Need(
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
        )
    heap_pct = _heap_used_pct(readings)
    if heap_pct is not None and total > 0:
        h_target = config.heap_used_target_pct
        ratio = heap_pct / h_target
        needs.append(
            Need(
                Signal.HEAP_USED_PCT,
                round(heap_pct, 6),
                ratio,
                total * ratio,
                _text("Executor heap used", f"{heap_pct:.1f} %", f"{h_target:.1f} %", ratio, config),
            )
        )
    load = readings.get(Signal.TOTAL_LOAD)
    if load is not None and config.total_load_target_per_node > 0 and cap.running_nodes > 0 and total > 0:
        per_node = load / cap.running_nodes
        ratio = per_node / config.total_load_target_per_node
        needs.append(
            Need(
                Signal.TOTAL_LOAD,
                load,
                ratio,
                total * ratio,
                _text(
                    f"TotalLoad per node ({load:g} over {cap.running_nodes} nodes)",
                    f"{per_node:.1f}",
                    f"{config.total_load_target_per_node:g}",
                    ratio,
                    config,
                ),
            )
        )
    order = list(Signal)
    needs.sort(key=lambda n: (-n.desired_gib, order.index(n.signal)))
    return Estimate(cap, tuple(needs), pending)


def _heap_used_pct(readings: Readings) -> float | None:
    """Executor heap used %, cluster-wide, at most 100 (used cannot exceed max; skewed datapoints can)."""
    used = readings.get(Signal.HEAP_USED_BYTES)
    mx = readings.get(Signal.HEAP_MAX_BYTES)
    if used is not None and mx is not None and mx > 0:
        return min(100.0, 100.0 * used / mx)
    pct = readings.get(Signal.HEAP_USED_PCT)
    return None if pct is None or not math.isfinite(pct) else min(100.0, pct)
