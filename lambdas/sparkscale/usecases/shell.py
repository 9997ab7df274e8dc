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
- a price is never a reason to fail: without one the groups keep the price read with the cluster;
- write-ahead: a resize is written down as an Intent before ModifyInstanceGroups (`write_ahead`) and
  finalized after it (`finish`: the record, then the notice once, then the intent removed). Whatever fails
  in between (a 5xx or timeout on the resize, a failed save after it), the next use case under the lease
  first settles the pending intent (`settle`) against what EMR reports: requested counts at the intent's
  targets -> it was applied: record, notify and cool down now, once; otherwise it was not: the intent is
  dropped and the use case decides afresh. See docs/reliability.md "Write-ahead decisions".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple, cast

from sparkscale.config import Config
from sparkscale.errors import ClusterGone, LeaseHeld, SparkscaleError, TransientAwsError
from sparkscale.policy.model import Cluster, ScalerState
from sparkscale.ports import Intent, IntentStore, Notice, Ports, supports

log = logging.getLogger(__name__)

REPEAT_NOTICE_S: Final = 3600  # at-max, dry-run, failure and fallback notices: at most once an hour per key
KEY_CLUSTER_GONE: Final = "cluster_gone"
# a cluster marked gone is not evaluated until the mark expires (a week): a mistaken mark heals by itself,
# and a gone cluster still in the settings is found gone (and notified) again once a week
GONE_TTL_S: Final = 7 * 24 * 3600
INTENT_NOTICE_TTL_S: Final = 24 * 3600  # the ledger key that keeps an intent's notice to one


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


@dataclass(frozen=True, slots=True)
class Settled:
    """What Shell.settle found: a pending intent, and whether EMR had applied it (then it is now recorded
    and notified; otherwise it was dropped)."""

    intent: Intent
    applied: bool
    detail: str


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
            try:
                acquired = shell.ports.state.acquire_lease(
                    shell.cluster_id, self._owner, shell.now, shell.config.lease_ttl_s
                )
            except TransientAwsError:  # the lease may be ours all the same (the answer was lost): free it
                shell._release(self._owner)
                raise
            if acquired:
                self._held = True
                shell.owner = self._owner
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
    owner: str = ""  # the lease holder, once a lease is held (written into intents)

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

    def claim_strictly(self, key: str, ttl_s: int | None) -> bool:
        """`claim` for a mark that must not be lost (the gone mark): a ledger that fails raises (the use case
        fails and is retried) instead of going ahead without the mark. After an ambiguous failure (a 5xx
        after the write may have taken effect) the mark is read back: written at `now`, it is ours."""
        ledger = self.ports.ledger
        if ledger is None:
            return True
        try:
            return ledger.claim(self.cluster_id, key, self.now, ttl_s)
        except TransientAwsError:
            if ledger.claimed_at(self.cluster_id, key, self.now) == self.now:
                return True
            raise

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
        """True once the cluster was found (and notified) gone, for GONE_TTL_S: it is not evaluated."""
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

    # --- write-ahead ---------------------------------------------------------------------------------------
    def _intents(self) -> IntentStore | None:
        store = self.ports.state
        return cast(IntentStore, store) if supports(store, IntentStore) else None

    def write_ahead(self, intent: Intent) -> bool:
        """Write `intent` before its resize. False when another intent is still pending: do not resize.
        A store that cannot fails the use case before anything was changed (raised)."""
        store = self._intents()
        return store is None or store.put_intent(self.cluster_id, intent)

    def abandon(self, intent: Intent) -> None:
        """The resize was refused for certain: drop the intent. A failure is only logged: the next settle
        finds EMR's counts unchanged and drops it then."""
        store = self._intents()
        if store is None:
            return
        try:
            store.clear_intent(self.cluster_id, intent.id)
        except SparkscaleError as exc:
            log.warning("could not drop intent %s of %s: %s", intent.id, self.cluster_id, exc)

    def finish(self, intent: Intent) -> bool:
        """After the resize took effect: the record (state + audit, the event's key), then the notice, once,
        then the intent removed. A failed record raises and leaves the intent for the next settle. False
        when another invocation had recorded it (nothing done here)."""
        store = self._intents()
        if store is None:  # no write-ahead: record as without it
            if intent.state is not None and intent.decision is not None:
                self.ports.state.save(self.cluster_id, intent.state, intent.decision, self.now)
            if intent.key:
                self.claim(intent.key, intent.key_ttl_s)
            if intent.notice is not None:
                self.send(intent.notice)
            return True
        if not store.record_intent(self.cluster_id, intent, self.now):
            return False
        self._notify_and_clear(store, intent)
        return True

    def _notify_and_clear(self, store: IntentStore, intent: Intent) -> None:
        if intent.notice is not None and self.claim(f"intent:{intent.id}", INTENT_NOTICE_TTL_S):
            self.send(intent.notice)
        try:
            store.clear_intent(self.cluster_id, intent.id)
        except SparkscaleError as exc:  # recorded and notified: the next settle only removes it
            log.warning("could not remove recorded intent %s of %s: %s", intent.id, self.cluster_id, exc)

    def has_pending_intent(self) -> bool:
        """Is a resize of this cluster written ahead and not yet settled? (The reconcile schedule evaluates
        such a cluster even at its minimum, so that the intent is settled.)"""
        store = self._intents()
        return store is not None and store.load_intent(self.cluster_id) is not None

    def settle(self) -> Settled | None:
        """Settle the cluster's pending intent, if any, against what EMR reports (call under the lease,
        before deciding): requested counts at its targets -> applied: record it, notify once, remove it;
        otherwise -> not applied: drop it. Raises what the store or EMR raise (the use case then fails and
        its retry settles)."""
        store = self._intents()
        if store is None:
            return None
        intent = store.load_intent(self.cluster_id)
        if intent is None:
            return None
        if not intent.recorded:
            try:
                cluster = self.ports.clusters.read_cluster(self.cluster_id)
            except ClusterGone as exc:
                store.clear_intent(self.cluster_id, intent.id)
                return Settled(intent, False, f"intent {intent.id} dropped: {exc}")
            if not intent.applied_in(cluster):
                store.clear_intent(self.cluster_id, intent.id)
                detail = f"intent {intent.id} ({intent.kind}) was not applied by EMR: dropped"
                log.warning(detail, extra={"cluster_id": self.cluster_id})
                return Settled(intent, False, detail)
            intent = replace(intent, state=self._keep_new_errors(intent.state))
            if not store.record_intent(self.cluster_id, intent, self.now):
                return Settled(intent, True, f"intent {intent.id} was recorded by another invocation")
        log.warning(
            "settled an intent EMR had applied", extra={"cluster_id": self.cluster_id, "intent": intent.id}
        )
        self._notify_and_clear(store, intent)
        return Settled(intent, True, f"intent {intent.id} ({intent.kind}) had been applied: recorded now")

    def _keep_new_errors(self, state: ScalerState | None) -> ScalerState | None:
        """The intent's state with the capacity errors recorded since (EMR events) kept."""
        if state is None:
            return None
        current = self.ports.state.load_state(self.cluster_id).capacity_errors
        errors = dict(state.capacity_errors)
        for gid, at in current.items():
            seen = errors.get(gid)
            errors[gid] = at if seen is None else max(seen, at)
        return state if errors == state.capacity_errors else replace(state, capacity_errors=errors)
