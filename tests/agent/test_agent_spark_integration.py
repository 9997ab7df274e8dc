"""Real Spark → the agent → CloudWatch (a moto server on 127.0.0.1).

Spark 4.3.0 from the pip pyspark, master local-cluster[2,1,1024]: a standalone master and two workers start
inside the driver's JVM and each worker launches its executor as a separate JVM (`ps` shows three java
processes), so the agent sees a driver and two executors report, each with its own heap.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from sparkscale import names
from sparkscale.clock import utcnow

from tests.agent.conftest import REPO, LineReader, agent_env, cloudwatch, free_udp_port

pytestmark = pytest.mark.slow

CLUSTER = "j-SPARKINTEG"
FAST = ("--interval-s", "2", "--spark-period-s", "1")  # Spark reports every 1 s in spark_heap_job.py
EXECUTOR_XMX = 512 * 1024 * 1024
HEAP_METRICS = {
    names.HEAP_EXECUTOR_USED_BYTES,
    names.HEAP_EXECUTOR_MAX_BYTES,
    names.HEAP_EXECUTOR_USED_PCT,
    names.HEAP_EXECUTOR_MAX_JVM_USED_PCT,
    names.HEAP_JVM_COUNT,
    names.HEAP_DRIVER_USED_BYTES,
    names.HEAP_DRIVER_MAX_BYTES,
    names.HEAP_DRIVER_USED_PCT,
}


def stats(cw, metric: str) -> tuple[float, float]:
    now = utcnow()
    points = cw.get_metric_statistics(
        Namespace=names.HEAP_NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": "JobFlowId", "Value": CLUSTER}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Minimum", "Maximum"],
    )["Datapoints"]
    assert points, metric
    return min(p["Minimum"] for p in points), max(p["Maximum"] for p in points)


def test_real_spark_executors_reach_cloudwatch_through_the_agent(moto_url, tmp_path):
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
    try:
        out.wait_for(lambda line: line.startswith("start "), 20)
        job = [
            sys.executable,
            str(REPO / "tests/agent/spark_heap_job.py"),
            "local-cluster[2,1,1024]",
            str(port),
            "10",
        ]
        with (tmp_path / "spark.log").open("w") as spark_log:  # a file, not a pipe nobody reads while it runs
            spark = subprocess.Popen(job, stdout=spark_log, stderr=subprocess.STDOUT)
        seen = out.wait_for(
            lambda line: line.startswith("publish ok executors=2 ") and " drivers=1 " in line, 75
        )
        assert spark.wait(timeout=60) == 0, (tmp_path / "spark.log").read_text()[-3000:]
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
    finally:
        for proc in (spark, agent):
            if proc is not None and proc.poll() is None:
                proc.kill()
    for counter in ("malformed", "invalid", "non_utf8", "dropped"):
        assert f" {counter}=0 " in seen + " "

    cw = cloudwatch(moto_url)
    metrics = cw.list_metrics(Namespace=names.HEAP_NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in metrics} == HEAP_METRICS
    assert all(m["Dimensions"] == [{"Name": "JobFlowId", "Value": CLUSTER}] for m in metrics)

    assert stats(cw, names.HEAP_JVM_COUNT)[1] == 2  # two executor JVMs at once
    _, used_max = stats(cw, names.HEAP_EXECUTOR_USED_BYTES)
    _, top_max = stats(cw, names.HEAP_EXECUTOR_MAX_BYTES)
    assert top_max == pytest.approx(
        2 * EXECUTOR_XMX, rel=0.1
    )  # -Xmx512m each (the JVM may report a bit less)
    assert 0 < used_max <= top_max
    for metric in (
        names.HEAP_EXECUTOR_USED_PCT,
        names.HEAP_EXECUTOR_MAX_JVM_USED_PCT,
        names.HEAP_DRIVER_USED_PCT,
    ):
        assert 0 < stats(cw, metric)[1] <= 100, metric
    _, driver_used = stats(cw, names.HEAP_DRIVER_USED_BYTES)
    _, driver_max = stats(cw, names.HEAP_DRIVER_MAX_BYTES)
    assert 0 < driver_used <= driver_max
