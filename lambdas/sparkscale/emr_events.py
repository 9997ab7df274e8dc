"""EMR capacity events: a SPOT task group that EMR cannot fill falls back at once, not after a timeout.

Without these events the policy notices a spot group that does not deliver only when its requested nodes have
been missing for `spot_fallback_timeout_s`. EMR says so sooner, on EventBridge ("EMR Instance Group State
Change", source aws.emr; the message templates are in the EMR management guide's event table):

- "The resizing operation for instance group <id> in Amazon EMR cluster <id> (<name>) is stuck for the
  following reason: <ReasonDesc>." (severity WARNING, state RESIZING), acted on when the reason is about
  capacity (CAPACITY_PATTERNS, case-insensitive: insufficient capacity, no spot capacity, capacity not
  available, ...);
- "Instance group <id> in Amazon EMR cluster <id> (<name>) was arrested at <time> for the following reason:
  <ReasonDesc>." (severity ERROR, state SUSPENDED), acted on whatever the reason.

For such an event about a SPOT TASK group of a managed cluster, `handle_emr_event`:

1. records ScalerState.capacity_errors[group] = the event time in the persisted state, under the cluster's
   lease (ports.CapacityErrorRecorder). The policy (policy/fallback.py) then gives that group no new capacity,
   stops counting its undelivered nodes as coming, and puts the unmet part on the next cheapest SPOT group,
   then on an ON_DEMAND TASK group when `on_demand_fallback`; next_state clears the error once the group has
   delivered and `spot_fallback_timeout_s` has passed, and capacity moves back to spot;
2. runs `service.run_once` for the cluster at once, so the unmet part moves now, not at the next alarm;
3. tells operators once (Notice kind "fallback", at most hourly per group through the notice ledger): which
   group was blocked and why, and where the capacity went. The scaler's own notice of that decision travels
   inside it, so a capacity event gives one message, not two.

"EMR Cluster State Change" to TERMINATED / TERMINATED_WITH_ERRORS marks a managed cluster gone exactly as
run_once does on ClusterGone (service.mark_gone: notified once, then no longer evaluated).

Everything else (other detail types and sources, unmanaged clusters, CORE/MASTER or ON_DEMAND groups, INFO
resize messages, a resize stuck for another reason) is a BadEvent with a one-line reason, or an IGNORED
result; nothing changes. Parsing and the notice are pure; `handle_emr_event` reaches the world only through
the injected ports.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sparkscale import notify
from sparkscale.config import Config
from sparkscale.errors import BadEvent, LeaseHeld, SparkscaleError
from sparkscale.interruptions import parse_event_time
from sparkscale.policy.model import Market
from sparkscale.ports import CapacityErrorRecorder, Notice, Notifier, Ports
from sparkscale.service import (
    Outcome,
    RunResult,
    acquire_lease_waiting,
    claim_notice,
    is_gone,
    mark_gone,
    run_once,
)

log = logging.getLogger(__name__)

SOURCE: Final = "aws.emr"
DETAIL_TYPE_GROUP: Final = "EMR Instance Group State Change"
DETAIL_TYPE_CLUSTER: Final = "EMR Cluster State Change"
DETAIL_TYPES: Final = (DETAIL_TYPE_GROUP, DETAIL_TYPE_CLUSTER)
TERMINATED_STATES: Final = frozenset({"TERMINATED", "TERMINATED_WITH_ERRORS"})
ARRESTED_STATES: Final = frozenset({"SUSPENDED", "ARRESTED"})
# What a "stuck" ReasonDesc says when EC2 has no capacity for the group (matched case-insensitively): EMR's
# event code "EC2 provisioning - Insufficient Instance Capacity", EC2's InsufficientInstanceCapacity and
# UnfulfillableCapacity error codes, and the plain-English forms.
CAPACITY_PATTERNS: Final = (
    r"insufficient[\s_-]*(?:instance[\s_-]*|spot[\s_-]*|ec2[\s_-]*)?capacity",
    r"no[\s_-]+(?:available[\s_-]+)?spot[\s_-]+capacity",
    r"capacity[\s_-]+(?:is[\s_-]+)?not[\s_-]+available",
    r"not[\s_-]+enough[\s_-]+(?:spot[\s_-]+|instance[\s_-]+)?capacity",
    r"unfulfillable[\s_-]*capacity",
)
_CAPACITY: Final = re.compile("|".join(CAPACITY_PATTERNS), re.IGNORECASE)
_STUCK: Final = re.compile(
    r"\bis stuck for the following reason:\s*(?P<reason>.*)", re.IGNORECASE | re.DOTALL
)
_ARRESTED: Final = re.compile(
    r"\bwas arrested at\b.*?\bfor the following reason:\s*(?P<reason>.*)", re.IGNORECASE | re.DOTALL
)
_CLUSTER_ID: Final = re.compile(r"^j-[A-Za-z0-9]{1,64}$")
_GROUP_ID: Final = re.compile(r"^[a-z]{1,4}-[A-Za-z0-9]{1,64}$")  # ig-… (moto: i-…)
_MAX_TEXT: Final = 160  # how much of EMR's message a one-line reason quotes
_SUBJECT_MAX: Final = 99


# --- the events (pure) -------------------------------------------------------------------------------------
class EmrEventKind(StrEnum):
    CAPACITY = "capacity"  # a SPOT TASK group's resize is stuck for lack of capacity
    ARRESTED = "arrested"  # a SPOT TASK group was arrested (SUSPENDED)
    CLUSTER_TERMINATED = "cluster_terminated"


@dataclass(frozen=True, slots=True)
class EmrEvent:
    kind: EmrEventKind
    cluster_id: str
    at: datetime  # the event's `time`
    event_id: str
    state: str
    severity: str
    message: str
    reason: str = ""  # EMR's ReasonDesc (stuck / arrested), or the termination's stateChangeReason
    group_id: str | None = None
    instance_type: str | None = None
    requested: int | None = None  # detail numbers arrive as strings
    running: int | None = None


def capacity_reason(text: str) -> bool:
    """Does EMR's ReasonDesc say the group lacks capacity? (CAPACITY_PATTERNS, case-insensitive)"""
    return _CAPACITY.search(text) is not None


def parse_emr_event(event: Any, *, managed_clusters: Collection[str] | None = None) -> EmrEvent:
    """An EMR event sparkscale acts on, or BadEvent with a one-line reason (never another exception).

    BadEvent.cluster_id is set only for a managed cluster (the RejectedEvents dimension stays bounded)."""
    if not isinstance(event, Mapping):
        raise BadEvent(f"not an EventBridge event: {type(event).__name__}")
    if event.get("source") != SOURCE:
        raise BadEvent(f"not an EMR event (source {_short(event.get('source'))!r})")
    detail_type = event.get("detail-type")
    if detail_type not in DETAIL_TYPES:
        raise BadEvent(f"EMR event {_short(detail_type)!r} is not an instance-group or cluster state change")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise BadEvent(f"{detail_type}: no detail")
    cid = detail.get("clusterId")
    if not isinstance(cid, str) or not _CLUSTER_ID.match(cid):
        raise BadEvent(f"{detail_type}: bad clusterId {_short(cid)!r}")
    if managed_clusters is not None and cid not in managed_clusters:
        raise BadEvent(f"{detail_type}: cluster {cid} is not managed by this deployment")
    at = parse_event_time(event.get("time"))
    if at is None:
        raise BadEvent(f"{detail_type} for {cid}: bad time {_short(event.get('time'))!r}", cluster_id=cid)
    state = _word(detail.get("state"))
    base: dict[str, Any] = {
        "cluster_id": cid,
        "at": at,
        "event_id": _text(event.get("id")),
        "state": state,
        "severity": _word(detail.get("severity")),
        "message": _text(detail.get("message")),
    }
    if detail_type == DETAIL_TYPE_CLUSTER:
        if state not in TERMINATED_STATES:
            raise BadEvent(
                f"cluster {cid} is {state or 'in no state'}: only TERMINATED / TERMINATED_WITH_ERRORS are "
                "acted on",
                cluster_id=cid,
            )
        return EmrEvent(
            kind=EmrEventKind.CLUSTER_TERMINATED,
            reason=_state_change(detail.get("stateChangeReason")),
            **base,
        )
    return _group_event(detail, base)


def _group_event(detail: Mapping[str, Any], base: dict[str, Any]) -> EmrEvent:
    cid: str = base["cluster_id"]
    gid = detail.get("instanceGroupId")
    if not isinstance(gid, str) or not _GROUP_ID.match(gid):
        raise BadEvent(f"instance group event for {cid}: bad instanceGroupId {_short(gid)!r}", cluster_id=cid)
    role = _word(detail.get("instanceGroupType"))
    if role != "TASK":
        raise BadEvent(
            f"{gid} in {cid} is a {role or 'typeless'} group: only SPOT TASK groups fall back", cluster_id=cid
        )
    market = _word(detail.get("market"))
    if market != Market.SPOT.value:
        raise BadEvent(
            f"{gid} in {cid} is an {market or 'unknown-market'} TASK group: only SPOT TASK groups fall back",
            cluster_id=cid,
        )
    message: str = base["message"]
    arrested = _ARRESTED.search(message)
    stuck = _STUCK.search(message)
    if arrested is not None or base["state"] in ARRESTED_STATES:
        kind, reason = EmrEventKind.ARRESTED, _reason(arrested) or message
    elif stuck is not None:
        reason = _reason(stuck)
        if not capacity_reason(reason):
            raise BadEvent(
                f"resize of {gid} in {cid} is stuck for a reason that is not about capacity: "
                f"{_short(reason)}",
                cluster_id=cid,
            )
        kind = EmrEventKind.CAPACITY
    else:
        raise BadEvent(
            f"{gid} in {cid}: {base['severity'] or '?'} {base['state'] or '?'} event is not a capacity "
            f"problem: {_short(message)}",
            cluster_id=cid,
        )
    return EmrEvent(
        kind=kind,
        reason=reason,
        group_id=gid,
        instance_type=_text(detail.get("instanceType")) or None,
        requested=_count(detail.get("requestedInstanceCount")),
        running=_count(detail.get("runningInstanceCount")),
        **base,
    )


def _reason(m: re.Match[str] | None) -> str:
    return "" if m is None else m.group("reason").strip().rstrip(".").strip()


def _state_change(raw: Any) -> str:
    """EMR's stateChangeReason is a JSON string {"code": ..., "message": ...}: as 'CODE: message'."""
    text = _text(raw)
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if not isinstance(obj, Mapping):
        return text
    parts = [_text(obj.get("code")), _text(obj.get("message"))]
    return ": ".join(p for p in parts if p)


def _text(v: Any) -> str:
    """A string field with its whitespace squashed (so that reasons stay one line); "" for anything else."""
    return " ".join(v.split()) if isinstance(v, str) else ""


def _word(v: Any) -> str:
    """A short upper-case field (state, severity, group type, market), as quoted in a reason."""
    return _short(_text(v)).upper()


def _short(v: Any) -> str:
    text = " ".join(str(v).split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _count(v: Any) -> int | None:
    """EMR sends the counts as strings ("2")."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if v >= 0 else None
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


# --- the operator notice (pure) ----------------------------------------------------------------------------
def fallback_key(group_id: str) -> str:
    """The notice-ledger key: one fallback notice per group per REPEAT_NOTICE_S."""
    return f"fallback:{group_id}"


def fallback_notice(
    *, event: EmrEvent, run: RunResult, config: Config, held: Sequence[Notice] = ()
) -> Notice:
    """One operator message for a capacity event: which group is blocked and why (EMR's words), what the
    scaler did about it now (where the capacity went), and the scaler's own decision notice (`held`)."""
    gid = event.group_id or "?"
    d = run.decision
    who = notify.group_label(gid, d, None)
    if who == gid and event.instance_type:
        who = f"{gid} (SPOT {event.instance_type})"
    acted = d is not None and run.outcome in (Outcome.APPLIED, Outcome.DRY_RUN)
    changes = d.changes if d is not None and acted else ()
    went = [t for t in changes if t.target > t.current]
    what = "arrested" if event.kind is EmrEventKind.ARRESTED else "no capacity"
    headline = f"spot fallback: {gid} ({what})"
    if went:
        dest = ", ".join(
            dict.fromkeys(
                t.instance_type + (" on-demand" if t.market is Market.ON_DEMAND else "") for t in went
            )
        )
        headline += f" -> {dest}"
    dry = "[DRY RUN] " if went and run.outcome == Outcome.DRY_RUN else ""
    subject = f"{dry}sparkscale {event.cluster_id}: {headline}"
    if len(subject) > _SUBJECT_MAX:
        subject = subject[: _SUBJECT_MAX - 3] + "..."
    counts = (
        f", {event.running} of {event.requested} requested nodes running"
        if event.running is not None and event.requested is not None
        else ""
    )
    od = (
        "then to an ON_DEMAND TASK group (on_demand_fallback is on)"
        if config.on_demand_fallback
        else "not to ON_DEMAND groups (on_demand_fallback is off)"
    )
    lines = [
        f"Cluster:    {event.cluster_id}",
        f"Group:      {who}{counts}",
        f"EMR event:  {event.severity or '?'} {event.state or '?'} at {event.at.isoformat()} "
        f"(id {event.event_id or '-'})",
        f"EMR says:   {event.message or event.reason}",
        "",
        f"sparkscale gives {gid} no new capacity until it runs all its requested nodes and "
        f"spot_fallback_timeout_s ({config.spot_fallback_timeout_s} s) has passed since EMR's report; EMR "
        "keeps trying to fill what it was already asked for. The unmet part goes to the next cheapest SPOT "
        f"TASK group, {od}. Capacity moves back to spot once the group delivers again.",
        "",
    ]
    if changes:
        lines.append("What the scaler did now" + (" (DRY RUN: nothing changed):" if d and d.dry_run else ":"))
        lines += [
            f"  {notify.group_label(t.group_id, d, None)}: {t.current} -> {t.target} nodes "
            f"(${t.usd_per_hour_per_node:.4f}/node-hour)"
            for t in changes
        ]
    else:
        detail = f": {run.detail}" if run.detail else ""
        lines.append(
            f"What the scaler did now: no change ({run.outcome}{detail}). The next evaluation that needs "
            "capacity puts it on the other TASK groups."
        )
    for n in held:
        body = n.body.split("\n--\nsparkscale |", 1)[0].rstrip()  # without its footer: this one has its own
        lines += ["", f"The scaler's decision ({n.subject}):", "", body]
    lines += ["", f"--\nsparkscale | cluster {event.cluster_id} | kind {notify.KIND_FALLBACK}"]
    return Notice(
        kind=notify.KIND_FALLBACK, cluster_id=event.cluster_id, subject=subject, body="\n".join(lines)
    )


# --- orchestration through the ports -----------------------------------------------------------------------
class Result(StrEnum):
    FALLBACK = "fallback"  # the capacity error is recorded and the scaler re-ran
    CLUSTER_GONE = "cluster_gone"  # a TERMINATED cluster was marked gone
    IGNORED = "ignored"  # nothing to do (the cluster is gone already, the store cannot record errors)


@dataclass(frozen=True)
class EmrEventResult:
    result: Result
    event: EmrEvent
    reason: str
    run: RunResult | None = None
    new_error: bool = False  # the group had no capacity error recorded before
    notice: Notice | None = None  # the fallback notice sent (None: not due, or not sent)
    notify_failed: bool = False


_HELD_KINDS: Final = frozenset({notify.KIND_ACTION, notify.KIND_DRY_RUN})


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

    def release(self) -> bool:
        """Send the held notices as they are (no fallback notice after all). False if one failed."""
        ok = True
        for n in self.held:
            try:
                self.inner.notify(n)
            except Exception as exc:  # a notice never fails the event: the record is saved
                log.error("notice %s for %s not sent: %s", n.kind, n.cluster_id, exc)
                ok = False
        self.held.clear()
        return ok


def handle_emr_event(
    *,
    now: datetime,
    event: EmrEvent,
    ports: Ports,
    config: Config,
    owner: str,
    lease_attempts: int = 5,
    lease_wait_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> EmrEventResult:
    """Record → re-decide → tell (see the module docstring). Raises LeaseHeld when the scaler keeps the
    cluster's lease for every attempt, and Throttled / TransientAwsError from the store or run_once, so that
    Lambda retries the event; every other expected condition is a result."""
    cid = event.cluster_id
    if event.kind is EmrEventKind.CLUSTER_TERMINATED:
        why = f"EMR reported {event.state} at {event.at.isoformat()}" + (
            f" ({_short(event.reason)})" if event.reason else ""
        )
        run = mark_gone(now=now, cluster_id=cid, ports=ports, why=why)
        return EmrEventResult(Result.CLUSTER_GONE, event, run.detail, run=run)
    if is_gone(ports, cid, now):
        return EmrEventResult(Result.IGNORED, event, f"cluster {cid} is gone: no longer managed")
    store = ports.state
    gid = event.group_id
    if not isinstance(store, CapacityErrorRecorder) or gid is None:
        why = f"the state store ({type(store).__name__}) cannot record capacity errors"
        return EmrEventResult(Result.IGNORED, event, why)
    if not acquire_lease_waiting(
        ports=ports, cluster_id=cid, owner=owner, now=now, config=config,
        attempts=lease_attempts, wait_s=lease_wait_s, sleep=sleep,
    ):  # fmt: skip
        raise LeaseHeld(f"{cid}: lease held by another evaluation")
    try:
        new_error = store.record_capacity_error(cid, gid, min(event.at, now))
    finally:
        try:
            ports.state.release_lease(cid, owner)
        except SparkscaleError as exc:  # the lease expires by itself; never mask the real outcome
            log.warning("could not release the lease of %s: %s", cid, exc)
    log.warning(
        "capacity error recorded",
        extra={"cluster_id": cid, "group_id": gid, "kind": event.kind.value, "new": new_error},
    )
    return _rerun_and_tell(
        now=now, event=event, group_id=gid, ports=ports, config=config, owner=owner, new_error=new_error
    )


def _rerun_and_tell(
    *,
    now: datetime,
    event: EmrEvent,
    group_id: str,
    ports: Ports,
    config: Config,
    owner: str,
    new_error: bool,
) -> EmrEventResult:
    """run_once at once; the fallback notice (carrying the decision's own notice) when none went out within
    REPEAT_NOTICE_S for this group."""
    cid, key = event.cluster_id, fallback_key(group_id)
    holding = _HoldDecisionNotices(ports.notifier) if _not_told(ports, cid, key, now) else None
    run_ports = ports if holding is None else replace(ports, notifier=holding)
    run = run_once(now=now, cluster_id=cid, ports=run_ports, config=config, owner=owner)
    result = EmrEventResult(Result.FALLBACK, event, _summary(event, run), run=run, new_error=new_error)
    if holding is None:
        return result
    if run.outcome == Outcome.CLUSTER_GONE or not claim_notice(ports, cid, key, now):
        return replace(result, notify_failed=not holding.release())
    notice = fallback_notice(event=event, run=run, config=config, held=holding.held)
    try:
        ports.notifier.notify(notice)
    except Exception as exc:  # the error is recorded and the decision applied: only the message is lost
        log.error("fallback notice for %s not sent: %s", cid, exc)
        return replace(result, notice=notice, notify_failed=True)
    return replace(result, notice=notice)


def _not_told(ports: Ports, cluster_id: str, key: str, now: datetime) -> bool:
    if ports.ledger is None:
        return True
    try:
        return ports.ledger.claimed_at(cluster_id, key, now) is None
    except SparkscaleError as exc:
        log.warning("notice ledger unavailable (%s): telling operators anyway", exc)
        return True


def _summary(event: EmrEvent, run: RunResult) -> str:
    d = run.decision
    moved = ""
    if d is not None and run.outcome in (Outcome.APPLIED, Outcome.DRY_RUN):
        moved = "; " + ", ".join(f"{t.group_id} {t.current}->{t.target}" for t in d.changes)
    what = "arrested" if event.kind is EmrEventKind.ARRESTED else "stuck for lack of capacity"
    return f"{event.group_id} {what}: capacity error recorded; the scaler's evaluation: {run.outcome}{moved}"
