"""The two scaler Lambdas and what triggers them: the alarm topic (SNS subscription with its own DLQ) and the
reconcile schedule (EventBridge rate rule)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sparkscale_cdk.constructs.function import FunctionOptions, ScalerFunction, encrypted_queue

ALARM_HANDLER = "handlers.alarm.handler"
RECONCILE_HANDLER = "handlers.reconcile.handler"
# A missed tick is replaced by the next one: retry briefly, then park it in the DLQ for inspection.
SCHEDULE_MAX_EVENT_AGE = Duration.minutes(2)
SCHEDULE_RETRY_ATTEMPTS = 2


class ScalerFunctions(Construct):
    alarm: ScalerFunction
    reconcile: ScalerFunction
    subscription_dlq: sqs.Queue
    schedule_dlq: sqs.Queue
    schedule: events.Rule

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: FunctionOptions,
        alarm_topic: sns.ITopic,
        reconcile_rate_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm = ScalerFunction(
            self,
            "Alarm",
            handler=ALARM_HANDLER,
            description="sparkscale: an alarm changed state; re-read the cluster and decide",
            options=options,
        )
        self.reconcile = ScalerFunction(
            self,
            "Reconcile",
            handler=RECONCILE_HANDLER,
            description="sparkscale: periodic re-evaluation of every managed cluster",
            options=options,
        )
        self.subscription_dlq = encrypted_queue(self, "AlarmSubscriptionDlq", key=options.key)
        alarm_topic.add_subscription(
            subs.LambdaSubscription(self.alarm.function, dead_letter_queue=self.subscription_dlq)
        )
        self.schedule_dlq = encrypted_queue(self, "ScheduleDlq", key=options.key)
        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"sparkscale: reconcile every {reconcile_rate_minutes} minute(s)",
            schedule=events.Schedule.rate(Duration.minutes(reconcile_rate_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.reconcile.function,
                    dead_letter_queue=self.schedule_dlq,
                    retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                    max_event_age=SCHEDULE_MAX_EVENT_AGE,
                )
            ],
        )
