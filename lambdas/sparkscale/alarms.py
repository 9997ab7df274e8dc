"""The CloudWatch alarms of one managed cluster, as plain values.

One pure function, `alarm_specs(config, cluster_id)`, is the single definition of every alarm: the CDK stack
turns each `AlarmSpec` into an `AWS::CloudWatch::Alarm`, the replay and the demo evaluate the very same specs
against simulated metrics (`AlarmSpec.state_for`). No CDK, no boto3, no clock here.

An alarm is a wake-up call, not the decision: every ALARM and OK transition goes to the alarm topic and the
scaler re-reads the metrics and decides. Thresholds come from the same `Config` the policy reads, so the alarm
fires where the policy's dead band ends:

- YARN memory: the policy targets `yarn_memory_used_target_pct` of YARN memory allocated and tolerates
  ±`deadband_pct` % of it, so "too little memory available" is available < 100 − target × (1 + deadband/100).
  Defaults: 100 − 85 × 1.08 = 8.2 %.
- Spark heap: cluster-wide used / max (metric math over the agent's sums) above
  `heap_used_target_pct` × (1 + deadband/100). Defaults: 70 × 1.08 = 75.6 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from sparkscale import names
from sparkscale.config import Config

Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
TreatMissingData = Literal["breaching", "notBreaching", "ignore", "missing"]
Statistic = Literal["Average", "Sum", "Minimum", "Maximum", "SampleCount"]
AlarmState = Literal["ALARM", "OK", "INSUFFICIENT_DATA"]

# Evaluation windows (periods). EMR metrics: one datapoint per 300 s, so one period is five minutes already.
EMR_EVALUATION_PERIODS: Final = 1
# Heap: 60 s periods; two of the last three minutes above the threshold (one noisy GC sample is not enough
# to page operators: heap-critical and the absolute bytes alarm).
HEAP_EVALUATION_PERIODS: Final = 3
HEAP_DATAPOINTS_TO_ALARM: Final = 2
# The heap-percent alarm only wakes the scaler, which re-reads the heap and applies its own deadband and
# cooldowns: one minute above the threshold is enough (2 of 3 added a minute to every reaction from zero).
HEAP_WAKE_EVALUATION_PERIODS: Final = 1
HEAP_WAKE_DATAPOINTS_TO_ALARM: Final = 1


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One metric inside a metric-math alarm; namespace, dimensions and period are the spec's."""

    id: str
    metric_name: str
    statistic: Statistic


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One CloudWatch alarm. Either a single metric (`metric_name` + `statistic`) or metric math
    (`expression` over `metrics`); `comparison` and `treat_missing_data` use CloudWatch's own names."""

    name: str
    kind: str  # names.ALARM_KIND_*
    cluster_id: str
    namespace: str
    metric_name: str | None
    statistic: Statistic | None
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: Comparison
    treat_missing_data: TreatMissingData
    to_operators: bool  # ALARM/OK also go to the operator topic ("we can't help" or "something is broken")
    description: str
    dimensions: tuple[tuple[str, str], ...]  # (name, value) pairs, e.g. (("JobFlowId", "j-…"),)
    metrics: tuple[MetricQuery, ...] = ()  # metric math only
    expression: str | None = None  # metric math only, e.g. "100 * heap_used / heap_max"
    expression_id: str = "e1"

    @property
    def is_math(self) -> bool:
        return self.expression is not None

    def metric_names(self) -> tuple[str, ...]:
        """Every metric this alarm reads (one, or the inputs of the expression)."""
        if self.metric_name is not None:
            return (self.metric_name,)
        return tuple(m.metric_name for m in self.metrics)

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the alarming side of the threshold."""
        if self.comparison == "GreaterThanThreshold":
            return value > self.threshold
        if self.comparison == "GreaterThanOrEqualToThreshold":
            return value >= self.threshold
        if self.comparison == "LessThanThreshold":
            return value < self.threshold
        return value <= self.threshold

    def state_for(self, datapoints: Sequence[float | None]) -> AlarmState:
        """CloudWatch's "M out of N" evaluation over the most recent `evaluation_periods` datapoints (oldest
        first; None = no data in that period), with `treat_missing_data` applied. A simplified model for the
        replay and the demo: CloudWatch's look-back for partially missing windows is not reproduced."""
        recent: list[float | None] = list(datapoints[-self.evaluation_periods :])
        padding: list[float | None] = [None] * (self.evaluation_periods - len(recent))
        window = padding + recent
        if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in window):
            if self.treat_missing_data == "breaching":
                return "ALARM"
            if self.treat_missing_data == "notBreaching":
                return "OK"
            return "INSUFFICIENT_DATA"
        breaching = 0
        for v in window:
            if v is None or math.isnan(v):
                breaching += self.treat_missing_data == "breaching"
            else:
                breaching += self.breaches(v)
        return "ALARM" if breaching >= self.datapoints_to_alarm else "OK"


def yarn_memory_available_threshold_pct(config: Config) -> float:
    """Available % below which YARN memory is short: 100 − target used % × (1 + deadband %/100), >= 0."""
    return max(0.0, 100.0 - config.yarn_memory_used_target_pct * (1.0 + config.deadband_pct / 100.0))


def heap_used_threshold_pct(config: Config) -> float:
    """Cluster-wide heap used % above which executors are short of memory: target × (1 + deadband %/100)."""
    return min(100.0, config.heap_used_target_pct * (1.0 + config.deadband_pct / 100.0))


def idle_evaluation_periods(config: Config) -> int:
    """EMR periods the cluster must be idle for before the idle alarm fires (at least one)."""
    return max(1, math.ceil(config.idle_after_s / names.EMR_PERIOD_S))


def heap_missing_evaluation_periods(config: Config) -> int:
    """Heap periods without any datapoint before operators hear that the agent went silent."""
    return max(1, math.ceil(config.heap_metric_max_age_s / names.HEAP_PERIOD_S))


HEAP_PCT_EXPRESSION: Final = "100 * heap_used / heap_max"


def _heap_pct_queries() -> tuple[MetricQuery, ...]:
    # Every node's agent publishes used and max together, so the ratio of the per-period sums is the
    # cluster-wide used/max however many datapoints fall into one period.
    return (
        MetricQuery("heap_used", names.HEAP_EXECUTOR_USED_BYTES, "Sum"),
        MetricQuery("heap_max", names.HEAP_EXECUTOR_MAX_BYTES, "Sum"),
    )


def alarm_specs(config: Config, cluster_id: str, *, include_heap: bool = True) -> list[AlarmSpec]:
    """Every alarm of one managed cluster, in a stable order. `include_heap=False` leaves out the alarms on
    the heap agent's metrics (for clusters without the bootstrap action)."""
    emr_dims = ((names.DIM_JOB_FLOW_ID, cluster_id),)

    def name(kind: str) -> str:
        return names.alarm_name(config.alarm_prefix, cluster_id, kind)

    idle_s = idle_evaluation_periods(config) * names.EMR_PERIOD_S
    specs = [
        AlarmSpec(
            name=name(names.ALARM_KIND_TOTAL_LOAD),
            kind=names.ALARM_KIND_TOTAL_LOAD,
            cluster_id=cluster_id,
            namespace=names.EMR_NAMESPACE,
            metric_name=names.EMR_TOTAL_LOAD,
            statistic="Average",
            period_s=names.EMR_PERIOD_S,
            evaluation_periods=EMR_EVALUATION_PERIODS,
            datapoints_to_alarm=EMR_EVALUATION_PERIODS,
            threshold=config.total_load_alarm_threshold,
            comparison="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            to_operators=False,
            description=(
                f"sparkscale {cluster_id}: EMR TotalLoad (concurrent HDFS transfers) above "
                f"{config.total_load_alarm_threshold:g}; wakes the scaler."
            ),
            dimensions=emr_dims,
        ),
        AlarmSpec(
            name=name(names.ALARM_KIND_YARN_MEMORY),
            kind=names.ALARM_KIND_YARN_MEMORY,
            cluster_id=cluster_id,
            namespace=names.EMR_NAMESPACE,
            metric_name=names.EMR_YARN_MEMORY_AVAILABLE_PCT,
            statistic="Average",
            period_s=names.EMR_PERIOD_S,
            evaluation_periods=EMR_EVALUATION_PERIODS,
            datapoints_to_alarm=EMR_EVALUATION_PERIODS,
            threshold=yarn_memory_available_threshold_pct(config),
            comparison="LessThanThreshold",
            treat_missing_data="notBreaching",
            to_operators=False,
            description=(
                f"sparkscale {cluster_id}: YARN memory available below "
                f"{yarn_memory_available_threshold_pct(config):g} % (target "
                f"{config.yarn_memory_used_target_pct:g} % used ± {config.deadband_pct:g} %); "
                "wakes the scaler."
            ),
            dimensions=emr_dims,
        ),
        AlarmSpec(
            name=name(names.ALARM_KIND_CONTAINER_PENDING),
            kind=names.ALARM_KIND_CONTAINER_PENDING,
            cluster_id=cluster_id,
            namespace=names.EMR_NAMESPACE,
            metric_name=names.EMR_CONTAINER_PENDING_RATIO,
            statistic="Average",
            period_s=names.EMR_PERIOD_S,
            evaluation_periods=EMR_EVALUATION_PERIODS,
            datapoints_to_alarm=EMR_EVALUATION_PERIODS,
            threshold=config.container_pending_ratio_alarm_threshold,
            comparison="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            to_operators=False,
            description=(
                f"sparkscale {cluster_id}: YARN ContainerPendingRatio above "
                f"{config.container_pending_ratio_alarm_threshold:g}; wakes the scaler."
            ),
            dimensions=emr_dims,
        ),
        AlarmSpec(
            name=name(names.ALARM_KIND_IDLE),
            kind=names.ALARM_KIND_IDLE,
            cluster_id=cluster_id,
            namespace=names.EMR_NAMESPACE,
            metric_name=names.EMR_IS_IDLE,
            statistic="Minimum",
            period_s=names.EMR_PERIOD_S,
            evaluation_periods=idle_evaluation_periods(config),
            datapoints_to_alarm=idle_evaluation_periods(config),
            threshold=1.0,
            comparison="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            to_operators=False,
            description=(
                f"sparkscale {cluster_id}: cluster idle for {idle_s} s; wakes the scaler to scale in."
            ),
            dimensions=emr_dims,
        ),
    ]
    if not include_heap:
        return specs

    heap_threshold = heap_used_threshold_pct(config)
    specs.append(
        AlarmSpec(
            name=name(names.ALARM_KIND_HEAP_PCT),
            kind=names.ALARM_KIND_HEAP_PCT,
            cluster_id=cluster_id,
            namespace=names.HEAP_NAMESPACE,
            metric_name=None,
            statistic=None,
            period_s=names.HEAP_PERIOD_S,
            evaluation_periods=HEAP_WAKE_EVALUATION_PERIODS,
            datapoints_to_alarm=HEAP_WAKE_DATAPOINTS_TO_ALARM,
            threshold=heap_threshold,
            comparison="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            to_operators=False,
            description=(
                f"sparkscale {cluster_id}: Spark executor heap used above {heap_threshold:g} % cluster-wide "
                f"(target {config.heap_used_target_pct:g} % ± {config.deadband_pct:g} %); wakes the scaler."
            ),
            dimensions=emr_dims,
            metrics=_heap_pct_queries(),
            expression=HEAP_PCT_EXPRESSION,
        )
    )
    if config.heap_used_alarm_bytes is not None:
        specs.append(
            AlarmSpec(
                name=name(names.ALARM_KIND_HEAP_BYTES),
                kind=names.ALARM_KIND_HEAP_BYTES,
                cluster_id=cluster_id,
                namespace=names.HEAP_NAMESPACE,
                metric_name=names.HEAP_EXECUTOR_USED_BYTES,
                statistic="Sum",
                period_s=names.HEAP_PERIOD_S,
                evaluation_periods=HEAP_EVALUATION_PERIODS,
                datapoints_to_alarm=HEAP_DATAPOINTS_TO_ALARM,
                threshold=float(config.heap_used_alarm_bytes),
                comparison="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                to_operators=False,
                description=(
                    f"sparkscale {cluster_id}: Spark executor heap used above "
                    f"{config.heap_used_alarm_bytes} bytes ({config.heap_used_alarm_bytes / 2**30:g} GiB) "
                    "cluster-wide; wakes the scaler."
                ),
                dimensions=emr_dims,
            )
        )
    specs.append(
        AlarmSpec(
            name=name(names.ALARM_KIND_HEAP_CRITICAL),
            kind=names.ALARM_KIND_HEAP_CRITICAL,
            cluster_id=cluster_id,
            namespace=names.HEAP_NAMESPACE,
            metric_name=None,
            statistic=None,
            period_s=names.HEAP_PERIOD_S,
            evaluation_periods=HEAP_EVALUATION_PERIODS,
            datapoints_to_alarm=HEAP_DATAPOINTS_TO_ALARM,
            threshold=config.heap_critical_pct,
            comparison="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            to_operators=True,
            description=(
                f"sparkscale {cluster_id}: Spark executor heap used above {config.heap_critical_pct:g} % "
                "cluster-wide: executors risk OutOfMemoryError; if the task groups are at their maximum the "
                "scaler cannot help (raise max_task_nodes or the budget)."
            ),
            dimensions=emr_dims,
            metrics=_heap_pct_queries(),
            expression=HEAP_PCT_EXPRESSION,
        )
    )
    missing_periods = heap_missing_evaluation_periods(config)
    specs.append(
        AlarmSpec(
            name=name(names.ALARM_KIND_HEAP_MISSING),
            kind=names.ALARM_KIND_HEAP_MISSING,
            cluster_id=cluster_id,
            namespace=names.HEAP_NAMESPACE,
            # The agent publishes JvmCount every period, 0 when no executor runs on the node: no datapoint at
            # all means the agent itself is silent, not that Spark is idle.
            metric_name=names.HEAP_JVM_COUNT,
            statistic="SampleCount",
            period_s=names.HEAP_PERIOD_S,
            evaluation_periods=missing_periods,
            datapoints_to_alarm=missing_periods,
            threshold=1.0,
            comparison="LessThanThreshold",
            treat_missing_data="breaching",
            to_operators=True,
            description=(
                f"sparkscale {cluster_id}: no Spark heap datapoint for "
                f"{missing_periods * names.HEAP_PERIOD_S} s: the heap agent (bootstrap action) stopped "
                "publishing; the scaler falls back to YARN metrics."
            ),
            dimensions=emr_dims,
        )
    )
    return specs
