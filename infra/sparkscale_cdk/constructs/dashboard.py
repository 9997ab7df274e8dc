"""One CloudWatch dashboard for every managed cluster: what the scaler asked for and got, the signals it
reads, and the state of the cluster's alarms, for the cluster chosen in its `cluster` variable.

The variable is a pattern variable: CloudWatch replaces the shown cluster id (`cluster_id`, the first listed
cluster or a placeholder) everywhere in the dashboard's source (metric dimensions, the scaler's SEARCH
expressions, alarm names), with the ids offered from a search of EMR's IsIdle metric (every cluster that
published one in the dashboard's time range: listed and tagged clusters alike, no redeploy)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct
from sparkscale.alarms import HEAP_PCT_EXPRESSION, AlarmSpec

from sparkscale_cdk import names

WIDTH = 12  # two widgets per row (the grid is 24 wide)
HEIGHT = 6


def scaler_search(metric_name: str, cluster_id: str, statistic: str) -> str:
    """Every series of one scaler EMF metric for this cluster, whatever other dimensions (instance group …)
    the handlers add: a schema-less SEARCH on the namespace, the metric name and the ClusterId value."""
    return (
        f'SEARCH(\'Namespace="{names.SCALER_NAMESPACE}" MetricName="{metric_name}" '
        f"{names.DIM_CLUSTER_ID}=\"{cluster_id}\"', '{statistic}', 60)"
    )


class ClusterDashboard(Construct):
    dashboard: cloudwatch.Dashboard
    dashboard_name: str

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_id: str,
        alarm_prefix: str,
        specs: Sequence[AlarmSpec],
        alarms: Sequence[cloudwatch.IAlarm],
        include_heap: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard_name = f"{alarm_prefix}-clusters"
        emr_dims = {names.DIM_JOB_FLOW_ID: cluster_id}
        by_kind = {s.kind: s for s in specs}

        def emr(metric: str, statistic: str = "Average") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=names.EMR_NAMESPACE,
                metric_name=metric,
                dimensions_map=emr_dims,
                statistic=statistic,
                period=Duration.seconds(names.EMR_PERIOD_S),
            )

        def line(kind: str) -> list[cloudwatch.HorizontalAnnotation]:
            spec = by_kind.get(kind)
            if spec is None:
                return []
            return [cloudwatch.HorizontalAnnotation(value=spec.threshold, label=f"alarm: {spec.name}")]

        widgets: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title="Task nodes: requested (desired) and running, per group",
                left=[
                    cloudwatch.SearchExpression(
                        expression=scaler_search(names.M_DESIRED_TASK_NODES, cluster_id, "Maximum"),
                        label="requested",
                    ),
                    cloudwatch.SearchExpression(
                        expression=scaler_search(names.M_RUNNING_TASK_NODES, cluster_id, "Maximum"),
                        label="running",
                    ),
                ],
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Scaling actions",
                left=[
                    cloudwatch.SearchExpression(
                        expression=scaler_search(names.M_SCALING_ACTIONS, cluster_id, "Sum"), label="actions"
                    )
                ],
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="YARN memory available (%)",
                left=[emr(names.EMR_YARN_MEMORY_AVAILABLE_PCT)],
                left_annotations=line(names.ALARM_KIND_YARN_MEMORY),
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Pending containers",
                left=[emr(names.EMR_CONTAINER_PENDING)],
                right=[emr(names.EMR_CONTAINER_PENDING_RATIO)],
                right_annotations=line(names.ALARM_KIND_CONTAINER_PENDING),
                width=WIDTH,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="TotalLoad (concurrent HDFS transfers)",
                left=[emr(names.EMR_TOTAL_LOAD)],
                left_annotations=line(names.ALARM_KIND_TOTAL_LOAD),
                width=WIDTH,
                height=HEIGHT,
            ),
        ]
        if include_heap:
            heap_pct = cloudwatch.MathExpression(
                expression=HEAP_PCT_EXPRESSION,
                using_metrics={
                    "heap_used": _heap(names.HEAP_EXECUTOR_USED_BYTES, cluster_id),
                    "heap_max": _heap(names.HEAP_EXECUTOR_MAX_BYTES, cluster_id),
                },
                label="executor heap used %",
                period=Duration.seconds(names.HEAP_PERIOD_S),
            )
            widgets.append(
                cloudwatch.GraphWidget(
                    title="Spark executor heap used (%), cluster-wide",
                    left=[heap_pct],
                    left_annotations=line(names.ALARM_KIND_HEAP_PCT) + line(names.ALARM_KIND_HEAP_CRITICAL),
                    left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                    width=WIDTH,
                    height=HEIGHT,
                )
            )
        if any(spec.namespace == names.YARN_NAMESPACE for spec in specs):
            widgets += _yarn_widgets(cluster_id, include_heap=include_heap)
        widgets.append(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=list(alarms),
                width=24 if len(widgets) % 2 == 0 else WIDTH,
                height=HEIGHT,
            )
        )
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=self.dashboard_name,
            default_interval=Duration.hours(6),
            variables=[cluster_variable(cluster_id)],
            widgets=[widgets[i : i + 2] for i in range(0, len(widgets), 2)],
        )

    @property
    def url(self) -> str:
        return (
            f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards:name={self.dashboard_name}"
        )


def cluster_variable(shown: str) -> cloudwatch.DashboardVariable:
    """The cluster id to show: replaces `shown` in the dashboard's source; the choices come from a search."""
    return cloudwatch.DashboardVariable(
        id="cluster",
        label="EMR cluster",
        type=cloudwatch.VariableType.PATTERN,
        input_type=cloudwatch.VariableInputType.SELECT,
        value=shown,
        values=cloudwatch.Values.from_search(
            f'{{{names.EMR_NAMESPACE},{names.DIM_JOB_FLOW_ID}}} MetricName="{names.EMR_IS_IDLE}"',
            names.DIM_JOB_FLOW_ID,
        ),
        default_value=cloudwatch.DefaultValue.FIRST,
        visible=True,
    )


def _heap(metric: str, cluster_id: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=names.HEAP_NAMESPACE,
        metric_name=metric,
        dimensions_map={names.DIM_JOB_FLOW_ID: cluster_id},
        statistic="Sum",
        period=Duration.seconds(names.HEAP_PERIOD_S),
    )


def _yarn(metric: str, cluster_id: str, statistic: str = "Maximum") -> cloudwatch.Metric:
    """A YARN collector metric (the ResourceManager polled on the master node), read as the policy does."""
    return cloudwatch.Metric(
        namespace=names.YARN_NAMESPACE,
        metric_name=metric,
        dimensions_map={names.DIM_JOB_FLOW_ID: cluster_id},
        statistic=statistic,
        period=Duration.seconds(names.YARN_PERIOD_S),
    )


def _yarn_widgets(cluster_id: str, *, include_heap: bool) -> list[cloudwatch.IWidget]:
    """The YARN collector's minute-old view (what the policy prefers to EMR's), and Spark's executor demand
    beside its containers when the heap agent runs (two widgets: the rows stay pairs)."""
    memory = cloudwatch.GraphWidget(
        title="YARN memory, MB (ResourceManager, 60 s)",
        left=[
            _yarn(names.YARN_ALLOCATED_MEMORY_MB, cluster_id, "Average"),  # as the policy reads them
            _yarn(names.YARN_PENDING_MEMORY_MB, cluster_id, "Average"),
            _yarn(names.YARN_AVAILABLE_MEMORY_MB, cluster_id, "Minimum"),
            _yarn(names.YARN_TOTAL_MEMORY_MB, cluster_id),
        ],
        width=WIDTH,
        height=HEIGHT,
    )
    right: list[cloudwatch.IMetric] = []
    if include_heap:
        right = [_heap(m, cluster_id) for m in (names.SPARK_EXECUTORS_NEEDED, names.SPARK_EXECUTORS_TARGET)]
    waiting = cloudwatch.GraphWidget(
        title="YARN containers and applications (ResourceManager)"
        + ("; Spark executors needed / target" if include_heap else ""),
        left=[
            _yarn(names.YARN_CONTAINERS_PENDING, cluster_id),
            _yarn(names.YARN_APPS_PENDING, cluster_id),
            _yarn(names.YARN_APPS_RUNNING, cluster_id),
        ],
        right=right,
        width=WIDTH,
        height=HEIGHT,
    )
    return [memory, waiting]
