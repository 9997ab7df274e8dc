"""How the constructs grant: exact statements added to the grantee's principal, as aws-cdk's own `grant*`
methods do (`iam.Grant.add_to_principal`), for the actions that have no L2 grant or whose L2 grant is broader
than sparkscale needs (e.g. `Topic.grant_publish` also grants `kms:GenerateDataKey*`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

NAG_STAR_RESOURCE = "AwsSolutions-IAM5[Resource::*]"


def grant_on(grantee: iam.IGrantable, actions: Sequence[str], resource_arns: Sequence[str]) -> iam.Grant:
    """`actions` on `resource_arns` only."""
    return iam.Grant.add_to_principal(
        grantee=grantee, actions=list(actions), resource_arns=list(resource_arns)
    )


def grant_unscoped(grantee: iam.IGrantable, actions: Sequence[str], why: str) -> iam.Grant:
    """`actions` that have no resource type, so "*" is their only valid resource; the cdk-nag finding on the
    grantee's role is acknowledged with `why`."""
    grant = grant_on(grantee, actions, ["*"])
    acknowledge(grantee, NAG_STAR_RESOURCE, f"No narrower resource exists: {why}.")
    return grant


def acknowledge(grantee: iam.IGrantable, finding: str, reason: str) -> None:
    """Acknowledge a cdk-nag finding on the grantee's principal (its role, which holds the policy) when that
    is a construct; a service or account principal has no policy in this app to report on. Duck-typed: an
    imported role is a jsii interface proxy, not a Python `Construct`."""
    principal = grantee.grant_principal
    if getattr(principal, "node", None) is not None:
        Validations.of(cast(IConstruct, principal)).acknowledge(Acknowledgment(id=finding, reason=reason))
