"""The policies a replay compares.

- `sparkscale`: the real `usecases.scale.run_once` through simulated adapters, woken by the stack's alarms
  (evaluated from `alarms.alarm_specs`, each ALARM/OK transition → SNS → Lambda) and by the reconcile
  schedule; spot interruption warnings go to the real `usecases.spot_events.handle_spot_event`.
- `emr-custom-rules`: EMR's documented default custom automatic-scaling policy, on the cheapest SPOT group.
- `static-peak`: the peak demand provisioned all the time (cheapest $/usable-GiB task offering).
- `oracle`: each step the fewest whole nodes of the cheapest $/usable-GiB task offering covering demand above
  core, with zero delay: the cost lower bound of serving the demand with that offering.
- `reactive-ideal`: the oracle's node count requested the moment demand changes (each step), but with the
  provisioning and decommission delays every simulated policy has: the best a purely reactive policy can do.
  With the backlog model its demand is its own arrivals plus its queued work. Not in the default set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sparkscale import names
from sparkscale.alarms import AlarmSpec, alarm_specs
from sparkscale.config import Config
from sparkscale.events.spot import SpotEvent, SpotEventKind
from sparkscale.policy.model import Market
from sparkscale.usecases import scale, spot_events
from sparkscale.usecases.shell import NO_WAIT

from sparkscale_tools.replay.cloudwatch_sim import AlarmBank, AlarmEvaluator
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec
from sparkscale_tools.replay.engine import GroupRuntime, RunRecord, World
from sparkscale_tools.replay.model import SimParams, heap_used_pct
from sparkscale_tools.replay.sim_ports import SimInstanceLocator, sim_ports

SPARKSCALE = "sparkscale"
EMR_CUSTOM_RULES = "emr-custom-rules"
STATIC_PEAK = "static-peak"
ORACLE = "oracle"
REACTIVE_IDEAL = "reactive-ideal"
DEFAULT_POLICIES: tuple[str, ...] = (SPARKSCALE, EMR_CUSTOM_RULES, STATIC_PEAK, ORACLE)
POLICIES: tuple[str, ...] = (*DEFAULT_POLICIES, REACTIVE_IDEAL)


# --- sparkscale ---------------------------------------------------------------------------------------------
class SparkscaleController:
    """Drives the real service: reconcile_once on the schedule, run_once after each alarm notification."""

    def __init__(self, name: str, config: Config, *, handle_interruptions: bool = True) -> None:
        self.name = name
        self.config = config
        self.handle_interruptions = handle_interruptions
        self.outcomes: dict[str, int] = {}

    def attach(self, world: World) -> None:
        self._world = world
        self.ports, self.state, self.notifier = sim_ports(world)
        streams = {
            names.EMR_NAMESPACE: world.emr,
            names.HEAP_NAMESPACE: world.heap,
            names.YARN_NAMESPACE: world.yarn,
            **world.extra_streams,
        }
        self.alarms = AlarmBank(
            [
                AlarmEvaluator(spec, streams[spec.namespace])
                # the collector's alarms exist where the collector does (the bootstrap action turns both on)
                for spec in alarm_specs(
                    self.config, world.cluster.cluster_id, include_yarn=world.p.yarn_collector
                )
                if spec.namespace in streams
            ]
        )
        p = world.p
        world.every(
            p.reconcile_offset_s + p.schedule_latency_s, self.config.reconcile_rate_s, self._reconcile
        )
        world.every(p.alarm_eval_offset_s, p.alarm_eval_period_s, self._evaluate_alarms)
        if self.handle_interruptions:
            self._locator = SimInstanceLocator(world)
            world.interruption_hook = self._on_interruption

    def _evaluate_alarms(self, t: float) -> None:
        for _, state in self.alarms.evaluate(t):
            if state in ("ALARM", "OK"):
                self._world.record.bump(f"alarm_{state.lower()}")
                self._world.schedule(t + self._world.p.sns_lambda_latency_s, self._invoke)

    def _invoke(self, t: float) -> None:
        """The alarm Lambda: one run_once per notification."""
        w = self._world
        result = scale.run_once(
            now=w.dt(t), cluster_id=w.cluster.cluster_id, ports=self.ports, config=self.config, owner="replay"
        )
        self._count(result)

    def _reconcile(self, t: float) -> None:
        """The reconcile Lambda: reconcile_once with whether any of the stack's alarms is in ALARM (what its
        DescribeAlarms returns); it runs run_once unless the TASK groups are at their minimum and calm."""
        w = self._world
        result = scale.reconcile_once(
            now=w.dt(t),
            cluster_id=w.cluster.cluster_id,
            ports=self.ports,
            config=self.config,
            owner="replay-reconcile",
            in_alarm=self.alarms.in_alarm,
        )
        self._count(result)

    def _count(self, result: scale.RunResult) -> None:
        w = self._world
        w.record.bump(f"run_{result.outcome}")
        if result.decision is not None and result.decision.fallback_groups:
            w.record.bump("decisions_with_fallback")

    def _on_interruption(self, g: GroupRuntime, token: int, t: float) -> None:
        iid = self._locator.instance_id(g.spec.id, token)
        w = self._world

        def handle(at: float) -> None:
            event = SpotEvent(
                kind=SpotEventKind.INTERRUPTION,
                instance_id=iid,
                at=w.dt(t),
                region="us-east-1",
                event_id=f"replay-{token}",
                action="terminate",
            )
            result = spot_events.handle_spot_event(
                now=w.dt(at),
                event=event,
                ports=self.ports,
                locator=self._locator,
                config=self.config,
                owner="replay-spot-events",
                lease_wait=NO_WAIT,
            )
            w.record.bump(f"spot_{result.outcome}")

        w.schedule(t + w.p.sns_lambda_latency_s, handle)


# --- EMR's default custom automatic scaling policy ---------------------------------------------------------
@dataclass(frozen=True)
class EmrRules:
    """EMR's documented default custom automatic-scaling rules (the console defaults for a task group)."""

    scale_out_below_pct: float = 15.0  # YARNMemoryAvailablePercentage < 15 → +1 node
    scale_in_above_pct: float = 75.0  # YARNMemoryAvailablePercentage > 75 → −1 node
    period_s: int = names.EMR_PERIOD_S
    evaluation_periods: int = 1
    statistic: str = "Average"
    cooldown_s: int = 300
    step_nodes: int = 1

    def describe(self, group: GroupSpec, min_nodes: int, max_nodes: int) -> str:
        return (
            f"emr-custom-rules on {group.id} ({group.instance_type} {group.market.value}), "
            f"{min_nodes}..{max_nodes} nodes: +{self.step_nodes} node when YARNMemoryAvailablePercentage "
            f"< {self.scale_out_below_pct:g} ({self.statistic}, {self.evaluation_periods} × "
            f"{self.period_s} s), "
            f"−{self.step_nodes} when > {self.scale_in_above_pct:g}; cooldown {self.cooldown_s} s after each "
            "completed resize"
        )

    def alarm(self, cluster_id: str, *, scale_out: bool) -> AlarmSpec:
        return AlarmSpec(
            name=f"emr-autoscaling-{cluster_id}-{'out' if scale_out else 'in'}",
            kind="emr-custom-rules-" + ("out" if scale_out else "in"),
            cluster_id=cluster_id,
            namespace=names.EMR_NAMESPACE,
            metric_name=names.EMR_YARN_MEMORY_AVAILABLE_PCT,
            statistic="Average",
            period_s=self.period_s,
            evaluation_periods=self.evaluation_periods,
            datapoints_to_alarm=self.evaluation_periods,
            threshold=self.scale_out_below_pct if scale_out else self.scale_in_above_pct,
            comparison="LessThanThreshold" if scale_out else "GreaterThanThreshold",
            treat_missing_data="missing",
            to_operators=False,
            description="EMR automatic scaling rule",
            dimensions=((names.DIM_JOB_FLOW_ID, cluster_id),),
        )


def emr_rules_bounds(config: Config, group: GroupSpec) -> tuple[int, int]:
    b = config.bounds_for(group.id, group.name)
    return max(config.min_task_nodes, b.min_nodes), min(config.max_task_nodes, b.max_nodes)


class EmrRulesController:
    """Each minute (EMR automatic scaling re-checks its alarms), if the scale-out alarm is in ALARM → +1 node,
    else if the scale-in alarm is → −1, provided the group is not resizing and the cooldown since the last
    completed resize has passed."""

    def __init__(self, config: Config, cluster: ClusterSpec, rules: EmrRules | None = None) -> None:
        self.name = EMR_CUSTOM_RULES
        self.rules = rules or EmrRules()
        has_spot = any(g.market is Market.SPOT for g in cluster.task_groups)
        self.group = cluster.cheapest_task_group(
            config.usable_memory_fraction, market=Market.SPOT if has_spot else None
        )
        self.min_nodes, self.max_nodes = emr_rules_bounds(config, self.group)

    def attach(self, world: World) -> None:
        self._w = world
        self._g = world.by_id[self.group.id]
        cid = world.cluster.cluster_id
        self._out = AlarmEvaluator(self.rules.alarm(cid, scale_out=True), world.emr)
        self._in = AlarmEvaluator(self.rules.alarm(cid, scale_out=False), world.emr)
        self._alarms = AlarmBank([self._out, self._in])
        self._acted = False
        world.every(world.p.alarm_eval_offset_s, world.p.alarm_eval_period_s, self._tick)

    def _tick(self, t: float) -> None:
        self._alarms.evaluate(t)
        out_state, in_state = self._out.state, self._in.state
        g = self._g
        if not g.steady:
            return
        if self._acted and t < g.status_since + self.rules.cooldown_s:
            return
        if out_state == "ALARM" and g.requested < self.max_nodes:
            target = min(self.max_nodes, g.requested + self.rules.step_nodes)
        elif in_state == "ALARM" and g.requested > self.min_nodes:
            target = max(self.min_nodes, g.requested - self.rules.step_nodes)
        else:
            return
        scale_out = target > g.requested
        self._w.set_requested(g, target)
        self._w.record_request(scale_out=scale_out)
        self._acted = True


# --- reactive-ideal -----------------------------------------------------------------------------------------
class ReactiveIdealController:
    """At every step (the only moments demand changes) requests exactly the whole nodes of the cheapest
    $/usable-GiB task offering that cover the true demand above core (no signal, no lag, no deadband, no
    bounds), on the simulated cluster: new nodes are usable `provisioning_s` later, released ones stop being
    usable at once and are billed `decommission_s` more."""

    def __init__(self, config: Config, cluster: ClusterSpec) -> None:
        self.name = REACTIVE_IDEAL
        f = config.usable_memory_fraction
        self.group = cluster.cheapest_task_group(f)
        self.usable_gib = self.group.usable_gib(f)

    def start(self, demand0: float, core_gib: float) -> dict[str, int]:
        """Warm start: the nodes the first step's demand needs, already running."""
        return {self.group.id: nodes_for(demand0 - core_gib, self.usable_gib)}

    def attach(self, world: World) -> None:
        self._w = world
        self._g = world.by_id[self.group.id]
        world.every(0.0, float(world.step_s), self._tick)

    def _tick(self, t: float) -> None:
        w, g = self._w, self._g
        target = nodes_for(w.demand_at(t) - w.core_gib, self.usable_gib)
        if target != g.requested:
            scale_out = target > g.requested
            w.set_requested(g, target)
            w.record_request(scale_out=scale_out)


# --- static-peak and oracle (analytic: no delays, no spot risk) ---------------------------------------------
def nodes_for(need_gib: float, usable_gib: float) -> int:
    return max(0, math.ceil(need_gib / usable_gib - 1e-9)) if need_gib > 0 else 0


def oracle_run(
    demand: Sequence[float], *, core_gib: float, offer: GroupSpec, config: Config, p: SimParams
) -> RunRecord:
    u = offer.usable_gib(config.usable_memory_fraction)
    rec = RunRecord(ORACLE)
    prev: int | None = None
    hours = p.step_s / 3600.0
    for d in demand:
        n = nodes_for(d - core_gib, u)
        s = core_gib + n * u
        rec.supply_gib.append(s)
        rate = n * offer.usd_per_hour
        rec.cost_usd_per_h.append(rate)
        rec.cost_usd += rate * hours
        pct = heap_used_pct(d, s, p)
        rec.heap_used_pct.append(math.nan if pct is None else pct)
        if prev is not None and n != prev:
            rec.actions += 1
            if n > prev:
                rec.scale_out_times_s.append((len(rec.supply_gib) - 1) * p.step_s)
        prev = n
    return rec


def static_peak_run(
    demand: Sequence[float], *, core_gib: float, offer: GroupSpec, config: Config, p: SimParams
) -> RunRecord:
    u = offer.usable_gib(config.usable_memory_fraction)
    n = nodes_for(max(demand) - core_gib, u)
    s = core_gib + n * u
    rate = n * offer.usd_per_hour
    rec = RunRecord(STATIC_PEAK)
    rec.supply_gib = [s] * len(demand)
    rec.cost_usd_per_h = [rate] * len(demand)
    rec.cost_usd = rate * len(demand) * p.step_s / 3600.0
    rec.heap_used_pct = [math.nan if (x := heap_used_pct(d, s, p)) is None else x for d in demand]
    return rec


def warm_start(demand0: float, *, cluster: ClusterSpec, config: Config) -> dict[str, int]:
    """The task nodes a dynamic policy starts with: every TASK group at its minimum, and the cheapest group
    topped up to cover the first step's demand above core (within its bounds and max_task_nodes)."""
    f = config.usable_memory_fraction
    start = {g.id: config.bounds_for(g.id, g.name).min_nodes for g in cluster.task_groups}
    cheapest = cluster.cheapest_task_group(
        f, market=Market.SPOT if any(g.market is Market.SPOT for g in cluster.task_groups) else None
    )
    have = cluster.core_gib(f) + sum(
        n * g.usable_gib(f) for g in cluster.task_groups for gid, n in start.items() if gid == g.id
    )
    extra = nodes_for(demand0 - have, cheapest.usable_gib(f))
    room_total = config.max_task_nodes - sum(start.values())
    room_group = config.bounds_for(cheapest.id, cheapest.name).max_nodes - start[cheapest.id]
    start[cheapest.id] += max(0, min(extra, room_total, room_group))
    return start


def describe_offers(cluster: ClusterSpec, config: Config) -> list[dict[str, Any]]:
    f = config.usable_memory_fraction
    return [
        {
            "group": g.id,
            "instance_type": g.instance_type,
            "market": g.market.value,
            "usable_gib_per_node": round(g.usable_gib(f), 6),
            "usd_per_hour": g.usd_per_hour,
        }
        for g in cluster.task_groups
    ]
