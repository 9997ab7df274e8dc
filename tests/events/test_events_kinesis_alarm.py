"""A Kinesis iterator-age alarm (alarms.kinesis_alarm_specs) names no JobFlowId: its cluster is read from its
name; one whose name holds no cluster is refused, like any alarm that names none."""

from __future__ import annotations

import json

import pytest
from sparkscale.adapters.discovery import put_alarm_request
from sparkscale.alarms import kinesis_alarm_specs
from sparkscale.config import Config
from sparkscale.errors import BadEvent
from sparkscale.events.alarm import parse_event

CID = "j-KINESIS0001"


def _message(name: str, metrics: list[dict]) -> dict:
    body = {
        "AlarmName": name,
        "NewStateValue": "ALARM",
        "OldStateValue": "OK",
        "Trigger": {"Metrics": metrics},
    }
    sns = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(body)}
    return {"Records": [{"EventSource": "aws:sns", "Sns": sns}]}


def test_the_cluster_comes_from_the_alarm_name():
    (spec,) = kinesis_alarm_specs(Config.from_mapping({"streams": ["orders.v2"]}), CID)
    request = put_alarm_request(spec, ["arn:aws:sns:us-east-1:123456789012:alarms"])
    trigger = parse_event(_message(spec.name, request["Metrics"]), managed_clusters=[CID])
    assert trigger.cluster_id == CID
    assert trigger.metric_name == "GetRecords.IteratorAgeMilliseconds"


def test_an_iterator_age_alarm_without_a_cluster_in_its_name_is_refused():
    (spec,) = kinesis_alarm_specs(Config.from_mapping({"streams": ["orders.v2"]}), CID)
    request = put_alarm_request(spec, [])
    with pytest.raises(BadEvent, match="names no cluster"):
        parse_event(_message("my-own-kinesis-alarm", request["Metrics"]))


def test_an_unmanaged_cluster_in_the_name_is_refused():
    (spec,) = kinesis_alarm_specs(Config.from_mapping({"streams": ["s"]}), "j-OTHER0001")
    request = put_alarm_request(spec, [])
    with pytest.raises(BadEvent, match="not managed"):
        parse_event(_message(spec.name, request["Metrics"]), managed_clusters=[CID])


def test_no_stream_no_alarm_and_each_stream_once():
    assert kinesis_alarm_specs(Config(), CID) == []
    specs = kinesis_alarm_specs(Config.from_mapping({"streams": ["a", "b", "a"]}), CID)
    assert [s.dimensions for s in specs] == [(("StreamName", "a"),), (("StreamName", "b"),)]
