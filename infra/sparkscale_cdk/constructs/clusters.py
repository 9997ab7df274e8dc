"""The EMR clusters sparkscale manages. They are not created by this stack: like an imported resource, the
construct holds their ARNs and grants on them, and on the reads about them that have no resource type (their
metrics, their nodes, the spot market they run on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from sparkscale_cdk.constructs.grants import grant_on, grant_unscoped

# What every sparkscale Lambda does to a managed cluster: read it, its groups and nodes, resize its groups.
EMR_SCALER_ACTIONS: Final = (
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:ListInstanceGroups",
    "elasticmapreduce:ListInstances",
    "elasticmapreduce:ModifyInstanceGroups",
)
# Actions without resource-level permissions ("*" is the only valid resource), one tuple per grant.
METRICS_READ_ACTIONS: Final = ("cloudwatch:GetMetricData",)
SPOT_PRICE_READ_ACTIONS: Final = ("ec2:DescribeSpotPriceHistory",)
INSTANCE_READ_ACTIONS: Final = ("ec2:DescribeInstances",)
UNSCOPED_ACTIONS: Final = (*METRICS_READ_ACTIONS, *SPOT_PRICE_READ_ACTIONS, *INSTANCE_READ_ACTIONS)


class ManagedClusters(Construct):
    """`cluster_arns` are `arn:<partition>:elasticmapreduce:<region>:<account>:cluster/<id>` of this stack's
    account and region."""

    cluster_ids: tuple[str, ...]
    cluster_arns: list[str]

    def __init__(self, scope: Construct, construct_id: str, *, cluster_ids: Sequence[str]) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.cluster_ids = tuple(cluster_ids)
        self.cluster_arns = [
            stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name=c)
            for c in self.cluster_ids
        ]

    def grant_scale(self, grantee: iam.IGrantable) -> iam.Grant:
        """Describe the managed clusters, list groups and nodes, resize groups: on their ARNs only."""
        return grant_on(grantee, EMR_SCALER_ACTIONS, self.cluster_arns)

    def grant_read_metrics(self, grantee: iam.IGrantable) -> iam.Grant:
        """GetMetricData (EMR, heap agent and scaler metrics of the clusters)."""
        return grant_unscoped(grantee, METRICS_READ_ACTIONS, "cloudwatch:GetMetricData has no resource type")

    def grant_read_spot_prices(self, grantee: iam.IGrantable) -> iam.Grant:
        """The spot price history of the task groups' instance types."""
        return grant_unscoped(
            grantee, SPOT_PRICE_READ_ACTIONS, "ec2:DescribeSpotPriceHistory has no resource type"
        )

    def grant_describe_instances(self, grantee: iam.IGrantable) -> iam.Grant:
        """Find which cluster and group an interrupted EC2 instance belongs to."""
        return grant_unscoped(grantee, INSTANCE_READ_ACTIONS, "ec2:DescribeInstances has no resource type")
