"""The streaming replay: the trace format, the lag model against hand-computed cases, the scores, the
simulated metrics, the oracle, the synthetic shape and the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from sparkscale import names
from sparkscale.alarms import kinesis_alarm_specs
from sparkscale.config import Config
from sparkscale_tools.cli import main
from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.cloudwatch_sim import AlarmEvaluator, compile_expression
from sparkscale_tools.replay.cluster import default_cluster
from sparkscale_tools.replay.engine import RunRecord, World
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.streaming import (
    KINESIS_ITERATOR_AGE_MS,
    KINESIS_NAMESPACE,
    MicroBatches,
    StreamParams,
    batch_latency_s,
    behind_episodes,
    lag_step,
    load_stream_csv,
    parse_stream_rows,
    percentile,
    seconds_behind,
    stream_score,
    synthetic_stream,
)
from sparkscale_tools.replay.streaming_run import (
    StreamingWorld,
    oracle_stream_run,
    run_streaming_replay,
    streaming_config,
)
from sparkscale_tools.replay.trace import TraceError


# --- the trace ----------------------------------------------------------------------------------------------
def test_a_stream_trace_holds_each_rate_until_the_next_point(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("time_s,input_rows_per_s\n0,1000\n120,3000\n", encoding="utf-8")
    t = load_stream_csv(str(p))
    # end = 120 + 120 → 4 steps of 60 s
    assert t.resample(60) == [1000.0, 1000.0, 3000.0, 3000.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("time_s,rows\n0,1\n", "no 'input_rows_per_s' column"),
        ("t,input_rows_per_s\n0,1\n", "no 'time_s' column"),
        ("time_s,input_rows_per_s\n", "no data rows"),
        ("time_s,input_rows_per_s\n0,lots\n", "line 2: input_rows_per_s is not a number: 'lots'"),
        ("time_s,input_rows_per_s\n0,nan\n", "not a finite number"),
        ("time_s,input_rows_per_s\n0,1\n60,-3\n", "line 3: negative input rate -3 rows/s"),
        ("time_s,input_rows_per_s\n-60,1\n", "negative time"),
        ("time_s,input_rows_per_s\n60,1\n60,2\n", "line 3: time 60 s is not after 60 s (unsorted)"),
        ("time_s,input_rows_per_s\n0\n", "line 2: 1 fields, expected 2"),
    ],
)
def test_bad_stream_traces_say_what_and_where(text: str, message: str) -> None:
    rows = [line.split(",") for line in text.splitlines()]
    with pytest.raises(TraceError) as exc:
        parse_stream_rows(rows, name="s.csv")
    assert message in str(exc.value)
    assert str(exc.value).startswith("s.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time_s,input_rows_per_s\n0,x\n", "input_rows_per_s is not a number"),
        ("time_s,input_rows_per_s\n0,-1\n", "negative input rate"),
        ("time_s,input_rows_per_s\n60,1\n0,1\n", "unsorted"),
    ],
)
def test_the_cli_exits_2_with_one_line_on_a_bad_stream_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    assert main(["replay", "--trace", str(p)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


# --- the lag model ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("backlog", "rate", "capacity", "expected"),
    [
        # 1000 rows/s on 600: 60 000 arrive, 36 000 processed, 24 000 left = 24 s of input
        (0.0, 1000.0, 600.0, (24_000.0, 600.0, 24.0)),
        # then 1500 rows/s of capacity: 24 000 + 60 000 available, 90 000 possible → all 84 000, caught up
        (24_000.0, 1000.0, 1500.0, (0.0, 1400.0, 0.0)),
        # keeps up: processes what arrives, 0 behind
        (0.0, 1000.0, 5000.0, (0.0, 1000.0, 0.0)),
        # nothing arrives, 250 rows/s drain 15 000 of 30 000: 15 000 / 250 = 60 s behind
        (30_000.0, 0.0, 250.0, (15_000.0, 250.0, 60.0)),
        # 2000 rows/s on 1500 with 10 000 behind: 130 000 available, 90 000 processed, 40 000 = 20 s
        (10_000.0, 2000.0, 1500.0, (40_000.0, 1500.0, 20.0)),
    ],
)
def test_the_lag_model_by_hand(
    backlog: float, rate: float, capacity: float, expected: tuple[float, float, float]
) -> None:
    assert tuple(lag_step(backlog, rate, capacity, 60.0)) == pytest.approx(expected)


def test_seconds_behind_without_input_or_capacity() -> None:
    assert seconds_behind(0.0, 0.0, 0.0) == 0.0
    assert seconds_behind(100.0, 0.0, 0.0) == math.inf
    assert seconds_behind(100.0, 50.0, 10.0) == 2.0


def test_batch_latency_is_the_trigger_while_keeping_up_and_more_when_behind() -> None:
    p = StreamParams(trigger_s=10.0)
    # one trigger of 1000 rows/s = 10 000 rows at 2000 rows/s: 5 s
    assert batch_latency_s(0.0, 1000.0, 2000.0, p) == 5.0
    # 30 000 rows behind + 10 000: 20 s, above the 10 s trigger
    assert batch_latency_s(30_000.0, 1000.0, 2000.0, p) == 20.0


def test_micro_batches_report_the_last_completed_batch() -> None:
    b = MicroBatches(trigger_s=60.0)
    # keeping up: 1 000 rows/s × 60 s = 60 000 rows at 2 000 rows/s: 30 s, ends at 30 s
    b.step(0.0, 60.0, backlog_rows=0.0, input_rows_per_s=1000.0, capacity=2000.0)
    assert b.latency_at(29.0) is None
    assert b.latency_at(30.0) == 30.0
    # the next starts a trigger after the last start (60 s): 10 000 behind + 60 000 at 500 rows/s = 140 s;
    # nodes come at 120 s: the 40 000 rows left at 4 000 rows/s take 10 s more: ends at 130 s, 70 s long
    b.step(60.0, 60.0, backlog_rows=10_000.0, input_rows_per_s=1000.0, capacity=500.0)
    b.step(120.0, 60.0, backlog_rows=0.0, input_rows_per_s=1000.0, capacity=4000.0)
    assert b.latency_at(125.0) == 30.0  # still the first one's
    assert b.latency_at(130.0) == 70.0


def test_capacity_grows_with_vcpus_and_the_nodes_that_keep_up() -> None:
    p = StreamParams(rows_per_s_per_node=10_000.0, core_share=0.5)
    assert p.node_rows_per_s(16) == 10_000.0
    assert p.node_rows_per_s(8) == 5_000.0
    # two 8-vCPU CORE nodes at half a TASK node's rate: 2 × 0.5 × 5 000
    assert p.core_rows_per_s([(2, 8)]) == 5_000.0
    # (35 000 − 5 000) / 10 000 = 3 nodes of 16 vCPUs; a row more needs a fourth
    assert p.task_nodes_for(35_000.0, 5_000.0, 10_000.0) == 3
    assert p.task_nodes_for(35_001.0, 5_000.0, 10_000.0) == 4
    assert p.task_nodes_for(4_000.0, 5_000.0, 10_000.0) == 0  # the core's share is enough
    with pytest.raises(ValueError, match="rows_per_s_per_node"):
        StreamParams(rows_per_s_per_node=0.0)


# --- scores -------------------------------------------------------------------------------------------------
def test_scores_by_hand() -> None:
    behind = [0.0, 5.0, 10.0, 0.0, 0.0, 3.0, 0.5, 0.0]
    assert behind_episodes(behind, 1.0) == [(1, 3), (5, 6)]
    s = stream_score(
        behind_s=behind, step_s=60, cost_usd=3.0, oracle_cost_usd=2.0, actions=4, caught_up_s=1.0
    )
    # p95, nearest rank: ⌈0.95 × 8⌉ = 8th of the sorted values = 10
    assert s.p95_s_behind == 10.0
    assert s.max_s_behind == 10.0
    assert s.time_behind_pct == pytest.approx(100 * 3 / 8)
    assert s.falls_behind == 2
    # episodes of 2 and 1 steps: 120 s and 60 s to catch up; p50 nearest rank = the 1st of 2 = 60
    assert (s.catch_up_s_p50, s.catch_up_s_max) == (60.0, 120.0)
    assert s.cost_ratio_vs_oracle == 1.5
    assert not s.still_behind_at_end


def test_an_episode_that_never_ends_has_no_catch_up_time() -> None:
    s = stream_score(
        behind_s=[0.0, 2.0, 4.0], step_s=60, cost_usd=0, oracle_cost_usd=0, actions=0, caught_up_s=1
    )
    assert s.still_behind_at_end
    assert s.catch_up_s_p50 is None
    assert s.cost_ratio_vs_oracle == 1.0
    assert percentile([], 95) == 0.0


# --- the simulated cluster ----------------------------------------------------------------------------------
class _Idle:
    name = "idle"

    def attach(self, world: World) -> None:
        pass


def test_a_cluster_that_does_not_scale_falls_behind_linearly_and_publishes_it() -> None:
    # 2 CORE r5.2xlarge (8 vCPU) × 0.5 × 5 000 = 5 000 rows/s against 10 000: 300 000 rows more behind each
    # minute, 30 s of input: after step k, 30·(k+1) s behind
    stream = StreamParams(rows_per_s_per_node=10_000.0, core_share=0.5)
    world = StreamingWorld(
        input_rows_per_s=[10_000.0] * 10,
        stream=stream,
        cluster=default_cluster(),
        config=Config(),
        params=SimParams(),
        seed=0,
        record=RunRecord("idle"),
    )
    world.run(_Idle())
    out = world.run_out
    assert out.behind_s == pytest.approx([30.0 * (k + 1) for k in range(10)])
    assert out.capacity_rows_per_s == [5_000.0] * 10
    # the agent's minute at 30 + 60·j: step j's numbers
    t, first = world.streaming.times[0], world.streaming.values[0]
    assert t == 90.0
    assert first[names.STREAMING_INPUT_ROWS_PER_S] == 10_000.0
    assert first[names.STREAMING_PROCESSED_ROWS_PER_S] == 5_000.0
    # the first batch (one 60 s trigger of 10 000 rows/s at 5 000 rows/s: 120 s) has not ended at 90 s: no
    # latency yet; it ends at 120 s, the minute at 150 s reports it; the second starts at 120 s with the
    # 600 000 rows behind then + 600 000: 240 s, reported from the minute at 390 s
    assert names.STREAMING_BATCH_LATENCY_MS not in first
    latency = {
        t: v.get(names.STREAMING_BATCH_LATENCY_MS)
        for t, v in zip(world.streaming.times, world.streaming.values, strict=True)
    }
    assert (latency[150.0], latency[330.0], latency[390.0]) == (120_000.0, 120_000.0, 240_000.0)
    # Kinesis: the minute's Maximum, in milliseconds: the end of the minute (step 3: 120 s)
    assert world.kinesis.values[3][KINESIS_ITERATOR_AGE_MS] == pytest.approx(120_000.0)
    assert set(world.extra_streams) == {names.STREAMING_NAMESPACE, KINESIS_NAMESPACE}


def test_the_oracle_is_never_behind_and_pays_for_the_nodes_it_needs() -> None:
    cluster = default_cluster()
    offer = next(g for g in cluster.task_groups if g.vcpu == 16)
    stream = StreamParams(rows_per_s_per_node=10_000.0, core_share=0.5)
    run = oracle_stream_run(
        [5_000.0, 35_000.0, 35_000.0, 0.0], offer=offer, core_rows_per_s=5_000.0, stream=stream, step_s=60
    )
    assert run.task_nodes == [0, 3, 3, 0]
    assert run.behind_s == [0.0] * 4
    assert run.record.cost_usd == pytest.approx(6 * offer.usd_per_hour / 60)
    assert run.record.actions == 2


def test_emr_custom_rules_do_not_see_a_stream_fall_behind() -> None:
    """The job's memory does not move when input outgrows the cluster: EMR's rules read memory only."""
    rates = [20_000.0] * 30 + [120_000.0] * 60
    result = run_streaming_replay(
        rates,
        policies=[pol.EMR_CUSTOM_RULES, pol.ORACLE],
        config=Config(),
        cluster=default_cluster(),
        params=SimParams(),
        stream=StreamParams(),
    )
    rules = result.runs[pol.EMR_CUSTOM_RULES]
    assert max(rules.task_nodes[30:]) <= max(rules.task_nodes[:30])  # never scaled out for the burst
    assert result.scores[pol.EMR_CUSTOM_RULES].still_behind_at_end
    assert result.scores[pol.ORACLE].max_s_behind == 0.0
    assert any("YARNMemoryAvailablePercentage" in n for n in result.notes)


# --- the synthetic shape ------------------------------------------------------------------------------------
def test_the_synthetic_stream_is_seeded_peaks_where_asked_and_has_bursts() -> None:
    a, b, c = (synthetic_stream(days=2, seed=s) for s in (1, 1, 2))
    assert a == b
    assert a.demand_gib != c.demand_gib
    assert max(a.demand_gib) == pytest.approx(150_000.0)
    rates = a.demand_gib
    # bursts: minute-to-minute jumps of more than 40 % (the rhythm and the noise move ~1 % a minute)
    jumps = sum(1 for x, y in itertools.pairwise(rates) if y > 1.4 * x)
    assert jumps >= 5
    # the rhythm: the evening hour above the morning one
    hour = 3600 // 60
    assert sum(rates[20 * hour : 21 * hour]) > 2 * sum(rates[8 * hour : 9 * hour])


def test_the_cli_replays_a_synthetic_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.json"
    timeline = tmp_path / "t.csv"
    code = main(
        [
            "replay",
            "--synthetic",
            "streaming",
            "--days",
            "0.25",
            "--json",
            str(out),
            "--timeline",
            str(timeline),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "p95 behind s" in text
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(doc["policies"]) == {"sparkscale", "emr-custom-rules", "oracle"}
    assert doc["policies"]["oracle"]["p95_s_behind"] == 0.0
    rows = timeline.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("time_s,input_rows_per_s,sparkscale:task_nodes")
    assert len(rows) == 1 + 360


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policies", "static-peak"], "'static-peak' cannot replay a stream"),
        (["--peak-gib", "10"], "--peak-gib rescales a memory trace"),
        (["--rows-per-node", "0"], "rows_per_s_per_node must be > 0"),
        (["--core-share", "-1"], "core_share must be a finite number >= 0"),
        (["--backlog"], "--backlog is for memory traces"),
        (["--step-s", "300"], "must divide a minute"),
    ],
)
def test_bad_streaming_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["replay", "--synthetic", "streaming", "--days", "0.1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_streaming_options_need_a_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "m.csv"
    p.write_text("time_s,demand_gib\n0,10\n60,20\n", encoding="utf-8")
    assert main(["replay", "--trace", str(p), "--rows-per-node", "5"]) == 2
    assert "go with a streaming trace" in capsys.readouterr().err


# --- the real policy on a stream ----------------------------------------------------------------------------
def test_the_kinesis_alarms_metric_math_rate_and_if() -> None:
    # the stack's alarm (alarms.kinesis_alarm_specs): the age's change per second above the caught-up age
    f = compile_expression("IF(age > 60000, RATE(age), 0)", {"age"})
    assert f({"age": 120_000.0}, {"age": 60_000.0}, 60.0) == 1000.0  # 60 000 ms more in 60 s
    assert f({"age": 50_000.0}, {"age": 0.0}, 60.0) == 0.0  # rising, but under the caught-up age
    assert f({"age": 120_000.0}) is None  # RATE has no value at the first datapoint
    assert compile_expression("IF(m >= 2, m * 2, -1)", {"m"})({"m": 2.0}) == 4.0


def test_the_kinesis_alarm_goes_off_on_a_stream_that_keeps_falling_behind() -> None:
    config = streaming_config(Config(), "clicks")
    (spec,) = kinesis_alarm_specs(config, "j-REPLAYSIM0001")
    world = StreamingWorld(
        input_rows_per_s=[10_000.0] * 15,  # 30 s more behind each minute (as above)
        stream=StreamParams(),
        cluster=default_cluster(),
        config=config,
        params=SimParams(),
        seed=0,
        record=RunRecord("idle"),
    )
    alarm = AlarmEvaluator(spec, world.kinesis)
    world.run(_Idle())
    # over 60 s behind from minute 2; five rising minutes of it are visible by 08:10
    assert alarm.evaluate(4 * 60 + 50)[0] != "ALARM"
    assert alarm.evaluate(8 * 60 + 50)[0] == "ALARM"
    assert alarm.window(8 * 60 + 50) == pytest.approx([500.0] * config.streaming_iterator_age_rising_minutes)


def test_sparkscale_scales_out_on_lag_where_emr_custom_rules_do_not() -> None:
    rates = [20_000.0] * 30 + [120_000.0] * 90
    result = run_streaming_replay(
        rates,
        policies=[pol.SPARKSCALE, pol.EMR_CUSTOM_RULES, pol.ORACLE],
        config=Config(),
        cluster=default_cluster(),
        params=SimParams(),
        stream=StreamParams(),
    )
    ours, rules = result.scores[pol.SPARKSCALE], result.scores[pol.EMR_CUSTOM_RULES]
    nodes = result.runs[pol.SPARKSCALE].task_nodes
    assert max(nodes[30:]) > max(nodes[:30])  # scaled out for the burst
    assert ours.catch_up_s_max is not None  # and caught up at least once
    assert ours.p95_s_behind < rules.p95_s_behind / 3


def test_micro_batches_report_sparks_processed_rate() -> None:
    # Spark's processingRate-total: the last completed batch's rows over its own duration, so a query that
    # keeps up reports what its capacity processes (2 000 rows/s), not the 1 000 rows/s arriving
    b = MicroBatches(trigger_s=60.0)
    b.step(0.0, 60.0, backlog_rows=0.0, input_rows_per_s=1000.0, capacity=2000.0)
    assert b.processed_rate_at(29.0) is None  # no batch completed yet
    assert b.processed_rate_at(30.0) == 2000.0  # 60 000 rows in 30 s
    # the second batch: 70 000 rows in 70 s (500 rows/s, then 4 000 once the nodes come)
    b.step(60.0, 60.0, backlog_rows=10_000.0, input_rows_per_s=1000.0, capacity=500.0)
    b.step(120.0, 60.0, backlog_rows=0.0, input_rows_per_s=1000.0, capacity=4000.0)
    assert b.processed_rate_at(125.0) == 2000.0  # still the first one's
    assert b.processed_rate_at(130.0) == pytest.approx(1000.0)


def test_a_steady_stream_keeps_the_capacity_it_needs_and_no_more() -> None:
    # 60 000 rows/s for 2 hours (the cluster starts with 65 000 rows/s: 5 000 CORE + 6 TASK nodes), then
    # 20 000 for 4 hours. Caught up, the scaler removes nodes down to what keeps up with the input (input /
    # processed rate x 1.2 headroom: 24 000 -> 2 TASK nodes, 25 000 rows/s), not to what YARN memory (a
    # constant 48 GiB) would leave: before this floor it fell to 0 TASK nodes every ~40 minutes and was
    # behind 56 % of the time (3.1 x the oracle's cost)
    rates = [60_000.0] * 120 + [20_000.0] * 240
    result = run_streaming_replay(
        rates,
        policies=[pol.SPARKSCALE, pol.ORACLE],
        config=Config(),
        cluster=default_cluster(),
        params=SimParams(),
        stream=StreamParams(),
    )
    run, score = result.runs[pol.SPARKSCALE], result.scores[pol.SPARKSCALE]
    assert min(run.capacity_rows_per_s[:120]) >= 60_000.0
    assert run.capacity_rows_per_s[-1] == 25_000.0  # scaled in, to what keeps up with the headroom
    assert min(run.capacity_rows_per_s) >= 20_000.0  # never below the input
    assert (score.max_s_behind, score.falls_behind) == (0.0, 0)
    assert score.cost_ratio_vs_oracle is not None
    assert score.cost_ratio_vs_oracle < 1.1
