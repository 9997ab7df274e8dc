"""The EMR clusters sparkscale manages. They are not created by this stack: like an imported resource, the
construct holds their ARNs and grants on them, and on the reads about them that have no resource type (their
metrics, their nodes, the spot market they run on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from sparkscale_cdk.constructs.grants import acknowledge, grant_on, grant_unscoped

# What every sparkscale Lambda does to a managed cluster: read it, its groups (or fleets) and nodes, resize
# its TASK groups (or its TASK fleet).
EMR_SCALER_ACTIONS: Final = (
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:ListInstanceGroups",
    "elasticmapreduce:ListInstances",
    "elasticmapreduce:ModifyInstanceGroups",
    "elasticmapreduce:ListInstanceFleets",
    "elasticmapreduce:ModifyInstanceFleet",
)
# What the savings report reads of a cluster (its shape: replay/savings.py read_shape), for the weekly digest.
SHAPE_READ_ACTIONS: Final = ("elasticmapreduce:DescribeCluster", "elasticmapreduce:ListInstanceGroups")
# Actions without resource-level permissions ("*" is the only valid resource), one tuple per grant.
METRICS_READ_ACTIONS: Final = ("cloudwatch:GetMetricData",)
SPOT_PRICE_READ_ACTIONS: Final = ("ec2:DescribeSpotPriceHistory",)
INSTANCE_READ_ACTIONS: Final = ("ec2:DescribeInstances",)
LIST_CLUSTERS_ACTIONS: Final = ("elasticmapreduce:ListClusters",)
DESCRIBE_CLUSTER_ACTIONS: Final = ("elasticmapreduce:DescribeCluster",)
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

    def grant_scale(self, grantee: iam.IGrantable) -> iam.Grant | None:
        """Describe the managed clusters, list groups and nodes, resize groups: on their ARNs only (None
        without a static cluster: clusters managed by tag only, see grant_scale_tagged)."""
        if not self.cluster_arns:
            return None
        return grant_on(grantee, EMR_SCALER_ACTIONS, self.cluster_arns)

    def grant_scale_tagged(self, grantee: iam.IGrantable, *, tag_key: str, tag_value: str) -> iam.Grant:
        """The same actions on any cluster carrying the opt-in tag (aws:ResourceTag), and, as the EMR
        Management Guide documents for ModifyInstanceGroups (its ClusterId is optional), a deny of every
        ModifyInstanceGroups request that names no cluster, so the tag condition cannot be side-stepped."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(EMR_SCALER_ACTIONS),
            resource_arns=[self.any_cluster_arn()],
            conditions={"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}},
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["elasticmapreduce:ModifyInstanceGroups"],
                not_resources=["arn:*:elasticmapreduce:*:*:cluster/*"],
            )
        )
        acknowledge(
            grantee,
            f"AwsSolutions-IAM5[Resource::{self._nag_cluster_pattern()}]",
            f"Clusters managed by tag: only those carrying {tag_key}={tag_value} (aws:ResourceTag "
            "condition); "
            "their ids are not known at deploy time.",
        )
        return grant

    def grant_read_shape(
        self, grantee: iam.IGrantable, *, tagged: tuple[str, str] | None = None
    ) -> list[iam.Grant]:
        """DescribeCluster and ListInstanceGroups: on the managed clusters' ARNs, and with `tagged` (tag key,
        value) on any cluster carrying that tag (aws:ResourceTag condition)."""
        grants = []
        if self.cluster_arns:
            grants.append(grant_on(grantee, SHAPE_READ_ACTIONS, self.cluster_arns))
        if tagged is not None:
            key, value = tagged
            grants.append(
                iam.Grant.add_to_principal(
                    grantee=grantee,
                    actions=list(SHAPE_READ_ACTIONS),
                    resource_arns=[self.any_cluster_arn()],
                    conditions={"StringEquals": {f"aws:ResourceTag/{key}": value}},
                )
            )
            acknowledge(
                grantee,
                f"AwsSolutions-IAM5[Resource::{self._nag_cluster_pattern()}]",
                f"Clusters managed by tag: only those carrying {key}={value} (aws:ResourceTag condition); "
                "their ids are not known at deploy time.",
            )
        return grants

    def grant_discover(self, grantee: iam.IGrantable) -> None:
        """ListClusters (no resource type) and DescribeCluster on any cluster of this account and region: the
        tags are what decides, and reading them is the point."""
        grant_unscoped(grantee, LIST_CLUSTERS_ACTIONS, "elasticmapreduce:ListClusters has no resource type")
        grant_on(grantee, DESCRIBE_CLUSTER_ACTIONS, [self.any_cluster_arn()])
        acknowledge(
            grantee,
            f"AwsSolutions-IAM5[Resource::{self._nag_cluster_pattern()}]",
            "Discovery reads every cluster's tags (DescribeCluster) to find those that opted in.",
        )

    def any_cluster_arn(self) -> str:
        return Stack.of(self).format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")

    @staticmethod
    def _nag_cluster_pattern() -> str:
        return "arn:<AWS::Partition>:elasticmapreduce:<AWS::Region>:<AWS::AccountId>:cluster/*"

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
