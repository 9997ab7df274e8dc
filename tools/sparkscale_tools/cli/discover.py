"""`sparkscale discover --config FILE [--table NAME] [--alarm-topic-arn ARN] [--operator-topic-arn ARN]
[--dry-run] [--json]`: one discovery sweep (usecases.discovery.sweep, the code the discovery Lambda runs)
against the AWS endpoint boto3 is configured for (AWS_REGION, AWS_ENDPOINT_URL, the credential chain).

Prints the clusters it manages with their profiles, and the alarms it created or deleted. With --table the
registry is the deployment's (the state table); without it, an in-memory one (every tagged cluster then looks
new). --dry-run changes nothing: no alarm, no registry item, no notice. Operator notices go to
--operator-topic-arn when given, else nowhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "discover", help="one sweep: manage every EMR cluster carrying the opt-in tag (alarms, registry)"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="settings JSON")
    p.add_argument("--table", help="the deployment's state table (the registry); default: in memory")
    p.add_argument(
        "--alarm-topic-arn", default="", help="where the alarms it creates notify (the alarm topic)"
    )
    p.add_argument("--operator-topic-arn", default="", help="operator notices and operator alarms")
    p.add_argument("--no-heap-alarms", action="store_true", help="leave out the heap agent's alarms")
    p.add_argument("--dry-run", action="store_true", help="say what it would do, change nothing")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_discover)


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
            operator_topic_arn=args.operator_topic_arn,
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
