"""Simulated adapters: `sparkscale.ports` Protocols over the replay's World, so that the real
`usecases.scale.run_once` (and `usecases.spot_events.handle_spot_event`) run unchanged on the simulation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sparkscale import names
from sparkscale.errors import ClusterGone, GroupBusy, InvalidRequest
from sparkscale.memory import CollectingNotifier, InMemoryStateStore
from sparkscale.policy.fleet import InstanceFleet
from sparkscale.policy.model import (
    BatchSamples,
    Cluster,
    ClusterState,
    GroupStatus,
    GroupTarget,
    InstanceGroup,
    Market,
    MetricsSnapshot,
    Role,
    Sample,
    SampleBatch,
    ScalerState,
    Signal,
)
from sparkscale.ports import InstanceLocation, Lookup, Ports

from sparkscale_tools.replay.cloudwatch_sim import MetricStream
from sparkscale_tools.replay.engine import GroupRuntime, World

_SIGNAL_BY_METRIC: dict[str, Signal] = {s.value: s for s in Signal}
# The YARN collector's metrics the policy reads: a stream no Signal reads is not looked at, so its datapoints
# cost nothing.
_YARN_READ = any(m in _SIGNAL_BY_METRIC for m in names.YARN_METRICS)
_TREND_SIGNALS = (Signal.KINESIS_ITERATOR_AGE_MS,)
# how many of their minutes: the real adapter's query window (adapters.cloudwatch, lookback_s=1200)
_HISTORY_MINUTES = 20  # MetricsSnapshot.history: the signals read as a trend
_NO_STATE = ScalerState()  # a cluster's state before its first save (immutable: one for every load)


class SimClusterReader:
    """DescribeCluster + ListInstanceGroups over the simulated groups (a Cluster value, rebuilt on change)."""

    def __init__(self, world: World) -> None:
        self._w = world
        self._cached: tuple[int, Cluster] | None = None
        self.calls = 0

    def read_cluster(self, cluster_id: str) -> Cluster:
        self.calls += 1
        w = self._w
        if cluster_id != w.cluster.cluster_id:
            raise ClusterGone(f"{cluster_id}: not the simulated cluster")
        if self._cached is not None and self._cached[0] == w.version:
            return self._cached[1]
        fleets = sim_fleets(w)
        groups = tuple(
            InstanceGroup(
                id=g.spec.id,
                name=g.spec.name,
                role=g.spec.role,
                market=g.spec.market,
                instance_type=g.spec.instance_type,
                memory_gib=g.spec.memory_gib,
                vcpu=g.spec.vcpu,
                requested=g.requested,
                running=g.running,
                status=g.status if g.spec.fleet_id is None else fleets[g.spec.fleet_id].status,
                usd_per_hour=g.price,
                status_since=w.dt(g.status_since),
                fleet_id=g.spec.fleet_id,
            )
            for g in w.groups
        )
        cluster = Cluster(
            id=w.cluster.cluster_id,
            name=w.cluster.name,
            state=ClusterState.RUNNING,
            groups=groups,
            availability_zone=w.cluster.availability_zone,
            fleets=tuple(fleets.values()),
        )
        self._cached = (w.version, cluster)
        return cluster


def sim_fleets(w: World) -> dict[str, InstanceFleet]:
    """The simulated instance fleets (none for a cluster of instance groups), by id: a fleet is RESIZING while
    either of its markets is."""
    markets: dict[str, dict[Market, GroupRuntime]] = {}
    for g in w.groups:
        if g.spec.fleet_id is not None:
            markets.setdefault(g.spec.fleet_id, {})[g.spec.market] = g
    out = {}
    for fid, by_market in markets.items():
        spot, od = by_market.get(Market.SPOT), by_market.get(Market.ON_DEMAND)
        anyone = spot or od
        assert anyone is not None
        busy = any(g.status is GroupStatus.RESIZING for g in by_market.values())
        out[fid] = InstanceFleet(
            id=fid,
            name=anyone.spec.name,
            role=anyone.spec.role,
            status=GroupStatus.RESIZING if busy else GroupStatus.RUNNING,
            instance_types=anyone.spec.fleet_types,
            target_on_demand=od.requested if od else 0,
            target_spot=spot.requested if spot else 0,
            provisioned_on_demand=od.running if od else 0,
            provisioned_spot=spot.running if spot else 0,
            spot_timeout_s=int(spot.spec.spot_timeout_s) if spot and spot.spec.spot_timeout_s else None,
        )
    return out


class SimMetricsSource:
    """The latest visible datapoint of every EMR, heap and YARN-collector metric (what one GetMetricData
    returns), as the policy's `Signal` whose value is the metric's name; a metric with no such Signal (yet) is
    left out, as the real adapter never queries it.

    Called on every invocation: the snapshot is rebuilt only when a datapoint became visible, from one batch
    per stream (MetricsSnapshot.of_batches: no Sample is made unless read), and only the batch of the stream
    that got it."""

    def __init__(self, world: World) -> None:
        self._w = world
        self._epoch = world.p.epoch
        self._cached: tuple[int, int, int, MetricsSnapshot] | None = None
        # (visible datapoints, the latest one's values by Signal; None when none is visible)
        self._emr: tuple[int, SampleBatch | None] = (0, None)
        self._heap: tuple[int, SampleBatch | None] = (0, None)
        self._yarn: tuple[int, SampleBatch | None] = (0, None)
        # the World's further streams (streaming_run: Spark streaming, Kinesis): (stream, visible, batch)
        self._extra: list[tuple[MetricStream, int, SampleBatch | None]] = [
            (s, 0, None) for s in world.extra_streams.values()
        ]
        # the recent datapoints of the signals whose trend the policy reads (the Kinesis iterator age)
        self._history_n = _HISTORY_MINUTES
        self._history: dict[Signal, tuple[Sample, ...]] = {}
        # by a datum's metrics, those a Signal reads with that Signal, in the datum's order: a stream's
        # datapoints have a few sets of metrics, each looked up once (not each metric of each datum)
        self._read_of: dict[tuple[str, ...], tuple[tuple[str, Signal], ...]] = {}
        # the `read` of each stream's latest batch (None: no batch), in the snapshot's batch order
        self._emr_read: tuple[tuple[str, Signal], ...] | None = None
        self._heap_read: tuple[tuple[str, Signal], ...] | None = None
        self._yarn_read: tuple[tuple[str, Signal], ...] | None = None
        # the combinations of `read`s checked disjoint (by id: each `read` is made once and kept, in
        # _read_of), with the further streams' signals
        self._disjoint: set[tuple[object, ...]] = set()
        self.calls = 0

    def _batch(self, stream: MetricStream, n: int) -> SampleBatch | None:
        return self._read_batch(stream, n)[1]

    def _read_batch(
        self, stream: MetricStream, n: int
    ) -> tuple[tuple[tuple[str, Signal], ...] | None, SampleBatch | None]:
        """The latest visible batch of `stream` and which of its metrics it reads as which Signal."""
        if not n:
            return None, None
        row = stream.values[n - 1]
        metrics = tuple(row)
        read = self._read_of.get(metrics)
        if read is None:
            read = self._read_of[metrics] = tuple(
                (m, sig) for m in metrics if (sig := _SIGNAL_BY_METRIC.get(m)) is not None
            )
        return read, SampleBatch(self._w.dt(stream.times[n - 1]), {sig: row[metric] for metric, sig in read})

    def read_metrics(self, cluster_id: str, now: datetime) -> MetricsSnapshot:
        self.calls += 1
        w = self._w
        t = (now - self._epoch).total_seconds()
        emr_n, heap_n = w.emr.visible_count(t), w.heap.visible_count(t)
        yarn_n = w.yarn.visible_count(t) if _YARN_READ else 0
        cached = self._cached
        extra_changed = False
        for i, (stream, seen, _) in enumerate(self._extra):
            n = stream.visible_count(t)
            if n != seen:
                self._extra[i] = (stream, n, self._batch(stream, n))
                self._note_history(stream, n)
                extra_changed = True
        if (
            cached is not None
            and not extra_changed
            and cached[0] == emr_n
            and cached[1] == heap_n
            and cached[2] == yarn_n
        ):
            return cached[3]
        if self._emr[0] != emr_n:
            self._emr_read, batch = self._read_batch(w.emr, emr_n)
            self._emr = (emr_n, batch)
        if self._heap[0] != heap_n:
            self._heap_read, batch = self._read_batch(w.heap, heap_n)
            self._heap = (heap_n, batch)
        if self._yarn[0] != yarn_n:
            self._yarn_read, batch = self._read_batch(w.yarn, yarn_n)
            self._yarn = (yarn_n, batch)
        batches = tuple(
            [b for _, b in (self._emr, self._heap, self._yarn) if b is not None]
            + [b for _, _, b in self._extra if b is not None]
        )
        # what MetricsSnapshot.of_batches checks (no signal in two batches), once per combination of the
        # streams' sets of signals (a `read` is one set; the further streams' batches by their signals)
        signals: tuple[object, ...] = (
            id(self._emr_read),
            id(self._heap_read),
            id(self._yarn_read),
            *[tuple(b.values) for _, _, b in self._extra if b is not None],
        )
        if signals not in self._disjoint:
            MetricsSnapshot.of_batches(batches)  # raises ValueError when a signal is in two
            self._disjoint.add(signals)
        snap = MetricsSnapshot(BatchSamples(batches), history=self._history)
        self._cached = (emr_n, heap_n, yarn_n, snap)
        return snap

    def _note_history(self, stream: MetricStream, n: int) -> None:
        """The last few visible datapoints of each trend-read signal of `stream`, oldest first."""
        for signal in _TREND_SIGNALS:
            if n and signal.value in stream.values[n - 1]:
                first = max(0, n - self._history_n)
                self._history[signal] = tuple(
                    Sample(stream.values[i][signal.value], self._w.dt(stream.times[i]))
                    for i in range(first, n)
                    if signal.value in stream.values[i]
                )


class SimCapacityWriter:
    """ModifyInstanceGroups on TASK groups: the world's requested counts, effective at the call's time."""

    def __init__(self, world: World) -> None:
        self._w = world

    def resize(self, cluster_id: str, changes: Sequence[GroupTarget]) -> None:
        w = self._w
        if cluster_id != w.cluster.cluster_id:
            raise ClusterGone(f"{cluster_id}: not the simulated cluster")
        todo = []
        for c in changes:
            g = w.by_id.get(c.group_id)
            if g is None:
                raise InvalidRequest(f"unknown instance group {c.group_id}")
            if g.spec.role is not Role.TASK:
                raise InvalidRequest(f"{c.group_id} is a {g.spec.role} group")
            if c.target < 0:
                raise InvalidRequest(f"{c.group_id}: negative instance count {c.target}")
            if c.target != g.requested:
                todo.append((g, c.target))
        if not todo:
            return
        fleets = {g.spec.fleet_id for g, _ in todo if g.spec.fleet_id is not None}
        if (
            fleets
        ):  # ModifyInstanceFleet: held while the fleet resizes (EMR would queue it behind that resize)
            status = sim_fleets(w)
            busy = sorted(f for f in fleets if status[f].status is GroupStatus.RESIZING)
            if busy:
                raise GroupBusy(f"instance fleet {busy[0]} is RESIZING", code="RESIZING")
        scale_out = any(target > g.requested for g, target in todo)
        for g, target in todo:
            w.set_requested(g, target)
        for g in w.task:  # a new fleet resize asks again for the spot units EMR gave up on
            if g.spec.fleet_id in fleets and g.spec.market is Market.SPOT:
                w.retry_missing(g)
        w.record_request(scale_out=scale_out)


class SimPriceSource:
    """The simulated groups' node-hour prices (each SPOT group has its own fixed spot price)."""

    def __init__(self, world: World) -> None:
        self._prices: Mapping[str, float] = {g.spec.id: g.price for g in world.task}

    def usd_per_hour(self, cluster: Cluster, now: datetime) -> Mapping[str, float]:
        return self._prices


class SimInstanceLocator:
    """ports.InstanceLocator: the replay's synthetic instance ids name their group."""

    def __init__(self, world: World) -> None:
        self._w = world
        self.where: dict[str, str] = {}  # instance id -> group id

    def instance_id(self, group_id: str, token: int) -> str:
        iid = f"i-{token:017x}"
        self.where[iid] = group_id
        return iid

    def locate(self, instance_id: str, managed_clusters: Sequence[str]) -> Lookup:
        gid = self.where.get(instance_id)
        if gid is None:
            return Lookup(None, f"{instance_id} is not an instance of the simulated cluster")
        return Lookup(InstanceLocation(self._w.cluster.cluster_id, gid, instance_id))


def sim_ports(world: World) -> tuple[Ports, InMemoryStateStore, CollectingNotifier]:
    state = InMemoryStateStore(keep_audit=False)
    notifier = CollectingNotifier(keep=200)
    ports = Ports(
        clusters=SimClusterReader(world),
        metrics=SimMetricsSource(world),
        capacity=SimCapacityWriter(world),
        state=state,
        notifier=notifier,
        prices=SimPriceSource(world),
    )
    return ports, state, notifier
