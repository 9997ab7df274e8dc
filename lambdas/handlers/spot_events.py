"""Events Lambda (EventBridge): "EC2 Spot Instance Interruption Warning" and "EC2 Instance Rebalance
Recommendation" → move the node to another pool (sparkscale.interruptions.handle_spot_event).

Thin: parse at the edge, one call into the core, metrics and logs. A rejected event (not one of the two, or an
instance outside the managed clusters) is logged with its reason and counted (RejectedEvents); it never fails
the invocation. LeaseHeld, Throttled and TransientAwsError do, so Lambda retries the event. A duplicate
delivery is recognised in the core (the per-cluster notice ledger), under the same lease as the scaler.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from sparkscale import names
from sparkscale.clock import utcnow
from sparkscale.errors import BadEvent, SparkscaleError
from sparkscale.interruptions import InstanceLocator, Result, SpotResult, handle_spot_event, parse_spot_event

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only

LEASE_ATTEMPTS = 5  # run_once holds the cluster's lease for ~1-3 s: wait up to ~4 s, then let Lambda retry
LEASE_WAIT_S = 1.0


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
    try:
        spot = parse_spot_event(event)
    except BadEvent as exc:
        return _rejected(exc.reason)
    logger.append_keys(instance_id=spot.instance_id, spot_event=spot.kind.value)
    rt = common.runtime(logger)
    try:
        result = handle_spot_event(
            now=utcnow(),
            event=spot,
            ports=rt.ports,
            locator=locator(rt),
            config=rt.config,
            owner=common.owner_of(context),
            lease_attempts=LEASE_ATTEMPTS,
            lease_wait_s=LEASE_WAIT_S,
        )
    except SparkscaleError as exc:
        logger.warning("spot event not handled now: Lambda retries it", extra={"error": repr(exc)})
        common.emit_count(metrics, names.M_FAILURES, None, error=type(exc).__name__)
        raise
    if result.result is Result.IGNORED:
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
        "result": result.result.value,
        "reason": result.reason,
        "cluster_id": result.cluster_id,
        "outcome": plan.outcome.value if plan else None,
        "changes": changes,
    }
    logger.info("spot event handled", extra=out)
    metrics.add_dimension(name=names.DIM_CLUSTER_ID, value=result.cluster_id)
    metrics.add_metric(name=names.M_SPOT_EVENTS, unit=MetricUnit.Count, value=1)
    moved = int(result.result is Result.APPLIED)
    metrics.add_metric(name=names.M_SPOT_REPLACEMENTS, unit=MetricUnit.Count, value=moved)
    failures = int(result.result is Result.FAILED) + int(result.notify_failed)
    if failures:
        metrics.add_metric(name=names.M_FAILURES, unit=MetricUnit.Count, value=failures)
    metrics.add_metadata(key="result", value=result.result.value)
    metrics.flush_metrics()
    return out
