"""`SparkAutoscaler`: the whole autoscaler as one reusable construct (importable by any CDK app).

It composes one construct per concern and does the grants between them:

    Notifications (key, alarm topic, operator topic)     StateTable (DynamoDB)
    ScalerFunctions (alarm + reconcile Lambdas, subscription, schedule)
    SpotEvents (EventBridge rules + events Lambda)        ClusterAlarms + ClusterDashboard per cluster
    EmrEvents (EMR capacity/termination rule + Lambda)
    HeapBootstrapAssets (bootstrap action on S3)          DLQ alarms

Usage from another app::

    from infra.constructs import SparkAutoscaler
    SparkAutoscaler(stack, "Autoscaler", config=Config.from_mapping({...}), code_path=Path("lambdas"),
                    bootstrap_dir=Path("bootstrap"))
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment as Ack
from aws_cdk import ArnFormat, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config

from infra import names
from infra.constructs.cluster_alarms import ClusterAlarms
from infra.constructs.dashboard import ClusterDashboard
from infra.constructs.emr_events import EmrEvents
from infra.constructs.function import FunctionOptions, ScalerFunction, lambda_code, powertools_layer
from infra.constructs.heap_bootstrap import HeapBootstrapAssets
from infra.constructs.notifications import Notifications
from infra.constructs.scaler import ScalerFunctions
from infra.constructs.spot_events import SpotEvents
from infra.constructs.state import StateTable
from infra.settings import Features, StackSettings

# EMR actions the scaler needs, all on the managed clusters' ARNs only.
EMR_SCALER_ACTIONS = (
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:ListInstanceGroups",
    "elasticmapreduce:ListInstances",
    "elasticmapreduce:ModifyInstanceGroups",
)
# The events Lambda: find the interrupted instance's group, add capacity elsewhere.
EMR_EVENTS_ACTIONS = EMR_SCALER_ACTIONS
# The EMR-events Lambda records a capacity error, then runs the scaler's own evaluation (run_once).
EMR_CAPACITY_EVENTS_ACTIONS = EMR_SCALER_ACTIONS
# Actions without resource-level permissions ("*" is the only valid resource): acknowledged for cdk-nag below.
EC2_READ_ACTIONS = ("ec2:DescribeSpotPriceHistory", "ec2:DescribeInstances")
METRICS_READ_ACTIONS = ("cloudwatch:GetMetricData",)


class SparkAutoscaler(Construct):
    """Everything sparkscale deploys for `config.clusters`. Attributes expose the parts (topics, table,
    functions, alarms per cluster, dashboards per cluster, bootstrap assets) for outputs and extensions."""

    notifications: Notifications
    state: StateTable
    scaler: ScalerFunctions
    spot_events: SpotEvents | None
    emr_events: EmrEvents | None
    cluster_alarms: dict[str, ClusterAlarms]
    dashboards: dict[str, ClusterDashboard]
    heap_bootstrap: HeapBootstrapAssets | None
    functions: list[ScalerFunction]
    dead_letter_queues: dict[str, sqs.Queue]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        code_path: Path,
        bootstrap_dir: Path | None = None,
        features: Features | None = None,
        dry_run_override: str | None = None,
        emr_instance_role: iam.IRole | None = None,
    ) -> None:
        """`dry_run_override` becomes SPARKSCALE_DRY_RUN ("true" forces dry-run; may be a CfnParameter token).
        `emr_instance_role`, when given, may read the bootstrap assets and publish the heap metrics."""
        super().__init__(scope, construct_id)
        features = features or Features()
        settings = StackSettings(config=config, features=features)
        settings.validate()
        stack = Stack.of(self)

        self.notifications = Notifications(
            self, "Notifications", alarm_prefix=config.alarm_prefix, operator_emails=config.operator_emails
        )
        self.state = StateTable(self, "State", retain=features.retain_data)
        environment = {
            names.ENV_CONFIG_JSON: config.to_json(),
            names.ENV_TABLE_NAME: self.state.table.table_name,
            names.ENV_OPERATOR_TOPIC_ARN: self.notifications.operator_topic.topic_arn,
            names.ENV_ALARM_PREFIX: config.alarm_prefix,
            names.ENV_DRY_RUN: dry_run_override if dry_run_override is not None else "false",
            names.ENV_POWERTOOLS_SERVICE_NAME: names.SERVICE_NAME,
            names.ENV_POWERTOOLS_METRICS_NAMESPACE: names.SCALER_NAMESPACE,
        }
        options = FunctionOptions(
            code=lambda_code(code_path),
            layer=powertools_layer(self, "PowertoolsLayer", version=config.powertools_layer_version),
            environment=environment,
            timeout_s=settings.handler_timeout_s,
            reserved_concurrency=config.reserved_concurrency,
            key=self.notifications.key,
        )
        self.scaler = ScalerFunctions(
            self,
            "Scaler",
            options=options,
            alarm_topic=self.notifications.alarm_topic,
            reconcile_rate_minutes=settings.reconcile_rate_minutes,
        )
        self.spot_events = SpotEvents(self, "SpotEvents", options=options) if features.spot_events else None
        # EMR capacity events are the other half of the spot market feature (the spot fallback, at once).
        self.emr_events = (
            EmrEvents(self, "EmrEvents", options=options, cluster_ids=config.clusters)
            if features.spot_events
            else None
        )
        self.functions = [self.scaler.alarm, self.scaler.reconcile]
        if self.spot_events is not None:
            self.functions.append(self.spot_events.handler)
        if self.emr_events is not None:
            self.functions.append(self.emr_events.handler)

        cluster_arns = [
            stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name=c)
            for c in config.clusters
        ]
        for fn in (self.scaler.alarm, self.scaler.reconcile):
            self._grant_common(fn)
            self._grant_emr(fn, cluster_arns, EMR_SCALER_ACTIONS)
            self._grant_read_only(fn, config.alarm_prefix)
        self._grant_event_functions(cluster_arns)

        self.cluster_alarms = {}
        self.dashboards = {}
        for cluster_id in config.clusters:
            specs = alarm_specs(config, cluster_id, include_heap=features.heap_alarms)
            alarms = ClusterAlarms(
                self,
                f"Alarms-{cluster_id}",
                specs=specs,
                alarm_topic=self.notifications.alarm_topic,
                operator_topic=self.notifications.operator_topic,
            )
            self.cluster_alarms[cluster_id] = alarms
            if features.dashboards:
                self.dashboards[cluster_id] = ClusterDashboard(
                    self,
                    f"Dashboard-{cluster_id}",
                    cluster_id=cluster_id,
                    alarm_prefix=config.alarm_prefix,
                    specs=specs,
                    alarms=list(alarms.alarms.values()),
                    include_heap=features.heap_alarms,
                )

        self.dead_letter_queues = self._collect_dead_letter_queues()
        for queue in self.dead_letter_queues.values():
            Validations.of(queue).acknowledge(
                Ack(
                    id="AwsSolutions-SQS3",
                    reason="This queue is itself a dead-letter queue (of a Lambda, the SNS subscription or a "
                    "rule); a DLQ of a DLQ would only move the problem.",
                )
            )
        if features.dlq_alarms:
            self._dlq_alarms(config.alarm_prefix)

        self.heap_bootstrap = None
        if features.heap_bootstrap_assets and bootstrap_dir is not None:
            self.heap_bootstrap = HeapBootstrapAssets(
                self, "HeapBootstrap", bootstrap_dir=bootstrap_dir, instance_role=emr_instance_role
            )
            if emr_instance_role is not None:
                _ack_star(
                    emr_instance_role, "cloudwatch:PutMetricData has no resource type; scoped by namespace"
                )

    def _collect_dead_letter_queues(self) -> dict[str, sqs.Queue]:
        queues = {
            "alarm-fn": self.scaler.alarm.dead_letter_queue,
            "reconcile-fn": self.scaler.reconcile.dead_letter_queue,
            "alarm-subscription": self.scaler.subscription_dlq,
            "schedule": self.scaler.schedule_dlq,
        }
        if self.spot_events is not None:
            queues["events-fn"] = self.spot_events.handler.dead_letter_queue
            queues["spot-rules"] = self.spot_events.rule_dlq
        if self.emr_events is not None:
            queues["emr-events-fn"] = self.emr_events.handler.dead_letter_queue
            queues["emr-rule"] = self.emr_events.rule_dlq
        return queues

    # --- grants ---------------------------------------------------------------------------------------------
    def _grant_event_functions(self, cluster_arns: list[str]) -> None:
        if self.spot_events is not None:
            fn = self.spot_events.handler
            self._grant_common(fn)
            self._grant_emr(fn, cluster_arns, EMR_EVENTS_ACTIONS)
            fn.role.add_to_policy(
                iam.PolicyStatement(sid="Ec2ReadOnly", actions=list(EC2_READ_ACTIONS), resources=["*"])
            )
            _ack_star(
                fn.role, "ec2:DescribeSpotPriceHistory and ec2:DescribeInstances have no resource types"
            )
        if self.emr_events is not None:
            fn = self.emr_events.handler
            self._grant_common(fn)
            self._grant_emr(fn, cluster_arns, EMR_CAPACITY_EVENTS_ACTIONS)
            self._grant_metrics_and_prices(fn)  # run_once reads metrics and spot prices; no alarm reads

    def _grant_common(self, fn: ScalerFunction) -> None:
        """State table read/write (lease, state, audit, idempotency); publish to the operator topic only."""
        self.state.table.grant_read_write_data(fn.role)
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="NotifyOperators",
                actions=["sns:Publish"],
                resources=[self.notifications.operator_topic.topic_arn],
            )
        )

    @staticmethod
    def _grant_emr(fn: ScalerFunction, cluster_arns: list[str], actions: tuple[str, ...]) -> None:
        fn.role.add_to_policy(
            iam.PolicyStatement(sid="ManagedClustersOnly", actions=list(actions), resources=cluster_arns)
        )

    @staticmethod
    def _grant_metrics_and_prices(fn: ScalerFunction) -> None:
        """What run_once reads besides EMR: GetMetricData and the spot prices (no resource types exist)."""
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadMetricsAndPrices",
                actions=[*METRICS_READ_ACTIONS, "ec2:DescribeSpotPriceHistory"],
                resources=["*"],
            )
        )
        _ack_star(fn.role, "cloudwatch:GetMetricData and ec2:DescribeSpotPriceHistory have no resource types")

    @staticmethod
    def _grant_read_only(fn: ScalerFunction, alarm_prefix: str) -> None:
        stack = Stack.of(fn)
        SparkAutoscaler._grant_metrics_and_prices(fn)
        own_alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{alarm_prefix}-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeOwnAlarms", actions=["cloudwatch:DescribeAlarms"], resources=[own_alarms]
            )
        )
        Validations.of(fn.role).acknowledge(
            Ack(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:"
                f"alarm:{alarm_prefix}-*]",
                reason="DescribeAlarms on this stack's alarms only: every alarm name starts with the prefix.",
            )
        )

    def _dlq_alarms(self, alarm_prefix: str) -> None:
        """Operators hear when anything lands in a dead-letter queue (a scaler failed or was unreachable)."""
        for label, queue in self.dead_letter_queues.items():
            cloudwatch.CfnAlarm(
                queue,
                "NotEmpty",
                # Prefixed like every stack alarm: the operator topic accepts only the prefix's alarms.
                alarm_name=f"{alarm_prefix}-dlq-{label}",
                alarm_description=(
                    "sparkscale: a message is in a dead-letter queue; a scaler invocation failed for good. "
                    "Inspect the queue and the function's logs."
                ),
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible",
                dimensions=[cloudwatch.CfnAlarm.DimensionProperty(name="QueueName", value=queue.queue_name)],
                statistic="Maximum",
                period=300,
                evaluation_periods=1,
                threshold=0,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[self.notifications.operator_topic.topic_arn],
                ok_actions=[self.notifications.operator_topic.topic_arn],
            )


def _ack_star(scope: IConstruct, why: str) -> None:
    Validations.of(scope).acknowledge(
        Ack(id="AwsSolutions-IAM5[Resource::*]", reason=f"No narrower resource exists: {why}.")
    )
