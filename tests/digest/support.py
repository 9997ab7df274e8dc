"""Hand-made decisions and their audit records for the digest tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sparkscale.policy.model import Decision, Direction, GroupTarget, Market
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.records import decision_to_dict

PRICE = 0.25  # USD per node-hour of the one TASK group


def decision(
    at: datetime,
    current: int,
    target: int,
    *,
    cid: str = "j-DIGEST1",
    codes: tuple[ReasonCode, ...] = (ReasonCode.NEED,),
    dry_run: bool = False,
    at_max: bool = False,
    not_applied: str = "",
) -> Decision:
    direction = Direction.OUT if target > current else Direction.IN if target < current else Direction.HOLD
    reasons = [Reason(c, f"reason {c.value}") for c in codes]
    if not_applied:
        reasons.append(Reason(ReasonCode.NOT_APPLIED, not_applied))
    return Decision(
        cluster_id=cid,
        at=at,
        direction=direction,
        targets=(GroupTarget("ig-1", "spot", "r5.2xlarge", Market.SPOT, current, target, PRICE),),
        reasons=tuple(reasons),
        dry_run=dry_run,
        at_max_under_pressure=at_max,
    )


def record(at: datetime, current: int, target: int, **kw: Any) -> dict[str, Any]:
    return decision_to_dict(decision(at, current, target, **kw))
