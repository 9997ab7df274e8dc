"""`sparkscale replay`: what sparkscale would do to a workload, and what it would cost, next to EMR's default
custom rules, static peak provisioning and an oracle."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkscale_tools.cli.conventions import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    aws_region,
    require_modules,
    writable_file,
)

DEFAULT_DAYS = 7.0
PROGRESS_MIN_STEPS = 2000


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="replay a demand trace through sparkscale and the baselines, and score them",
        description="Replay a memory-demand trace (or a cluster's CloudWatch history) through the real "
        "sparkscale policy (usecases.scale.run_once with simulated adapters and clock), EMR's default custom "
        "rules, static peak provisioning and an oracle; print and write the scores.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", metavar="FILE.csv", help="CSV with time_s and a demand column (GiB)")
    src.add_argument("--cloudwatch", metavar="CLUSTER_ID", help="build the trace from this cluster's metrics")
    src.add_argument(
        "--synthetic",
        choices=("diurnal", "bursty-batch", "streaming"),
        help="a generated demand shape (streaming: input rows/s of a stream, a daily rhythm and bursts)",
    )
    p.add_argument(
        "--days",
        type=float,
        default=None,
        help=f"history (--cloudwatch) or length (--synthetic), days (default {DEFAULT_DAYS:g})",
    )
    p.add_argument(
        "--region",
        default=None,
        help="AWS region for --cloudwatch (default: AWS_DEFAULT_REGION, else AWS_REGION, else the SDK's)",
    )
    p.add_argument("--column", default="demand_gib", help="the trace's demand column (default demand_gib)")
    p.add_argument(
        "--peak-gib", type=float, default=None, help="rescale the trace so its peak is this many GiB"
    )
    p.add_argument("--config", metavar="FILE.json", help="sparkscale settings (sparkscale config check FILE)")
    p.add_argument(
        "--cluster",
        metavar="FILE.json",
        help="simulated cluster: core and TASK groups, prices, "
        "spot risk (default: 2 × r5.2xlarge core, 4 SPOT + 1 ON_DEMAND task groups)",
    )
    p.add_argument(
        "--policies",
        default="sparkscale,emr-custom-rules,static-peak,oracle",
        help="comma-separated, from: sparkscale, emr-custom-rules, static-peak, oracle, reactive-ideal "
        "(default: all but reactive-ideal)",
    )
    p.add_argument(
        "--backlog",
        action="store_true",
        help="work-conserving model: demand that does not fit waits and runs later (FIFO); adds queued "
        "GiB-hours and wait p50/p95 to the scores",
    )
    p.add_argument(
        "--no-yarn-collector",
        action="store_true",
        help="no Sparkscale/Yarn metrics from the master agent (the model before the collector)",
    )
    p.add_argument(
        "--no-dynamic-allocation",
        action="store_true",
        help="no SparkExecutorsNeeded/SparkExecutorsTarget (Spark dynamic allocation off)",
    )
    p.add_argument(
        "--rows-per-node",
        type=float,
        default=None,
        help="streaming (a trace with input_rows_per_s, or --synthetic streaming): rows/s one TASK node "
        "processes (default 10000)",
    )
    p.add_argument(
        "--core-share",
        type=float,
        default=None,
        help="streaming: a CORE node processes this share of a TASK node's rows/s (default 0.5)",
    )
    p.add_argument("--json", metavar="OUT.json", help="write the scores as JSON")
    p.add_argument("--timeline", metavar="OUT.csv", help="write demand, supply and cost per step")
    p.add_argument("--plot", metavar="OUT.png", help="plot demand and supply over time (matplotlib)")
    p.add_argument("--seed", type=int, default=0, help="seed of the spot-market randomness (default 0)")
    p.add_argument("--step-s", type=int, default=60, help="simulation step, s (default 60)")
    p.add_argument(
        "--provisioning-s", type=float, default=360.0, help="request → node usable, s (default 360)"
    )
    p.add_argument(
        "--decommission-s",
        type=float,
        default=120.0,
        help="scale-in → node terminated (billed meanwhile), s (default 120)",
    )
    p.add_argument(
        "--emr-lag-s", type=float, default=120.0, help="EMR metric publication lag, s (default 120)"
    )
    p.add_argument(
        "--interruption-rate",
        type=float,
        default=0.0,
        help="spot interruption warnings per SPOT node-hour, every SPOT group (default 0)",
    )
    p.add_argument(
        "--shortfall-per-day",
        type=float,
        default=0.0,
        help="spot capacity-shortfall episodes per day per SPOT group (default 0)",
    )
    p.add_argument("--shortfall-s", type=float, default=3600.0, help="length of one shortfall episode, s")
    p.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar on stderr (auto: on a terminal, for long runs)",
    )
    p.set_defaults(func=_replay)


def _fail(msg: str, code: int = EXIT_USAGE) -> int:
    raise CliError(msg, exit_code=code)


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output can be written, and --plot can be drawn, before the (possibly long) run."""
    for flag, path in (("--json", args.json), ("--timeline", args.timeline), ("--plot", args.plot)):
        if path:
            writable_file(path, flag=flag)
    if args.plot:
        require_modules("matplotlib", extra="replay", what="--plot")
        from sparkscale_tools.replay.outputs import plot_formats  # noqa: PLC0415

        suffix = Path(args.plot).suffix.lstrip(".").lower()
        if suffix not in plot_formats():
            known = ", ".join(plot_formats())
            raise CliError(f"--plot {args.plot}: not an image format matplotlib writes: {suffix!r} ({known})")


def _replay(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one return per way out, each plain
    from sparkscale.config import ConfigError  # noqa: PLC0415 - keep `sparkscale --help` fast

    from sparkscale_tools.replay import outputs  # noqa: PLC0415
    from sparkscale_tools.replay.cluster import ClusterSpecError  # noqa: PLC0415
    from sparkscale_tools.replay.progress import ProgressBar  # noqa: PLC0415
    from sparkscale_tools.replay.run import ReplayError, run_replay  # noqa: PLC0415
    from sparkscale_tools.replay.trace import TraceError  # noqa: PLC0415

    _check_outputs(args)
    if _is_streaming(args):
        from sparkscale_tools.replay.streaming_cli import stream_replay  # noqa: PLC0415

        return stream_replay(args)
    if args.rows_per_node is not None or args.core_share is not None:
        return _fail("--rows-per-node and --core-share go with a streaming trace or --synthetic streaming")
    try:
        inputs = _inputs(args)
    except (ConfigError, ClusterSpecError, ReplayError, TraceError) as exc:
        return _fail(str(exc))
    except _AwsFailure as exc:
        return _fail(str(exc), EXIT_FAILED)
    demand = inputs.trace.resample(inputs.params.step_s)
    show = args.progress == "on" or (
        args.progress == "auto" and sys.stderr.isatty() and len(demand) >= PROGRESS_MIN_STEPS
    )
    bar = ProgressBar() if show else None
    try:
        result = run_replay(
            demand,
            policies=inputs.policies,
            config=inputs.config,
            cluster=inputs.cluster,
            params=inputs.params,
            seed=args.seed,
            progress=bar.for_policy if bar else None,
        )
    except (ReplayError, ClusterSpecError) as exc:
        return _fail(str(exc))
    # The files first: `sparkscale replay … --json out.json | head` still writes them when head stops reading.
    try:
        if args.json:
            Path(args.json).write_text(outputs.json_text(result), encoding="utf-8")
        if args.timeline:
            Path(args.timeline).write_text(outputs.timeline_text(result), encoding="utf-8")
        if args.plot:
            outputs.write_plot(result, args.plot, title=f"sparkscale replay: {Path(inputs.trace.name).name}")
    except OSError as exc:
        return _fail(f"cannot write output: {exc.strerror or exc} ({exc.filename})")
    sys.stdout.write(f"trace: {inputs.trace.name}, peak {inputs.trace.peak_gib:.1f} GiB\n")
    sys.stdout.write(outputs.summary_text(result))
    return 0


def _is_streaming(args: argparse.Namespace) -> bool:
    """A stream to replay: --synthetic streaming, or a trace whose header has input_rows_per_s."""
    from sparkscale_tools.replay.streaming import is_stream_csv  # noqa: PLC0415

    return args.synthetic == "streaming" or bool(args.trace and is_stream_csv(args.trace))


@dataclass(frozen=True)
class _Inputs:
    config: Any
    cluster: Any
    policies: list[Any]
    params: Any
    trace: Any


def _inputs(args: argparse.Namespace) -> _Inputs:
    """Everything the replay needs from the arguments; raises the input errors _replay turns into exit 2."""
    from sparkscale.config import Config  # noqa: PLC0415
    from sparkscale.config_io import from_file  # noqa: PLC0415

    from sparkscale_tools.replay import cluster as cl  # noqa: PLC0415
    from sparkscale_tools.replay.model import SimParams  # noqa: PLC0415
    from sparkscale_tools.replay.run import ReplayError, parse_policies  # noqa: PLC0415

    config = from_file(args.config) if args.config else Config()
    cluster = cl.load_cluster(args.cluster) if args.cluster else cl.default_cluster()
    if args.interruption_rate or args.shortfall_per_day:
        if min(args.interruption_rate, args.shortfall_per_day, args.shortfall_s) < 0:
            raise ReplayError("--interruption-rate, --shortfall-per-day and --shortfall-s must be >= 0")
        cluster = cluster.with_spot_risk(
            interruption_rate_per_node_hour=args.interruption_rate,
            shortfall_episodes_per_day=args.shortfall_per_day,
            shortfall_duration_s=args.shortfall_s,
        )
    policies = parse_policies(args.policies)
    try:
        params = SimParams(
            step_s=args.step_s,
            provisioning_s=args.provisioning_s,
            decommission_s=args.decommission_s,
            emr_lag_s=args.emr_lag_s,
            backlog=args.backlog,
            yarn_collector=not args.no_yarn_collector,
            dynamic_allocation=not args.no_dynamic_allocation,
        )
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    return _Inputs(config, cluster, policies, params, _trace(args, config.default_container_memory_mb))


def _trace(args: argparse.Namespace, container_mb: int) -> Any:
    from sparkscale_tools.replay import synthetic  # noqa: PLC0415
    from sparkscale_tools.replay.run import ReplayError  # noqa: PLC0415
    from sparkscale_tools.replay.trace import load_csv  # noqa: PLC0415

    days = args.days if args.days is not None else DEFAULT_DAYS
    if args.trace:
        if args.days is not None:
            raise ReplayError("--days goes with --cloudwatch or --synthetic, not --trace")
        return load_csv(args.trace, column=args.column, peak_gib=args.peak_gib)
    if args.synthetic:
        if not 0 < days <= 400:
            raise ReplayError(f"--days must be in (0, 400], got {days:g}")
        if args.peak_gib is not None and not args.peak_gib > 0:
            raise ReplayError(f"--peak-gib must be a positive number, got {args.peak_gib:g}")
        gen = synthetic.GENERATORS[args.synthetic]
        return gen(days=days, peak_gib=args.peak_gib or 1024.0, seed=args.seed)
    trace = _cloudwatch_trace(args.cloudwatch, days, args.region, container_mb)
    return trace.rescaled(args.peak_gib) if args.peak_gib is not None else trace


class _AwsFailure(Exception):
    pass


def _cloudwatch_trace(cluster_id: str, days: float, region: str | None, container_mb: int) -> Any:
    import boto3  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from sparkscale.clock import utcnow  # noqa: PLC0415

    from sparkscale_tools.replay.cloudwatch_trace import trace_from_cloudwatch  # noqa: PLC0415

    try:
        client = boto3.client("cloudwatch", region_name=aws_region(os.environ, region))
        return trace_from_cloudwatch(
            client, cluster_id=cluster_id, end=utcnow(), days=days, default_container_mb=container_mb
        )
    except (BotoCoreError, ClientError) as exc:
        raise _AwsFailure(f"--cloudwatch {cluster_id}: {exc}") from None
