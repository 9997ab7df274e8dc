"""Digest Lambda (feature `digest`; EventBridge schedule, every hour): in the local hour `digest_hour` of
`digest_time_zone`, email the daily digest of the day before from the audit records of every managed cluster
(sparkscale.usecases.digest; docs/email.md, "Daily digest"). Any other hour does nothing.

Thin: one call into the use case, a log line, a count per cluster whose week could not be compared. An AWS
error reading the audit fails the invocation, so that EventBridge retries it; the notice ledger's mark per
local date keeps a retry from sending twice.

The weekly section's comparison is the savings report's own code (sparkscale_tools.replay.savings, staged
into the asset beside `sparkscale`), imported on the first comparison only: a daily digest, and every other
handler, never loads the replay. Its time budget is the invocation's remaining time (`context`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from sparkscale import names
from sparkscale.errors import SparkscaleError
from sparkscale.ports import AuditReader, supports
from sparkscale.usecases import digest

from handlers import common

logger = Logger(service=os.environ.get(names.ENV_POWERTOOLS_SERVICE_NAME, names.SERVICE_NAME))
metrics = Metrics(namespace=names.SCALER_NAMESPACE, service="")  # dimension ClusterId only


@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: Any) -> dict[str, Any]:
    rt = common.runtime(logger)
    if not supports(rt.ports.state, AuditReader):
        raise RuntimeError("the state store cannot read the audit trail")
    managed = common.managed(rt)  # the static list plus the clusters managed by tag
    try:
        result = digest.run_digest(
            ports=rt.ports,
            audit=cast(AuditReader, rt.ports.state),
            config=rt.config,
            clusters=managed.clusters,
            now=rt.clock(),
            compare_week=None if rt.clients is None else LazyWeekComparer(rt),
            remaining_s=lambda: context.get_remaining_time_in_millis() / 1000.0,
        )
    except SparkscaleError as exc:
        logger.warning("digest failed: EventBridge retries it", extra={"error": repr(exc)})
        common.emit_count(metrics, names.M_FAILURES, None, error=type(exc).__name__)
        raise
    for skipped in result.not_compared:
        common.emit_count(
            metrics, names.M_WEEKLY_COMPARISONS_SKIPPED, skipped.cluster_id, reason=str(skipped.reason)
        )
    out = digest.result_dict(result)
    logger.info("digest", extra={"result": out})
    return out


class LazyWeekComparer:
    """The savings report's WeekComparer, imported and built on the first comparison (the weekly digest)."""

    def __init__(self, rt: common.Runtime) -> None:
        self._rt = rt

    def __call__(
        self,
        cluster_id: str,
        records: Sequence[Mapping[str, Any]],
        start: datetime,
        end: datetime,
        *,
        budget_s: float,
    ) -> digest.WeekComparison:
        compare = self._rt.cache.get("week_comparer")
        if compare is None:
            try:
                from sparkscale_tools.replay.savings import WeekComparer  # noqa: PLC0415
            except ImportError as exc:  # a custom code_path without the tools: say so in the email
                raise digest.ComparisonUnavailable(digest.SkipReason.NOT_DEPLOYED, str(exc)) from exc
            c = self._rt.clients
            compare = WeekComparer(
                emr=c.emr, cloudwatch=c.cloudwatch, ec2=c.ec2, config=self._rt.config, clock=time.monotonic
            )
            self._rt.cache["week_comparer"] = compare
        return cast(digest.WeekComparison, compare(cluster_id, records, start, end, budget_s=budget_s))
