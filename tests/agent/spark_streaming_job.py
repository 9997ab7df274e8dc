"""A small real Structured Streaming application for the agent's streaming test (run as a script).

    python spark_streaming_job.py MASTER STATSD_PORT RUN_S ROWS_PER_S CAPACITY_ROWS_PER_S

Spark's metrics system is set up as bootstrap/spark-metrics.json does (read from that file), except the port
and a 1 s period, with `spark.sql.streaming.metricsEnabled` on (as sparkscale.emr_setup's spark-defaults set
it). The query reads the `rate` source (ROWS_PER_S rows a second, 1 s trigger) into a `foreachBatch` that is
deliberately slow: it sleeps one second per CAPACITY_ROWS_PER_S rows of the batch, a fixed cost per row.
With a capacity below the input rate each batch holds the rows that arrived during the last one, so it takes
longer than the last: the processing rate stays at the capacity, below the input rate, and the batch latency
grows (the query falls behind). With CAPACITY_ROWS_PER_S 0 there is no sleep and the query keeps up. The query
name has a dot on purpose (names are read from the right).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

SPARK_METRICS_JSON = Path(__file__).resolve().parents[2] / "bootstrap" / "spark-metrics.json"
QUERY_NAME = "orders.enriched"


def main(master: str, port: str, run_s: float, rows_per_s: int, capacity_rows_per_s: float) -> None:
    props = dict(json.loads(SPARK_METRICS_JSON.read_text())[0]["Properties"])
    props["*.sink.statsd.port"] = port
    props["*.sink.statsd.period"] = "1"
    builder = SparkSession.builder.master(master).appName("sparkscale-streaming-test")
    for key, value in props.items():
        builder = builder.config(f"spark.metrics.conf.{key}", value)
    builder = (
        builder.config("spark.sql.streaming.metricsEnabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
    )
    spark = builder.getOrCreate()

    def slow_sink(batch: DataFrame, batch_id: int) -> None:
        rows = batch.count()
        if capacity_rows_per_s > 0:
            time.sleep(rows / capacity_rows_per_s)
        print("batch", batch_id, "rows", rows, flush=True)

    try:
        stream = spark.readStream.format("rate").option("rowsPerSecond", rows_per_s).load()
        query = (
            stream.writeStream.queryName(QUERY_NAME)
            .foreachBatch(slow_sink)
            .trigger(processingTime="1 second")
            .start()
        )
        deadline = time.monotonic() + run_s
        while time.monotonic() < deadline and query.isActive:
            time.sleep(0.5)
        print("last progress", query.lastProgress, flush=True)
        query.stop()
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
