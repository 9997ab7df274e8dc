"""The Spark JVM heap node agent: StatsD (UDP, loopback) in, one PutMetricData call per interval out.

It runs on EMR nodes with the node's own Python (3.7 on Amazon Linux 2, 3.9 on Amazon Linux 2023) and only
the standard library, plus boto3 when the node has it (else the AWS CLI, which every EMR node has). So:
nothing from the rest of the Lambda package but `sparkscale.names`, no Python 3.8+ syntax or library calls,
and no import of boto3/botocore at module level. `bundle.py` packs it into one zipapp file
(`heap-agent.pyz`).
"""
