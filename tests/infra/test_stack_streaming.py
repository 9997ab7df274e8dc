"""The stack of a streaming cluster (`streams` set): one iterator-age alarm per Kinesis stream, metric math
on GetRecords.IteratorAgeMilliseconds that wakes the scaler when the age keeps rising; cfn-lint and cdk-nag
find nothing. Synthesized once for the module."""

from __future__ import annotations

import json

import pytest
from sparkscale import names
from sparkscale.alarms import kinesis_age_expression
from sparkscale.events.alarm import parse_event
from stack_testlib import Synth, cfn_lint, nag_findings, synth

pytestmark = pytest.mark.slow

CLUSTER = "j-STREAM0001"
STREAMS = ["orders.v2", "clicks-eu"]
CONTEXT = {
    "sparkscale": {
        "clusters": [CLUSTER],
        "streams": STREAMS,
        "streaming_iterator_age_rising_minutes": 4,
        "streaming_caught_up_iterator_age_s": 30,
    },
}


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(CONTEXT, outdir=tmp_path_factory.mktemp("cdk.out"))


def _kinesis_alarms(s: Synth) -> dict[str, dict]:
    return {
        p["AlarmName"]: p
        for p in s.props("AWS::CloudWatch::Alarm")
        if names.ALARM_KIND_KINESIS_AGE in p.get("AlarmName", "")
    }


def test_one_rising_age_alarm_per_stream_wakes_the_scaler(s: Synth) -> None:
    alarms = _kinesis_alarms(s)
    prefix = s.settings.config.alarm_prefix
    assert set(alarms) == {
        names.alarm_name(prefix, CLUSTER, f"{names.ALARM_KIND_KINESIS_AGE}-{stream}") for stream in STREAMS
    }
    alarm_topic = s.ref(s.stack.autoscaler.notifications.alarm_topic.topic_arn)
    for stream in STREAMS:
        a = alarms[names.alarm_name(prefix, CLUSTER, f"{names.ALARM_KIND_KINESIS_AGE}-{stream}")]
        # 4 rising minutes in a row, 60 s periods: every one must breach
        assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (4, 4)
        assert (a["ComparisonOperator"], a["Threshold"]) == ("GreaterThanThreshold", 0)
        assert a["TreatMissingData"] == "notBreaching"
        assert a["AlarmActions"] == [alarm_topic]  # a wake-up call, not a page
        assert a["OKActions"] == [alarm_topic]
        assert "MetricName" not in a  # metric math only
        expression, metric = a["Metrics"]
        # the age's rate of change while above the 30 s caught-up age
        assert expression["Expression"] == "IF(age > 30000, RATE(age), 0)"
        assert expression["ReturnData"] is True
        assert metric["Id"] == "age"
        assert metric["ReturnData"] is False
        assert metric["MetricStat"] == {
            "Metric": {
                "Namespace": "AWS/Kinesis",
                "MetricName": "GetRecords.IteratorAgeMilliseconds",
                "Dimensions": [{"Name": "StreamName", "Value": stream}],
            },
            "Period": 60,
            "Stat": "Maximum",
        }


def test_its_state_change_wakes_the_scaler_for_the_cluster_in_its_name(s: Synth) -> None:
    """The metric names no JobFlowId: the alarm parser finds the cluster in the alarm's name."""
    name = next(iter(_kinesis_alarms(s)))
    a = _kinesis_alarms(s)[name]
    message = {
        "AlarmName": name,
        "NewStateValue": "ALARM",
        "OldStateValue": "OK",
        "Trigger": {
            "Metrics": [
                {"Id": m["Id"], "MetricStat": m["MetricStat"]} if "MetricStat" in m else {"Id": m["Id"]}
                for m in a["Metrics"]
            ]
        },
    }
    sns = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(message)}
    event = {"Records": [{"EventSource": "aws:sns", "Sns": sns}]}
    trigger = parse_event(event, managed_clusters=[CLUSTER])
    assert trigger.cluster_id == CLUSTER
    assert trigger.namespace == names.KINESIS_NAMESPACE


def test_expression_follows_the_caught_up_age(s: Synth) -> None:
    assert kinesis_age_expression(s.settings.config) == "IF(age > 30000, RATE(age), 0)"


def test_cfn_lint_finds_nothing(s: Synth) -> None:
    assert cfn_lint(s.doc) == []


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(s: Synth) -> None:
    assert nag_findings(s.stack) == []
