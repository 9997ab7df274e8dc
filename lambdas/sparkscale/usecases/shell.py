"""What every use case does around its own few lines: the per-cluster lease, operator notices with one
failure policy, the notice ledger, prices with a fallback, and one outcome vocabulary.

A use case (scale.run_once, spot_events.handle_spot_event, emr_events.handle_emr_event) opens one Shell for
the cluster it works on and writes only what differs:

    shell = Shell(ports=ports, config=config, now=now, cluster_id=cid)
    with shell.lease(owner) as held:
        if not held: ...
        cluster = shell.priced(ports.clusters.read_cluster(cid))
        ...
        shell.send(notice)

The rules it owns, once:
- the lease is always released, on every path; a release that fails is logged as a warning and never
  masks the outcome: the lease expires by itself;
- a notice never fails the use case (the record is saved before any notice goes out): a failed send is logged
  and counted (`notify_failures`);
- repeatable notices (failures, at max, dry runs, fallbacks) go out at most once per REPEAT_NOTICE_S per key,
  through the ledger; without a ledger, or when it fails, they go out anyway;
- a price is never a reason to fail: without one the groups keep the price read with the cluster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple

from sparkscale.config import Config
from sparkscale.errors import LeaseHeld, SparkscaleError
from sparkscale.policy.model import Cluster
from sparkscale.ports import Notice, Ports

log = logging.getLogger(__name__)

REPEAT_NOTICE_S: Final = 3600  # at-max, dry-run, failure and fallback notices: at most once an hour per key
KEY_CLUSTER_GONE: Final = "cluster_gone"


class Outcome(StrEnum):
    """What one use case did: the one vocabulary of results, metrics and logs."""

    APPLIED = "applied"  # the change was made
    DRY_RUN = "dry_run"  # the change was decided, not made
    HOLD = "hold"  # nothing to change
    LEASE_HELD = "lease_held"  # another invocation is evaluating the cluster
    CLUSTER_GONE = "cluster_gone"
    GROUP_BUSY = "group_busy"
    THROTTLED = "throttled"
    INVALID = "invalid"
    FAILED = "failed"
    SKIPPED = "skipped"  # reconcile: at the minimum and no alarm in ALARM
    LEFT_TO_EMR = "left_to_emr"  # spot: nothing changed, EMR replaces the node in its own group
    IGNORED = "ignored"  # not ours to act on (an unmanaged instance, a gone cluster, ...)
    DUPLICATE = "duplicate"  # this event was already handled
    FALLBACK = "fallback"  # EMR capacity event: the capacity error is recorded and the scaler re-ran


class LeaseWait(NamedTuple):
    """How an event use case waits for a lease the scaler holds: `attempts` tries `wait_s` apart."""

    attempts: int = 5  # run_once holds the lease ~1-3 s: wait up to ~4 s, then let Lambda retry the event
    wait_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep


NO_WAIT: Final = LeaseWait(attempts=1, wait_s=0.0)  # the scaler itself: another evaluation is enough
WAIT_FOR_SCALER: Final = LeaseWait()  # the event use cases


def with_prices(cluster: Cluster, prices: Mapping[str, float] | None) -> Cluster:
    """The cluster with each TASK group's node-hour price replaced where `prices` has one."""
    if not prices:
        return cluster
    repriced = {}
    for g in cluster.task_groups:
        if g.id in prices:
            price, old = float(prices[g.id]), g.usd_per_hour
            # the same non-zero float keeps the group as it is; a zero (0.0 == -0.0), NaN (never equal) or
            # non-float price is replaced
            if not (type(old) is float and old == price and old != 0.0):
                repriced[g.id] = replace(g, usd_per_hour=price)
    if not repriced:
        return cluster  # the cluster as read (an equal value, and no rebuild on every evaluation)
    return replace(cluster, groups=tuple(repriced.get(g.id, g) for g in cluster.groups))


class Lease:
    """Shell.lease: a class, not a @contextmanager generator (run_once takes one per evaluation; in a 10-day
    replay profile the generator's enter and exit cost about 0.085 s, this about 0.066 s)."""

    __slots__ = ("_held", "_owner", "_required", "_shell", "_wait")

    def __init__(self, shell: Shell, owner: str, wait: LeaseWait, required: bool) -> None:
        self._shell, self._owner, self._wait, self._required = shell, owner, wait, required
        self._held = False

    def __enter__(self) -> bool:
        shell, wait = self._shell, self._wait
        for attempt in range(max(1, wait.attempts)):
            if attempt:
                wait.sleep(wait.wait_s)
            if shell.ports.state.acquire_lease(
                shell.cluster_id, self._owner, shell.now, shell.config.lease_ttl_s
            ):
                self._held = True
                return True
        if self._required:
            raise LeaseHeld(f"{shell.cluster_id}: lease held by another evaluation")
        log.info("evaluation in progress elsewhere", extra={"cluster_id": shell.cluster_id})
        return False

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._shell._release(self._owner)


@dataclass
class Shell:
    """One use case's dealings with the world for one cluster at one `now` (see the module docstring)."""

    ports: Ports
    config: Config
    now: datetime
    cluster_id: str
    notices_sent: int = 0
    notify_failures: int = 0

    # --- the lease -----------------------------------------------------------------------------------------
    def lease(self, owner: str, *, wait: LeaseWait = NO_WAIT, required: bool = False) -> Lease:
        """The cluster's lease, tried as `wait` says (event use cases that must not race the scaler wait
        briefly). A context manager: `with` gives whether it is held; with `required`, raises LeaseHeld
        instead of giving False. Released on exit whatever happens inside."""
        return Lease(self, owner, wait, required)

    def _release(self, owner: str) -> None:
        try:
            self.ports.state.release_lease(self.cluster_id, owner)
        except SparkscaleError as exc:  # the lease expires by itself; never mask the real outcome
            log.warning("could not release the lease of %s: %s", self.cluster_id, exc)

    # --- notices -------------------------------------------------------------------------------------------
    def send(self, notice: Notice) -> bool:
        """Send one notice; a failure is logged and counted, never raised. True when it went out."""
        try:
            self.ports.notifier.notify(notice)
        except Exception as exc:  # a notice never fails the use case: the record is already saved
            self.notify_failures += 1
            log.error("notice %s for %s not sent: %s", notice.kind, notice.cluster_id, exc)
            return False
        self.notices_sent += 1
        return True

    def send_once_per_interval(self, key: str, notice: Callable[[], Notice]) -> bool:
        """Send `notice()` unless one went out under `key` within REPEAT_NOTICE_S. True when it went out."""
        return self.claim(key, REPEAT_NOTICE_S) and self.send(notice())

    # --- the notice ledger ---------------------------------------------------------------------------------
    def claim(self, key: str, ttl_s: int | None) -> bool:
        """May the thing under `key` happen now? Claims it for `ttl_s` (None: forever). Without a ledger, or
        when it fails, the answer is yes: a repeated notice is better than a lost one."""
        if self.ports.ledger is None:
            return True
        try:
            return self.ports.ledger.claim(self.cluster_id, key, self.now, ttl_s)
        except SparkscaleError as exc:
            log.warning("notice ledger unavailable (%s): going ahead", exc)
            return True

    def claimed_at(self, key: str) -> datetime | None:
        """When `key` was claimed, if that claim is still in force (None without a ledger, or if it fails)."""
        if self.ports.ledger is None:
            return None
        try:
            return self.ports.ledger.claimed_at(self.cluster_id, key, self.now)
        except SparkscaleError as exc:
            log.warning("notice ledger unavailable (%s): treating %s as not claimed", exc, key)
            return None

    def is_gone(self) -> bool:
        """True once the cluster was found (and notified) gone: it is no longer evaluated."""
        return self.ports.ledger is not None and (
            self.ports.ledger.claimed_at(self.cluster_id, KEY_CLUSTER_GONE, self.now) is not None
        )

    # --- prices --------------------------------------------------------------------------------------------
    def priced(self, cluster: Cluster) -> Cluster:
        """The cluster with current prices, or as read when none are available."""
        if self.ports.prices is None:
            return cluster
        try:
            prices = self.ports.prices.usd_per_hour(cluster, self.now)
        except SparkscaleError as exc:  # a price is never a reason to fail a decision
            log.warning("prices unavailable for %s, using those read with the cluster: %s", cluster.id, exc)
            return cluster
        return with_prices(cluster, prices)
