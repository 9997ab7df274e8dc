"""Real Spark Structured Streaming → StatsdSink → the agent → CloudWatch (a moto server on 127.0.0.1).

pyspark 4.3.0 (the venv's), master local[2]: tests/agent/spark_streaming_job.py runs, in one application, a
warm-up query with streaming metrics off, then a query that falls behind (100 rows/s of the `rate` source
into a `foreachBatch` that handles 60 rows/s), then, after a pause, the same query keeping up (no sleep, a
3 s trigger). The agent publishes every 2 s, so each datum is its own 2 s bucket and the series is read back
in order with a 2 s period; the job prints when each phase ran, which splits the series. It took 146 s on
this project's shared two-core machine with other work running (Spark's start and first batches dominate).
"""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sparkscale import names
from sparkscale.clock import utcnow

from tests.agent.conftest import REPO, LineReader, agent_env, cloudwatch, free_udp_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

CLUSTER = "j-SPARKSTREAM"
FAST = ("--interval-s", "2", "--spark-period-s", "1")  # Spark reports every 1 s in spark_streaming_job.py
STRUCTURED = {
    names.STREAMING_INPUT_ROWS_PER_S,
    names.STREAMING_PROCESSED_ROWS_PER_S,
    names.STREAMING_BATCH_LATENCY_MS,
}
INPUT_ROWS_PER_S = 100
SLOW_SINK_ROWS_PER_S = 60
# spark_streaming_job.py prints `phase <name> <start epoch s> <end epoch s>`
PHASE_LINE = re.compile(r"phase (\S+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)")


def run_job(moto_url: str, tmp_path: Path) -> tuple[str, dict[str, tuple[datetime, datetime]]]:
    """Run the agent and the streaming application; the agent's log and each phase's start and end."""
    port = free_udp_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "sparkscale.agent", "--port", str(port), "--cluster-id", CLUSTER, *FAST],
        env=agent_env(moto_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = LineReader(agent)
    spark = None
    log = tmp_path / "spark.log"
    try:
        out.wait_for(lambda line: line.startswith("start "), 20)
        job = [sys.executable, str(REPO / "tests/agent/spark_streaming_job.py"), "local[2]", str(port)]
        job += [str(INPUT_ROWS_PER_S), str(SLOW_SINK_ROWS_PER_S)]
        with log.open("w") as spark_log:  # a file, not a pipe nobody reads while it runs
            spark = subprocess.Popen(job, stdout=spark_log, stderr=subprocess.STDOUT)
        assert spark.wait(timeout=240) == 0, log.read_text()[-3000:]
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
    finally:
        for proc in (spark, agent):
            if proc is not None and proc.poll() is None:
                proc.kill()
    phases = {}
    # the JVM writes to the same file from another process: a line of its own may run into the job's
    # `phase` line, so the three fields are found wherever they are, not by splitting the line
    for name, start, end in PHASE_LINE.findall(log.read_text()):
        phases[name] = (datetime.fromtimestamp(float(start), UTC), datetime.fromtimestamp(float(end), UTC))
    return "\n".join(out.rest()), phases


def series(cw, metric: str) -> dict[datetime, float]:
    """The metric's 2 s datapoints (Maximum; one datum per bucket from the one node), by time."""
    now = utcnow()
    points = cw.get_metric_statistics(
        Namespace=names.STREAMING_NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": names.DIM_JOB_FLOW_ID, "Value": CLUSTER}],
        StartTime=now - timedelta(minutes=15),
        EndTime=now + timedelta(minutes=1),
        Period=2,
        Statistics=["Maximum"],
    )["Datapoints"]
    return {p["Timestamp"]: p["Maximum"] for p in points}


def phase_rows(cw, start: datetime, end: datetime) -> list[tuple[float, float, float]]:
    """(input, processed, latency) of every bucket inside the phase, in time order, once rows arrived."""
    rows_in = series(cw, names.STREAMING_INPUT_ROWS_PER_S)
    processed = series(cw, names.STREAMING_PROCESSED_ROWS_PER_S)
    latency = series(cw, names.STREAMING_BATCH_LATENCY_MS)
    assert rows_in.keys() == processed.keys() == latency.keys()
    return [
        (rows_in[t], processed[t], latency[t])
        for t in sorted(rows_in)
        if start <= t <= end and rows_in[t] > 0
    ]


def test_a_real_query_falls_behind_then_keeps_up(moto_url, tmp_path):
    log, phases = run_job(moto_url, tmp_path)
    assert set(phases) == {"behind", "keeping-up"}, phases
    assert "streaming ok queries=1 dstream_apps=0 " in log, log[-3000:]
    assert " dropped=0" in log.rsplit("stopped ", 1)[1], log[-2000:]

    cw = cloudwatch(moto_url)
    metrics = cw.list_metrics(Namespace=names.STREAMING_NAMESPACE)["Metrics"]
    # Structured Streaming only: no DStreams datum at all (never a zero for what nothing reported)
    assert {m["MetricName"] for m in metrics} == STRUCTURED
    assert all(m["Dimensions"] == [{"Name": names.DIM_JOB_FLOW_ID, "Value": CLUSTER}] for m in metrics)

    behind = phase_rows(cw, *phases["behind"])
    assert len(behind) >= 3, behind
    # falling behind: the sink handles ~60 of the 100 rows arriving each second. Over the phase, and in most
    # buckets: on a loaded machine one batch's own rates can come out even (its input rate is its rows over
    # the time since the last batch), as a fresh-clone CI run showed
    ins, dones = sum(r for r, _, _ in behind), sum(p for _, p, _ in behind)
    assert dones < 0.85 * ins, behind
    assert sum(processed < 0.85 * rows_in for rows_in, processed, _ in behind) > len(behind) / 2, behind
    assert statistics.median(r for r, _, _ in behind) == pytest.approx(INPUT_ROWS_PER_S, rel=0.3), behind
    # each batch holds what arrived during the last, so takes longer: the latency ends at its highest
    latencies = [latency for _, _, latency in behind]
    assert latencies[-1] == max(latencies), latencies
    assert latencies[-1] > 1.5 * latencies[0], latencies

    # keeping up (3 s trigger): each batch's rows over its own duration are at least the rows that arrived
    # per second, and every batch fits in its trigger interval instead of growing
    caught_up = phase_rows(cw, *phases["keeping-up"])
    assert len(caught_up) >= 3, caught_up
    assert all(processed >= 0.9 * rows_in for rows_in, processed, _ in caught_up), caught_up
    assert statistics.median(r for r, _, _ in caught_up) == pytest.approx(INPUT_ROWS_PER_S, rel=0.3)
    assert max(latency for _, _, latency in caught_up) < 3000, caught_up
