"""Every Protocol the use cases need from the outside world. Adapters (AWS), the in-memory set (memory/) and
the replay's simulation implement them; the use cases and the handlers only see these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from sparkscale.policy.model import Cluster, Decision, GroupTarget, MetricsSnapshot, ScalerState
from sparkscale.policy.node_choice import ClusterInstance, InstanceShrink, NodeReport

# supports(): the answer per port object, kept with the object so that a reused id() cannot mislead it
_SUPPORTS: dict[tuple[int, type], tuple[object, bool]] = {}
_SUPPORTS_MAX: Final = 256


def supports(port: object, protocol: type) -> bool:
    """isinstance(port, protocol) for a @runtime_checkable Protocol, remembered per port object: the check
    walks the protocol's members on every call (typing's _get_protocol_attrs), and the use cases ask it of
    the same long-lived ports on every evaluation (an optional capability: write-ahead, node reports, ...).
    A bool, not a TypeGuard (mypy accepts no Protocol class as a type[T] argument): callers cast."""
    key = (id(port), protocol)
    hit = _SUPPORTS.get(key)
    if hit is not None and hit[0] is port:
        return hit[1]
    answer = isinstance(port, protocol)
    if len(_SUPPORTS) >= _SUPPORTS_MAX:
        _SUPPORTS.clear()
    _SUPPORTS[key] = (port, answer)
    return answer


if TYPE_CHECKING:
    from sparkscale.alarms import AlarmSpec


class ClusterReader(Protocol):
    def read_cluster(self, cluster_id: str) -> Cluster:
        """DescribeCluster + ListInstanceGroups. Raises ClusterGone for a terminated or unknown cluster."""
        ...


class MetricsSource(Protocol):
    def read_metrics(self, cluster_id: str, now: datetime) -> MetricsSnapshot:
        """Every configured signal's latest datapoint, in one GetMetricData call."""
        ...


@runtime_checkable
class StreamingMetricsSource(Protocol):
    """A MetricsSource that can also read a streaming cluster's metrics (checked with supports(): the
    replay's and the in-memory sources may not)."""

    def read_streaming_metrics(
        self, cluster_id: str, now: datetime, streams: Sequence[str]
    ) -> MetricsSnapshot:
        """read_metrics, plus Spark's streaming metrics and the Kinesis iterator age of `streams` (with its
        recent minutes in MetricsSnapshot.history), in the same one GetMetricData call."""
        ...


class CapacityWriter(Protocol):
    def resize(self, cluster_id: str, changes: Sequence[GroupTarget]) -> None:
        """ModifyInstanceGroups on TASK groups only.

        Raises GroupBusy / Throttled / InvalidRequest / ClusterGone."""
        ...


@runtime_checkable
class ShrinkingCapacityWriter(Protocol):
    """Optional on a CapacityWriter (safe scale-in): resize, telling EMR which instances of a shrinking group
    to protect and which to terminate (ModifyInstanceGroups' ShrinkPolicy.InstanceResizePolicy)."""

    def resize_shrinking(
        self, cluster_id: str, changes: Sequence[GroupTarget], shrinks: Mapping[str, InstanceShrink]
    ) -> None: ...


@runtime_checkable
class InstanceLister(Protocol):
    """Optional on a ClusterReader (safe scale-in): the cluster's TASK instances (ListInstances)."""

    def list_instances(self, cluster_id: str) -> Sequence[ClusterInstance]: ...


@runtime_checkable
class NodeReportSource(Protocol):
    """Optional on a StateStore (safe scale-in): the latest YARN node report the master-node agent wrote."""

    def load_node_report(self, cluster_id: str) -> NodeReport | None:
        """The report, or None when there is none (or it cannot be read: a bad report is never a failure)."""
        ...


class PriceSource(Protocol):
    def usd_per_hour(self, cluster: Cluster, now: datetime) -> Mapping[str, float]:
        """Price of one node-hour per TASK group id (spot price for SPOT groups, on-demand otherwise)."""
        ...


@dataclass(frozen=True, slots=True)
class PauseMark:
    """An operator's pause of one cluster: it is still evaluated, its decisions are recorded and notified,
    but nothing is resized (scale: a dry run; spot events: no node moved). The one pause mechanism:
    `sparkscale pause` sets it, `sparkscale resume` clears it, and anything else that pauses a cluster (a
    tag) sets the same mark through StateStore.save_pause."""

    at: datetime
    by: str  # who paused it: "cli:<user>", a tag, ...
    why: str = ""


class StateStore(Protocol):
    def acquire_lease(self, cluster_id: str, owner: str, now: datetime, ttl_s: int) -> bool: ...

    def release_lease(self, cluster_id: str, owner: str) -> None: ...

    def load_state(self, cluster_id: str) -> ScalerState: ...

    def save(self, cluster_id: str, state: ScalerState, decision: Decision, now: datetime) -> None:
        """Persist the new state and an audit item (with TTL) for the decision."""
        ...

    def load_pause(self, cluster_id: str) -> PauseMark | None:
        """The cluster's pause mark; None when it is not paused."""
        ...

    def save_pause(self, cluster_id: str, mark: PauseMark | None) -> None:
        """Pause the cluster with `mark`, or resume it (None). Idempotent: the last call wins."""
        ...


@runtime_checkable
class CapacityErrorRecorder(Protocol):
    """Optional on a StateStore (EMR-EVENTS addition): record that EMR reported a TASK group lacks capacity.

    Checked with supports(ports.state, CapacityErrorRecorder): a store without it (the replay's) simply
    cannot take EMR capacity events. Call it under the cluster's lease."""

    def record_capacity_error(self, cluster_id: str, group_id: str, at: datetime) -> bool:
        """Set ScalerState.capacity_errors[group_id] to `at` (or keep a later time already recorded) in the
        persisted state, nothing else. True when the group had no capacity error recorded before."""
        ...


@runtime_checkable
class DemandHistoryStore(Protocol):
    """Optional on a StateStore (forecast): the demand's 5-minute peak buckets, kept at most a week and a day
    (policy.forecast.HISTORY_KEEP_S, a TTL in DynamoDB), for the seasonal forecast. Not in ScalerState: a
    week is 2016 buckets, read only where the forecast looks (policy.forecast.history_ranges) and written
    one bucket at a time. Checked with supports(ports.state, DemandHistoryStore): without it the forecast
    is the trend alone."""

    def load_demand(
        self, cluster_id: str, ranges: Sequence[tuple[datetime, datetime]]
    ) -> Mapping[datetime, float]:
        """bucket start -> peak GiB, for the buckets recorded within each (first, last) range (inclusive)."""
        ...

    def record_demand(self, cluster_id: str, bucket: datetime, peak_gib: float, now: datetime) -> None:
        """Raise the bucket's peak to `peak_gib` (a larger peak already recorded is kept)."""
        ...


@dataclass(frozen=True, slots=True)
class Notice:
    """One operator message: an action, a failure, or 'at max and still under pressure'."""

    kind: str  # one of notices.KINDS
    cluster_id: str
    subject: str  # < 100 characters (SNS email subject limit)
    body: str  # readable in an email
    footer: str = ""  # "sparkscale | cluster J | kind K": what a mail filter can match

    @property
    def message(self) -> str:
        """The whole email text: the body, then the footer."""
        return f"{self.body}\n\n{self.footer}" if self.footer else self.body


@dataclass(frozen=True)
class Intent:
    """A resize written down BEFORE ModifyInstanceGroups (write-ahead), finalized after it (WRITE-AHEAD
    addition). While it exists the resize may or may not have happened: the next use case under the
    cluster's lease settles it against what EMR reports (usecases/shell.py, Shell.settle).

    `changes` are the groups it resizes (group id, the requested count before, the target). A scale intent
    carries the decision to audit and the state to save (its cooldown) once applied; a spot intent carries
    `key`, the ledger key that marks its event handled (for `key_ttl_s`). `notice` goes out once, after the
    record. `recorded`: the state, audit and key are written, only the notice and the removal remain."""

    id: str
    kind: str  # INTENT_SCALE or INTENT_SPOT
    at: datetime
    owner: str
    changes: tuple[GroupTarget, ...]
    notice: Notice | None = None
    decision: Decision | None = None  # scale: the audit record
    state: ScalerState | None = None  # scale: the state saved with it (the cooldown)
    key: str = ""  # spot: the ledger key claimed when it is recorded
    key_ttl_s: int | None = None
    recorded: bool = False

    def applied_in(self, cluster: Cluster) -> bool:
        """True when EMR's requested counts are the intent's targets: the resize took effect."""
        requested = {g.id: g.requested for g in cluster.groups}
        return all(requested.get(t.group_id) == t.target for t in self.changes)


INTENT_SCALE: Final = "scale"
INTENT_SPOT: Final = "spot"


@runtime_checkable
class IntentStore(Protocol):
    """Optional on a StateStore (WRITE-AHEAD addition): one pending intent per cluster, in four primitives.
    Checked with supports(ports.state, IntentStore): without it a use case resizes without writing ahead
    (the replay's store has it too). Every call is made under the cluster's lease."""

    def load_intent(self, cluster_id: str) -> Intent | None:
        """The cluster's pending intent, if any (strongly consistent)."""
        ...

    def put_intent(self, cluster_id: str, intent: Intent) -> bool:
        """Write `intent` unless another is pending (then False: nothing written)."""
        ...

    def record_intent(self, cluster_id: str, intent: Intent, now: datetime) -> bool:
        """In one transaction: the intent's state and audit record (scale), its key claimed in the notice
        ledger (spot), and the intent marked recorded. False when it is no longer pending unrecorded (another
        invocation settled it): nothing written."""
        ...

    def clear_intent(self, cluster_id: str, intent_id: str) -> None:
        """Remove the intent `intent_id` (nothing when another or none is pending)."""
        ...


@dataclass(frozen=True, slots=True)
class SizeObservation:
    """What an evaluation saw of a cluster's TASK groups (or fleet units), kept with its state so that the
    reconcile schedule can leave a cluster at its minimum alone without reading EMR (usecases/fanout.py)."""

    at_minimum: bool  # every TASK group at its minimum (scale.needs_evaluation said no)
    resizing: bool  # a resize requested and not finished: a group not RUNNING, or running != requested
    observed_at: datetime

    @property
    def needs_evaluation(self) -> bool:
        return self.resizing or not self.at_minimum


@runtime_checkable
class SizeObservationStore(Protocol):
    """Optional on a StateStore (FAN-OUT addition): the last SizeObservation of each cluster, written with
    the state it goes with, and read for many clusters at once by the reconcile schedule. Checked with
    supports(ports.state, SizeObservationStore): without it the schedule queues every cluster. A resize
    recorded with `record_intent` marks the cluster resizing."""

    def save_observed(
        self,
        cluster_id: str,
        state: ScalerState,
        decision: Decision,
        now: datetime,
        observed: SizeObservation,
    ) -> None:
        """`save`, with what the evaluation saw, in the same write."""
        ...

    def record_observation(self, cluster_id: str, observed: SizeObservation) -> None:
        """The observation alone (a cluster the schedule's step found at its minimum and skipped)."""
        ...

    def observations(self, cluster_ids: Sequence[str]) -> Mapping[str, SizeObservation]:
        """The recorded observation of each cluster that has a readable one; the others are absent."""
        ...


@runtime_checkable
class AuditReader(Protocol):
    """The audit trail (the daily digest): the decisions a cluster recorded (records.decision_to_dict)."""

    def audit_since(
        self, cluster_id: str, since: datetime, *, limit: int = 1000
    ) -> Sequence[Mapping[str, Any]]:
        """The records saved at or after `since`, newest first, at most `limit`."""
        ...


class Notifier(Protocol):
    def notify(self, notice: Notice) -> None: ...


class NoticeLedger(Protocol):
    """Once-only marks per cluster (SHELL addition): 'cluster gone' is notified once and then the cluster is
    no longer evaluated; repeated failures and 'at max' are notified at most once per interval. Optional in
    Ports: without one, every such notice is sent every time and a gone cluster is re-read every time."""

    def claim(self, cluster_id: str, key: str, now: datetime, ttl_s: int | None) -> bool:
        """True for exactly one caller per (cluster, key) until `ttl_s` s after the claim (None: forever)."""
        ...

    def claimed_at(self, cluster_id: str, key: str, now: datetime) -> datetime | None:
        """When (cluster, key) was claimed, if that claim is still in force at `now`."""
        ...


@dataclass(frozen=True, slots=True)
class InstanceLocation:
    cluster_id: str
    group_id: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where an instance is, or why it is none of our business."""

    location: InstanceLocation | None
    reason: str = ""


class InstanceLocator(Protocol):
    """Which managed cluster and TASK group an EC2 instance belongs to (the spot-events use case)."""

    def locate(self, instance_id: str, managed_clusters: Sequence[str]) -> Lookup: ...


class AlarmReader(Protocol):
    """Which clusters have one of the stack's alarms in ALARM (the reconcile handler; SHELL addition)."""

    def clusters_in_alarm(self, prefix: str) -> Mapping[str, Sequence[str]]:
        """cluster id -> names of its alarms (names starting with `prefix`) that are in ALARM now."""
        ...


@dataclass(frozen=True)
class Ports:
    clusters: ClusterReader
    metrics: MetricsSource
    capacity: CapacityWriter
    state: StateStore
    notifier: Notifier
    prices: PriceSource | None = None
    ledger: NoticeLedger | None = None  # SHELL addition: once-only notices; the DynamoDB store is one


# --- clusters managed by tag (usecases/discovery.py) -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """DescribeCluster's view of one cluster for discovery (EMR's state-change events carry no tags)."""

    cluster_id: str
    name: str
    state: str  # EMR's cluster state: STARTING, ..., TERMINATED_WITH_ERRORS
    tags: Mapping[str, str]


class ClusterDirectory(Protocol):
    """Which EMR clusters exist, and their tags."""

    def active_clusters(self) -> Sequence[str]:
        """ListClusters in names.EMR_ACTIVE_STATES, every page."""
        ...

    def describe(self, cluster_id: str) -> ClusterInfo | None:
        """DescribeCluster; None when EMR does not know the cluster."""
        ...


@dataclass(frozen=True, slots=True)
class Registration:
    """A cluster managed because of its tag: the registry item in the state table."""

    cluster_id: str
    name: str
    profile: str  # "" for the base settings
    paused: bool  # the sparkscale:paused tag: decided on, never resized (dry run)
    since: datetime
    alarms: tuple[str, ...] = ()  # the alarms discovery created for it
    released_at: datetime | None = None  # no longer managed (terminated, or the tag removed)
    why: str = ""  # why it was released
    streams: tuple[
        str, ...
    ] = ()  # the Kinesis streams of its tag sparkscale:kinesis-streams (Config.streams)

    @property
    def active(self) -> bool:
        return self.released_at is None


class ClusterRegistry(Protocol):
    """The clusters managed by tag, kept in the state table (an item per cluster)."""

    def registrations(self, now: datetime) -> Mapping[str, Registration]:
        """cluster id -> its registration, managed or released (a released one until it expires)."""
        ...

    def register(self, registration: Registration, *, expires_at: datetime | None = None) -> None:
        """Create or replace the cluster's item (`expires_at`: when it may be deleted; None: never)."""
        ...


class AlarmWriter(Protocol):
    """The alarms discovery creates and deletes (PutMetricAlarm, DeleteAlarms, DescribeAlarms), paced to
    CloudWatch's rate."""

    def put_alarms(self, specs: Sequence[AlarmSpec]) -> None: ...

    def delete_alarms(self, alarm_names: Sequence[str]) -> None: ...

    def alarm_names(self, prefix: str) -> Sequence[str]:
        """The names of every alarm whose name starts with `prefix`."""
        ...


@dataclass(frozen=True)
class DiscoveryPorts:
    directory: ClusterDirectory
    alarms: AlarmWriter
    registry: ClusterRegistry
