"""`sparkscale demo`: the real Lambda handlers scale a simulated Spark cluster on an embedded AWS (a moto
server on 127.0.0.1), end to end, with the resources taken from the synthesized CloudFormation template.

- template.py  read the synthesized template: alarms, table, topics, functions, schedule (pure)
- aws.py       the moto server, fake credentials, the resources created from the template, the EMR cluster
- sim.py       the replay's cluster model driven by the real handlers: metrics → CloudWatch, alarms → SNS →
               alarm handler, schedule → reconcile handler, requested counts read back from EMR
- console.py   what a person sees: decision lines, operator emails, the progress bar
- tagged.py    --tagged-cluster: a tagged and an untagged cluster part-way through, the discovery handler
- run.py       one demo run (used by the CLI and the test); cli.py registers `sparkscale demo`

Not part of the Lambda asset (it lives in tools/, outside lambdas/); boto3, moto and matplotlib are
imported only when the demo runs.
"""
