"""`sparkscale` command line. Each area registers its subcommands in its own module (cheap to import: heavy
imports happen inside the command), listed in COMMAND_MODULES."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sparkscale import __version__

# Each module defines `register(subparsers: argparse._SubParsersAction) -> None`; every parser it adds sets
# `func=callable(args) -> int` (the exit code).
COMMAND_MODULES: tuple[str, ...] = (
    "sparkscale_tools.cli.config",
    "sparkscale.agent.cli",
    "sparkscale_tools.replay.cli",
    "sparkscale_tools.cli.plan",
    "sparkscale_tools.cli.events",
    "sparkscale_tools.cli.operate",
    "sparkscale_tools.cli.discover",
    "sparkscale_tools.demo.cli",
    "sparkscale_tools.cli.emr_setup",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkscale", description="Autoscale SPOT task groups of Spark on EMR."
    )
    parser.add_argument("--version", action="version", version=f"sparkscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
