"""EC2 spot interruption warnings and rebalance recommendations → the events Lambda, which asks for
replacement capacity in another spot group before the node goes away."""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from sparkscale_cdk import names
from sparkscale_cdk.constructs.event_rule_function import EventRuleFunction
from sparkscale_cdk.constructs.function import FunctionOptions

EVENTS_HANDLER: Final = "handlers.spot_events.handler"
# The warning comes two minutes before the interruption: a later delivery is worthless.
EVENT_MAX_AGE: Final = Duration.minutes(2)


class SpotEvents(EventRuleFunction):
    interruption_rule: events.Rule
    rebalance_rule: events.Rule

    def __init__(self, scope: Construct, construct_id: str, *, options: FunctionOptions) -> None:
        super().__init__(
            scope,
            construct_id,
            handler=EVENTS_HANDLER,
            description="sparkscale: spot interruption / rebalance → replacement capacity in another group",
            options=options,
            max_event_age=EVENT_MAX_AGE,
        )
        self.interruption_rule = self._ec2_rule("InterruptionWarning", names.DETAIL_SPOT_INTERRUPTION)
        self.rebalance_rule = self._ec2_rule("RebalanceRecommendation", names.DETAIL_REBALANCE_RECOMMENDATION)

    def _ec2_rule(self, rule_id: str, detail_type: str) -> events.Rule:
        return self.add_rule(
            rule_id,
            description=f"sparkscale: {detail_type}",
            event_pattern=events.EventPattern(source=[names.EVENT_SOURCE_EC2], detail_type=[detail_type]),
        )
