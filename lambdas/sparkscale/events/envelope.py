"""The EventBridge envelope every event family shares: source, detail-type, id, time, region, detail.

Parsed once at the edge with one set of checks, so the family parsers (spot.py, emr.py, alarm.py) only read
their own `detail`. Powertools' `EventBridgeEvent` data class would give the same fields, but it reads the raw
dict without checking types (a `time` that is a number, or a `detail` that is a list, raise KeyError or
TypeError deep inside a handler), and its Parser models need pydantic at cold start; this parser is total:
anything malformed is a BadEvent with one reason. An event `time` must carry a zone and lie between
EARLIEST_EVENT_TIME and LATEST_EVENT_TIME (year 1 at +14:00 cannot even be converted to UTC); how old an event
may be to be acted on is each family's own bound (`Envelope.check_age`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sparkscale.errors import BadEvent

MAX_QUOTE_CHARS: Final = 160  # how much of a bad value a one-line reason quotes
MAX_ID_CHARS: Final = 256  # EventBridge ids and SNS MessageIds are UUIDs (36); they become idempotency keys
MAX_TIME_CHARS: Final = 64  # "2026-03-02T12:00:00.123456+00:00" is 32
MAX_REGION_CHARS: Final = 32  # "ap-southeast-4" is 14, an account id 12: longer is kept as ""
# Event times outside these are not dates AWS sends (EventBridge started in 2019, EMR events in 2016): a
# reason, never an OverflowError in a later subtraction.
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME: Final = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Origin:
    """The account and region a deployment runs in (from the Lambda context): an event that names another
    account or region was not raised by the clusters this deployment manages."""

    account: str
    region: str


@dataclass(frozen=True, slots=True)
class Envelope:
    source: str
    detail_type: str
    event_id: str
    at: datetime  # the event's `time`, timezone-aware
    region: str
    detail: Mapping[str, Any]
    account: str = ""

    def age_s(self, now: datetime) -> float:
        """Seconds from the event's time to `now` (negative for an event dated in the future)."""
        return (now - self.at).total_seconds()

    def check_age(self, now: datetime, *, max_age_s: float, max_ahead_s: float = 300.0) -> None:
        """The one age check: BadEvent for an event older than `max_age_s` or dated more than `max_ahead_s`
        after `now` (clocks differ by seconds, not minutes)."""
        age = self.age_s(now)
        if age > max_age_s:
            raise BadEvent(
                f"{quote(self.detail_type)} {quote(self.event_id) or '-'} is {age:.0f} s old (more than "
                f"{max_age_s:.0f} s): too old to act on"
            )
        if age < -max_ahead_s:
            raise BadEvent(
                f"{quote(self.detail_type)} {quote(self.event_id) or '-'} is dated {-age:.0f} s in the "
                "future: not acted on"
            )


def quote(v: Any) -> str:
    """A value as a one-line reason quotes it: whitespace squashed, at most MAX_QUOTE_CHARS characters.
    Linear in the quoted prefix only; a container is quoted by its type (str() of a deeply nested list
    recurses, and of a 5,000-digit int raises)."""
    if isinstance(v, str):
        raw = v[: 4 * MAX_QUOTE_CHARS]
    elif isinstance(v, bool | float) or v is None:
        raw = str(v)
    elif isinstance(v, int):
        raw = str(v) if v.bit_length() <= 128 else f"<a {v.bit_length()}-bit int>"
    else:
        raw = f"<{type(v).__name__}>"
    text = " ".join(raw.split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 3] + "..."


def parse_event_time(raw: Any) -> datetime | None:
    """An EventBridge `time` (ISO 8601 with a zone, "Z" included) as an aware datetime, else None: naive,
    unconvertible to UTC, or outside [EARLIEST_EVENT_TIME, LATEST_EVENT_TIME)."""
    if not isinstance(raw, str) or len(raw) > MAX_TIME_CHARS:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if at.tzinfo is None or at.utcoffset() is None:
            return None
        in_utc = at.astimezone(UTC)  # OverflowError for year 1 at +14:00, year 9999 at -14:00
    except (ValueError, OverflowError):
        return None
    return at if EARLIEST_EVENT_TIME <= in_utc < LATEST_EVENT_TIME else None


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
    event_id, region, account = event.get("id"), event.get("region"), event.get("account")
    if isinstance(event_id, str) and len(event_id) > MAX_ID_CHARS:
        raise BadEvent(f"{quote(detail_type)}: an id of {len(event_id)} characters is not an event id")
    return Envelope(
        source=source,
        detail_type=detail_type,
        event_id=event_id if isinstance(event_id, str) else "",
        at=at,
        region=region if isinstance(region, str) and len(region) <= MAX_REGION_CHARS else "",
        detail=detail,
        account=account if isinstance(account, str) and len(account) <= MAX_REGION_CHARS else "",
    )
