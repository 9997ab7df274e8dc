"""CloudWatch alarms of one managed cluster, translated 1:1 from `sparkscale.alarms.alarm_specs` (the same
specs the replay and the demo evaluate). Every ALARM and OK transition goes to the alarm topic; alarms marked
`to_operators` also go to the operator topic."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sns as sns
from constructs import Construct
from sparkscale.alarms import AlarmSpec


def _dimensions(spec: AlarmSpec) -> list[cloudwatch.CfnAlarm.DimensionProperty]:
    return [cloudwatch.CfnAlarm.DimensionProperty(name=n, value=v) for n, v in spec.dimensions]


def _math_queries(spec: AlarmSpec) -> list[cloudwatch.CfnAlarm.MetricDataQueryProperty]:
    queries = [
        cloudwatch.CfnAlarm.MetricDataQueryProperty(
            id=spec.expression_id, expression=spec.expression, label=spec.kind, return_data=True
        )
    ]
    for m in spec.metrics:
        queries.append(
            cloudwatch.CfnAlarm.MetricDataQueryProperty(
                id=m.id,
                metric_stat=cloudwatch.CfnAlarm.MetricStatProperty(
                    metric=cloudwatch.CfnAlarm.MetricProperty(
                        namespace=spec.namespace, metric_name=m.metric_name, dimensions=_dimensions(spec)
                    ),
                    period=spec.period_s,
                    stat=m.statistic,
                ),
                return_data=False,
            )
        )
    return queries


class ClusterAlarms(Construct):
    """`alarms` maps each spec's kind to its CfnAlarm (in spec order)."""

    alarms: dict[str, cloudwatch.CfnAlarm]
    specs: tuple[AlarmSpec, ...]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: Sequence[AlarmSpec],
        alarm_topic: sns.ITopic,
        operator_alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.specs = tuple(specs)
        self.alarms = {}
        for spec in specs:
            # ALARM also to people when the spec says so; OK only to the scaler (people need the alert, the
            # recovery shows on the dashboard and stays quiet in the inbox)
            actions = [alarm_topic.topic_arn]
            people = [operator_alarm_topic.topic_arn] if spec.to_operators else []
            single = not spec.is_math
            self.alarms[spec.kind] = cloudwatch.CfnAlarm(
                self,
                spec.kind,
                alarm_name=spec.name,
                alarm_description=spec.description,
                comparison_operator=spec.comparison,
                threshold=spec.threshold,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                treat_missing_data=spec.treat_missing_data,
                actions_enabled=True,
                alarm_actions=actions + people,
                ok_actions=actions,
                # one metric …
                namespace=spec.namespace if single else None,
                metric_name=spec.metric_name if single else None,
                statistic=spec.statistic if single else None,
                period=spec.period_s if single else None,
                dimensions=_dimensions(spec) if single else None,
                # … or metric math
                metrics=None if single else _math_queries(spec),
            )
