"""The EMR-events part of the stack (cdk.json's own context), one concern per test: the rule's pattern, its
target, and the function's grants. Synthesized once for the module; resources are found through the
constructs, never by logical ID."""

from __future__ import annotations

from typing import Any

import pytest
from sparkscale.config import Config
from sparkscale.config_io import from_cdk_context
from sparkscale_cdk import names
from sparkscale_cdk.constructs.clusters import (
    EMR_SCALER_ACTIONS,
    METRICS_READ_ACTIONS,
    SPOT_PRICE_READ_ACTIONS,
)
from sparkscale_cdk.constructs.emr_events import EMR_EVENTS_HANDLER, EmrEvents
from sparkscale_cdk.wiring import cdk_json_context
from stack_testlib import Synth, as_list, synth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def emr(s: Synth) -> EmrEvents:
    found: EmrEvents | None = s.stack.autoscaler.emr_events
    assert found is not None
    return found


@pytest.fixture(scope="module")
def config() -> Config:
    return from_cdk_context(cdk_json_context())


def _rule(s: Synth, emr: EmrEvents) -> dict[str, Any]:
    fn_arn = s.ref(emr.handler.function.function_arn)
    (rule,) = [
        p for p in s.props("AWS::Events::Rule") if any(t["Arn"] == fn_arn for t in p.get("Targets", []))
    ]
    found: dict[str, Any] = rule
    return found


def _statements(s: Synth, emr: EmrEvents) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = s.role_statements(emr.handler.role)
    return statements


def test_one_rule_for_the_managed_clusters_instance_group_and_cluster_state_changes(
    s: Synth, emr: EmrEvents, config: Config
) -> None:
    pattern = _rule(s, emr)["EventPattern"]
    assert pattern == {
        "source": [names.EVENT_SOURCE_EMR],
        "detail-type": [
            names.DETAIL_EMR_GROUP_STATE_CHANGE,
            names.DETAIL_EMR_CLUSTER_STATE_CHANGE,
            names.DETAIL_EMR_FLEET_RESIZE,
        ],
        "detail": {"clusterId": config.clusters},
    }
    assert names.DETAIL_EMR_FLEET_RESIZE == "EMR Instance Fleet Resize"
    assert (names.EVENT_SOURCE_EMR, names.DETAIL_EMR_GROUP_STATE_CHANGE) == (
        "aws.emr",
        "EMR Instance Group State Change",
    )


def test_the_rule_targets_the_emr_events_function_with_its_own_dlq_and_retries(
    s: Synth, emr: EmrEvents
) -> None:
    (target,) = _rule(s, emr)["Targets"]
    assert target["Arn"] == s.ref(emr.handler.function.function_arn)
    assert target["DeadLetterConfig"] == {"Arn": s.ref(emr.rule_dlq.queue_arn)}
    spot = s.stack.autoscaler.spot_events
    assert spot is not None
    assert target["DeadLetterConfig"] != {"Arn": s.ref(spot.rule_dlq.queue_arn)}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 900}


def test_the_function_runs_the_emr_events_handler_with_its_own_dlq(s: Synth, emr: EmrEvents) -> None:
    props = s.function(EMR_EVENTS_HANDLER)
    assert props["DeadLetterConfig"]["TargetArn"] == s.ref(emr.handler.dead_letter_queue.queue_arn)
    assert props["Role"] == s.ref(emr.handler.role.role_arn)


def test_emr_actions_are_the_scalers_on_the_managed_clusters_only(
    s: Synth, emr: EmrEvents, config: Config
) -> None:
    expected = [
        s.ref(s.stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name=c))
        for c in config.clusters
    ]
    emr_statements = [
        st
        for st in _statements(s, emr)
        if any(a.startswith("elasticmapreduce:") for a in as_list(st["Action"]))
    ]
    (st,) = emr_statements
    assert sorted(as_list(st["Action"])) == sorted(EMR_SCALER_ACTIONS)
    assert as_list(st["Resource"]) == expected


def test_star_only_for_metrics_and_spot_prices_and_no_alarm_or_instance_reads(
    s: Synth, emr: EmrEvents
) -> None:
    actions = {a for st in _statements(s, emr) for a in as_list(st["Action"])}
    assert "cloudwatch:DescribeAlarms" not in actions  # run_once needs no alarm states
    assert "ec2:DescribeInstances" not in actions  # no instance to locate
    star = {a for st in _statements(s, emr) if "*" in as_list(st["Resource"]) for a in as_list(st["Action"])}
    assert star == {*METRICS_READ_ACTIONS, *SPOT_PRICE_READ_ACTIONS}
    assert star == {"cloudwatch:GetMetricData", "ec2:DescribeSpotPriceHistory"}


def test_state_table_and_operator_topic_only(s: Synth, emr: EmrEvents) -> None:
    table_arn = s.ref(s.stack.autoscaler.state.table.table_arn)
    operator_topic = s.ref(s.stack.autoscaler.notifications.operator_topic.topic_arn)
    statements = _statements(s, emr)
    dynamo = [st for st in statements if any(a.startswith("dynamodb:") for a in as_list(st["Action"]))]
    assert dynamo
    for st in dynamo:
        assert [r for r in as_list(st["Resource"]) if r != {"Ref": "AWS::NoValue"}] == [table_arn]
    (sns,) = [st for st in statements if any(a.startswith("sns:") for a in as_list(st["Action"]))]
    assert (as_list(sns["Action"]), as_list(sns["Resource"])) == (["sns:Publish"], [operator_topic])


def test_both_dead_letter_queues_alarm_to_operators(s: Synth, emr: EmrEvents, config: Config) -> None:
    queues = s.stack.autoscaler.dead_letter_queues
    assert queues["emr-events-fn"] is emr.handler.dead_letter_queue
    assert queues["emr-rule"] is emr.rule_dlq
    alarm_names = {p["AlarmName"] for p in s.props("AWS::CloudWatch::Alarm")}
    assert {f"{config.alarm_prefix}-dlq-emr-events-fn", f"{config.alarm_prefix}-dlq-emr-rule"} <= alarm_names
