"""Clusters managed by tag (docs/clusters-by-tag.md): the discovery Lambda, woken by every "EMR Cluster State
Change" to an active or ended state (any cluster: EMR's events carry no tags, the Lambda reads them) and by a
sweep on the reconcile schedule. It creates and deletes the alarms of the clusters it manages, so it runs
one at a time (CloudWatch takes about 3 alarm writes a second) and longer than the scalers."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct

from sparkscale_cdk import names
from sparkscale_cdk.constructs.event_rule_function import EVENT_RETRY_ATTEMPTS, EventRuleFunction
from sparkscale_cdk.constructs.function import FunctionOptions

DISCOVERY_HANDLER: Final = "handlers.discovery.handler"
EVENT_MAX_AGE: Final = Duration.hours(1)  # the sweep catches up on anything older
DISCOVERY_TIMEOUT_S: Final = 300  # a sweep stops 15 s before it (usecases.discovery.MIN_TIME_LEFT_S)
DISCOVERY_CONCURRENCY: Final = 1  # one writer of alarms at a time: CloudWatch's rate is per account


class ClusterDiscovery(EventRuleFunction):
    rule: events.Rule
    sweep: events.Rule

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: FunctionOptions,
        alarm_topic: sns.ITopic,
        operator_alarm_topic: sns.ITopic,
        include_heap: bool,
        sweep_rate_minutes: int,
    ) -> None:
        environment = {
            **options.environment,
            names.ENV_ALARM_TOPIC_ARN: alarm_topic.topic_arn,
            names.ENV_OPERATOR_ALARM_TOPIC_ARN: operator_alarm_topic.topic_arn,
            names.ENV_HEAP_ALARMS: "true" if include_heap else "false",
        }
        super().__init__(
            scope,
            construct_id,
            handler=DISCOVERY_HANDLER,
            description="sparkscale: manage every EMR cluster carrying the opt-in tag (alarms, registry)",
            options=replace(
                options,
                environment=environment,
                timeout_s=DISCOVERY_TIMEOUT_S,
                reserved_concurrency=DISCOVERY_CONCURRENCY,
            ),
            max_event_age=EVENT_MAX_AGE,
        )
        self.rule = self.add_rule(
            "ClusterStateChange",
            description="sparkscale: EMR clusters starting, running or terminated (any cluster: tags read)",
            event_pattern=events.EventPattern(
                source=[names.EVENT_SOURCE_EMR],
                detail_type=[names.DETAIL_EMR_CLUSTER_STATE_CHANGE],
                detail={"state": [*names.EMR_ACTIVE_STATES, *names.EMR_ENDED_STATES]},
            ),
        )
        self.sweep = events.Rule(
            self,
            "Sweep",
            description=f"sparkscale: discovery sweep every {sweep_rate_minutes} minute(s)",
            schedule=events.Schedule.rate(Duration.minutes(sweep_rate_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.handler.function,
                    dead_letter_queue=self.rule_dlq,
                    retry_attempts=EVENT_RETRY_ATTEMPTS,
                    max_event_age=Duration.minutes(sweep_rate_minutes),
                )
            ],
        )
