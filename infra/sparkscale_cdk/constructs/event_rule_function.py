"""A Lambda woken by EventBridge rules: its function, and one dead-letter queue for all its rules' targets.

A base class rather than a child construct, so that the subclasses' resources keep their construct paths (and
so their logical IDs: a deployed stack would otherwise replace them).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sparkscale_cdk.constructs.function import FunctionOptions, ScalerFunction, encrypted_queue

EVENT_RETRY_ATTEMPTS: Final = 2


class EventRuleFunction(Construct):
    handler: ScalerFunction
    rule_dlq: sqs.Queue

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        options: FunctionOptions,
        max_event_age: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self._max_event_age = max_event_age
        self.handler = ScalerFunction(
            self, "Handler", handler=handler, description=description, options=options
        )
        self.rule_dlq = encrypted_queue(self, "RuleDlq", key=options.key)

    def add_rule(self, rule_id: str, *, description: str, event_pattern: events.EventPattern) -> events.Rule:
        """A rule targeting the function; an event it fails to deliver (retries spent, or older than the
        subclass's max event age) goes to `rule_dlq`."""
        return events.Rule(
            self,
            rule_id,
            description=description,
            event_pattern=event_pattern,
            targets=[
                targets.LambdaFunction(
                    self.handler.function,
                    dead_letter_queue=self.rule_dlq,
                    retry_attempts=EVENT_RETRY_ATTEMPTS,
                    max_event_age=self._max_event_age,
                )
            ],
        )
