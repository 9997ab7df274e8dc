"""One construct per concern; `SparkAutoscaler` composes them."""

from infra.constructs.autoscaler import SparkAutoscaler

__all__ = ["SparkAutoscaler"]
