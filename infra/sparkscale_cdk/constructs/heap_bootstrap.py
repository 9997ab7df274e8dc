"""The heap agent's EMR bootstrap action as S3 assets (no Docker: a file and a zipped folder).

- `script`: bootstrap/install-heap-agent.sh as one S3 object — the bootstrap action's Path.
- `bundle`: the bootstrap folder (install script, spark-metrics.json and heap-agent.pyz, the agent package
  lambdas/sparkscale/agent as one zipapp) as one zip — the action's argument; the script extracts the agent.

The bundle is laid out by `sparkscale.agent.bundle.build_bootstrap_dir` (byte-for-byte reproducible, so the
asset hash changes only when the agent does) in a temporary folder that CDK stages at construction.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Final

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct
from sparkscale.agent import bundle

from sparkscale_cdk import names
from sparkscale_cdk.constructs.grants import NAG_STAR_RESOURCE, acknowledge, grant_on

ACTION_NAME: Final = "sparkscale-heap-agent"


def spark_metrics_classification(bootstrap_dir: Path) -> list[dict[str, Any]]:
    """The EMR configuration (classification spark-metrics) that turns on Spark's StatsdSink + JvmSource."""
    value = json.loads((bootstrap_dir / bundle.SPARK_METRICS_JSON).read_text(encoding="utf-8"))
    if not isinstance(value, list):
        raise ValueError(f"{bundle.SPARK_METRICS_JSON} must be a JSON list of EMR configurations")
    return value


class HeapBootstrapAssets(Construct):
    script: s3_assets.Asset
    bundle: s3_assets.Asset
    classification: list[dict[str, Any]]

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bootstrap_dir: Path,
        instance_role: iam.IRole | None = None,
        state_table_name: str | None = None,
    ) -> None:
        """`state_table_name`: passed to the install script (`--state-table`), so the master node's agent
        writes the YARN node report for safe scale-in."""
        super().__init__(scope, construct_id)
        self._state_table_name = state_table_name
        self.script = s3_assets.Asset(self, "InstallScript", path=str(bootstrap_dir / bundle.INSTALL_SCRIPT))
        with tempfile.TemporaryDirectory(prefix="sparkscale-bootstrap-") as tmp:
            bundle.build_bootstrap_dir(tmp)
            self.bundle = s3_assets.Asset(self, "Bundle", path=tmp)  # staged (copied) right here
        self.classification = spark_metrics_classification(bootstrap_dir)
        if instance_role is not None:
            self.grant_node_permissions(instance_role)

    @property
    def action_path(self) -> str:
        return self.script.s3_object_url

    @property
    def action_args(self) -> list[str]:
        table = ["--state-table", self._state_table_name] if self._state_table_name else []
        return [self.bundle.s3_object_url, *table]

    def action_json(self) -> str:
        """`aws emr create-cluster --bootstrap-actions '<this>'` (tokens resolve at deploy time)."""
        return Stack.of(self).to_json_string(
            [{"Name": ACTION_NAME, "Path": self.action_path, "Args": self.action_args}]
        )

    def grant_node_permissions(self, grantee: iam.IGrantable) -> iam.Grant:
        """What the EMR nodes need: `grant_read_assets` and `grant_publish_heap_metrics`."""
        return self.grant_read_assets(grantee).combine(self.grant_publish_heap_metrics(grantee))

    def grant_read_assets(self, grantee: iam.IGrantable) -> iam.Grant:
        """`s3:GetObject` on the two objects only (`Asset.grant_read` would add listing and the bucket)."""
        objects = [
            self.script.bucket.arn_for_objects(self.script.s3_object_key),
            self.bundle.bucket.arn_for_objects(self.bundle.s3_object_key),
        ]
        return grant_on(grantee, ("s3:GetObject",), objects)

    def grant_publish_heap_metrics(self, grantee: iam.IGrantable) -> iam.Grant:
        """`cloudwatch:PutMetricData` to the agent's three namespaces only (the heap, Spark streaming, the
        YARN collector's on the master node): it has no resource type, the namespace condition scopes it
        (`Metric.grant_put_metric_data` has no condition)."""
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["cloudwatch:PutMetricData"],
            resource_arns=["*"],
            conditions={
                "StringEquals": {
                    "cloudwatch:namespace": [
                        names.HEAP_NAMESPACE,
                        names.YARN_NAMESPACE,
                        names.STREAMING_NAMESPACE,
                    ]
                }
            },
        )
        acknowledge(
            grantee,
            NAG_STAR_RESOURCE,
            "No narrower resource exists: cloudwatch:PutMetricData has no resource type; the namespace "
            "condition scopes it.",
        )
        return grant
