"""Every Protocol the use cases need from the outside world. Adapters (AWS), the in-memory set (memory/) and
the replay's simulation implement them; the use cases and the handlers only see these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sparkscale.policy.model import Cluster, Decision, GroupTarget, MetricsSnapshot, ScalerState

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


class CapacityWriter(Protocol):
    def resize(self, cluster_id: str, changes: Sequence[GroupTarget]) -> None:
        """ModifyInstanceGroups on TASK groups only.

        Raises GroupBusy / Throttled / InvalidRequest / ClusterGone."""
        ...


class PriceSource(Protocol):
    def usd_per_hour(self, cluster: Cluster, now: datetime) -> Mapping[str, float]:
        """Price of one node-hour per TASK group id (spot price for SPOT groups, on-demand otherwise)."""
        ...


class StateStore(Protocol):
    def acquire_lease(self, cluster_id: str, owner: str, now: datetime, ttl_s: int) -> bool: ...

    def release_lease(self, cluster_id: str, owner: str) -> None: ...

    def load_state(self, cluster_id: str) -> ScalerState: ...

    def save(self, cluster_id: str, state: ScalerState, decision: Decision, now: datetime) -> None:
        """Persist the new state and an audit item (with TTL) for the decision."""
        ...


@runtime_checkable
class CapacityErrorRecorder(Protocol):
    """Optional on a StateStore (EMR-EVENTS addition): record that EMR reported a TASK group lacks capacity.

    Checked with isinstance(ports.state, CapacityErrorRecorder): a store without it (the replay's) simply
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
    one bucket at a time. Checked with isinstance(ports.state, DemandHistoryStore): without it the forecast
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
