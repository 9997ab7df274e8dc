"""The single DynamoDB table: per-cluster lease, scaler state, audit trail, Powertools idempotency records."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from sparkscale_cdk import names


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
