"""One scaler Lambda with its own role, log group and dead-letter queue; and the encrypted queue every DLQ is.

Shared by the scaler functions and the spot- and EMR-events functions (`event_rule_function.py`) so that
runtime, architecture, timeouts, retries, environment and logging are set in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct, Dependable, IConstruct

from sparkscale_cdk.constructs.notifications import KEY_PRODUCER_ACTIONS

# The newest Python runtime aws-cdk-lib 2.275.0 offers; the code also runs on 3.11 locally (CI).
RUNTIME: Final = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE: Final = lambda_.Architecture.ARM_64
MEMORY_MB: Final = 256
LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH
# A wake-up older than this is useless (the next reconcile tick re-decides); retry twice, then the DLQ.
MAX_EVENT_AGE: Final = Duration.minutes(5)
RETRY_ATTEMPTS: Final = 2
DLQ_RETENTION: Final = Duration.days(14)

# The Lambda asset is the lambdas/ folder plus the replay engine the weekly digest runs (lambda_asset.py);
# not shipped: caches and packaging metadata a local install leaves there.
ASSET_EXCLUDES: Final = (
    "**/__pycache__",
    "**/*.pyc",
    "*.egg-info",
    "tests",
    ".mypy_cache",
    ".pytest_cache",
)


def powertools_parameter_name(*, version: str, runtime: lambda_.Runtime = RUNTIME) -> str:
    """The public SSM parameter holding the Powertools layer ARN for this architecture and Python version."""
    # jsii returns a new proxy for every Architecture.X access: compare names, not objects.
    return f"/aws/service/powertools/python/{ARCHITECTURE.name}/{runtime.name}/{version}"


def powertools_layer(scope: Construct, construct_id: str, *, version: str) -> lambda_.ILayerVersion:
    """Resolved by CloudFormation at deploy time (an SSM-typed stack parameter): no Docker and no network at
    synth time, and the deploy region's own layer ARN."""
    arn = ssm.StringParameter.value_for_string_parameter(scope, powertools_parameter_name(version=version))
    return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, arn)


def lambda_code(path: Path) -> lambda_.Code:
    return lambda_.Code.from_asset(str(path), exclude=list(ASSET_EXCLUDES))


def encrypted_queue(scope: Construct, construct_id: str, *, key: kms.IKey) -> sqs.Queue:
    """A dead-letter queue: KMS-encrypted with the stack key, TLS only, messages kept 14 days."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
    )


@dataclass(frozen=True, kw_only=True)
class FunctionOptions:
    """What every sparkscale Lambda shares."""

    code: lambda_.Code
    layer: lambda_.ILayerVersion
    environment: Mapping[str, str]
    timeout_s: int
    reserved_concurrency: int
    key: kms.IKey
    memory_mb: int = MEMORY_MB


class RolePolicies(Dependable):
    """What a dependency on a role stands for: the policies attached to it (the role itself when it has
    none). A resource that references the role and waits for its permissions then carries no DependsOn on
    the role, which its reference already implies."""

    def __init__(self, role: iam.Role) -> None:
        super().__init__()
        self._role = role

    @property
    def dependency_roots(self) -> list[IConstruct]:
        policies: list[IConstruct] = [c for c in self._role.node.children if isinstance(c, iam.Policy)]
        return policies or [self._role]


class ScalerFunction(Construct):
    """`function` runs `handler`; `role` has no managed policy: only its log group, its DLQ and the key, plus
    whatever the composing construct grants."""

    function: lambda_.Function
    role: iam.Role
    dead_letter_queue: sqs.Queue
    log_group: logs.LogGroup

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        options: FunctionOptions,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"sparkscale {handler}",
        )
        # lambda.Function makes its resource depend on the role construct, i.e. on the AWS::IAM::Role (already
        # ordered by the Role property's GetAtt: cfn-lint W3005) and on its policy (needed: no invocation
        # before the permissions are attached). Depending on the role now means depending on its policies,
        # which CloudFormation orders after the role anyway (they Ref it).
        Dependable.implement(self.role, RolePolicies(self.role))
        self.log_group = logs.LogGroup(
            self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group.grant_write(self.role)
        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue", key=options.key)
        # Send to the encrypted DLQ (the function grants sqs:SendMessage itself) and publish to the encrypted
        # operator topic.
        options.key.grant(self.role, *KEY_PRODUCER_ACTIONS)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=options.code,
            layers=[options.layer],
            memory_size=options.memory_mb,
            timeout=Duration.seconds(options.timeout_s),
            reserved_concurrent_executions=options.reserved_concurrency,
            environment=dict(options.environment),
            role=self.role,
            log_group=self.log_group,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
            recursive_loop=lambda_.RecursiveLoop.TERMINATE,
        )
