"""EC2 spot events as a typed SpotEvent (pure): "EC2 Spot Instance Interruption Warning" (two minutes
before EC2 reclaims the instance) and "EC2 Instance Rebalance Recommendation" (it is at elevated risk)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events.envelope import Envelope, parse_envelope, quote


class SpotEventKind(StrEnum):
    INTERRUPTION = "interruption"
    REBALANCE = "rebalance"


DETAIL_TYPES: Final = {
    names.DETAIL_SPOT_INTERRUPTION: SpotEventKind.INTERRUPTION,
    names.DETAIL_REBALANCE_RECOMMENDATION: SpotEventKind.REBALANCE,
}
# How long after its `time` a spot event is still worth acting on (events.REGISTRY applies them with `now`):
# an interruption warning comes two minutes before EC2 reclaims the instance, after which the node is gone
# and EMR's own capacity events take over; a rebalance recommendation has no deadline, but a real one reaches
# the Lambda within EventBridge's 2 minutes plus Lambda's async retries (5 minutes), so older is a replay.
INTERRUPTION_MAX_AGE_S: Final = 120.0
INSTANCE_ACTIONS: Final = frozenset({"terminate", "stop", "hibernate"})
REBALANCE_MAX_AGE_S: Final = 600.0
_INSTANCE_ID: Final = re.compile(r"i-[0-9a-f]{8,17}")  # fullmatch: "$" would let a final newline in


@dataclass(frozen=True, slots=True)
class SpotEvent:
    kind: SpotEventKind
    instance_id: str
    at: datetime  # the event's `time`
    region: str
    event_id: str
    action: str | None = None  # interruption: "terminate" | "stop" | "hibernate"


def from_envelope(env: Envelope, managed_clusters: Collection[str] | None = None) -> SpotEvent:
    """The spot event in an EventBridge envelope, or BadEvent with a one-line reason. (The event names an
    instance, not a cluster: `managed_clusters` is for the use case's instance lookup, not checked here.)"""
    if env.source != names.EVENT_SOURCE_EC2:
        raise BadEvent(f"not an EC2 event (source {quote(env.source)!r})")
    kind = DETAIL_TYPES.get(env.detail_type)
    if kind is None:
        raise BadEvent(f"not a spot interruption or rebalance event (detail-type {quote(env.detail_type)!r})")
    instance_id = env.detail.get("instance-id")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise BadEvent(f"{env.detail_type}: bad instance-id {quote(instance_id)!r}")
    action = env.detail.get("instance-action")
    if isinstance(action, str) and action not in INSTANCE_ACTIONS:
        action = quote(action)
    return SpotEvent(
        kind=kind,
        instance_id=instance_id,
        at=env.at,
        region=env.region,
        event_id=env.event_id,
        action=action if isinstance(action, str) else None,
    )


def parse_spot_event(event: Any) -> SpotEvent:
    """An EventBridge spot interruption / rebalance event, or BadEvent with a one-line reason."""
    return from_envelope(parse_envelope(event))
