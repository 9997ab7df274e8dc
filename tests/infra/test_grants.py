"""The constructs' `grant_*` methods, each on a fresh role in a small stack of its own (not the whole
autoscaler): exactly which actions on which resources, and an `iam.Grant` back, as aws-cdk's grants do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from sparkscale.agent.bundle import BOOTSTRAP_DIR
from sparkscale_cdk import names
from sparkscale_cdk.constructs.clusters import (
    EMR_SCALER_ACTIONS,
    INSTANCE_READ_ACTIONS,
    METRICS_READ_ACTIONS,
    SPOT_PRICE_READ_ACTIONS,
    ManagedClusters,
)
from sparkscale_cdk.constructs.heap_bootstrap import HeapBootstrapAssets
from sparkscale_cdk.constructs.notifications import KEY_PRODUCER_ACTIONS, Notifications
from sparkscale_cdk.constructs.state import StateTable
from sparkscale_cdk.wiring import app_with_context
from stack_testlib import as_list

pytestmark = pytest.mark.slow

CLUSTERS = ("j-AAAA1111", "j-BBBB2222")


class Parts:
    def __init__(self, outdir: Path) -> None:
        self.stack = Stack(app_with_context(outdir=str(outdir)), "GrantTest")  # cdk.json's feature flags
        self.state = StateTable(self.stack, "State", retain=False)
        self.notifications = Notifications(self.stack, "Notifications", alarm_prefix="px", operator_emails=[])
        self.clusters = ManagedClusters(self.stack, "Clusters", cluster_ids=CLUSTERS)
        self.heap = HeapBootstrapAssets(self.stack, "Heap", bootstrap_dir=BOOTSTRAP_DIR)

    def role(self, name: str) -> iam.Role:
        return iam.Role(self.stack, name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    def statements(self, role: iam.Role) -> list[dict[str, Any]]:
        """(action, resource, condition) of the role's policy, one row per action and resource."""
        policy = role.node.find_child("DefaultPolicy").node.default_child
        doc = self.stack.resolve(policy.policy_document)  # type: ignore[union-attr]
        return doc["Statement"]  # type: ignore[no-any-return]

    def ref(self, value: Any) -> Any:
        return self.stack.resolve(value)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Parts:
    return Parts(tmp_path_factory.mktemp("cdk.out"))


def _pairs(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a, repr(r)) for st in statements for a in as_list(st["Action"]) for r in as_list(st["Resource"])}


def test_grant_state_is_the_four_item_actions_on_the_table_only(parts: Parts) -> None:
    role = parts.role("StateUser")
    grant = parts.state.grant_state(role)
    assert isinstance(grant, iam.Grant)
    assert grant.success
    (st,) = parts.statements(role)
    assert as_list(st["Resource"]) == [parts.ref(parts.state.table.table_arn)]
    actions = set(as_list(st["Action"]))
    assert actions == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


def test_grant_read_demand_is_query_on_the_table_only(parts: Parts) -> None:
    role = parts.role("DemandReader")
    grant = parts.state.grant_read_demand(role)
    assert grant.success
    (st,) = parts.statements(role)
    assert (as_list(st["Action"]), as_list(st["Resource"])) == (
        ["dynamodb:Query"],
        [parts.ref(parts.state.table.table_arn)],
    )


def test_grant_publish_notices_is_publish_to_the_operator_topic_and_the_two_key_actions(parts: Parts) -> None:
    role = parts.role("Notifier")
    grant = parts.notifications.grant_publish_notices(role)
    assert grant.success
    n = parts.notifications
    assert _pairs(parts.statements(role)) == {
        ("sns:Publish", repr(parts.ref(n.operator_topic.topic_arn))),
        *{(a, repr(parts.ref(n.key.key_arn))) for a in KEY_PRODUCER_ACTIONS},
    }
    assert set(KEY_PRODUCER_ACTIONS) == {"kms:GenerateDataKey", "kms:Decrypt"}  # no wildcard as Topic's adds


def test_grant_scale_is_the_six_emr_actions_on_the_managed_clusters_only(parts: Parts) -> None:
    role = parts.role("Scaler")
    parts.clusters.grant_scale(role)
    (st,) = parts.statements(role)
    assert sorted(as_list(st["Action"])) == sorted(EMR_SCALER_ACTIONS)
    assert len(EMR_SCALER_ACTIONS) == 6  # groups: list, modify; fleets: list, modify; describe; instances
    assert {"elasticmapreduce:ListInstanceFleets", "elasticmapreduce:ModifyInstanceFleet"} <= set(
        EMR_SCALER_ACTIONS
    )
    assert as_list(st["Resource"]) == [parts.ref(arn) for arn in parts.clusters.cluster_arns]
    for cluster, arn in zip(CLUSTERS, as_list(st["Resource"]), strict=True):
        assert repr(arn).endswith(f":cluster/{cluster}']]}}")


@pytest.mark.parametrize(
    ("method", "actions"),
    [
        ("grant_read_metrics", METRICS_READ_ACTIONS),
        ("grant_read_spot_prices", SPOT_PRICE_READ_ACTIONS),
        ("grant_describe_instances", INSTANCE_READ_ACTIONS),
    ],
)
def test_unscoped_reads_grant_their_own_actions_on_star(
    parts: Parts, method: str, actions: tuple[str, ...]
) -> None:
    role = parts.role(f"Reader-{method}")
    getattr(parts.clusters, method)(role)
    (st,) = parts.statements(role)
    assert (sorted(as_list(st["Action"])), st["Resource"]) == (sorted(actions), "*")


def test_heap_node_permissions_read_two_objects_and_put_one_namespace(parts: Parts) -> None:
    role = parts.role("EmrNode")
    grant = parts.heap.grant_node_permissions(role)
    assert grant.success
    statements = parts.statements(role)
    (read,) = [st for st in statements if st["Action"] == "s3:GetObject"]
    assert len(as_list(read["Resource"])) == 2
    assert "*" not in json.dumps(read["Resource"])  # the two object keys, no wildcard
    (put,) = [st for st in statements if st["Action"] == "cloudwatch:PutMetricData"]
    assert put["Condition"] == {
        "StringEquals": {
            "cloudwatch:namespace": [names.HEAP_NAMESPACE, names.YARN_NAMESPACE, names.STREAMING_NAMESPACE]
        }
    }
    assert len(statements) == 2
