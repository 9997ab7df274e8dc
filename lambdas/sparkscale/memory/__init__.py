"""The one in-memory set of ports: a fake EMR cluster, fixed metrics, a thread-safe state store and notice
ledger, a collecting notifier. For the tests, the benchmarks, `sparkscale decide` without a table and the
replay (whose simulated cluster, metrics and prices live in tools/, next to the simulation they read).
Behaviour mirrors the AWS adapters (TASK-only resizes, lease expiry, TTL'd claims)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sparkscale.errors import ClusterGone, GroupBusy, RefusedChange
from sparkscale.policy.forecast import BUCKET_S, HISTORY_KEEP_S, bucket_start
from sparkscale.policy.model import (
    Cluster,
    Decision,
    GroupStatus,
    GroupTarget,
    MetricsSnapshot,
    Role,
    ScalerState,
)
from sparkscale.ports import Intent, Notice, NoticeLedger, PauseMark, SizeObservation, StateStore
from sparkscale.records import decision_to_dict

_KEEP_BUCKETS = HISTORY_KEEP_S // BUCKET_S


class FakeEmr:
    """ClusterReader and CapacityWriter over clusters kept in memory. A resize sets the requested counts (the
    nodes 'arrive' only when a test says so with `deliver`)."""

    def __init__(self, *clusters: Cluster) -> None:
        self._lock = threading.Lock()
        self.clusters: dict[str, Cluster] = {c.id: c for c in clusters}
        self.resizes: list[tuple[str, tuple[GroupTarget, ...]]] = []

    def read_cluster(self, cluster_id: str) -> Cluster:
        with self._lock:
            c = self.clusters.get(cluster_id)
        if c is None or c.state.is_gone:
            raise ClusterGone(f"cluster {cluster_id} is {'unknown' if c is None else c.state.value}")
        return c

    def resize(self, cluster_id: str, changes: Sequence[GroupTarget]) -> None:
        with self._lock:
            c = self.clusters.get(cluster_id)
            if c is None or c.state.is_gone:
                raise ClusterGone(f"cluster {cluster_id} is gone")
            by_id = {g.id: g for g in c.groups}
            for t in changes:
                g = by_id.get(t.group_id)
                if g is None:
                    raise RefusedChange(f"instance group {t.group_id} is not a group of cluster {cluster_id}")
                if g.role is not Role.TASK:
                    raise RefusedChange(f"refusing to resize {g.role.value} group {g.id}")
                if g.status is not GroupStatus.RUNNING:
                    raise GroupBusy(f"instance group {g.id} is {g.status.value}")
            for t in changes:
                by_id[t.group_id] = replace(by_id[t.group_id], requested=t.target)
            self.clusters[cluster_id] = replace(c, groups=tuple(by_id[g.id] for g in c.groups))
            self.resizes.append((cluster_id, tuple(changes)))

    def deliver(self, cluster_id: str) -> None:
        """Every TASK group's requested nodes are now running."""
        with self._lock:
            c = self.clusters[cluster_id]
            groups = tuple(replace(g, running=g.requested) if g.is_task else g for g in c.groups)
            self.clusters[cluster_id] = replace(c, groups=groups)


@dataclass
class FixedMetrics:
    """MetricsSource returning one snapshot per cluster (set `snapshots[cluster_id]`)."""

    snapshots: dict[str, MetricsSnapshot] = field(default_factory=dict)
    calls: int = 0

    def read_metrics(self, cluster_id: str, now: datetime) -> MetricsSnapshot:
        self.calls += 1
        return self.snapshots.get(cluster_id, MetricsSnapshot())


class InMemoryStateStore:
    """StateStore and NoticeLedger in memory, thread-safe, with the DynamoDB store's semantics."""

    def __init__(self, *, keep_audit: bool = True) -> None:
        self._lock = threading.Lock()
        self._keep_audit = keep_audit  # False: a long replay keeps only the count and the last decision
        self.leases: dict[str, tuple[str, datetime]] = {}
        self.states: dict[str, ScalerState] = {}
        self.audit: dict[str, list[tuple[datetime, Decision]]] = {}
        self.claims: dict[tuple[str, str], tuple[datetime, datetime | None]] = {}
        self.saves = 0
        self.last_decision: Decision | None = None
        self.demand: dict[str, dict[datetime, float]] = {}  # cluster -> bucket start -> peak GiB
        self.pauses: dict[str, PauseMark] = {}
        self.intents: dict[str, Intent] = {}  # cluster -> its pending intent (ports.IntentStore)
        self.observed: dict[str, SizeObservation] = {}  # ports.SizeObservationStore

    def acquire_lease(self, cluster_id: str, owner: str, now: datetime, ttl_s: int) -> bool:
        with self._lock:
            held = self.leases.get(cluster_id)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self.leases[cluster_id] = (owner, now + timedelta(seconds=ttl_s))
            return True

    def release_lease(self, cluster_id: str, owner: str) -> None:
        with self._lock:
            held = self.leases.get(cluster_id)
            if held is not None and held[0] == owner:
                del self.leases[cluster_id]

    def load_state(self, cluster_id: str) -> ScalerState:
        with self._lock:
            state = self.states.get(cluster_id)
        return ScalerState() if state is None else state  # a default built only when none is saved

    def save(self, cluster_id: str, state: ScalerState, decision: Decision, now: datetime) -> None:
        with self._lock:
            self._save_locked(cluster_id, state, decision, now)

    def save_observed(
        self,
        cluster_id: str,
        state: ScalerState,
        decision: Decision,
        now: datetime,
        observed: SizeObservation,
    ) -> None:
        """ports.SizeObservationStore: `save` and the observation together."""
        with self._lock:
            self._save_locked(cluster_id, state, decision, now, observed)

    def record_observation(self, cluster_id: str, observed: SizeObservation) -> None:
        with self._lock:
            self.observed[cluster_id] = observed

    def observations(self, cluster_ids: Sequence[str]) -> Mapping[str, SizeObservation]:
        with self._lock:
            return {c: self.observed[c] for c in cluster_ids if c in self.observed}

    def _save_locked(
        self,
        cluster_id: str,
        state: ScalerState,
        decision: Decision,
        now: datetime,
        observed: SizeObservation | None = None,
    ) -> None:
        # as the DynamoDB store: a state written without an observation drops the one it had
        if observed is not None:
            self.observed[cluster_id] = observed
        elif self.observed:
            self.observed.pop(cluster_id, None)
        self.states[cluster_id] = state
        self.saves += 1
        self.last_decision = decision
        if self._keep_audit:
            self.audit.setdefault(cluster_id, []).append((now, decision))

    def audit_since(self, cluster_id: str, since: datetime, *, limit: int = 1000) -> list[dict[str, Any]]:
        """ports.AuditReader: the kept records saved at or after `since`, newest first (decoded)."""
        with self._lock:
            kept = [d for at, d in self.audit.get(cluster_id, []) if at >= since]
        return [decision_to_dict(d) for d in reversed(kept)][:limit]

    # --- write-ahead (ports.IntentStore), with the DynamoDB store's conditions ----------------------------
    def load_intent(self, cluster_id: str) -> Intent | None:
        with self._lock:
            return self.intents.get(cluster_id)

    def put_intent(self, cluster_id: str, intent: Intent) -> bool:
        with self._lock:
            if cluster_id in self.intents:
                return False
            self.intents[cluster_id] = intent
            return True

    def record_intent(self, cluster_id: str, intent: Intent, now: datetime) -> bool:
        with self._lock:
            pending = self.intents.get(cluster_id)
            if pending is None or pending.id != intent.id or pending.recorded:
                return False
            if intent.key:
                held = self.claims.get((cluster_id, intent.key))
                if held is None or (held[1] is not None and held[1] <= now):
                    ttl = intent.key_ttl_s
                    self.claims[(cluster_id, intent.key)] = (
                        now,
                        None if ttl is None else now + timedelta(seconds=ttl),
                    )
            resized = SizeObservation(at_minimum=False, resizing=True, observed_at=now)
            if intent.state is not None and intent.decision is not None:
                self._save_locked(cluster_id, intent.state, intent.decision, now, resized)
            else:  # a spot replacement: the record alone
                self.observed[cluster_id] = resized
            self.intents[cluster_id] = replace(pending, recorded=True)
            return True

    def clear_intent(self, cluster_id: str, intent_id: str) -> None:
        with self._lock:
            pending = self.intents.get(cluster_id)
            if pending is not None and pending.id == intent_id:
                del self.intents[cluster_id]

    def load_pause(self, cluster_id: str) -> PauseMark | None:
        with self._lock:
            return self.pauses.get(cluster_id)

    def save_pause(self, cluster_id: str, mark: PauseMark | None) -> None:
        with self._lock:
            if mark is None:
                self.pauses.pop(cluster_id, None)
            else:
                self.pauses[cluster_id] = mark

    def record_capacity_error(self, cluster_id: str, group_id: str, at: datetime) -> bool:
        """ports.CapacityErrorRecorder: like the DynamoDB store (a later time already recorded is kept)."""
        with self._lock:
            state = self.states.get(cluster_id, ScalerState())
            seen = state.capacity_errors.get(group_id)
            errors = {**state.capacity_errors, group_id: at if seen is None else max(seen, at)}
            self.states[cluster_id] = replace(state, capacity_errors=errors)
            return seen is None

    def load_demand(
        self, cluster_id: str, ranges: Sequence[tuple[datetime, datetime]]
    ) -> Mapping[datetime, float]:
        """ports.DemandHistoryStore: the recorded buckets within each range (inclusive)."""
        step = timedelta(seconds=BUCKET_S)
        out: dict[datetime, float] = {}
        with self._lock:
            buckets = self.demand.get(cluster_id)
            if not buckets:
                return out
            for first, last in ranges:
                b = bucket_start(first)
                while b <= last:
                    v = buckets.get(b)
                    if v is not None:
                        out[b] = v
                    b += step
        return out

    def record_demand(self, cluster_id: str, bucket: datetime, peak_gib: float, now: datetime) -> None:
        """ports.DemandHistoryStore, as the DynamoDB store (a larger peak stays; HISTORY_KEEP_S of TTL)."""
        with self._lock:
            buckets = self.demand.setdefault(cluster_id, {})
            seen = buckets.get(bucket)
            if seen is None or peak_gib > seen:
                buckets[bucket] = peak_gib
            if len(buckets) > 2 * _KEEP_BUCKETS:  # what the TTL deletes
                oldest = now - timedelta(seconds=HISTORY_KEEP_S)
                for b in [b for b in buckets if b < oldest]:
                    del buckets[b]

    def claim(self, cluster_id: str, key: str, now: datetime, ttl_s: int | None) -> bool:
        with self._lock:
            held = self.claims.get((cluster_id, key))
            if held is not None and (held[1] is None or held[1] > now):
                return False
            self.claims[(cluster_id, key)] = (now, None if ttl_s is None else now + timedelta(seconds=ttl_s))
            return True

    def claimed_at(self, cluster_id: str, key: str, now: datetime) -> datetime | None:
        with self._lock:
            held = self.claims.get((cluster_id, key))
        if held is None or (held[1] is not None and held[1] <= now):
            return None
        return held[0]


class CollectingNotifier:
    """Notifier keeping the first `keep` notices (None: all) and counting all of them by kind; `fail_with`
    makes every publish raise (SNS outage tests)."""

    def __init__(self, fail_with: Exception | None = None, *, keep: int | None = None) -> None:
        self.notices: list[Notice] = []
        self.by_kind: dict[str, int] = {}
        self.fail_with = fail_with
        self._keep = keep

    def notify(self, notice: Notice) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.by_kind[notice.kind] = self.by_kind.get(notice.kind, 0) + 1
        if self._keep is None or len(self.notices) < self._keep:
            self.notices.append(notice)


class ReadOnlyStateStore:
    """A real store seen read-only, for dry runs from a laptop: state and claims are read from `source`, but
    leases, saves and new claims stay in memory, so a dry run changes nothing in the table."""

    def __init__(self, source: StateStore, ledger: NoticeLedger | None = None) -> None:
        self._mem = InMemoryStateStore()
        self._source = source
        self._ledger = ledger

    def acquire_lease(self, cluster_id: str, owner: str, now: datetime, ttl_s: int) -> bool:
        return self._mem.acquire_lease(cluster_id, owner, now, ttl_s)

    def release_lease(self, cluster_id: str, owner: str) -> None:
        self._mem.release_lease(cluster_id, owner)

    def load_state(self, cluster_id: str) -> ScalerState:
        return self._source.load_state(cluster_id)

    def save(self, cluster_id: str, state: ScalerState, decision: Decision, now: datetime) -> None:
        self._mem.save(cluster_id, state, decision, now)

    def load_pause(self, cluster_id: str) -> PauseMark | None:
        return self._source.load_pause(cluster_id)

    def save_pause(self, cluster_id: str, mark: PauseMark | None) -> None:
        self._mem.save_pause(cluster_id, mark)

    def claim(self, cluster_id: str, key: str, now: datetime, ttl_s: int | None) -> bool:
        return self._mem.claim(cluster_id, key, now, ttl_s)

    def claimed_at(self, cluster_id: str, key: str, now: datetime) -> datetime | None:
        seen = self._ledger.claimed_at(cluster_id, key, now) if self._ledger is not None else None
        return seen if seen is not None else self._mem.claimed_at(cluster_id, key, now)
