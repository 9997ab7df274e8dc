"""The discovery part of the stack: its Lambda and rules, IAM scoped by the opt-in tag (with the documented
ModifyInstanceGroups deny), alarm writes only on the prefix's alarms, a stack with no listed cluster, and
cdk-nag and cfn-lint clean. Resources are found through the constructs, never by logical ID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sparkscale.config import ConfigError
from sparkscale_cdk import names
from sparkscale_cdk.constructs.discovery import DISCOVERY_HANDLER, ClusterDiscovery
from sparkscale_cdk.wiring import cdk_json_context

from tests.infra.stack_testlib import Synth, as_list, cfn_lint, nag_findings, synth

pytestmark = pytest.mark.slow


def _context(**settings: Any) -> dict[str, Any]:
    """cdk.json's context with the discovery feature on and these settings."""
    ctx = dict(cdk_json_context())
    ctx["sparkscale"] = {**ctx["sparkscale"], **settings}
    ctx["sparkscale:features"] = {**ctx["sparkscale:features"], "discovery": True}
    return ctx


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(_context(clusters=[]), outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def disc(s: Synth) -> ClusterDiscovery:
    found = s.stack.autoscaler.discovery
    assert found is not None
    return found


def _statements(s: Synth, fn: Any) -> list[dict[str, Any]]:
    return s.role_statements(fn.role)


def test_a_stack_may_list_no_cluster_when_discovery_is_on(s: Synth, tmp_path: Path) -> None:
    assert s.props("AWS::CloudWatch::Alarm")  # the DLQ alarms only
    assert all("-dlq-" in p["AlarmName"] for p in s.props("AWS::CloudWatch::Alarm"))
    ctx = _context(clusters=[])
    ctx["sparkscale:features"] = {**ctx["sparkscale:features"], "discovery": False}
    with pytest.raises(ConfigError, match="manage clusters by tag"):
        synth(ctx, outdir=tmp_path)


def test_the_function_knows_the_alarm_topic_and_runs_alone(s: Synth, disc: ClusterDiscovery) -> None:
    fn = s.function(DISCOVERY_HANDLER)
    env = fn["Environment"]["Variables"]
    assert env[names.ENV_ALARM_TOPIC_ARN] == s.ref(s.stack.autoscaler.notifications.alarm_topic.topic_arn)
    assert env[names.ENV_HEAP_ALARMS] == "true"
    assert fn["ReservedConcurrentExecutions"] == 1
    assert fn["Timeout"] == 300


def test_rules_every_cluster_state_change_and_the_sweep(s: Synth, disc: ClusterDiscovery) -> None:
    fn_arn = s.ref(disc.handler.function.function_arn)
    rules = [p for p in s.props("AWS::Events::Rule") if any(t["Arn"] == fn_arn for t in p.get("Targets", []))]
    patterns = [r["EventPattern"] for r in rules if "EventPattern" in r]
    assert patterns == [
        {
            "source": [names.EVENT_SOURCE_EMR],
            "detail-type": [names.DETAIL_EMR_CLUSTER_STATE_CHANGE],
            "detail": {"state": [*names.EMR_ACTIVE_STATES, *names.EMR_ENDED_STATES]},
        }
    ]
    assert [r["ScheduleExpression"] for r in rules if "ScheduleExpression" in r] == ["rate(2 minutes)"]


def test_discovery_lists_clusters_reads_tags_and_writes_only_the_prefix_alarms(
    s: Synth, disc: ClusterDiscovery
) -> None:
    sts = _statements(s, disc.handler.function)
    by_action = {a: st for st in sts for a in as_list(st["Action"])}
    assert by_action["elasticmapreduce:ListClusters"]["Resource"] == "*"
    assert "cluster/*" in json.dumps(by_action["elasticmapreduce:DescribeCluster"]["Resource"])
    for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"):
        assert ":alarm:sparkscale-*" in json.dumps(by_action[action]["Resource"]), action


def test_scaling_is_allowed_only_on_tagged_clusters_and_never_without_a_cluster(s: Synth) -> None:
    alarm_fn = s.stack.autoscaler.scaler.alarm.function
    sts = _statements(s, alarm_fn)
    (tagged,) = [
        st
        for st in sts
        if st["Effect"] == "Allow" and "elasticmapreduce:ModifyInstanceGroups" in as_list(st["Action"])
    ]
    assert tagged["Condition"] == {"StringEquals": {"aws:ResourceTag/sparkscale:managed": "true"}}
    (deny,) = [st for st in sts if st["Effect"] == "Deny"]
    assert deny["Action"] == "elasticmapreduce:ModifyInstanceGroups"
    assert deny["NotResource"] == "arn:*:elasticmapreduce:*:*:cluster/*"


def test_cdk_nag_and_cfn_lint_find_nothing(s: Synth) -> None:
    assert nag_findings(s.stack) == []
    assert cfn_lint(s.doc) == []
