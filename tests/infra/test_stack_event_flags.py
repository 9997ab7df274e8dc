"""The two event feature flags are independent: `spot_events` switches the EC2 spot rules and their Lambda,
`emr_events` the EMR state-change rule and its Lambda. Both on is cdk.json's default (test_stack.py), both off
is test_stack_variants.py; here each one alone, synthesized once per combination."""

from __future__ import annotations

from typing import Any

import pytest
from sparkscale_cdk import names
from sparkscale_cdk.constructs.emr_events import EMR_EVENTS_HANDLER
from sparkscale_cdk.constructs.fanout import FANOUT_HANDLER
from sparkscale_cdk.constructs.scaler import ALARM_HANDLER, RECONCILE_HANDLER
from sparkscale_cdk.constructs.spot_events import EVENTS_HANDLER
from stack_testlib import Synth, as_list, cfn_lint, nag_findings, synth

pytestmark = pytest.mark.slow

SPOT_ONLY = {"spot_events": True, "emr_events": False}
EMR_ONLY = {"spot_events": False, "emr_events": True}


@pytest.fixture(scope="module", params=[SPOT_ONLY, EMR_ONLY], ids=["spot-only", "emr-only"])
def flags(request: pytest.FixtureRequest) -> dict[str, bool]:
    value: dict[str, bool] = request.param
    return value


@pytest.fixture(scope="module")
def s(flags: dict[str, bool], tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth({"sparkscale:features": flags}, outdir=tmp_path_factory.mktemp("cdk.out"))


def _event_sources(s: Synth) -> list[Any]:
    return sorted(
        src
        for p in s.props("AWS::Events::Rule")
        if "EventPattern" in p
        for src in p["EventPattern"]["source"]
    )


def test_settings_carry_the_flags(s: Synth, flags: dict[str, bool]) -> None:
    assert (s.settings.features.spot_events, s.settings.features.emr_events) == (
        flags["spot_events"],
        flags["emr_events"],
    )


def test_each_flag_switches_its_own_rules_and_function_only(s: Synth, flags: dict[str, bool]) -> None:
    a = s.stack.autoscaler
    assert (a.spot_events is not None, a.emr_events is not None) == (
        flags["spot_events"],
        flags["emr_events"],
    )
    expected_handlers = [ALARM_HANDLER, RECONCILE_HANDLER, FANOUT_HANDLER]
    expected_sources = []
    if flags["spot_events"]:
        expected_handlers.append(EVENTS_HANDLER)
        expected_sources += [names.EVENT_SOURCE_EC2, names.EVENT_SOURCE_EC2]  # interruption, rebalance
    if flags["emr_events"]:
        expected_handlers.append(EMR_EVENTS_HANDLER)
        expected_sources.append(names.EVENT_SOURCE_EMR)
    assert sorted(p["Handler"] for p in s.props("AWS::Lambda::Function")) == sorted(expected_handlers)
    assert _event_sources(s) == sorted(expected_sources)


def test_dead_letter_queues_and_their_alarms_follow_the_flags(s: Synth, flags: dict[str, bool]) -> None:
    expected = {"alarm-fn", "reconcile-fn", "alarm-subscription", "schedule", "fanout-queue", "fanout-fn"}
    if flags["spot_events"]:
        expected |= {"events-fn", "spot-rules"}
    if flags["emr_events"]:
        expected |= {"emr-events-fn", "emr-rule"}
    assert set(s.stack.autoscaler.dead_letter_queues) == expected
    assert len(s.props("AWS::SQS::Queue")) == len(expected) + 1 == 9  # the DLQs and the evaluation queue
    dlq_alarms = {p["AlarmName"] for p in s.props("AWS::CloudWatch::Alarm") if "-dlq-" in p["AlarmName"]}
    assert dlq_alarms == {f"{s.settings.config.alarm_prefix}-dlq-{label}" for label in expected}


def test_only_the_spot_events_function_describes_instances(s: Synth, flags: dict[str, bool]) -> None:
    found = [st for _, st in s.policy_statements() if "ec2:DescribeInstances" in as_list(st["Action"])]
    assert len(found) == (1 if flags["spot_events"] else 0)


def test_cfn_lint_finds_no_error_and_no_warning(s: Synth) -> None:
    assert cfn_lint(s.doc) == []


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(s: Synth) -> None:
    assert nag_findings(s.stack) == []
