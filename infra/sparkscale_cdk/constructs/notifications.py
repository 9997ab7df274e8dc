"""The encryption key and the three topics: the alarm topic (CloudWatch → scaler), the operator topic (every
notice the scaler sends → people and chat) and the operator alarm topic (CloudWatch alarms meant for people: a
dead-letter queue holds a message, a silent agent, critical heap).

Email is for alerts: an address gets the operator alarms and only the notices whose `kind` is in
`email_notice_kinds` (an SNS subscription filter policy on the notice's `kind` MessageAttribute). Two topics
because a filter policy cannot pass CloudWatch's alarm messages, which carry no MessageAttributes (SNS's
`"exists": false` needs at least one attribute on the message)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from sparkscale_cdk import names
from sparkscale_cdk.constructs.grants import grant_on

# Services that write into our encrypted topics and queues on our behalf: CloudWatch publishes alarm state
# changes to the topics, SNS moves undeliverable messages to the subscription DLQ, EventBridge moves failed
# target invocations to its DLQ. Each gets exactly the two KMS actions a producer needs; so do the Lambdas,
# which send to their encrypted DLQs and publish to the encrypted operator topic.
KEY_USER_SERVICES: Final = ("cloudwatch.amazonaws.com", "sns.amazonaws.com", "events.amazonaws.com")
KEY_PRODUCER_ACTIONS: Final = ("kms:GenerateDataKey", "kms:Decrypt")
PUBLISH_ACTIONS: Final = ("sns:Publish",)
NOTICE_KIND_ATTRIBUTE: Final = "kind"  # the MessageAttribute the SNS adapter sets on every notice


def stack_alarms_arn(scope: Construct, alarm_prefix: str) -> str:
    """The ARN pattern of every alarm the stack creates (each name starts with `<alarm_prefix>-`)."""
    return Stack.of(scope).format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{alarm_prefix}-*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


class Notifications(Construct):
    """`key` encrypts every topic and queue of the stack; `alarm_topic` only accepts CloudWatch alarms of this
    account whose names start with the alarm prefix; `operator_topic` carries every notice (emailed when its
    kind is in `email_notice_kinds`); `operator_alarm_topic` the alarms for people (always emailed)."""

    key: kms.Key
    alarm_topic: sns.Topic
    operator_topic: sns.Topic
    operator_alarm_topic: sns.Topic

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_prefix: str,
        operator_emails: Sequence[str],
        email_notice_kinds: Sequence[str] = names.NOTICE_KINDS_EMAILED_BY_DEFAULT,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.key = kms.Key(
            self,
            "Key",
            description="sparkscale: encrypts the alarm and operator topics and the dead-letter queues",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AwsServicesProduceIntoEncryptedTopicsAndQueues",
                principals=[iam.ServicePrincipal(s) for s in KEY_USER_SERVICES],
                actions=list(KEY_PRODUCER_ACTIONS),
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )

        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name="sparkscale alarms (wake-up calls for the scaler)",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.operator_topic = sns.Topic(
            self,
            "OperatorTopic",
            display_name="sparkscale operators",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.operator_alarm_topic = sns.Topic(
            self,
            "OperatorAlarmTopic",
            display_name="sparkscale alarms for operators",
            master_key=self.key,
            enforce_ssl=True,
        )
        self._email_notice_kinds = tuple(email_notice_kinds)
        alarm_arns = stack_alarms_arn(self, alarm_prefix)
        # CloudWatch publishes to the two alarm topics only; the operator topic hears from the Lambdas alone.
        for topic in (self.alarm_topic, self.operator_alarm_topic):
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="CloudWatchAlarmsOfThisAccountOnly",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=list(PUBLISH_ACTIONS),
                    resources=[topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": alarm_arns},
                    },
                )
            )
        for address in operator_emails:
            self.subscribe_email(address)

    def email_filter_policy(self) -> dict[str, sns.SubscriptionFilter] | None:
        """The operator topic's filter for email: the notice kinds to mail; None when no kind is mailed."""
        if not self._email_notice_kinds:
            return None
        return {
            NOTICE_KIND_ATTRIBUTE: sns.SubscriptionFilter.string_filter(
                allowlist=list(self._email_notice_kinds)
            )
        }

    def subscribe_email(self, address: str) -> None:
        """Mail `address` the operator alarms and the notices of `email_notice_kinds`."""
        self.operator_alarm_topic.add_subscription(subs.EmailSubscription(address))
        policy = self.email_filter_policy()
        if policy is not None:
            self.operator_topic.add_subscription(subs.EmailSubscription(address, filter_policy=policy))

    def grant_publish_notices(self, grantee: iam.IGrantable) -> iam.Grant:
        """`sns:Publish` to the operator topic only, and the key it is encrypted with (`grant_use_key`).
        Not `Topic.grant_publish`: that grants `kms:GenerateDataKey*`, a wildcard action."""
        publish = grant_on(grantee, PUBLISH_ACTIONS, [self.operator_topic.topic_arn])
        return publish.combine(self.grant_use_key(grantee))

    def grant_use_key(self, grantee: iam.IGrantable) -> iam.Grant:
        """Produce into the stack's encrypted topics and queues: the two KMS actions, on this key only."""
        return self.key.grant(grantee, *KEY_PRODUCER_ACTIONS)
