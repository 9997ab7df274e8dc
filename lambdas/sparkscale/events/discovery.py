"""What wakes the discovery Lambda (pure): an "EMR Cluster State Change" in any state, or its schedule.

Not in REGISTRY: the emr family parses the same (source, detail-type) for the EMR-events Lambda, which acts
on TERMINATED only; discovery needs every state, and EventBridge routes the event to both Lambdas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events.envelope import parse_envelope, quote

STATES: Final = frozenset((*names.EMR_ACTIVE_STATES, *names.EMR_ENDED_STATES))
_CLUSTER_ID: Final = re.compile(r"^j-[A-Za-z0-9]{1,64}$")


@dataclass(frozen=True, slots=True)
class ClusterStateChange:
    cluster_id: str
    state: str
    at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """The schedule: one sweep."""

    at: datetime
    event_id: str


def parse_discovery_event(event: Any) -> ClusterStateChange | SweepRequest:
    """The typed event, or BadEvent with one reason (never another exception)."""
    env = parse_envelope(event)
    if (env.source, env.detail_type) == (names.EVENT_SOURCE_SCHEDULE, names.DETAIL_SCHEDULED_EVENT):
        return SweepRequest(env.at, env.event_id)
    if (env.source, env.detail_type) != (names.EVENT_SOURCE_EMR, names.DETAIL_EMR_CLUSTER_STATE_CHANGE):
        raise BadEvent(
            f"{quote(env.detail_type)!r} from {quote(env.source)!r} is neither an EMR cluster state change "
            "nor the discovery schedule"
        )
    cid = env.detail.get("clusterId")
    if not isinstance(cid, str) or not _CLUSTER_ID.match(cid):
        raise BadEvent(f"{env.detail_type}: bad clusterId {quote(cid)!r}")
    state = quote(env.detail.get("state")).upper()
    if state not in STATES:
        raise BadEvent(f"cluster {cid} is {state or 'in no state'}: nothing for discovery to do")
    return ClusterStateChange(cid, state, env.at, env.event_id)
