"""Discovery Lambda (EventBridge: "EMR Cluster State Change" in any state, and a schedule every
`reconcile_rate_s`): manage every EMR cluster that carries the opt-in tag, from its first minute to its
termination, without redeploying (sparkscale.usecases.discovery; docs/clusters-by-tag.md).

Thin: parse at the edge (events/discovery.py), one call into the use case, logs and metrics. A rejected event
is logged and counted (RejectedEvents); an AWS error fails the invocation so that EventBridge retries it (the
next sweep catches up in any case).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from sparkscale import names
from sparkscale.errors import BadEvent, SparkscaleError
from sparkscale.events.discovery import ClusterStateChange, parse_discovery_event
from sparkscale.ports import DiscoveryPorts
from sparkscale.usecases import discovery

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only


def discovery_ports(rt: common.Runtime) -> DiscoveryPorts:
    """EMR, CloudWatch and the registry, built once per warm container (kept in the Runtime's cache)."""
    if "discovery" not in rt.cache:
        from sparkscale.adapters.discovery import (  # noqa: PLC0415 - lazy: cold start only
            CloudWatchAlarmWriter,
            DynamoClusterRegistry,
            EmrClusterDirectory,
        )

        rt.cache["discovery"] = DiscoveryPorts(
            directory=EmrClusterDirectory(rt.clients.emr),
            alarms=CloudWatchAlarmWriter(
                rt.clients.cloudwatch,
                alarm_topic_arn=os.environ.get(names.ENV_ALARM_TOPIC_ARN, ""),
                operator_alarm_topic_arn=os.environ.get(names.ENV_OPERATOR_ALARM_TOPIC_ARN, ""),
            ),
            registry=rt.registry or DynamoClusterRegistry(rt.clients.dynamodb, rt.table_name),
        )
    ports: DiscoveryPorts = rt.cache["discovery"]
    return ports


def _time_left(context: Any) -> Callable[[], float] | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return lambda: float(remaining()) / 1000.0


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        parsed = parse_discovery_event(event)
    except BadEvent as exc:
        logger.info("rejected event: %s", exc.reason)
        common.emit_count(metrics, names.M_REJECTED_EVENTS, None, reason=exc.reason)
        return {"result": "rejected", "reason": exc.reason}
    rt = common.runtime(logger)
    run = discovery.Discovery(
        ports=rt.ports,
        discovery=discovery_ports(rt),
        config=rt.config,
        now=rt.clock(),
        include_heap=os.environ.get(names.ENV_HEAP_ALARMS, "true").lower() != "false",
        time_left_s=_time_left(context),
    )
    try:
        if isinstance(parsed, ClusterStateChange):
            logger.append_keys(cluster_id=parsed.cluster_id, emr_state=parsed.state)
            change = discovery.handle_state_change(run, parsed.cluster_id, parsed.state)
            out = discovery.change_dict(change)
        else:
            out = discovery.summary(discovery.sweep(run))
    except SparkscaleError as exc:
        logger.warning("discovery failed: EventBridge retries it", extra={"error": repr(exc)})
        common.emit_count(metrics, names.M_FAILURES, None, error=type(exc).__name__)
        raise
    logger.info("discovery", extra={"result": out})
    return out
