"""Spark dynamic allocation: the driver's ExecutorAllocationManager gauges → SparkExecutorsNeeded/Target.

Unit tests on lines captured from real Spark 4.3.0 (spark_dynalloc_statsd_lines.txt), and one test with real
pyspark (local-cluster, dynamic allocation with shuffle tracking) through the agent process to a moto server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sparkscale import names
from sparkscale.agent.aggregate import HeapAggregator
from sparkscale.agent.publish import metric_data
from sparkscale.agent.statsd import Counters, HeapReading, parse_line, parse_packet
from sparkscale.clock import utcnow

from tests.agent.conftest import REPO, LineReader, agent_env, cloudwatch, free_udp_port, spark_lines

LINES = [
    line
    for line in (Path(__file__).parent / "spark_dynalloc_statsd_lines.txt").read_bytes().split(b"\n")
    if line and not line.startswith(b"#")
]
APP = "app-20261206165445-0000.driver"
FAST = ("--interval-s", "2", "--spark-period-s", "1")


def test_captured_lines_give_needed_and_target_of_the_driver():
    counters = Counters()
    readings = [r for line in LINES for r in parse_packet(line, counters)]
    assert {r.jvm for r in readings} == {APP}
    assert all(r.driver for r in readings)
    assert [r.value for r in readings if r.field == "needed"] == [0, 8, 6, 4, 2]
    assert [r.value for r in readings if r.field == "target"] == [0, 1, 2]
    assert counters.allocation_lines == 8
    # numberAllExecutors & co. (gauges, counters) and the LiveListenerBus look-alikes: ignored, not errors
    assert counters.ignored_lines == len(LINES) - 8
    assert counters.dropped == 0


@pytest.mark.parametrize(
    ("line", "expected", "counter"),
    [
        (  # a namespace with dots: read from the right end
            "spark.my.ns.driver.ExecutorAllocationManager.executors.numberMaxNeededExecutors:3|g",
            HeapReading("spark.my.ns.driver", True, "needed", 3.0),
            "allocation_lines",
        ),
        ("driver.ExecutorAllocationManager.executors.numberTargetExecutors:3|g", None, "unattributed_lines"),
        ("app.1.ExecutorAllocationManager.executors.numberTargetExecutors:3|g", None, "ignored_lines"),
        ("app.driver.Other.executors.numberTargetExecutors:3|g", None, "ignored_lines"),
        ("app.driver.ExecutorAllocationManager.executors.numberTargetExecutors:3|c", None, "malformed_lines"),
        ("app.driver.ExecutorAllocationManager.executors.numberTargetExecutors:-1|g", None, "invalid_values"),
        ("app.driver.ExecutorAllocationManager.executors.numberTargetExecutors:x|g", None, "malformed_lines"),
    ],
)
def test_allocation_line_parsing(line, expected, counter):
    counters = Counters()
    assert parse_line(line, counters) == expected
    assert getattr(counters, counter) == 1


def test_snapshot_sums_drivers_and_only_then_publishes_the_two_metrics():
    counters = Counters()
    table = HeapAggregator(silent_after_s=30, counters=counters)
    for line in spark_lines():  # the heap capture: a driver and two executors, no dynamic allocation
        for reading in parse_packet(line, counters):
            table.add(reading, now=0.0)
    snap = table.snapshot(now=0.0)
    assert snap.allocation_drivers == 0
    assert names.SPARK_EXECUTORS_NEEDED not in {
        d["MetricName"] for d in metric_data(snap, cluster_id="j-A", timestamp=0)
    }

    for line in LINES:  # plus a second app with dynamic allocation on this node
        for reading in parse_packet(line, counters):
            table.add(reading, now=1.0)
    table.add(HeapReading("other-app.driver", True, "needed", 5.0), now=1.0)
    snap = table.snapshot(now=1.0)
    assert (snap.allocation_drivers, snap.executors_needed, snap.executors_target) == (2, 2.0 + 5.0, 2.0)
    assert snap.driver_jvms == 1  # an allocation gauge alone does not make a heap-reporting driver
    values = {d["MetricName"]: d["Value"] for d in metric_data(snap, cluster_id="j-A", timestamp=0)}
    assert values[names.SPARK_EXECUTORS_NEEDED] == 7.0
    assert values[names.SPARK_EXECUTORS_TARGET] == 2.0
    assert table.snapshot(now=100.0).allocation_drivers == 0  # forgotten with the silent JVM


@pytest.mark.slow
def test_real_spark_dynamic_allocation_reaches_cloudwatch_as_executors_needed(moto_url, tmp_path):
    port = free_udp_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "sparkscale.agent", "--port", str(port), "--cluster-id", "j-DYNALLOC", *FAST],
        env=agent_env(moto_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = LineReader(agent)
    spark = None
    try:
        out.wait_for(lambda line: line.startswith("start "), 20)
        job = [sys.executable, str(REPO / "tests/agent/spark_dynalloc_job.py"), "local-cluster[2,1,1024]"]
        with (tmp_path / "spark.log").open("w") as spark_log:
            spark = subprocess.Popen([*job, str(port), "5"], stdout=spark_log, stderr=subprocess.STDOUT)
        out.wait_for(lambda line: " executors_needed=8 " in line, 120)
        assert spark.wait(timeout=120) == 0, (tmp_path / "spark.log").read_text()[-3000:]
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
    finally:
        for proc in (spark, agent):
            if proc is not None and proc.poll() is None:
                proc.kill()

    cw = cloudwatch(moto_url)
    now = utcnow()

    def maximum(metric: str) -> float:
        points = cw.get_metric_statistics(
            Namespace=names.HEAP_NAMESPACE,
            MetricName=metric,
            Dimensions=[{"Name": "JobFlowId", "Value": "j-DYNALLOC"}],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        assert points, metric
        return max(p["Maximum"] for p in points)

    assert maximum(names.SPARK_EXECUTORS_NEEDED) == 8  # 8 pending 1-core tasks, spark.executor.cores=1
    assert maximum(names.SPARK_EXECUTORS_TARGET) == 2  # capped by spark.dynamicAllocation.maxExecutors
