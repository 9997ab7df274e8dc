"""The synthesized stack with cdk.json's own context (what `make synth` deploys), one concern per test.

Synthesized once for the module (jsii start-up is slow). Expected values come from the same sources the stack
reads (cdk.json's context → Config, sparkscale.alarms.alarm_specs), never from generated logical IDs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from aws_cdk import aws_lambda as lambda_
from sparkscale.alarms import AlarmSpec, alarm_specs
from sparkscale.config import Config
from sparkscale.config_io import from_cdk_context
from sparkscale_cdk import names
from sparkscale_cdk.constructs.clusters import UNSCOPED_ACTIONS
from sparkscale_cdk.constructs.emr_events import EMR_EVENTS_HANDLER
from sparkscale_cdk.constructs.fanout import FANOUT_HANDLER
from sparkscale_cdk.constructs.function import powertools_parameter_name
from sparkscale_cdk.constructs.scaler import ALARM_HANDLER, RECONCILE_HANDLER
from sparkscale_cdk.constructs.spot_events import EVENTS_HANDLER
from sparkscale_cdk.wiring import cdk_json_context
from stack_testlib import Synth, as_list, cfn_lint, nag_findings, synth

pytestmark = pytest.mark.slow

HANDLERS = (ALARM_HANDLER, RECONCILE_HANDLER, FANOUT_HANDLER, EVENTS_HANDLER, EMR_EVENTS_HANDLER)


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def config() -> Config:
    return from_cdk_context(cdk_json_context())


@pytest.fixture(scope="module")
def specs(config: Config) -> list[AlarmSpec]:
    return [spec for cluster in config.clusters for spec in alarm_specs(config, cluster)]


# --- alarms -------------------------------------------------------------------------------------------------
def test_cdk_json_manages_the_example_cluster(config: Config) -> None:
    assert config.clusters == ["j-EXAMPLE12345"]


def test_every_single_metric_alarm_matches_its_spec(s: Synth, specs: list[AlarmSpec]) -> None:
    checked = 0
    for spec in specs:
        if spec.is_math:
            continue
        a = s.alarm(spec.name)
        assert a["Namespace"] == spec.namespace
        assert a["MetricName"] == spec.metric_name
        assert a["Statistic"] == spec.statistic
        assert a["Dimensions"] == [{"Name": "JobFlowId", "Value": spec.cluster_id}]
        assert a["Period"] == spec.period_s
        assert a["Threshold"] == spec.threshold
        assert a["ComparisonOperator"] == spec.comparison
        assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (
            spec.evaluation_periods,
            spec.datapoints_to_alarm,
        )
        assert a["TreatMissingData"] == spec.treat_missing_data
        checked += 1
    assert checked >= 5  # TotalLoad, YARN memory, pending ratio, idle, heap silent


def test_emr_alarms_read_emr_metrics_every_300_s(s: Synth, specs: list[AlarmSpec]) -> None:
    emr = {spec.metric_name: s.alarm(spec.name) for spec in specs if spec.namespace == names.EMR_NAMESPACE}
    assert set(emr) == {"TotalLoad", "YARNMemoryAvailablePercentage", "ContainerPendingRatio", "IsIdle"}
    assert {a["Namespace"] for a in emr.values()} == {"AWS/ElasticMapReduce"}
    assert {a["Period"] for a in emr.values()} == {300}
    assert emr["TotalLoad"]["Threshold"] == Config().total_load_alarm_threshold
    assert emr["YARNMemoryAvailablePercentage"]["Threshold"] == pytest.approx(3.745)  # 100 - 93 * 1.035


def test_every_heap_math_alarm_matches_its_spec(s: Synth, specs: list[AlarmSpec]) -> None:
    math_specs = [spec for spec in specs if spec.is_math]
    assert {spec.kind for spec in math_specs} == {names.ALARM_KIND_HEAP_PCT, names.ALARM_KIND_HEAP_CRITICAL}
    for spec in math_specs:
        a = s.alarm(spec.name)
        assert "MetricName" not in a
        assert "Period" not in a
        queries = {q["Id"]: q for q in a["Metrics"]}
        expr = queries.pop(spec.expression_id)
        assert (expr["Expression"], expr["ReturnData"]) == (spec.expression, True)
        assert set(queries) == {m.id for m in spec.metrics}
        for m in spec.metrics:
            stat = queries[m.id]["MetricStat"]
            assert queries[m.id]["ReturnData"] is False
            assert stat["Metric"] == {
                "Namespace": "Sparkscale/SparkHeap",
                "MetricName": m.metric_name,
                "Dimensions": [{"Name": "JobFlowId", "Value": spec.cluster_id}],
            }
            assert (stat["Period"], stat["Stat"]) == (60, m.statistic)
        assert (a["Threshold"], a["ComparisonOperator"]) == (spec.threshold, spec.comparison)
        assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (
            spec.evaluation_periods,
            spec.datapoints_to_alarm,
        )


def test_heap_pct_threshold_is_target_plus_deadband(s: Synth, config: Config) -> None:
    a = s.alarm(names.alarm_name(config.alarm_prefix, config.clusters[0], names.ALARM_KIND_HEAP_PCT))
    assert a["Threshold"] == pytest.approx(config.heap_used_target_pct * (1 + config.deadband_pct / 100))


def test_heap_silent_alarm_breaches_on_missing_data(s: Synth, config: Config) -> None:
    a = s.alarm(names.alarm_name(config.alarm_prefix, config.clusters[0], names.ALARM_KIND_HEAP_MISSING))
    assert a["TreatMissingData"] == "breaching"
    assert a["Namespace"] == names.HEAP_NAMESPACE


def test_no_alarm_beyond_the_specs_and_the_dlq_alarms(
    s: Synth, specs: list[AlarmSpec], config: Config
) -> None:
    alarm_names = {p["AlarmName"] for p in s.props("AWS::CloudWatch::Alarm")}
    dlq = {n for n in alarm_names if n.startswith(f"{config.alarm_prefix}-dlq-")}
    assert alarm_names - dlq == {spec.name for spec in specs}
    assert len(dlq) == 10  # 5 function DLQs, subscription, schedule, evaluation queue, spot rules, EMR rule
    assert all(n.startswith(f"{config.alarm_prefix}-") for n in alarm_names)  # the topic policies need it


def test_alarm_and_ok_actions_wake_the_scaler_and_reach_operators_when_flagged(
    s: Synth, specs: list[AlarmSpec]
) -> None:
    n = s.stack.autoscaler.notifications
    alarm_topic = s.ref(n.alarm_topic.topic_arn)
    people = s.ref(n.operator_alarm_topic.topic_arn)
    for spec in specs:
        a = s.alarm(spec.name)
        # ALARM reaches people when flagged; OK only wakes the scaler (the recovery stays out of the inbox)
        assert a["AlarmActions"] == ([alarm_topic, people] if spec.to_operators else [alarm_topic]), spec.name
        assert a["OKActions"] == [alarm_topic], spec.name
        assert a["ActionsEnabled"] is True


def test_dlq_alarms_go_to_operators_only(s: Synth, config: Config) -> None:
    people = s.ref(s.stack.autoscaler.notifications.operator_alarm_topic.topic_arn)
    for p in s.props("AWS::CloudWatch::Alarm"):
        if p["AlarmName"].startswith(f"{config.alarm_prefix}-dlq-"):
            assert p["AlarmActions"] == [people]
            assert "OKActions" not in p
            assert (p["Namespace"], p["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")


# --- functions ----------------------------------------------------------------------------------------------
def test_four_functions_with_the_agreed_entry_points(s: Synth) -> None:
    assert sorted(p["Handler"] for p in s.props("AWS::Lambda::Function")) == sorted(HANDLERS)


def test_functions_use_the_newest_python_runtime_on_arm64(s: Synth) -> None:
    offered = [getattr(lambda_.Runtime, n).name for n in dir(lambda_.Runtime) if n.startswith("PYTHON_3_")]
    newest = max(offered, key=lambda name: tuple(int(x) for x in name.removeprefix("python").split(".")))
    for handler in HANDLERS:
        fn = s.function(handler)
        assert fn["Runtime"] == newest == "python3.14"
        assert fn["Architectures"] == ["arm64"]


def test_powertools_layer_resolved_from_public_ssm_parameter_at_deploy_time(s: Synth, config: Config) -> None:
    path = powertools_parameter_name(version=config.powertools_layer_version)
    assert path == "/aws/service/powertools/python/arm64/python3.14/latest"
    params = {k: v for k, v in s.doc["Parameters"].items() if v.get("Default") == path}
    assert len(params) == 1
    ((key, param),) = params.items()
    assert param["Type"] == "AWS::SSM::Parameter::Value<String>"
    for handler in HANDLERS:
        assert s.function(handler)["Layers"] == [{"Ref": key}]


def test_reserved_concurrency_memory_and_timeout_inside_the_lease(s: Synth, config: Config) -> None:
    for handler in HANDLERS:
        fn = s.function(handler)
        expected = config.fanout_max_concurrency if handler == FANOUT_HANDLER else config.reserved_concurrency
        assert fn["ReservedConcurrentExecutions"] == expected
        assert fn["MemorySize"] == 256
        assert 0 < fn["Timeout"] < config.lease_ttl_s
        assert fn["Timeout"] == s.settings.handler_timeout_s


def test_environment_of_every_function(s: Synth, config: Config) -> None:
    a = s.stack.autoscaler
    dry_run_param = s.ref(s.stack.node.find_child("DryRun").value_as_string)  # type: ignore[attr-defined]
    for handler in HANDLERS:
        env = s.function(handler)["Environment"]["Variables"]
        assert Config.from_json(env[names.ENV_CONFIG_JSON]) == config
        assert env[names.ENV_TABLE_NAME] == s.ref(a.state.table.table_name)
        assert env[names.ENV_OPERATOR_TOPIC_ARN] == s.ref(a.notifications.operator_topic.topic_arn)
        assert env[names.ENV_ALARM_PREFIX] == config.alarm_prefix
        assert env[names.ENV_DRY_RUN] == dry_run_param
        assert env[names.ENV_POWERTOOLS_SERVICE_NAME] == "sparkscale"
        assert env[names.ENV_POWERTOOLS_METRICS_NAMESPACE] == names.SCALER_NAMESPACE


def test_dry_run_parameter_defaults_to_false(s: Synth) -> None:
    assert s.doc["Parameters"]["DryRun"]["Default"] == "false"
    assert s.doc["Parameters"]["DryRun"]["AllowedValues"] == ["false", "true"]


def test_async_invocations_retry_then_go_to_each_functions_dlq(s: Synth) -> None:
    configs = s.props("AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 5
    assert {(c["MaximumRetryAttempts"], c["MaximumEventAgeInSeconds"]) for c in configs} == {(2, 300)}
    for fn in s.stack.autoscaler.functions:
        props = s.function(fn.function.node.default_child.handler)  # type: ignore[union-attr]
        assert props["DeadLetterConfig"]["TargetArn"] == s.ref(fn.dead_letter_queue.queue_arn)


def test_code_asset_is_the_lambdas_folder_with_the_replay_engine_only(s: Synth) -> None:
    code = s.function(ALARM_HANDLER)["Code"]
    assert set(code) == {"S3Bucket", "S3Key"}  # a plain S3 asset: no Docker bundling
    staged = [d for d in s.outdir.glob("asset.*") if (d / "sparkscale" / "names.py").is_file()]
    assert len(staged) == 1
    (asset,) = staged
    assert (asset / "handlers").is_dir()
    assert (asset / "sparkscale" / "config.py").is_file()
    assert not (asset / "sparkscale" / "replay").exists()
    # The weekly digest compares each cluster's week with the savings report's own code, so the replay
    # engine it needs travels beside `sparkscale` (lambda_asset.py); the CLI, the demo and the plots do not.
    tools = asset / "sparkscale_tools"
    assert (tools / "replay" / "savings.py").is_file()
    assert (tools / "replay" / "engine.py").is_file()
    assert sorted(p.name for p in tools.iterdir()) == ["__init__.py", "replay"]
    for absent in ("cli.py", "outputs.py", "progress.py", "streaming.py", "streaming_cli.py", "synthetic.py"):
        assert not (tools / "replay" / absent).exists(), absent
    assert not list(asset.rglob("__pycache__"))
    assert not list(asset.glob("*.egg-info"))


# --- triggers -----------------------------------------------------------------------------------------------
def test_alarm_topic_invokes_alarm_function_with_its_own_dlq(s: Synth) -> None:
    a = s.stack.autoscaler
    subs = [p for p in s.props("AWS::SNS::Subscription") if p["Protocol"] == "lambda"]
    assert len(subs) == 1
    (sub,) = subs
    assert sub["TopicArn"] == s.ref(a.notifications.alarm_topic.topic_arn)
    assert sub["Endpoint"] == s.ref(a.scaler.alarm.function.function_arn)
    assert sub["RedrivePolicy"] == {"deadLetterTargetArn": s.ref(a.scaler.subscription_dlq.queue_arn)}


def test_reconcile_schedule_at_the_configured_rate(s: Synth, config: Config) -> None:
    a = s.stack.autoscaler
    rules = [p for p in s.props("AWS::Events::Rule") if "ScheduleExpression" in p]
    assert len(rules) == 1
    (rule,) = rules
    assert config.reconcile_rate_s == 120
    assert rule["ScheduleExpression"] == "rate(2 minutes)"
    (target,) = rule["Targets"]
    assert target["Arn"] == s.ref(a.scaler.reconcile.function.function_arn)
    assert target["DeadLetterConfig"] == {"Arn": s.ref(a.scaler.schedule_dlq.queue_arn)}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2


def test_spot_interruption_and_rebalance_rules_target_the_events_function(s: Synth) -> None:
    a = s.stack.autoscaler
    assert a.spot_events is not None
    patterns = {}
    for p in s.props("AWS::Events::Rule"):
        if "EventPattern" in p and p["EventPattern"]["source"] == ["aws.ec2"]:
            (target,) = p["Targets"]
            assert target["Arn"] == s.ref(a.spot_events.handler.function.function_arn)
            assert target["DeadLetterConfig"] == {"Arn": s.ref(a.spot_events.rule_dlq.queue_arn)}
            (detail_type,) = p["EventPattern"]["detail-type"]
            patterns[detail_type] = p["EventPattern"]["source"]
    assert patterns == {
        names.DETAIL_SPOT_INTERRUPTION: [names.EVENT_SOURCE_EC2],
        names.DETAIL_REBALANCE_RECOMMENDATION: [names.EVENT_SOURCE_EC2],
    }
    assert names.DETAIL_SPOT_INTERRUPTION == "EC2 Spot Instance Interruption Warning"  # AWS's spelling


def test_optional_operator_email_parameter_subscribes_conditionally(s: Synth) -> None:
    n = s.stack.autoscaler.notifications
    mails = [
        r for r in s.resources("AWS::SNS::Subscription").values() if r["Properties"]["Protocol"] == "email"
    ]
    # cdk.json lists no address: only the parameter's two subscriptions, the alarms and the filtered notices
    by_topic = {json.dumps(r["Properties"]["TopicArn"], sort_keys=True): r for r in mails}
    assert len(mails) == 2
    alarms = by_topic[json.dumps(s.ref(n.operator_alarm_topic.topic_arn), sort_keys=True)]
    notices = by_topic[json.dumps(s.ref(n.operator_topic.topic_arn), sort_keys=True)]
    for sub in (alarms, notices):
        assert sub["Properties"]["Endpoint"] == {"Ref": "OperatorEmail"}
        assert sub["Condition"] in s.doc["Conditions"]
    assert "FilterPolicy" not in alarms["Properties"]
    assert notices["Properties"]["FilterPolicy"] == {"kind": list(names.NOTICE_KINDS_EMAILED_BY_DEFAULT)}


# --- IAM least privilege ------------------------------------------------------------------------------------
def test_no_iam_statement_has_a_wildcard_action(s: Synth) -> None:
    for key, st in s.policy_statements():
        for action in as_list(st["Action"]):
            assert "*" not in action, f"{key}: {action}"


def test_star_resources_only_for_actions_without_resource_types(s: Synth) -> None:
    allowed = set(UNSCOPED_ACTIONS)
    assert allowed == {"ec2:DescribeSpotPriceHistory", "ec2:DescribeInstances", "cloudwatch:GetMetricData"}
    seen: set[str] = set()
    for key, st in s.policy_statements():
        if "*" in as_list(st["Resource"]):
            assert set(as_list(st["Action"])) <= allowed, key
            seen |= set(as_list(st["Action"]))
    assert seen == allowed


def test_emr_actions_only_on_managed_cluster_arns(s: Synth, config: Config) -> None:
    expected = [
        s.ref(s.stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name=c))
        for c in config.clusters
    ]
    statements = [
        st for _, st in s.policy_statements() if any("elasticmapreduce:" in a for a in as_list(st["Action"]))
    ]
    assert len(statements) == 5  # alarm, reconcile, fanout, spot events, EMR events
    for st in statements:
        assert as_list(st["Resource"]) == expected
        assert ":cluster/j-EXAMPLE12345" in json.dumps(st["Resource"])


def test_events_function_gets_only_the_ec2_and_emr_actions_it_needs(s: Synth) -> None:
    a = s.stack.autoscaler
    assert a.spot_events is not None
    actions = {
        act
        for st in s.role_statements(a.spot_events.handler.role)
        for act in as_list(st["Action"])
        if act.split(":")[0] in ("ec2", "elasticmapreduce")
    }
    assert actions == {
        "ec2:DescribeSpotPriceHistory",
        "ec2:DescribeInstances",
        "elasticmapreduce:ListInstances",
        "elasticmapreduce:ListInstanceGroups",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ModifyInstanceGroups",
        "elasticmapreduce:ListInstanceFleets",
        "elasticmapreduce:ModifyInstanceFleet",
    }


def test_sns_publish_only_to_the_operator_topic(s: Synth) -> None:
    operator_topic = s.ref(s.stack.autoscaler.notifications.operator_topic.topic_arn)
    found = 0
    for _, st in s.policy_statements():
        if any(a.startswith("sns:") for a in as_list(st["Action"])):
            assert as_list(st["Action"]) == ["sns:Publish"]
            assert as_list(st["Resource"]) == [operator_topic]
            found += 1
    assert found == 5


def test_dynamodb_actions_only_on_the_table(s: Synth) -> None:
    table_arn = s.ref(s.stack.autoscaler.state.table.table_arn)
    found = 0
    for _, st in s.policy_statements():
        if any(a.startswith("dynamodb:") for a in as_list(st["Action"])):
            resources = [r for r in as_list(st["Resource"]) if r != {"Ref": "AWS::NoValue"}]
            assert resources == [table_arn]
            found += 1
    assert found == 5


def test_describe_alarms_only_on_the_stacks_alarms(s: Synth, config: Config) -> None:
    for _, st in s.policy_statements():
        if "cloudwatch:DescribeAlarms" in as_list(st["Action"]):
            assert json.dumps(st["Resource"]).endswith(f':alarm:{config.alarm_prefix}-*"]]}}')


def test_roles_have_no_managed_policies(s: Synth) -> None:
    for key, role in s.resources("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], key


# --- topics, queues, key, table -----------------------------------------------------------------------------
def _policy_for(s: Synth, rtype: str, list_key: str, target: Any) -> list[dict[str, Any]]:
    found = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in s.resources(rtype).values()
        if target in r["Properties"][list_key]
    ]
    assert len(found) == 1
    return found[0]


def test_topic_policies_allow_only_cloudwatch_of_this_account_and_deny_plain_http(
    s: Synth, config: Config
) -> None:
    n = s.stack.autoscaler.notifications
    notices = _policy_for(s, "AWS::SNS::TopicPolicy", "Topics", s.ref(n.operator_topic.topic_arn))
    assert [st["Effect"] for st in notices] == ["Deny"]  # only the Lambdas (IAM) publish notices
    for topic in (n.alarm_topic, n.operator_alarm_topic):
        statements = _policy_for(s, "AWS::SNS::TopicPolicy", "Topics", s.ref(topic.topic_arn))
        allows = [st for st in statements if st["Effect"] == "Allow"]
        assert len(allows) == 1
        (allow,) = allows
        assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert allow["Action"] == "sns:Publish"
        assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        source_arn = json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
        assert ":cloudwatch:" in source_arn
        assert f":alarm:{config.alarm_prefix}-*" in source_arn
        denies = [st for st in statements if st["Effect"] == "Deny"]
        assert any(st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for st in denies)


def test_topics_and_queues_are_kms_encrypted_with_the_stack_key(s: Synth) -> None:
    key_arn = s.ref(s.stack.autoscaler.notifications.key.key_arn)
    topics = s.props("AWS::SNS::Topic")
    queues = s.props("AWS::SQS::Queue")
    assert len(topics) == 3  # alarm, operator (notices), operator alarm
    assert len(queues) == 11  # 5 function DLQs, subscription, schedule, evaluations + DLQ, spot, EMR rules
    for t in topics:
        assert t["KmsMasterKeyId"] == key_arn
    for q in queues:
        assert q["KmsMasterKeyId"] == key_arn


def test_every_queue_denies_plain_http(s: Synth) -> None:
    for q in s.stack.autoscaler.dead_letter_queues.values():
        statements = _policy_for(s, "AWS::SQS::QueuePolicy", "Queues", s.ref(q.queue_url))
        assert any(
            st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for st in statements
        )


def test_key_rotates_and_lets_cloudwatch_sns_and_eventbridge_of_this_account_use_it(s: Synth) -> None:
    (key,) = s.props("AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    services = [
        st
        for st in key["KeyPolicy"]["Statement"]
        if isinstance(st.get("Principal"), dict) and "Service" in st["Principal"]
    ]
    (st,) = services
    assert sorted(as_list(st["Principal"]["Service"])) == [
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "sns.amazonaws.com",
    ]
    assert sorted(as_list(st["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_state_table_on_demand_pitr_ttl_and_keys(s: Synth) -> None:
    (table,) = s.resources("AWS::DynamoDB::Table").values()
    p = table["Properties"]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["DeletionPolicy"] == "Delete"  # retain_data is false in cdk.json: `make destroy` removes it


# --- dashboard and outputs ----------------------------------------------------------------------------------
def test_one_dashboard_for_every_cluster_with_the_signals_and_a_cluster_variable(
    s: Synth, config: Config
) -> None:
    dashboards = s.props("AWS::CloudWatch::Dashboard")
    assert [d["DashboardName"] for d in dashboards] == [f"{config.alarm_prefix}-clusters"]
    body = json.dumps(dashboards[0]["DashboardBody"])
    # the pattern variable swaps the shown cluster id (the first listed) for the chosen one everywhere
    assert '\\"type\\":\\"pattern\\"' in body
    assert f'\\"pattern\\":\\"{config.clusters[0]}\\"' in body
    assert "populateFrom" in body
    for needle in (
        "DesiredTaskNodes",
        "RunningTaskNodes",
        "ScalingActions",
        "YARNMemoryAvailablePercentage",
        "ContainerPending",
        "TotalLoad",
        "100 * heap_used / heap_max",
        '\\"type\\":\\"alarm\\"',
    ):
        assert needle in body, needle


def test_outputs(s: Synth, config: Config) -> None:
    outputs = s.doc["Outputs"]
    for key in (
        "AlarmTopicArn",
        "OperatorTopicArn",
        "StateTableName",
        "AlarmPrefix",
        "BootstrapActionPath",
        "BootstrapActionArgs",
        "BootstrapActionsJson",
        "SparkMetricsClassification",
    ):
        assert key in outputs, key
    urls = [v for k, v in outputs.items() if k.startswith("DashboardUrl")]
    assert len(urls) == 1
    assert "#dashboards:name=sparkscale-clusters" in json.dumps(urls[0])
    assert outputs["AlarmPrefix"]["Value"] == config.alarm_prefix  # what `sparkscale status` reads


def test_bootstrap_action_is_the_install_script_with_the_bundle_zip(s: Synth) -> None:
    outputs = s.doc["Outputs"]
    assert json.dumps(outputs["BootstrapActionPath"]["Value"]).endswith('.sh"}')
    args = json.dumps(outputs["BootstrapActionArgs"]["Value"])
    assert '.zip"}' in args
    assert "--state-table" in args  # the master's agent writes the node report (safe scale-in)
    assert json.dumps(s.ref(s.stack.autoscaler.state.table.table_name)) in args
    classification = json.loads(outputs["SparkMetricsClassification"]["Value"])
    props = classification[0]["Properties"]
    assert classification[0]["Classification"] == "spark-metrics"
    assert props["executor.source.jvm.class"] == "org.apache.spark.metrics.source.JvmSource"


def test_each_function_waits_for_its_policy_and_references_its_role(s: Synth) -> None:
    """The DependsOn lists only the role's policy: the role itself is ordered by the Role property's GetAtt
    (a DependsOn on it too is cfn-lint's W3005)."""
    for fn in s.stack.autoscaler.functions:
        handler = fn.function.node.default_child.handler  # type: ignore[union-attr]
        (resource,) = [
            r for r in s.resources("AWS::Lambda::Function").values() if r["Properties"]["Handler"] == handler
        ]
        policy = fn.role.node.find_child("DefaultPolicy").node.default_child
        assert resource["DependsOn"] == [s.stack.get_logical_id(policy)]  # type: ignore[arg-type]
        assert resource["Properties"]["Role"] == s.ref(fn.role.role_arn)


# --- linters ------------------------------------------------------------------------------------------------
def test_cfn_lint_finds_no_error_and_no_warning(s: Synth) -> None:
    assert cfn_lint(s.doc) == []


def test_cfn_lint_would_report_the_role_dependency_as_a_warning(s: Synth) -> None:
    """The check above can fail: with the DependsOn on the role that lambda.Function used to add, cfn-lint
    reports W3005 for each function."""
    doc = copy.deepcopy(s.doc)
    for fn in s.stack.autoscaler.functions:
        handler = fn.function.node.default_child.handler  # type: ignore[union-attr]
        (resource,) = [r for r in doc["Resources"].values() if r["Properties"].get("Handler") == handler]
        resource["DependsOn"].append(s.stack.get_logical_id(fn.role.node.default_child))  # type: ignore[arg-type]
    findings = cfn_lint(doc)
    assert len(findings) == len(s.stack.autoscaler.functions)
    assert all(f.startswith("W3005 ") for f in findings)


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(s: Synth) -> None:
    assert nag_findings(s.stack) == []
