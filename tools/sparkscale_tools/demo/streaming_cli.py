"""`sparkscale demo --streaming`: the arguments to a streaming demo (demo/streaming.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_HOURS = 6.0


def streaming_demo(args: argparse.Namespace, out_dir: Path) -> int:
    from sparkscale.config_io import from_file  # noqa: PLC0415

    from sparkscale_tools.demo import template as tp  # noqa: PLC0415
    from sparkscale_tools.demo.cli import (  # noqa: PLC0415
        _terminate_as_interrupt,
        demo_errors,
        demo_options,
        synth_with_config,
    )
    from sparkscale_tools.demo.run import default_cluster  # noqa: PLC0415
    from sparkscale_tools.demo.streaming import (  # noqa: PLC0415
        run_streaming_demo,
        streaming_config_file,
        summary_text,
    )
    from sparkscale_tools.replay.cluster import load_cluster  # noqa: PLC0415
    from sparkscale_tools.replay.model import SimParams  # noqa: PLC0415
    from sparkscale_tools.replay.streaming import StreamParams  # noqa: PLC0415

    with demo_errors():
        if args.emails < 0:
            raise tp.DemoError("--emails must be >= 0")
        trace = _trace(args)
        stream = StreamParams(
            rows_per_s_per_node=StreamParams().rows_per_s_per_node
            if args.rows_per_node is None
            else args.rows_per_node
        )
        cluster = load_cluster(args.cluster) if args.cluster else default_cluster()
        params = SimParams(provisioning_s=args.provisioning_s)
        template = Path(args.template)
        base = from_file(args.config) if args.config else tp.load(template).config
        if args.config or not base.streams:
            config_file = streaming_config_file(base, out_dir)
            template = synth_with_config(config_file, out_dir / "cdk.out")
            print(f"synthesized the stack with a Kinesis stream in `streams` ({config_file}) -> {template}")
        if args.tagged_cluster:  # `make demo` passes it by default (DEMO_CLUSTERS)
            print("--streaming runs the streaming cluster alone: --tagged-cluster is not part of it")
        opts = demo_options(
            args, template=template, trace=trace, out_dir=out_dir, cluster=cluster, params=params
        )
        with _terminate_as_interrupt():
            result = run_streaming_demo(opts, stream, out=sys.stdout, err=sys.stderr)
    sys.stdout.write(summary_text(result, epoch=params.epoch))
    return 1 if result.failed else 0


def _trace(args: argparse.Namespace) -> Any:
    from sparkscale_tools.demo.cli import first_hours  # noqa: PLC0415
    from sparkscale_tools.demo.template import DemoError  # noqa: PLC0415
    from sparkscale_tools.replay.streaming import load_stream_csv, synthetic_stream  # noqa: PLC0415

    if args.synthetic:
        raise DemoError(
            "--synthetic is a memory shape; --streaming has its own (or --trace with input_rows_per_s)"
        )
    if args.peak_gib is not None:
        raise DemoError("--peak-gib rescales a memory trace, not a stream (scale with --rows-per-node)")
    if args.hours is not None and not 0 < args.hours <= 24 * 400:
        raise DemoError(f"--hours must be in (0, 9600], got {args.hours:g}")
    if not args.trace:
        return synthetic_stream(days=(args.hours or DEFAULT_HOURS) / 24.0, seed=args.seed)
    return first_hours(load_stream_csv(args.trace), args.hours)
