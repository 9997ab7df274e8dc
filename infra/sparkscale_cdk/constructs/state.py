"""The single DynamoDB table: per-cluster lease, scaler state, audit trail, Powertools idempotency records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from sparkscale_cdk import names
from sparkscale_cdk.constructs.grants import grant_on

# Every item a function reads or writes by key: the lease (PutItem, DeleteItem), the state and the audit trail
# (GetItem; TransactWriteItems, which IAM authorizes per Put/Update inside it), the notice ledger (PutItem,
# GetItem), the write-ahead intent (PutItem, GetItem, UpdateItem in the record transaction, DeleteItem),
# capacity errors and demand buckets (UpdateItem), Powertools idempotency (Get/Put/Update/DeleteItem).
ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
# the demand history the seasonal forecast reads (adapters/dynamodb.py load_demand): run_once only
DEMAND_READ_ACTIONS = ("dynamodb:Query",)
REGISTRY_READ_ACTIONS = ("dynamodb:Query",)
# the reconcile schedule: the size records on the managed clusters' state items, 100 keys a call
SIZE_RECORD_READ_ACTIONS = ("dynamodb:BatchGetItem",)
# the daily digest: the audit records of a day (Query) and its once-a-day mark in the notice ledger
AUDIT_READ_ACTIONS = ("dynamodb:Query",)
LEDGER_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")

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
        """Read and write items by key (ITEM_ACTIONS): the per-cluster lease, the state, the audit trail,
        the notice ledger, the write-ahead intent and the Powertools idempotency records, on this table
        only. Not `Table.grant_read_write_data`: that adds Scan, BatchWriteItem, BatchGetItem,
        ConditionCheckItem and DescribeTable, which no function calls.

        There is deliberately no separate `grant_lease`: the lease is an item of the same table under the
        same partition key as the state (`cluster#<id>`), so IAM cannot tell the two apart and a second
        method would grant the same thing under another name."""
        return grant_on(grantee, ITEM_ACTIONS, [self.table.table_arn])

    def grant_read_demand(self, grantee: iam.IGrantable) -> iam.Grant:
        """`dynamodb:Query` on this table: the demand history run_once's forecast reads."""
        return grant_on(grantee, DEMAND_READ_ACTIONS, [self.table.table_arn])

    def grant_read_registry(self, grantee: iam.IGrantable) -> iam.Grant:
        """`dynamodb:Query` on this table: the registry of the clusters managed by tag (pk "registry"), which
        every handler reads to know the managed clusters when discovery is on."""
        return grant_on(grantee, REGISTRY_READ_ACTIONS, [self.table.table_arn])

    def grant_read_size_records(self, grantee: iam.IGrantable) -> iam.Grant:
        """`dynamodb:BatchGetItem` on this table: what the reconcile schedule reads of every managed
        cluster's state item (its size record) to queue only the clusters that need an evaluation."""
        return grant_on(grantee, SIZE_RECORD_READ_ACTIONS, [self.table.table_arn])

    def grant_read_audit(self, grantee: iam.IGrantable) -> iam.Grant:
        """`dynamodb:Query` on this table: the audit records the daily digest reads (`audit_since`)."""
        return grant_on(grantee, AUDIT_READ_ACTIONS, [self.table.table_arn])

    def grant_ledger(self, grantee: iam.IGrantable) -> iam.Grant:
        """`dynamodb:GetItem` and `PutItem` on this table: the notice ledger's marks (`claim`, `claimed_at`)
        for a function that writes nothing else (the daily digest's mark per local date)."""
        return grant_on(grantee, LEDGER_ACTIONS, [self.table.table_arn])

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
