"""One construct per concern; `SparkAutoscaler` composes them."""

from sparkscale_cdk.constructs.autoscaler import SparkAutoscaler

__all__ = ["SparkAutoscaler"]
