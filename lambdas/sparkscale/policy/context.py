"""What every step of `decide` reads (Context) and returns (StepResult), and the helpers the steps share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from sparkscale.config import Config
from sparkscale.policy.estimate import Capacity, Estimate, gib, usable_gib
from sparkscale.policy.fallback import label
from sparkscale.policy.fleet import noun
from sparkscale.policy.model import Cluster, Forecast, ScalerState, SignalSource
from sparkscale.policy.planner import EPS, Allocation, Plan
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.signals import Readings


# Context and StepResult are NamedTuples: as immutable as a frozen dataclass, and built in a third of the time
# (each is built once per evaluation, on the hot path)
class Context(NamedTuple):
    now: datetime
    cluster: Cluster
    config: Config
    state: ScalerState
    readings: Readings
    blocked: Mapping[str, str]
    cap: Capacity
    est: Estimate
    forecast: Forecast | None = None  # forecast_mode act only: the demand to size for (observe: not here)

    @property
    def notes(self) -> list[Reason]:
        """Informational reasons appended to every decision: nodes still coming, blocked groups, ignored
        metrics, a stale YARN collector."""
        readings = self.readings
        quiet = not (self.blocked or readings.ignored) and readings.yarn_stale_age_s is None
        if quiet and not self.cap.in_flight_gib > EPS:
            return []  # most evaluations: nothing to note
        notes = []
        if self.cap.in_flight_gib > EPS:
            text = (
                f"{gib(self.cap.in_flight_gib)} of TASK memory requested and not yet running counts as "
                "capacity (nodes already requested are not asked for twice)."
            )
            notes.append(Reason(ReasonCode.IN_FLIGHT, text, {"in_flight_gib": self.cap.in_flight_gib}))
        notes += [Reason(ReasonCode.SPOT_BLOCKED, why, subject=g) for g, why in self.blocked.items()]
        notes += [Reason(ReasonCode.METRIC_IGNORED, why) for why in self.readings.ignored]
        stale = self.readings.yarn_stale_age_s
        if stale is not None:
            limit = self.config.yarn_metric_max_age_s
            text = (
                f"The YARN collector's newest datapoint is {stale:.0f} s old (max {limit} s): its metrics "
                "are ignored and EMR's 5-minute YARN metrics decide."
            )
            values = {"age_s": stale, "max_age_s": float(limit)}
            notes.append(Reason(ReasonCode.YARN_COLLECTOR_STALE, text, values, SignalSource.YARN_COLLECTOR))
        return notes

    def need_reasons(self) -> tuple[Reason, ...]:
        return self.est.reasons


class StepResult(NamedTuple):
    """What a path of `decide` produced, before bounds and the final Decision. reasons[0] is the reason that
    drove it (for a hold: why it holds)."""

    targets: Mapping[str, int]  # the groups whose count changes (UNCHANGED: none)
    reasons: Sequence[Reason]
    desired_nodes: int | None = None
    desired_gib: float | None = None
    at_max: bool = False
    fallback_to: tuple[str, ...] = ()
    bounds: bool = True  # apply enforce_bounds (not for holds on missing data, cooldowns, inactive clusters)


# StepResult.targets of a hold: every group keeps its requested count
UNCHANGED: Mapping[str, int] = MappingProxyType({})


def hold(lead: Reason, ctx: Context, desired_nodes: int | None, desired_gib: float | None) -> StepResult:
    """A hold that the bounds still apply to: `lead` first, then the needs."""
    return StepResult(UNCHANGED, [lead, *ctx.need_reasons()], desired_nodes, desired_gib)


def blocked_hold(
    lead: Reason, ctx: Context, desired_nodes: int | None, desired_gib: float | None
) -> StepResult:
    """A hold that no bound may move (a cooldown): `lead` first, then the needs."""
    return StepResult(UNCHANGED, [lead, *ctx.need_reasons()], desired_nodes, desired_gib, bounds=False)


def current(cluster: Cluster) -> dict[str, int]:
    """Each TASK group's requested count (a copy: callers change it)."""
    return cluster.derived("requested", _requested).copy()


def _requested(cluster: Cluster) -> dict[str, int]:
    return {g.id: g.requested for g in cluster.task_groups}  # kept by the Cluster: only ever copied


def money(x: float) -> str:
    return f"${x:.2f}/h"


def alloc_reason(cluster: Cluster, a: Allocation, *, removing: bool) -> Reason:
    """ADD_NODES or REMOVE_NODES for one allocation of a plan (subject: the group id)."""
    g = cluster.group(a.key)
    who = label(g) if g is not None else a.key
    rate = a.usd_per_hour / a.memory_gib if a.memory_gib > 0 else 0.0
    sign = "-" if removing else "+"
    verb = "Removing" if removing else "Adding"
    prep = "from" if removing else "to"
    units = noun(g, a.nodes) if g is not None else ("node" if a.nodes == 1 else "nodes")  # fleets: units
    text = (
        f"{verb} {a.nodes} {units} {prep} group {who}: "
        f"{sign}{gib(a.memory_gib)} usable "
        f"at ${rate:.4f} per GiB-hour ({sign}{money(a.usd_per_hour)})."
    )
    code = ReasonCode.REMOVE_NODES if removing else ReasonCode.ADD_NODES
    values = {"nodes": a.nodes, "memory_gib": a.memory_gib, "usd_per_hour": a.usd_per_hour}
    return Reason(code, text, values, a.key)


def alloc_reasons(cluster: Cluster, plan: Plan, *, removing: bool) -> list[Reason]:
    return [alloc_reason(cluster, a, removing=removing) for a in plan.allocations]


def planner_reasons(plan: Plan) -> list[Reason]:
    """The planner's own sentences (share relaxed, nothing to plan) as PLANNER reasons."""
    return [Reason(ReasonCode.PLANNER, text) for text in plan.reasons]


def apply(targets: dict[str, int], plan: Plan, *, sign: int) -> None:
    for a in plan.allocations:
        targets[a.key] = targets.get(a.key, 0) + sign * a.nodes


def nodes_for(cluster: Cluster, config: Config, gib_amount: float) -> int:
    """Whole nodes of the TASK groups' average usable size for an amount of memory (no offer to plan with)."""
    sizes = [usable_gib(g, config) for g in cluster.task_groups if g.memory_gib > 0]
    if not sizes:
        return 0
    return math.ceil(gib_amount / (sum(sizes) / len(sizes)) - 1e-9)


def budget_left(cluster: Cluster, cfg: Config) -> float | None:
    """USD per hour that may still be added under budget_usd_per_hour (None: no budget)."""
    if cfg.budget_usd_per_hour is None:
        return None
    return max(0.0, cfg.budget_usd_per_hour - cluster.requested_usd_per_hour)
