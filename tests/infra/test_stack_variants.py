"""The stack with non-default settings (two clusters, emails, the absolute heap alarm, a slower schedule, a
pinned Powertools version, neither spot nor EMR events, retained data, an EMR instance role), synthesized once
for the module."""

from __future__ import annotations

import json

import pytest
from sparkscale.alarms import alarm_specs
from sparkscale_cdk import names
from stack_testlib import Synth, as_list, cfn_lint, nag_findings, synth

pytestmark = pytest.mark.slow

CLUSTERS = ["j-AAAA1111", "j-BBBB2222"]
EMAILS = ["ops@example.com", "oncall@example.com"]
CONTEXT = {
    "sparkscale": {
        "clusters": CLUSTERS,
        "operator_emails": EMAILS,
        "heap_used_alarm_bytes": 21474836480,  # the seed's "JvmHeapUsed > 20 GB"
        "reconcile_rate_s": 180,
        "alarm_prefix": "acme",
        "powertools_layer_version": "3.37.0",
        "reserved_concurrency": 2,
        "lease_ttl_s": 45,
    },
    "sparkscale:features": {"spot_events": False, "emr_events": False, "retain_data": True},
    "sparkscale:stackName": "AcmeSparkscale",
    "sparkscale:emrInstanceRoleName": "EMR_EC2_DefaultRole",
}


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(CONTEXT, outdir=tmp_path_factory.mktemp("cdk.out"))


def test_stack_name_from_context(s: Synth) -> None:
    assert s.stack.stack_name == "AcmeSparkscale"


def test_alarms_for_every_cluster_including_the_absolute_heap_alarm(s: Synth) -> None:
    alarm_names = {p["AlarmName"] for p in s.props("AWS::CloudWatch::Alarm")}
    for cluster in CLUSTERS:
        for spec in alarm_specs(s.settings.config, cluster):
            assert spec.name in alarm_names
        heap_bytes = s.alarm(names.alarm_name("acme", cluster, names.ALARM_KIND_HEAP_BYTES))
        assert (heap_bytes["MetricName"], heap_bytes["Statistic"]) == ("JvmHeapUsed", "Sum")
        assert heap_bytes["Threshold"] == 21474836480
        assert heap_bytes["Dimensions"] == [{"Name": "JobFlowId", "Value": cluster}]
    assert all(n.startswith("acme-") for n in alarm_names)


def test_email_subscription_per_address(s: Synth) -> None:
    endpoints = [p["Endpoint"] for p in s.props("AWS::SNS::Subscription") if p["Protocol"] == "email"]
    assert sorted(e for e in endpoints if isinstance(e, str)) == sorted(EMAILS)
    assert {"Ref": "OperatorEmail"} in endpoints  # plus the optional parameter's, conditional


def test_schedule_rate_in_minutes(s: Synth) -> None:
    (rule,) = [p for p in s.props("AWS::Events::Rule") if "ScheduleExpression" in p]
    assert rule["ScheduleExpression"] == "rate(3 minutes)"


def test_both_event_flags_off_means_no_rules_and_no_events_functions(s: Synth) -> None:
    assert s.stack.autoscaler.spot_events is None
    assert s.stack.autoscaler.emr_events is None
    assert set(s.stack.autoscaler.dead_letter_queues) == {
        "alarm-fn",
        "reconcile-fn",
        "alarm-subscription",
        "schedule",
    }
    assert [p for p in s.props("AWS::Events::Rule") if "EventPattern" in p] == []
    assert sorted(p["Handler"] for p in s.props("AWS::Lambda::Function")) == [
        "handlers.alarm.handler",
        "handlers.reconcile.handler",
    ]


def test_pinned_powertools_version_and_settings_reach_the_functions(s: Synth) -> None:
    path = "/aws/service/powertools/python/arm64/python3.14/3.37.0"
    (key,) = [k for k, v in s.doc["Parameters"].items() if v.get("Default") == path]
    for fn in s.props("AWS::Lambda::Function"):
        assert fn["Layers"] == [{"Ref": key}]
        assert fn["ReservedConcurrentExecutions"] == 2
        assert fn["Timeout"] == 35  # lease 45 s - 10 s margin


def test_emr_statement_lists_both_clusters(s: Synth) -> None:
    for _, st in s.policy_statements():
        if any(a.startswith("elasticmapreduce:") for a in as_list(st["Action"])):
            text = json.dumps(st["Resource"])
            assert ":cluster/j-AAAA1111" in text
            assert ":cluster/j-BBBB2222" in text
            assert len(as_list(st["Resource"])) == 2


def test_retained_table(s: Synth) -> None:
    (table,) = s.resources("AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"


def test_emr_instance_role_reads_the_two_assets_and_publishes_heap_metrics_only(s: Synth) -> None:
    policies = [
        r["Properties"]
        for r in s.resources("AWS::IAM::Policy").values()
        if r["Properties"].get("Roles") == ["EMR_EC2_DefaultRole"]
    ]
    (policy,) = policies
    statements = policy["PolicyDocument"]["Statement"]
    assert len(statements) == 2
    (read,) = [st for st in statements if st["Action"] == "s3:GetObject"]
    objects = json.dumps(read["Resource"])
    assert ".sh" in objects
    assert ".zip" in objects
    assert "*" not in objects
    assert "Condition" not in read
    (put,) = [st for st in statements if st["Action"] == "cloudwatch:PutMetricData"]
    assert put["Resource"] == "*"
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": names.HEAP_NAMESPACE}}


def test_dashboard_and_url_output_per_cluster(s: Synth) -> None:
    assert sorted(p["DashboardName"] for p in s.props("AWS::CloudWatch::Dashboard")) == [
        f"acme-{c}" for c in CLUSTERS
    ]
    assert len([k for k in s.doc["Outputs"] if k.startswith("DashboardUrl")]) == 2


def test_cfn_lint_finds_nothing(s: Synth) -> None:
    assert cfn_lint(s.doc) == []


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(s: Synth) -> None:
    assert nag_findings(s.stack) == []
