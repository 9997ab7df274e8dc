"""The in-memory world of the discovery tests: tagged clusters, written alarms, the registry, a ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sparkscale.config import Config
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.memory.discovery import InMemoryRegistry, TaggedClusters, WrittenAlarms
from sparkscale.ports import DiscoveryPorts, Ports
from sparkscale.usecases.discovery import Discovery

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TAG = {"sparkscale:managed": "true"}


@dataclass
class World:
    config: Config = field(default_factory=Config)
    emr: TaggedClusters = field(default_factory=TaggedClusters)
    alarms: WrittenAlarms = field(default_factory=WrittenAlarms)
    registry: InMemoryRegistry = field(default_factory=InMemoryRegistry)
    store: InMemoryStateStore = field(default_factory=InMemoryStateStore)
    notifier: CollectingNotifier = field(default_factory=CollectingNotifier)

    def ports(self) -> Ports:
        fake = FakeEmr()
        return Ports(
            clusters=fake,
            metrics=FixedMetrics(),
            capacity=fake,
            state=self.store,
            notifier=self.notifier,
            ledger=self.store,
        )

    def run(self, now: datetime = NOW, **kw: Any) -> Discovery:
        return Discovery(
            ports=self.ports(),
            discovery=DiscoveryPorts(self.emr, self.alarms, self.registry),
            config=self.config,
            now=now,
            **kw,
        )

    def tagged(self, cid: str, state: str = "RUNNING", **tags: str) -> None:
        """A cluster with the opt-in tag; `profile=` and `paused=` become sparkscale:profile / :paused."""
        self.emr.add(cid, state, **TAG, **{f"sparkscale:{k}": v for k, v in tags.items()})

    def alarm_names(self, cid: str) -> list[str]:
        return self.alarms.alarm_names(f"{self.config.alarm_prefix}-{cid}-")
