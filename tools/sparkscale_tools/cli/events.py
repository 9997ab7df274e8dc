"""`sparkscale parse-event FILE` and `sparkscale decide --cluster ID [--config FILE]`.

parse-event: read one payload (a file, or - for stdin) the alarm handler would receive and print the trigger
it becomes, as one JSON object (cluster_id, state, metric_name, alarm_name, namespace, message_id, source,
...). Rejected input: one line on stderr saying why, exit 2.

decide: one `usecases.scale.run_once` in DRY RUN against the AWS endpoint boto3 is configured for
(AWS_DEFAULT_REGION, else AWS_REGION; AWS_ENDPOINT_URL; the usual credential chain): reads the cluster and
its metrics, decides, and prints the decision with its reasons. Nothing is resized, no notice is published
and, with --table, the state is only read (leases and the record stay in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from sparkscale_tools.cli.conventions import EXIT_FAILED, EXIT_USAGE, CliError, aws_session

_CLUSTER_ID = re.compile(r"^j-[A-Za-z0-9]{1,64}$")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "parse-event", help="parse an SNS/EventBridge/CloudWatch alarm payload the way the alarm handler does"
    )
    p.add_argument("file", help="JSON payload file, or - for stdin")
    p.add_argument("--config", metavar="FILE", help="also reject clusters that are not in its `clusters`")
    p.set_defaults(func=_parse_event)

    d: argparse.ArgumentParser = sub.add_parser(
        "decide", help="dry-run one evaluation of a cluster against the configured AWS endpoint"
    )
    d.add_argument("--cluster", required=True, help="EMR cluster id (j-...)")
    d.add_argument(
        "--config", metavar="FILE", help="settings JSON (default: SPARKSCALE_CONFIG_JSON or defaults)"
    )
    d.add_argument("--table", help="read the scaler state from this DynamoDB table (read only)")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.set_defaults(func=_decide)


def _fail(msg: str, code: int = EXIT_USAGE) -> int:
    raise CliError(msg, exit_code=code)


def _parse_event(args: argparse.Namespace) -> int:
    from sparkscale.config import ConfigError  # noqa: PLC0415
    from sparkscale.config_io import from_file  # noqa: PLC0415
    from sparkscale.errors import BadEvent  # noqa: PLC0415
    from sparkscale.events.alarm import parse_event  # noqa: PLC0415

    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}")
    try:
        managed = from_file(args.config).clusters if args.config else None
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        trigger = parse_event(raw, managed_clusters=managed)
    except BadEvent as exc:
        return _fail(f"rejected: {exc.reason}")
    print(json.dumps(trigger.to_dict(), sort_keys=True))
    return 0


def _decide(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, NoRegionError  # noqa: PLC0415
    from sparkscale.config import ConfigError  # noqa: PLC0415
    from sparkscale.config_io import from_environment, from_file  # noqa: PLC0415
    from sparkscale.errors import SparkscaleError  # noqa: PLC0415

    if not _CLUSTER_ID.match(args.cluster):
        return _fail(f"--cluster {args.cluster!r} is not an EMR cluster id (j-XXXXXXXX)")
    try:
        config = from_file(args.config) if args.config else from_environment(os.environ)
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc))
    config = replace(config, dry_run=True)
    try:
        result, notices = _run(args.cluster, config, args.table)
    except NoRegionError:
        return _fail(
            "no AWS region configured: set AWS_REGION or AWS_DEFAULT_REGION "
            "(and AWS_ENDPOINT_URL for a local endpoint)"
        )
    except (SparkscaleError, BotoCoreError) as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    if args.json:
        print(json.dumps(_as_json(result, notices), sort_keys=True, indent=2))
    else:
        print(_as_text(result, notices))
    return 0


def _run(cluster_id: str, config: Any, table: str | None) -> tuple[Any, list[Any]]:
    from sparkscale.adapters.aws import make_clients  # noqa: PLC0415
    from sparkscale.adapters.cloudwatch import CloudWatchMetricsSource  # noqa: PLC0415
    from sparkscale.adapters.dynamodb import DynamoStateStore  # noqa: PLC0415
    from sparkscale.adapters.emr import EmrClusterReader  # noqa: PLC0415
    from sparkscale.adapters.prices import SpotPriceSource  # noqa: PLC0415
    from sparkscale.clock import utcnow  # noqa: PLC0415
    from sparkscale.memory import CollectingNotifier, InMemoryStateStore, ReadOnlyStateStore  # noqa: PLC0415
    from sparkscale.ports import Ports, StateStore  # noqa: PLC0415
    from sparkscale.usecases.scale import run_once  # noqa: PLC0415

    clients = make_clients(aws_session())
    notifier = CollectingNotifier()
    state: StateStore
    if table:
        real = DynamoStateStore(clients.dynamodb, table)
        state = ReadOnlyStateStore(real, real)
        ledger: Any = state
    else:
        state = ledger = InMemoryStateStore()
    ports = Ports(
        clusters=EmrClusterReader(clients.emr),
        metrics=CloudWatchMetricsSource(clients.cloudwatch, lookback_s=config.emr_metric_max_age_s + 300),
        capacity=_NoResize(),
        state=state,
        notifier=notifier,
        prices=SpotPriceSource(clients.ec2, cache_s=0) if clients.ec2 is not None else None,
        ledger=ledger,
    )
    result = run_once(
        now=utcnow(), cluster_id=cluster_id, ports=ports, config=config, owner=f"cli-{os.getpid()}"
    )
    return result, notifier.notices


class _NoResize:
    """The CLI's capacity writer: a dry run never resizes (run_once does not call it with dry_run=True)."""

    def resize(self, cluster_id: str, changes: Any) -> None:
        from sparkscale.errors import RefusedChange  # noqa: PLC0415

        raise RefusedChange(f"dry run: refusing to resize {cluster_id}")


def _as_json(result: Any, notices: list[Any]) -> dict[str, Any]:
    from sparkscale.records import decision_to_dict  # noqa: PLC0415

    return {
        "cluster_id": result.cluster_id,
        "outcome": str(result.outcome),
        "detail": result.detail,
        "running_task_nodes": result.running_task_nodes,
        "requested_task_nodes": result.requested_task_nodes,
        "decision": decision_to_dict(result.decision) if result.decision is not None else None,
        "notices": [{"kind": n.kind, "subject": n.subject, "body": n.body} for n in notices],
    }


def _as_text(result: Any, notices: list[Any]) -> str:
    d = result.decision
    lines = [
        f"cluster {result.cluster_id}: {result.outcome}" + (f" ({result.detail})" if result.detail else "")
    ]
    if d is not None:
        lines.append(f"decision: {d.direction.value} (dry run)")
        if d.driving_signal is not None:
            lines.append(f"driving signal: {d.driving_signal.value} = {d.driving_value}")
        lines.append(f"TASK USD/hour: {d.usd_per_hour_before:.2f} -> {d.usd_per_hour_after:.2f}")
        for t in d.targets:
            mark = "*" if t.changed else " "
            lines.append(
                f" {mark} {t.group_id} {t.group_name} {t.market.value} {t.instance_type}: "
                f"{t.current} -> {t.target}"
            )
        lines.append("reasons:")
        lines += [f"  - {r}" for r in d.reasons]
    for n in notices:
        lines += ["", f"notice [{n.kind}] {n.subject}"]
    return "\n".join(lines)
