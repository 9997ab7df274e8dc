"""The sparkscale CDK app: settings, the `SparkAutoscaler` construct and the stack that composes it."""
