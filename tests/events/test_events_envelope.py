"""The EventBridge envelope every event family shares, and the registry that dispatches on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sparkscale import events, names
from sparkscale.errors import BadEvent
from sparkscale.events.emr import EmrEvent
from sparkscale.events.envelope import parse_envelope
from sparkscale.events.spot import SpotEvent

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _event(source: str, detail_type: str, detail: dict, at: datetime = NOW) -> dict:
    return {
        "id": "e-1",
        "source": source,
        "detail-type": detail_type,
        "time": at.isoformat().replace("+00:00", "Z"),
        "region": "us-east-1",
        "detail": detail,
    }


SPOT = _event(names.EVENT_SOURCE_EC2, names.DETAIL_SPOT_INTERRUPTION, {"instance-id": "i-0123456789abcdef0"})


def test_the_envelope_reads_the_common_fields() -> None:
    env = parse_envelope(SPOT)
    assert (env.source, env.detail_type, env.event_id, env.region) == (
        names.EVENT_SOURCE_EC2,
        names.DETAIL_SPOT_INTERRUPTION,
        "e-1",
        "us-east-1",
    )
    assert env.at == NOW
    assert env.age_s(NOW + timedelta(seconds=90)) == 90.0


@pytest.mark.parametrize(
    ("now", "why"),
    [
        (NOW + timedelta(seconds=121), r"is 121 s old \(more than 120 s\)"),  # one second past the window
        (NOW - timedelta(seconds=301), "dated 301 s in the future"),  # clocks differ by seconds, not minutes
    ],
)
def test_one_age_check_rejects_stale_and_future_events(now: datetime, why: str) -> None:
    env = parse_envelope(SPOT)
    env.check_age(NOW + timedelta(seconds=120), max_age_s=120)  # at the edge: accepted
    env.check_age(NOW - timedelta(seconds=300), max_age_s=120)
    with pytest.raises(BadEvent, match=why):
        env.check_age(now, max_age_s=120)


def test_the_registry_dispatches_by_source_and_detail_type() -> None:
    emr = _event(
        names.EVENT_SOURCE_EMR,
        names.DETAIL_EMR_CLUSTER_STATE_CHANGE,
        {"clusterId": "j-ABC123", "state": "TERMINATED"},
    )
    assert isinstance(events.parse_eventbridge(SPOT, family=events.FAMILY_SPOT), SpotEvent)
    assert isinstance(events.parse_eventbridge(emr, family=events.FAMILY_EMR), EmrEvent)
    with pytest.raises(BadEvent, match="is not an EMR instance-group or cluster state change"):
        events.parse_eventbridge(SPOT, family=events.FAMILY_EMR)  # routed to the wrong handler
    unknown = _event(names.EVENT_SOURCE_EC2, "EC2 Instance State-change Notification", {})
    with pytest.raises(BadEvent, match="is not a spot interruption or rebalance event"):
        events.parse_eventbridge(unknown, family=events.FAMILY_SPOT)


@pytest.mark.parametrize(
    "raw",
    [None, [], "text", {"source": 1, "detail-type": "x"}, {**SPOT, "detail": []}, {**SPOT, "time": 5}],
)
def test_a_malformed_envelope_is_one_bad_event(raw: object) -> None:
    with pytest.raises(BadEvent):
        parse_envelope(raw)
