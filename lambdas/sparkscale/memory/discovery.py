"""In-memory ports of discovery (usecases/discovery.py): EMR clusters with their tags, the alarms written,
the registry. Same semantics as adapters/discovery.py (released items expire, DeleteAlarms in batches)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sparkscale import names
from sparkscale.alarms import AlarmSpec
from sparkscale.ports import ClusterInfo, Registration

DELETE_BATCH = 100


@dataclass
class TaggedClusters:
    """ports.ClusterDirectory: `clusters[id] = ClusterInfo(...)`; change a state or tags as a test needs."""

    clusters: dict[str, ClusterInfo] = field(default_factory=dict)
    describes: int = 0

    def add(self, cluster_id: str, state: str = "RUNNING", name: str = "", **tags: str) -> ClusterInfo:
        info = ClusterInfo(cluster_id, name or cluster_id, state, dict(tags))
        self.clusters[cluster_id] = info
        return info

    def active_clusters(self) -> list[str]:
        return [c for c, i in self.clusters.items() if i.state in names.EMR_ACTIVE_STATES]

    def describe(self, cluster_id: str) -> ClusterInfo | None:
        self.describes += 1
        return self.clusters.get(cluster_id)


class WrittenAlarms:
    """ports.AlarmWriter: the alarms by name (their specs), and every write call."""

    def __init__(self) -> None:
        self.alarms: dict[str, AlarmSpec | None] = {}
        self.calls: list[tuple[str, int]] = []  # (operation, names in the call)

    def put_alarms(self, specs: Sequence[AlarmSpec]) -> None:
        for s in specs:
            self.alarms[s.name] = s
            self.calls.append(("PutMetricAlarm", 1))

    def delete_alarms(self, alarm_names: Sequence[str]) -> None:
        todo = list(dict.fromkeys(alarm_names))
        for i in range(0, len(todo), DELETE_BATCH):
            batch = todo[i : i + DELETE_BATCH]
            for n in batch:
                self.alarms.pop(n, None)
            self.calls.append(("DeleteAlarms", len(batch)))

    def alarm_names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.alarms if n.startswith(prefix))


class InMemoryRegistry:
    """ports.ClusterRegistry in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, tuple[Registration, datetime | None]] = {}

    def registrations(self, now: datetime) -> Mapping[str, Registration]:
        with self._lock:
            return {c: r for c, (r, exp) in self.items.items() if exp is None or exp > now}

    def register(self, registration: Registration, *, expires_at: datetime | None = None) -> None:
        with self._lock:
            self.items[registration.cluster_id] = (registration, expires_at)
