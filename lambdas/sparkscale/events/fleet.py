"""EMR "EMR Instance Fleet Resize" events: the TASK fleet's spot units did not come within its spot resize
timeout, as a typed EmrEvent of kind CAPACITY about the fleet's SPOT market (pure).

EMR emits it when it stops provisioning Spot capacity for a fleet after the timeout of its
SpotResizeSpecification, with the event code "Spot Provisioning timeout", or "Spot provisioning timeout -
continuing resize" when another resize of the fleet is queued and starts next (EMR Management Guide,
"Responding to Amazon EMR cluster instance fleet resize timeout events"; its example Lambda reads
`detail.eventCode`, `detail.instanceFleetType` and `detail.clusterId`). Both say the same to sparkscale: the
SPOT market of that fleet cannot deliver now. The emr_events use case records it as a capacity error on the
market's group id (policy/fleet.py: 'if-…/SPOT'), so the policy falls back to on-demand units at once.

Everything else (an On-Demand timeout, a CORE or MASTER fleet, another event code) is a BadEvent with a
one-line reason: sparkscale does not act on it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events.emr import EmrEvent, EmrEventKind
from sparkscale.events.envelope import Envelope, quote
from sparkscale.policy.fleet import market_group_id
from sparkscale.policy.model import Market

_CLUSTER_ID: Final = re.compile(r"^j-[A-Za-z0-9]{1,64}$")
_FLEET_ID: Final = re.compile(r"^if-[A-Za-z0-9]{1,64}$")
_SPOT_TIMEOUT: Final = names.EMR_FLEET_SPOT_TIMEOUT_CODE.casefold()


def _text(v: Any) -> str:
    return " ".join(v.split()) if isinstance(v, str) else ""


def spot_timeout(event_code: str) -> bool:
    """Does the event code say spot did not come? ('Spot Provisioning timeout', with or without
    ' - continuing resize', in any case.)"""
    return event_code.casefold().startswith(_SPOT_TIMEOUT)


def from_envelope(env: Envelope, managed_clusters: Collection[str] | None = None) -> EmrEvent:
    """The spot timeout of a managed cluster's TASK fleet, or BadEvent with one reason."""
    if env.source != names.EVENT_SOURCE_EMR or env.detail_type != names.DETAIL_EMR_FLEET_RESIZE:
        raise BadEvent(f"not an {names.DETAIL_EMR_FLEET_RESIZE!r} event ({quote(env.detail_type)!r})")
    detail = env.detail
    cid = detail.get("clusterId")
    if not isinstance(cid, str) or not _CLUSTER_ID.match(cid):
        raise BadEvent(f"{env.detail_type}: bad clusterId {quote(cid)!r}")
    if managed_clusters is not None and cid not in managed_clusters:
        raise BadEvent(f"{env.detail_type}: cluster {cid} is not managed by this deployment")
    fid = detail.get("instanceFleetId")
    if not isinstance(fid, str) or not _FLEET_ID.match(fid):
        raise BadEvent(f"fleet resize event for {cid}: bad instanceFleetId {quote(fid)!r}", cluster_id=cid)
    role = quote(_text(detail.get("instanceFleetType"))).upper()
    if role != "TASK":
        raise BadEvent(
            f"{fid} in {cid} is a {role or 'typeless'} fleet: only the TASK fleet falls back", cluster_id=cid
        )
    code = _text(detail.get("eventCode"))
    if not spot_timeout(code):
        raise BadEvent(
            f"{fid} in {cid}: event code {quote(code)!r} is not a spot provisioning timeout", cluster_id=cid
        )
    return EmrEvent(
        kind=EmrEventKind.CAPACITY,
        cluster_id=cid,
        at=env.at,
        event_id=env.event_id,
        state=quote(_text(detail.get("state"))).upper(),
        severity=quote(_text(detail.get("severity"))).upper(),
        message=_text(detail.get("message")),
        reason=code,
        group_id=market_group_id(fid, Market.SPOT),
    )
