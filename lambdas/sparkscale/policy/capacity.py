"""The memory a decision starts from: ONE current view of the capacity, read fresh from the cluster.

Target tracking: each fresh signal says "the memory that produced me, times value / target". Everything is
measured against ONE current view of the capacity, read fresh from the cluster (not from MemoryTotalMB, which
is up to ~7 minutes old): running CORE nodes plus the requested nodes of the healthy TASK groups (running
nodes only for the groups the spot fallback blocks), each node's memory x usable_memory_fraction. Nodes still
coming therefore count from the moment they are requested, and a node that has just joined is never counted
twice or not at all. MemoryTotalMB only calibrates that view: on a settled cluster (see `yarn_memory_scale`)
it says how much YARN memory one derived GiB really is, and the YARN metrics are converted with that scale.

"Allocated" is the YARN collector's YarnAllocatedMemoryMB when fresh (yarn_metric_max_age_s), else EMR's
MemoryAllocatedMB (else MemoryTotalMB - MemoryAvailableMB, else from
YARNMemoryAvailablePercentage), raised to what the executors hold now when that is more and newer: the heap
agent's summed JvmHeapMax x (1 + executor_memory_overhead_pct), published every minute where EMR publishes
every five (executors' containers are part of the allocated memory).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.model import Cluster, GroupStatus, InstanceGroup, Market, MetricsSnapshot, Role, Signal
from sparkscale.policy.signals import Readings

MIB_PER_GIB = 1024.0
BYTES_PER_GIB = float(2**30)
HUGE_RATIO = 1e6  # demand with no capacity at all
# A MemoryTotalMB datapoint taken at least this long after the scaler's last resize describes the nodes that
# resize asked for (EMR task nodes join YARN within ~5-10 minutes), so it may calibrate the derived capacity.
SETTLE_S = 900.0
# Calibration only ever raises the derived capacity (MemoryTotalMB larger than derived): a smaller
# MemoryTotalMB is indistinguishable from nodes that joined after the datapoint was taken. Values above
# 1 / usable_memory_fraction (more YARN memory than the instances have) are not believed either.
MIN_SCALE = 1.0


def usable_gib(group: InstanceGroup, config: Config) -> float:
    """YARN-usable memory of one node of `group`, as configured (usable_memory_fraction)."""
    return group.memory_gib * config.usable_memory_fraction


def yarn_memory_scale(
    cluster: Cluster,
    metrics: MetricsSnapshot,
    *,
    now: datetime,
    config: Config,
    last_resize_at: datetime | None,
) -> float | None:
    """MemoryTotalMB / the running CORE+TASK memory derived from the cluster, when both describe the same
    nodes: every CORE and TASK group RUNNING with all its requested nodes running, and the datapoint taken at
    least SETTLE_S after the scaler's last resize; and only when it is at least 1 (see MIN_SCALE). None when
    it cannot be measured now (the caller then keeps the last measured scale)."""
    settled = count_nodes(cluster, blocked={}, config=config).settled_gib
    return settled_scale(metrics, settled, now=now, config=config, last_resize_at=last_resize_at)


def settled_scale(
    metrics: MetricsSnapshot,
    settled_gib: float | None,
    *,
    now: datetime,
    config: Config,
    last_resize_at: datetime | None,
) -> float | None:
    """`yarn_memory_scale` from the running memory of a settled cluster (NodeCounts.settled_gib)."""
    if settled_gib is None or settled_gib <= 0:
        return None
    sample = metrics.get(Signal.MEMORY_TOTAL_MB)
    if (
        sample is None
        or not 0 < sample.value < math.inf
        or (now - sample.at).total_seconds() > config.emr_metric_max_age_s
        or (last_resize_at is not None and (sample.at - last_resize_at).total_seconds() < SETTLE_S)
    ):
        return None
    scale = sample.value / MIB_PER_GIB / settled_gib
    if not MIN_SCALE <= scale <= 1.0 / config.usable_memory_fraction + 1e-9:
        return None
    return scale


# NodeCounts and Capacity are NamedTuples: immutable records that never leave the policy, built in a fraction
# of a frozen dataclass's time (every evaluation builds a Capacity)
class NodeCounts(NamedTuple):
    """The CORE and TASK nodes of a cluster read, in GiB of usable memory as configured (one pass)."""

    running_gib: float  # running CORE + TASK nodes
    core_gib: float  # running CORE nodes
    running_nodes: int  # running CORE + TASK nodes
    in_flight_gib: float  # requested-but-not-running TASK nodes of groups not blocked
    task_gib: float  # TASK memory counted: requested nodes of healthy groups, running nodes of blocked ones
    task_nodes: int  # TASK nodes counted the same way
    task_gib_by_type: Mapping[str, float]
    smallest_node_gib: float  # the smallest node of the TASK groups with requested nodes (inf: none)
    on_demand_nodes: int  # requested nodes of the ON_DEMAND TASK groups
    # running_gib when every CORE and TASK group is RUNNING with all its requested nodes running (the memory
    # MemoryTotalMB describes then, see yarn_memory_scale); None otherwise
    settled_gib: float | None


def count_nodes(cluster: Cluster, *, blocked: Mapping[str, str], config: Config) -> NodeCounts:
    """The nodes counted in one pass over the groups; with no group blocked (nearly always), once per Cluster
    value and usable_memory_fraction (Cluster.derived)."""
    frac = config.usable_memory_fraction
    if blocked:
        return _count_nodes(cluster, blocked, frac)
    return cluster.derived(("count_nodes", frac), lambda c: _count_nodes(c, {}, frac))


def _count_nodes(cluster: Cluster, blocked: Mapping[str, str], frac: float) -> NodeCounts:
    running_gib = 0.0
    core_gib = 0.0
    running_nodes = 0
    in_flight = 0.0
    task_gib = 0.0
    task_nodes = 0
    settled = True
    by_type: dict[str, float] = {}
    smallest = math.inf
    on_demand = 0
    for g in cluster.groups:
        role = g.role
        if role is Role.MASTER:
            continue
        node = g.memory_gib * frac  # usable_gib(g, config)
        running_gib += g.running * node
        running_nodes += g.running
        settled = settled and g.status is GroupStatus.RUNNING and g.requested == g.running
        if role is not Role.TASK:
            core_gib += g.running * node
            continue
        if g.requested > 0:
            smallest = min(smallest, node)
            if g.market is Market.ON_DEMAND:
                on_demand += g.requested
        if g.id in blocked:
            counted = min(g.requested, g.running)
        else:
            counted = g.requested
            if g.requested > g.running:
                in_flight += (g.requested - g.running) * node
        mem = counted * node
        task_gib += mem
        task_nodes += counted
        by_type[g.instance_type] = by_type.get(g.instance_type, 0.0) + mem
    return NodeCounts(
        running_gib,
        core_gib,
        running_nodes,
        in_flight,
        task_gib,
        task_nodes,
        MappingProxyType(by_type),  # kept with the Cluster (count_nodes): read-only
        smallest,
        on_demand,
        running_gib if settled else None,
    )


class Capacity(NamedTuple):
    """The memory a decision starts from, in GiB of usable memory as configured (see the module docstring)."""

    running_gib: float  # running CORE + TASK nodes
    counted_gib: float  # running CORE nodes + TASK nodes counted (requested, or running when blocked)
    in_flight_gib: float  # requested-but-not-running TASK nodes of healthy groups (they count as coming)
    allocated_gib: float | None  # YARN memory allocated to containers, when known (converted by yarn_scale)
    task_gib: float  # TASK memory counted: requested nodes of healthy groups, running nodes of blocked ones
    task_nodes: int  # TASK nodes counted the same way
    task_gib_by_type: Mapping[str, float] = MappingProxyType({})
    running_nodes: int = 0  # running CORE + TASK nodes (TotalLoad per node)
    measured_total_gib: float | None = None  # MemoryTotalMB (else allocated + available), YARN's own GiB
    yarn_scale: float = 1.0  # YARN GiB per derived GiB (yarn_memory_scale)
    # memory the executors hold: their summed heap max x (1 + executor_memory_overhead_pct), when that
    # datapoint is newer than EMR's allocation (published every minute, EMR's every five): a fresher lower
    # bound of the allocated memory
    executor_gib: float | None = None
    smallest_node_gib: float = math.inf  # NodeCounts.smallest_node_gib
    on_demand_nodes: int = 0  # NodeCounts.on_demand_nodes

    @property
    def held_gib(self) -> float | None:
        """Allocated memory as fresh as known: max(YARN allocated, executors' memory)."""
        a, e = self.allocated_gib, self.executor_gib
        if a is None:
            return e
        return a if e is None else max(a, e)


def capacity(
    cluster: Cluster,
    readings: Readings,
    *,
    blocked: Mapping[str, str],
    config: Config,
    scale: float = 1.0,
) -> Capacity:
    """The current capacity from the cluster read, and YARN's allocated memory converted with `scale`."""
    counts = count_nodes(cluster, blocked=blocked, config=config)
    return capacity_of(counts, readings, config=config, scale=scale)


def capacity_of(counts: NodeCounts, readings: Readings, *, config: Config, scale: float = 1.0) -> Capacity:
    """`capacity` from the nodes already counted."""
    measured = _measured_total(readings)
    allocated, alloc_at = _allocated(readings, measured, counts.running_gib * scale)
    executors = _executors(readings, alloc_at, config)
    # positional (the fields' order, named on each line): a NamedTuple built with keywords costs twice as
    # much, and every evaluation builds one
    return Capacity(
        counts.running_gib,  # running_gib
        counts.core_gib + counts.task_gib,  # counted_gib
        counts.in_flight_gib,  # in_flight_gib
        None if allocated is None else allocated / scale,  # allocated_gib
        counts.task_gib,  # task_gib
        counts.task_nodes,  # task_nodes
        counts.task_gib_by_type,  # task_gib_by_type
        counts.running_nodes,  # running_nodes
        measured,  # measured_total_gib
        scale,  # yarn_scale
        None if executors is None else executors / scale,  # executor_gib
        counts.smallest_node_gib,  # smallest_node_gib
        counts.on_demand_nodes,  # on_demand_nodes
    )


def _measured_total(readings: Readings) -> float | None:
    """YARN's own total (GiB): the YARN collector's YarnTotalMemoryMB when fresh, else EMR's MemoryTotalMB,
    else MemoryAllocatedMB + MemoryAvailableMB."""
    values = readings.values
    rm_total = values.get(Signal.YARN_TOTAL_MEMORY_MB)
    if rm_total is not None and rm_total > 0:
        return rm_total / MIB_PER_GIB
    total_mb = values.get(Signal.MEMORY_TOTAL_MB)
    if total_mb is not None and total_mb > 0:
        return total_mb / MIB_PER_GIB
    alloc_mb, avail_mb = values.get(Signal.MEMORY_ALLOCATED_MB), values.get(Signal.MEMORY_AVAILABLE_MB)
    if alloc_mb is not None and avail_mb is not None and alloc_mb + avail_mb > 0:
        return (alloc_mb + avail_mb) / MIB_PER_GIB
    return None


def _allocated(
    readings: Readings, measured: float | None, running: float
) -> tuple[float | None, datetime | None]:
    """YARN's allocated memory (its own GiB) and the time of the datapoint it comes from: the YARN collector's
    YarnAllocatedMemoryMB when fresh (a minute old, where EMR's are up to seven), else MemoryAllocatedMB,
    else MemoryTotalMB - MemoryAvailableMB, else YARNMemoryAvailablePercentage of the total (measured, else
    the running memory)."""
    values = readings.values
    rm_alloc = values.get(Signal.YARN_ALLOCATED_MEMORY_MB)
    alloc_mb = values.get(Signal.MEMORY_ALLOCATED_MB)
    if rm_alloc is not None:
        allocated, at = rm_alloc / MIB_PER_GIB, readings.at(Signal.YARN_ALLOCATED_MEMORY_MB)
    elif alloc_mb is not None:
        allocated, at = alloc_mb / MIB_PER_GIB, readings.at(Signal.MEMORY_ALLOCATED_MB)
    elif (avail_mb := values.get(Signal.MEMORY_AVAILABLE_MB)) is not None and measured is not None:
        allocated, at = max(0.0, measured - avail_mb / MIB_PER_GIB), readings.at(Signal.MEMORY_AVAILABLE_MB)
    elif (avail_pct := values.get(Signal.YARN_MEMORY_AVAILABLE_PCT)) is not None:
        base = measured if measured is not None else running
        allocated = base * max(0.0, 100.0 - min(avail_pct, 100.0)) / 100.0
        at = readings.at(Signal.YARN_MEMORY_AVAILABLE_PCT)
    else:
        return None, None
    if measured is not None:
        allocated = min(allocated, measured)  # datapoints of different minutes can disagree
    return allocated, at


def _executors(readings: Readings, alloc_at: datetime | None, config: Config) -> float | None:
    """What the executors hold (YARN's GiB): their summed heap max x (1 + executor_memory_overhead_pct), when
    the heap agent's datapoint is newer than EMR's allocation (or EMR reports none)."""
    mx = readings.values.get(Signal.HEAP_MAX_BYTES)
    if mx is None or mx <= 0:
        return None
    mx_at = readings.at(Signal.HEAP_MAX_BYTES)
    if alloc_at is not None and mx_at is not None and mx_at <= alloc_at:
        return None
    return mx / BYTES_PER_GIB * (1.0 + config.executor_memory_overhead_pct / 100.0)
