"""The EMR-events use case: a SPOT task group that EMR cannot fill falls back at once, not after a timeout;
a cluster EMR reports TERMINATED is marked gone.

Without EMR's events the policy notices a spot group that does not deliver only when its requested nodes have
been missing for `spot_fallback_timeout_s`. For a capacity event about a SPOT TASK group of a managed cluster
(events/emr.py says which events those are), `handle_emr_event`:

1. records ScalerState.capacity_errors[group] = the event time in the persisted state, under the cluster's
   lease (ports.CapacityErrorRecorder). The policy (policy/fallback.py) then gives that group no new capacity,
   stops counting its undelivered nodes as coming, and puts the unmet part on the next cheapest SPOT group,
   then on an ON_DEMAND TASK group when `on_demand_fallback`; next_state clears the error once the group has
   delivered and `spot_fallback_timeout_s` has passed, and capacity moves back to spot;
2. runs `scale.run_once` for the cluster at once, so the unmet part moves now, not at the next alarm;
3. tells operators once (Notice kind "fallback", at most hourly per group through the notice ledger): which
   group was blocked and why, and where the capacity went. The scaler's own notice of that decision travels
   inside it, so a capacity event gives one message, not two.

"EMR Cluster State Change" to TERMINATED / TERMINATED_WITH_ERRORS is a claim to verify, not a fact: the
cluster is read from EMR first (DescribeCluster, the ClusterReader port). Only when EMR says it is gone
(terminating, terminated or unknown: ClusterGone) is it marked gone exactly as run_once does on ClusterGone
(scale.mark_gone: notified once, then not evaluated for shell.GONE_TTL_S). A cluster EMR still reports as
running is not marked gone (IGNORED, and the reason says so): an event anyone could send cannot switch the
scaling of a live cluster off. A throttled or failed read raises, so that Lambda retries the event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, cast

from sparkscale import notices
from sparkscale.config import Config
from sparkscale.errors import ClusterGone
from sparkscale.events.emr import EmrEvent, EmrEventKind
from sparkscale.events.envelope import quote
from sparkscale.ports import CapacityErrorRecorder, Notice, Notifier, Ports, supports
from sparkscale.usecases.scale import RunResult, mark_gone, run_once
from sparkscale.usecases.shell import REPEAT_NOTICE_S, WAIT_FOR_SCALER, LeaseWait, Outcome, Shell

log = logging.getLogger(__name__)

_HELD_KINDS: Final = frozenset({notices.KIND_ACTION, notices.KIND_DRY_RUN})


@dataclass(frozen=True)
class EmrEventResult:
    outcome: Outcome  # FALLBACK, CLUSTER_GONE or IGNORED
    event: EmrEvent
    reason: str
    run: RunResult | None = None
    new_error: bool = False  # the group had no capacity error recorded before
    notice: Notice | None = None  # the fallback notice sent (None: not due, or not sent)
    notify_failures: int = 0


class _HoldDecisionNotices:
    """A Notifier that forwards every notice but the decision's own (action, dry run), which it keeps for the
    fallback notice to carry: one message per capacity event."""

    def __init__(self, inner: Notifier) -> None:
        self.inner = inner
        self.held: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        if notice.kind in _HELD_KINDS:
            self.held.append(notice)
        else:
            self.inner.notify(notice)


def handle_emr_event(
    *,
    now: datetime,
    event: EmrEvent,
    ports: Ports,
    config: Config,
    owner: str,
    lease_wait: LeaseWait = WAIT_FOR_SCALER,
) -> EmrEventResult:
    """Record -> re-decide -> tell (see the module docstring). Raises LeaseHeld when the scaler keeps the
    cluster's lease for every attempt, and Throttled / TransientAwsError from the store or run_once, so that
    Lambda retries the event; every other expected condition is a result."""
    cid = event.cluster_id
    if event.kind is EmrEventKind.CLUSTER_TERMINATED:
        return _confirm_terminated(now=now, event=event, ports=ports, config=config)
    shell = Shell(ports=ports, config=config, now=now, cluster_id=cid)
    if shell.is_gone():
        return EmrEventResult(Outcome.IGNORED, event, f"cluster {cid} is gone: no longer managed")
    gid = event.group_id
    if not supports(ports.state, CapacityErrorRecorder) or gid is None:
        why = f"the state store ({type(ports.state).__name__}) cannot record capacity errors"
        return EmrEventResult(Outcome.IGNORED, event, why)
    store = cast(CapacityErrorRecorder, ports.state)
    with shell.lease(owner, wait=lease_wait, required=True):
        new_error = store.record_capacity_error(cid, gid, min(event.at, now))
    log.warning(
        "capacity error recorded",
        extra={"cluster_id": cid, "group_id": gid, "kind": event.kind.value, "new": new_error},
    )
    return _rerun_and_tell(shell, event, gid, owner=owner, new_error=new_error)


def _confirm_terminated(*, now: datetime, event: EmrEvent, ports: Ports, config: Config) -> EmrEventResult:
    """Mark the cluster gone only when EMR confirms it (see the module docstring)."""
    cid = event.cluster_id
    why = f"EMR reported {event.state} at {event.at.isoformat()}" + (
        f" ({quote(event.reason)})" if event.reason else ""
    )
    try:
        cluster = ports.clusters.read_cluster(cid)
    except ClusterGone as exc:
        run = mark_gone(now=now, cluster_id=cid, ports=ports, config=config, why=f"{why}; confirmed: {exc}")
        return EmrEventResult(Outcome.CLUSTER_GONE, event, run.detail, run=run)
    reason = (
        f"{why}, but DescribeCluster reports {cid} as {cluster.state.value}: not marked gone, still managed"
    )
    log.warning("unconfirmed termination event", extra={"cluster_id": cid, "state": cluster.state.value})
    return EmrEventResult(Outcome.IGNORED, event, reason)


def _rerun_and_tell(
    shell: Shell, event: EmrEvent, group_id: str, *, owner: str, new_error: bool
) -> EmrEventResult:
    """run_once at once; the fallback notice (carrying the decision's own notice) when none went out within
    REPEAT_NOTICE_S for this group."""
    ports, cid, key = shell.ports, shell.cluster_id, notices.fallback_key(group_id)
    holding = _HoldDecisionNotices(ports.notifier) if shell.claimed_at(key) is None else None
    run_ports = ports if holding is None else replace(ports, notifier=holding)
    run = run_once(now=shell.now, cluster_id=cid, ports=run_ports, config=shell.config, owner=owner)
    result = EmrEventResult(Outcome.FALLBACK, event, _summary(event, run), run=run, new_error=new_error)
    if holding is None:
        return result
    if run.outcome == Outcome.CLUSTER_GONE or not shell.claim(key, REPEAT_NOTICE_S):
        for held in holding.held:  # no fallback notice after all: the decision's own notices go as they are
            shell.send(held)
        return replace(result, notify_failures=shell.notify_failures)
    notice = notices.fallback_notice(event=event, run=run, config=shell.config, held=holding.held)
    shell.send(notice)
    return replace(result, notice=notice, notify_failures=shell.notify_failures)


def _summary(event: EmrEvent, run: RunResult) -> str:
    d = run.decision
    moved = ""
    if d is not None and run.outcome in (Outcome.APPLIED, Outcome.DRY_RUN):
        moved = "; " + ", ".join(f"{t.group_id} {t.current}->{t.target}" for t in d.changes)
    what = "arrested" if event.kind is EmrEventKind.ARRESTED else "stuck for lack of capacity"
    return f"{event.group_id} {what}: capacity error recorded; the scaler's evaluation: {run.outcome}{moved}"
