"""Digest Lambda (feature `digest`; EventBridge schedule, every hour): in the local hour `digest_hour` of
`digest_time_zone`, email the daily digest of the day before from the audit records of every managed cluster
(sparkscale.usecases.digest; docs/email.md, "Daily digest"). Any other hour does nothing.

Thin: one call into the use case, a log line. An AWS error reading the audit fails the invocation, so that
EventBridge retries it; the notice ledger's mark per local date keeps a retry from sending twice.
"""

from __future__ import annotations

import os
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
        )
    except SparkscaleError as exc:
        logger.warning("digest failed: EventBridge retries it", extra={"error": repr(exc)})
        common.emit_count(metrics, names.M_FAILURES, None, error=type(exc).__name__)
        raise
    out = digest.result_dict(result)
    logger.info("digest", extra={"result": out})
    return out
