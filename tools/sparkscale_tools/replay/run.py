"""One replay: the same demand through every requested policy, scored against the oracle."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkscale.config import Config

from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.backlog import BacklogScores, backlog_of
from sparkscale_tools.replay.bounds import floor_rates, foresight_cost_usd, whole_node_floor_usd
from sparkscale_tools.replay.cluster import ClusterSpec
from sparkscale_tools.replay.engine import ProgressFn, RunRecord, World
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.scores import Scores, score


class ReplayError(ValueError):
    """A replay that cannot run as asked (unknown policy, bad parameters): one line."""


@dataclass(frozen=True)
class PolicySpec:
    """A policy to run: `kind` is one of policies.POLICIES; `name` labels it (variants of sparkscale with
    their own config, e.g. without diversification, get their own names)."""

    name: str
    kind: str
    config: Config | None = None  # sparkscale / emr-custom-rules: overrides the replay's config
    handle_interruptions: bool = True  # sparkscale: run the spot events handler on interruption warnings


def parse_policies(text: str) -> list[PolicySpec]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ReplayError("--policies: give at least one of " + ", ".join(pol.POLICIES))
    out: list[PolicySpec] = []
    for n in names:
        if n not in pol.POLICIES:
            raise ReplayError(f"--policies: unknown policy {n!r} (known: {', '.join(pol.POLICIES)})")
        if n not in [p.name for p in out]:
            out.append(PolicySpec(n, n))
    return out


@dataclass
class ReplayResult:
    step_s: int
    core_gib: float
    offers: list[dict[str, Any]]
    demand: list[float]
    runs: dict[str, RunRecord]
    scores: dict[str, Scores]
    emr_rules: str | None = None
    notes: list[str] = field(default_factory=list)
    # lower bounds for any policy serving all the demand (replay.bounds): the cheapest whole-node mix of
    # every offering covering each step with zero delay, and the same billed from request to termination
    whole_node_floor_usd: float | None = None
    foresight_cost_usd: float | None = None
    oracle_cost_usd: float | None = None  # what every policy is scored against, run or not
    params: SimParams | None = None  # the model the run used
    # the backlog model (SimParams.backlog): each policy's queued GiB-hours and waits; None when it is off
    backlog_scores: dict[str, BacklogScores] | None = None

    @property
    def times_s(self) -> list[float]:
        return [k * self.step_s for k in range(len(self.demand))]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "step_s": self.step_s,
            "core_gib": self.core_gib,
            "offers": self.offers,
            "policies": {name: self._policy_dict(name, s) for name, s in self.scores.items()},
        }

    def _policy_dict(self, name: str, s: Scores) -> dict[str, Any]:
        out = s.to_dict()
        if self.backlog_scores is not None and name in self.backlog_scores:
            out.update(self.backlog_scores[name].to_dict())
        return out


def run_replay(
    demand: Sequence[float],
    *,
    policies: Sequence[PolicySpec],
    config: Config,
    cluster: ClusterSpec,
    params: SimParams,
    seed: int = 0,
    progress: Callable[[str], ProgressFn | None] | None = None,
) -> ReplayResult:
    if not demand:
        raise ReplayError("the trace has no step to replay")
    if not cluster.task_groups:
        raise ReplayError("the cluster has no TASK group")
    demand = list(demand)
    f = config.usable_memory_fraction
    core_gib = cluster.core_gib(f)
    offer = cluster.cheapest_task_group(f)
    oracle = pol.oracle_run(demand, core_gib=core_gib, offer=offer, config=config, p=params)
    runs: dict[str, RunRecord] = {}
    emr_rules_text: str | None = None
    for spec in policies:
        cfg = spec.config or config
        if spec.kind == pol.ORACLE:
            rec = oracle
        elif spec.kind == pol.STATIC_PEAK:
            rec = pol.static_peak_run(demand, core_gib=core_gib, offer=offer, config=cfg, p=params)
        elif spec.kind in (pol.SPARKSCALE, pol.EMR_CUSTOM_RULES, pol.REACTIVE_IDEAL):
            controller: pol.SparkscaleController | pol.EmrRulesController | pol.ReactiveIdealController
            if spec.kind == pol.REACTIVE_IDEAL:
                controller = pol.ReactiveIdealController(cfg, cluster)
                start = controller.start(demand[0], core_gib)
            elif spec.kind == pol.SPARKSCALE:
                controller = pol.SparkscaleController(
                    spec.name, cfg, handle_interruptions=spec.handle_interruptions
                )
                start = pol.warm_start(demand[0], cluster=cluster, config=cfg)
            else:
                controller = pol.EmrRulesController(cfg, cluster)
                lo, hi = controller.min_nodes, controller.max_nodes
                start = {
                    controller.group.id: min(
                        hi, max(lo, pol.nodes_for(demand[0] - core_gib, controller.group.usable_gib(f)))
                    )
                }
                emr_rules_text = controller.rules.describe(controller.group, lo, hi)
            rec = RunRecord(spec.name)
            world = World(
                demand_gib=demand,
                cluster=cluster,
                config=cfg,
                params=params,
                seed=seed,
                record=rec,
                initial_task_nodes=start,
            )
            world.run(controller, progress(spec.name) if progress else None)
        else:
            raise ReplayError(f"unknown policy kind {spec.kind!r}")
        rec = _renamed(rec, spec.name)
        if params.backlog and rec.backlog is None:  # analytic: its supply does not depend on the queue
            rec.backlog = backlog_of(demand, rec.supply_gib, params.step_s)
        runs[spec.name] = rec
    scores = {
        name: score(
            demand=demand,
            supply=rec.supply_gib,
            step_s=params.step_s,
            cost_usd=rec.cost_usd,
            oracle_cost_usd=oracle.cost_usd,
            actions=rec.actions,
            scale_out_times_s=rec.scale_out_times_s,
            supply_changes=rec.supply_changes,
            launching=rec.launching_gib,
        )
        for name, rec in runs.items()
    }
    backlog_scores = (
        {name: rec.backlog.scores() for name, rec in runs.items() if rec.backlog is not None}
        if params.backlog
        else None
    )
    notes = list(cluster.notes)
    capacity = core_gib + config.max_task_nodes * max(g.usable_gib(f) for g in cluster.task_groups)
    if max(demand) > capacity:
        notes.append(
            f"peak demand {max(demand):.0f} GiB exceeds what max_task_nodes={config.max_task_nodes} can "
            f"supply (~{capacity:.0f} GiB with core): raise max_task_nodes/group_max_nodes in --config to "
            "compare fairly"
        )
    rates = floor_rates(
        demand, core_gib=core_gib, offers=[(g.usable_gib(f), g.usd_per_hour) for g in cluster.task_groups]
    )
    return ReplayResult(
        step_s=params.step_s,
        core_gib=core_gib,
        offers=pol.describe_offers(cluster, config),
        demand=demand,
        runs=runs,
        scores=scores,
        emr_rules=emr_rules_text,
        notes=notes,
        whole_node_floor_usd=whole_node_floor_usd(rates, step_s=params.step_s),
        foresight_cost_usd=foresight_cost_usd(
            rates,
            step_s=params.step_s,
            provisioning_s=params.provisioning_s,
            decommission_s=params.decommission_s,
        ),
        oracle_cost_usd=oracle.cost_usd,
        params=params,
        backlog_scores=backlog_scores,
    )


def _renamed(rec: RunRecord, name: str) -> RunRecord:
    if rec.name == name:
        return rec
    return RunRecord(
        name,
        rec.supply_gib,
        rec.cost_usd_per_h,
        rec.heap_used_pct,
        rec.cost_usd,
        rec.actions,
        rec.scale_out_times_s,
        dict(rec.counters),
        rec.supply_changes,
        rec.backlog,
        rec.launching_gib,
    )


def finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
