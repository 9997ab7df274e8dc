"""Typed errors the adapters raise instead of botocore's ClientError; the service decides what each means."""

from __future__ import annotations


class SparkscaleError(Exception):
    """Base of every error sparkscale raises on purpose."""


class ClusterGone(SparkscaleError):
    """The cluster is terminating, terminated or unknown: stop managing it (notify once)."""


class GroupBusy(SparkscaleError):
    """An instance group is resizing or otherwise not modifiable now: hold and retry on the next evaluation."""


class Throttled(SparkscaleError):
    """AWS kept throttling after botocore's own retries: give up cleanly for this evaluation (transient)."""


class InvalidRequest(SparkscaleError):
    """AWS rejected the request as invalid (ValidationException, unknown group): notify, never retry-storm."""


class TransientAwsError(SparkscaleError):
    """A 5xx or network error after retries: the invocation should fail so SNS/Lambda retry, then the DLQ."""


class LeaseHeld(SparkscaleError):
    """Another invocation is evaluating this cluster right now."""


class BadEvent(SparkscaleError):
    """An event we do not accept. The message is the one-line reason that is logged and counted."""
