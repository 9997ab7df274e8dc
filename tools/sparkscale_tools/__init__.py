"""The tools around the autoscaler: the `sparkscale` command line, the replay (simulator and scores) and the
demo. They live outside `lambdas/`; of them only the replay engine the weekly digest runs
(`replay/savings.py` and what it imports) is staged into the Lambda asset (sparkscale_cdk/lambda_asset.py)."""
