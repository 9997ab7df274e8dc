"""The replay's event loop: a simulated EMR cluster (node life cycle, billing, spot interruptions and capacity
shortfalls), simulated CloudWatch streams, and a controller (a policy) acting on them.

Time is in seconds from the start of the trace. The scoring step is fixed (`SimParams.step_s`); everything
else (metric samples, alarm evaluations, Lambda invocations, nodes becoming usable or terminating) happens at
its own exact time in between, in time order. Demand is the trace's value for the step containing the
event's time; with `SimParams.backlog` it is that value plus the work still queued (backlog.py), per policy.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sparkscale.config import Config
from sparkscale.policy.model import GroupStatus, Market

from sparkscale_tools.replay.backlog import Backlog
from sparkscale_tools.replay.cloudwatch_sim import MetricStream
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec
from sparkscale_tools.replay.model import SimParams, emr_signals, heap_signals, heap_used_pct, yarn_signals

ProgressFn = Callable[[int, int], None]


class GroupRuntime:
    """One instance group's nodes. Counts: `requested` (what EMR is asked for), `running` (usable), nodes
    `provisioning` (billed, not yet usable), `waiting` (requested, no capacity to launch them yet, unbilled),
    `decommissioning` (no longer usable, billed until terminated), `warned` (running nodes with a spot
    interruption notice)."""

    __slots__ = (
        "decommissioning",
        "hazard_left",
        "idx",
        "price",
        "provisioning",
        "requested",
        "rng",
        "running",
        "shortfall_until",
        "spec",
        "status",
        "status_since",
        "usable_gib",
        "waiting",
        "warned",
    )

    def __init__(self, idx: int, spec: GroupSpec, usable_fraction: float, seed: int) -> None:
        self.idx = idx
        self.spec = spec
        self.usable_gib = spec.usable_gib(usable_fraction)
        self.price = spec.usd_per_hour
        self.requested = 0
        self.running = 0
        self.provisioning: dict[int, float] = {}  # token -> ready time (insertion ordered)
        self.waiting = 0
        self.decommissioning = 0
        self.warned: set[int] = set()  # tokens of running nodes with a spot interruption notice
        self.status = GroupStatus.RUNNING
        self.status_since = 0.0
        self.shortfall_until = -math.inf
        self.rng = random.Random(f"{seed}:{spec.id}:interruptions")  # noqa: S311 - reproducible simulation, not security
        self.hazard_left = self.rng.expovariate(1.0)

    @property
    def billed(self) -> int:
        return self.running + len(self.provisioning) + self.decommissioning

    @property
    def steady(self) -> bool:
        return self.status is GroupStatus.RUNNING


@dataclass
class RunRecord:
    """What one policy did over the run, per step and in total."""

    name: str
    supply_gib: list[float] = field(default_factory=list)
    cost_usd_per_h: list[float] = field(default_factory=list)
    heap_used_pct: list[float] = field(default_factory=list)  # the model's true value per step (nan: none)
    cost_usd: float = 0.0
    actions: int = 0
    scale_out_times_s: list[float] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # (time, supply after it) at every change of supply during the run: an episode can start between two
    # steps (nodes decommissioned or reclaimed), and its reaction time is measured from that moment
    supply_changes: list[tuple[float, float]] = field(default_factory=list)
    backlog: Backlog | None = None  # SimParams.backlog: the run's queue of waiting work
    # per step, the usable memory of TASK nodes launched and not yet usable (waiting for capacity excluded):
    # an episode that starts while they cover the demand was answered before it began (scores.reaction_times)
    launching_gib: list[float] = field(default_factory=list)

    def bump(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n


class PulledStream(MetricStream):
    """A stream whose datapoints are made when it is read: `fill(t)` adds every datapoint timestamped up to t
    that exists by now, and returns the earliest timestamp the next one can have (a `fill` of an earlier t
    would make nothing: it is not called). Only the visibility check is hooked: every reader (alarms, the
    metrics source) asks it first."""

    def __init__(self, lag_s: float, fill: Callable[[float], float]) -> None:
        super().__init__(lag_s)
        self._fill = fill
        self._next_s = -math.inf

    def visible_count(self, now_s: float) -> int:
        upto = now_s - self.lag_s
        if upto >= self._next_s:
            self._next_s = self._fill(upto)
        return super().visible_count(now_s)

    def made(self) -> int:
        """Make every datapoint that exists by now (after a run: all of them); how many there are."""
        self._next_s = self._fill(math.inf)
        return len(self.times)


class Controller(Protocol):
    name: str

    def attach(self, world: World) -> None:
        """Schedule the controller's own events (periodic evaluations) on the world."""
        ...


class World:
    """The simulated cluster and CloudWatch that a controller reads and resizes."""

    def __init__(
        self,
        *,
        demand_gib: Sequence[float],
        cluster: ClusterSpec,
        config: Config,
        params: SimParams,
        seed: int,
        record: RunRecord,
        initial_task_nodes: dict[str, int] | None = None,
    ) -> None:
        self.arrivals = demand_gib
        # what the signals see per step: the arrivals, or with the backlog model arrivals + queued work,
        # filled in step by step as the queue is known (run)
        self._wanted: list[float] | None = list(demand_gib) if params.backlog else None
        self.demand: Sequence[float] = demand_gib if self._wanted is None else self._wanted
        self.backlog = Backlog(params.step_s) if params.backlog else None
        self.cluster = cluster
        self.config = config
        self.p = params
        self.seed = seed
        self.record = record
        self.step_s = params.step_s
        self.end_s = len(demand_gib) * params.step_s
        self.container_gib = config.default_container_memory_mb / 1024.0
        self.groups = [
            GroupRuntime(i, g, config.usable_memory_fraction, seed) for i, g in enumerate(cluster.groups)
        ]
        self.by_id = {g.spec.id: g for g in self.groups}
        self.task = [g for g in self.groups if g.spec.role.value == "TASK"]
        self.core_gib = cluster.core_gib(config.usable_memory_fraction)
        for g in self.groups:
            if g.spec.role.value != "TASK":
                g.requested = g.running = g.spec.nodes
        self.supply_gib = self.core_gib
        self.rate_usd_per_h = 0.0
        self.cost_usd = 0.0
        self._cost_t = 0.0
        self.now_s = 0.0
        self.version = 0  # bumped on every change a ClusterReader would see
        # (time, sequence, event, period): a periodic event (`every`) is pushed again `period` s after it ran
        self._q: list[tuple[float, int, Callable[[float], None], float | None]] = []
        self._seq = 0
        self._token = 0
        self.emr = MetricStream(params.emr_lag_s)
        self.heap = MetricStream(params.heap_lag_s)
        # a minute's YARN datum is timestamped at the minute's start and sent when it closes; made when read
        self.yarn = PulledStream(params.yarn_period_s + params.yarn_lag_s, self._fill_yarn)
        # more namespaces a World subclass publishes (streaming_run: Spark streaming, Kinesis)
        self.extra_streams: dict[str, MetricStream] = {}
        self._epoch = params.epoch
        # set by a controller that handles EC2 Spot Instance Interruption Warnings: (group, node token, time)
        self.interruption_hook: Callable[[GroupRuntime, int, float], None] | None = None
        # set by a controller that delivers EMR's "EMR Instance Fleet Resize" spot-timeout event: (the fleet's
        # spot market, units given up on, time)
        self.spot_timeout_hook: Callable[[GroupRuntime, int, float], None] | None = None
        for gid, n in (initial_task_nodes or {}).items():
            g = self.by_id[gid]
            g.requested = g.running = n
            self.supply_gib += n * g.usable_gib
        self._recompute_rate()
        self._schedule_spot_market()
        # the YARN minutes made so far: the next minute's start, and the supply changes read up to it
        self._yarn_next = 0.0
        self._yarn_seen = 0
        self._yarn_supply = self.supply_gib

    # --- clock and events -----------------------------------------------------------------------------------
    def dt(self, t_s: float) -> datetime:
        return self._epoch + timedelta(seconds=t_s)

    def demand_at(self, t_s: float) -> float:
        """The demand of the step containing `t_s` (the first or last step outside the trace)."""
        k = int(t_s // self.step_s)
        demand = self.demand
        if 0 <= k < len(demand):  # every event of the run: no clamping
            return demand[k]
        return demand[0] if k < 0 else demand[-1]

    def schedule(self, t_s: float, fn: Callable[[float], None]) -> None:
        self._push(t_s, fn, None)

    def every(self, first_s: float, period_s: float, fn: Callable[[float], None]) -> None:
        self._push(first_s, fn, period_s)

    def _push(self, t_s: float, fn: Callable[[float], None], period_s: float | None) -> None:
        if t_s >= self.end_s:
            return
        self._seq += 1
        heapq.heappush(self._q, (t_s, self._seq, fn, period_s))

    def _run_until(self, t_s: float) -> None:
        q, end = self._q, self.end_s
        while q and q[0][0] <= t_s:
            t, _, fn, period_s = heapq.heappop(q)
            self.now_s = t
            fn(t)
            # the next one, queued after whatever fn scheduled at its time (_push, inlined: most events of
            # a run are periodic ones)
            if period_s is not None and t + period_s < end:
                self._seq += 1
                heapq.heappush(q, (t + period_s, self._seq, fn, period_s))

    # --- billing --------------------------------------------------------------------------------------------
    def _accrue(self) -> None:
        now = self.now_s
        if now > self._cost_t:
            self.cost_usd += self.rate_usd_per_h * (now - self._cost_t) / 3600.0
            self._cost_t = now

    def _recompute_rate(self) -> None:
        self.rate_usd_per_h = sum(g.billed * g.price for g in self.task)

    def _changed(self, g: GroupRuntime) -> None:
        self._recompute_rate()
        self.version += 1
        if g.spec.fleet_id is None:
            steady = (
                g.running == g.requested and not g.provisioning and not g.waiting and not g.decommissioning
            )
        else:  # a fleet market: its resize is over once nothing launches, waits or leaves (a spot timeout)
            steady = not g.provisioning and not g.waiting and not g.decommissioning
        status = GroupStatus.RUNNING if steady else GroupStatus.RESIZING
        if status is not g.status:
            g.status = status
            g.status_since = self.now_s

    # --- node life cycle ------------------------------------------------------------------------------------
    def set_requested(self, g: GroupRuntime, target: int) -> None:
        """ModifyInstanceGroups(InstanceCount=target) on one group, at the current time."""
        self._accrue()
        delta = target - g.requested
        g.requested = target
        if delta > 0:
            self._launch(g, delta)
        elif delta < 0:
            self._remove(g, -delta)
        self._changed(g)

    def _launch(self, g: GroupRuntime, n: int) -> None:
        if self.now_s < g.shortfall_until:
            g.waiting += n
            if g.spec.spot_timeout_s is not None:  # a fleet's spot market: EMR stops trying after this
                self.schedule(self.now_s + g.spec.spot_timeout_s, partial(self._spot_timeout, g))
            return
        ready = self.now_s + self.p.provisioning_s
        for _ in range(n):
            self._token += 1
            token = self._token
            g.provisioning[token] = ready
            self.schedule(ready, partial(self._ready, g, token))

    def _remove(self, g: GroupRuntime, n: int) -> None:
        take = min(n, g.waiting)
        g.waiting -= take
        n -= take
        while n and g.provisioning:  # newest first: cancelled (terminated) before they were usable
            g.provisioning.popitem()
            n -= 1
        if n:
            n = min(n, g.running)
            for _ in range(min(n, len(g.warned))):  # nodes about to be reclaimed go first
                g.warned.pop()
            g.running -= n
            self._supply(-n * g.usable_gib)
            g.decommissioning += n
            self.schedule(self.now_s + self.p.decommission_s, partial(self._terminated, g, n))

    def _supply(self, delta_gib: float) -> None:
        self.supply_gib += delta_gib
        self.record.supply_changes.append((self.now_s, self.supply_gib))

    def _ready(self, g: GroupRuntime, token: int, _t: float = 0.0) -> None:
        if g.provisioning.pop(token, None) is None:
            return  # cancelled by a scale-in
        self._accrue()
        g.running += 1
        self._supply(g.usable_gib)
        self._changed(g)

    def _terminated(self, g: GroupRuntime, n: int, _t: float = 0.0) -> None:
        self._accrue()
        g.decommissioning -= n
        self._changed(g)

    # --- spot market ----------------------------------------------------------------------------------------
    def _schedule_spot_market(self) -> None:
        for g in self.task:
            s = g.spec
            if (
                s.market is not Market.SPOT
                or s.shortfall_episodes_per_day <= 0
                or s.shortfall_duration_s <= 0
            ):
                continue
            rng = random.Random(f"{self.seed}:{s.id}:shortfalls")  # noqa: S311 - reproducible simulation, not security
            rate = s.shortfall_episodes_per_day / 86_400.0
            t = rng.expovariate(rate)
            while t < self.end_s:
                end = t + s.shortfall_duration_s
                self.schedule(t, partial(self._shortfall_start, g, end))
                self.schedule(end, partial(self._shortfall_end, g))
                t = end + rng.expovariate(rate)

    def _shortfall_start(self, g: GroupRuntime, end: float, _t: float = 0.0) -> None:
        g.shortfall_until = end
        self.record.bump("shortfall_episodes")

    def _shortfall_end(self, g: GroupRuntime, _t: float = 0.0) -> None:
        g.shortfall_until = -math.inf
        if g.waiting:
            n, g.waiting = g.waiting, 0
            self._accrue()
            self._launch(g, n)
            self._changed(g)

    def _spot_timeout(self, g: GroupRuntime, _t: float = 0.0) -> None:
        """A fleet's spot resize timed out: the units still waiting are no longer provisioned (EMR stops the
        resize's spot part; the target stays) until the next ModifyInstanceFleet asks again
        (retry_missing)."""
        if not g.waiting:
            return
        self._accrue()
        given_up, g.waiting = g.waiting, 0
        self.record.bump("spot_timeouts")
        self._changed(g)
        if self.spot_timeout_hook is not None:
            self.spot_timeout_hook(g, given_up, self.now_s)

    def retry_missing(self, g: GroupRuntime) -> None:
        """A ModifyInstanceFleet starts a new resize towards both targets: the units given up on are asked
        for again."""
        missing = g.requested - g.running - len(g.provisioning) - g.waiting
        if missing > 0:
            self._accrue()
            self._launch(g, missing)
            self._changed(g)

    def _interruptions(self, t: float) -> None:
        """Poisson interruption warnings at rate λ per running node-hour, drawn once per step per group."""
        for g in self.task:
            lam = g.spec.interruption_rate_per_node_hour
            if lam <= 0 or g.spec.market is not Market.SPOT:
                continue
            exposed = g.running - len(g.warned)
            if exposed <= 0:
                continue
            g.hazard_left -= lam * exposed * self.step_s / 3600.0
            while g.hazard_left <= 0 and g.running - len(g.warned) > 0:
                g.hazard_left += g.rng.expovariate(1.0)
                self._token += 1
                token = self._token
                g.warned.add(token)
                self.record.bump("interruptions")
                self.schedule(t + self.p.interruption_notice_s, partial(self._interrupted, g, token))
                if self.interruption_hook is not None:
                    self.interruption_hook(g, token, t)

    def _interrupted(self, g: GroupRuntime, token: int, _t: float = 0.0) -> None:
        if token not in g.warned:
            return  # the warned node was decommissioned by a scale-in meanwhile
        self._accrue()
        g.warned.discard(token)
        g.running -= 1
        self._supply(-g.usable_gib)
        # EMR keeps an instance group at its requested count: it launches a replacement in the same group.
        if g.running + len(g.provisioning) + g.waiting < g.requested:
            self._launch(g, 1)
        self._changed(g)

    # --- CloudWatch -----------------------------------------------------------------------------------------
    def _emr_sample(self, t: float) -> None:
        s = emr_signals(self.demand_at(t), self.supply_gib, container_gib=self.container_gib, p=self.p)
        self.emr.add(t, s.by_metric())

    def _heap_sample(self, t: float) -> None:
        h = heap_signals(self.demand_at(t), self.supply_gib, container_gib=self.container_gib, p=self.p)
        self.heap.add(t, h.by_metric())

    def _fill_yarn(self, upto_s: float) -> float:
        """Make the YARN minutes [m, m + period) that start by `upto_s` and have closed by now (and before the
        end of the trace: the last minute closes at it and is never sent), from the demand and the run's
        supply changes: the supply in effect at m, and its range over the changes within the minute. Made
        only when read (PulledStream), so a stream no policy or alarm reads costs nothing. Returns the next
        minute's start (infinity without the collector): nothing can be made before it."""
        if not self.p.yarn_collector:
            return math.inf
        period = self.p.yarn_period_s
        last = min(upto_s, self.now_s - period)
        m = self._yarn_next
        if m > last or m + period >= self.end_s:
            return m
        changes = self.record.supply_changes
        i, s = self._yarn_seen, self._yarn_supply
        n = len(changes)
        while m <= last and m + period < self.end_s:
            while i < n and changes[i][0] <= m:  # in effect at the minute's first poll
                s = changes[i][1]
                i += 1
            lo = hi = s
            end = m + period
            demand = self.demand_at(m)
            t, held = m, 0.0  # held: ∫ min(demand, supply) dt over the minute, for the Average statistic
            while i < n and changes[i][0] < end:
                held += (demand if demand < s else s) * (changes[i][0] - t)
                t, s = changes[i][0], changes[i][1]
                lo = s if s < lo else lo
                hi = s if s > hi else hi
                i += 1
            held += (demand if demand < s else s) * (end - t)
            y = yarn_signals(
                demand, lo, hi, container_gib=self.container_gib, p=self.p, allocated_avg_gib=held / period
            )
            self.yarn.add(m, y.by_metric())
            m = end
        self._yarn_next, self._yarn_seen, self._yarn_supply = m, i, s
        return m

    # --- requests as scored ---------------------------------------------------------------------------------
    def record_request(self, *, scale_out: bool) -> None:
        self.record.actions += 1
        if scale_out:
            self.record.scale_out_times_s.append(self.now_s)

    # --- the run --------------------------------------------------------------------------------------------
    def run(self, controller: Controller, progress: ProgressFn | None = None) -> RunRecord:
        p = self.p
        self.every(p.emr_sample_offset_s, p.emr_period_s, self._emr_sample)
        self.every(p.heap_sample_offset_s, p.heap_period_s, self._heap_sample)
        controller.attach(self)
        rec = self.record
        n = len(self.demand)
        report_every = max(1, n // 100)
        spot_risk = any(
            g.spec.interruption_rate_per_node_hour > 0 and g.spec.market is Market.SPOT for g in self.task
        )
        supply, cost, heap = rec.supply_gib, rec.cost_usd_per_h, rec.heap_used_pct
        launching, task = rec.launching_gib, self.task
        demand, step = self.demand, self.step_s
        backlog, arrivals, wanted = self.backlog, self.arrivals, self._wanted
        version, launching_gib = -1, 0.0  # the TASK memory launching, as of World.version `version`
        for k in range(n):
            t = k * step
            self._run_until(t)  # every event since the previous step, up to and including t
            self.now_s = t
            if spot_risk:
                self._interruptions(t)
            supply.append(self.supply_gib)
            if version != self.version:  # nodes are launched or cancelled only with a change (_changed)
                version = self.version
                launching_gib = sum([len(g.provisioning) * g.usable_gib for g in task])
            launching.append(launching_gib)
            cost.append(self.rate_usd_per_h)
            pct = heap_used_pct(demand[k], self.supply_gib, p)
            heap.append(math.nan if pct is None else pct)
            if backlog is not None and wanted is not None:
                queued = backlog.step(arrivals[k], self.supply_gib)
                if k + 1 < n:
                    wanted[k + 1] = arrivals[k + 1] + queued
            if progress is not None and (k % report_every == 0 or k == n - 1):
                progress(k + 1, n)
        self._run_until(self.end_s)  # nothing is scheduled at or after the end: the last step's events
        self.now_s = float(self.end_s)
        self._accrue()
        rec.cost_usd = self.cost_usd
        rec.backlog = backlog
        return rec
