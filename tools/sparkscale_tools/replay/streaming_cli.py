"""`sparkscale replay` on a stream (a trace with `input_rows_per_s`, or `--synthetic streaming`): the
arguments to a streaming replay, its outputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sparkscale_tools.cli.conventions import EXIT_USAGE, CliError

DEFAULT_POLICIES = "sparkscale,emr-custom-rules,static-peak,oracle"  # replay/cli.py's default


def stream_replay(args: argparse.Namespace) -> int:
    from sparkscale.config import Config, ConfigError  # noqa: PLC0415
    from sparkscale.config_io import from_file  # noqa: PLC0415

    from sparkscale_tools.replay import cluster as cl  # noqa: PLC0415
    from sparkscale_tools.replay.cluster import ClusterSpecError  # noqa: PLC0415
    from sparkscale_tools.replay.model import SimParams  # noqa: PLC0415
    from sparkscale_tools.replay.streaming_run import (  # noqa: PLC0415
        STREAMING_POLICIES,
        StreamingReplayError,
        run_streaming_replay,
        summary_text,
    )
    from sparkscale_tools.replay.trace import TraceError  # noqa: PLC0415

    try:
        if args.backlog:
            raise StreamingReplayError(
                "--backlog is for memory traces: a stream's backlog is always modelled"
            )
        if args.plot:
            raise StreamingReplayError("--plot is for memory traces; use --timeline for a stream")
        config = from_file(args.config) if args.config else Config()
        cluster = cl.load_cluster(args.cluster) if args.cluster else cl.default_cluster()
        if args.interruption_rate or args.shortfall_per_day:
            if min(args.interruption_rate, args.shortfall_per_day, args.shortfall_s) < 0:
                raise StreamingReplayError(
                    "--interruption-rate, --shortfall-per-day and --shortfall-s must be >= 0"
                )
            cluster = cluster.with_spot_risk(
                interruption_rate_per_node_hour=args.interruption_rate,
                shortfall_episodes_per_day=args.shortfall_per_day,
                shortfall_duration_s=args.shortfall_s,
            )
        policies = _policies(args.policies, STREAMING_POLICIES)
        params = SimParams(
            step_s=args.step_s,
            provisioning_s=args.provisioning_s,
            decommission_s=args.decommission_s,
            emr_lag_s=args.emr_lag_s,
            yarn_collector=not args.no_yarn_collector,
            dynamic_allocation=not args.no_dynamic_allocation,
        )
        stream = _stream_params(args)
        trace = _stream_trace(args)
        result = run_streaming_replay(
            trace.resample(params.step_s),
            policies=policies,
            config=config,
            cluster=cluster,
            params=params,
            stream=stream,
            seed=args.seed,
        )
    except (ConfigError, ClusterSpecError, StreamingReplayError, TraceError, ValueError) as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from None
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(result.to_json_dict(), indent=2) + "\n", encoding="utf-8")
        if args.timeline:
            Path(args.timeline).write_text(timeline_text(result), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write output: {exc.strerror or exc} ({exc.filename})") from None
    sys.stdout.write(f"trace: {trace.name}, peak {trace.peak_gib:,.0f} rows/s\n")
    sys.stdout.write(summary_text(result))
    return 0


def _policies(text: str, known: tuple[str, ...]) -> list[str]:
    """The default set means every streaming policy; an explicit list must name streaming ones only."""
    if text == DEFAULT_POLICIES:
        return list(known)
    out: list[str] = []
    for n in (x.strip() for x in text.split(",")):
        if not n:
            continue
        if n not in known:
            raise ValueError(f"--policies: {n!r} cannot replay a stream (streaming: {', '.join(known)})")
        if n not in out:
            out.append(n)
    if not out:
        raise ValueError("--policies: give at least one of " + ", ".join(known))
    return out


def _stream_params(args: argparse.Namespace) -> Any:
    from sparkscale_tools.replay.streaming import StreamParams  # noqa: PLC0415

    default = StreamParams()
    return StreamParams(
        rows_per_s_per_node=default.rows_per_s_per_node if args.rows_per_node is None else args.rows_per_node,
        core_share=default.core_share if args.core_share is None else args.core_share,
    )


def _stream_trace(args: argparse.Namespace) -> Any:
    from sparkscale_tools.replay.streaming import load_stream_csv, synthetic_stream  # noqa: PLC0415
    from sparkscale_tools.replay.trace import TraceError  # noqa: PLC0415

    if args.peak_gib is not None:
        raise TraceError("--peak-gib rescales a memory trace, not a stream (scale with --rows-per-node)")
    if args.trace:
        if args.days is not None:
            raise TraceError("--days goes with --synthetic, not --trace")
        return load_stream_csv(args.trace)
    days = args.days if args.days is not None else 7.0
    if not 0 < days <= 400:
        raise TraceError(f"--days must be in (0, 400], got {days:g}")
    return synthetic_stream(days=days, seed=args.seed)


def timeline_text(result: Any) -> str:
    """time_s, input rows/s, and per policy: TASK nodes, capacity rows/s, seconds behind."""
    names = list(result.runs)
    head = ["time_s", "input_rows_per_s"]
    for n in names:
        head += [f"{n}:task_nodes", f"{n}:capacity_rows_per_s", f"{n}:seconds_behind"]
    lines = [",".join(head)]
    for k, r in enumerate(result.input_rows_per_s):
        row = [f"{k * result.step_s}", f"{r:.6g}"]
        for n in names:
            run = result.runs[n]
            row += [str(run.task_nodes[k]), f"{run.capacity_rows_per_s[k]:.6g}", f"{run.behind_s[k]:.6g}"]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"
