"""botocore errors -> sparkscale's typed errors (sparkscale.errors). The use cases decide what each means.

| AWS says                                                         | we raise          |
|------------------------------------------------------------------|-------------------|
| a throttling code (after botocore's own retries)                 | Throttled         |
| cluster terminating/terminated/not valid/not found               | ClusterGone       |
| group resizing / reconfiguring / busy / another request running  | GroupBusy         |
| ValidationException, InvalidRequestException, other 4xx          | InvalidRequest    |
| 5xx, InternalServerError/Exception, connection or read timeouts  | TransientAwsError |

EMR reports most conditions as InvalidRequestException or ValidationException with a sentence; the sentence is
matched with the patterns below (checked against moto's and the EMR documentation's wording). The use cases
also checks a group's status before resizing, so a busy group is normally caught before EMR is asked.
"""

from __future__ import annotations

import re
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.errors import (
    ClusterGone,
    GroupBusy,
    InvalidRequest,
    SparkscaleError,
    Throttled,
    TransientAwsError,
)

THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
TRANSIENT_CODES: Final = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CLUSTER_NOT_FOUND_CODES: Final = frozenset({"NoSuchCluster", "ClusterNotFound"})
_UNKNOWN_GROUP: Final = re.compile(r"instance ?group.*(not valid|does not exist|not found|unknown)", re.I)
_GONE: Final = re.compile(
    r"terminat|shutting.?down|cluster id .* (is )?not valid|cluster .*(does not exist|not found)"
    r"|no such cluster",
    re.I,
)
_BUSY: Final = re.compile(
    r"resiz|reconfigur|in progress|currently being|already being|another (request|operation|resize)"
    r"|not in a (valid|modifiable|running) state|busy|try again later|pending (modification|change)",
    re.I,
)


def _parts(exc: ClientError) -> tuple[str, str, int]:
    err = exc.response.get("Error", {}) or {}
    meta = exc.response.get("ResponseMetadata", {}) or {}
    status = int(meta.get("HTTPStatusCode", 0) or 0)
    return str(err.get("Code", "") or ""), str(err.get("Message", "") or ""), status


def translate(exc: ClientError | BotoCoreError, operation: str) -> SparkscaleError:  # noqa: PLR0911
    """The typed error for a botocore exception raised by `operation` (e.g. "ModifyInstanceGroups")."""
    if isinstance(exc, BotoCoreError):  # connection refused/reset, timeouts, ...: after botocore's retries
        return TransientAwsError(f"{operation}: {type(exc).__name__}: {exc}", operation=operation)
    code, message, status = _parts(exc)
    text = f"{operation}: {code or status}: {message}".rstrip(": ")
    kw = {"operation": operation, "code": code or None}
    if code in THROTTLING_CODES or status == 429:
        return Throttled(text, **kw)
    if code in TRANSIENT_CODES or status >= 500:
        return TransientAwsError(text, **kw)
    if code in CLUSTER_NOT_FOUND_CODES:
        return ClusterGone(text, **kw)
    if _UNKNOWN_GROUP.search(message):
        return InvalidRequest(text, **kw)
    if _GONE.search(message):
        return ClusterGone(text, **kw)
    if _BUSY.search(message):
        return GroupBusy(text, **kw)
    return InvalidRequest(text, **kw)
