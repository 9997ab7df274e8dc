"""`sparkscale demo --streaming`: a streaming cluster reading an Amazon Kinesis stream, scaled on how far
behind it is by the real handlers, on the embedded AWS (moto server).

The stream exists in moto (CreateStream); the model writes a few records to it every simulated minute with
PutRecords (a bounded sample standing for the minute's input: it is a demo, not a load test), publishes what
Spark's streaming metrics would say through the node agent (Sparkscale/SparkStreaming) and, since moto
publishes no Kinesis metric, the stream's GetRecords.IteratorAgeMilliseconds (AWS/Kinesis, dimension
StreamName) with PutMetricData. The stack is synthesized with `streams` naming the stream, so its alarms and
handlers read that iterator age. The lag model is the replay's (replay/streaming.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from sparkscale import names
from sparkscale.config import Config
from sparkscale.policy.model import Market

from sparkscale_tools.demo import aws
from sparkscale_tools.demo import run as demo_run
from sparkscale_tools.demo import template as tp
from sparkscale_tools.demo.console import Console, sim_time
from sparkscale_tools.demo.sim import DemoController, DemoStats
from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.cloudwatch_sim import MetricStream
from sparkscale_tools.replay.cluster import ClusterSpec
from sparkscale_tools.replay.engine import RunRecord, World
from sparkscale_tools.replay.streaming import (
    DIM_STREAM_NAME,
    KINESIS_NAMESPACE,
    StreamParams,
    StreamScores,
    stream_score,
)
from sparkscale_tools.replay.streaming_cli import timeline_text
from sparkscale_tools.replay.streaming_run import (
    StreamingResult,
    StreamingWorld,
    StreamRun,
    cheapest_node_group,
    core_rows,
    run_streaming_replay,
)

DEMO_STREAM: Final = "sparkscale-demo-clicks"
DEMO_SHARDS: Final = 2
RECORDS_PER_MINUTE: Final = 10  # PutRecords per simulated minute: a sample of the minute's input


@dataclass
class StreamingStats:
    stream_name: str
    shards: int = 0
    records_put: int = 0
    put_records_calls: int = 0
    failed_records: int = 0
    datapoints: dict[str, int] = field(default_factory=dict)  # namespace -> datapoints put


class StreamingScenario:
    """demo.sim.Scenario: the Kinesis stream in moto, its records and the streaming metrics."""

    def __init__(self, *, clients: aws.Clients, cluster_id: str, stream_name: str) -> None:
        import boto3  # noqa: PLC0415
        from sparkscale.adapters.aws import boto_config  # noqa: PLC0415

        self._c = clients
        self._kinesis = boto3.session.Session(region_name=tp.REGION).client(
            "kinesis", endpoint_url=clients.endpoint, config=boto_config(attempts=3)
        )
        self._cid = cluster_id
        self.stats = StreamingStats(stream_name)
        self._published: dict[str, int] = {}
        self._steps_put = 0

    def attach(self, world: World, controller: DemoController) -> None:
        if not isinstance(world, StreamingWorld):
            raise tp.DemoError("the streaming scenario needs the streaming model (StreamingWorld)")
        self._w = world
        name = self.stats.stream_name
        self._kinesis.create_stream(StreamName=name, ShardCount=DEMO_SHARDS)
        summary = self._kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        self.stats.shards = int(summary["OpenShardCount"])

    def publish(self, t_s: float) -> None:
        w = self._w
        job = [{"Name": names.DIM_JOB_FLOW_ID, "Value": self._cid}]
        stream = [{"Name": DIM_STREAM_NAME, "Value": self.stats.stream_name}]
        self._put(names.STREAMING_NAMESPACE, w.streaming, job, t_s)
        self._put(KINESIS_NAMESPACE, w.kinesis, stream, t_s)
        self._put_records()

    def _put(self, namespace: str, s: MetricStream, dims: list[dict[str, str]], t_s: float) -> None:
        n = s.visible_count(t_s)
        start = self._published.get(namespace, 0)
        data = [
            {"MetricName": m, "Dimensions": dims, "Timestamp": self._w.dt(s.times[i]), "Value": float(v)}
            for i in range(start, n)
            for m, v in s.values[i].items()
            if math.isfinite(v)
        ]
        for k in range(0, len(data), 1000):
            self._c.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[k : k + 1000])
        self.stats.datapoints[namespace] = self.stats.datapoints.get(namespace, 0) + len(data)
        self._published[namespace] = n

    def _put_records(self) -> None:
        """The steps the lag model has run since the last call: RECORDS_PER_MINUTE records each, every one
        saying how many rows it stands for."""
        w = self._w
        done = len(w.run_out.behind_s)
        for k in range(self._steps_put, done):
            rate = w.input[k]
            if rate <= 0:
                continue
            rows = rate * w.step_s / RECORDS_PER_MINUTE
            records = [
                {
                    "Data": json.dumps({"minute": k, "record": j, "stands_for_rows": round(rows)}).encode(),
                    "PartitionKey": f"user-{(k * RECORDS_PER_MINUTE + j) % 97}",
                }
                for j in range(RECORDS_PER_MINUTE)
            ]
            resp = self._kinesis.put_records(StreamName=self.stats.stream_name, Records=records)
            self.stats.put_records_calls += 1
            self.stats.failed_records += int(resp.get("FailedRecordCount", 0))
            self.stats.records_put += len(records) - int(resp.get("FailedRecordCount", 0))
        self._steps_put = done

    def finish(self) -> None:
        self._put_records()


@dataclass
class StreamingDemoResult:
    cluster_id: str
    stats: DemoStats
    streaming: StreamingStats
    run: StreamRun
    scores: dict[str, StreamScores]  # the demo's run, then the replay's emr-custom-rules and oracle
    replay: StreamingResult | None
    initial_task_nodes: dict[str, int]
    wall_s: float
    files: dict[str, Path]
    notes: list[str]
    # each time it fell behind: (when, when it caught up or None, the most seconds behind)
    episodes: list[tuple[float, float | None, float]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.stats.failures or self.stats.fixed_groups_changed or self.streaming.failed_records)


def streaming_start(
    rates: Sequence[float], cluster: ClusterSpec, config: Config, stream: StreamParams
) -> dict[str, int]:
    """TASK nodes at the start: each group at its minimum, the cheapest SPOT group up to what the first
    minute's input needs (within its bounds and max_task_nodes)."""
    start = {g.id: config.bounds_for(g.id, g.name).min_nodes for g in cluster.task_groups}
    group = cheapest_node_group(cluster, market=Market.SPOT)
    first = stream.task_nodes_for(rates[0], core_rows(cluster, stream), stream.node_rows_per_s(group.vcpu))
    hi = min(config.max_task_nodes, config.bounds_for(group.id, group.name).max_nodes)
    start[group.id] = max(start[group.id], min(hi, first))
    return start


def run_streaming_demo(
    opts: demo_run.DemoOptions, stream: StreamParams, *, out: TextIO, err: TextIO
) -> StreamingDemoResult:
    """The streaming demo (raises template.DemoError for inputs it cannot use)."""
    t0 = time.perf_counter()
    tpl = tp.load(opts.template)
    config = tpl.config
    if not config.streams:
        raise tp.DemoError(f"{tpl.source}: the stack names no Kinesis stream (the `streams` setting)")
    stream_name = config.streams[0]
    sp = StreamParams(
        rows_per_s_per_node=stream.rows_per_s_per_node,
        core_share=stream.core_share,
        trigger_s=config.streaming_trigger_interval_s,
        memory_gib=stream.memory_gib,
        stream_name=stream_name,
    )
    rates = opts.trace.resample(opts.params.step_s)
    console = Console(out, err, progress=opts.progress)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "scores": opts.out_dir / "scores.json",
        "timeline": opts.out_dir / "timeline.csv",
        "decisions": opts.out_dir / "decisions.jsonl",
        "handler_log": opts.out_dir / "handler-logs.jsonl",
        "summary": opts.out_dir / "summary.txt",
    }
    start = streaming_start(rates, opts.cluster, config, sp)
    console.line(f"template: {tpl.source} (stack {tpl.stack_name}; managed cluster {tpl.cluster_ids[0]})")
    scenario: list[StreamingScenario] = []

    def make_world(**kw: Any) -> World:
        kw.pop("demand_gib")
        return StreamingWorld(input_rows_per_s=rates, stream=sp, **kw)

    def make_scenario(setup: Any) -> StreamingScenario:
        s = StreamingScenario(
            clients=setup.clients, cluster_id=setup.spec.cluster_id, stream_name=stream_name
        )
        scenario.append(s)
        return s

    with aws.moto_server() as endpoint, aws.patched_environ({"AWS_ENDPOINT_URL": endpoint}):
        console.line(f"embedded AWS: moto server at {endpoint} (fake credentials, region {tp.REGION})")
        setup = demo_run._set_up(opts, tpl, endpoint, start)
        console.lines(demo_run._setup_lines(tpl, setup)[:-1])
        console.line(
            f"Kinesis stream {stream_name} ({DEMO_SHARDS} shards, moto): the model puts {RECORDS_PER_MINUTE} "
            f"records a minute and publishes its iterator age; {sp.rows_per_s_per_node:,.0f} rows/s per "
            f"16-vCPU TASK node, CORE nodes {sp.core_share:g} of that"
        )
        console.line("")
        record = RunRecord(demo_run.DEMO_RUN)
        stats, notes, world, _, _ = demo_run._drive(
            opts,
            setup,
            demand=[sp.memory_gib] * len(rates),
            record=record,
            console=console,
            handler_log=files["handler_log"],
            make_world=make_world,
            make_scenario=make_scenario,
        )
    wall = time.perf_counter() - t0
    assert isinstance(world, StreamingWorld)
    run = world.run_out
    replay = None
    if opts.compare:
        with demo_run._quiet("sparkscale"):
            replay = run_streaming_replay(
                rates,
                policies=[pol.EMR_CUSTOM_RULES, pol.ORACLE],
                config=setup.tpl.config,
                cluster=setup.spec,
                params=opts.params,
                stream=sp,
                seed=opts.seed,
            )
    oracle_cost = replay.oracle_cost_usd if replay is not None else None
    scores = {
        demo_run.DEMO_RUN: stream_score(
            behind_s=run.behind_s,
            step_s=opts.params.step_s,
            cost_usd=record.cost_usd,
            oracle_cost_usd=oracle_cost,
            actions=record.actions,
            caught_up_s=sp.caught_up_s,
        )
    }
    if replay is not None:
        scores.update(replay.scores)
    result = StreamingDemoResult(
        cluster_id=setup.spec.cluster_id,
        stats=stats,
        streaming=scenario[0].stats,
        run=run,
        scores=scores,
        replay=replay,
        initial_task_nodes=dict(setup.start),
        wall_s=wall,
        files=files,
        notes=notes,
        episodes=lag_episodes(run.behind_s, opts.params.step_s, sp.caught_up_s),
    )
    _write_files(result, rates, opts)
    result.files["summary"].write_text(summary_text(result, epoch=opts.params.epoch), encoding="utf-8")
    return result


def lag_episodes(
    behind_s: Sequence[float], step_s: float, caught_up_s: float
) -> list[tuple[float, float | None, float]]:
    """(fell behind at, caught up at or None, the most seconds behind) per episode, in simulated seconds."""
    from sparkscale_tools.replay.streaming import behind_episodes  # noqa: PLC0415

    n = len(behind_s)
    return [
        (k * step_s, (e * step_s if e < n else None), max(behind_s[k:e]))
        for k, e in behind_episodes(behind_s, caught_up_s)
    ]


def _write_files(result: StreamingDemoResult, rates: Sequence[float], opts: demo_run.DemoOptions) -> None:
    doc = {name: s.to_dict() for name, s in result.scores.items()}
    result.files["scores"].write_text(json.dumps({"policies": doc}, indent=2) + "\n", encoding="utf-8")
    runs = {demo_run.DEMO_RUN: result.run, **(result.replay.runs if result.replay else {})}
    timeline = StreamingResult(
        step_s=opts.params.step_s,
        input_rows_per_s=list(rates),
        stream=result.replay.stream if result.replay else StreamParams(),
        runs=runs,
        scores=result.scores,
        oracle_cost_usd=result.replay.oracle_cost_usd if result.replay else 0.0,
        offer="",
    )
    result.files["timeline"].write_text(timeline_text(timeline), encoding="utf-8")
    result.files["decisions"].write_text(
        "".join(json.dumps(d, sort_keys=True, default=str) + "\n" for d in result.stats.decisions),
        encoding="utf-8",
    )


def summary_text(result: StreamingDemoResult, *, epoch: Any) -> str:
    """How far behind the stream got, when it caught up, what it cost next to emr-custom-rules and the
    oracle, what the handlers did, and where the files are."""
    s, k = result.stats, result.streaming
    hours = len(result.run.behind_s) * 60.0 / 3600.0 if result.run.behind_s else 0.0
    demo = result.scores[demo_run.DEMO_RUN]
    from datetime import timedelta  # noqa: PLC0415

    def at(t_s: float) -> str:
        return sim_time(epoch + timedelta(seconds=t_s), epoch)

    lines = [
        "",
        f"== sparkscale demo --streaming: {hours:.1f} h in {result.wall_s:.0f} s ==",
        f"Kinesis stream {k.stream_name} (moto, {k.shards} shards): {k.records_put} records in "
        f"{k.put_records_calls} PutRecords calls ({k.failed_records} failed); metric datapoints put: "
        + ", ".join(f"{ns} {n}" for ns, n in sorted(k.datapoints.items())),
    ]
    if not result.episodes:
        lines.append(f"the stream never fell more than {1:g} s behind")
    for start, end, worst in result.episodes:
        caught = (
            f"caught up at {at(end)} ({(end - start) / 60:.0f} min later)"
            if end is not None
            else "still behind at the end"
        )
        lines.append(f"fell behind at {at(start)}: at most {worst:,.0f} s behind; {caught}")
    lines.append(
        f"p95 {demo.p95_s_behind:,.0f} s behind, behind {demo.time_behind_pct:.1f} % of the time; "
        f"TASK nodes {sum(result.initial_task_nodes.values())} at start, {max(result.run.task_nodes)} at most"
    )
    invocations = ", ".join(f"{h.split('.')[1]} {n}" for h, n in s.invocations.items())
    outcomes = ", ".join(f"{o} {n}" for o, n in sorted(s.outcomes.items(), key=lambda kv: -kv[1])) or "none"
    lines.append(f"handler invocations: {invocations}; outcomes: {outcomes}; {s.modifications} resizes")
    lines.append(
        "alarm state changes: " + (", ".join(f"{a} {n}" for a, n in sorted(s.transitions.items())) or "none")
    )
    lines += [
        "",
        f"{'policy':<22} {'cost $':>8} {'p95 behind s':>12} {'max behind s':>12} {'catch-up max s':>14}",
    ]
    for name, sc in result.scores.items():
        lines.append(
            f"{name:<22} {sc.cost_usd:>8.2f} {sc.p95_s_behind:>12,.0f} {sc.max_s_behind:>12,.0f} "
            f"{(f'{sc.catch_up_s_max:,.0f}' if sc.catch_up_s_max is not None else '-'):>14}"
            + (" (still behind at the end)" if sc.still_behind_at_end else "")
        )
    if result.replay is not None:
        lines.append("emr-custom-rules reads YARN memory only: a stream falling behind does not move it")
    lines += [f"failed invocation: {f}" for f in s.failures[:5]]
    lines += [f"MASTER/CORE CHANGED: {c}" for c in s.fixed_groups_changed]
    lines += [f"note: {n}" for n in result.notes]
    lines += ["", "files:"]
    lines += [f"  {name:<12}{p}" for name, p in result.files.items()]
    return "\n".join(lines) + "\n"


def streaming_config_file(base: Config, out_dir: Path) -> Path:
    """`base` with the demo's stream as `streams` (unless it names some), as a settings file for synth."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "streaming-config.json"
    raw = json.loads(base.to_json())
    if not raw.get("streams"):
        raw["streams"] = [DEMO_STREAM]
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return path
