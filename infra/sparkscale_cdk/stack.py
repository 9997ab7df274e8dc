"""The one stack: deploy-time parameters, the `SparkAutoscaler` construct, outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from aws_cdk import CfnCondition, CfnOutput, CfnParameter, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct
from sparkscale.emr_setup import safe_scale_in_configurations

from sparkscale_cdk.constructs import SparkAutoscaler
from sparkscale_cdk.constructs.notifications import NOTICE_KIND_ATTRIBUTE
from sparkscale_cdk.settings import StackSettings

REPO_ROOT: Final = Path(__file__).resolve().parents[2]  # the checkout's root (only cdk_json_context uses it)


class SparkscaleStack(Stack):
    """`autoscaler` holds every resource; this class adds what only a deployed stack has: parameters
    (operator email, dry-run brake) and outputs."""

    autoscaler: SparkAutoscaler

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="sparkscale: event-driven autoscaling of SPOT task groups for Spark on Amazon EMR",
            **kwargs,
        )
        dry_run = CfnParameter(
            self,
            "DryRun",
            type="String",
            allowed_values=["false", "true"],
            default="false",
            description="true: never resize, only decide and notify (an emergency brake); false: per config.",
        )
        operator_email = CfnParameter(
            self,
            "OperatorEmail",
            type="String",
            default="",
            allowed_pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
            description="Optional extra address for the operator topic (besides context operator_emails).",
        )
        role = (
            iam.Role.from_role_name(self, "EmrInstanceRole", settings.emr_instance_role_name)
            if settings.emr_instance_role_name
            else None
        )
        self.autoscaler = SparkAutoscaler(
            self,
            "Autoscaler",
            config=settings.config,
            features=settings.features,
            dry_run_override=dry_run.value_as_string,
            emr_instance_role=role,
        )
        has_email = CfnCondition(
            self,
            "HasOperatorEmail",
            expression=Fn.condition_not(Fn.condition_equals(operator_email.value_as_string, "")),
        )
        n = self.autoscaler.notifications
        # The same two subscriptions as each address of operator_emails (Notifications.subscribe_email)
        alarms_mail = sns.CfnSubscription(
            self,
            "OperatorAlarmEmailSubscription",
            topic_arn=n.operator_alarm_topic.topic_arn,
            protocol="email",
            endpoint=operator_email.value_as_string,
        )
        alarms_mail.cfn_options.condition = has_email
        kinds = settings.config.email_notice_kinds
        if kinds:
            notices_mail = sns.CfnSubscription(
                self,
                "OperatorEmailSubscription",
                topic_arn=n.operator_topic.topic_arn,
                protocol="email",
                endpoint=operator_email.value_as_string,
                filter_policy={NOTICE_KIND_ATTRIBUTE: list(kinds)},
            )
            notices_mail.cfn_options.condition = has_email

        CfnOutput(self, "AlarmTopicArn", value=n.alarm_topic.topic_arn, description="CloudWatch → scaler")
        CfnOutput(self, "OperatorTopicArn", value=n.operator_topic.topic_arn, description="scaler → people")
        CfnOutput(
            self,
            "OperatorAlarmTopicArn",
            value=n.operator_alarm_topic.topic_arn,
            description="CloudWatch alarms → people",
        )
        CfnOutput(self, "StateTableName", value=self.autoscaler.state.table.table_name)
        # what `sparkscale status` reads the cluster's alarms by (names.alarm_name)
        CfnOutput(self, "AlarmPrefix", value=settings.config.alarm_prefix, description="alarm name prefix")
        CfnOutput(
            self,
            "SafeScaleInConfigurations",
            value=self.to_json_string(safe_scale_in_configurations()),
            description="aws emr create-cluster --configurations '<this>' (EMR 6.12.0+): application masters "
            "on CORE nodes, Spark decommission with block migration (docs/safe-scale-in.md)",
        )
        for cluster_id, policy in self.autoscaler.node_report_policies.items():
            CfnOutput(
                self,
                f"NodeReportWriterPolicyArn{_alnum(cluster_id)}",
                value=policy.managed_policy_arn,
                description=f"attach to the EMR instance role of {cluster_id} (safe scale-in node report)",
            )
        dashboard = self.autoscaler.dashboard
        if dashboard is not None:
            CfnOutput(
                self,
                "DashboardUrl",
                value=dashboard.url,
                description="CloudWatch dashboard of every managed cluster (choose one in its variable)",
            )
        boot = self.autoscaler.heap_bootstrap
        if boot is not None:
            CfnOutput(self, "BootstrapActionPath", value=boot.action_path, description="EMR bootstrap action")
            CfnOutput(self, "BootstrapActionArgs", value=Fn.join(" ", boot.action_args))
            CfnOutput(
                self,
                "BootstrapActionsJson",
                value=boot.action_json(),
                description="aws emr create-cluster --bootstrap-actions '<this>'",
            )
            CfnOutput(
                self,
                "SparkMetricsClassification",
                value=self.to_json_string(boot.classification),
                description="aws emr create-cluster --configurations '<this>' (Spark StatsdSink + JvmSource)",
            )


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())
