"""The replay's model of a Spark-on-EMR cluster: parameters, and every signal derived from demand and supply.

Pure functions and plain data; the event loop lives in engine.py. Every assumption is a named parameter of
`SimParams` (documented in docs/replay.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sparkscale import names

GIB = 1024**3


@dataclass(frozen=True)
class SimParams:
    """Timing, delays and the workload model. Times in seconds from the start of the trace."""

    step_s: int = 60  # the scoring step: demand is held and supply sampled once per step
    # task-node life cycle
    provisioning_s: float = 360.0  # ModifyInstanceGroups request -> node RUNNING and usable by YARN
    decommission_s: float = 120.0  # graceful decommission: drained and terminated this long after scale-in
    interruption_notice_s: float = 120.0  # spot interruption warning -> instance terminated
    # EMR metrics (AWS/ElasticMapReduce): gauges sampled every 300 s, visible after a publication lag
    emr_period_s: int = names.EMR_PERIOD_S
    emr_sample_offset_s: float = 0.0
    emr_lag_s: float = 120.0
    # the heap agent's metrics (Sparkscale/SparkHeap): every 60 s, PutMetricData lag
    heap_period_s: int = names.HEAP_PERIOD_S
    heap_sample_offset_s: float = 30.0
    heap_lag_s: float = 10.0
    # Spark dynamic allocation: the drivers' SparkExecutorsNeeded / SparkExecutorsTarget, in the heap batch
    dynamic_allocation: bool = True
    # the master node agent's YARN ResourceManager metrics (Sparkscale/Yarn): polled every 10 s, one statistic
    # set per minute, timestamped at the minute's start, sent when the minute closes, visible after the lag.
    # yarn_collector=False: no such stream (the model before the collector existed)
    yarn_collector: bool = True
    yarn_period_s: int = names.YARN_PERIOD_S
    yarn_lag_s: float = 10.0
    # CloudWatch alarm evaluation, SNS -> Lambda, EventBridge schedule -> Lambda
    alarm_eval_period_s: float = 60.0
    alarm_eval_offset_s: float = 50.0
    sns_lambda_latency_s: float = 2.0
    reconcile_offset_s: float = 0.0
    schedule_latency_s: float = 1.0
    # workload -> signals
    app_gib: float = 64.0  # memory of one Spark application (AppsRunning / AppsPending)
    idle_below_gib: float = 0.5  # demand below this: no application, IsIdle = 1
    heap_fraction: float = 0.9  # executor heap max / YARN container memory (the rest is memory overhead)
    heap_used_pct_when_fed: float = 60.0  # executor heap used % while demand fits in YARN
    heap_used_pct_max: float = 98.0  # executor heap used % cap under pressure
    total_load_per_gib: float = 0.0  # TotalLoad (HDFS transfers) per allocated GiB; ~0 for Spark on S3
    # work conservation: demand is work arriving; what does not fit waits (FIFO) and runs later (backlog.py)
    backlog: bool = False
    # the start of the simulated clock (only its weekday/hour show in logs)
    epoch: datetime = datetime(2026, 1, 5, tzinfo=UTC)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and (not math.isfinite(v) or v < 0):
                raise ValueError(f"replay parameter {f.name} must be a finite number >= 0, got {v!r}")
        if (
            self.step_s <= 0
            or self.emr_period_s <= 0
            or self.heap_period_s <= 0
            or self.alarm_eval_period_s <= 0
            or self.yarn_period_s <= 0
        ):
            raise ValueError("replay step and periods must be > 0 s")
        if self.app_gib <= 0 or self.heap_fraction <= 0:
            raise ValueError("app_gib and heap_fraction must be > 0")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, datetime) else v
        return out


class EmrSample(NamedTuple):  # a NamedTuple, not a frozen dataclass: made every 5 simulated minutes
    """One EMR datapoint of every AWS/ElasticMapReduce metric the policy and the alarms read."""

    yarn_memory_available_pct: float
    memory_total_mb: float
    memory_allocated_mb: float
    memory_available_mb: float
    container_pending: float
    container_allocated: float
    container_pending_ratio: float
    apps_running: float
    apps_pending: float
    is_idle: float
    total_load: float

    def by_metric(self) -> dict[str, float]:
        return {
            names.EMR_YARN_MEMORY_AVAILABLE_PCT: self.yarn_memory_available_pct,
            names.EMR_MEMORY_TOTAL_MB: self.memory_total_mb,
            names.EMR_MEMORY_ALLOCATED_MB: self.memory_allocated_mb,
            names.EMR_MEMORY_AVAILABLE_MB: self.memory_available_mb,
            names.EMR_CONTAINER_PENDING: self.container_pending,
            names.EMR_CONTAINER_ALLOCATED: self.container_allocated,
            names.EMR_CONTAINER_PENDING_RATIO: self.container_pending_ratio,
            names.EMR_APPS_RUNNING: self.apps_running,
            names.EMR_APPS_PENDING: self.apps_pending,
            names.EMR_IS_IDLE: self.is_idle,
            names.EMR_TOTAL_LOAD: self.total_load,
        }


class HeapSample(NamedTuple):  # a NamedTuple, not a frozen dataclass: made every simulated minute
    """One datapoint of the heap agent's metrics (the cluster's executors summed, as one node publishes)."""

    used_bytes: float
    max_bytes: float
    used_pct: float | None  # None: no executor runs (the agent publishes JvmCount 0 and no percentage)
    jvm_count: float
    # Spark dynamic allocation (the drivers' gauges, summed): None when no driver reports them (no
    # application, or dynamic allocation off): the agent then sends no datum at all
    executors_needed: float | None = None
    executors_target: float | None = None

    def by_metric(self) -> dict[str, float]:
        out = {
            names.HEAP_EXECUTOR_USED_BYTES: self.used_bytes,
            names.HEAP_EXECUTOR_MAX_BYTES: self.max_bytes,
            names.HEAP_JVM_COUNT: self.jvm_count,
        }
        if self.used_pct is not None:
            out[names.HEAP_EXECUTOR_USED_PCT] = self.used_pct
        if self.executors_needed is not None:
            out[names.SPARK_EXECUTORS_NEEDED] = self.executors_needed
        if self.executors_target is not None:
            out[names.SPARK_EXECUTORS_TARGET] = self.executors_target
        return out


class YarnSample(NamedTuple):  # made every simulated minute
    """One minute of the master agent's YARN ResourceManager metrics (Sparkscale/Yarn), each the statistic
    names.py says to read it with: Maximum, except available memory (Minimum)."""

    pending_memory_mb: float
    allocated_memory_mb: float
    available_memory_mb: float
    total_memory_mb: float
    containers_pending: float
    apps_pending: float
    apps_running: float

    def by_metric(self) -> dict[str, float]:
        return {
            names.YARN_PENDING_MEMORY_MB: self.pending_memory_mb,
            names.YARN_ALLOCATED_MEMORY_MB: self.allocated_memory_mb,
            names.YARN_AVAILABLE_MEMORY_MB: self.available_memory_mb,
            names.YARN_TOTAL_MEMORY_MB: self.total_memory_mb,
            names.YARN_CONTAINERS_PENDING: self.containers_pending,
            names.YARN_APPS_PENDING: self.apps_pending,
            names.YARN_APPS_RUNNING: self.apps_running,
        }


def emr_signals(demand_gib: float, supply_gib: float, *, container_gib: float, p: SimParams) -> EmrSample:
    """EMR's YARN metrics for `demand_gib` of wanted memory on `supply_gib` of usable YARN memory.

    allocated = min(demand, supply); pending = demand − allocated; available = supply − allocated.
    Containers are `container_gib` each (config.default_container_memory_mb), counts rounded up.
    ContainerPendingRatio = pending / allocated containers (= pending containers when none is allocated).
    Applications are `app_gib` each: apps = ⌈demand/app_gib⌉, running = ⌈allocated/app_gib⌉ of them, the rest
    pending; demand below `idle_below_gib` means no application and IsIdle = 1.
    """
    allocated = demand_gib if demand_gib < supply_gib else supply_gib
    pending = demand_gib - allocated
    available = supply_gib - allocated
    idle = demand_gib < p.idle_below_gib
    c_alloc = math.ceil(allocated / container_gib - 1e-9) if allocated > 0 else 0
    c_pend = math.ceil(pending / container_gib - 1e-9) if pending > 1e-9 else 0
    ratio = (c_pend / c_alloc) if c_alloc else float(c_pend)
    if idle:
        apps_running = apps_pending = 0
    else:
        apps = math.ceil(demand_gib / p.app_gib - 1e-9)
        apps_running = min(apps, math.ceil(allocated / p.app_gib - 1e-9))
        apps_pending = apps - apps_running
    return EmrSample(
        yarn_memory_available_pct=100.0 * available / supply_gib if supply_gib > 0 else 0.0,
        memory_total_mb=supply_gib * 1024.0,
        memory_allocated_mb=allocated * 1024.0,
        memory_available_mb=available * 1024.0,
        container_pending=float(c_pend),
        container_allocated=float(c_alloc),
        container_pending_ratio=ratio,
        apps_running=float(apps_running),
        apps_pending=float(apps_pending),
        is_idle=1.0 if idle else 0.0,
        total_load=p.total_load_per_gib * allocated,
    )


def heap_used_pct(demand_gib: float, supply_gib: float, p: SimParams) -> float | None:
    """Executor heap used %: `heap_used_pct_when_fed` while demand fits; under pressure the running executors
    hold the work that does not fit as well, so it grows with demand/allocated, capped at `heap_used_pct_max`.
    None when no executor runs."""
    allocated = min(demand_gib, supply_gib)
    if allocated <= 0 or demand_gib < p.idle_below_gib:
        return None
    return min(p.heap_used_pct_max, p.heap_used_pct_when_fed * demand_gib / allocated)


def heap_signals(demand_gib: float, supply_gib: float, *, container_gib: float, p: SimParams) -> HeapSample:
    """The heap agent's sums: max = allocated memory × heap_fraction; used = max × used %; one executor JVM
    per allocated container."""
    pct = heap_used_pct(demand_gib, supply_gib, p)
    needed = None
    if p.dynamic_allocation and demand_gib >= p.idle_below_gib:
        needed = float(math.ceil(demand_gib / container_gib - 1e-9))
    if pct is None:
        return HeapSample(0.0, 0.0, None, 0.0, needed, needed)
    allocated = min(demand_gib, supply_gib)
    max_bytes = allocated * p.heap_fraction * GIB
    # positional (the fields' order, named on each line): a NamedTuple built with keywords costs 4 times as
    # much, and one is made every simulated minute
    return HeapSample(
        max_bytes * pct / 100.0,  # used_bytes
        max_bytes,  # max_bytes
        pct,  # used_pct
        float(math.ceil(allocated / container_gib - 1e-9)),  # jvm_count
        needed,  # executors_needed
        needed,  # executors_target
    )


def yarn_signals(
    demand_gib: float,
    supply_lo_gib: float,
    supply_hi_gib: float,
    *,
    container_gib: float,
    p: SimParams,
    allocated_avg_gib: float | None = None,
) -> YarnSample:
    """The YARN ResourceManager's metrics over one minute in which `demand_gib` is wanted and the usable
    memory ranged over [supply_lo_gib, supply_hi_gib] (nodes came or went within the minute).

    The same arithmetic as `emr_signals` (allocated = min(demand, supply), pending = demand − allocated,
    containers of `container_gib`, applications of `app_gib`), taken at the supply that makes each metric's
    statistic extreme: the agent publishes the Maximum of its 10 s polls (Minimum for available memory), and
    pending work is largest, free room smallest, when supply is lowest; allocated memory, total memory and
    running applications are largest when it is highest. The extremes of the continuous supply stand for
    those of the polls. Allocated and pending memory are read with Average instead (see names.py: their
    Maxima come from different polls, and added they count a minute's newly allocated memory twice):
    `allocated_avg_gib` is the minute's time-weighted allocated memory (default: at the lowest supply), and
    pending is the demand less it.
    """
    alloc_lo = demand_gib if demand_gib < supply_lo_gib else supply_lo_gib
    alloc_hi = demand_gib if demand_gib < supply_hi_gib else supply_hi_gib
    alloc_avg = alloc_lo if allocated_avg_gib is None else allocated_avg_gib
    pending = demand_gib - alloc_lo
    c_pend = math.ceil(pending / container_gib - 1e-9) if pending > 1e-9 else 0
    if demand_gib < p.idle_below_gib:
        apps_running = apps_pending = 0
    else:
        apps = math.ceil(demand_gib / p.app_gib - 1e-9)
        apps_pending = apps - min(apps, math.ceil(alloc_lo / p.app_gib - 1e-9))
        apps_running = min(apps, math.ceil(alloc_hi / p.app_gib - 1e-9))
    # memory waits only if the supply fell short of the demand within the minute; otherwise the time-weighted
    # allocation is the demand itself, up to float rounding, and the residue (±1e-10 MB) must not read as
    # pending memory: the yarn-pending-memory alarm fires above 0 MB (YARN counts whole MB)
    pending_avg = demand_gib - alloc_avg if demand_gib > supply_lo_gib else 0.0
    return YarnSample(  # positional, as in heap_signals: one every simulated minute
        pending_avg * 1024.0,  # pending_memory_mb
        alloc_avg * 1024.0,  # allocated_memory_mb
        (supply_lo_gib - alloc_lo) * 1024.0,  # available_memory_mb
        supply_hi_gib * 1024.0,  # total_memory_mb
        float(c_pend),  # containers_pending
        float(apps_pending),  # apps_pending
        float(apps_running),  # apps_running
    )
