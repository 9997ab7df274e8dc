"""The tools around the autoscaler that never run in a Lambda: the `sparkscale` command line, the replay
(simulator and scores) and the demo. They live outside `lambdas/`, so the Lambda asset is that folder."""
