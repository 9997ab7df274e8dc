"""Reconcile Lambda (EventBridge schedule, every `reconcile_rate_s`, 120 s by default): re-evaluate every
managed cluster that has one of the stack's alarms in ALARM or whose TASK groups are above their minimum.

Deployed, it fans out (usecases/fanout.py): it reads the alarm states (DescribeAlarms, every page), the
managed clusters and what their last evaluations found (the state items' size records, BatchGetItem), and
queues one message per cluster that needs an evaluation this period, spread over the period within the
rate budget; the fanout Lambda evaluates them. Without those records (none yet, unreadable, or the read
failed) a cluster is queued. Without a queue (the demo, the CLI) it evaluates every cluster in turn, as below.

CloudWatch notifies once per state change, so without this an alarm that stays in ALARM would stop the scaling
after one step. One failing cluster never stops the others: its error is logged and counted (Failures), and
the next minute's run tries again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics
from sparkscale import names
from sparkscale.errors import SparkscaleError

from handlers import common

if TYPE_CHECKING:
    from sparkscale.ports import SizeObservation

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    from sparkscale.usecases.scale import RunResult, reconcile_once  # noqa: PLC0415 - lazy: small cold import

    rt = common.runtime(logger)
    managed = common.managed(rt)  # the static list plus the clusters managed by tag
    if not isinstance(event, dict):
        logger.warning("rejected event: not a JSON object; evaluating on schedule anyway")
    in_alarm: dict[str, Any] = {}
    if rt.alarms is not None:
        try:
            in_alarm = dict(rt.alarms.clusters_in_alarm(rt.alarm_prefix))
        except SparkscaleError as exc:  # without alarm states, evaluate every cluster
            logger.warning("DescribeAlarms failed (%s): evaluating every managed cluster", exc)
            in_alarm = {c: ["unknown"] for c in managed.clusters}
    if rt.evaluations is not None:  # the fan-out: one queued message per cluster, evaluated elsewhere
        return _fan_out(rt, managed.clusters, in_alarm)
    owner = common.owner_of(context)
    out: list[dict[str, Any]] = []
    for cid in managed.clusters:

        def step(cid: str = cid) -> RunResult:
            return reconcile_once(
                now=rt.clock(),
                cluster_id=cid,
                ports=rt.ports,
                config=managed.config_for(cid),
                owner=owner,
                in_alarm=cid in in_alarm,
            )

        try:
            result, ms = common.timed(step)
        except Exception as exc:  # one cluster's failure never stops the others
            logger.exception("reconcile of %s failed", cid, extra={"cluster_id": cid})
            common.emit_count(metrics, names.M_FAILURES, cid, error=type(exc).__name__)
            out.append({"cluster_id": cid, "outcome": "failed", "detail": f"{type(exc).__name__}: {exc}"})
            continue
        common.emit_result(metrics, result, ms)  # skipped clusters too: continuous node-count series
        out.append(common.result_to_dict(result, ms))
    return {"results": out, "in_alarm": sorted(in_alarm)}


def _observations(rt: common.Runtime, clusters: list[str]) -> Mapping[str, SizeObservation] | None:
    """What the clusters' last evaluations found of their sizes; None (queue every cluster) when the store
    keeps none, the selection is off, or the read fails: never a reason to leave a cluster out."""
    from sparkscale.ports import SizeObservationStore, supports  # noqa: PLC0415 - lazy: small cold import

    if rt.config.at_minimum_recheck_s <= 0 or not supports(rt.ports.state, SizeObservationStore):
        return None
    try:
        return cast(SizeObservationStore, rt.ports.state).observations(clusters)
    except Exception as exc:  # the schedule must queue even then: every cluster is evaluated
        logger.warning("size records unreadable (%s): queueing every managed cluster", exc)
        return None


def _fan_out(rt: common.Runtime, clusters: list[str], in_alarm: dict[str, Any]) -> dict[str, Any]:
    from sparkscale.usecases.fanout import plan  # noqa: PLC0415 - lazy: small cold import

    assert rt.evaluations is not None
    observed = _observations(rt, [c for c in clusters if c not in in_alarm])
    p = plan(clusters, in_alarm, now=rt.clock(), config=rt.config, observed=observed)
    if p.deferred:
        logger.warning(
            "%d clusters left to a later period: the rate budget allows %d evaluations a period (%s)",
            len(p.deferred),
            p.room,
            p.budget.bound_by,
        )
    sent = rt.evaluations.send(p.evaluations)  # raises when nothing could be queued: EventBridge retries
    common.emit_count(metrics, names.M_EVALUATIONS_SENT, "all", count=sent)
    if p.deferred:
        common.emit_count(metrics, names.M_EVALUATIONS_DEFERRED, "all", count=len(p.deferred))
    common.emit_count(metrics, names.M_EVALUATIONS_NOT_NEEDED, "all", count=len(p.at_minimum))
    return {
        "queued": sent,
        "deferred": list(p.deferred),
        "at_minimum": len(p.at_minimum),
        "in_alarm": sorted(in_alarm),
        "budget_per_period": p.room,
    }
