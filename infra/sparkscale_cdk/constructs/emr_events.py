"""EMR instance-group and cluster state changes of the managed clusters → the EMR-events Lambda, which records
a SPOT task group's capacity error (stuck for insufficient capacity, arrested) and re-decides at once, so the
unmet capacity moves to the next cheapest group without waiting for the spot fallback timeout; and marks a
TERMINATED cluster gone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from constructs import Construct

from sparkscale_cdk import names
from sparkscale_cdk.constructs.event_rule_function import EventRuleFunction
from sparkscale_cdk.constructs.function import FunctionOptions

EMR_EVENTS_HANDLER: Final = "handlers.emr_events.handler"
# EMR repeats a stuck-resize event while the resize is stuck; a copy older than this is superseded by the next
# one (and by the reconcile schedule's own shortfall timeout).
EVENT_MAX_AGE: Final = Duration.minutes(15)


class EmrEvents(EventRuleFunction):
    rule: events.Rule

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: FunctionOptions,
        cluster_ids: Sequence[str] | None,
    ) -> None:
        """`cluster_ids` None: every cluster's events (clusters managed by tag; the handler filters)."""
        super().__init__(
            scope,
            construct_id,
            handler=EMR_EVENTS_HANDLER,
            description="sparkscale: EMR capacity events → spot fallback now; cluster terminated → gone",
            options=options,
            max_event_age=EVENT_MAX_AGE,
        )
        self.rule = self.add_rule(
            "InstanceGroupAndClusterStateChange",
            description="sparkscale: EMR instance-group and cluster state changes of the managed clusters",
            event_pattern=events.EventPattern(
                source=[names.EVENT_SOURCE_EMR],
                detail_type=[
                    names.DETAIL_EMR_GROUP_STATE_CHANGE,
                    names.DETAIL_EMR_CLUSTER_STATE_CHANGE,
                    names.DETAIL_EMR_FLEET_RESIZE,
                ],
                detail=None if cluster_ids is None else {"clusterId": list(cluster_ids)},
            ),
        )
