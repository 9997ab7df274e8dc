"""`sparkscale discover` and `sparkscale cluster-template`, the two commands of clusters managed by tag.

`sparkscale discover --config FILE [--table NAME] [--alarm-topic-arn ARN] [--operator-topic-arn ARN]
[--operator-alarm-topic-arn ARN] [--dry-run] [--json]`: one discovery sweep (usecases.discovery.sweep, the
code the discovery Lambda runs) against the AWS endpoint boto3 is configured for (AWS_REGION,
AWS_ENDPOINT_URL, the credential chain).

Prints the clusters it manages with their profiles, and the alarms it created or deleted. With --table the
registry is the deployment's (the state table); without it, an in-memory one (every tagged cluster then looks
new). --dry-run changes nothing: no alarm, no registry item, no notice. Operator notices go to
--operator-topic-arn when given, else nowhere; the created alarms meant for people send their ALARM to
--operator-alarm-topic-arn when given (the stack's OperatorAlarmTopicArn output).

`sparkscale cluster-template [--config FILE] [--profile NAME] [--log-bucket BUCKET] [--region REGION]`
prints an `aws emr create-cluster` command for a cluster sparkscale manages from its first minute: the opt-in
tag (and the profile tag), the heap agent's bootstrap action, Spark's metrics classification, a LogUri, and
SPOT task groups of several instance types (starting at 0 nodes: the scaler adds them).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

# SPOT task groups of several types with about the same memory per vCPU: the planner picks by $/GiB-hour
TASK_TYPES = ("r5.2xlarge", "r5a.2xlarge", "r6i.2xlarge", "r7i.2xlarge")
SPARK_METRICS = [
    {
        "Classification": "spark-metrics",
        "Properties": {
            "*.sink.statsd.host": "127.0.0.1",
            "*.sink.statsd.port": "8125",
            "*.sink.statsd.period": "10",
            "*.sink.statsd.unit": "seconds",
            "driver.sink.statsd.class": "org.apache.spark.metrics.sink.StatsdSink",
            "executor.sink.statsd.class": "org.apache.spark.metrics.sink.StatsdSink",
            "driver.source.jvm.class": "org.apache.spark.metrics.source.JvmSource",
            "executor.source.jvm.class": "org.apache.spark.metrics.source.JvmSource",
        },
    }
]  # the same as bootstrap/spark-metrics.json (a test keeps them equal)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "discover", help="one sweep: manage every EMR cluster carrying the opt-in tag (alarms, registry)"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="settings JSON")
    p.add_argument("--table", help="the deployment's state table (the registry); default: in memory")
    p.add_argument(
        "--alarm-topic-arn", default="", help="where the alarms it creates notify (the alarm topic)"
    )
    p.add_argument("--operator-topic-arn", default="", help="operator notices")
    p.add_argument(
        "--operator-alarm-topic-arn", default="", help="where the created alarms meant for people go (ALARM)"
    )
    p.add_argument("--no-heap-alarms", action="store_true", help="leave out the heap agent's alarms")
    p.add_argument("--dry-run", action="store_true", help="say what it would do, change nothing")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_discover)

    t: argparse.ArgumentParser = sub.add_parser(
        "cluster-template", help="print an `aws emr create-cluster` command for a cluster managed by tag"
    )
    t.add_argument(
        "--config", metavar="FILE", help="settings JSON (the tag and the profiles; default: defaults)"
    )
    t.add_argument("--profile", help="a name in the settings' profiles (tag sparkscale:profile)")
    t.add_argument("--log-bucket", default="BUCKET", help="S3 bucket of the logs and the bootstrap assets")
    t.add_argument("--region", default=None, help="the agent's region (default: AWS_REGION, else us-east-1)")
    t.add_argument("--release-label", default="emr-7.1.0")
    t.set_defaults(func=_cluster_template)


def _fail(msg: str, code: int = 2) -> int:
    print(f"sparkscale: {msg}", file=sys.stderr)
    return code


def _discover(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415
    from sparkscale.config import ConfigError  # noqa: PLC0415
    from sparkscale.config_io import from_file  # noqa: PLC0415
    from sparkscale.errors import SparkscaleError  # noqa: PLC0415
    from sparkscale.usecases import discovery  # noqa: PLC0415

    try:
        config = from_file(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        run = _run(args, config)
        result = discovery.sweep(run)
    except (SparkscaleError, BotoCoreError) as exc:
        return _fail(f"discovery failed: {exc}", 1)
    out = discovery.summary(result)
    if args.json:
        print(json.dumps(out, sort_keys=True, indent=2))
    else:
        print(render(out))
    return 0


def _run(args: argparse.Namespace, config: Any) -> Any:
    from sparkscale import clock  # noqa: PLC0415
    from sparkscale.adapters.aws import aws_ports, make_clients  # noqa: PLC0415
    from sparkscale.adapters.discovery import (  # noqa: PLC0415
        CloudWatchAlarmWriter,
        DynamoClusterRegistry,
        EmrClusterDirectory,
    )
    from sparkscale.memory import CollectingNotifier, InMemoryStateStore  # noqa: PLC0415
    from sparkscale.memory.discovery import InMemoryRegistry  # noqa: PLC0415
    from sparkscale.ports import DiscoveryPorts, Ports  # noqa: PLC0415
    from sparkscale.usecases.discovery import Discovery  # noqa: PLC0415

    clients = make_clients(with_ec2=False)
    if args.table and args.operator_topic_arn:
        ports = aws_ports(
            clients=clients, config=config, table_name=args.table, topic_arn=args.operator_topic_arn
        )
    else:
        store = InMemoryStateStore()
        p = aws_ports(clients=clients, config=config, table_name="-", topic_arn="-")
        ports = Ports(
            clusters=p.clusters,
            metrics=p.metrics,
            capacity=p.capacity,
            state=store,
            notifier=CollectingNotifier(),
            ledger=store,
        )
    registry = DynamoClusterRegistry(clients.dynamodb, args.table) if args.table else InMemoryRegistry()
    dports = DiscoveryPorts(
        directory=EmrClusterDirectory(clients.emr),
        alarms=CloudWatchAlarmWriter(
            clients.cloudwatch,
            alarm_topic_arn=args.alarm_topic_arn,
            operator_alarm_topic_arn=args.operator_alarm_topic_arn,
        ),
        registry=registry,
    )
    return Discovery(
        ports=ports,
        discovery=dports,
        config=config,
        now=clock.utcnow(),
        include_heap=not args.no_heap_alarms,
        dry_run=args.dry_run,
    )


def render(out: dict[str, Any]) -> str:
    """The sweep's summary as text."""
    lines = [f"managed by tag ({len(out['managed'])}){' [dry run]' if out['dry_run'] else ''}:"]
    for m in out["managed"]:
        paused = ", paused" if m["paused"] else ""
        lines.append(f"  {m['cluster_id']}  {m['name']}  profile {m['profile'] or '(base)'}{paused}")
    for c in out["changes"]:
        lines.append(f"{c['cluster_id']}: {c['action']} ({c['reason']})")
    lines.append(f"alarms created: {len(out['alarms_created'])}")
    lines += [f"  + {n}" for n in out["alarms_created"]]
    lines.append(f"alarms deleted: {len(out['alarms_deleted'])}")
    lines += [f"  - {n}" for n in out["alarms_deleted"]]
    if out.get("incomplete"):
        lines.append("stopped early: run it again to go on")
    return "\n".join(lines)


def _cluster_template(args: argparse.Namespace) -> int:
    from sparkscale import names  # noqa: PLC0415
    from sparkscale.config import Config, ConfigError  # noqa: PLC0415
    from sparkscale.config_io import from_file  # noqa: PLC0415

    try:
        config = from_file(args.config) if args.config else Config()
        config.for_profile(args.profile, source="--profile")
    except ConfigError as exc:
        return _fail(str(exc))
    if not config.discovery_tag_key:
        return _fail("discovery_tag_key is empty: clusters are not managed by tag in these settings")
    print(cluster_template(config, args, names.TAG_PROFILE))
    return 0


def cluster_template(config: Any, args: argparse.Namespace, profile_tag: str) -> str:
    """The create-cluster command, one option per line."""
    region = args.region or os.environ.get("AWS_REGION") or "us-east-1"
    bucket = args.log_bucket
    tags = [f"{config.discovery_tag_key}={config.discovery_tag_value}"]
    if args.profile:
        tags.append(f"{profile_tag}={args.profile}")
    groups: list[dict[str, Any]] = [
        {"InstanceGroupType": "MASTER", "Name": "master", "InstanceType": "m5.xlarge", "InstanceCount": 1},
        {"InstanceGroupType": "CORE", "Name": "core", "InstanceType": "r5.xlarge", "InstanceCount": 2},
    ]
    groups += [
        {
            "InstanceGroupType": "TASK",
            "Name": f"spot-{itype.replace('.', '-')}",
            "InstanceType": itype,
            "InstanceCount": 0,
            "Market": "SPOT",
        }
        for itype in TASK_TYPES
    ]
    action = (
        f"Name=sparkscale-heap-agent,Path=s3://{bucket}/sparkscale/install-heap-agent.sh,"
        f"Args=[s3://{bucket}/sparkscale/heap-agent.pyz,{region}]"
    )
    parts = [
        ("aws emr create-cluster", None),
        ("--name", f"sparkscale-{args.profile or 'managed'}"),
        ("--release-label", args.release_label),
        ("--applications", "Name=Spark"),
        ("--tags", " ".join(shlex.quote(t) for t in tags)),
        ("--log-uri", f"s3://{bucket}/emr-logs/"),
        ("--configurations", shlex.quote(json.dumps(SPARK_METRICS, separators=(",", ":")))),
        ("--bootstrap-actions", shlex.quote(action)),
        ("--instance-groups", shlex.quote(json.dumps(groups, separators=(",", ":")))),
        ("--use-default-roles", None),
        ("--region", region),
    ]
    lines = [parts[0][0]] + [f"  {name}" if v is None else f"  {name} {v}" for name, v in parts[1:]]
    return " \\\n".join(lines)
