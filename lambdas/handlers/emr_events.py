"""EMR-events Lambda (EventBridge, source aws.emr): "EMR Instance Group State Change" reporting that a SPOT
TASK group is stuck for lack of capacity or was arrested -> spot fallback at once; "EMR Cluster State Change"
to TERMINATED -> the cluster is gone (sparkscale.usecases.emr_events.handle_emr_event).

Thin: parse at the edge (the events registry), one call into the use case, metrics and logs. A rejected event
(another detail type, an unmanaged cluster, a CORE/MASTER or ON_DEMAND group, an INFO resize message, ...) is
logged with its reason and counted (RejectedEvents); it never fails the invocation. LeaseHeld, Throttled and
TransientAwsError do, so Lambda retries the event (then its DLQ). A duplicate delivery is harmless: the error
is recorded idempotently, the notice ledger keeps the operator message to one, and run_once decides from the
current state.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from sparkscale import events, names
from sparkscale.errors import BadEvent, SparkscaleError
from sparkscale.events.emr import EmrEvent
from sparkscale.usecases.emr_events import EmrEventResult, handle_emr_event
from sparkscale.usecases.shell import WAIT_FOR_SCALER, Outcome

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only

LEASE_WAIT = WAIT_FOR_SCALER  # for the scaler's lease: up to ~4 s, then Lambda retries the event


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    rt = common.runtime(logger)
    managed = common.managed(rt)  # the static list plus the clusters managed by tag
    now = rt.clock()
    try:  # with `now`: an event dated in the future (events.MAX_AHEAD_S) is rejected
        emr_event = events.parse_eventbridge(
            event, family=events.FAMILY_EMR, managed_clusters=managed.clusters, now=now
        )
    except BadEvent as exc:
        return _rejected(exc.reason, exc.cluster_id)
    if not isinstance(emr_event, EmrEvent):  # the registry's emr family parses to EmrEvent
        return _rejected(f"not an EMR event: {type(emr_event).__name__}", None)
    logger.append_keys(cluster_id=emr_event.cluster_id, emr_event=emr_event.kind.value)
    t0 = time.perf_counter()
    try:
        result = handle_emr_event(
            now=now,
            event=emr_event,
            ports=rt.ports,
            config=managed.config_for(emr_event.cluster_id),
            owner=common.owner_of(context),
            lease_wait=LEASE_WAIT,
        )
    except SparkscaleError as exc:
        logger.warning("EMR event not handled now: Lambda retries it", extra={"error": repr(exc)})
        common.emit_count(metrics, names.M_FAILURES, emr_event.cluster_id, error=type(exc).__name__)
        raise
    if result.outcome is Outcome.IGNORED:
        return _rejected(result.reason, emr_event.cluster_id)
    return _handled(result, (time.perf_counter() - t0) * 1000.0)


def _rejected(reason: str, cluster_id: str | None) -> dict[str, Any]:
    logger.info("rejected event: %s", reason, extra={"cluster_id": cluster_id})
    common.emit_count(metrics, names.M_REJECTED_EVENTS, cluster_id, reason=reason)
    return {"result": "rejected", "reason": reason}


def _handled(result: EmrEventResult, ms: float) -> dict[str, Any]:
    ev = result.event
    out: dict[str, Any] = {
        "result": result.outcome.value,
        "reason": result.reason,
        "group_id": ev.group_id,
        "new_error": result.new_error,
        "notice": result.notice.subject if result.notice is not None else None,
        "notify_failed": result.notify_failures > 0,
    }
    if result.run is not None:
        out.update(common.result_to_dict(result.run, ms))
    logger.info("EMR event handled", extra=out)
    if result.outcome is Outcome.FALLBACK:
        common.emit_count(metrics, names.M_CAPACITY_EVENTS, ev.cluster_id, kind=ev.kind.value)
    if result.run is not None:
        common.emit_result(metrics, result.run, ms)
    return out
