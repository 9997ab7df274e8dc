"""events.parse_event on the real AWS payload samples (tests/fixtures/aws-samples, see PROVENANCE.md)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sparkscale.errors import BadEvent
from sparkscale.events.alarm import AlarmState, Source, parse_event, split_records

from tests.scale.shell_support import fixture

CID = "j-2AXXXXXXGAPLF"


@pytest.mark.parametrize(
    ("path", "source", "state", "metric", "message_id", "region"),
    [
        (
            "sns/emr-alarm-sns-single-metric.json",
            Source.LAMBDA_SNS,
            "ALARM",
            "YARNMemoryAvailablePercentage",
            "7a1c0b2e-5f3d-5b8e-9c41-2d0e6f1a9b37",
            "us-east-1",
        ),
        (
            "sns/emr-alarm-sns-metric-math.json",
            Source.LAMBDA_SNS,
            "ALARM",
            "JvmHeapUsed",
            "c0ffee00-1d2b-5e3f-8a9b-0c1d2e3f4a5b",
            "eu-west-1",
        ),
        (
            "sns/emr-alarm-sqs-event.json",
            Source.SQS_SNS,
            "OK",
            "ContainerPendingRatio",
            "d88d4479-6ec0-54fe-b63f-1cf9df4bb16e",
            "eu-west-1",
        ),
        (
            "sns/emr-alarm-sns-envelope.json",
            Source.SNS_ENVELOPE,
            "OK",
            "ContainerPendingRatio",
            "d88d4479-6ec0-54fe-b63f-1cf9df4bb16e",
            "eu-west-1",
        ),
        (
            "sns/emr-alarm-message-body-single-metric.json",
            Source.ALARM_BODY,
            "ALARM",
            "YARNMemoryAvailablePercentage",
            None,
            "us-east-1",
        ),
        (
            "sns/emr-alarm-message-body-metric-math.json",
            Source.ALARM_BODY,
            "ALARM",
            "JvmHeapUsed",
            None,
            "eu-west-1",
        ),
        (
            "eventbridge/emr-alarm-state-change-single-metric.json",
            Source.EVENTBRIDGE,
            "ALARM",
            "TotalLoad",
            "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
            "us-east-1",
        ),
        (
            "eventbridge/emr-alarm-state-change-metric-math.json",
            Source.EVENTBRIDGE,
            "ALARM",
            "ContainerPending",
            "2dde0eb1-528b-d2d5-9ca6-6d590caf2329",
            "us-east-1",
        ),
    ],
)
def test_every_accepted_shape(  # noqa: PLR0917
    path: str, source: Source, state: str, metric: str, message_id: str | None, region: str
) -> None:
    t = parse_event(fixture(path), managed_clusters=[CID])
    assert (t.cluster_id, t.state, t.metric_name, t.source, t.region) == (
        CID,
        AlarmState(state),
        metric,
        source,
        region,
    )
    assert t.alarm_name.startswith(f"sparkscale-{CID}-")
    if message_id is not None:
        assert t.message_id == message_id
    else:  # a bare body has no MessageId: alarm, state and change time identify it
        assert t.message_id.startswith("alarm:arn:aws:cloudwatch:")
        assert t.message_id.endswith(f":{state}:{t.changed_at}")


def test_json_text_and_bytes_parse_the_same() -> None:
    ev = fixture("sns/emr-alarm-sns-single-metric.json")
    assert parse_event(json.dumps(ev)) == parse_event(json.dumps(ev).encode()) == parse_event(ev)


def test_both_signing_cert_spellings_and_both_dimension_spellings() -> None:
    lam = fixture("sns/emr-alarm-sns-metric-math.json")  # SigningCertUrl; JobFlowID inside the math
    env = fixture("sns/emr-alarm-sns-envelope.json")  # SigningCertURL; JobFlowId
    assert "SigningCertUrl" in lam["Records"][0]["Sns"]
    assert "SigningCertURL" in env
    assert "JobFlowID" in lam["Records"][0]["Sns"]["Message"]
    assert parse_event(lam).cluster_id == parse_event(env).cluster_id == CID


def test_region_display_names_map_to_codes_without_an_arn() -> None:
    body = fixture("sns/emr-alarm-message-body-single-metric.json")
    body.pop("AlarmArn")
    assert body["Region"] == "US East (N. Virginia)"
    assert parse_event(body).region == "us-east-1"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("sns/sns-event.json", "SNS Message is not JSON"),
        ("sns/snsEvent.json", "SNS Message is not JSON"),
        ("sns/snsSqsEvent.json", "not a CloudWatch alarm notification"),
        ("sns/cloudwatch-alarm-sns-payload-single-metric.json", "AWS/EC2 NetworkOut, not an EMR"),
        ("sns/cloudwatch-alarm-sns-payload-multiple-metrics.json", "AWS/EC2 NetworkOut, not an EMR"),
        (
            "sns/cloudwatch-alarm-sns-payload-single-metric_MESSAGE_BODY.json",
            "not an EMR, Spark heap or YARN collector metric",
        ),
        ("eventbridge/CloudWatch_Alarm_State_Change_single_metric.json", "AWS/EC2 CPUUtilization"),
        (
            "eventbridge/CloudWatch_Alarm_State_Change_metric_math.json",
            "AWS/EC2 NetworkIn, AWS/EC2 NetworkOut",
        ),
        (
            "eventbridge/CloudWatch_Alarm_State_Change_anomaly_detection.json",
            "not an EMR, Spark heap or YARN collector metric",
        ),
        ("eventbridge/CloudWatch_Alarm_State_Change_composite_with_suppressor.json", "composite alarm"),
        ("eventbridge/EMR_Cluster_State_Change_TERMINATED.json", "'EMR Cluster State Change'"),
        ("eventbridge/EC2_Spot_Instance_Interruption_Warning.json", "not a CloudWatch alarm state change"),
    ],
)
def test_real_samples_we_do_not_accept_are_rejected_with_one_reason(path: str, reason: str) -> None:
    with pytest.raises(BadEvent) as info:
        parse_event(fixture(path))
    assert reason in info.value.reason
    assert "\n" not in info.value.reason


def _mutate(path: str, fn: Any) -> Any:
    ev = copy.deepcopy(fixture(path))
    fn(ev)
    return ev


def _set_message(ev: dict[str, Any], **changes: Any) -> None:
    body = json.loads(ev["Records"][0]["Sns"]["Message"])
    body.update(changes)
    ev["Records"][0]["Sns"]["Message"] = json.dumps(body)


SINGLE = "sns/emr-alarm-sns-single-metric.json"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("{not json", "event is not JSON"),
        (json.dumps(fixture(SINGLE))[:300], "event is not JSON"),  # truncated
        ("[1, 2]", "expected a JSON object"),
        ({"hello": "world"}, "not an SNS, EventBridge or CloudWatch alarm payload"),
        ({"Records": []}, "Records is empty"),
        (_mutate(SINGLE, lambda e: e["Records"].append(e["Records"][0])), "a batch of 2 records"),
        (_mutate(SINGLE, lambda e: _set_message(e, NewStateValue="BROKEN")), "unknown state 'BROKEN'"),
        (
            _mutate(
                SINGLE,
                lambda e: _set_message(
                    e,
                    Trigger={
                        "MetricName": "TotalLoad",
                        "Namespace": "AWS/ElasticMapReduce",
                        "Dimensions": [],
                    },
                ),
            ),
            "no JobFlowId dimension",
        ),
        (
            _mutate(
                SINGLE,
                lambda e: _set_message(
                    e,
                    Trigger={
                        "MetricName": "TotalLoad",
                        "Namespace": "AWS/ElasticMapReduce",
                        "Dimensions": [{"name": "JobFlowId", "value": "cluster-1"}],
                    },
                ),
            ),
            "is not an EMR cluster id",
        ),
        (_mutate(SINGLE, lambda e: e["Records"][0]["Sns"].update(Message=None)), "Message is missing"),
        (
            _mutate(SINGLE, lambda e: e["Records"][0]["Sns"].update(Type="SubscriptionConfirmation")),
            "is not a Notification",
        ),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_input_is_rejected_with_one_clear_reason(event: Any, reason: str) -> None:
    with pytest.raises(BadEvent) as info:
        parse_event(event)
    assert reason in info.value.reason


def test_unmanaged_clusters_are_rejected_and_named() -> None:
    with pytest.raises(BadEvent, match="not managed") as info:
        parse_event(fixture(SINGLE), managed_clusters=["j-SOMETHINGELSE"])
    assert info.value.cluster_id == CID


def test_split_records_keeps_batches_apart() -> None:
    sqs = fixture("sns/emr-alarm-sqs-event.json")
    assert len(split_records(sqs)) == 1
    assert split_records({"x": 1}) == [{"x": 1}]
    assert [parse_event(r).cluster_id for r in split_records(sqs)] == [CID]


def test_an_alarm_on_the_yarn_collector_is_ours() -> None:
    # the single-metric sample with the yarn-pending-memory alarm's trigger (alarms.alarm_specs)
    trigger = {
        "MetricName": "YarnPendingMemoryMB",
        "Namespace": "Sparkscale/Yarn",
        "StatisticType": "Statistic",
        "Statistic": "MAXIMUM",
        "Dimensions": [{"value": CID, "name": "JobFlowId"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.0,
        "TreatMissingData": "notBreaching",
    }
    name = f"sparkscale-{CID}-yarn-pending-memory"
    ev = _mutate(SINGLE, lambda e: _set_message(e, Trigger=trigger, AlarmName=name))
    t = parse_event(ev, managed_clusters=[CID])
    assert (t.cluster_id, t.metric_name, t.namespace, t.alarm_name) == (
        CID,
        "YarnPendingMemoryMB",
        "Sparkscale/Yarn",
        name,
    )
