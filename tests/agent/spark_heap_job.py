"""A small real Spark application for the heap agent tests (run as a script, not collected by pytest).

    python spark_heap_job.py MASTER STATSD_PORT HOLD_S

Configures Spark's metrics system exactly as bootstrap/spark-metrics.json does (read from that file), except
the port and a 1 s period, runs a job that caches some data in the executors, then keeps the application (and
so its executor JVMs) alive for HOLD_S seconds so the agent sees them report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

SPARK_METRICS_JSON = Path(__file__).resolve().parents[2] / "bootstrap" / "spark-metrics.json"


def main(master: str, port: str, hold_s: float) -> None:
    props = dict(json.loads(SPARK_METRICS_JSON.read_text())[0]["Properties"])
    props["*.sink.statsd.port"] = port
    props["*.sink.statsd.period"] = "1"
    builder = SparkSession.builder.master(master).appName("sparkscale-heap-agent-test")
    for key, value in props.items():
        builder = builder.config(f"spark.metrics.conf.{key}", value)
    builder = builder.config("spark.executor.memory", "512m").config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    try:
        data = spark.sparkContext.parallelize(range(400_000), 4).map(lambda x: (x, str(x) * 4)).cache()
        print("rows", data.count(), flush=True)
        time.sleep(hold_s)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
