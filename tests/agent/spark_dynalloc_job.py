"""A real Spark application with dynamic allocation on, for the agent tests (run as a script, not by pytest).

    python spark_dynalloc_job.py MASTER STATSD_PORT HOLD_S

StatsdSink as in bootstrap/spark-metrics.json (read from that file) but the port and a 1 s period; dynamic
allocation with shuffle tracking (no external shuffle service), 0..2 executors, so the driver's
ExecutorAllocationManager reports numberMaxNeededExecutors / numberTargetExecutors. Runs a job of 8 slow tasks
(a backlog: more tasks than executor cores) while the agent listens, then holds the app for HOLD_S seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

SPARK_METRICS_JSON = Path(__file__).resolve().parents[2] / "bootstrap" / "spark-metrics.json"


def slow(x: int) -> int:
    time.sleep(3)
    return x


def main(master: str, port: str, hold_s: float) -> None:
    props = dict(json.loads(SPARK_METRICS_JSON.read_text())[0]["Properties"])
    props["*.sink.statsd.port"] = port
    props["*.sink.statsd.period"] = "1"
    builder = SparkSession.builder.master(master).appName("sparkscale-dynalloc-test")
    for key, value in props.items():
        builder = builder.config(f"spark.metrics.conf.{key}", value)
    for key, value in {
        "spark.dynamicAllocation.enabled": "true",
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
        "spark.dynamicAllocation.minExecutors": "0",
        "spark.dynamicAllocation.initialExecutors": "0",
        "spark.dynamicAllocation.maxExecutors": "2",
        "spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
        "spark.dynamicAllocation.executorIdleTimeout": "60s",
        "spark.executor.memory": "512m",
        "spark.executor.cores": "1",
        "spark.ui.enabled": "false",
    }.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        print("sum", spark.sparkContext.parallelize(range(8), 8).map(slow).sum(), flush=True)
        time.sleep(hold_s)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
