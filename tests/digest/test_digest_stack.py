"""The digest part of the stack: no function when the flag is off; when on, the function, its hourly
schedule, its size (one vCPU, Lambda's longest timeout: the weekly replay), its exact permissions (the audit
Query, its ledger mark, publishing notices; with a weekly section the savings report's reads: GetMetricData,
DescribeSpotPriceHistory, DescribeCluster and ListInstanceGroups on the managed clusters, by tag when
discovery is on); cdk-nag and cfn-lint clean. Resources are found through the constructs, never by logical
ID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sparkscale.names import ENV_CONFIG_JSON
from sparkscale_cdk.constructs.digest import DIGEST_HANDLER, DIGEST_MEMORY_MB, DIGEST_TIMEOUT_S, DailyDigest
from sparkscale_cdk.wiring import cdk_json_context

from tests.infra.stack_testlib import Synth, as_list, cfn_lint, nag_findings, synth

pytestmark = pytest.mark.slow


def _context(*, digest: bool, discovery: bool = False, **settings: Any) -> dict[str, Any]:
    ctx = dict(cdk_json_context())
    ctx["sparkscale"] = {**ctx["sparkscale"], **settings}
    ctx["sparkscale:features"] = {**ctx["sparkscale:features"], "digest": digest, "discovery": discovery}
    return ctx


def _granted(s: Synth, dig: DailyDigest) -> dict[str, list[Any]]:
    """Action -> the resources it is allowed on (every statement an Allow, none with a condition)."""
    granted: dict[str, list[Any]] = {}
    for st in s.role_statements(dig.handler.role):
        assert st["Effect"] == "Allow"
        assert "Condition" not in st
        for action in as_list(st["Action"]):
            granted.setdefault(action, []).extend(as_list(st["Resource"]))
    return granted


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    ctx = _context(digest=True, digest_hour=7, digest_time_zone="Europe/Paris")
    return synth(ctx, outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def dig(s: Synth) -> DailyDigest:
    found = s.stack.autoscaler.digest
    assert found is not None
    return found


def test_the_flag_off_builds_no_digest(tmp_path: Path) -> None:
    off = synth(_context(digest=False), outdir=tmp_path)
    assert off.stack.autoscaler.digest is None
    handlers = [p["Handler"] for p in off.props("AWS::Lambda::Function")]
    assert DIGEST_HANDLER not in handlers
    assert "-dlq-digest" not in str([p.get("AlarmName") for p in off.props("AWS::CloudWatch::Alarm")])


def test_the_function_and_its_hourly_schedule(s: Synth, dig: DailyDigest) -> None:
    fn = s.function(DIGEST_HANDLER)
    assert fn["ReservedConcurrentExecutions"] == 1
    config = json.loads(fn["Environment"]["Variables"][ENV_CONFIG_JSON])
    assert (config["digest_hour"], config["digest_time_zone"]) == (7, "Europe/Paris")
    fn_arn = s.ref(dig.handler.function.function_arn)
    rules = [p for p in s.props("AWS::Events::Rule") if any(t["Arn"] == fn_arn for t in p.get("Targets", []))]
    assert [r.get("ScheduleExpression") for r in rules] == ["rate(1 hour)"]
    (target,) = rules[0]["Targets"]
    assert target["DeadLetterConfig"]["Arn"] == s.ref(dig.rule_dlq.queue_arn)
    names = [p["AlarmName"] for p in s.props("AWS::CloudWatch::Alarm")]
    assert {"sparkscale-dlq-digest-fn", "sparkscale-dlq-digest-schedule"} <= set(names)


def test_sized_for_the_weekly_replay(s: Synth) -> None:
    fn = s.function(DIGEST_HANDLER)
    assert (fn["MemorySize"], fn["Timeout"]) == (DIGEST_MEMORY_MB, DIGEST_TIMEOUT_S) == (1769, 900)


def test_its_exact_permissions(s: Synth, dig: DailyDigest) -> None:
    table = s.ref(s.stack.autoscaler.state.table.table_arn)
    topic = s.ref(s.stack.autoscaler.notifications.operator_topic.topic_arn)
    key = s.ref(s.stack.autoscaler.notifications.key.key_arn)
    granted = _granted(s, dig)
    dlq = s.ref(dig.handler.dead_letter_queue.queue_arn)
    logs = [r for a, rs in granted.items() if a.startswith("logs:") for r in rs]
    assert {a for a in granted if not a.startswith("logs:")} == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "sns:Publish",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "sqs:SendMessage",
        # the weekly comparison (the savings report's reads)
        "cloudwatch:GetMetricData",
        "ec2:DescribeSpotPriceHistory",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstanceGroups",
    }, granted
    for action in ("dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem"):
        assert granted[action] == [table]
    # no resource type: "*" is the only valid resource; the cluster reads on the managed cluster only
    assert granted["cloudwatch:GetMetricData"] == granted["ec2:DescribeSpotPriceHistory"] == ["*"]
    (cluster_arn,) = [s.stack.resolve(a) for a in s.stack.autoscaler.clusters.cluster_arns]
    assert granted["elasticmapreduce:DescribeCluster"] == [cluster_arn]
    assert granted["elasticmapreduce:ListInstanceGroups"] == [cluster_arn]
    assert granted["sns:Publish"] == [topic]
    assert all(r == key for a, rs in granted.items() if a.startswith("kms:") for r in rs)
    assert granted["sqs:SendMessage"] == [dlq]
    assert logs


def test_cdk_nag_and_cfn_lint_find_nothing(s: Synth) -> None:
    assert nag_findings(s.stack) == []
    assert cfn_lint(s.doc) == []


def test_without_a_weekly_section_it_reads_no_cluster(tmp_path: Path) -> None:
    off = synth(_context(digest=True, digest_weekly_day="never"), outdir=tmp_path)
    dig = off.stack.autoscaler.digest
    assert dig is not None
    granted = _granted(off, dig)
    assert not {a for a in granted if a.split(":")[0] in {"cloudwatch", "ec2", "elasticmapreduce"}}


def test_clusters_managed_by_tag_are_read_by_tag_only(tmp_path: Path) -> None:
    tagged = synth(_context(digest=True, discovery=True), outdir=tmp_path)
    dig = tagged.stack.autoscaler.digest
    assert dig is not None
    conditional = [st for st in tagged.role_statements(dig.handler.role) if "Condition" in st]
    (st,) = conditional
    assert sorted(as_list(st["Action"])) == [
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListInstanceGroups",
    ]
    assert st["Resource"] == tagged.stack.resolve(tagged.stack.autoscaler.clusters.any_cluster_arn())
    assert st["Condition"] == {"StringEquals": {"aws:ResourceTag/sparkscale:managed": "true"}}
    assert nag_findings(tagged.stack) == []
    assert cfn_lint(tagged.doc) == []
