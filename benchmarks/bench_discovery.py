"""Discovery benchmark: one sweep that finds 100 new tagged clusters (and an untagged one), then a sweep
that finds nothing new, through the real adapters on moto in process (ListClusters, DescribeCluster,
PutMetricAlarm, DescribeAlarms, the DynamoDB registry). The alarm writes are not paced here (moto has no
rate limit); the time CloudWatch's 3 writes a second would add in AWS is printed beside.

    python benchmarks/bench_discovery.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambdas"), str(ROOT / "tools"), str(ROOT)]

CLUSTERS = 100


def _setup(aws: Any) -> None:
    from tests.scale.shell_support import create_cluster, create_table

    create_table(aws.dynamodb)
    for i in range(CLUSTERS + 1):
        cid = create_cluster(aws.emr).cluster_id
        if i < CLUSTERS:
            aws.emr.add_tags(ResourceId=cid, Tags=[{"Key": "sparkscale:managed", "Value": "true"}])


def main() -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ[k] = v
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws
    from sparkscale import clock
    from sparkscale.adapters.discovery import (
        ALARM_WRITE_RATE_PER_S,
        CloudWatchAlarmWriter,
        DynamoClusterRegistry,
        EmrClusterDirectory,
    )
    from sparkscale.config import Config
    from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
    from sparkscale.ports import DiscoveryPorts, Ports
    from sparkscale.usecases.discovery import Discovery, sweep

    from tests.scale.shell_support import clients

    with mock_aws():
        aws = clients()
        _setup(aws)
        writer = CloudWatchAlarmWriter(
            aws.cloudwatch, alarm_topic_arn="", operator_alarm_topic_arn="", rate_per_s=0
        )
        dports = DiscoveryPorts(
            EmrClusterDirectory(aws.emr), writer, DynamoClusterRegistry(aws.dynamodb, "sparkscale-state")
        )
        store, fake = InMemoryStateStore(), FakeEmr()
        ports = Ports(fake, FixedMetrics(), fake, store, CollectingNotifier(), ledger=store)
        for label in ("first sweep (100 new clusters)", "second sweep (nothing new)"):
            calls = writer.calls
            t0 = time.perf_counter()
            result = sweep(Discovery(ports, dports, Config(), clock.utcnow()))
            s = time.perf_counter() - t0
            writes = writer.calls - calls
            paced = writes / ALARM_WRITE_RATE_PER_S
            print(
                f"{label}: {s:.2f} s on moto, {len(result.managed)} managed, {writes} alarm writes "
                f"(+{paced:.0f} s at CloudWatch's {ALARM_WRITE_RATE_PER_S:g} writes/s)"
            )


if __name__ == "__main__":
    main()
