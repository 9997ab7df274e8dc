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
        "email_notice_kinds": ["failure", "action"],  # also every resize, by email
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


def test_two_email_subscriptions_per_address_alarms_and_the_chosen_notice_kinds(s: Synth) -> None:
    n = s.stack.autoscaler.notifications
    mails = [p for p in s.props("AWS::SNS::Subscription") if p["Protocol"] == "email"]
    for address in EMAILS:
        mine = {json.dumps(p["TopicArn"]): p for p in mails if p["Endpoint"] == address}
        assert set(mine) == {
            json.dumps(s.ref(n.operator_alarm_topic.topic_arn)),
            json.dumps(s.ref(n.operator_topic.topic_arn)),
        }
        alarms = mine[json.dumps(s.ref(n.operator_alarm_topic.topic_arn))]
        notices = mine[json.dumps(s.ref(n.operator_topic.topic_arn))]
        assert "FilterPolicy" not in alarms
        assert notices["FilterPolicy"] == {"kind": ["failure", "action"]}
    assert {"Ref": "OperatorEmail"} in [p["Endpoint"] for p in mails]  # plus the optional parameter's


def test_no_notice_mailed_when_no_kind_is_chosen(tmp_path_factory: pytest.TempPathFactory) -> None:
    context = {**CONTEXT, "sparkscale": {**CONTEXT["sparkscale"], "email_notice_kinds": []}}
    quiet = synth(context, outdir=tmp_path_factory.mktemp("cdk.out"))
    n = quiet.stack.autoscaler.notifications
    topics = {
        json.dumps(p["TopicArn"]) for p in quiet.props("AWS::SNS::Subscription") if p["Protocol"] == "email"
    }
    assert topics == {json.dumps(quiet.ref(n.operator_alarm_topic.topic_arn))}  # alarms still reach people


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
        "fanout-queue",
        "fanout-fn",
    }
    assert [p for p in s.props("AWS::Events::Rule") if "EventPattern" in p] == []
    assert sorted(p["Handler"] for p in s.props("AWS::Lambda::Function")) == [
        "handlers.alarm.handler",
        "handlers.fanout.handler",
        "handlers.reconcile.handler",
    ]


def test_pinned_powertools_version_and_settings_reach_the_functions(s: Synth) -> None:
    path = "/aws/service/powertools/python/arm64/python3.14/3.37.0"
    (key,) = [k for k, v in s.doc["Parameters"].items() if v.get("Default") == path]
    for fn in s.props("AWS::Lambda::Function"):
        assert fn["Layers"] == [{"Ref": key}]
        fanout = fn["Handler"] == "handlers.fanout.handler"  # reserves its maximum concurrency (10)
        assert fn["ReservedConcurrentExecutions"] == (10 if fanout else 2)
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
    assert put["Condition"] == {
        "StringEquals": {
            "cloudwatch:namespace": [names.HEAP_NAMESPACE, names.YARN_NAMESPACE, names.STREAMING_NAMESPACE]
        }
    }


def test_emr_instance_role_gets_the_node_report_policy_of_each_cluster(s: Synth) -> None:
    policies = s.props("AWS::IAM::ManagedPolicy")
    assert len(policies) == len(CLUSTERS)
    assert all(p["Roles"] == ["EMR_EC2_DefaultRole"] for p in policies)
    keys = sorted(
        key
        for p in policies
        for key in p["PolicyDocument"]["Statement"][0]["Condition"]["ForAllValues:StringEquals"][
            "dynamodb:LeadingKeys"
        ]
    )
    assert keys == sorted(f"nodes#{c}" for c in CLUSTERS)


def test_one_dashboard_and_url_output_for_every_cluster(s: Synth) -> None:
    assert [p["DashboardName"] for p in s.props("AWS::CloudWatch::Dashboard")] == ["acme-clusters"]
    assert len([k for k in s.doc["Outputs"] if k.startswith("DashboardUrl")]) == 1


def test_cfn_lint_finds_nothing(s: Synth) -> None:
    assert cfn_lint(s.doc) == []


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(s: Synth) -> None:
    assert nag_findings(s.stack) == []
