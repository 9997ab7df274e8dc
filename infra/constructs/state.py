"""The single DynamoDB table: per-cluster lease, scaler state, audit trail, Powertools idempotency records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra import names

# What the master-node agent puts in its node report item (sparkscale/agent/nodes.py `report_item`).
NODE_REPORT_ATTRIBUTES: Final = (
    names.TABLE_PK,
    names.TABLE_SK,
    "collected_at",
    "report",
    names.TABLE_TTL_ATTR,
)


class StateTable(Construct):
    """On-demand, point-in-time recovery, TTL on `expires_at`; keys `pk`/`sk` (strings)."""

    table: dynamodb.Table

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=names.TABLE_PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=names.TABLE_SK, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=names.TABLE_TTL_ATTR,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )

    def grant_state(self, grantee: iam.IGrantable) -> iam.Grant:
        """Read and write every item a scaler keeps here: the per-cluster lease, the state, the audit trail,
        the notice ledger and the Powertools idempotency records (items of this table only).

        There is deliberately no separate `grant_lease`: the lease is an item of the same table under the
        same partition key as the state (`cluster#<id>`), so IAM cannot tell the two apart and a second
        method would grant the same thing under another name."""
        return self.table.grant_read_write_data(grantee)

    def node_report_statement(self, cluster_ids: Sequence[str]) -> iam.PolicyStatement:
        """PutItem of the agent's node report of `cluster_ids` only: `dynamodb:LeadingKeys` (the partition
        key, "nodes#<cluster id>", the report's own partition: never the scaler's lease or state) and
        `dynamodb:Attributes` (the report's five attributes) scope it; no read, no update, no delete."""
        return iam.PolicyStatement(
            actions=["dynamodb:PutItem"],
            resources=[self.table.table_arn],
            conditions={
                "ForAllValues:StringEquals": {
                    "dynamodb:LeadingKeys": [names.NODE_REPORT_PK_PREFIX + c for c in cluster_ids],
                    "dynamodb:Attributes": list(NODE_REPORT_ATTRIBUTES),
                },
                "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"},
            },
        )

    def node_report_policy(
        self, scope: Construct, construct_id: str, *, cluster_id: str
    ) -> iam.ManagedPolicy:
        """A managed policy for the EMR instance role of `cluster_id`: write that cluster's node report."""
        return iam.ManagedPolicy(
            scope,
            construct_id,
            description=f"sparkscale: the master-node agent of {cluster_id} writes its YARN node report",
            statements=[self.node_report_statement([cluster_id])],
        )
