"""`sparkscale status | history | pause | resume --cluster J`: what the deployed scaler did, and a brake per
cluster.

Against the deployed stack, with boto3 configured as usual (AWS_REGION, AWS_ENDPOINT_URL, the credential
chain). The state table and the alarm prefix come from the stack's CloudFormation outputs (`--stack`,
default Sparkscale: StateTableName, AlarmPrefix), or from `--table` / `--alarm-prefix`.

- status: the cluster's groups (requested / running), its alarms' states, its last decisions with their
  first reason, the cooldowns, and whether it is paused.
- history: the audit records since `--since` (default 6h), newest first, as a table or `--json` (one object
  per line, the record as saved: records.decision_to_dict).
- pause: the cluster's decisions are still made, recorded and notified, but nothing is resized and no node
  is moved on a spot interruption, until `resume`. The mark (ports.PauseMark) is an item of the state table.

docs/operate.md explains the output and the audit record layout.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sparkscale_tools.cli.conventions import EXIT_FAILED, EXIT_USAGE, CliError, aws_session

_CLUSTER_ID: Final = re.compile(r"^j-[A-Za-z0-9]{1,64}$")
_SINCE: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_STACK: Final = "Sparkscale"
REASON_WIDTH: Final = 70  # the first reason's column, wrapped


def register(sub: Any) -> None:
    for name, help_, func in (
        ("status", "what the deployed scaler sees and did for one cluster", _status),
        ("history", "the deployed scaler's recorded decisions for one cluster", _history),
        ("pause", "stop acting on one cluster (it still decides and notifies)", _pause),
        ("resume", "act on a paused cluster again", _resume),
    ):
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--cluster", required=True, help="EMR cluster id (j-...)")
        p.add_argument("--stack", default=DEFAULT_STACK, help=f"the deployed stack (default {DEFAULT_STACK})")
        p.add_argument("--table", help="the state table (default: the stack's StateTableName output)")
        if name == "status":
            p.add_argument(
                "--alarm-prefix", help="alarm name prefix (default: the stack's AlarmPrefix output)"
            )
            p.add_argument(
                "--config", metavar="FILE", help="settings JSON for the cooldown lengths (default: defaults)"
            )
            p.add_argument("--decisions", type=int, default=5, help="how many last decisions (default 5)")
        if name == "history":
            p.add_argument("--since", default="6h", help="30m, 6h, 2d or an ISO time (default 6h)")
            p.add_argument("--limit", type=int, default=1000, help="at most this many records (default 1000)")
        if name in ("status", "history"):
            p.add_argument("--json", action="store_true", help="print JSON instead of tables")
        if name == "pause":
            p.add_argument("--reason", default="", help="why, for the record and the notices")
        p.set_defaults(func=func)


def _fail(msg: str, code: int = EXIT_USAGE) -> int:
    """The CLI's one error style (cli/conventions.py): `sparkscale <command>: <message>`, exit 2."""
    raise CliError(msg, exit_code=code)


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `6h`, `2d`, `90s` before `now`, or an ISO 8601 time (UTC when it has no offset)."""
    m = _SINCE.match(text.strip())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: use 30m, 6h, 2d or an ISO time") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


# --- the deployed stack ------------------------------------------------------------------------------------
class _Deployed:
    """The clients and the resource names of the deployed stack, resolved once per command."""

    def __init__(self, args: argparse.Namespace) -> None:
        from sparkscale.adapters.aws import boto_config, make_clients  # noqa: PLC0415

        self.session = aws_session()  # AWS_DEFAULT_REGION, else AWS_REGION
        self.clients = make_clients(self.session, with_ec2=False)
        self._cfg = boto_config()
        self._args = args
        self._outputs: dict[str, str] | None = None

    def output(self, key: str) -> str | None:
        from sparkscale_tools.cli.deployed import stack_outputs  # noqa: PLC0415

        if self._outputs is None:
            cfn = self.session.client("cloudformation", config=self._cfg)
            self._outputs = stack_outputs(cfn, self._args.stack)
        return self._outputs.get(key)

    def store(self) -> Any:
        from sparkscale.adapters.dynamodb import DynamoStateStore  # noqa: PLC0415

        from sparkscale_tools.cli.deployed import OUTPUT_TABLE, StackError  # noqa: PLC0415

        table = self._args.table or self.output(OUTPUT_TABLE)
        if not table:
            raise StackError(f"stack {self._args.stack} has no {OUTPUT_TABLE} output: pass --table")
        return DynamoStateStore(self.clients.dynamodb, table)

    def alarm_prefix(self, config: Any) -> str:
        from sparkscale_tools.cli.deployed import OUTPUT_ALARM_PREFIX  # noqa: PLC0415

        if self._args.alarm_prefix:
            return str(self._args.alarm_prefix)
        if self._args.table:  # names given by flags: do not ask CloudFormation for this one
            return str(config.alarm_prefix)
        return self.output(OUTPUT_ALARM_PREFIX) or str(config.alarm_prefix)


def _run(args: argparse.Namespace, body: Any) -> int:
    """Check the cluster id, run `body(deployed, now)`, and turn the expected failures into one line."""
    from botocore.exceptions import BotoCoreError, NoRegionError  # noqa: PLC0415
    from sparkscale.clock import utcnow  # noqa: PLC0415
    from sparkscale.config import ConfigError  # noqa: PLC0415
    from sparkscale.errors import SparkscaleError  # noqa: PLC0415

    from sparkscale_tools.cli.deployed import StackError  # noqa: PLC0415

    if not _CLUSTER_ID.match(args.cluster):
        return _fail(f"--cluster {args.cluster!r} is not an EMR cluster id (j-XXXXXXXX)")
    try:
        return int(body(_Deployed(args), utcnow()))
    except NoRegionError:
        return _fail(
            "no AWS region configured: set AWS_DEFAULT_REGION or AWS_REGION (and AWS_ENDPOINT_URL for a "
            "local endpoint)"
        )
    except (StackError, ConfigError, ValueError) as exc:
        return _fail(str(exc))
    except (SparkscaleError, BotoCoreError) as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


# --- status ------------------------------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    def body(d: _Deployed, now: datetime) -> int:
        from sparkscale.adapters.emr import EmrClusterReader  # noqa: PLC0415
        from sparkscale.config import Config  # noqa: PLC0415
        from sparkscale.config_io import from_file  # noqa: PLC0415

        from sparkscale_tools.cli.deployed import read_status  # noqa: PLC0415

        config = from_file(args.config) if args.config else Config()
        status = read_status(
            cluster_id=args.cluster,
            now=now,
            clusters=EmrClusterReader(d.clients.emr),
            store=d.store(),
            cloudwatch=d.clients.cloudwatch,
            alarm_prefix=d.alarm_prefix(config),
            config=config,
            decisions=max(0, args.decisions),
        )
        if args.json:
            print(json.dumps(status.to_json(), indent=2, sort_keys=True))
        else:
            source = args.config or "the defaults (pass --config for the deployed settings)"
            print(status_text(status, config_source=source))
        return 0

    return _run(args, body)


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], **kw: Any) -> str:
    from tabulate import tabulate  # noqa: PLC0415

    return str(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, **kw))


def _when(t: datetime | str | None) -> str:
    if t is None:
        return "-"
    if isinstance(t, str):
        try:
            return _when(datetime.fromisoformat(t))
        except ValueError:
            return t
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def status_text(status: Any, *, config_source: str) -> str:
    """The text `sparkscale status` prints (a deployed.ClusterStatus)."""
    s = status
    head = f"cluster {s.cluster_id}" + (f" ({s.name})" if s.name else "")
    lines = [f"{head}: {s.cluster_state}, at {_when(s.at)} UTC"]
    if s.pause is not None:
        why = f": {s.pause.why}" if s.pause.why else ""
        lines.append(
            f"PAUSED by {s.pause.by} since {_when(s.pause.at)} UTC{why}. Decisions are recorded and "
            f"notified; nothing is resized (sparkscale resume --cluster {s.cluster_id})."
        )
    else:
        lines.append("not paused: the scaler acts on this cluster (unless the stack's DryRun is true)")
    lines += ["", "instance groups"]
    rows: list[tuple[Any, ...]] = [
        (g.role, g.id, g.name, g.market, g.instance_type, g.requested, g.running, g.status) for g in s.groups
    ]
    heads = ("role", "group", "name", "market", "type", "requested", "running", "status")
    lines.append(_table(rows, heads) if rows else "  (none: the cluster is gone or has no groups)")
    lines += ["", "alarms"]
    rows = [(a.kind, a.state, _when(a.since)) for a in s.alarms]
    lines.append(_table(rows, ("alarm", "state", "since (UTC)")) if rows else "  (no alarm of the stack)")
    lines += ["", f"cooldowns (lengths from {config_source})"]
    rows = [
        (
            c.setting,
            _when(c.last_at),
            f"{c.cooldown_s} s",
            "over" if c.left_s(s.at) <= 0 else f"{c.left_s(s.at):.0f} s left (until {_when(c.until)})",
        )
        for c in s.cooldowns
    ]
    lines.append(_table(rows, ("cooldown", "last action (UTC)", "length", "now")))
    lines += ["", "last decisions (newest first)"]
    lines.append(history_text(s.decisions) if s.decisions else "  (none recorded)")
    return "\n".join(lines)


# --- history -----------------------------------------------------------------------------------------------
def _history(args: argparse.Namespace) -> int:
    def body(d: _Deployed, now: datetime) -> int:
        since = parse_since(args.since, now)
        records = d.store().audit_since(args.cluster, since, limit=max(1, args.limit))
        if args.json:
            for r in records:
                print(json.dumps(r, sort_keys=True))
        elif records:
            print(history_text(records))
        else:
            print(f"no decision recorded for {args.cluster} since {_when(since)} UTC")
        return 0

    return _run(args, body)


def history_text(records: Sequence[Mapping[str, Any]]) -> str:
    """Audit records (records.decision_to_dict, newest first) as a table."""
    from sparkscale_tools.cli.deployed import history_row  # noqa: PLC0415

    rows = []
    for r in map(history_row, records):
        before, after = r["usd_per_hour_before"], r["usd_per_hour_after"]
        cost = "-" if before is None or after is None else f"{before:.2f} -> {after:.2f}"
        rows.append(
            (
                _when(r["at"]),
                r["direction"],
                r["outcome"],
                f"{r['task_nodes_before']} -> {r['task_nodes_after']}",
                cost,
                r["driving_signal"] or "-",
                r["first_reason"],
            )
        )
    heads = ("time (UTC)", "direction", "outcome", "TASK nodes", "$/h", "driving signal", "first reason")
    return _table(rows, heads, maxcolwidths=[None] * 6 + [REASON_WIDTH])


# --- pause / resume ----------------------------------------------------------------------------------------
def _pause(args: argparse.Namespace) -> int:
    def body(d: _Deployed, now: datetime) -> int:
        from sparkscale.ports import PauseMark  # noqa: PLC0415

        store = d.store()
        before = store.load_pause(args.cluster)
        mark = PauseMark(at=now, by=f"cli:{_user()}", why=args.reason)
        store.save_pause(args.cluster, mark)
        again = f" (it was already, by {before.by} since {_when(before.at)} UTC)" if before else ""
        print(
            f"paused {args.cluster}{again}: it still decides, records and notifies, but nothing is resized "
            f"and no node is moved on a spot interruption until `sparkscale resume --cluster {args.cluster}`"
        )
        return 0

    return _run(args, body)


def _resume(args: argparse.Namespace) -> int:
    def body(d: _Deployed, now: datetime) -> int:
        store = d.store()
        before = store.load_pause(args.cluster)
        store.save_pause(args.cluster, None)
        if before is None:
            print(f"{args.cluster} was not paused: nothing to do")
        else:
            print(
                f"resumed {args.cluster} (paused by {before.by} since {_when(before.at)} UTC): the next "
                "evaluation acts again"
            )
        return 0

    return _run(args, body)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return os.environ.get("USER", "unknown")
