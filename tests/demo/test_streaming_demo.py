"""`sparkscale demo --streaming`: a short window end to end (the stack synthesized in process with the demo's
Kinesis stream in `streams`, the real handlers over HTTP against a moto server, the model writing records to
the stream and putting its streaming and iterator-age metrics), and the CLI's answer to bad input.

No test here may reach a real AWS endpoint (demo/aws.py: fake credentials, a moto server on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from sparkscale import names
from sparkscale_tools.cli import main
from sparkscale_tools.demo import template as tp
from sparkscale_tools.demo.run import DEMO_RUN, DemoOptions, default_cluster
from sparkscale_tools.demo.streaming import (
    DEMO_STREAM,
    RECORDS_PER_MINUTE,
    StreamingDemoResult,
    lag_episodes,
    run_streaming_demo,
    summary_text,
)
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.streaming import KINESIS_NAMESPACE, StreamParams, synthetic_stream

from tests.infra.stack_testlib import synth

HOURS = 1.0
# seed 3: a burst puts the stream behind; the schedule scales out on the rates at 00:14 and on the latency at
# 00:20, the Kinesis alarm goes off at 00:19; caught up, it scales in to what keeps up with the input (00:40)
DEMO_SEED = 3


@pytest.fixture(scope="module")
def streaming_cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack from cdk.json's context with the demo's stream in `streams`, synthesized once."""
    context = json.loads(Path("cdk.json").read_text(encoding="utf-8"))["context"]["sparkscale"]
    out = tmp_path_factory.mktemp("cdk.out")
    synth({"sparkscale": {**context, "streams": [DEMO_STREAM]}}, outdir=out)
    return out


@pytest.fixture(scope="module")
def demo(
    streaming_cdk_out: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StreamingDemoResult, str]:
    trace = synthetic_stream(days=HOURS / 24.0, seed=DEMO_SEED)
    opts = DemoOptions(
        template=streaming_cdk_out,
        trace=trace,
        out_dir=tmp_path_factory.mktemp("demo-out"),
        cluster=default_cluster(),
    )
    env_before = dict(os.environ)
    out = io.StringIO()
    result = run_streaming_demo(opts, StreamParams(), out=out, err=io.StringIO())
    assert dict(os.environ) == env_before
    return result, out.getvalue()


def test_the_stack_reads_the_demo_stream(streaming_cdk_out: Path) -> None:
    tpl = tp.load(streaming_cdk_out)
    assert tpl.config.streams == [DEMO_STREAM]
    assert tpl.config.streaming


def test_the_model_writes_records_to_the_kinesis_stream_and_puts_its_metrics(
    demo: tuple[StreamingDemoResult, str],
) -> None:
    result, _ = demo
    k = result.streaming
    steps = len(result.run.behind_s)
    assert steps == HOURS * 60
    assert k.shards == 2
    assert k.failed_records == 0
    # one PutRecords of RECORDS_PER_MINUTE records for each simulated minute (the input never stops)
    assert (k.put_records_calls, k.records_put) == (steps, steps * RECORDS_PER_MINUTE)
    # a streaming datum a minute (three metrics) and a Kinesis datum a minute, each once
    assert k.datapoints[KINESIS_NAMESPACE] >= steps - 3
    assert k.datapoints[names.STREAMING_NAMESPACE] >= 3 * (steps - 3)
    assert not result.failed
    assert not result.stats.fixed_groups_changed
    assert not result.stats.failures


def test_the_handlers_scale_the_cluster_out_on_its_lag(demo: tuple[StreamingDemoResult, str]) -> None:
    result, printed = demo
    on_lag = [
        d
        for d in result.stats.decisions
        if d["direction"] == "scale_out" and any(str(r).startswith("Stream behind") for r in d["reasons"])
    ]
    assert on_lag, [d["reasons"][:1] for d in result.stats.decisions]
    assert any(d["driving_signal"].startswith(("Streaming", "GetRecords")) for d in on_lag)
    # the iterator-age alarm goes off while the stream keeps falling behind; the two-minute schedule's
    # evaluations read the same lag and may act first (an alarm only wakes the scaler)
    assert "alarm kinesis-age-rising-sparkscale-demo-clicks: OK -> ALARM" in printed
    # after the scale-out, more capacity than at the lowest, while EMR's memory rules never scale out
    assert max(result.run.task_nodes[30:]) > min(result.run.task_nodes)
    rules = result.replay.runs["emr-custom-rules"] if result.replay else None
    assert rules is not None
    assert max(rules.task_nodes[1:]) <= rules.task_nodes[0]


def test_the_summary_says_how_far_behind_when_it_caught_up_and_the_cost_beside_emr_rules(
    demo: tuple[StreamingDemoResult, str],
) -> None:
    result, _ = demo
    text = summary_text(result, epoch=SimParams().epoch)
    assert f"Kinesis stream {DEMO_STREAM}" in text
    assert set(result.scores) == {DEMO_RUN, "emr-custom-rules", "oracle"}
    for name in result.scores:
        assert name in text
    for _, end, worst in result.episodes:
        assert "fell behind at" in text
        assert f"at most {worst:,.0f} s behind" in text
        assert ("caught up at" in text) if end is not None else ("still behind at the end" in text)
    assert result.scores["oracle"].max_s_behind == 0.0
    assert result.files["summary"].read_text(encoding="utf-8") == text
    rows = result.files["timeline"].read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + HOURS * 60


def test_lag_episodes_by_hand() -> None:
    # behind at the end of steps 1–2 (5 s, 10 s), caught up at the end of step 3; behind again from step 5
    assert lag_episodes([0.0, 5.0, 10.0, 0.0, 0.0, 3.0], 60.0, 1.0) == [
        (60.0, 180.0, 10.0),
        (300.0, None, 3.0),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--streaming", "--synthetic", "diurnal"], "--synthetic is a memory shape"),
        (["--streaming", "--peak-gib", "10"], "--peak-gib rescales a memory trace"),
        (["--streaming", "--rows-per-node", "0"], "rows_per_s_per_node must be > 0"),
        (["--rows-per-node", "5"], "--rows-per-node goes with --streaming"),
        (["--streaming", "--trace", "{tmp}/bad.csv"], "negative input rate"),
    ],
)
def test_bad_streaming_input_is_one_line_and_exit_2(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.csv").write_text("time_s,input_rows_per_s\n0,-4\n", encoding="utf-8")
    argv = ["demo", *(a.replace("{tmp}", str(tmp_path)) for a in args), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("sparkscale demo: ")
    assert says in err[0]
