"""Typed errors the adapters raise instead of botocore's ClientError; the use cases decide what each means.

Every error raised by an adapter names the AWS operation and error code in its message, and keeps them as
attributes (`operation`, `code`) for logs and tests.
"""

from __future__ import annotations


class SparkscaleError(Exception):
    """Base of every error sparkscale raises on purpose."""

    def __init__(self, message: str = "", *, operation: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code


class ClusterGone(SparkscaleError):
    """The cluster is terminating, terminated or unknown: stop managing it (notify once)."""


class GroupBusy(SparkscaleError):
    """An instance group is resizing or otherwise not modifiable now: hold, retry on the next evaluation."""


class Throttled(SparkscaleError):
    """AWS kept throttling after botocore's own retries: give up cleanly for this evaluation (transient)."""


class InvalidRequest(SparkscaleError):
    """AWS rejected the request as invalid (ValidationException, unknown group): notify, never retry-storm."""


class UnsupportedCluster(InvalidRequest):
    """The cluster cannot be managed by sparkscale (e.g. it uses instance fleets, not instance groups)."""


class RefusedChange(InvalidRequest):
    """The capacity writer refused a change before calling AWS (not a TASK group, negative count, ...)."""


class TransientAwsError(SparkscaleError):
    """A 5xx or network error after retries: the invocation should fail so SNS/Lambda retry, then the DLQ."""


class LeaseHeld(SparkscaleError):
    """Another invocation is evaluating this cluster right now."""


class BadEvent(SparkscaleError):
    """An event we do not accept. The message is the one-line reason that is logged and counted.

    `cluster_id` is set when the event named a cluster (e.g. an unmanaged one), for the RejectedEvents metric.
    """

    def __init__(self, reason: str, *, cluster_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cluster_id = cluster_id
