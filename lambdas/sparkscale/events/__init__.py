"""Every event sparkscale accepts, parsed at the edge into one typed value (pure).

- `envelope.py`: the EventBridge envelope all families share (source, detail-type, id, time; one age check);
- `jsontext.py`: JSON text inside an event, loaded only when small and shallow enough;
- `alarm.py`: CloudWatch alarm state changes in every shape they arrive in (SNS, SQS, EventBridge, bare);
- `spot.py`: EC2 spot interruption warnings and rebalance recommendations;
- `emr.py`: EMR instance-group capacity problems and cluster terminations;
- `fleet.py`: EMR instance-fleet resize timeouts (the TASK fleet's spot units did not come).

EventBridge events are dispatched through REGISTRY, keyed by (source, detail-type) as the stack's rules route
them (the constants are in sparkscale.names, shared with infra/). An event no entry knows, or one routed to a
handler of another family, is a BadEvent with one reason: the handler logs and counts it and does nothing.
Given `now`, the registry's age bounds apply too: an entry's `max_age_s` (a spot interruption warning is
worth acting on only within its two minutes) and MAX_AHEAD_S for every event dated in the future.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events import alarm, emr, fleet, spot
from sparkscale.events.alarm import AlarmTrigger
from sparkscale.events.emr import EmrEvent
from sparkscale.events.envelope import Envelope, parse_envelope, quote
from sparkscale.events.spot import SpotEvent

ParsedEvent = AlarmTrigger | SpotEvent | EmrEvent

FAMILY_ALARM: Final = "alarm"
FAMILY_SPOT: Final = "spot"
FAMILY_EMR: Final = "emr"
FAMILY_EVENTS: Final = {  # what a rejected event is not, in its one-line reason
    FAMILY_ALARM: "a CloudWatch alarm state change",
    FAMILY_SPOT: "a spot interruption or rebalance event",
    FAMILY_EMR: "an EMR instance-group or cluster state change",
}


# EC2, EMR and Lambda clocks are NTP-synchronised: an event dated more than this after `now` is not acted on.
MAX_AHEAD_S: Final = 60.0


class Entry(NamedTuple):
    family: str
    parse: Callable[[Envelope, Collection[str] | None], ParsedEvent]
    max_age_s: float | None = None  # None: an old event is still true (a cluster stays terminated)


REGISTRY: Final[Mapping[tuple[str, str], Entry]] = {
    (names.EVENT_SOURCE_CLOUDWATCH, names.DETAIL_ALARM_STATE_CHANGE): Entry(
        FAMILY_ALARM, alarm.from_envelope
    ),
    (names.EVENT_SOURCE_EC2, names.DETAIL_SPOT_INTERRUPTION): Entry(
        FAMILY_SPOT, spot.from_envelope, spot.INTERRUPTION_MAX_AGE_S
    ),
    (names.EVENT_SOURCE_EC2, names.DETAIL_REBALANCE_RECOMMENDATION): Entry(
        FAMILY_SPOT, spot.from_envelope, spot.REBALANCE_MAX_AGE_S
    ),
    (names.EVENT_SOURCE_EMR, names.DETAIL_EMR_GROUP_STATE_CHANGE): Entry(FAMILY_EMR, emr.from_envelope),
    (names.EVENT_SOURCE_EMR, names.DETAIL_EMR_CLUSTER_STATE_CHANGE): Entry(FAMILY_EMR, emr.from_envelope),
    (names.EVENT_SOURCE_EMR, names.DETAIL_EMR_FLEET_RESIZE): Entry(FAMILY_EMR, fleet.from_envelope),
}


def parse_eventbridge(
    event: Any,
    *,
    family: str,
    managed_clusters: Collection[str] | None = None,
    now: datetime | None = None,
) -> ParsedEvent:
    """The typed event of one EventBridge event for a handler of `family`, or BadEvent with one reason (never
    another exception). With `now`, an event outside its entry's age bounds is a BadEvent too."""
    env = parse_envelope(event)
    entry = REGISTRY.get((env.source, env.detail_type))
    if entry is None or entry.family != family:
        what = FAMILY_EVENTS.get(family, f"a {family} event")
        raise BadEvent(f"{quote(env.detail_type)!r} from {quote(env.source)!r} is not {what}")
    parsed = entry.parse(env, managed_clusters)
    if now is not None:
        env.check_age(now, max_age_s=entry.max_age_s or float("inf"), max_ahead_s=MAX_AHEAD_S)
    return parsed


__all__ = [
    "FAMILY_ALARM",
    "FAMILY_EMR",
    "FAMILY_SPOT",
    "MAX_AHEAD_S",
    "REGISTRY",
    "AlarmTrigger",
    "EmrEvent",
    "Envelope",
    "ParsedEvent",
    "SpotEvent",
    "parse_eventbridge",
]
