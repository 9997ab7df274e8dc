"""Alarm Lambda (SNS alarm topic): parse at the edge, then one idempotent `usecases.scale.run_once` per
cluster.

The alarm is a wake-up call: run_once re-reads the cluster and its metrics and decides from the current state.
A duplicate SNS delivery (same MessageId) does nothing (Powertools Idempotency on the business function, same
DynamoDB table). A rejected event is logged with one reason and counted (RejectedEvents); it never raises. A
transient failure raises, so SNS retries and then the subscription's DLQ keeps the message.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events import alarm as events

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only
IDEMPOTENCY_TTL_S = 6 * 3600  # SNS retries a failed async invocation for up to 6 hours


def evaluate(trigger: dict[str, Any], owner: str) -> dict[str, Any]:
    """The business function (idempotent on trigger["message_id"]): one run_once and its metrics."""
    from sparkscale.usecases.scale import run_once  # noqa: PLC0415 - lazy: keeps the cold import small

    rt = common.runtime(logger)
    logger.info("alarm trigger", extra={"trigger": trigger})
    cid = trigger["cluster_id"]
    config = common.managed(rt).config_for(cid)  # its profile's settings when managed by tag
    result, ms = common.timed(
        lambda: run_once(now=rt.clock(), cluster_id=cid, ports=rt.ports, config=config, owner=owner)
    )
    common.emit_result(metrics, result, ms)
    return common.result_to_dict(result, ms)


def _idempotent(rt: common.Runtime, context: Any = None) -> Any:
    """`evaluate`, once per SNS message id (SNS retries a failed delivery)."""
    return common.idempotent(
        rt,
        evaluate,
        cache_key="idempotent",
        argument="trigger",
        key_jmespath="message_id",
        expires_after_s=IDEMPOTENCY_TTL_S,
        context=context,
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    rt = common.runtime(logger)
    origin = common.origin_of(context)  # an alarm of another account or region is rejected
    out: list[dict[str, Any]] = []
    clusters = common.managed(rt).clusters
    for record in events.split_records(event):
        try:
            trigger = events.parse_event(record, managed_clusters=clusters, origin=origin)
        except BadEvent as exc:
            logger.warning("rejected event: %s", exc.reason, extra={"cluster_id": exc.cluster_id})
            common.emit_count(metrics, names.M_REJECTED_EVENTS, exc.cluster_id, reason=exc.reason)
            out.append({"outcome": "rejected", "reason": exc.reason})
            continue
        out.append(_run(rt, trigger.to_dict(), context))
    return {"results": out}


def _run(rt: common.Runtime, trigger: dict[str, Any], context: Any) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
        IdempotencyAlreadyInProgressError,
    )

    fn = _idempotent(rt, context)
    try:
        return dict(fn(trigger=trigger, owner=common.owner_of(context)))
    except IdempotencyAlreadyInProgressError:
        logger.info(
            "duplicate delivery still in progress: nothing to do", extra={"message_id": trigger["message_id"]}
        )
        return {"cluster_id": trigger["cluster_id"], "outcome": "duplicate_in_progress"}
