"""`sparkscale` command line. Each area registers its subcommands in its own module (cheap to import: heavy
imports happen inside the command), listed in COMMAND_MODULES. What every command shares (the error line,
closed pipes, output-path checks, the AWS region) is in `conventions`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sparkscale import __version__

from sparkscale_tools.cli.conventions import SparkscaleArgumentParser, broken_pipe, run_command

# Each module defines `register(subparsers: argparse._SubParsersAction) -> None`; every parser it adds sets
# `func=callable(args) -> int` (the exit code) and raises `conventions.CliError` for anything that goes wrong.
COMMAND_MODULES: tuple[str, ...] = (
    "sparkscale_tools.cli.config",
    "sparkscale.agent.cli",
    "sparkscale_tools.replay.cli",
    "sparkscale_tools.cli.plan",
    "sparkscale_tools.cli.events",
    "sparkscale_tools.cli.operate",
    "sparkscale_tools.cli.report",
    "sparkscale_tools.cli.discover",
    "sparkscale_tools.demo.cli",
    "sparkscale_tools.cli.emr_setup",
)


def build_parser() -> argparse.ArgumentParser:
    parser = SparkscaleArgumentParser(
        prog="sparkscale", description="Autoscale SPOT task groups of Spark on EMR."
    )
    parser.add_argument("--version", action="version", version=f"sparkscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # --help, --version or an argument error: --help may meet a closed pipe too
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return broken_pipe()
        raise
    return run_command(_command_name(args), args.func, args)


def _command_name(args: argparse.Namespace) -> str:
    """`replay`, or `config check` for a command with actions."""
    words = [args.command] + [v for k, v in vars(args).items() if k.endswith("_command") and v]
    return " ".join(str(w) for w in words)
