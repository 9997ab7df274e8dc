"""The spot-events use case: a spot interruption warning or rebalance recommendation for a node of a managed
cluster moves that node to another pool at once (the choice is policy/replacement.py, pure).

locate -> lease -> skip a duplicate -> settle a pending intent -> read (+prices) -> choose -> write ahead ->
resize -> record (the event marked handled) -> notify -> release, on the shared Shell, under the same
per-cluster lease as the scaler so it never races it. A dry run, or a cluster an operator paused
(ports.PauseMark), chooses and notifies but moves no node.

The move is written ahead (an Intent carrying the event's ledger key) before ModifyInstanceGroups, so a
redelivered event whose move was left unfinished (a 5xx or timeout on the resize, a failed ledger write
after it) settles that intent against EMR's counts instead of moving a second node: applied -> the event is
marked handled and notified now, once; not applied -> dropped, and the event is handled afresh.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sparkscale import notices
from sparkscale.config import Config
from sparkscale.errors import ClusterGone, LeaseHeld, SparkscaleError, Throttled, TransientAwsError
from sparkscale.events.spot import SpotEvent
from sparkscale.policy.replacement import ReplacementPlan, choose_replacement
from sparkscale.ports import INTENT_SPOT, InstanceLocation, InstanceLocator, Intent, Notice, Ports
from sparkscale.usecases.shell import WAIT_FOR_SCALER, LeaseWait, Outcome, Shell

log = logging.getLogger(__name__)

DEDUP_TTL_S: Final = 6 * 3600  # how long a handled (kind, instance) is remembered


@dataclass(frozen=True)
class SpotResult:
    outcome: Outcome  # APPLIED, DRY_RUN, LEFT_TO_EMR, IGNORED, DUPLICATE, CLUSTER_GONE or FAILED
    event: SpotEvent
    reason: str = ""
    plan: ReplacementPlan | None = None
    notice: Notice | None = None
    cluster_id: str = ""  # set once the instance was located
    notify_failures: int = 0  # the operator notice could not be sent (logged)


def dedup_key(event: SpotEvent) -> str:
    """One handling per (kind, instance): EventBridge may deliver an event twice, and a rebalance
    recommendation followed by the interruption of the same instance are two different losses."""
    return f"spot-{event.kind.value}-{event.instance_id}"


def handle_spot_event(
    *,
    now: datetime,
    event: SpotEvent,
    ports: Ports,
    locator: InstanceLocator,
    config: Config,
    owner: str,
    lease_wait: LeaseWait = WAIT_FOR_SCALER,
    config_for: Callable[[str], Config] | None = None,
) -> SpotResult:
    """Raises LeaseHeld when the scaler keeps the cluster's lease for all attempts (the invocation then fails
    and Lambda retries it) and TransientAwsError / Throttled for transient AWS failures; every other expected
    condition is a SpotResult.

    The instance is looked for in `config.clusters`; the cluster it belongs to is then handled with
    `config_for(cluster_id)` (a cluster managed by tag: its profile's settings), or `config` without it."""
    lookup = locator.locate(event.instance_id, config.clusters)
    if lookup.location is None:
        return SpotResult(Outcome.IGNORED, event, lookup.reason)
    loc = lookup.location
    if config_for is not None:
        config = config_for(loc.cluster_id)
    shell = Shell(ports=ports, config=config, now=now, cluster_id=loc.cluster_id)
    with shell.lease(owner, wait=lease_wait, required=True):
        settled = shell.settle()  # any pending intent, this event's (a redelivery) or the scaler's
        # read strictly: a ledger that cannot answer fails the invocation (Lambda retries) rather than risk
        # moving a second node for a redelivered event
        seen = (
            None if ports.ledger is None else ports.ledger.claimed_at(loc.cluster_id, dedup_key(event), now)
        )
        if seen is not None and (settled is None or settled.intent.key != dedup_key(event)):
            why = f"{event.kind} of {event.instance_id} already handled at {seen.isoformat()}"
            return SpotResult(Outcome.DUPLICATE, event, why, cluster_id=loc.cluster_id)
        if settled is not None and settled.applied and settled.intent.key == dedup_key(event):
            notice = settled.intent.notice
            result = SpotResult(Outcome.APPLIED, event, settled.detail, notice=notice)
        else:
            result = _decide_and_act(shell, event, loc)
        if result.outcome not in (Outcome.APPLIED, Outcome.CLUSTER_GONE):  # an applied move is recorded
            _remember(shell, event)
            if result.notice is not None:
                shell.send(result.notice)
    return SpotResult(
        result.outcome,
        event,
        result.reason,
        result.plan,
        result.notice,
        cluster_id=loc.cluster_id,
        notify_failures=shell.notify_failures,
    )


def _remember(shell: Shell, event: SpotEvent) -> None:
    if shell.ports.ledger is None:
        return
    try:
        shell.ports.ledger.claim(shell.cluster_id, dedup_key(event), shell.now, DEDUP_TTL_S)
    except SparkscaleError as exc:  # done is done: a retry for this would move a second node
        log.error("could not remember %s for %s: %s", dedup_key(event), shell.cluster_id, exc)


def _decide_and_act(shell: Shell, event: SpotEvent, loc: InstanceLocation) -> SpotResult:
    ports, config = shell.ports, shell.config
    try:
        cluster = shell.priced(ports.clusters.read_cluster(loc.cluster_id))
    except ClusterGone as exc:
        return SpotResult(Outcome.CLUSTER_GONE, event, str(exc) or f"{loc.cluster_id} is gone")
    state = ports.state.load_state(loc.cluster_id)
    plan = choose_replacement(
        cluster=cluster, group_id=loc.group_id, config=config, now=shell.now, state=state
    )
    if not plan.changes:
        notice = notices.interruption_notice(event=event, plan=plan, applied=False)
        return SpotResult(Outcome.LEFT_TO_EMR, event, plan.reasons[0], plan, notice)
    pause = ports.state.load_pause(loc.cluster_id)  # an operator's pause: decided and notified, no node moved
    if config.dry_run or pause is not None:
        why = notices.paused_text(pause) if pause is not None else "dry run"
        notice = notices.interruption_notice(event=event, plan=plan, applied=False, dry_run=True, why=why)
        return SpotResult(Outcome.DRY_RUN, event, why, plan, notice)
    notice = notices.interruption_notice(event=event, plan=plan, applied=True)
    intent = Intent(
        id=uuid.uuid4().hex,
        kind=INTENT_SPOT,
        at=shell.now,
        owner=shell.owner,
        changes=plan.changes,
        notice=notice,
        key=dedup_key(event),
        key_ttl_s=DEDUP_TTL_S,
    )
    if not shell.write_ahead(intent):  # the claim: without it no node moves (Lambda retries the event)
        raise LeaseHeld(f"{loc.cluster_id}: another resize of the cluster is pending")
    try:
        ports.capacity.resize(loc.cluster_id, plan.changes)
    except TransientAwsError:
        raise  # ambiguous: the intent stays, and the retry settles it against EMR instead of moving again
    except ClusterGone as exc:
        shell.abandon(intent)
        return SpotResult(Outcome.CLUSTER_GONE, event, str(exc) or f"{loc.cluster_id} is gone", plan)
    except SparkscaleError as exc:
        shell.abandon(intent)  # refused for certain
        if isinstance(exc, Throttled):
            raise  # the invocation fails and Lambda retries it
        error = f"{type(exc).__name__}: {exc}"
        notice = notices.interruption_notice(event=event, plan=plan, applied=False, error=error)
        return SpotResult(Outcome.FAILED, event, error, plan, notice)
    shell.finish(intent)  # the event marked handled, then the notice, once; raises (intent kept) on failure
    return SpotResult(Outcome.APPLIED, event, plan.reasons[1], plan, notice)
