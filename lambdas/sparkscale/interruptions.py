"""Spot interruptions and rebalance recommendations: replace the node at once in another pool.

EC2 sends "EC2 Spot Instance Interruption Warning" two minutes before it reclaims a spot instance, and "EC2
Instance Rebalance Recommendation" when the instance is at elevated risk. Left alone, EMR replaces a lost task
node in the SAME instance group, i.e. the same spot pool that is being reclaimed. Instead we move the node:

- the interrupted group's requested count goes down by one (EMR then does not replace it in that pool), and
- another SPOT TASK group of a DIFFERENT instance type, the cheapest per usable GiB-hour that has room within
  its bounds and the diversification share, goes up by one;
- with no such spot group, an ON_DEMAND TASK group (when `on_demand_fallback`); otherwise nothing changes and
  EMR replaces the node as usual.

The total requested task nodes stay the same, so the next scaling decision does not add the node again.

Parsing, the choice and the operator notice are pure functions. `handle_spot_event` is the small orchestration
the events Lambda calls, through the same ports as `service.run_once` (injected, so tests and the replay can
drive it), holding the same per-cluster lease so it never races the scaler.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from sparkscale.config import Config
from sparkscale.errors import BadEvent, ClusterGone, LeaseHeld, SparkscaleError, Throttled, TransientAwsError
from sparkscale.policy.constraints import RESIZABLE_STATUSES
from sparkscale.policy.fallback import blocked_groups, label
from sparkscale.policy.model import (
    Cluster,
    GroupTarget,
    InstanceGroup,
    Market,
    Role,
    ScalerState,
)
from sparkscale.policy.planner import Offer, share_ok
from sparkscale.ports import Notice, Ports
from sparkscale.service import acquire_lease_waiting, with_prices

log = logging.getLogger(__name__)

# --- the events --------------------------------------------------------------------------------------------


class SpotEventKind(StrEnum):
    INTERRUPTION = "interruption"
    REBALANCE = "rebalance"


DETAIL_TYPE_INTERRUPTION: Final = "EC2 Spot Instance Interruption Warning"
DETAIL_TYPE_REBALANCE: Final = "EC2 Instance Rebalance Recommendation"
DETAIL_TYPES: Final = {
    DETAIL_TYPE_INTERRUPTION: SpotEventKind.INTERRUPTION,
    DETAIL_TYPE_REBALANCE: SpotEventKind.REBALANCE,
}
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
DEDUP_TTL_S: Final = 6 * 3600  # how long a handled (kind, instance) is remembered


@dataclass(frozen=True, slots=True)
class SpotEvent:
    kind: SpotEventKind
    instance_id: str
    at: datetime  # the event's `time`
    region: str
    event_id: str
    action: str | None = None  # interruption: "terminate" | "stop" | "hibernate"


def parse_spot_event(event: Any) -> SpotEvent:
    """An EventBridge spot interruption / rebalance event, or BadEvent with a one-line reason."""
    if not isinstance(event, Mapping):
        raise BadEvent(f"not an EventBridge event: {type(event).__name__}")
    if event.get("source") != "aws.ec2":
        raise BadEvent(f"not an EC2 event (source {event.get('source')!r})")
    detail_type = event.get("detail-type")
    kind = DETAIL_TYPES.get(detail_type) if isinstance(detail_type, str) else None
    if kind is None:
        raise BadEvent(f"not a spot interruption or rebalance event (detail-type {detail_type!r})")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise BadEvent(f"{detail_type}: no detail")
    instance_id = detail.get("instance-id")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
        raise BadEvent(f"{detail_type}: bad instance-id {instance_id!r}")
    at = parse_event_time(event.get("time"))
    if at is None:
        raise BadEvent(f"{detail_type}: bad time {event.get('time')!r}")
    action = detail.get("instance-action")
    return SpotEvent(
        kind=kind,
        instance_id=instance_id,
        at=at,
        region=str(event.get("region") or ""),
        event_id=str(event.get("id") or ""),
        action=action if isinstance(action, str) else None,
    )


def parse_event_time(raw: Any) -> datetime | None:
    """An EventBridge `time` (ISO 8601 with a zone, "Z" included) as an aware datetime, else None."""
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


# --- the choice (pure) -------------------------------------------------------------------------------------


class Outcome(StrEnum):
    REPLACED_SPOT = "replaced_spot"  # moved to another spot pool
    REPLACED_ON_DEMAND = "replaced_on_demand"  # no spot pool had room: on-demand fallback
    LEFT_TO_EMR = "left_to_emr"  # nothing changed; EMR replaces the node in its own group


@dataclass(frozen=True)
class ReplacementPlan:
    cluster_id: str
    group_id: str  # the interrupted group
    outcome: Outcome
    interrupted: InstanceGroup | None
    replacement: InstanceGroup | None
    changes: tuple[GroupTarget, ...]  # empty unless a replacement was chosen
    reasons: tuple[str, ...]


# The groups whose count may change now: the policy's own rule (RUNNING, or RESIZING: a new count interrupts
# a resize in progress), which EmrCapacityWriter mirrors.
_USABLE_STATUSES: Final = RESIZABLE_STATUSES


def usd_per_usable_gib_hour(group: InstanceGroup, config: Config) -> float:
    """USD per GiB-hour of memory YARN can allocate on a node of `group` (the planner's Offer ranking);
    inf when the price or the memory is unknown, so such a group comes last."""
    offer = Offer(
        key=group.id,
        instance_type=group.instance_type,
        memory_gib=group.memory_gib * config.usable_memory_fraction,
        usd_per_hour=group.usd_per_hour,
        market=group.market,
    )
    if not (group.usd_per_hour > 0 and math.isfinite(group.usd_per_hour)):
        return math.inf
    return offer.usd_per_gib_hour


def blocked(cluster: Cluster, state: ScalerState | None, now: datetime, config: Config) -> dict[str, str]:
    """TASK groups that get no new capacity now: the policy's spot-fallback rule (SUSPENDED/ARRESTED, EMR
    capacity errors, a shortfall older than spot_fallback_timeout_s), plus any group that is not RUNNING."""
    out = dict(blocked_groups(cluster, state or ScalerState(), now=now, config=config))
    for g in cluster.task_groups:
        if g.id not in out and g.status not in _USABLE_STATUSES:
            out[g.id] = f"Group {label(g)} is {g.status.value}: it gets no new capacity."
    return out


def choose_replacement(
    *,
    cluster: Cluster,
    group_id: str,
    config: Config,
    now: datetime,
    state: ScalerState | None = None,
) -> ReplacementPlan:
    """Where the node lost from `group_id` should come back. See the module docstring for the rules."""
    g = cluster.group(group_id)
    if g is None:
        return _leave(cluster, group_id, None, [f"group {group_id} is not in cluster {cluster.id}"])
    why_not = _why_not_move_from(g, config)
    if why_not is not None:
        return _leave(cluster, group_id, g, [why_not])
    skipped: list[str] = []
    blocked_now = blocked(cluster, state, now, config)

    def candidates(market: Market) -> list[InstanceGroup]:
        return _candidates(
            cluster=cluster, lost=g, market=market, config=config, blocked_now=blocked_now, skipped=skipped
        )

    spot = candidates(Market.SPOT)
    if spot:
        return _plan(
            cluster=cluster, lost=g, to=spot[0], outcome=Outcome.REPLACED_SPOT, config=config, notes=skipped
        )
    if not config.on_demand_fallback:
        why = "no other spot TASK group can take the node (on-demand fallback off)"
        return _leave(cluster, group_id, g, [why, *skipped])
    on_demand = candidates(Market.ON_DEMAND)
    if not on_demand:
        return _leave(
            cluster, group_id, g, ["no other spot or on-demand TASK group can take the node", *skipped]
        )
    notes = ["no other spot group can take the node: on-demand fallback", *skipped]
    return _plan(
        cluster=cluster,
        lost=g,
        to=on_demand[0],
        outcome=Outcome.REPLACED_ON_DEMAND,
        config=config,
        notes=notes,
    )


def _leave(
    cluster: Cluster, group_id: str, interrupted: InstanceGroup | None, reasons: Sequence[str]
) -> ReplacementPlan:
    return ReplacementPlan(cluster.id, group_id, Outcome.LEFT_TO_EMR, interrupted, None, (), tuple(reasons))


def _why_not_move_from(g: InstanceGroup, config: Config) -> str | None:
    """Why the node lost from `g` must not be moved (EMR replaces it, or it needs no replacement)."""
    if g.role is not Role.TASK:
        return f"{g.id} is a {g.role} group: EMR replaces its nodes"
    if g.requested < 1:
        return f"{g.id} already requests 0 nodes: nothing to replace"
    if g.running > g.requested:
        return (
            f"{g.id} is shrinking ({g.running} running > {g.requested} requested): the loss counts toward it"
        )
    if g.status not in _USABLE_STATUSES:
        return f"{g.id} is {g.status.value}: it cannot be resized now, EMR replaces the node in its group"
    own = config.bounds_for(g.id, g.name)
    if g.requested - 1 < own.min_nodes:
        return f"{g.id} is at its minimum of {own.min_nodes}: EMR replaces the node in its group"
    return None


def _candidates(
    *,
    cluster: Cluster,
    lost: InstanceGroup,
    market: Market,
    config: Config,
    blocked_now: Mapping[str, str],
    skipped: list[str],
) -> list[InstanceGroup]:
    # TASK memory by instance type once the lost node is gone (what the planner calls "existing")
    existing: dict[str, float] = {}
    for t in cluster.task_groups:
        nodes = t.requested - (t.id == lost.id)
        existing[t.instance_type] = existing.get(t.instance_type, 0.0) + nodes * t.memory_gib
    out: list[InstanceGroup] = []
    for c in cluster.task_groups:
        if c.id == lost.id or c.market is not market:
            continue
        if market is Market.SPOT and c.instance_type == lost.instance_type:
            skipped.append(f"{c.id}: same instance type {c.instance_type} (the same spot pool)")
            continue
        if c.id in blocked_now:
            skipped.append(blocked_now[c.id])
            continue
        bounds = config.bounds_for(c.id, c.name)
        if c.requested + 1 > bounds.max_nodes:
            skipped.append(f"{c.id}: at its maximum of {bounds.max_nodes} nodes")
            continue
        if not share_ok({c.instance_type: c.memory_gib}, existing, config.max_share_per_instance_type):
            skipped.append(
                f"{c.id}: {c.instance_type} would exceed max_share_per_instance_type "
                f"{config.max_share_per_instance_type:g} of task memory"
            )
            continue
        out.append(c)
    return sorted(out, key=lambda c: (usd_per_usable_gib_hour(c, config), c.usd_per_hour, c.id))


def _target(g: InstanceGroup, delta: int) -> GroupTarget:
    return GroupTarget(
        g.id, g.name, g.instance_type, g.market, g.requested, g.requested + delta, g.usd_per_hour
    )


def _plan(
    *,
    cluster: Cluster,
    lost: InstanceGroup,
    to: InstanceGroup,
    outcome: Outcome,
    config: Config,
    notes: Sequence[str],
) -> ReplacementPlan:
    rate = usd_per_usable_gib_hour(to, config)
    priced = f"${rate:.5g}/usable GiB-h" if math.isfinite(rate) else "price unknown"
    reasons = (
        f"{lost.id} ({lost.instance_type}) {lost.requested} -> {lost.requested - 1}: EMR does not replace "
        "the node in the interrupted pool",
        f"{to.id} ({to.instance_type}, {to.market}) {to.requested} -> {to.requested + 1}: cheapest eligible, "
        f"{priced}",
        *notes,
    )
    return ReplacementPlan(
        cluster.id, lost.id, outcome, lost, to, (_target(lost, -1), _target(to, +1)), reasons
    )


# --- the operator notice (pure) ----------------------------------------------------------------------------

_SUBJECT_MAX: Final = 99


def interruption_notice(
    *,
    event: SpotEvent,
    plan: ReplacementPlan,
    applied: bool,
    dry_run: bool = False,
    error: str | None = None,
) -> Notice:
    """The operator message for one handled event (kind "interruption"; a rebalance says it is one)."""
    short = "interruption" if event.kind is SpotEventKind.INTERRUPTION else "rebalance"
    lost = plan.interrupted
    where = f"{plan.group_id} ({lost.instance_type})" if lost else plan.group_id
    if plan.replacement is not None and error is None:
        to = plan.replacement
        verb = "would move" if dry_run else ("moved" if applied else "not moved")
        target = to.instance_type + (" on-demand" if to.market is Market.ON_DEMAND else "")
        headline = f"{short} {event.instance_id}: {verb} to {target}"
    elif error is not None:
        headline = f"{short} {event.instance_id}: replacement FAILED"
    else:
        headline = f"{short} {event.instance_id}: left to EMR"
    subject = f"sparkscale {plan.cluster_id}: {headline}"
    if len(subject) > _SUBJECT_MAX:
        subject = subject[: _SUBJECT_MAX - 3] + "..."
    if event.kind is SpotEventKind.INTERRUPTION:
        event_line = (
            f"EC2 Spot Instance Interruption Warning (instance-action: {event.action or 'not given'})"
        )
    else:
        event_line = (
            "EC2 Instance Rebalance Recommendation: a RECOMMENDATION, the instance is at elevated risk of "
            "interruption and has not been reclaimed yet"
        )
    lines = [
        f"Cluster:    {plan.cluster_id}",
        f"Event:      {event_line}",
        f"Instance:   {event.instance_id} in {where}",
        f"Event time: {event.at.isoformat()} (id {event.event_id or '-'})",
        f"Outcome:    {plan.outcome}" + (" (dry run: nothing changed)" if dry_run else ""),
    ]
    if plan.changes:
        lines.append("Changes:")
        lines += [
            f"  {t.group_id} {t.group_name} {t.instance_type} {t.market}: {t.current} -> {t.target} "
            f"(${t.usd_per_hour_per_node:.4f}/node-h)"
            for t in plan.changes
        ]
    lines.append("Why:")
    lines += [f"  - {r}" for r in plan.reasons]
    if error is not None:
        lines.append(f"Error:      {error}")
    return Notice(kind="interruption", cluster_id=plan.cluster_id, subject=subject, body="\n".join(lines))


# --- orchestration through the ports -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceLocation:
    cluster_id: str
    group_id: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where an instance is, or why it is none of our business."""

    location: InstanceLocation | None
    reason: str = ""


class InstanceLocator(Protocol):
    def locate(self, instance_id: str, managed_clusters: Sequence[str]) -> Lookup: ...


class Result(StrEnum):
    APPLIED = "applied"
    DRY_RUN = "dry_run"
    LEFT_TO_EMR = "left_to_emr"
    IGNORED = "ignored"  # not an instance of a managed cluster
    DUPLICATE = "duplicate"  # this event (kind, instance) was already handled
    CLUSTER_GONE = "cluster_gone"
    FAILED = "failed"  # the resize was refused (GroupBusy, InvalidRequest, ...): operators are told


@dataclass(frozen=True)
class SpotResult:
    result: Result
    event: SpotEvent
    reason: str = ""
    plan: ReplacementPlan | None = None
    notice: Notice | None = None
    cluster_id: str = ""  # set once the instance was located
    notify_failed: bool = False  # the operator notice could not be sent (logged)


def handle_spot_event(
    *,
    now: datetime,
    event: SpotEvent,
    ports: Ports,
    locator: InstanceLocator,
    config: Config,
    owner: str,
    lease_attempts: int = 5,
    lease_wait_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SpotResult:
    """Locate → lease → skip a duplicate → read (+prices) → choose → resize → remember → notify → release.

    Raises LeaseHeld when the scaler keeps the cluster's lease for all attempts (the invocation then fails and
    Lambda retries it) and TransientAwsError / Throttled for transient AWS failures; every other expected
    condition is a SpotResult.
    """
    lookup = locator.locate(event.instance_id, config.clusters)
    if lookup.location is None:
        return SpotResult(Result.IGNORED, event, lookup.reason)
    loc = lookup.location
    held = acquire_lease_waiting(
        ports=ports,
        cluster_id=loc.cluster_id,
        owner=owner,
        now=now,
        config=config,
        attempts=lease_attempts,
        wait_s=lease_wait_s,
        sleep=sleep,
    )
    if not held:
        raise LeaseHeld(f"{loc.cluster_id}: lease held by another evaluation")
    try:
        return _handle_located(now=now, event=event, loc=loc, ports=ports, config=config)
    finally:
        try:
            ports.state.release_lease(loc.cluster_id, owner)
        except SparkscaleError as exc:  # the lease expires by itself; never mask the real outcome
            log.warning("could not release the lease of %s: %s", loc.cluster_id, exc)


def _handle_located(
    *, now: datetime, event: SpotEvent, loc: InstanceLocation, ports: Ports, config: Config
) -> SpotResult:
    key = dedup_key(event)
    if ports.ledger is not None:
        seen = ports.ledger.claimed_at(loc.cluster_id, key, now)
        if seen is not None:
            why = f"{event.kind} of {event.instance_id} already handled at {seen.isoformat()}"
            return SpotResult(Result.DUPLICATE, event, why, cluster_id=loc.cluster_id)
    result = replace(
        _decide_and_act(now=now, event=event, loc=loc, ports=ports, config=config), cluster_id=loc.cluster_id
    )
    if ports.ledger is not None and result.result is not Result.CLUSTER_GONE:
        try:
            ports.ledger.claim(loc.cluster_id, key, now, DEDUP_TTL_S)
        except SparkscaleError as exc:  # done is done: a retry for this would move a second node
            log.error("could not remember %s for %s: %s", key, loc.cluster_id, exc)
    if result.notice is not None:
        try:
            ports.notifier.notify(result.notice)
        except Exception as exc:  # a notice never undoes or repeats the move
            log.error("interruption notice for %s not sent: %s", loc.cluster_id, exc)
            result = replace(result, notify_failed=True)
    return result


def dedup_key(event: SpotEvent) -> str:
    """One handling per (kind, instance): EventBridge may deliver an event twice, and a rebalance
    recommendation followed by the interruption of the same instance are two different losses."""
    return f"spot-{event.kind.value}-{event.instance_id}"


def _decide_and_act(
    *, now: datetime, event: SpotEvent, loc: InstanceLocation, ports: Ports, config: Config
) -> SpotResult:
    try:
        cluster = ports.clusters.read_cluster(loc.cluster_id)
    except ClusterGone as exc:
        return SpotResult(Result.CLUSTER_GONE, event, str(exc) or f"{loc.cluster_id} is gone")
    if ports.prices is not None:
        try:
            cluster = with_prices(cluster, ports.prices.usd_per_hour(cluster, now))
        except SparkscaleError as exc:  # a price is never a reason not to replace a node
            log.warning("prices unavailable for %s, using those read with the cluster: %s", cluster.id, exc)
    state = ports.state.load_state(loc.cluster_id)
    plan = choose_replacement(cluster=cluster, group_id=loc.group_id, config=config, now=now, state=state)
    if not plan.changes:
        notice = interruption_notice(event=event, plan=plan, applied=False)
        return SpotResult(Result.LEFT_TO_EMR, event, plan.reasons[0], plan, notice)
    if config.dry_run:
        notice = interruption_notice(event=event, plan=plan, applied=False, dry_run=True)
        return SpotResult(Result.DRY_RUN, event, "dry run", plan, notice)
    try:
        ports.capacity.resize(loc.cluster_id, plan.changes)
    except ClusterGone as exc:
        return SpotResult(Result.CLUSTER_GONE, event, str(exc) or f"{loc.cluster_id} is gone", plan)
    except SparkscaleError as exc:
        if isinstance(exc, (Throttled, TransientAwsError)):
            raise  # the invocation fails and Lambda retries it
        error = f"{type(exc).__name__}: {exc}"
        notice = interruption_notice(event=event, plan=plan, applied=False, error=error)
        return SpotResult(Result.FAILED, event, error, plan, notice)
    notice = interruption_notice(event=event, plan=plan, applied=True)
    return SpotResult(Result.APPLIED, event, plan.reasons[1], plan, notice)
