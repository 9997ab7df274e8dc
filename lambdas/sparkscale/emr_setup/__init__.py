"""EMR configurations (the `--configurations` of `aws emr create-cluster`) that keep Spark jobs alive when
sparkscale removes TASK nodes: the stack outputs them and `sparkscale emr-configurations` prints them.

- `yarn-site`: YARN node labels with application masters on CORE nodes. A Spark driver in cluster mode runs
  in its application master, so a TASK node that goes can then take executors but never a driver. EMR
  5.19.0-5.36.x do this by default; from EMR 6.0.0 node labels are off by default and these two properties
  turn them back on (EMR Management Guide, "Understand node types", task nodes). EMR creates the labels
  when it creates the cluster: they cannot be added by reconfiguring a running cluster.
- `spark-defaults`: Spark's graceful decommission with shuffle and RDD block migration. Spark acts on a YARN
  node entering DECOMMISSIONING (what EMR does to a node a shrink removes) from Spark 3.4.0 (SPARK-30835,
  apache/spark#35683: YarnAllocator.handleNodesInDecommissioningState), i.e. EMR 6.12.0 and later, and only
  with the external shuffle service off (SPARK-39018: with `spark.shuffle.service.enabled` true the
  allocator logs a warning and ignores decommissioning nodes). The shuffle service is on by default on EMR,
  so these settings turn it off and turn on dynamic allocation's shuffle tracking instead, which dynamic
  allocation needs without it. `keep_shuffle_service=True` leaves both alone (and Spark then only
  decommissions, instead of killing, the executors dynamic allocation removes).
- `spark-defaults`, every release: `spark.sql.streaming.metricsEnabled`, so each Structured Streaming query
  reports its input rate, processing rate and batch latency through Spark's metrics system, which the node
  agent's StatsdSink forwards (docs/streaming.md). Off by default in every Spark; Spark 2.2 and later read it
  (an older Spark ignores an unknown `spark.sql.*` key). A job can still turn it off for itself.

Pure data: no I/O. See docs/safe-scale-in.md for why and for which releases.
"""

from __future__ import annotations

import re
from typing import Any, Final

YARN_NODE_LABELS: Final = {
    "yarn.node-labels.enabled": "true",
    "yarn.node-labels.am.default-node-label-expression": "CORE",
}
SPARK_DECOMMISSION: Final = {
    "spark.decommission.enabled": "true",
    "spark.storage.decommission.enabled": "true",
    "spark.storage.decommission.shuffleBlocks.enabled": "true",
    "spark.storage.decommission.rddBlocks.enabled": "true",
}
# Spark's YARN allocator forwards a node's decommissioning to the driver only without the external shuffle
# service (SPARK-39018); dynamic allocation then needs shuffle tracking to know which executors hold shuffle
# data.
WITHOUT_SHUFFLE_SERVICE: Final = {
    "spark.shuffle.service.enabled": "false",
    "spark.dynamicAllocation.shuffleTracking.enabled": "true",
}
# Structured Streaming queries register their metrics source only with this on (SQLConf, off by default).
SPARK_STREAMING_METRICS: Final = {"spark.sql.streaming.metricsEnabled": "true"}
# The first release of each behaviour (EMR release guide, Spark release history: emr-6.12.0 ships 3.4.0).
NODE_LABELS_OFF_BY_DEFAULT_FROM: Final = (6, 0, 0)
NODE_LABELS_ON_BY_DEFAULT_FROM: Final = (5, 19, 0)
SPARK_YARN_DECOMMISSION_FROM: Final = (6, 12, 0)
_RELEASE = re.compile(r"^emr-(\d+)\.(\d+)\.(\d+)$")


def parse_release(label: str) -> tuple[int, int, int]:
    """`emr-6.15.0` -> (6, 15, 0). ValueError for anything else."""
    match = _RELEASE.match(label.strip())
    if match is None:
        raise ValueError(f"{label!r} is not an EMR release label like emr-7.2.0")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def safe_scale_in_configurations(
    release_label: str | None = None, *, keep_shuffle_service: bool = False, streaming_metrics: bool = True
) -> list[dict[str, Any]]:
    """The EMR configurations for `release_label` (None: a current release, 6.12.0 or later).

    No yarn-site for a release that needs none: before 5.19.0 (no node labels; EMR then kept application
    masters on CORE nodes with its own patch), 5.19.0-5.36.x (the default; Spark 2). The spark-defaults
    classification holds the decommission settings from 6.12.0 and, unless `streaming_metrics` is False, the
    streaming metrics switch for every release; one classification, so it never appears twice."""
    release = parse_release(release_label) if release_label is not None else SPARK_YARN_DECOMMISSION_FROM
    out: list[dict[str, Any]] = []
    if release >= NODE_LABELS_OFF_BY_DEFAULT_FROM:
        out.append({"Classification": "yarn-site", "Properties": dict(YARN_NODE_LABELS)})
    spark: dict[str, str] = {}
    if release >= SPARK_YARN_DECOMMISSION_FROM:
        spark.update(SPARK_DECOMMISSION)
        if not keep_shuffle_service:
            spark.update(WITHOUT_SHUFFLE_SERVICE)
    if streaming_metrics:
        spark.update(SPARK_STREAMING_METRICS)
    if spark:
        out.append({"Classification": "spark-defaults", "Properties": spark})
    return out


def release_notes(release_label: str | None = None) -> list[str]:
    """One line per thing the configurations for `release_label` do or cannot do (for the CLI)."""
    release = parse_release(release_label) if release_label is not None else SPARK_YARN_DECOMMISSION_FROM
    notes = []
    if release < NODE_LABELS_ON_BY_DEFAULT_FROM:
        notes.append("before emr-5.19.0 EMR keeps application masters on CORE nodes itself (no node labels)")
    elif release < NODE_LABELS_OFF_BY_DEFAULT_FROM:
        notes.append("emr-5.19.0 to 5.x label CORE nodes and keep application masters there by default")
    else:
        notes.append("yarn-site: application masters (Spark drivers in cluster mode) on CORE nodes only")
    if release < SPARK_YARN_DECOMMISSION_FROM:
        notes.append(
            "no Spark decommission settings: Spark before 3.4.0 (EMR before 6.12.0) ignores a YARN node's "
            "DECOMMISSIONING state"
        )
    else:
        notes.append("spark-defaults: executors on a decommissioning node migrate shuffle and RDD blocks")
    notes.append(
        "spark-defaults: Structured Streaming queries report input rate, processing rate and latency "
        "(spark.sql.streaming.metricsEnabled; Spark 2.2 and later)"
    )
    return notes
