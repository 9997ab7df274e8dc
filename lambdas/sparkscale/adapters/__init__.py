"""The AWS side of the ports: the only package (besides the heap agent) that imports boto3/botocore.

Importing this package is free: each module imports botocore itself, and `sparkscale.adapters.aws` builds the
clients and the Ports for a Lambda, the CLI or the demo.

- emr.py          EmrClusterReader (DescribeCluster + ListInstanceGroups), EmrCapacityWriter
                  (ModifyInstanceGroups, TASK groups only)
- emr_fleet.py    instance fleets: ListInstanceFleets, ModifyInstanceFleet (the TASK fleet only)
- cloudwatch.py   CloudWatchMetricsSource (one GetMetricData call), CloudWatchAlarmReader (DescribeAlarms)
- dynamodb.py     DynamoStateStore: lease, state, audit (TTL) and the once-only notice ledger
- sns.py          SnsNotifier: the operator topic
- aws_errors.py   botocore ClientError / BotoCoreError -> sparkscale.errors
- aws.py          botocore Config (retries), client factory, aws_ports()
- instance_data.py, prices.py  the EC2 instance table (memory, on-demand prices) and spot prices
- instance_locator.py          EmrInstanceLocator: which cluster and TASK group an instance is in
"""
