"""Spot-events Lambda (EventBridge): "EC2 Spot Instance Interruption Warning" and "EC2 Instance Rebalance
Recommendation" -> move the node to another pool (sparkscale.usecases.spot_events.handle_spot_event).

Thin: parse at the edge (the events registry), one call into the use case, metrics and logs. A rejected event
(not one of the two, outside its window: a warning more than 2 minutes old or dated ahead, or an instance
outside the managed clusters) is logged with its reason and counted (RejectedEvents); it never fails the
invocation. LeaseHeld, Throttled and TransientAwsError do, so Lambda retries the event. A duplicate delivery
is recognised in the use case (the per-cluster notice ledger), under the same lease as the scaler.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from sparkscale import events, names
from sparkscale.errors import BadEvent, SparkscaleError
from sparkscale.events.spot import SpotEvent
from sparkscale.ports import InstanceLocator
from sparkscale.usecases.shell import WAIT_FOR_SCALER, Outcome
from sparkscale.usecases.spot_events import SpotResult, handle_spot_event

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only

LEASE_WAIT = WAIT_FOR_SCALER  # for the scaler's lease: up to ~4 s, then Lambda retries the event


def locator(rt: common.Runtime) -> InstanceLocator:
    """EC2 + EMR instance locator, built once per warm container (kept in the Runtime's cache)."""
    if "spot_locator" not in rt.cache:
        import boto3  # noqa: PLC0415 - lazy: cold start only
        from sparkscale.adapters.aws import boto_config  # noqa: PLC0415
        from sparkscale.adapters.instance_locator import EmrInstanceLocator  # noqa: PLC0415

        cfg = boto_config()
        rt.cache["spot_locator"] = EmrInstanceLocator(
            ec2=boto3.client("ec2", config=cfg), emr=boto3.client("emr", config=cfg)
        )
    located: InstanceLocator = rt.cache["spot_locator"]
    return located


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    rt = common.runtime(logger)
    now = rt.clock()
    try:  # with `now`: a warning outside its two minutes is rejected (events.spot.INTERRUPTION_MAX_AGE_S)
        spot = events.parse_eventbridge(event, family=events.FAMILY_SPOT, now=now)
    except BadEvent as exc:
        return _rejected(exc.reason)
    if not isinstance(spot, SpotEvent):  # the registry's spot family parses to SpotEvent
        return _rejected(f"not a spot event: {type(spot).__name__}")
    logger.append_keys(instance_id=spot.instance_id, spot_event=spot.kind.value)
    managed = common.managed(rt)
    try:
        result = handle_spot_event(
            now=now,
            event=spot,
            ports=rt.ports,
            locator=locator(rt),
            config=managed.spot_config(),  # its locator looks in the clusters managed by tag too
            config_for=managed.config_for,  # and the cluster found is handled with its profile's settings
            owner=common.owner_of(context),
            lease_wait=LEASE_WAIT,
        )
    except SparkscaleError as exc:
        logger.warning("spot event not handled now: Lambda retries it", extra={"error": repr(exc)})
        common.emit_count(metrics, names.M_FAILURES, None, error=type(exc).__name__)
        raise
    if result.outcome is Outcome.IGNORED:
        return _rejected(result.reason)
    return _handled(result)


def _rejected(reason: str) -> dict[str, Any]:
    logger.info("rejected event: %s", reason)
    common.emit_count(metrics, names.M_REJECTED_EVENTS, None, reason=reason)
    return {"result": "rejected", "reason": reason}


def _handled(result: SpotResult) -> dict[str, Any]:
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415 - already imported by Metrics

    plan = result.plan
    changes = [
        {"group_id": t.group_id, "from": t.current, "to": t.target} for t in (plan.changes if plan else ())
    ]
    out = {
        "result": result.outcome.value,
        "reason": result.reason,
        "cluster_id": result.cluster_id,
        "outcome": plan.kind.value if plan else None,
        "changes": changes,
    }
    logger.info("spot event handled", extra=out)
    with common.METRICS_LOCK:
        metrics.add_dimension(name=names.DIM_CLUSTER_ID, value=result.cluster_id)
        metrics.add_metric(name=names.M_SPOT_EVENTS, unit=MetricUnit.Count, value=1)
        moved = int(result.outcome is Outcome.APPLIED)
        metrics.add_metric(name=names.M_SPOT_REPLACEMENTS, unit=MetricUnit.Count, value=moved)
        failures = int(result.outcome is Outcome.FAILED) + result.notify_failures
        if failures:
            metrics.add_metric(name=names.M_FAILURES, unit=MetricUnit.Count, value=failures)
        metrics.add_metadata(key="result", value=result.outcome.value)
        metrics.flush_metrics()
    return out
