"""sparkscale: event-driven autoscaling of SPOT task groups for Apache Spark on Amazon EMR."""

__version__ = "0.1.0"
