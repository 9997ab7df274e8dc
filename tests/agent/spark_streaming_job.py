"""A small real Structured Streaming application for the agent's streaming test (run as a script).

    python spark_streaming_job.py MASTER STATSD_PORT ROWS_PER_S SLOW_ROWS_PER_S

Spark's metrics system is set up as bootstrap/spark-metrics.json does (read from that file), except the port
and a 1 s period. Three queries on the `rate` source (ROWS_PER_S rows a second, 1 s trigger unless said),
one after the other, in one application:
1. a warm-up, with `spark.sql.streaming.metricsEnabled` off (so the agent never sees it): the first batches of
   a JVM's first query spend seconds loading and compiling classes, which would otherwise set the pace;
2. "behind", with metrics on (as sparkscale.emr_setup's spark-defaults set it), into a deliberately slow
   `foreachBatch` that sleeps one second per SLOW_ROWS_PER_S rows of its batch (a fixed cost per row). With
   that below the input rate, each batch holds the rows that arrived during the last one and takes longer:
   the processing rate stays at SLOW_ROWS_PER_S, below the input rate, and the batch latency grows;
3. "keeping up", with metrics on, no sleep and a 3 s trigger (a busy test machine needs about a second per
   batch however small), after a pause longer than the agent's silence limit.
Each query is named `orders.enriched` (a dot on purpose: names are read from the right). The wall-clock start
and end of phases 2 and 3 are printed as `phase <name> <start epoch s> <end epoch s>`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

SPARK_METRICS_JSON = Path(__file__).resolve().parents[2] / "bootstrap" / "spark-metrics.json"
QUERY_NAME = "orders.enriched"
KEEP_UP_TRIGGER_S = 3  # leaves room for Spark's own ~1 s per batch on a busy machine
PAUSE_S = 5.0  # longer than the agent's silence limit in the test (3 Spark periods of 1 s)


def run_query(
    spark: SparkSession,
    rows_per_s: int,
    slow_rows_per_s: float,
    *,
    batches: int,
    max_s: float,
    trigger_s: int = 1,
) -> tuple[float, float]:
    """Run one query until `batches` batches completed (or `max_s`); its wall-clock start and end."""
    stopping = threading.Event()  # the sink runs in this process (a Py4J callback): stop it mid-sleep

    def sink(batch: DataFrame, batch_id: int) -> None:
        rows = batch.count()
        if slow_rows_per_s > 0:
            stopping.wait(rows / slow_rows_per_s)
        print("batch", batch_id, "rows", rows, flush=True)

    started = time.time()
    stream = spark.readStream.format("rate").option("rowsPerSecond", rows_per_s).load()
    query = stream.writeStream.queryName(QUERY_NAME).foreachBatch(sink)
    query = query.trigger(processingTime=f"{trigger_s} seconds")
    running = query.start()
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline and running.isActive:
        progress = running.lastProgress
        if progress is not None and progress["batchId"] >= batches:
            break
        time.sleep(0.2)
    print("last progress", json.dumps(running.lastProgress, default=str), flush=True)
    stopping.set()
    running.stop()
    return started, time.time()


def main(master: str, port: str, rows_per_s: int, slow_rows_per_s: float) -> None:
    props = dict(json.loads(SPARK_METRICS_JSON.read_text())[0]["Properties"])
    props["*.sink.statsd.port"] = port
    props["*.sink.statsd.period"] = "1"
    builder = SparkSession.builder.master(master).appName("sparkscale-streaming-test")
    for key, value in props.items():
        builder = builder.config(f"spark.metrics.conf.{key}", value)
    builder = builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
    spark = builder.getOrCreate()
    try:
        spark.conf.set("spark.sql.streaming.metricsEnabled", "false")
        run_query(spark, rows_per_s, 0, batches=2, max_s=60)
        spark.conf.set("spark.sql.streaming.metricsEnabled", "true")
        start, end = run_query(spark, rows_per_s, slow_rows_per_s, batches=4, max_s=40)
        print("phase behind", start, end, flush=True)
        time.sleep(PAUSE_S)
        start, end = run_query(spark, rows_per_s, 0, batches=5, max_s=25, trigger_s=KEEP_UP_TRIGGER_S)
        print("phase keeping-up", start, end, flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
