"""`SparkAutoscaler`: the whole autoscaler as one reusable construct (importable by any CDK app).

It composes one construct per concern and does the grants between them:

    Notifications (key, alarm topic, operator topic)     StateTable (DynamoDB)
    ManagedClusters (the EMR clusters' ARNs; not created here)
    ScalerFunctions (alarm + reconcile Lambdas, subscription, schedule)
    EvaluationFanOut (evaluation queue + DLQ, fanout Lambda)
    SpotEvents (EventBridge rules + events Lambda)        ClusterAlarms + ClusterDashboard per cluster
    EmrEvents (EMR capacity/termination rule + Lambda)
    HeapBootstrapAssets (bootstrap action on S3)          DLQ alarms

Each part grants on what it owns (`StateTable.grant_state`, `Notifications.grant_publish_notices`,
`ManagedClusters.grant_scale`, ..., `SparkAutoscaler.grant_describe_alarms`); `_grant_functions` says who
gets what.

Usage from another app::

    from sparkscale_cdk.constructs import SparkAutoscaler
    SparkAutoscaler(stack, "Autoscaler", config=Config.from_mapping({...}), code_path=Path("lambdas"),
                    bootstrap_dir=Path("bootstrap"))
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Final

from aws_cdk import Acknowledgment as Ack
from aws_cdk import ArnFormat, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from sparkscale.agent.bundle import BOOTSTRAP_DIR
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config

from sparkscale_cdk import names
from sparkscale_cdk.constructs.cluster_alarms import ClusterAlarms
from sparkscale_cdk.constructs.clusters import ManagedClusters
from sparkscale_cdk.constructs.dashboard import ClusterDashboard
from sparkscale_cdk.constructs.digest import DailyDigest
from sparkscale_cdk.constructs.discovery import ClusterDiscovery
from sparkscale_cdk.constructs.emr_events import EmrEvents
from sparkscale_cdk.constructs.fanout import EvaluationFanOut
from sparkscale_cdk.constructs.function import FunctionOptions, ScalerFunction, lambda_code, powertools_layer
from sparkscale_cdk.constructs.grants import acknowledge, grant_on
from sparkscale_cdk.constructs.heap_bootstrap import HeapBootstrapAssets
from sparkscale_cdk.constructs.notifications import Notifications, stack_alarms_arn
from sparkscale_cdk.constructs.scaler import ScalerFunctions
from sparkscale_cdk.constructs.spot_events import SpotEvents
from sparkscale_cdk.constructs.state import StateTable
from sparkscale_cdk.lambda_asset import staged_lambda_asset
from sparkscale_cdk.settings import Features, StackSettings

WEEKLY_OFF: Final = "never"  # digest_weekly_day without a weekly section
DASHBOARD_PLACEHOLDER_CLUSTER: Final = "j-CHOOSEACLUSTER"  # shown when no cluster is listed
DESCRIBE_ALARMS_ACTIONS: Final = ("cloudwatch:DescribeAlarms",)
MANAGE_ALARMS_ACTIONS: Final = ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms")


class SparkAutoscaler(Construct):
    """Everything sparkscale deploys for `config.clusters`. Attributes expose the parts (topics, table,
    clusters, functions, alarms per cluster, dashboards per cluster, bootstrap assets) for outputs and
    extensions; each part that owns a resource grants on it (`grant_*`), and this construct grants each
    function what its handler needs."""

    notifications: Notifications
    state: StateTable
    clusters: ManagedClusters
    scaler: ScalerFunctions
    fanout: EvaluationFanOut
    spot_events: SpotEvents | None
    emr_events: EmrEvents | None
    discovery: ClusterDiscovery | None
    digest: DailyDigest | None
    cluster_alarms: dict[str, ClusterAlarms]
    dashboard: ClusterDashboard | None  # one for every cluster (a dashboard variable picks the cluster)
    heap_bootstrap: HeapBootstrapAssets | None
    node_report_policies: dict[str, iam.ManagedPolicy]  # cluster id -> its EMR instance role's policy
    functions: list[ScalerFunction]
    dead_letter_queues: dict[str, sqs.Queue]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        code_path: Path | None = None,
        bootstrap_dir: Path | None = BOOTSTRAP_DIR,
        features: Features | None = None,
        dry_run_override: str | None = None,
        emr_instance_role: iam.IRole | None = None,
    ) -> None:
        """`code_path`: a folder holding `handlers/` and `sparkscale/` (default: staged from the packages
        this construct imports, `sparkscale_cdk.lambda_asset`). `bootstrap_dir`: the agent's bootstrap files
        (default: the packaged ones; None: no bootstrap assets). `dry_run_override` becomes
        SPARKSCALE_DRY_RUN ("true" forces dry-run; may be a CfnParameter token). `emr_instance_role`, when
        given, may read the bootstrap assets and publish the heap metrics."""
        super().__init__(scope, construct_id)
        features = features or Features()
        settings = StackSettings(config=config, features=features)
        settings.validate()
        self._alarm_prefix = config.alarm_prefix
        self._settings = settings

        self.notifications = Notifications(
            self,
            "Notifications",
            alarm_prefix=config.alarm_prefix,
            operator_emails=config.operator_emails,
            email_notice_kinds=config.email_notice_kinds,
        )
        self.state = StateTable(self, "State", retain=features.retain_data)
        self.clusters = ManagedClusters(self, "Clusters", cluster_ids=config.clusters)
        with ExitStack() as staging:  # the functions bind (and CDK copies) their code inside this block
            code = code_path if code_path is not None else staging.enter_context(staged_lambda_asset())
            options = self._function_options(settings, code, dry_run_override)
            self._add_functions(settings, options)
        self._grant_functions()
        self._grant_digest()
        self._add_cluster_alarms_and_dashboards(config, features)
        self._add_dead_letter_alarms(features)
        self._add_heap_bootstrap(features, bootstrap_dir, emr_instance_role)
        self._add_node_report_policies(config, emr_instance_role)

    # --- the steps of __init__, in order --------------------------------------------------------------------
    def _function_options(
        self, settings: StackSettings, code_path: Path, dry_run_override: str | None
    ) -> FunctionOptions:
        """What every function shares: code, layer, environment, timeout, concurrency, key."""
        config = settings.config
        environment = {
            names.ENV_CONFIG_JSON: config.to_json(),
            names.ENV_TABLE_NAME: self.state.table.table_name,
            names.ENV_OPERATOR_TOPIC_ARN: self.notifications.operator_topic.topic_arn,
            names.ENV_ALARM_PREFIX: config.alarm_prefix,
            names.ENV_DRY_RUN: dry_run_override if dry_run_override is not None else "false",
            names.ENV_POWERTOOLS_SERVICE_NAME: names.SERVICE_NAME,
            names.ENV_POWERTOOLS_METRICS_NAMESPACE: names.SCALER_NAMESPACE,
        }
        return FunctionOptions(
            code=lambda_code(code_path),
            layer=powertools_layer(self, "PowertoolsLayer", version=config.powertools_layer_version),
            environment=environment,
            timeout_s=settings.handler_timeout_s,
            reserved_concurrency=config.reserved_concurrency,
            key=self.notifications.key,
        )

    def _add_functions(self, settings: StackSettings, options: FunctionOptions) -> None:
        """The scaler pair always; the spot- and EMR-events functions each behind its own feature flag."""
        features = settings.features
        self.scaler = ScalerFunctions(
            self,
            "Scaler",
            options=options,
            alarm_topic=self.notifications.alarm_topic,
            reconcile_rate_minutes=settings.reconcile_rate_minutes,
        )
        self.fanout = EvaluationFanOut(
            self,
            "FanOut",
            options=options,
            reconcile=self.scaler.reconcile,
            max_concurrency=settings.config.fanout_max_concurrency,
        )
        self.spot_events = SpotEvents(self, "SpotEvents", options=options) if features.spot_events else None
        by_tag = settings.discovers
        self.emr_events = (
            EmrEvents(
                self, "EmrEvents", options=options, cluster_ids=None if by_tag else self.clusters.cluster_ids
            )
            if features.emr_events
            else None
        )
        self.discovery = (
            ClusterDiscovery(
                self,
                "Discovery",
                options=options,
                alarm_topic=self.notifications.alarm_topic,
                operator_alarm_topic=self.notifications.operator_alarm_topic,
                include_heap=features.heap_alarms,
                sweep_rate_minutes=settings.reconcile_rate_minutes,
            )
            if by_tag
            else None
        )
        self.functions = [self.scaler.alarm, self.scaler.reconcile, self.fanout.handler]
        self.functions += [e.handler for e in (self.spot_events, self.emr_events, self.discovery) if e]
        # not in `functions`: it neither scales nor writes state (its grants: _grant_digest)
        self.digest = DailyDigest(self, "Digest", options=options) if features.digest else None

    def _grant_functions(self) -> None:
        """Every function: the state table's items by key and the operator notices (and so the key),
        scaling the managed clusters. Then what each handler reads besides: run_once (alarm, reconcile, EMR
        events) the demand history (Query), the metrics and spot prices, the alarm pair its own alarms'
        states, the reconcile schedule the clusters' size records (BatchGetItem); the spot events the
        instances and the spot prices."""
        config = self._settings.config
        for fn in self.functions:
            self.state.grant_state(fn.function)
            self.notifications.grant_publish_notices(fn.function)
            self.clusters.grant_scale(fn.function)
            if self.discovery is not None:
                self.state.grant_read_registry(fn.function)
                self.clusters.grant_scale_tagged(
                    fn.function, tag_key=config.discovery_tag_key, tag_value=config.discovery_tag_value
                )
        if self.discovery is not None:
            self.clusters.grant_discover(self.discovery.handler.function)
            self.grant_manage_alarms(self.discovery.handler.function)
        run_once = [self.scaler.alarm, self.scaler.reconcile, self.fanout.handler]
        if self.emr_events is not None:
            run_once.append(self.emr_events.handler)
        for fn in run_once:
            self.state.grant_read_demand(fn.function)
            self.clusters.grant_read_metrics(fn.function)
            self.clusters.grant_read_spot_prices(fn.function)
        for fn in (self.scaler.alarm, self.scaler.reconcile):
            self.grant_describe_alarms(fn.function)
        self.state.grant_read_size_records(self.scaler.reconcile.function)  # the schedule's selection
        if self.spot_events is not None:
            self.clusters.grant_describe_instances(self.spot_events.handler.function)
            self.clusters.grant_read_spot_prices(self.spot_events.handler.function)

    def _grant_digest(self) -> None:
        """The daily digest: the audit records and the registry (Query), its mark in the notice ledger
        (GetItem, PutItem), the operator notices. With a weekly section, what the savings report reads to
        compare each cluster's week: its EMR metrics (GetMetricData), its shape (DescribeCluster,
        ListInstanceGroups) and the spot price history. It scales nothing."""
        if self.digest is None:
            return
        fn = self.digest.handler.function
        self.state.grant_read_audit(fn)  # also the registry's Query when discovery is on
        self.state.grant_ledger(fn)
        self.notifications.grant_publish_notices(fn)
        config = self._settings.config
        if config.digest_weekly_day == WEEKLY_OFF:
            return
        self.clusters.grant_read_metrics(fn)
        self.clusters.grant_read_spot_prices(fn)
        by_tag = self.discovery is not None
        self.clusters.grant_read_shape(
            fn, tagged=(config.discovery_tag_key, config.discovery_tag_value) if by_tag else None
        )

    def _add_cluster_alarms_and_dashboards(self, config: Config, features: Features) -> None:
        self.cluster_alarms = {}
        self.dashboard = None
        for cluster_id in config.clusters:
            specs = alarm_specs(config, cluster_id, include_heap=features.heap_alarms)
            self.cluster_alarms[cluster_id] = ClusterAlarms(
                self,
                f"Alarms-{cluster_id}",
                specs=specs,
                alarm_topic=self.notifications.alarm_topic,
                operator_alarm_topic=self.notifications.operator_alarm_topic,
            )
        if not features.dashboards:
            return
        # One dashboard for all clusters: its `cluster` variable swaps this id for the chosen one.
        shown = config.clusters[0] if config.clusters else DASHBOARD_PLACEHOLDER_CLUSTER
        specs = alarm_specs(config, shown, include_heap=features.heap_alarms)
        alarms = [
            cloudwatch.Alarm.from_alarm_arn(self, f"Shown-{s.kind}", self._alarm_arn(s.name)) for s in specs
        ]
        self.dashboard = ClusterDashboard(
            self,
            "Dashboard",
            cluster_id=shown,
            alarm_prefix=config.alarm_prefix,
            specs=specs,
            alarms=alarms,
            include_heap=features.heap_alarms,
        )

    def _alarm_arn(self, name: str) -> str:
        return Stack.of(self).format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _add_dead_letter_alarms(self, features: Features) -> None:
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
            self._dlq_alarms(self._alarm_prefix)

    def _add_heap_bootstrap(
        self, features: Features, bootstrap_dir: Path | None, emr_instance_role: iam.IRole | None
    ) -> None:
        self.heap_bootstrap = None
        if features.heap_bootstrap_assets and bootstrap_dir is not None:
            self.heap_bootstrap = HeapBootstrapAssets(
                self,
                "HeapBootstrap",
                bootstrap_dir=bootstrap_dir,
                instance_role=emr_instance_role,
                state_table_name=self.state.table.table_name,
            )

    def _add_node_report_policies(self, config: Config, emr_instance_role: iam.IRole | None) -> None:
        """Safe scale-in: one managed policy per managed cluster that lets its EMR instance role write that
        cluster's node report and nothing else; attached to `emr_instance_role` when one is given (a role
        shared by the clusters then gets them all)."""
        self.node_report_policies = {}
        for cluster_id in config.clusters:
            policy = self.state.node_report_policy(
                self, f"NodeReportWriter{_alnum(cluster_id)}", cluster_id=cluster_id
            )
            if emr_instance_role is not None:
                policy.attach_to_role(emr_instance_role)
            self.node_report_policies[cluster_id] = policy

    # --- grants on what this construct owns -----------------------------------------------------------------
    def grant_describe_alarms(self, grantee: iam.IGrantable) -> iam.Grant:
        """DescribeAlarms on this construct's alarms only (every name starts with the alarm prefix): the
        cluster alarms and the dead-letter-queue alarms."""
        own_alarms = stack_alarms_arn(self, self._alarm_prefix)
        grant = grant_on(grantee, DESCRIBE_ALARMS_ACTIONS, [own_alarms])
        acknowledge(
            grantee,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:"
            f"alarm:{self._alarm_prefix}-*]",
            "DescribeAlarms on this stack's alarms only: every alarm name starts with the prefix.",
        )
        return grant

    def grant_manage_alarms(self, grantee: iam.IGrantable) -> iam.Grant:
        """PutMetricAlarm, DeleteAlarms and DescribeAlarms on alarms named with the prefix only: discovery
        creates and deletes the alarms of the clusters managed by tag."""
        grant = grant_on(
            grantee,
            (*MANAGE_ALARMS_ACTIONS, *DESCRIBE_ALARMS_ACTIONS),
            [stack_alarms_arn(self, self._alarm_prefix)],
        )
        acknowledge(
            grantee,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:"
            f"alarm:{self._alarm_prefix}-*]",
            "The alarms of the clusters managed by tag: every name starts with the prefix; the clusters are "
            "not known at deploy time.",
        )
        return grant

    # --- helpers -------------------------------------------------------------------------------------------
    def _collect_dead_letter_queues(self) -> dict[str, sqs.Queue]:
        queues = {
            "alarm-fn": self.scaler.alarm.dead_letter_queue,
            "reconcile-fn": self.scaler.reconcile.dead_letter_queue,
            "alarm-subscription": self.scaler.subscription_dlq,
            "schedule": self.scaler.schedule_dlq,
            "fanout-queue": self.fanout.dead_letter_queue,
            "fanout-fn": self.fanout.handler.dead_letter_queue,
        }
        if self.spot_events is not None:
            queues["events-fn"] = self.spot_events.handler.dead_letter_queue
            queues["spot-rules"] = self.spot_events.rule_dlq
        if self.emr_events is not None:
            queues["emr-events-fn"] = self.emr_events.handler.dead_letter_queue
            queues["emr-rule"] = self.emr_events.rule_dlq
        if self.discovery is not None:
            queues["discovery-fn"] = self.discovery.handler.dead_letter_queue
            queues["discovery-rules"] = self.discovery.rule_dlq
        if self.digest is not None:
            queues["digest-fn"] = self.digest.handler.dead_letter_queue
            queues["digest-schedule"] = self.digest.rule_dlq
        return queues

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
                alarm_actions=[self.notifications.operator_alarm_topic.topic_arn],
            )


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())
