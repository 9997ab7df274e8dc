"""The streaming replay: a stream's input rate through sparkscale (the real run_once), EMR's default custom
rules and the oracle, on a simulated cluster whose processing capacity grows with its TASK nodes; scored by
how far behind each falls, how long it takes to catch up, and what it costs (streaming.py has the model).

The cluster's memory metrics are those of a streaming job holding `StreamParams.memory_gib` of YARN memory all
along (its executors): a streaming job's demand is rows arriving faster than it processes them, not memory
pending in YARN. EMR's custom rules read YARNMemoryAvailablePercentage only: they do not react to lag at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkscale import names
from sparkscale.config import Config
from sparkscale.policy.model import Market

from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.cloudwatch_sim import MetricStream
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec
from sparkscale_tools.replay.engine import Controller, ProgressFn, RunRecord, World
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.streaming import (
    KINESIS_ITERATOR_AGE_MS,
    KINESIS_NAMESPACE,
    MicroBatches,
    StreamParams,
    StreamScores,
    lag_step,
    stream_score,
    streaming_metrics,
)

STREAMING_POLICIES: tuple[str, ...] = (pol.SPARKSCALE, pol.EMR_CUSTOM_RULES, pol.ORACLE)


class StreamingReplayError(ValueError):
    """A streaming replay that cannot run as asked (one line)."""


@dataclass
class StreamRun:
    """One policy's run: per step, TASK nodes, capacity (rows/s), rows behind and seconds behind at the
    step's end; and the run's record (cost, actions)."""

    name: str
    record: RunRecord
    task_nodes: list[int] = field(default_factory=list)
    capacity_rows_per_s: list[float] = field(default_factory=list)
    backlog_rows: list[float] = field(default_factory=list)
    behind_s: list[float] = field(default_factory=list)


class StreamingWorld(World):
    """The replay's World with a stream: every step the lag model runs on the cluster's capacity at the
    step's start; every minute the agent's streaming metrics (Sparkscale/SparkStreaming) and Kinesis's
    iterator age (AWS/Kinesis, the minute's Maximum) are published to the simulated CloudWatch."""

    def __init__(
        self,
        *,
        input_rows_per_s: Sequence[float],
        stream: StreamParams,
        cluster: ClusterSpec,
        config: Config,
        params: SimParams,
        seed: int,
        record: RunRecord,
        initial_task_nodes: dict[str, int] | None = None,
    ) -> None:
        if params.backlog:
            raise StreamingReplayError("the streaming replay has its own backlog (of rows): no --backlog")
        super().__init__(
            demand_gib=[stream.memory_gib] * len(input_rows_per_s),
            cluster=cluster,
            config=config,
            params=params,
            seed=seed,
            record=record,
            initial_task_nodes=initial_task_nodes,
        )
        self.input = list(input_rows_per_s)
        self.sp = stream
        self.core_rows_per_s = stream.core_rows_per_s([(g.nodes, g.vcpu) for g in cluster.core])
        self._node_rows = [stream.node_rows_per_s(g.spec.vcpu) for g in self.task]
        self.run_out = StreamRun(record.name, record)
        self._backlog = 0.0
        self._processed: list[float] = []
        self._batches = MicroBatches(stream.trigger_s)
        self.streaming = MetricStream(stream.agent_lag_s)
        # a step's age is timestamped at the step's start and published once its minute has ended
        self.kinesis = MetricStream(names.KINESIS_PERIOD_S + stream.kinesis_lag_s)
        self.extra_streams = {names.STREAMING_NAMESPACE: self.streaming, KINESIS_NAMESPACE: self.kinesis}

    def capacity_rows_per_s(self) -> float:
        return self.core_rows_per_s + sum(
            g.running * r for g, r in zip(self.task, self._node_rows, strict=True)
        )

    def _lag_tick(self, t: float) -> None:
        """Step k = t / Δt: its input against the capacity now; then Kinesis's datum for it."""
        k = int(t // self.step_s)
        if k >= len(self.input):
            return
        cap = self.capacity_rows_per_s()
        before = self.run_out.behind_s[-1] if self.run_out.behind_s else 0.0
        self._batches.step(
            t, self.step_s, backlog_rows=self._backlog, input_rows_per_s=self.input[k], capacity=cap
        )
        st = lag_step(self._backlog, self.input[k], cap, self.step_s)
        self._backlog = st.backlog_rows
        out = self.run_out
        out.task_nodes.append(sum(g.running for g in self.task))
        out.capacity_rows_per_s.append(cap)
        out.backlog_rows.append(st.backlog_rows)
        out.behind_s.append(st.seconds_behind)
        self._processed.append(st.processed_rows_per_s)
        age = max(before, st.seconds_behind)  # behind grows or shrinks linearly within the step: its maximum
        self.kinesis.add(t, {KINESIS_ITERATOR_AGE_MS: min(age, 1e9) * 1000.0})

    def _stream_sample(self, t: float) -> None:
        """The agent's minute: the last completed step (no datum before the first one completes)."""
        k = int(t // self.step_s) - 1
        if k < 0 or k >= len(self._processed):
            return
        # Spark's processed rate is the last completed batch's rows over its duration (processed_rate_at);
        # before the first batch completes, the rows processed in the step stand for it
        spark_rate = self._batches.processed_rate_at(t)
        processed = self._processed[k] if spark_rate is None or not math.isfinite(spark_rate) else spark_rate
        self.streaming.add(
            t,
            streaming_metrics(
                input_rows_per_s=self.input[k],
                processed_rows_per_s=processed,
                batch_latency_s=self._batches.latency_at(t),
            ),
        )

    def run(self, controller: Controller, progress: ProgressFn | None = None) -> RunRecord:
        # pushed before the controller's events: at a step's time the lag runs on the capacity then, before
        # any decision taken at that time
        self.every(0.0, float(self.step_s), self._lag_tick)
        self.every(self.p.heap_sample_offset_s, float(names.STREAMING_PERIOD_S), self._stream_sample)
        return super().run(controller, progress)


@dataclass
class StreamingResult:
    step_s: int
    input_rows_per_s: list[float]
    stream: StreamParams
    runs: dict[str, StreamRun]
    scores: dict[str, StreamScores]
    oracle_cost_usd: float
    offer: str  # the TASK group the oracle and emr-custom-rules use
    notes: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "step_s": self.step_s,
            "stream": self.stream.to_dict(),
            "oracle_offer": self.offer,
            "policies": {name: s.to_dict() for name, s in self.scores.items()},
            "notes": self.notes,
        }


def cheapest_node_group(cluster: ClusterSpec, *, market: Market | None = None) -> GroupSpec:
    """The TASK group with the lowest price per vCPU-hour (a node processes in proportion to its vCPUs);
    ties: the first listed."""
    groups = [g for g in cluster.task_groups if market is None or g.market is market]
    if not groups:
        groups = list(cluster.task_groups)
    return min(groups, key=lambda g: g.usd_per_hour / max(1, g.vcpu))


def core_rows(cluster: ClusterSpec, stream: StreamParams) -> float:
    return stream.core_rows_per_s([(g.nodes, g.vcpu) for g in cluster.core])


def oracle_stream_run(
    input_rows_per_s: Sequence[float],
    *,
    offer: GroupSpec,
    core_rows_per_s: float,
    stream: StreamParams,
    step_s: int,
) -> StreamRun:
    """Each step the fewest nodes of the cheapest offering per rows/s that keep up with that step's input,
    with no delay: never behind, the least a policy that is never behind can cost."""
    rec = RunRecord(pol.ORACLE)
    run = StreamRun(pol.ORACLE, rec)
    prev: int | None = None
    node = stream.node_rows_per_s(offer.vcpu)
    for k, r in enumerate(input_rows_per_s):
        n = stream.task_nodes_for(r, core_rows_per_s, node)
        rate = n * offer.usd_per_hour
        rec.cost_usd_per_h.append(rate)
        rec.cost_usd += rate * step_s / 3600.0
        run.task_nodes.append(n)
        run.capacity_rows_per_s.append(core_rows_per_s + n * node)
        run.backlog_rows.append(0.0)
        run.behind_s.append(0.0)
        if prev is not None and n != prev:
            rec.actions += 1
            if n > prev:
                rec.scale_out_times_s.append(k * step_s)
        prev = n
    return run


def streaming_config(config: Config, stream_name: str) -> Config:
    """The config with the simulated stream as the cluster's Kinesis stream, unless it names streams."""
    if not config.streams:
        return dataclasses.replace(config, streams=[stream_name])
    return config


def run_streaming_replay(
    input_rows_per_s: Sequence[float],
    *,
    policies: Sequence[str],
    config: Config,
    cluster: ClusterSpec,
    params: SimParams,
    stream: StreamParams,
    seed: int = 0,
    progress: Callable[[str], ProgressFn | None] | None = None,
) -> StreamingResult:
    if not input_rows_per_s:
        raise StreamingReplayError("the trace has no step to replay")
    if not cluster.task_groups:
        raise StreamingReplayError("the cluster has no TASK group")
    if names.STREAMING_PERIOD_S % params.step_s:
        raise StreamingReplayError(
            f"--step-s {params.step_s}: a streaming replay's step must divide a minute (the metrics' period)"
        )
    unknown = [p for p in policies if p not in STREAMING_POLICIES]
    if unknown:
        raise StreamingReplayError(
            f"--policies: {', '.join(unknown)} cannot replay a stream "
            f"(streaming: {', '.join(STREAMING_POLICIES)})"
        )
    rates = list(input_rows_per_s)
    config = streaming_config(config, stream.stream_name)
    # the job's trigger interval is the one the scaler is told (it has no metric of it)
    stream = dataclasses.replace(stream, trigger_s=config.streaming_trigger_interval_s)
    core = core_rows(cluster, stream)
    offer = cheapest_node_group(cluster)
    oracle = oracle_stream_run(rates, offer=offer, core_rows_per_s=core, stream=stream, step_s=params.step_s)
    runs: dict[str, StreamRun] = {}
    for name in policies:
        if name == pol.ORACLE:
            runs[name] = oracle
            continue
        rec = RunRecord(name)
        controller: pol.SparkscaleController | pol.EmrRulesController
        if name == pol.SPARKSCALE:
            controller = pol.SparkscaleController(name, config)
            group = cheapest_node_group(cluster, market=Market.SPOT)
            lo, hi = 0, min(config.max_task_nodes, config.bounds_for(group.id, group.name).max_nodes)
        else:
            controller = pol.EmrRulesController(config, cluster)
            group = controller.group
            lo, hi = controller.min_nodes, controller.max_nodes
        start = {g.id: config.bounds_for(g.id, g.name).min_nodes for g in cluster.task_groups}
        first = stream.task_nodes_for(rates[0], core, stream.node_rows_per_s(group.vcpu))
        start[group.id] = max(start[group.id], lo, min(hi, first))
        world = StreamingWorld(
            input_rows_per_s=rates,
            stream=stream,
            cluster=cluster,
            config=config,
            params=params,
            seed=seed,
            record=rec,
            initial_task_nodes=start,
        )
        world.run(controller, progress(name) if progress else None)
        runs[name] = world.run_out
    scores = {
        name: stream_score(
            behind_s=run.behind_s,
            step_s=params.step_s,
            cost_usd=run.record.cost_usd,
            oracle_cost_usd=oracle.record.cost_usd,
            actions=run.record.actions,
            caught_up_s=stream.caught_up_s,
        )
        for name, run in runs.items()
    }
    notes = list(cluster.notes)
    if pol.EMR_CUSTOM_RULES in runs:
        notes.append(
            "emr-custom-rules reads YARNMemoryAvailablePercentage only: a streaming job that falls behind "
            "holds the same memory, so it never scales out on lag"
        )
    peak_nodes = max(oracle.task_nodes)
    if peak_nodes > config.max_task_nodes:
        notes.append(
            f"keeping up with the peak input needs {peak_nodes} TASK nodes, more than max_task_nodes="
            f"{config.max_task_nodes}: raise it (or --rows-per-node) to compare fairly"
        )
    return StreamingResult(
        step_s=params.step_s,
        input_rows_per_s=rates,
        stream=stream,
        runs=runs,
        scores=scores,
        oracle_cost_usd=oracle.record.cost_usd,
        offer=f"{offer.id} ({offer.instance_type} {offer.market.value}, {offer.vcpu} vCPU, "
        f"${offer.usd_per_hour:.4f}/node-hour)",
        notes=notes,
    )


def _s(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:,.0f}"


def summary_text(result: StreamingResult) -> str:
    """The scores as a table, with what each column means."""
    head = (
        f"{'policy':<18} {'cost $':>9} {'vs oracle':>9} {'p95 behind s':>12} {'max behind s':>12} "
        f"{'behind %':>8} {'fell behind':>11} {'catch-up p50 s':>14} {'catch-up max s':>14} {'actions':>7}"
    )
    lines = [
        f"stream: {len(result.input_rows_per_s)} steps of {result.step_s} s, peak "
        f"{max(result.input_rows_per_s):,.0f} rows/s; {result.stream.rows_per_s_per_node:,.0f} rows/s per "
        f"16-vCPU TASK node, CORE nodes {result.stream.core_share:g} of that",
        head,
        "-" * len(head),
    ]
    for name, s in result.scores.items():
        ratio = f"{s.cost_ratio_vs_oracle:.2f}x" if s.cost_ratio_vs_oracle is not None else "-"
        end = " (still behind at the end)" if s.still_behind_at_end else ""
        lines.append(
            f"{name:<18} {s.cost_usd:>9.2f} {ratio:>9} {_s(s.p95_s_behind):>12} {_s(s.max_s_behind):>12} "
            f"{s.time_behind_pct:>8.1f} {s.falls_behind:>11d} {_s(s.catch_up_s_p50):>14} "
            f"{_s(s.catch_up_s_max):>14} {s.actions:>7d}{end}"
        )
    lines.append(
        "behind: seconds the stream takes to bring the rows not yet processed (≈ Kinesis iterator age); "
        f"catch-up: from falling more than {result.stream.caught_up_s:g} s behind to being caught up again"
    )
    lines.append(f"oracle: the fewest nodes of {result.offer} keeping up each step, with no delay")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
