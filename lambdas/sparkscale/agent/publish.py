"""From a node snapshot to CloudWatch: the metric data, the clients, and a bounded retry buffer.

One PutMetricData call per interval carries every metric of the interval and, after failures, the unsent
intervals before it (each datum keeps its own Timestamp, so a late batch lands in its own minute and a Sum
over nodes is never counted twice). Failed batches wait in a bounded buffer; when it is full the oldest is
dropped and counted. boto3 is used when the node's Python has it; otherwise the AWS CLI (present on every
EMR node).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import tempfile
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from sparkscale import names

if TYPE_CHECKING:  # pragma: no cover - annotations only (never evaluated: the node may run Python 3.7)
    from collections.abc import Callable, Mapping

    from sparkscale.agent.aggregate import HeapSnapshot, StreamingSnapshot

    Datum = dict[str, Any]
MAX_DATUMS_PER_CALL = 1000  # the PutMetricData limit
DEFAULT_MAX_PENDING_BATCHES = 60  # one hour of minutes: 480 datums, well under one call's limit
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 10

# Error codes after which the same request can succeed later. Everything unknown is retried as well (an IAM
# policy or credentials can be fixed while the node runs); only a request CloudWatch calls invalid is dropped.
PERMANENT_ERROR_CODES = frozenset(
    {"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "ParamValidationError"}
)
THROTTLING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)

# (metric name, unit, HeapSnapshot attribute): the fixed set every batch carries, zeros included.
METRICS = (
    (names.HEAP_EXECUTOR_USED_BYTES, "Bytes", "executor_used_bytes"),
    (names.HEAP_EXECUTOR_MAX_BYTES, "Bytes", "executor_max_bytes"),
    (names.HEAP_EXECUTOR_USED_PCT, "Percent", "executor_used_pct"),
    (names.HEAP_EXECUTOR_MAX_JVM_USED_PCT, "Percent", "executor_max_jvm_used_pct"),
    (names.HEAP_JVM_COUNT, "Count", "executor_jvms"),
    (names.HEAP_DRIVER_USED_BYTES, "Bytes", "driver_used_bytes"),
    (names.HEAP_DRIVER_MAX_BYTES, "Bytes", "driver_max_bytes"),
    (names.HEAP_DRIVER_USED_PCT, "Percent", "driver_used_pct"),
)
# Only from a node where a driver sent them (dynamic allocation on): no datum rather than a misleading 0.
ALLOCATION_METRICS = (
    (names.SPARK_EXECUTORS_NEEDED, "Count", "executors_needed"),
    (names.SPARK_EXECUTORS_TARGET, "Count", "executors_target"),
)


# Spark streaming (namespace Sparkscale/SparkStreaming, its own call): a datum only for what a query reported.
STREAMING_METRICS = (
    (names.STREAMING_INPUT_ROWS_PER_S, "Count/Second", "input_rows_per_s"),
    (names.STREAMING_PROCESSED_ROWS_PER_S, "Count/Second", "processed_rows_per_s"),
    (names.STREAMING_BATCH_LATENCY_MS, "Milliseconds", "batch_latency_ms"),
    (names.STREAMING_SCHEDULING_DELAY_MS, "Milliseconds", "scheduling_delay_ms"),
    (names.STREAMING_WAITING_BATCHES, "Count", "waiting_batches"),
)


def iso_utc(epoch_s: float) -> str:
    """Epoch seconds → `YYYY-MM-DDTHH:MM:SSZ` (what both boto3 and the CLI accept as a Timestamp)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def metric_data(snapshot: HeapSnapshot, *, cluster_id: str, timestamp: float) -> list[Datum]:
    """The interval's datums: dimension JobFlowId only, one Timestamp for all."""
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    stamp = iso_utc(timestamp)
    metrics = METRICS + (ALLOCATION_METRICS if snapshot.allocation_drivers else ())
    return [
        {
            "MetricName": metric,
            "Dimensions": dims,
            "Timestamp": stamp,
            "Value": float(getattr(snapshot, attr)),
            "Unit": unit,
        }
        for metric, unit, attr in metrics
    ]


def streaming_metric_data(snapshot: StreamingSnapshot, *, cluster_id: str, timestamp: float) -> list[Datum]:
    """The interval's streaming datums (dimension JobFlowId only): none at all when no query reported, and
    none for a metric no query reported (never a zero for missing data)."""
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    stamp = iso_utc(timestamp)
    out: list[Datum] = []
    for metric, unit, attr in STREAMING_METRICS:
        value = getattr(snapshot, attr)
        if value is not None:
            out.append(
                {
                    "MetricName": metric,
                    "Dimensions": dims,
                    "Timestamp": stamp,
                    "Value": float(value),
                    "Unit": unit,
                }
            )
    return out


class PublishError(Exception):
    def __init__(self, message: str, *, code: str = "", retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING_ERROR_CODES


def classify(code: str, http_status: int = 0) -> bool:
    """True when a failed call may succeed if retried."""
    return code not in PERMANENT_ERROR_CODES or http_status >= 500


class Boto3Sink:
    """PutMetricData through a boto3 CloudWatch client (retries off: the Publisher owns retrying)."""

    name = "boto3"

    def __init__(self, client: Any) -> None:
        self._client = client

    def put(self, namespace: str, data: list[Datum]) -> None:
        try:
            self._client.put_metric_data(Namespace=namespace, MetricData=data)
        except Exception as exc:
            response = getattr(exc, "response", None)
            if isinstance(response, dict):  # botocore ClientError
                error = response.get("Error") or {}
                code = str(error.get("Code", ""))
                status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
                raise PublishError(
                    f"{code or 'error'}: {error.get('Message', exc)}",
                    code=code,
                    retryable=classify(code, status),
                ) from exc
            code = type(exc).__name__  # ParamValidationError is permanent; connection errors are not
            raise PublishError(f"{code}: {exc}", code=code, retryable=classify(code)) from exc


def make_boto3_sink(*, region: str, endpoint_url: str | None) -> Boto3Sink:
    """Raises ImportError when the node's Python has no boto3."""
    import boto3  # noqa: PLC0415 - optional on EMR nodes
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, retries={"max_attempts": 0}
    )
    client = boto3.client("cloudwatch", region_name=region, endpoint_url=endpoint_url, config=config)
    return Boto3Sink(client)


_CLI_ERROR_CODE = re.compile(r"An error occurred \(([A-Za-z0-9_.]+)\)")


class AwsCliSink:
    """PutMetricData through `aws cloudwatch put-metric-data` (for nodes whose Python has no boto3)."""

    name = "aws-cli"

    def __init__(
        self,
        *,
        aws: str,
        region: str,
        endpoint_url: str | None,
        timeout_s: float = 30.0,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        self._aws = aws
        self._region = region
        self._endpoint_url = endpoint_url
        self._timeout_s = timeout_s
        self._run = run

    def command(self, namespace: str, data_file: str) -> list[str]:
        cmd = [self._aws, "cloudwatch", "put-metric-data", "--namespace", namespace]
        cmd += ["--metric-data", "file://" + data_file, "--region", self._region]
        cmd += ["--cli-connect-timeout", str(CONNECT_TIMEOUT_S), "--cli-read-timeout", str(READ_TIMEOUT_S)]
        if self._endpoint_url:
            cmd += ["--endpoint-url", self._endpoint_url]
        return cmd

    def put(self, namespace: str, data: list[Datum]) -> None:
        env = dict(os.environ, AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
        with tempfile.NamedTemporaryFile("w", prefix="heap-agent-", suffix=".json") as handle:
            json.dump(data, handle)
            handle.flush()
            try:
                done = self._run(
                    self.command(namespace, handle.name),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    universal_newlines=True,
                    timeout=self._timeout_s,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise PublishError(f"aws cli: {exc}", code=type(exc).__name__) from exc
        if done.returncode == 0:
            return
        stderr = (done.stderr or "").strip()
        match = _CLI_ERROR_CODE.search(stderr)
        if match:
            code = match.group(1)
        elif "Parameter validation failed" in stderr:
            code = "ParamValidationError"
        else:
            code = f"exit{done.returncode}"
        last_line = stderr.splitlines()[-1] if stderr else ""
        raise PublishError(
            f"aws cli exit {done.returncode}: {last_line[:300]}", code=code, retryable=classify(code)
        )


class PublishAttempt:
    """What one attempt did (for the log line and the tests)."""

    __slots__ = ("datums", "error", "sent", "throttled")

    def __init__(self, *, sent: bool, datums: int, error: str = "", throttled: bool = False) -> None:
        self.sent = sent
        self.datums = datums
        self.error = error
        self.throttled = throttled


class Publisher:
    """A bounded buffer of unsent batches, sent oldest first in one call, with capped exponential backoff.

    Not thread-safe: one thread owns it. `now` is a monotonic clock reading (seconds).
    """

    def __init__(
        self,
        *,
        sink: Any,
        namespace: str = names.HEAP_NAMESPACE,
        max_pending_batches: int = DEFAULT_MAX_PENDING_BATCHES,
        base_backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_pending_batches <= 0:
            raise ValueError("max_pending_batches must be positive")
        self.sink = sink
        self.namespace = namespace
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._jitter = jitter
        self._pending: deque[list[Datum]] = deque(maxlen=max_pending_batches)
        self.consecutive_failures = 0
        self.next_attempt_at = 0.0
        self.calls = 0
        self.sent_batches = 0
        self.failed_calls = 0
        self.throttled_calls = 0
        self.dropped_batches = 0  # pushed out of the full buffer, or rejected as invalid

    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    def enqueue(self, batch: list[Datum]) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped_batches += 1  # deque(maxlen) drops the oldest on append
        self._pending.append(batch)

    def due(self, now: float) -> bool:
        return bool(self._pending) and now >= self.next_attempt_at

    def attempt(self, now: float) -> PublishAttempt:
        """Send every pending batch (up to the per-call limit) in one PutMetricData call."""
        batches: list[list[Datum]] = []
        count = 0
        for batch in self._pending:
            if count + len(batch) > MAX_DATUMS_PER_CALL:
                break
            batches.append(batch)
            count += len(batch)
        if not batches:
            return PublishAttempt(sent=False, datums=0)
        data = [datum for batch in batches for datum in batch]
        self.calls += 1
        try:
            try:
                self.sink.put(self.namespace, data)
            except PublishError:
                raise
            except Exception as exc:  # a client's surprise (disk full for the CLI's file, ...): retry later
                raise PublishError(f"{type(exc).__name__}: {exc}", code=type(exc).__name__) from exc
        except PublishError as exc:
            self.failed_calls += 1
            self.throttled_calls += exc.throttled
            if not exc.retryable:
                for _ in batches:
                    self._pending.popleft()
                self.dropped_batches += len(batches)
                self.consecutive_failures = 0
                self.next_attempt_at = now
                return PublishAttempt(sent=False, datums=count, error=f"dropped (not retryable): {exc}")
            self.consecutive_failures += 1
            self.next_attempt_at = now + self.backoff_s(self.consecutive_failures)
            return PublishAttempt(sent=False, datums=count, error=str(exc), throttled=exc.throttled)
        for _ in batches:
            self._pending.popleft()
        self.sent_batches += len(batches)
        self.consecutive_failures = 0
        self.next_attempt_at = now
        return PublishAttempt(sent=True, datums=count)

    def backoff_s(self, failures: int) -> float:
        """Capped exponential backoff with jitter: base·2^(n-1), at most max, times a factor in [0.5, 1)."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * (2.0 ** min(failures - 1, 30)))
        return ceiling * (0.5 + 0.5 * self._jitter())


def resolve_region(environ: Mapping[str, str], explicit: str | None = None) -> str | None:
    return explicit or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None


def resolve_endpoint(environ: Mapping[str, str]) -> str | None:
    """AWS_ENDPOINT_URL_CLOUDWATCH, then AWS_ENDPOINT_URL (older boto3 and CLI v1 on nodes read neither)."""
    return environ.get("AWS_ENDPOINT_URL_CLOUDWATCH") or environ.get("AWS_ENDPOINT_URL") or None
