"""Typed, validated stack settings from the CDK context (cdk.json or `cdk synth -c key=value`).

Context keys:
- ``sparkscale``: the one `Config` (policy + deployment settings; see lambdas/sparkscale/config.py).
- ``sparkscale:features``: feature flags (`Features`), each true/false.
- ``sparkscale:stackName``: the CloudFormation stack name (default "Sparkscale").
- ``sparkscale:emrInstanceRoleName``: optional name of the EMR EC2 instance role; when set the stack lets it
  read the heap-agent assets and publish the heap metrics (PutMetricData to the heap namespace only).

Every error is a `ConfigError` naming the field, raised before any construct is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from sparkscale.config import CONTEXT_KEY, Config, ConfigError
from sparkscale.config_io import from_cdk_context

FEATURES_KEY: Final = "sparkscale:features"
STACK_NAME_KEY: Final = "sparkscale:stackName"
EMR_INSTANCE_ROLE_KEY: Final = "sparkscale:emrInstanceRoleName"

# Lambda caps all environment variables of a function at 4 KiB together; leave room for the other variables.
MAX_CONFIG_JSON_BYTES: Final = 3072
# The reconcile handler's timeout is the lease minus this margin, so a lease always outlives an invocation.
LEASE_MARGIN_S: Final = 10
MAX_HANDLER_TIMEOUT_S: Final = 60
STACK_NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9-]{0,127}$"
ROLE_NAME_PATTERN: Final = r"^[\w+=,.@-]{1,64}$"
_STACK_NAME = re.compile(STACK_NAME_PATTERN)
_ROLE_NAME = re.compile(ROLE_NAME_PATTERN)


@dataclass(frozen=True, kw_only=True)
class Features:
    """Feature flags (context ``sparkscale:features``)."""

    heap_alarms: bool = True  # alarms on the heap agent's metrics (needs the bootstrap action on the cluster)
    spot_events: bool = True  # EventBridge spot interruption / rebalance rules and the events Lambda
    emr_events: bool = True  # EventBridge EMR instance-group / cluster state rule and the EMR-events Lambda
    discovery: bool = False  # manage clusters carrying the opt-in tag (the discovery Lambda, tag-scoped IAM)
    digest: bool = False  # the daily digest email (an hourly Lambda; docs/email.md "Daily digest")
    dashboards: bool = True  # one CloudWatch dashboard for every cluster (a variable picks the cluster)
    heap_bootstrap_assets: bool = True  # upload bootstrap/ and the agent as S3 assets, output the action path
    dlq_alarms: bool = True  # tell operators when a dead-letter queue holds a message
    retain_data: bool = False  # keep the DynamoDB table on `cdk destroy`

    @classmethod
    def from_mapping(cls, raw: Any) -> Features:
        source = f"cdk context {FEATURES_KEY!r}"
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError("<document>", "must be an object of true/false flags", source=source)
        known = {f.name for f in fields(cls)}
        values: dict[str, bool] = {}
        for key, given in raw.items():
            if key not in known:
                raise ConfigError(key, f"unknown feature (known: {', '.join(sorted(known))})", source=source)
            value = (
                given.lower() == "true"
                if isinstance(given, str) and given.lower() in ("true", "false")
                else given
            )
            if not isinstance(value, bool):
                raise ConfigError(key, f"must be true or false, got {given!r}", source=source)
            values[key] = value
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class StackSettings:
    config: Config
    features: Features = Features()
    stack_name: str = "Sparkscale"
    emr_instance_role_name: str | None = None

    @property
    def handler_timeout_s(self) -> int:
        """Timeout of every scaler Lambda: shorter than the evaluation lease by a margin, at most a minute."""
        return min(MAX_HANDLER_TIMEOUT_S, self.config.lease_ttl_s - LEASE_MARGIN_S)

    @property
    def discovers(self) -> bool:
        """Clusters carrying the opt-in tag are managed (the feature is on and a tag key is set)."""
        return self.features.discovery and bool(self.config.discovery_tag_key)

    @property
    def reconcile_rate_minutes(self) -> int:
        return self.config.reconcile_rate_s // 60

    @classmethod
    def from_context(cls, lookup: Callable[[str], Any]) -> StackSettings:
        """`lookup` is `app.node.try_get_context` (or a dict's `get`)."""
        config = from_cdk_context({CONTEXT_KEY: lookup(CONTEXT_KEY) or {}})
        features = Features.from_mapping(_maybe_json(lookup(FEATURES_KEY)))
        stack_name = lookup(STACK_NAME_KEY) or "Sparkscale"
        role = lookup(EMR_INSTANCE_ROLE_KEY) or None
        settings = cls(config=config, features=features, stack_name=stack_name, emr_instance_role_name=role)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Deployment rules on top of the Config's own validation."""
        src = f"cdk context {CONTEXT_KEY!r}"
        cfg = self.config
        if not cfg.clusters and not self.discovers:
            raise ConfigError(
                "clusters",
                "list at least one EMR cluster id to manage (j-…), or manage clusters by tag "
                "(discovery_tag_key and the discovery feature)",
                source=src,
            )
        if len(set(cfg.clusters)) != len(cfg.clusters):
            raise ConfigError("clusters", "a cluster id is listed twice", source=src)
        if cfg.reconcile_rate_s % 60:
            raise ConfigError(
                "reconcile_rate_s",
                f"must be whole minutes for an EventBridge rate, got {cfg.reconcile_rate_s}",
                source=src,
            )
        if cfg.lease_ttl_s < 2 * LEASE_MARGIN_S:
            raise ConfigError(
                "lease_ttl_s",
                f"must be >= {2 * LEASE_MARGIN_S} s so a handler fits inside its lease",
                source=src,
            )
        size = len(cfg.to_json().encode())
        if size > MAX_CONFIG_JSON_BYTES:
            raise ConfigError(
                "<document>",
                f"the config is {size} bytes as JSON; the Lambda environment leaves {MAX_CONFIG_JSON_BYTES}",
                source=src,
            )
        if not _STACK_NAME.match(self.stack_name):
            raise ConfigError(
                STACK_NAME_KEY, "letters, digits and '-', starting with a letter", source="cdk context"
            )
        if self.emr_instance_role_name is not None and not _ROLE_NAME.match(self.emr_instance_role_name):
            raise ConfigError(EMR_INSTANCE_ROLE_KEY, "not an IAM role name", source="cdk context")
        if len(f"{cfg.alarm_prefix}-clusters") > 255:
            raise ConfigError("alarm_prefix", "too long for a dashboard name", source=src)


def _maybe_json(value: Any) -> Any:
    """`cdk synth -c sparkscale:features='{"spot_events": false}'` passes a string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError("<document>", "not JSON", source=f"cdk context {FEATURES_KEY!r}") from None
    return value
