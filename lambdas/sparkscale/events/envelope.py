"""The EventBridge envelope every event family shares: source, detail-type, id, time, region, detail.

Parsed once at the edge with one set of checks, so the family parsers (spot.py, emr.py, alarm.py) only read
their own `detail`. Powertools' `EventBridgeEvent` data class would give the same fields, but it reads the raw
dict without checking types (a `time` that is a number, or a `detail` that is a list, raise KeyError or
TypeError deep inside a handler), and its Parser models need pydantic at cold start; this parser is total:
anything malformed is a BadEvent with one reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sparkscale.errors import BadEvent

MAX_QUOTE_CHARS: Final = 160  # how much of a bad value a one-line reason quotes


@dataclass(frozen=True, slots=True)
class Envelope:
    source: str
    detail_type: str
    event_id: str
    at: datetime  # the event's `time`, timezone-aware
    region: str
    detail: Mapping[str, Any]

    def age_s(self, now: datetime) -> float:
        """Seconds from the event's time to `now` (negative for an event dated in the future)."""
        return (now - self.at).total_seconds()

    def check_age(self, now: datetime, *, max_age_s: float, max_ahead_s: float = 300.0) -> None:
        """The one age check: BadEvent for an event older than `max_age_s` or dated more than `max_ahead_s`
        after `now` (clocks differ by seconds, not minutes)."""
        age = self.age_s(now)
        if age > max_age_s:
            raise BadEvent(
                f"{self.detail_type} {self.event_id or '-'} is {age:.0f} s old (more than "
                f"{max_age_s:.0f} s): too old to act on"
            )
        if age < -max_ahead_s:
            raise BadEvent(
                f"{self.detail_type} {self.event_id or '-'} is dated {-age:.0f} s in the future: not acted on"
            )


def quote(v: Any) -> str:
    """A value as a one-line reason quotes it: whitespace squashed, at most MAX_QUOTE_CHARS characters."""
    text = " ".join(str(v).split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 3] + "..."


def parse_event_time(raw: Any) -> datetime | None:
    """An EventBridge `time` (ISO 8601 with a zone, "Z" included) as an aware datetime, else None."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def parse_envelope(event: Any) -> Envelope:
    """The envelope of an EventBridge event, or BadEvent with a one-line reason (never another exception)."""
    if not isinstance(event, Mapping):
        raise BadEvent(f"not an EventBridge event: {type(event).__name__}")
    source, detail_type = event.get("source"), event.get("detail-type")
    if not isinstance(source, str) or not isinstance(detail_type, str):
        raise BadEvent(
            f"not an EventBridge event (source {quote(source)!r}, detail-type {quote(detail_type)!r})"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise BadEvent(f"{quote(detail_type)}: no detail")
    at = parse_event_time(event.get("time"))
    if at is None:
        raise BadEvent(f"{quote(detail_type)}: bad time {quote(event.get('time'))!r}")
    event_id, region = event.get("id"), event.get("region")
    return Envelope(
        source=source,
        detail_type=detail_type,
        event_id=event_id if isinstance(event_id, str) else "",
        at=at,
        region=region if isinstance(region, str) else "",
        detail=detail,
    )
