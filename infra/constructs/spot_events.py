"""EC2 spot interruption warnings and rebalance recommendations → the events Lambda, which asks for
replacement capacity in another spot group before the node goes away."""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.function import FunctionOptions, ScalerFunction, encrypted_queue

EVENTS_HANDLER: Final = "handlers.spot_events.handler"
INTERRUPTION_DETAIL_TYPE: Final = "EC2 Spot Instance Interruption Warning"
REBALANCE_DETAIL_TYPE: Final = "EC2 Instance Rebalance Recommendation"
# The warning comes two minutes before the interruption: a later delivery is worthless.
EVENT_MAX_AGE: Final = Duration.minutes(2)
EVENT_RETRY_ATTEMPTS: Final = 2


class SpotEvents(Construct):
    handler: ScalerFunction
    interruption_rule: events.Rule
    rebalance_rule: events.Rule
    rule_dlq: sqs.Queue

    def __init__(self, scope: Construct, construct_id: str, *, options: FunctionOptions) -> None:
        super().__init__(scope, construct_id)
        self.handler = ScalerFunction(
            self,
            "Handler",
            handler=EVENTS_HANDLER,
            description="sparkscale: spot interruption / rebalance → replacement capacity in another group",
            options=options,
        )
        self.rule_dlq = encrypted_queue(self, "RuleDlq", key=options.key)

        def rule(rule_id: str, detail_type: str) -> events.Rule:
            return events.Rule(
                self,
                rule_id,
                description=f"sparkscale: {detail_type}",
                event_pattern=events.EventPattern(source=["aws.ec2"], detail_type=[detail_type]),
                targets=[
                    targets.LambdaFunction(
                        self.handler.function,
                        dead_letter_queue=self.rule_dlq,
                        retry_attempts=EVENT_RETRY_ATTEMPTS,
                        max_event_age=EVENT_MAX_AGE,
                    )
                ],
            )

        self.interruption_rule = rule("InterruptionWarning", INTERRUPTION_DETAIL_TYPE)
        self.rebalance_rule = rule("RebalanceRecommendation", REBALANCE_DETAIL_TYPE)
