"""Fanout Lambda (the evaluation queue, SQS, bounded by the event source's maximum concurrency): one message,
one cluster's evaluation for one reconcile period (usecases/fanout.py).

Powertools batch processing reports each failed message (ReportBatchItemFailures): only those are retried,
about ten seconds later, doubling with each receive (ChangeMessageVisibility; the queue's visibility timeout
when that fails), and after `MAX_RECEIVES` the DLQ keeps them (its alarm tells operators). A message is
idempotent per cluster and period (Powertools Idempotency on its key, the same DynamoDB table); a message
for a cluster another evaluation holds the lease of fails and is retried, never evaluated twice at once. A
message that is not an evaluation is logged and counted (RejectedEvents), never retried and never acted on.
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from sparkscale import names
from sparkscale.errors import BadEvent

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only
MANAGED_CACHE_S = 60.0  # how long a warm container reuses the list of managed clusters and their settings
IDEMPOTENCY_TTL_S = 3600  # a message's key names its period: an hour outlives every retry of it


def evaluate(evaluation: dict[str, Any], owner: str) -> dict[str, Any]:
    """The business function (idempotent on evaluation["key"]): one queued evaluation and its metrics."""
    from sparkscale.usecases.fanout import Evaluation  # noqa: PLC0415 - lazy: small cold import
    from sparkscale.usecases.fanout import evaluate as evaluate_once  # noqa: PLC0415

    rt = common.runtime(logger)
    cid = evaluation["cluster_id"]
    config = _managed(rt).config_for(cid)
    todo = Evaluation(
        cid,
        datetime.fromisoformat(evaluation["period"]),
        bool(evaluation["in_alarm"]),
        above_minimum=bool(evaluation.get("above_minimum", False)),
    )
    result, ms = common.timed(
        lambda: evaluate_once(todo, now=rt.clock(), ports=rt.ports, config=config, owner=owner)
    )
    common.emit_result(metrics, result, ms)
    return common.result_to_dict(result, ms)


def _idempotent(rt: common.Runtime, context: Any = None) -> Any:
    """`evaluate`, once per cluster and period (a message's key; SQS delivers at least once)."""
    return common.idempotent(
        rt,
        evaluate,
        cache_key="fanout_idempotent",
        argument="evaluation",
        key_jmespath="key",
        expires_after_s=IDEMPOTENCY_TTL_S,
        context=context,
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.batch import (  # noqa: PLC0415 - lazy: cold start
        BatchProcessor,
        EventType,
        process_partial_response,
    )

    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        logger.warning("rejected event: not an SQS batch")
        common.emit_count(metrics, names.M_REJECTED_EVENTS, None, reason="not an SQS batch")
        return {"batchItemFailures": []}
    rt = common.runtime(logger)
    managed = _managed(rt)
    fn: Any = evaluate
    if rt.dynamodb is not None:
        fn = _idempotent(rt, context)

    def record_handler(record: Any) -> dict[str, Any]:
        return _one(fn, record, managed)

    # a processor per invocation: it keeps the batch's outcomes on itself
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor))


def _managed(rt: common.Runtime, *, refresh: bool = False) -> common.Managed:
    """The managed clusters, read at most every MANAGED_CACHE_S per warm container: a message names one
    cluster, and reading the whole registry for each would cost one Query of every registration per
    evaluation. A cluster missing from it is looked for again (`refresh`) before its message is rejected."""
    cached = rt.cache.get("fanout_managed")
    now = time.monotonic()
    if refresh or cached is None or now - cached[0] > MANAGED_CACHE_S:
        cached = (now, common.managed(rt))
        rt.cache["fanout_managed"] = cached
    return cast(common.Managed, cached[1])


def _one(fn: Any, record: Any, managed: common.Managed) -> dict[str, Any]:
    """One record: rejected (logged, counted, done) or evaluated; raises when it must be retried."""
    from sparkscale.usecases.fanout import parse_body  # noqa: PLC0415 - lazy: small cold import

    try:
        try:
            todo = parse_body(record.body, managed=managed.clusters)
        except BadEvent as exc:
            if exc.cluster_id is None:
                raise
            todo = parse_body(record.body, managed=_managed(common.runtime(), refresh=True).clusters)
    except BadEvent as exc:
        logger.warning("rejected message: %s", exc.reason, extra={"cluster_id": exc.cluster_id})
        common.emit_count(metrics, names.M_REJECTED_EVENTS, exc.cluster_id, reason=exc.reason)
        return {"outcome": "rejected", "reason": exc.reason}
    evaluation = {
        "key": todo.key,
        "cluster_id": todo.cluster_id,
        "period": todo.period.isoformat(),
        "in_alarm": todo.in_alarm,
        "above_minimum": todo.above_minimum,
    }
    try:
        return dict(fn(evaluation=evaluation, owner=str(record.message_id)))
    except Exception as exc:
        logger.warning(
            "evaluation of %s not done, retried later: %s",
            todo.cluster_id,
            exc,
            extra={"cluster_id": todo.cluster_id},
        )
        common.emit_count(metrics, names.M_FAILURES, todo.cluster_id, error=type(exc).__name__)
        _retry_sooner(record, todo.cluster_id)
        raise


def _retry_sooner(record: Any, cluster_id: str) -> None:
    """Bring a failed message back after retry_delay_s instead of the queue's visibility timeout (six
    function timeouts: longer than two periods). Without a queue to ask, or when SQS refuses, the visibility
    timeout stands: the message is retried all the same."""
    from sparkscale.usecases.fanout import RetryingQueue, retry_delay_s  # noqa: PLC0415 - lazy

    queue = common.runtime().evaluations
    raw = getattr(record, "raw_event", None)
    handle = raw.get("receiptHandle") if isinstance(raw, dict) else None
    if not isinstance(queue, RetryingQueue) or not isinstance(handle, str) or not handle:
        return
    attributes = raw.get("attributes") if isinstance(raw, dict) else None
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    try:
        receives = int(count) if count is not None else 1
    except (TypeError, ValueError):
        receives = 1
    delay = retry_delay_s(receives, random.random())  # noqa: S311 - jitter, not a secret
    try:
        queue.retry_later(handle, delay)
    except Exception as exc:  # the visibility timeout stands: retried later, never lost
        logger.warning("could not bring %s's message back sooner: %s", cluster_id, exc)
