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
- YARN pending memory (the agent's YARN collector on the master node, 60 s): any memory asked for and not
  allocated, YarnPendingMemoryMB (Maximum) > 0 in one minute, wakes the scaler a minute after the
  ResourceManager saw it, where EMR's ContainerPendingRatio takes five to seven.
- YARN collector silent: no YarnTotalMemoryMB datapoint for ceil(yarn_metric_max_age_s / 60) minutes (missing
  data breaching) tells operators; the scaler falls back to EMR's YARN metrics meanwhile by itself.
- Kinesis iterator age rising (one alarm per stream of `streams`): metric math on the stream's
  GetRecords.IteratorAgeMilliseconds (Maximum, 60 s), IF(age > caught-up age, RATE(age), 0) > 0 for
  streaming_iterator_age_rising_minutes minutes in a row: the age keeps rising beyond what counts as caught
  up, the policy's own "behind" test. It names no JobFlowId (the metric is the stream's): the cluster is in
  its name, `<prefix>-<cluster id>-kinesis-age-rising-<stream>` (events/alarm.py reads it from there).
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
class AlarmMetric:
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
    to_operators: (
        bool  # ALARM also goes to the operator alarm topic ("we can't help" or "something is broken")
    )
    description: str
    dimensions: tuple[tuple[str, str], ...]  # (name, value) pairs, e.g. (("JobFlowId", "j-…"),)
    metrics: tuple[AlarmMetric, ...] = ()  # metric math only
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
        # One pass, no intermediate lists: the replay evaluates an alarm every simulated minute.
        recent = datapoints[-self.evaluation_periods :]
        missing = max(0, self.evaluation_periods - len(recent))  # periods before the first datapoint
        breaching = 0
        for v in recent:
            if v is None or math.isnan(v):
                missing += 1
            elif self.breaches(v):
                breaching += 1
        if missing == max(self.evaluation_periods, len(recent)):
            if self.treat_missing_data == "breaching":
                return "ALARM"
            if self.treat_missing_data == "notBreaching":
                return "OK"
            return "INSUFFICIENT_DATA"
        if self.treat_missing_data == "breaching":
            breaching += missing
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


def yarn_missing_evaluation_periods(config: Config) -> int:
    """YARN collector periods without any datapoint before operators hear that it went silent: as long as the
    policy keeps using its last datapoint (yarn_metric_max_age_s)."""
    return max(1, math.ceil(config.yarn_metric_max_age_s / names.YARN_PERIOD_S))


HEAP_PCT_EXPRESSION: Final = "100 * heap_used / heap_max"
# Each namespace's publication period: the EMR gauges every five minutes, the heap agent and its YARN
# collector every minute.
_PERIOD_S: Final = {
    names.EMR_NAMESPACE: names.EMR_PERIOD_S,
    names.HEAP_NAMESPACE: names.HEAP_PERIOD_S,
    names.YARN_NAMESPACE: names.YARN_PERIOD_S,
}


def _heap_pct_queries() -> tuple[AlarmMetric, ...]:
    # Every node's agent publishes used and max together, so the ratio of the per-period sums is the
    # cluster-wide used/max however many datapoints fall into one period.
    return (
        AlarmMetric("heap_used", names.HEAP_EXECUTOR_USED_BYTES, "Sum"),
        AlarmMetric("heap_max", names.HEAP_EXECUTOR_MAX_BYTES, "Sum"),
    )


def alarm_specs(
    config: Config, cluster_id: str, *, include_heap: bool = True, include_yarn: bool | None = None
) -> list[AlarmSpec]:
    """Every alarm of one managed cluster, in a stable order. `include_heap=False` leaves out the alarms on
    the heap agent's metrics (for clusters without the bootstrap action); `include_yarn` those on its YARN
    collector's (default: as include_heap, since the bootstrap action turns the collector on, on the master
    node)."""
    yarn = include_heap if include_yarn is None else include_yarn

    def alarm(
        kind: str,
        namespace: str,
        metric: tuple[str, Statistic] | None,  # None: the cluster-wide heap used % (metric math)
        window: tuple[int, int],  # (evaluation periods, datapoints to alarm)
        threshold: float,
        *,
        description: str,
        comparison: Comparison = "GreaterThanThreshold",
        treat_missing_data: TreatMissingData = "notBreaching",
        to_operators: bool = False,
    ) -> AlarmSpec:
        return AlarmSpec(
            name=names.alarm_name(config.alarm_prefix, cluster_id, kind),
            kind=kind,
            cluster_id=cluster_id,
            namespace=namespace,
            metric_name=None if metric is None else metric[0],
            statistic=None if metric is None else metric[1],
            period_s=_PERIOD_S[namespace],
            evaluation_periods=window[0],
            datapoints_to_alarm=window[1],
            threshold=threshold,
            comparison=comparison,
            treat_missing_data=treat_missing_data,
            to_operators=to_operators,
            description=f"sparkscale {cluster_id}: {description}",
            dimensions=((names.DIM_JOB_FLOW_ID, cluster_id),),
            metrics=_heap_pct_queries() if metric is None else (),
            expression=HEAP_PCT_EXPRESSION if metric is None else None,
        )

    def emr(
        kind: str,
        metric: tuple[str, Statistic],
        threshold: float,
        comparison: Comparison,
        description: str,
        *,
        periods: int = EMR_EVALUATION_PERIODS,
    ) -> AlarmSpec:
        """A wake-up alarm on one EMR metric: every period of the window must breach."""
        return alarm(
            kind,
            names.EMR_NAMESPACE,
            metric,
            (periods, periods),
            threshold,
            comparison=comparison,
            description=description,
        )

    def heap(
        kind: str,
        metric: tuple[str, Statistic] | None,
        window: tuple[int, int],
        threshold: float,
        description: str,
        *,
        to_operators: bool = False,
    ) -> AlarmSpec:
        """An alarm on the heap agent's metrics, above a threshold."""
        return alarm(
            kind,
            names.HEAP_NAMESPACE,
            metric,
            window,
            threshold,
            description=description,
            to_operators=to_operators,
        )

    def yarn_collector() -> list[AlarmSpec]:
        """The alarms on the YARN collector's metrics: memory waits (wakes the scaler), the collector is
        silent (operators)."""
        missing_periods = yarn_missing_evaluation_periods(config)
        silent_s = missing_periods * names.YARN_PERIOD_S
        return [
            alarm(
                names.ALARM_KIND_YARN_PENDING,
                names.YARN_NAMESPACE,
                (names.YARN_PENDING_MEMORY_MB, "Maximum"),
                (1, 1),
                0.0,
                description="YARN memory pending (ResourceManager, polled on the master node) above 0 MB; "
                "wakes the scaler.",
            ),
            alarm(
                names.ALARM_KIND_YARN_MISSING,
                names.YARN_NAMESPACE,
                # The collector publishes YarnTotalMemoryMB every minute it reached the ResourceManager: no
                # datapoint at all means the collector (or the RM) is silent, not that YARN is idle.
                (names.YARN_TOTAL_MEMORY_MB, "SampleCount"),
                (missing_periods, missing_periods),
                1.0,
                description=f"no YARN ResourceManager datapoint for {silent_s} s: the "
                "agent's YARN collector on the master node stopped publishing (or cannot reach the "
                "ResourceManager); the scaler falls back to EMR's 5-minute YARN metrics.",
                comparison="LessThanThreshold",
                treat_missing_data="breaching",
                to_operators=True,
            ),
        ]

    yarn_threshold = yarn_memory_available_threshold_pct(config)
    idle_periods = idle_evaluation_periods(config)
    specs = [
        emr(
            names.ALARM_KIND_TOTAL_LOAD,
            (names.EMR_TOTAL_LOAD, "Average"),
            config.total_load_alarm_threshold,
            "GreaterThanThreshold",
            f"EMR TotalLoad (concurrent HDFS transfers) above {config.total_load_alarm_threshold:g}; "
            "wakes the scaler.",
        ),
        emr(
            names.ALARM_KIND_YARN_MEMORY,
            (names.EMR_YARN_MEMORY_AVAILABLE_PCT, "Average"),
            yarn_threshold,
            "LessThanThreshold",
            f"YARN memory available below {yarn_threshold:g} % (target "
            f"{config.yarn_memory_used_target_pct:g} % used ± {config.deadband_pct:g} %); wakes the scaler.",
        ),
        emr(
            names.ALARM_KIND_CONTAINER_PENDING,
            (names.EMR_CONTAINER_PENDING_RATIO, "Average"),
            config.container_pending_ratio_alarm_threshold,
            "GreaterThanThreshold",
            f"YARN ContainerPendingRatio above {config.container_pending_ratio_alarm_threshold:g}; "
            "wakes the scaler.",
        ),
        emr(
            names.ALARM_KIND_IDLE,
            (names.EMR_IS_IDLE, "Minimum"),
            1.0,
            "GreaterThanOrEqualToThreshold",
            f"cluster idle for {idle_periods * names.EMR_PERIOD_S} s; wakes the scaler to scale in.",
            periods=idle_periods,
        ),
    ]
    if not include_heap:
        return specs + (yarn_collector() if yarn else []) + kinesis_alarm_specs(config, cluster_id)

    heap_threshold = heap_used_threshold_pct(config)
    specs.append(
        heap(
            names.ALARM_KIND_HEAP_PCT,
            None,
            (HEAP_WAKE_EVALUATION_PERIODS, HEAP_WAKE_DATAPOINTS_TO_ALARM),
            heap_threshold,
            f"Spark executor heap used above {heap_threshold:g} % cluster-wide (target "
            f"{config.heap_used_target_pct:g} % ± {config.deadband_pct:g} %); wakes the scaler.",
        )
    )
    if config.heap_used_alarm_bytes is not None:
        specs.append(
            heap(
                names.ALARM_KIND_HEAP_BYTES,
                (names.HEAP_EXECUTOR_USED_BYTES, "Sum"),
                (HEAP_EVALUATION_PERIODS, HEAP_DATAPOINTS_TO_ALARM),
                float(config.heap_used_alarm_bytes),
                f"Spark executor heap used above {config.heap_used_alarm_bytes} bytes "
                f"({config.heap_used_alarm_bytes / 2**30:g} GiB) cluster-wide; wakes the scaler.",
            )
        )
    specs.append(
        heap(
            names.ALARM_KIND_HEAP_CRITICAL,
            None,
            (HEAP_EVALUATION_PERIODS, HEAP_DATAPOINTS_TO_ALARM),
            config.heap_critical_pct,
            f"Spark executor heap used above {config.heap_critical_pct:g} % cluster-wide: executors risk "
            "OutOfMemoryError; if the task groups are at their maximum the scaler cannot help (raise "
            "max_task_nodes or the budget).",
            to_operators=True,
        )
    )
    missing_periods = heap_missing_evaluation_periods(config)
    specs.append(
        alarm(
            names.ALARM_KIND_HEAP_MISSING,
            names.HEAP_NAMESPACE,
            # The agent publishes JvmCount every period, 0 when no executor runs on the node: no datapoint at
            # all means the agent itself is silent, not that Spark is idle.
            (names.HEAP_JVM_COUNT, "SampleCount"),
            (missing_periods, missing_periods),
            1.0,
            description=f"no Spark heap datapoint for {missing_periods * names.HEAP_PERIOD_S} s: the heap "
            "agent (bootstrap action) stopped publishing; the scaler falls back to YARN metrics.",
            comparison="LessThanThreshold",
            treat_missing_data="breaching",
            to_operators=True,
        )
    )
    return specs + (yarn_collector() if yarn else []) + kinesis_alarm_specs(config, cluster_id)


KINESIS_AGE_METRIC_ID: Final = "age"


def kinesis_age_expression(config: Config) -> str:
    """The rising-age expression: the age's rate of change (ms per second) while the age is above the
    caught-up age (streaming_caught_up_iterator_age_s), else 0."""
    caught_up_ms = config.streaming_caught_up_iterator_age_s * 1000.0
    return f"IF({KINESIS_AGE_METRIC_ID} > {caught_up_ms:g}, RATE({KINESIS_AGE_METRIC_ID}), 0)"


def kinesis_alarm_specs(config: Config, cluster_id: str) -> list[AlarmSpec]:
    """One alarm per Kinesis stream the cluster consumes (config.streams, each once): its iterator age rose
    every minute for streaming_iterator_age_rising_minutes minutes while above the caught-up age; wakes the
    scaler, which reads the age's minutes itself and decides (policy/streaming.py)."""
    minutes = config.streaming_iterator_age_rising_minutes
    caught_up_s = config.streaming_caught_up_iterator_age_s
    return [
        AlarmSpec(
            name=names.alarm_name(
                config.alarm_prefix, cluster_id, f"{names.ALARM_KIND_KINESIS_AGE}-{stream}"
            ),
            kind=f"{names.ALARM_KIND_KINESIS_AGE}-{stream}",
            cluster_id=cluster_id,
            namespace=names.KINESIS_NAMESPACE,
            metric_name=None,
            statistic=None,
            period_s=names.KINESIS_PERIOD_S,
            evaluation_periods=minutes,
            datapoints_to_alarm=minutes,
            threshold=0.0,
            comparison="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            to_operators=False,
            description=f"sparkscale {cluster_id}: Kinesis stream {stream} iterator age above "
            f"{caught_up_s:g} s and rising for {minutes} minutes: the cluster is behind; wakes the scaler.",
            dimensions=((names.DIM_STREAM_NAME, stream),),
            metrics=(AlarmMetric(KINESIS_AGE_METRIC_ID, names.KINESIS_ITERATOR_AGE, "Maximum"),),
            expression=kinesis_age_expression(config),
        )
        for stream in dict.fromkeys(config.streams)
    ]


def kinesis_age_datapoints(ages_ms: Sequence[float | None], config: Config) -> list[float | None]:
    """The iterator-age alarm's expression, period by period, from a stream's per-minute iterator ages (oldest
    first; None: no datapoint), for the replay and the demo (`AlarmSpec.state_for` then evaluates it):
    IF(age > caught-up age, RATE(age), 0), RATE being the change from the previous minute per second. A
    minute without a datapoint, or without one before it, has no value (None)."""
    caught_up_ms = config.streaming_caught_up_iterator_age_s * 1000.0
    out: list[float | None] = []
    previous: float | None = None
    for age in ages_ms:
        if age is None or previous is None:
            out.append(None)
        else:
            out.append((age - previous) / names.KINESIS_PERIOD_S if age > caught_up_ms else 0.0)
        previous = age
    return out
