"""What sparkscale's TASK nodes were over a period, from its audit records alone (pure): the requested nodes
per group as a step function of time, their node-hours, their cost billed per second with a one-minute
minimum per node, the peak and time-weighted average, the time at max and the actions.

Used by `sparkscale report` (with the period's spot prices, next to the replay of the same demand through
EMR's rules, static peak and the oracle: tools/sparkscale_tools/replay/savings.py) and by the digest's weekly
section (with the prices the decisions carry), which runs in Lambda: this module needs neither the tools nor
boto3 (docs/savings-report.md).

How the period is read from the records (the same rule as the daily digest, usecases/digest.py): after each
record a group stands at its target when the record was applied (a resize made), else at its `current`
count; before the period's first record naming it, at that record's `current` count. A group a record does
not name keeps its count (a decision names every TASK group).

Billing: each node is billed per second from the request that added it to the request that removed it, at
least `MIN_BILLED_S` (EC2's and EMR's per-second billing has a one-minute minimum). A scale-in removes the
newest nodes first (the only way the minimum can matter is a node removed within a minute of its request).
Nodes already there at the period's start are billed from the start, and nodes still there at its end until
the end, without the minimum (their bill runs on outside the period). Not counted: EMR's own per-instance fee,
on-demand core and master nodes, the provisioning and decommissioning time EMR adds, a reclaimed spot node
EMR replaced by itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sparkscale.policy.model import Direction
from sparkscale.policy.reasons import ReasonCode

MIN_BILLED_S: Final = 60.0  # per-second billing, one minute at least per instance

# (group id, instance type, market) -> USD per node-hour, or None for the price the decisions carry
PriceOf = Callable[[str, str, str], float | None]


@dataclass(frozen=True, slots=True)
class GroupUse:
    """One TASK group over the period."""

    group_id: str
    instance_type: str
    market: str
    usd_per_hour: float  # per node
    price_source: str  # "decisions" or what the price function named it (e.g. "spot history")
    node_s: float  # requested node-seconds
    billed_node_s: float  # the same with the one-minute minimum per node
    peak_nodes: int

    @property
    def cost_usd(self) -> float:
        return self.billed_node_s * self.usd_per_hour / 3600.0


@dataclass(frozen=True, slots=True)
class TaskUsage:
    """sparkscale's TASK nodes over [start, end), as its audit records tell them."""

    cluster_id: str
    start: datetime
    end: datetime
    records: int
    groups: tuple[GroupUse, ...]
    steps: tuple[tuple[datetime, int], ...]  # total requested TASK nodes from each instant on
    group_steps: tuple[tuple[datetime, tuple[tuple[str, int], ...]], ...]  # the same per group id
    scale_outs: int  # applied
    scale_ins: int  # applied
    at_max_s: float  # from each decision at the maximum and still under pressure to the next record

    @property
    def cost_usd(self) -> float:
        return sum(g.cost_usd for g in self.groups)

    @property
    def node_hours(self) -> float:
        return sum(g.node_s for g in self.groups) / 3600.0

    @property
    def peak_nodes(self) -> int:
        return max((n for _, n in self.steps), default=0)

    @property
    def average_nodes(self) -> float:
        length = (self.end - self.start).total_seconds()
        return sum(g.node_s for g in self.groups) / length if length > 0 else 0.0

    def nodes_at(self, at: datetime) -> int:
        """The requested TASK nodes at `at` (the step in effect)."""
        nodes = self.steps[0][1] if self.steps else 0
        for t, n in self.steps:
            if t > at:
                break
            nodes = n
        return nodes


def reason_codes(r: Mapping[str, Any]) -> list[str]:
    """An audit record's reason codes, in its order (none for a record without them)."""
    return [str(c) for c in r.get("reason_codes") or ()]


def applied(r: Mapping[str, Any]) -> bool:
    """The record's resize was made (not a hold, a dry run, a paused cluster or a resize EMR refused)."""
    return (
        bool(r.get("is_action"))
        and not r.get("dry_run")
        and ReasonCode.NOT_APPLIED.value not in reason_codes(r)
    )


def _at(r: Mapping[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(r["at"]))
    except (KeyError, ValueError):
        return None
    return at if at.tzinfo is not None else None


def _targets(r: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = r.get("targets")
    return [t for t in raw if isinstance(t, Mapping) and t.get("group_id")] if isinstance(raw, list) else []


def _count(t: Mapping[str, Any], key: str) -> int | None:
    try:
        n = int(t[key])
    except (KeyError, TypeError, ValueError):
        return None
    return n if n >= 0 else None


class _Group:
    """One group's nodes as a stack of request times (None: there before the period started)."""

    def __init__(self, t: Mapping[str, Any], start: datetime) -> None:
        self.instance_type = str(t.get("instance_type") or "")
        self.market = str(t.get("market") or "")
        self.decision_usd = 0.0
        self.nodes: list[datetime | None] = []
        self.node_s = 0.0
        self.billed_s = 0.0
        self.peak = 0
        self.start = start

    def note_price(self, t: Mapping[str, Any]) -> None:
        try:
            usd = float(t.get("usd_per_hour_per_node") or 0.0)
        except (TypeError, ValueError):
            return
        if math.isfinite(usd) and usd > 0:
            self.decision_usd = usd

    def set(self, n: int, at: datetime) -> None:
        while len(self.nodes) < n:
            self.nodes.append(at)
        while len(self.nodes) > n:
            self._bill(self.nodes.pop(), at, minimum=True)
        self.peak = max(self.peak, n)

    def _bill(self, since: datetime | None, until: datetime, *, minimum: bool) -> None:
        span = (until - (since or self.start)).total_seconds()
        self.node_s += span
        self.billed_s += max(span, MIN_BILLED_S) if minimum and since is not None else span

    def close(self, end: datetime) -> None:
        for since in self.nodes:
            self._bill(since, end, minimum=False)


def task_usage(
    cluster_id: str,
    records: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
    *,
    price_of: PriceOf | None = None,
    price_source: str = "decisions",
) -> TaskUsage | None:
    """sparkscale's TASK nodes over [start, end) from the cluster's audit records (any order; outside the
    period, without a time or with malformed targets: ignored). None when no record falls in the period.
    `price_of` prices a group per node-hour (None or no answer: the last price the decisions carried)."""
    timed = [(at, r) for r in records if (at := _at(r)) is not None and start <= at < end]
    timed.sort(key=lambda pair: pair[0])
    if not timed:
        return None
    groups: dict[str, _Group] = {}
    for _, r in timed:  # before the first record naming a group: that record's `current` count
        for t in _targets(r):
            n = _count(t, "current")
            if n is not None and str(t["group_id"]) not in groups:
                g = groups[str(t["group_id"])] = _Group(t, start)
                g.nodes = [None] * n  # there before the period: billed from its start, no minimum
                g.peak = n
    steps: list[tuple[datetime, int]] = [(start, sum(len(g.nodes) for g in groups.values()))]
    group_steps = [(start, tuple((gid, len(g.nodes)) for gid, g in sorted(groups.items())))]
    cursor, at_max, at_max_s = start, False, 0.0
    outs = ins = 0
    for at, r in timed:
        at_max_s += (at - cursor).total_seconds() if at_max else 0.0
        made = applied(r)
        for t in _targets(r):
            n = _count(t, "target" if made else "current")
            if n is None:
                continue
            g = groups.setdefault(str(t["group_id"]), _Group(t, start))
            g.note_price(t)
            g.set(n, at)
        if made:
            outs += r.get("direction") == Direction.OUT.value
            ins += r.get("direction") == Direction.IN.value
        total = sum(len(g.nodes) for g in groups.values())
        if total != steps[-1][1]:
            steps.append((at, total))
        counts = tuple((gid, len(g.nodes)) for gid, g in sorted(groups.items()))
        if counts != group_steps[-1][1]:
            group_steps.append((at, counts))
        cursor, at_max = at, bool(r.get("at_max_under_pressure"))
    at_max_s += (end - cursor).total_seconds() if at_max else 0.0
    uses = []
    for gid, g in sorted(groups.items()):
        g.close(end)
        usd = price_of(gid, g.instance_type, g.market) if price_of is not None else None
        uses.append(
            GroupUse(
                group_id=gid,
                instance_type=g.instance_type,
                market=g.market,
                usd_per_hour=usd if usd is not None else g.decision_usd,
                price_source=price_source if usd is not None else "decisions",
                node_s=g.node_s,
                billed_node_s=g.billed_s,
                peak_nodes=g.peak,
            )
        )
    return TaskUsage(
        cluster_id=cluster_id,
        start=start,
        end=end,
        records=len(timed),
        groups=tuple(uses),
        steps=tuple(steps),
        group_steps=tuple(group_steps),
        scale_outs=outs,
        scale_ins=ins,
        at_max_s=at_max_s,
    )
