"""`sparkscale heap-agent` (and `python3 heap-agent.pyz` on EMR nodes): run the Spark JVM heap agent.

    sparkscale heap-agent --port 8125 --cluster-id j-XXXXXXXX --interval-s 60
    sparkscale heap-agent … --yarn-rm-url http://ip-10-0-0-1.ec2.internal:8088   (on the master node only)

Honours AWS_REGION / AWS_DEFAULT_REGION and AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_CLOUDWATCH); logs one
line per publish to stdout; stops on SIGTERM or SIGINT after one last try to send what is pending. Exit
codes: 0 stopped, 1 runtime failure (the port is taken, no client), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sparkscale import names

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

JOB_FLOW_JSON = "/mnt/var/lib/info/job-flow.json"
DEFAULT_PORT = 8125
DEFAULT_SPARK_PERIOD_S = 10  # bootstrap/spark-metrics.json: *.sink.statsd.period
DEFAULT_SILENT_PERIODS = 3
_CLUSTER_ID = re.compile(r"^j-[A-Za-z0-9]{1,64}$")


class UsageError(Exception):
    """Bad input: one line on stderr, exit 2."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="UDP port to listen on (default 8125)")
    p.add_argument("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--cluster-id", help=f"EMR cluster id: the JobFlowId dimension (default: {JOB_FLOW_JSON})")
    p.add_argument("--job-flow-json", default=JOB_FLOW_JSON, help=argparse.SUPPRESS)
    p.add_argument(
        "--interval-s",
        type=float,
        default=float(names.HEAP_PERIOD_S),
        help=f"publish every N seconds, on wall-clock boundaries (default {names.HEAP_PERIOD_S})",
    )
    p.add_argument(
        "--spark-period-s",
        type=float,
        default=float(DEFAULT_SPARK_PERIOD_S),
        help="Spark's StatsdSink period (default 10)",
    )
    p.add_argument(
        "--silent-periods",
        type=int,
        default=DEFAULT_SILENT_PERIODS,
        help="forget a JVM silent for this many Spark periods (default 3)",
    )
    p.add_argument("--publisher", choices=("auto", "boto3", "aws-cli"), default="auto", help="default: auto")
    p.add_argument("--region", help="AWS region (default: AWS_REGION, then AWS_DEFAULT_REGION)")
    p.add_argument("--max-pending-batches", type=int, default=60, help="unsent intervals kept (default 60)")
    p.add_argument("--max-jvms", type=int, default=4096, help=argparse.SUPPRESS)
    p.add_argument("--max-packets-per-s", type=int, default=50_000, help=argparse.SUPPRESS)
    p.add_argument("--rcvbuf-bytes", type=int, default=8 * 1024 * 1024, help=argparse.SUPPRESS)
    p.add_argument("--run-as", help="after binding as root, run as this user (e.g. nobody)")
    y = p.add_argument_group(
        "YARN (master node only)",
        f"poll the ResourceManager every {names.YARN_POLL_S} s and publish to {names.YARN_NAMESPACE}",
    )
    y.add_argument("--yarn-rm-url", help="the RM web address, http://HOST:PORT: turns the YARN collector on")
    y.add_argument(
        "--yarn-high-resolution",
        action="store_true",
        help="publish each 10 s sample (StorageResolution 1, a call per poll), not a statistic set a minute",
    )
    y.add_argument("--yarn-poll-s", type=float, default=float(names.YARN_POLL_S), help=argparse.SUPPRESS)
    y.add_argument("--yarn-period-s", type=float, default=float(names.YARN_PERIOD_S), help=argparse.SUPPRESS)
    y.add_argument(
        "--yarn-timeout-s",
        type=float,
        default=3.0,
        help="per-request timeout; a slower RM counts as down for that poll (default 3)",
    )
    y.add_argument("--yarn-max-bytes", type=int, default=256 * 1024, help=argparse.SUPPRESS)
    y.add_argument(
        "--state-table",
        help="the stack's state table: write the YARN node report (nodes, application master hosts) there "
        "for safe scale-in (needs --yarn-rm-url; see agent/nodes.py)",
    )
    y.add_argument("--node-report-period-s", type=float, default=30.0, help=argparse.SUPPRESS)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "heap-agent", help="run the Spark JVM heap agent (StatsD on UDP → CloudWatch)"
    )
    add_arguments(p)
    p.set_defaults(func=run_from_args)
    b: argparse.ArgumentParser = sub.add_parser(
        "heap-agent-bundle",
        help="write the bootstrap asset folder (install script, spark-metrics.json, pyz)",
    )
    b.add_argument("out_dir")
    b.set_defaults(func=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    from sparkscale.agent.bundle import build_bootstrap_dir  # noqa: PLC0415

    out = args.out_dir
    if os.path.exists(out) and not os.path.isdir(out):
        print(f"{_prog(args)}: {out}: exists and is not a directory", file=sys.stderr)
        return 2
    try:
        written = build_bootstrap_dir(out)
    except OSError as exc:
        print(f"{_prog(args)}: cannot write {exc.filename or out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def _prog(args: argparse.Namespace) -> str:
    """`sparkscale heap-agent` (or `sparkscale heap-agent-bundle`) under the sparkscale CLI, whose error line
    this follows (the agent cannot import the CLI: EMR nodes get only this package); `heap-agent` alone as
    the zipapp."""
    command = getattr(args, "command", None)
    return f"sparkscale {command}" if command else "heap-agent"


def read_cluster_id(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle).get("jobFlowId")
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"no --cluster-id and cannot read jobFlowId from {path}: {exc}") from exc
    if not isinstance(value, str):
        raise UsageError(f"no --cluster-id and {path} has no jobFlowId")
    return value


def _validate(args: argparse.Namespace) -> str:
    cluster_id = args.cluster_id or read_cluster_id(args.job_flow_json)
    if not _CLUSTER_ID.match(cluster_id):
        raise UsageError(f"--cluster-id {cluster_id!r} is not an EMR cluster id (j-…)")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a UDP port")
    for flag, value in (
        ("--interval-s", args.interval_s),
        ("--spark-period-s", args.spark_period_s),
        ("--silent-periods", args.silent_periods),
        ("--max-pending-batches", args.max_pending_batches),
        ("--max-jvms", args.max_jvms),
        ("--max-packets-per-s", args.max_packets_per_s),
        ("--rcvbuf-bytes", args.rcvbuf_bytes),
        ("--yarn-poll-s", args.yarn_poll_s),
        ("--yarn-period-s", args.yarn_period_s),
        ("--yarn-timeout-s", args.yarn_timeout_s),
        ("--yarn-max-bytes", args.yarn_max_bytes),
        ("--node-report-period-s", args.node_report_period_s),
    ):
        if not value > 0:
            raise UsageError(f"{flag} must be positive, got {value}")
    if args.yarn_rm_url is not None:
        args.yarn_rm_url = validate_rm_url(args.yarn_rm_url)
        if args.yarn_period_s % args.yarn_poll_s:
            raise UsageError("--yarn-period-s must be a multiple of --yarn-poll-s")
    elif args.yarn_high_resolution:
        raise UsageError("--yarn-high-resolution needs --yarn-rm-url")
    if args.state_table is not None:
        if args.yarn_rm_url is None:
            raise UsageError("--state-table needs --yarn-rm-url")
        if not _TABLE.match(args.state_table):
            raise UsageError(f"--state-table {args.state_table!r} is not a DynamoDB table name")
    return cluster_id


_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_RM_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?$")


def validate_rm_url(url: str) -> str:
    """`http(s)://host[:port]` (no path, query or credentials) → without a trailing slash."""
    if not _RM_URL.match(url):
        raise UsageError(f"--yarn-rm-url {url!r} is not http://HOST:PORT")
    return url.rstrip("/")


def make_sink(kind: str, *, region: str, endpoint_url: str | None) -> Any:
    from sparkscale.agent.publish import AwsCliSink, make_boto3_sink  # noqa: PLC0415

    if kind in ("auto", "boto3"):
        try:
            return make_boto3_sink(region=region, endpoint_url=endpoint_url)
        except ImportError:
            if kind == "boto3":
                raise UsageError("--publisher boto3, but this Python has no boto3") from None
    aws = shutil.which("aws")
    if aws is None:
        raise UsageError("neither boto3 nor the AWS CLI (`aws` on PATH) is available to publish with")
    return AwsCliSink(aws=aws, region=region, endpoint_url=endpoint_url)


def run_from_args(args: argparse.Namespace) -> int:
    from sparkscale.agent.publish import Publisher, resolve_endpoint, resolve_region  # noqa: PLC0415
    from sparkscale.agent.server import HeapAgent, drop_privileges, open_socket, serve  # noqa: PLC0415

    try:
        cluster_id = _validate(args)
        region = resolve_region(os.environ, args.region)
        if not region:
            raise UsageError("no region: set AWS_REGION (or pass --region)")
        sink = make_sink(args.publisher, region=region, endpoint_url=resolve_endpoint(os.environ))
    except UsageError as exc:
        print(f"{_prog(args)}: {exc}", file=sys.stderr)
        return 2
    try:
        sock = open_socket(args.bind, args.port, args.rcvbuf_bytes)
    except OSError as exc:
        print(f"{_prog(args)}: cannot listen on udp {args.bind}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.run_as:
            drop_privileges(args.run_as)
        agent = HeapAgent(
            cluster_id=cluster_id,
            silent_after_s=args.spark_period_s * args.silent_periods,
            max_jvms=args.max_jvms,
            max_packets_per_s=args.max_packets_per_s,
        )
        publisher = Publisher(sink=sink, max_pending_batches=args.max_pending_batches)
        streaming = Publisher(
            sink=sink, namespace=names.STREAMING_NAMESPACE, max_pending_batches=args.max_pending_batches
        )
        yarn = _yarn_loop(args, cluster_id=cluster_id, sink=sink)
        stop = threading.Event()
        previous = _install_stop_handlers(stop)
        _log(
            f"start cluster={cluster_id} listen=udp://{args.bind}:{sock.getsockname()[1]} "
            f"interval_s={args.interval_s:g} publisher={sink.name} region={region} "
            f"rcvbuf={sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}"
            + (
                f" yarn={args.yarn_rm_url} yarn_resolution_s="
                f"{args.yarn_poll_s if args.yarn_high_resolution else args.yarn_period_s:g}"
                if yarn
                else " yarn=off"
            )
            + (f" node_report={args.state_table}" if yarn and yarn.nodes else "")
        )
        try:
            serve(
                sock=sock,
                agent=agent,
                publisher=publisher,
                interval_s=args.interval_s,
                stop=stop,
                wall_clock=time.time,  # the agent's edge; EMR's Python 3.7/3.9 cannot import sparkscale.clock
                monotonic=time.monotonic,
                log=_log,
                yarn=yarn,
                streaming=streaming,
            )
        finally:
            _restore_handlers(previous)
    finally:
        sock.close()
    counters = agent.counters
    _log(
        f"stopped sent_batches={publisher.sent_batches} pending={publisher.pending_batches} "
        f"dropped_batches={publisher.dropped_batches} packets={counters.packets} "
        f"heap_lines={counters.heap_lines} streaming_lines={counters.streaming_lines} "
        f"streaming_sent_batches={streaming.sent_batches} dropped={counters.dropped}"
    )
    return 0


def _yarn_loop(args: argparse.Namespace, *, cluster_id: str, sink: Any) -> Any:
    """The YARN loop for --yarn-rm-url (its own Publisher and buffer), or None."""
    if args.yarn_rm_url is None:
        return None
    from sparkscale.agent.publish import Publisher  # noqa: PLC0415
    from sparkscale.agent.yarn import YarnCollector, YarnLoop  # noqa: PLC0415

    collector = YarnCollector(args.yarn_rm_url, timeout_s=args.yarn_timeout_s, max_bytes=args.yarn_max_bytes)
    return YarnLoop(
        collector=collector,
        nodes=_node_reporter(args, cluster_id=cluster_id, collector=collector),
        publisher=Publisher(
            sink=sink, namespace=names.YARN_NAMESPACE, max_pending_batches=args.max_pending_batches
        ),
        cluster_id=cluster_id,
        poll_s=args.yarn_poll_s,
        period_s=args.yarn_period_s,
        high_resolution=args.yarn_high_resolution,
        wall_clock=time.time,
        monotonic=time.monotonic,
        log=_log,
    )


def _node_reporter(args: argparse.Namespace, *, cluster_id: str, collector: Any) -> Any:
    """The node report writer for --state-table (boto3, else the AWS CLI), or None."""
    if args.state_table is None:
        return None
    from sparkscale.agent import nodes  # noqa: PLC0415
    from sparkscale.agent.publish import resolve_region  # noqa: PLC0415

    region = resolve_region(os.environ, args.region) or ""
    endpoint = nodes.resolve_dynamodb_endpoint(os.environ)
    try:
        sink: Any = nodes.make_boto3_item_sink(region=region, endpoint_url=endpoint)
    except ImportError:
        aws = shutil.which("aws")
        if aws is None:
            raise UsageError("neither boto3 nor the AWS CLI is available to write the node report") from None
        sink = nodes.AwsCliItemSink(aws=aws, region=region, endpoint_url=endpoint)
    return nodes.NodeReporter(
        get=lambda path: collector.get(path, nodes.MAX_BYTES),
        sink=sink,
        table=args.state_table,
        cluster_id=cluster_id,
        log=_log,
        period_s=args.node_report_period_s,
    )


def _log(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda _signum, _frame: stop.set())
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heap-agent", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python3 -m sparkscale.agent` and of the zipapp."""
    return run_from_args(build_parser().parse_args(argv))
