"""The parsers are total and linear (issue #18 items 4 and 5), case by case: the input classes the attacker of
the issue found, each a BadEvent with one reason, and every pattern applied to input timed on 256 KB."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sparkscale import events, names
from sparkscale.errors import BadEvent
from sparkscale.events import alarm, emr
from sparkscale.events.envelope import Origin, parse_envelope, parse_event_time, quote
from sparkscale.events.jsontext import MAX_JSON_DEPTH, json_depth_exceeds, load_json

from tests.scale.shell_support import fixture

KB256 = 256 * 1024
TIME_BOUND_S = 1.0  # linear work on 256 KB takes milliseconds; the quadratic pattern took 30 s
HOME = Origin(account="123456789012", region="us-east-1")
NOW = datetime(2026, 3, 2, 12, 1, tzinfo=UTC)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    with contextlib.suppress(BadEvent):
        fn()
    return time.perf_counter() - t0


def _sns(message: Any) -> dict[str, Any]:
    ev = fixture("sns/emr-alarm-sns-single-metric.json")
    ev["Records"][0]["Sns"]["Message"] = message if isinstance(message, str) else json.dumps(message)
    return ev


def _body() -> dict[str, Any]:
    return json.loads(fixture("sns/emr-alarm-sns-single-metric.json")["Records"][0]["Sns"]["Message"])


def _group_event(message: str) -> dict[str, Any]:
    ev = fixture("eventbridge/EMR_Instance_Group_State_Change_arrested.json")
    ev["detail"]["message"] = message
    ev["detail"]["state"] = "RESIZING"  # so the message alone decides
    return ev


# --- linear time on 256 KB ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        "was arrested at " * (KB256 // 16),  # the issue's: every occurrence used to rescan the rest
        "Instance group ig-1 was arrested at " + "x" * KB256,
        "is stuck for the following reaso" * (KB256 // 32),
        "insufficient" + " _-" * (KB256 // 3),
        "not enough " * (KB256 // 11),
        "no " * (KB256 // 3),
    ],
    ids=[
        "arrested-at-repeated",
        "arrested-no-reason",
        "stuck-almost",
        "capacity-separators",
        "not-enough",
        "no",
    ],
)
def test_every_pattern_on_an_emr_message_is_linear(message: str) -> None:
    assert len(message) >= KB256 - 64
    took = _timed(lambda: emr.parse_emr_event(_group_event(message)))
    assert took < TIME_BOUND_S, f"{took:.2f} s"


def test_the_arrested_reason_is_still_found_after_256_kb() -> None:
    message = "was arrested at " * (KB256 // 16) + "12:00 for the following reason: Throttled by EC2."
    assert emr.arrested_reason(message) == "Throttled by EC2"
    assert emr.arrested_reason("Instance group ig-1 was arrested at noon.") is None  # no reason marker
    assert emr.stuck_reason("... is stuck for the following reason: No spot capacity.") == "No spot capacity"


@pytest.mark.parametrize(
    "text",
    [
        "[" * KB256,
        '"\\' * (KB256 // 2),  # an unterminated string of escapes
        '["' + '\\"' * (KB256 // 2) + '"]',
        '{"a":' * (KB256 // 5),
        " " * KB256,
        "[]" * (KB256 // 2),  # the worst case of the scan: every character a bracket, never too deep
        '"' + "[" * KB256,  # an unclosed string
    ],
    ids=["brackets", "open-escapes", "escaped-quotes", "objects", "blank", "balanced", "unclosed"],
)
def test_json_text_is_checked_in_linear_time_and_never_recurses(text: str) -> None:
    took = _timed(lambda: alarm.parse_event(_sns(text)))
    assert took < TIME_BOUND_S, f"{took:.2f} s"


def test_the_depth_scan_ignores_brackets_inside_strings() -> None:
    assert not json_depth_exceeds(json.dumps({"a": "[" * 100}), MAX_JSON_DEPTH)
    assert not json_depth_exceeds(json.dumps({"a": '\\"[[[[[' * 50}), MAX_JSON_DEPTH)
    assert json_depth_exceeds("[" * (MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)
    assert not json_depth_exceeds("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[" * 100_000, "nests deeper than 20 levels"),  # was RecursionError
        ("1" * 5_000, r"is not usable JSON \(ValueError\)"),  # more than 4,300 digits: was ValueError
        ("x" * (2 * KB256 + 1), "is too large"),
        ("{", "is not JSON"),
    ],
)
def test_load_json_turns_every_failure_into_one_reason(text: str, why: str) -> None:
    with pytest.raises(BadEvent, match=why):
        load_json(text, what="SNS Message", max_chars=2 * KB256)


# --- types at every level -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "metrics",
    [
        [{"MetricStat": {"Metric": "not an object"}}],  # was AttributeError
        [{"MetricStat": {"Metric": ["a", "list"]}}],
        [{"MetricStat": 5}],
        ["text"],
        [{"MetricStat": {"Metric": {"Namespace": ["AWS/ElasticMapReduce"], "Dimensions": 7}}}],
    ],
)
def test_wrong_types_in_metric_math_are_a_reason(metrics: Any) -> None:
    body = _body()
    body["Trigger"] = {"Metrics": metrics}
    with pytest.raises(BadEvent):
        alarm.parse_event(_sns(body))


@pytest.mark.parametrize(
    "metrics",
    ["a string", 5, {"metricStat": {}}, [{"metricStat": "x"}], [{"metricStat": {"metric": [1]}}], [None]],
)
def test_wrong_types_in_eventbridge_metrics_are_a_reason(metrics: Any) -> None:
    ev = fixture("eventbridge/emr-alarm-state-change-single-metric.json")
    ev["detail"]["configuration"]["metrics"] = metrics  # was TypeError / AttributeError
    with pytest.raises(BadEvent, match="has no metric in its configuration"):
        alarm.parse_event(ev)


def test_a_deeply_nested_value_is_quoted_by_its_type_not_recursed_into() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    ev = fixture("eventbridge/EMR_Cluster_State_Change_TERMINATED.json")
    ev["detail"]["clusterId"] = deep
    with pytest.raises(BadEvent, match=r"bad clusterId '<list>'"):
        emr.parse_emr_event(ev)
    assert quote(10**5000) == "<a 16610-bit int>"


# --- dates ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+14:00",  # the OverflowError
        "9999-12-31T23:59:59-14:00",
        "2026-03-02T12:00:00",  # naive
        "1970-01-01T00:00:00Z",
        "2999-01-01T00:00:00Z",
        "2026-02-30T12:00:00Z",
        "x" * 65,
    ],
)
def test_out_of_range_event_times_are_rejected(raw: str) -> None:
    assert parse_event_time(raw) is None
    ev = fixture("eventbridge/EC2_Spot_Instance_Interruption_Warning.json")
    ev["time"] = raw
    with pytest.raises(BadEvent, match="bad time"):
        parse_envelope(ev)


def test_an_emr_event_dated_in_the_future_is_rejected_and_one_of_2016_is_still_true() -> None:
    ev = fixture("eventbridge/EMR_Cluster_State_Change_TERMINATED.json")
    ev["time"] = (NOW + timedelta(seconds=events.MAX_AHEAD_S + 1)).isoformat()
    with pytest.raises(BadEvent, match="in the future"):
        events.parse_eventbridge(ev, family=events.FAMILY_EMR, now=NOW)
    ev["time"] = "2016-12-16T21:05:12Z"  # a terminated cluster stays terminated: no max age
    assert (
        events.parse_eventbridge(ev, family=events.FAMILY_EMR, now=NOW).kind
        is emr.EmrEventKind.CLUSTER_TERMINATED
    )


@pytest.mark.parametrize(
    ("path", "max_age_s"),
    [
        ("eventbridge/EC2_Spot_Instance_Interruption_Warning.json", 120),
        ("eventbridge/EC2_Instance_Rebalance_Recommendation.json", 600),
    ],
)
def test_spot_events_have_a_window(path: str, max_age_s: int) -> None:
    ev = fixture(path)  # dated 2026-03-02T12:00:00Z
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    events.parse_eventbridge(ev, family=events.FAMILY_SPOT, now=at + timedelta(seconds=max_age_s))
    with pytest.raises(BadEvent, match=f"more than {max_age_s} s"):
        events.parse_eventbridge(ev, family=events.FAMILY_SPOT, now=at + timedelta(seconds=max_age_s + 1))
    events.parse_eventbridge(ev, family=events.FAMILY_SPOT, now=at - timedelta(seconds=events.MAX_AHEAD_S))
    with pytest.raises(BadEvent, match="in the future"):
        events.parse_eventbridge(ev, family=events.FAMILY_SPOT, now=at - timedelta(seconds=61))


# --- whose alarm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arn", "why"),
    [
        ("arn:aws:cloudwatch:us-east-1:999999999999:alarm:x", "in account 999999999999 region us-east-1"),
        ("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:x", "in account 123456789012 region eu-west-1"),
        ("arn:aws:sns:us-east-1:123456789012:x", "has no CloudWatch alarm ARN"),
        (None, "has no CloudWatch alarm ARN"),
        (["arn"], "has no CloudWatch alarm ARN"),
    ],
)
def test_an_alarm_of_another_account_or_region_is_rejected(arn: Any, why: str) -> None:
    body = _body()
    body["AlarmArn"] = arn
    with pytest.raises(BadEvent, match=why) as err:
        alarm.parse_event(_sns(body), origin=HOME)
    assert err.value.cluster_id is None  # a foreign alarm's cluster id is not ours to count under
    assert alarm.parse_event(_sns(_body()), origin=HOME).cluster_id == "j-2AXXXXXXGAPLF"


def test_an_eventbridge_alarm_of_another_account_is_rejected() -> None:
    ev = fixture("eventbridge/emr-alarm-state-change-single-metric.json")
    assert alarm.parse_event(ev, origin=HOME).cluster_id == "j-2AXXXXXXGAPLF"
    ev["account"] = "999999999999"
    with pytest.raises(BadEvent, match="in account 999999999999 region us-east-1, not this deployment's"):
        alarm.parse_event(ev, origin=HOME)


def test_the_origin_comes_from_the_function_arn() -> None:
    from handlers.common import origin_of

    from tests.scale.shell_support import FakeLambdaContext

    assert origin_of(FakeLambdaContext()) == HOME
    assert origin_of(FakeLambdaContext(invoked_function_arn="nonsense")) is None
    assert origin_of(None) is None
    assert names.SERVICE_NAME  # the handlers' logger name the property suite listens to
