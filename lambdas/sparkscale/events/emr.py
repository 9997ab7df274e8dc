"""EMR events: "EMR Instance Group State Change" saying a SPOT TASK group is stuck for lack of capacity or was
arrested, and "EMR Cluster State Change" to TERMINATED, as a typed EmrEvent (pure).

The message templates are in the EMR management guide's event table:
- "The resizing operation for instance group <id> in Amazon EMR cluster <id> (<name>) is stuck for the
  following reason: <ReasonDesc>." (severity WARNING, state RESIZING), acted on when the reason is about
  capacity (CAPACITY_PATTERNS, case-insensitive);
- "Instance group <id> in Amazon EMR cluster <id> (<name>) was arrested at <time> for the following reason:
  <ReasonDesc>." (severity ERROR, state SUSPENDED), acted on whatever the reason.
Everything else (CORE/MASTER or ON_DEMAND groups, INFO resize messages, a resize stuck for another reason, a
cluster in another state) is a BadEvent with a one-line reason.

Every pattern applied to a message runs in linear time: the markers are literal phrases found one after the
other (a lazy `was arrested at.*?for the following reason` scanned the rest of a message from every
occurrence of its first phrase: 30 s for 256 KB). What an EmrEvent keeps of a message or reason is at most
MAX_TEXT_CHARS.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events.envelope import Envelope, parse_envelope, quote
from sparkscale.events.jsontext import load_json
from sparkscale.policy.model import Market

DETAIL_TYPES: Final = (names.DETAIL_EMR_GROUP_STATE_CHANGE, names.DETAIL_EMR_CLUSTER_STATE_CHANGE)
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
# The markers of EMR's two message templates: literal phrases, searched one after the other (linear).
_STUCK: Final = re.compile(r"\bis stuck for the following reason:", re.IGNORECASE)
_ARRESTED_AT: Final = re.compile(r"\bwas arrested at\b", re.IGNORECASE)
_FOR_REASON: Final = re.compile(r"\bfor the following reason:", re.IGNORECASE)
MAX_TEXT_CHARS: Final = 1024  # EMR's messages are a few hundred characters; notices quote what is kept
MAX_STATE_CHANGE_CHARS: Final = 16 * 1024  # stateChangeReason is a small JSON object as a string
_CLUSTER_ID: Final = re.compile(r"j-[A-Za-z0-9]{1,64}")  # fullmatch: "$" would let a final newline in
_GROUP_ID: Final = re.compile(r"[a-z]{1,4}-[A-Za-z0-9]{1,64}")  # ig-… (moto: i-…)
_COUNT: Final = re.compile(r"[0-9]{1,9}")
MAX_COUNT: Final = 999_999_999


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
    """An EMR event sparkscale acts on, or BadEvent with a one-line reason (never another exception)."""
    return from_envelope(parse_envelope(event), managed_clusters)


def from_envelope(env: Envelope, managed_clusters: Collection[str] | None = None) -> EmrEvent:
    """BadEvent.cluster_id is set only for a managed cluster (the RejectedEvents dimension stays bounded)."""
    if env.source != names.EVENT_SOURCE_EMR:
        raise BadEvent(f"not an EMR event (source {quote(env.source)!r})")
    detail_type, detail = env.detail_type, env.detail
    if detail_type not in DETAIL_TYPES:
        raise BadEvent(f"EMR event {quote(detail_type)!r} is not an instance-group or cluster state change")
    cid = detail.get("clusterId")
    if not isinstance(cid, str) or not _CLUSTER_ID.fullmatch(cid):
        raise BadEvent(f"{detail_type}: bad clusterId {quote(cid)!r}")
    if managed_clusters is not None and cid not in managed_clusters:
        raise BadEvent(f"{detail_type}: cluster {cid} is not managed by this deployment")
    state = _word(detail.get("state"))
    base: dict[str, Any] = {
        "cluster_id": cid,
        "at": env.at,
        "event_id": env.event_id,
        "state": state,
        "severity": _word(detail.get("severity")),
        "message": _text(detail.get("message")),
    }
    if detail_type == names.DETAIL_EMR_CLUSTER_STATE_CHANGE:
        if state not in TERMINATED_STATES:
            raise BadEvent(
                f"cluster {cid} is {state or 'in no state'}: only TERMINATED / TERMINATED_WITH_ERRORS are "
                "acted on",
                cluster_id=cid,
            )
        return EmrEvent(
            kind=EmrEventKind.CLUSTER_TERMINATED,
            reason=_state_change(detail.get("stateChangeReason")),
            **{**base, "message": _clip(base["message"])},
        )
    return _group_event(detail, base)


def _group_event(detail: Mapping[str, Any], base: dict[str, Any]) -> EmrEvent:
    cid: str = base["cluster_id"]
    gid = detail.get("instanceGroupId")
    if not isinstance(gid, str) or not _GROUP_ID.fullmatch(gid):
        raise BadEvent(f"instance group event for {cid}: bad instanceGroupId {quote(gid)!r}", cluster_id=cid)
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
    arrested = arrested_reason(message)
    stuck = stuck_reason(message)
    if arrested is not None or base["state"] in ARRESTED_STATES:
        kind, reason = EmrEventKind.ARRESTED, arrested or message
    elif stuck is not None:
        reason = stuck
        if not capacity_reason(reason):
            raise BadEvent(
                f"resize of {gid} in {cid} is stuck for a reason that is not about capacity: {quote(reason)}",
                cluster_id=cid,
            )
        kind = EmrEventKind.CAPACITY
    else:
        raise BadEvent(
            f"{gid} in {cid}: {base['severity'] or '?'} {base['state'] or '?'} event is not a capacity "
            f"problem: {quote(message)}",
            cluster_id=cid,
        )
    return EmrEvent(
        kind=kind,
        reason=_clip(reason),
        group_id=gid,
        instance_type=quote(_text(detail.get("instanceType"))) or None,
        requested=_count(detail.get("requestedInstanceCount")),
        running=_count(detail.get("runningInstanceCount")),
        **{**base, "message": _clip(message)},
    )


def stuck_reason(message: str) -> str | None:
    """The ReasonDesc of "... is stuck for the following reason: <ReasonDesc>.", else None (linear)."""
    m = _STUCK.search(message)
    return None if m is None else _after(message, m.end())


def arrested_reason(message: str) -> str | None:
    """The ReasonDesc of "... was arrested at <time> for the following reason: <ReasonDesc>.", else None.
    Two literal searches, the second from where the first ended: linear in len(message)."""
    at = _ARRESTED_AT.search(message)
    if at is None:
        return None
    why = _FOR_REASON.search(message, at.end())
    return None if why is None else _after(message, why.end())


def _after(message: str, start: int) -> str:
    return message[start:].strip().rstrip(".").strip()


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 3] + "..."


def _state_change(raw: Any) -> str:
    """EMR's stateChangeReason is a JSON string {"code": ..., "message": ...}: as 'CODE: message'."""
    text = _text(raw)
    try:
        obj = load_json(text, what="stateChangeReason", max_chars=MAX_STATE_CHANGE_CHARS)
    except BadEvent:
        return _clip(text)
    if not isinstance(obj, Mapping):
        return _clip(text)
    parts = [_text(obj.get("code")), _text(obj.get("message"))]
    return _clip(": ".join(p for p in parts if p))


def _text(v: Any) -> str:
    """A string field with its whitespace squashed (so that reasons stay one line); "" for anything else."""
    return " ".join(v.split()) if isinstance(v, str) else ""


def _word(v: Any) -> str:
    """A short upper-case field (state, severity, group type, market), as quoted in a reason."""
    return quote(_text(v)).upper()


def _count(v: Any) -> int | None:
    """EMR sends the counts as strings ("2")."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v if 0 <= v <= MAX_COUNT else None
    if isinstance(v, str) and _COUNT.fullmatch(v.strip()):  # ASCII digits only: int("²") raises
        return int(v.strip())
    return None
