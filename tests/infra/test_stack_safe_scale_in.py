"""Safe scale-in in the synthesized stack: the EMR configurations output (application masters on CORE nodes,
Spark decommission with block migration) and the node-report writer policy for the EMR instance role.

Synthesized once for the module; expected values come from the sources the stack reads (sparkscale.emr_setup,
cdk.json's clusters), never from generated logical IDs."""

from __future__ import annotations

import json

import pytest
from sparkscale.emr_setup import safe_scale_in_configurations
from stack_testlib import Synth, synth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(outdir=tmp_path_factory.mktemp("cdk.out"))


def test_the_stack_outputs_the_safe_scale_in_configurations(s: Synth) -> None:
    output = s.doc["Outputs"]["SafeScaleInConfigurations"]
    configurations = json.loads(output["Value"])  # a plain JSON string: no token in it
    assert configurations == safe_scale_in_configurations()
    by_classification = {c["Classification"]: c["Properties"] for c in configurations}
    assert by_classification["yarn-site"] == {
        "yarn.node-labels.enabled": "true",
        "yarn.node-labels.am.default-node-label-expression": "CORE",
    }
    spark = by_classification["spark-defaults"]
    for key in (
        "spark.decommission.enabled",
        "spark.storage.decommission.enabled",
        "spark.storage.decommission.shuffleBlocks.enabled",
        "spark.storage.decommission.rddBlocks.enabled",
    ):
        assert spark[key] == "true", key
    # Spark's YARN allocator ignores decommissioning nodes while the external shuffle service is on
    assert spark["spark.shuffle.service.enabled"] == "false"
    assert spark["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert "--configurations" in output["Description"]


def test_each_managed_cluster_has_a_node_report_policy_for_its_instance_role(s: Synth) -> None:
    """PutItem on the state table only, only in the partition nodes#<that cluster> (LeadingKeys sees the
    partition key: never the scaler's cluster#<id> lease and state) and only the report's attributes."""
    policies = s.props("AWS::IAM::ManagedPolicy")
    assert len(policies) == len(s.settings.config.clusters)
    table_arn = s.ref(s.stack.autoscaler.state.table.table_arn)
    outputs = s.doc["Outputs"]
    for cluster_id in s.settings.config.clusters:
        policy = s.stack.autoscaler.node_report_policies[cluster_id]
        props = next(p for p in policies if cluster_id in p["Description"])
        (statement,) = props["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "dynamodb:PutItem"
        assert statement["Resource"] == table_arn
        assert statement["Condition"]["ForAllValues:StringEquals"] == {
            "dynamodb:LeadingKeys": [f"nodes#{cluster_id}"],
            "dynamodb:Attributes": ["pk", "sk", "collected_at", "report", "expires_at"],
        }
        assert statement["Condition"]["StringEqualsIfExists"] == {"dynamodb:ReturnValues": "NONE"}
        assert "Roles" not in props  # no instance role named in cdk.json: attaching it is the operator's
        output = outputs["NodeReportWriterPolicyArn" + "".join(ch for ch in cluster_id if ch.isalnum())]
        assert output["Value"] == s.ref(policy.managed_policy_arn)


def test_the_scaler_may_list_the_instances_it_maps_hosts_to(s: Synth) -> None:
    from sparkscale_cdk.constructs.clusters import EMR_SCALER_ACTIONS

    assert "elasticmapreduce:ListInstances" in EMR_SCALER_ACTIONS
