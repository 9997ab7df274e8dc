"""Typed, frozen inputs and outputs of the policy. Pure data: no I/O, no clock, no logging.

The adapters build these from AWS responses; the replay builds them from its simulation; the policy reads
them. All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from sparkscale.policy.reasons import Reason, ReasonCode

if TYPE_CHECKING:
    from sparkscale.policy.fleet import InstanceFleet

_T = TypeVar("_T")


class Role(StrEnum):
    MASTER = "MASTER"
    CORE = "CORE"
    TASK = "TASK"


class Market(StrEnum):
    SPOT = "SPOT"
    ON_DEMAND = "ON_DEMAND"


class GroupStatus(StrEnum):
    """EMR InstanceGroupState."""

    PROVISIONING = "PROVISIONING"
    BOOTSTRAPPING = "BOOTSTRAPPING"
    RUNNING = "RUNNING"
    RECONFIGURING = "RECONFIGURING"
    RESIZING = "RESIZING"
    SUSPENDED = "SUSPENDED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    ARRESTED = "ARRESTED"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    ENDED = "ENDED"


class ClusterState(StrEnum):
    STARTING = "STARTING"
    BOOTSTRAPPING = "BOOTSTRAPPING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    TERMINATED_WITH_ERRORS = "TERMINATED_WITH_ERRORS"

    @property
    def is_active(self) -> bool:
        return self in (ClusterState.RUNNING, ClusterState.WAITING)

    @property
    def is_gone(self) -> bool:
        return self in (
            ClusterState.TERMINATING,
            ClusterState.TERMINATED,
            ClusterState.TERMINATED_WITH_ERRORS,
        )


@dataclass(frozen=True, slots=True)
class InstanceGroup:
    id: str  # ig-…
    name: str
    role: Role
    market: Market
    instance_type: str
    memory_gib: float  # instance memory per node (not the YARN share)
    vcpu: int
    requested: int  # RequestedInstanceCount: what EMR is asked to have (includes in-flight nodes)
    running: int  # RunningInstanceCount
    status: GroupStatus
    usd_per_hour: float  # price of one node-hour (spot price for SPOT, on-demand price otherwise)
    status_since: datetime | None = None  # when the group entered `status` (fallback timeouts)
    # set for one market of an instance fleet (policy/fleet.py): then a "node" is one capacity unit
    fleet_id: str | None = None

    @property
    def is_task(self) -> bool:
        return self.role is Role.TASK


@dataclass(frozen=True, slots=True)
class Cluster:
    id: str  # j-…
    name: str
    state: ClusterState
    groups: tuple[InstanceGroup, ...]
    availability_zone: str | None = None
    # the cluster's instance fleets as read (policy/fleet.py); their markets are in `groups` as unit groups
    fleets: tuple[InstanceFleet, ...] = ()
    # derived once (the policy reads it many times per decision); not part of equality or the repr
    _task_groups: tuple[InstanceGroup, ...] = field(init=False, repr=False, compare=False, default=())
    # what `derived` computed from this value, by key; not part of equality or the repr
    _derived: dict[Hashable, object] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_task_groups", tuple(g for g in self.groups if g.role is Role.TASK))

    @property
    def task_groups(self) -> tuple[InstanceGroup, ...]:
        return self._task_groups

    def derived(self, key: Hashable, compute: Callable[[Cluster], _T]) -> _T:
        """compute(self), computed on first use and kept: a Cluster is immutable, and the replay evaluates the
        same value until a group changes. `key` names the value and whatever else it depends on."""
        try:
            return cast(_T, self._derived[key])
        except KeyError:
            value = self._derived[key] = compute(self)
            return value

    def derived_for(self, key: Hashable, setting: object, compute: Callable[[Cluster], _T]) -> _T:
        """`derived` for a value that depends on `setting` too (a Config): one slot per key, holding the value
        for the last `setting` asked with, compared by identity (a Config is immutable, and the same one is
        passed to every evaluation); another `setting` computes it again and takes the slot."""
        slot = self._derived.get(key)
        if slot is not None:
            held, value = cast(tuple[object, _T], slot)
            if held is setting:
                return value
        value = compute(self)
        self._derived[key] = (setting, value)
        return value

    @property
    def unchanged_targets(self) -> tuple[GroupTarget, ...]:
        """Every TASK group at its requested count: the targets of a hold."""
        return self.derived("unchanged_targets", _unchanged_targets)

    @property
    def requested_usd_per_hour(self) -> float:
        """USD per hour of the TASK nodes requested now, summed in group order."""
        return self.derived("requested_usd_per_hour", _requested_usd_per_hour)

    def group(self, group_id: str) -> InstanceGroup | None:
        return next((g for g in self.groups if g.id == group_id), None)


def _unchanged_targets(cluster: Cluster) -> tuple[GroupTarget, ...]:
    return tuple(
        GroupTarget(g.id, g.name, g.instance_type, g.market, g.requested, g.requested, g.usd_per_hour)
        for g in cluster.task_groups
    )


def _requested_usd_per_hour(cluster: Cluster) -> float:
    return sum(g.requested * g.usd_per_hour for g in cluster.task_groups)


class SignalSource(StrEnum):
    """Who publishes a signal, and so how old its datapoints may be (signals.max_age_s)."""

    EMR = "emr"  # AWS/ElasticMapReduce, 300 s, ~2 minutes late: emr_metric_max_age_s
    HEAP_AGENT = "heap_agent"  # the agent's Spark metrics (Sparkscale/SparkHeap, 60 s): heap_metric_max_age_s
    YARN_COLLECTOR = "yarn_collector"  # the agent's RM poll (Sparkscale/Yarn, 60 s): yarn_metric_max_age_s
    # the agent's Spark streaming metrics (Sparkscale/SparkStreaming, 60 s): streaming_metric_max_age_s
    STREAMING = "streaming"
    KINESIS = "kinesis"  # AWS/Kinesis GetRecords.IteratorAgeMilliseconds (60 s): streaming_metric_max_age_s


class Signal(StrEnum):
    """Every metric the policy may read. Values are the CloudWatch metric names where one exists.

    New members go at the END: the enum order breaks ties between needs and orders the ignored-metric reasons
    (a member inserted in the middle would change decisions of equal needs)."""

    TOTAL_LOAD = "TotalLoad"
    YARN_MEMORY_AVAILABLE_PCT = "YARNMemoryAvailablePercentage"
    MEMORY_TOTAL_MB = "MemoryTotalMB"
    MEMORY_ALLOCATED_MB = "MemoryAllocatedMB"
    MEMORY_AVAILABLE_MB = "MemoryAvailableMB"
    CONTAINER_PENDING = "ContainerPending"
    CONTAINER_ALLOCATED = "ContainerAllocated"
    APPS_RUNNING = "AppsRunning"
    APPS_PENDING = "AppsPending"
    IS_IDLE = "IsIdle"
    HEAP_USED_BYTES = "JvmHeapUsed"  # executors, cluster sum
    HEAP_MAX_BYTES = "JvmHeapMax"  # executors, cluster sum
    HEAP_USED_PCT = "JvmHeapUsedPercent"  # executors, cluster-wide used/max
    JVM_COUNT = "JvmCount"
    # the YARN ResourceManager, polled on the master node by the agent (names.YARN_*): MB are YARN's own
    YARN_PENDING_MEMORY_MB = "YarnPendingMemoryMB"
    YARN_ALLOCATED_MEMORY_MB = "YarnAllocatedMemoryMB"
    YARN_AVAILABLE_MEMORY_MB = "YarnAvailableMemoryMB"
    YARN_TOTAL_MEMORY_MB = "YarnTotalMemoryMB"
    YARN_CONTAINERS_PENDING = "YarnContainersPending"
    YARN_APPS_PENDING = "YarnAppsPending"
    YARN_APPS_RUNNING = "YarnAppsRunning"
    # Spark dynamic allocation, from the drivers through the heap agent (only with dynamic allocation on)
    SPARK_EXECUTORS_NEEDED = "SparkExecutorsNeeded"  # executors the running apps could use now, summed
    SPARK_EXECUTORS_TARGET = "SparkExecutorsTarget"  # executors the apps ask YARN for now, summed
    # Spark streaming, from the drivers through the agent (names.STREAMING_*; only with streaming configured)
    STREAMING_INPUT_ROWS_PER_S = "StreamingInputRowsPerSecond"  # Structured Streaming, summed over queries
    STREAMING_PROCESSED_ROWS_PER_S = "StreamingProcessedRowsPerSecond"  # summed over queries
    STREAMING_BATCH_LATENCY_MS = "StreamingBatchLatencyMs"  # the slowest query's last batch
    STREAMING_SCHEDULING_DELAY_MS = "StreamingSchedulingDelayMs"  # DStreams: the longest scheduling delay
    STREAMING_WAITING_BATCHES = "StreamingWaitingBatches"  # DStreams: batches waiting, summed
    # Kinesis: GetRecords.IteratorAgeMilliseconds, the most of the cluster's streams (config.streams)
    KINESIS_ITERATOR_AGE_MS = "GetRecords.IteratorAgeMilliseconds"

    @property
    def source(self) -> SignalSource:
        return _SOURCE.get(self, SignalSource.EMR)


_SOURCE: dict[Signal, SignalSource] = {
    **{
        s: SignalSource.HEAP_AGENT
        for s in (
            Signal.HEAP_USED_BYTES,
            Signal.HEAP_MAX_BYTES,
            Signal.HEAP_USED_PCT,
            Signal.JVM_COUNT,
            Signal.SPARK_EXECUTORS_NEEDED,
            Signal.SPARK_EXECUTORS_TARGET,
        )
    },
    **{
        s: SignalSource.STREAMING
        for s in (
            Signal.STREAMING_INPUT_ROWS_PER_S,
            Signal.STREAMING_PROCESSED_ROWS_PER_S,
            Signal.STREAMING_BATCH_LATENCY_MS,
            Signal.STREAMING_SCHEDULING_DELAY_MS,
            Signal.STREAMING_WAITING_BATCHES,
        )
    },
    Signal.KINESIS_ITERATOR_AGE_MS: SignalSource.KINESIS,
    **{
        s: SignalSource.YARN_COLLECTOR
        for s in (
            Signal.YARN_PENDING_MEMORY_MB,
            Signal.YARN_ALLOCATED_MEMORY_MB,
            Signal.YARN_AVAILABLE_MEMORY_MB,
            Signal.YARN_TOTAL_MEMORY_MB,
            Signal.YARN_CONTAINERS_PENDING,
            Signal.YARN_APPS_PENDING,
            Signal.YARN_APPS_RUNNING,
        )
    },
}


@dataclass(frozen=True, slots=True)
class Sample:
    value: float
    at: datetime  # timestamp of the datapoint (not of the read)


class SampleBatch(NamedTuple):
    """Datapoints that share one timestamp: what one publisher sent at once (an EMR datapoint of every
    metric, a heap agent's or the YARN collector's minute)."""

    at: datetime
    values: Mapping[Signal, float]  # never changed once in a snapshot


class BatchSamples(Mapping[Signal, Sample]):
    """MetricsSnapshot.samples of a snapshot made of batches (`MetricsSnapshot.of_batches`): read-only, no
    signal in two batches, each Sample made when it is read. The policy reads the batches themselves
    (signals.read_signals): the replay builds a snapshot every simulated minute or two and reads a few of its
    Samples only."""

    __slots__ = ("batches",)

    def __init__(self, batches: tuple[SampleBatch, ...]) -> None:
        self.batches = batches

    def __getitem__(self, signal: Signal) -> Sample:
        for at, values in self.batches:
            if signal in values:
                return Sample(values[signal], at)
        raise KeyError(signal)

    def at(self, signal: Signal) -> datetime:
        """self[signal].at, without making the Sample."""
        for at, values in self.batches:
            if signal in values:
                return at
        raise KeyError(signal)

    def __iter__(self) -> Iterator[Signal]:
        for batch in self.batches:
            yield from batch.values

    def __len__(self) -> int:
        return sum(len(batch.values) for batch in self.batches)

    def __contains__(self, signal: object) -> bool:
        return any(signal in batch.values for batch in self.batches)

    def __repr__(self) -> str:
        return repr(dict(self))


def _freeze(m: Mapping[Signal, Sample]) -> Mapping[Signal, Sample]:
    return m if isinstance(m, BatchSamples) else MappingProxyType(dict(m))


@dataclass(frozen=True)
class MetricsSnapshot:
    """The latest datapoint of each signal that had one. A signal with no datapoint is simply absent."""

    samples: Mapping[Signal, Sample] = field(default_factory=dict)
    # recent datapoints of the few signals whose trend the policy reads (the Kinesis iterator age: is it
    # rising?), oldest first; empty for every other signal and for a cluster without streaming
    history: Mapping[Signal, tuple[Sample, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", _freeze(self.samples))
        if self.history:
            object.__setattr__(self, "history", MappingProxyType(dict(self.history)))

    @classmethod
    def of_batches(cls, batches: Sequence[SampleBatch]) -> MetricsSnapshot:
        """A snapshot of batches of datapoints, no signal in two of them (ValueError)."""
        batches = tuple(batches)
        if len(batches) > 1 and len(set().union(*[b.values for b in batches])) != sum(
            len(b.values) for b in batches
        ):
            raise ValueError("a signal is in two batches of one snapshot")
        return cls(BatchSamples(batches))

    @property
    def batches(self) -> tuple[SampleBatch, ...]:
        """The samples by datapoint time, in the order of their first sample."""
        samples = self.samples
        if isinstance(samples, BatchSamples):
            return samples.batches
        by_time: dict[datetime, dict[Signal, float]] = {}
        for signal, sample in samples.items():
            by_time.setdefault(sample.at, {})[signal] = sample.value
        return tuple([SampleBatch(at, values) for at, values in by_time.items()])

    def get(self, signal: Signal) -> Sample | None:
        return self.samples.get(signal)


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: datetime
    task_nodes: int  # total TASK nodes the estimate asked for at that time (before scale-in stabilization)
    task_memory_gib: float | None = (
        None  # total usable TASK memory the estimate asked for (what stabilization uses)
    )


class DemandSample(NamedTuple):
    """One observation of demand: the usable GiB the estimate said the cluster should have (the driving need's
    desired memory), at the time of the datapoint that drove it (not of the read)."""

    at: datetime
    gib: float


class PendingScaleOut(NamedTuple):
    """A scale-out the scaler requested and is waiting for: when, and the TASK nodes requested in all."""

    at: datetime
    task_nodes: int


@dataclass(frozen=True, slots=True)
class Forecast:
    """The demand expected when nodes requested now would be usable (policy/forecast.py). GiB of usable
    memory, the estimate's units; seconds."""

    target_at: datetime  # now + lead time: when nodes requested now would be usable
    lead_time_s: float  # measured request -> usable delay (forecast.DEFAULT_LEAD_S until measured)
    signal_age_s: float  # age of the datapoint that drove the demand
    current_gib: float  # the demand now (the driving need's desired memory)
    trend_gib: float  # the robust trend's projection to target_at
    slope_gib_per_s: float  # the trend's slope (clipped)
    seasonal_gib: float | None  # one day / one week earlier at target_at, when credible (else None)
    value_gib: float  # the forecast: the combined rule (forecast.combine)
    method: str  # "current" (too little history), "trend", "seasonal" (it won the max)

    @property
    def horizon_s(self) -> float:
        return self.signal_age_s + self.lead_time_s


@dataclass(frozen=True)
class ScalerState:
    """What the scaler remembers between invocations (persisted per cluster by the StateStore)."""

    last_scale_out_at: datetime | None = None
    last_scale_in_at: datetime | None = None
    last_active_at: datetime | None = None  # last time an application ran or waited
    recommendations: tuple[Recommendation, ...] = ()  # trailing window, oldest first
    # group id -> when its requested > running shortfall began (spot fallback)
    shortfall_since: Mapping[str, datetime] = field(default_factory=dict)
    # group ids EMR reported as lacking capacity, with when (spot fallback), cleared on recovery
    capacity_errors: Mapping[str, datetime] = field(default_factory=dict)
    # group id -> its running count when its shortfall clock last (re)started: a group that delivers nodes
    # since restarts the clock (progress), one that does not keeps it even when it is given more nodes
    shortfall_running: Mapping[str, int] = field(default_factory=dict)
    # YARN memory per GiB of usable memory derived from the cluster (MemoryTotalMB / running CORE+TASK nodes
    # x memory x usable_memory_fraction), last measured on a settled cluster; None: not measured yet (1.0)
    yarn_memory_scale: float | None = None
    # when the executors' heap went beyond its deadband (heap_used_target_pct x (1 + deadband_pct), the heap
    # alarm's threshold) and has stayed there since; None while it is not
    heap_pressure_since: datetime | None = None
    # --- forecast (forecast_mode observe or act; empty with off) ---
    # the recent demand, oldest first, within forecast.TREND_WINDOW_S of the newest (the trend's input)
    demand_samples: tuple[DemandSample, ...] = ()
    # the last forecast.LEAD_SAMPLES measured request -> usable delays (s), oldest first: their median is
    # the lead time
    lead_times_s: tuple[float, ...] = ()
    # the latest scale-out requested and not yet running (its delay is measured when it runs)
    pending_scale_out: PendingScaleOut | None = None
    # --- bursts (policy/burst.py; burst_first_step_nodes > 0, else empty) ---
    burst_levels: tuple[BurstLevel, ...] = ()  # the bursts going on, oldest (lowest) first
    burst_short: bool = False  # the last evaluation was short of memory (a new shortfall starts a burst)
    burst_out_of_memory: bool = False  # ... and its demand was more than the capacity counted
    burst_durations_s: tuple[float, ...] = ()  # the last burst.HISTORY bursts' durations, oldest first


class BurstLevel(NamedTuple):
    """A burst going on (policy/burst.py): since when, the capacity counted when it began (it goes on while
    the demand needs more than that), and its largest need when its last step was asked for (0: not known, a
    state stored before it was kept)."""

    since: datetime
    base_gib: float
    need_gib: float = 0.0


class BurstReading(NamedTuple):
    """What one evaluation saw of a burst (policy/burst.py)."""

    short: bool  # a signal beyond its deadband asks for more than the capacity counted
    out_of_memory: bool  # the largest need, at the target's fill, is more than the capacity counted
    demand_gib: float  # the largest need
    counted_gib: float  # the capacity counted


@dataclass(frozen=True, slots=True)
class Observation:
    """What one evaluation read from the metrics and the cluster that next_state needs as well: `decide`
    derives it anyway, and next_state reuses it instead of reading the same snapshot a second time."""

    active: bool | None  # an application runs or waits (signals.active_from); None: unknown
    heap_used_pct: float | None  # the executors' fresh heap used % (signals.heap_used_pct)
    yarn_memory_scale: float | None  # measured now (estimate.yarn_memory_scale); None: not measurable now
    demand: DemandSample | None = None  # the demand observed (forecast_mode observe or act), else None
    burst: BurstReading | None = None  # what burst.next_burst follows (burst_first_step_nodes > 0), else None


class Direction(StrEnum):
    OUT = "scale_out"
    IN = "scale_in"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class GroupTarget:
    group_id: str
    group_name: str
    instance_type: str
    market: Market
    current: int  # requested count the decision started from
    target: int
    usd_per_hour_per_node: float

    @property
    def changed(self) -> bool:
        return self.target != self.current


@dataclass(frozen=True)
class Decision:
    cluster_id: str
    at: datetime
    direction: Direction
    targets: tuple[GroupTarget, ...]  # every TASK group the decision considered, changed or not
    reasons: tuple[Reason, ...]  # the first drove the direction (for a hold: why it holds)
    dry_run: bool
    driving_signal: Signal | None = None
    driving_value: float | None = None
    desired_task_nodes: int | None = None  # the estimate before bounds/steps/cooldowns
    at_max_under_pressure: bool = False
    usd_per_hour_before: float = 0.0
    usd_per_hour_after: float = 0.0
    # usable TASK memory (GiB, requested basis) the estimate asked for, before bounds/steps/cooldowns
    desired_task_memory_gib: float | None = None
    # TASK group ids that got no new capacity (spot fallback) and why, for the operator notice
    fallback_groups: tuple[str, ...] = ()
    # TASK group ids given the unmet part: the next cheapest SPOT group, or ON_DEMAND when SPOT cannot deliver
    fallback_to: tuple[str, ...] = ()
    # the demand expected when nodes requested now would be usable (forecast_mode observe or act; else None)
    forecast: Forecast | None = None

    @property
    def reason_texts(self) -> tuple[str, ...]:
        """The reasons' sentences, in order (for logs, notices and JSON)."""
        return tuple([r.text for r in self.reasons])

    @property
    def reason_codes(self) -> tuple[ReasonCode, ...]:
        return tuple([r.code for r in self.reasons])

    @property
    def changes(self) -> tuple[GroupTarget, ...]:
        return tuple(t for t in self.targets if t.changed)

    @property
    def is_action(self) -> bool:
        return self.direction is not Direction.HOLD and bool(self.changes)
