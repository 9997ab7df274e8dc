"""`sparkscale report --cluster J [--days 7] [--json] [--plot FILE]`: what sparkscale's TASK nodes cost one
cluster over the last days, next to what EMR's default rules, static peak and the oracle would have cost
serving the same demand (docs/savings-report.md).

Read-only, against the deployed stack (as `sparkscale history`): the audit records from the state table
(`--table`, else the stack's StateTableName output), the cluster's CloudWatch history (as `sparkscale replay
--cloudwatch`), its instance groups (EMR) and the period's spot prices (EC2 DescribeSpotPriceHistory). The
numbers are computed by replay/savings.py; exit 2 with one line on bad input, no data or an AWS error.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from datetime import datetime, timedelta
from typing import Any, Final

from sparkscale_tools.cli.conventions import (
    EXIT_FAILED,
    CliError,
    aws_session,
    require_modules,
    writable_file,
)

_CLUSTER_ID: Final = re.compile(r"^j-[A-Za-z0-9]{1,64}$")
DEFAULT_DAYS: Final = 7.0
MAX_DAYS: Final = 63.0  # CloudWatch keeps 5-minute data 63 days (and spot price history 90)
RECORDS_PER_DAY: Final = 5000  # as the digest reads them
DEFAULT_STACK: Final = "Sparkscale"


def register(sub: Any) -> None:
    help_ = "what sparkscale's TASK nodes cost one cluster, next to EMR's rules, static peak and the oracle"
    p: argparse.ArgumentParser = sub.add_parser("report", help=help_, description=help_)
    p.add_argument("--cluster", required=True, help="EMR cluster id (j-...)")
    p.add_argument(
        "--days", type=float, default=DEFAULT_DAYS, help=f"the last N days (default 7, at most {MAX_DAYS:g})"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--plot", metavar="FILE", help="write a figure: demand vs sparkscale vs EMR's rules (png, svg, pdf)"
    )
    p.add_argument("--stack", default=DEFAULT_STACK, help=f"the deployed stack (default {DEFAULT_STACK})")
    p.add_argument("--table", help="the state table (default: the stack's StateTableName output)")
    p.add_argument(
        "--config", metavar="FILE", help="settings JSON (default: the defaults): bounds, memory fraction"
    )
    p.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION, else AWS_REGION)")
    p.add_argument("--seed", type=int, default=0, help="the replay's random seed (default 0)")
    p.set_defaults(func=_report)


def _check(args: argparse.Namespace) -> None:
    if not _CLUSTER_ID.match(args.cluster):
        raise CliError(f"--cluster {args.cluster!r} is not an EMR cluster id (j-XXXXXXXX)")
    if not (math.isfinite(args.days) and 0 < args.days <= MAX_DAYS):
        raise CliError(f"--days must be in (0, {MAX_DAYS:g}], got {args.days:g}")
    if args.plot:
        writable_file(args.plot, flag="--plot")
        require_modules("matplotlib", extra="replay", what="--plot")


def _report(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError  # noqa: PLC0415
    from sparkscale.clock import utcnow  # noqa: PLC0415
    from sparkscale.config import Config  # noqa: PLC0415
    from sparkscale.config_io import from_file  # noqa: PLC0415
    from sparkscale.errors import ClusterGone, SparkscaleError  # noqa: PLC0415

    from sparkscale_tools.cli.deployed import StackError  # noqa: PLC0415
    from sparkscale_tools.replay import savings  # noqa: PLC0415
    from sparkscale_tools.replay.run import ReplayError  # noqa: PLC0415
    from sparkscale_tools.replay.trace import TraceError  # noqa: PLC0415

    _check(args)
    config = from_file(args.config) if args.config else Config()
    try:
        report = make_report(args, config, utcnow())
    except NoRegionError:
        raise CliError("no AWS region configured: pass --region or set AWS_DEFAULT_REGION") from None
    except ClusterGone as exc:
        raise CliError(f"{args.cluster}: EMR does not know it ({exc})") from None
    except (StackError, TraceError, savings.ReportError, ReplayError) as exc:
        raise CliError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:  # a malformed record or answer: one line, never a trace
        raise CliError(f"unreadable data: {type(exc).__name__}: {exc}", exit_code=EXIT_FAILED) from None
    except (SparkscaleError, ClientError, BotoCoreError) as exc:
        raise CliError(f"{type(exc).__name__}: {exc}", exit_code=EXIT_FAILED) from None
    if args.plot:
        try:
            savings.write_plot(report, args.plot)
        except OSError as exc:
            raise CliError(f"--plot {args.plot}: cannot write: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps(report.to_json_dict(), indent=2, sort_keys=True))
    else:
        print(savings.report_text(report), end="")
    return 0


def make_report(args: argparse.Namespace, config: Any, now: datetime) -> Any:
    """Read the audit records and build the report from AWS (replay/savings.py `report_from_aws`, the same
    code the digest's weekly section runs)."""
    from sparkscale.adapters.aws import boto_config  # noqa: PLC0415
    from sparkscale.adapters.dynamodb import DynamoStateStore  # noqa: PLC0415

    from sparkscale_tools.cli.deployed import OUTPUT_TABLE, StackError, stack_outputs  # noqa: PLC0415
    from sparkscale_tools.replay import savings  # noqa: PLC0415
    from sparkscale_tools.replay.cloudwatch_trace import period_for  # noqa: PLC0415

    session = aws_session(args.region)
    cfg = boto_config()
    table = args.table or stack_outputs(session.client("cloudformation", config=cfg), args.stack).get(
        OUTPUT_TABLE
    )
    if not table:
        raise StackError(f"stack {args.stack} has no {OUTPUT_TABLE} output: pass --table")
    start = savings.floor_to(now - timedelta(days=args.days), period_for(args.days))
    store = DynamoStateStore(session.client("dynamodb", config=cfg), table)
    limit = RECORDS_PER_DAY * math.ceil(args.days)
    records = store.audit_since(args.cluster, start, limit=limit)
    if not records:
        raise savings.ReportError(
            f"no decision recorded for {args.cluster} in the last {args.days:g} days in table {table}"
        )
    report = savings.report_from_aws(
        emr=session.client("emr", config=cfg),
        cloudwatch=session.client("cloudwatch", config=cfg),
        ec2=session.client("ec2", config=cfg),
        cluster_id=args.cluster,
        records=records,
        start=start,
        end=now,
        config=config,
        seed=args.seed,
    )
    if len(records) >= limit:
        report.notes.append(
            f"read the newest {limit} audit records only: older ones in the period are not counted"
        )
    return report
