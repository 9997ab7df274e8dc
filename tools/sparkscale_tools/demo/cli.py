"""`sparkscale demo`: the real handlers scale a simulated Spark cluster on an embedded AWS (moto server).

`make demo` synthesizes the stack with the CDK CLI and runs `sparkscale demo --template cdk.out $(ARGS)`.
With `--config FILE` the demo synthesizes the stack again with that configuration (the CDK CLI, offline).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sparkscale_tools.cli.conventions import CliError, new_output_dir, require_modules

DEFAULT_TRACE: Final = Path("data") / "traces" / "swim_fb2009_hadoop.csv"
DEFAULT_TRACE_PEAK_GIB: Final = 1024.0  # the bundled SWIM day rescaled to fit 20 task nodes
PLACEHOLDER_CLUSTER: Final = "j-DEMOPLACEHOLDER"  # a --config without clusters: replaced by the moto cluster


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the real handlers against an embedded AWS (moto server) on a replayed trace",
        description="Start a moto server on 127.0.0.1, create what the synthesized stack defines (alarms, "
        "table, topics, function settings) plus an EMR cluster, replay a trace in accelerated time: the "
        "model publishes the cluster's metrics, the template's alarms are evaluated and wake the real alarm "
        "handler through SNS, the real reconcile handler runs on its schedule, and the model follows what "
        "the handlers request from EMR. Prints each decision and operator email, then a comparison with "
        "EMR's custom rules.",
    )
    p.add_argument(
        "--template",
        default="cdk.out",
        metavar="PATH",
        help="synthesized template, or the cdk.out directory (default cdk.out: run `make synth`)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--trace",
        metavar="FILE.csv",
        help=f"demand trace: time_s and a GiB column (default {DEFAULT_TRACE} at {DEFAULT_TRACE_PEAK_GIB:g})",
    )
    src.add_argument("--synthetic", choices=("bursty-batch", "diurnal"), help="a generated demand shape")
    p.add_argument("--column", default="demand_gib", help="the trace's demand column (default demand_gib)")
    p.add_argument("--peak-gib", type=float, default=None, help="rescale the trace so its peak is this")
    p.add_argument("--hours", type=float, default=None, help="replay only the first HOURS (default: all)")
    p.add_argument(
        "--config",
        metavar="FILE.json",
        help="sparkscale settings: the stack is synthesized again with them (CDK CLI, offline)",
    )
    p.add_argument(
        "--cluster",
        metavar="FILE.json",
        help="the EMR cluster's groups, or its TASK fleet (the replay --cluster format: task_groups or "
        "task_fleet)",
    )
    p.add_argument(
        "--fleet",
        action="store_true",
        help="an instance-fleet cluster: the TASK fleet is resized in capacity units, spot first, on-demand "
        "when spot does not come (moto has no fleets: the demo overlays them); implied by a --cluster file "
        "with task_fleet",
    )
    p.add_argument("--out", default="demo-out", metavar="DIR", help="output directory (default demo-out)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic trace and the model (default 0)"
    )
    p.add_argument(
        "--provisioning-s", type=float, default=360.0, help="request → node usable, s (default 360)"
    )
    p.add_argument("--emails", type=int, default=3, metavar="N", help="print the first N emails in full")
    p.add_argument("--no-compare", action="store_true", help="skip the replay baselines in the summary")
    p.add_argument(
        "--tagged-cluster",
        action="store_true",
        help="a third of the way through, start a cluster with the opt-in tag and an untagged one: the "
        "discovery handler gives the tagged one alarms, the handlers scale it, it is terminated two thirds "
        "of the way through and its alarms deleted (the stack is synthesized with the discovery feature on)",
    )
    p.add_argument(
        "--streaming",
        action="store_true",
        help="a streaming cluster reading a Kinesis stream (in moto), scaled on how far behind it is: the "
        "trace is input rows/s (default: the synthetic streaming shape, 6 h); the stack is synthesized with "
        "the stream in `streams`",
    )
    p.add_argument(
        "--rows-per-node",
        type=float,
        default=None,
        help="--streaming: rows/s one TASK node processes (default 10000)",
    )
    p.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )
    p.set_defaults(func=_demo)


def _fail(msg: str) -> int:
    raise CliError(msg)


def repo_root() -> Path:
    import sparkscale  # noqa: PLC0415

    return Path(sparkscale.__file__).resolve().parents[2]


def default_trace() -> Path:
    """The checkout's data/traces/swim_fb2009_hadoop.csv; an installed wheel carries the bundled traces as
    sparkscale_tools/_traces (setup.py)."""
    in_checkout = repo_root() / DEFAULT_TRACE
    installed = Path(__file__).resolve().parents[1] / "_traces" / DEFAULT_TRACE.name
    return installed if installed.is_file() else in_checkout


def _demo(args: argparse.Namespace) -> int:
    from sparkscale_tools.demo.run import default_cluster, run_demo, summary_text  # noqa: PLC0415
    from sparkscale_tools.demo.template import DemoError  # noqa: PLC0415
    from sparkscale_tools.replay.cluster import load_cluster  # noqa: PLC0415
    from sparkscale_tools.replay.model import SimParams  # noqa: PLC0415

    require_modules("moto", "aws_lambda_powertools", "matplotlib", extra="demo", what="the demo")
    out_dir = new_output_dir(args.out, flag="--out")
    if args.streaming:
        from sparkscale_tools.demo.streaming_cli import streaming_demo  # noqa: PLC0415

        return streaming_demo(args, out_dir)
    if args.rows_per_node is not None:
        return _fail("--rows-per-node goes with --streaming")
    with demo_errors():
        trace = _trace(args)
        cluster = load_cluster(args.cluster) if args.cluster else default_cluster(fleet=args.fleet)
        if args.fleet and not any(g.fleet_id for g in cluster.task_groups):
            raise DemoError(f"--fleet: {args.cluster} has task_groups, not a task_fleet")
        params = SimParams(provisioning_s=args.provisioning_s)
        if args.emails < 0:
            raise DemoError("--emails must be >= 0")
        template = Path(args.template)
        if args.config or (args.tagged_cluster and not _discovers(template)):
            config = Path(args.config) if args.config else None
            template = synth_with_config(config, out_dir / "cdk.out", discovery=args.tagged_cluster)
            parts = (args.config, "the discovery feature on" if args.tagged_cluster else None)
            what = " and ".join(str(x) for x in parts if x)
            print(f"synthesized the stack with {what} -> {template}")
        opts = demo_options(
            args,
            template=template,
            trace=trace,
            out_dir=out_dir,
            cluster=cluster,
            params=params,
            tagged_cluster=args.tagged_cluster,
        )
        with _terminate_as_interrupt():
            result = run_demo(opts, out=sys.stdout, err=sys.stderr)
    sys.stdout.write(summary_text(result, trace_name=trace.name))
    failed = result.stats.failures or result.stats.fixed_groups_changed or result.tagged_failures
    return 1 if failed else 0


@contextmanager
def demo_errors() -> Iterator[None]:
    """What a demo's set-up or run can reject (a bad trace, cluster file, setting or template; a file that
    cannot be read or written) as the CLI's one error line (exit 2)."""
    from sparkscale.config import ConfigError  # noqa: PLC0415 - keep `sparkscale --help` fast

    from sparkscale_tools.demo.template import DemoError  # noqa: PLC0415
    from sparkscale_tools.replay.cluster import ClusterSpecError  # noqa: PLC0415
    from sparkscale_tools.replay.trace import TraceError  # noqa: PLC0415

    try:
        yield
    except (DemoError, ConfigError, TraceError, ClusterSpecError, ValueError) as exc:
        raise CliError(str(exc)) from None
    except BrokenPipeError:
        raise  # the reader of stdout has gone: the conventions end the command quietly
    except OSError as exc:
        raise CliError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None


def demo_options(args: argparse.Namespace, **fields: Any) -> Any:
    """The DemoOptions every demo takes from the command line (seed, progress, emails, comparison), with
    `fields` (template, trace, out_dir, cluster, params, ...) from its own set-up."""
    from sparkscale_tools.demo.run import DemoOptions  # noqa: PLC0415

    return DemoOptions(
        seed=args.seed,
        progress=args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty()),
        full_emails=args.emails,
        compare=not args.no_compare,
        **fields,
    )


def first_hours(trace: Any, hours: float | None) -> Any:
    """The trace's points before `hours` (all of them for None); DemoError when none is."""
    from sparkscale_tools.demo.template import DemoError  # noqa: PLC0415
    from sparkscale_tools.replay.trace import Trace  # noqa: PLC0415

    if hours is None:
        return trace
    end = hours * 3600.0
    points = [(t, v) for t, v in zip(trace.times_s, trace.demand_gib, strict=True) if t < end]
    if not points:
        raise DemoError(f"{trace.name}: no point in the first {hours:g} h")
    return Trace(tuple(t for t, _ in points), tuple(v for _, v in points), trace.name)


def _discovers(template: Path) -> bool:
    """The template has the discovery function (the stack's `discovery` feature is on)."""
    from sparkscale_tools.demo import template as tp  # noqa: PLC0415

    return tp.DISCOVERY_HANDLER in tp.load(template).functions


def _trace(args: argparse.Namespace) -> Any:
    from sparkscale_tools.demo.template import DemoError  # noqa: PLC0415
    from sparkscale_tools.replay import synthetic  # noqa: PLC0415
    from sparkscale_tools.replay.trace import Trace, load_csv  # noqa: PLC0415

    if args.hours is not None and not 0 < args.hours <= 24 * 400:
        raise DemoError(f"--hours must be in (0, 9600], got {args.hours:g}")
    if args.peak_gib is not None and not args.peak_gib > 0:
        raise DemoError(f"--peak-gib must be a positive number, got {args.peak_gib:g}")
    if args.synthetic:
        days = (args.hours or 24.0) / 24.0
        trace: Trace = synthetic.GENERATORS[args.synthetic](
            days=days, peak_gib=args.peak_gib or DEFAULT_TRACE_PEAK_GIB, seed=args.seed
        )
    else:
        path = Path(args.trace) if args.trace else default_trace()
        peak = args.peak_gib if (args.trace or args.peak_gib) else DEFAULT_TRACE_PEAK_GIB
        trace = load_csv(path, column=args.column, peak_gib=peak)
    return first_hours(trace, args.hours)


def synth_with_config(config_path: Path | None, outdir: Path, *, discovery: bool = False) -> Path:
    """`cdk synth` (the pinned CLI from `make venv`, offline) with `-c sparkscale=<the file's settings>`
    (none: cdk.json's), and with `discovery` cdk.json's feature flags plus `discovery`; returns the template.
    A config without clusters gets a placeholder (the demo replaces it anyway)."""
    from sparkscale.config_io import from_file  # noqa: PLC0415

    from sparkscale_tools.demo.template import DemoError, find_template  # noqa: PLC0415

    context: list[str] = []
    if config_path is not None:
        raw = json.loads(from_file(config_path).to_json())
        if not raw.get("clusters"):
            raw["clusters"] = [PLACEHOLDER_CLUSTER]
        context += ["-c", f"sparkscale={json.dumps(raw)}"]
    root = repo_root()
    if discovery:
        context += ["-c", f"sparkscale:features={json.dumps(_features_with_discovery(root))}"]
    cdk = root / "node_modules" / ".bin" / "cdk"
    if not cdk.is_file() or not (root / "cdk.json").is_file():
        raise DemoError(f"--config needs the CDK CLI ({cdk}) and cdk.json: run `make demo ARGS=...`")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    cmd = [str(cdk), "synth", "--no-notices", "--quiet", *context]
    cmd += ["--output", str(outdir.resolve())]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DemoError(f"cdk synth with {config_path or 'the discovery feature'} failed: {last}")
    return find_template(outdir)


def _features_with_discovery(root: Path) -> dict[str, Any]:
    """cdk.json's `sparkscale:features` with `discovery` on (a -c value replaces the whole key)."""
    context = json.loads((root / "cdk.json").read_text(encoding="utf-8")).get("context", {})
    features = context.get("sparkscale:features") or {}
    return {**(features if isinstance(features, dict) else {}), "discovery": True}


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C (the moto server stopped and every patch undone on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
