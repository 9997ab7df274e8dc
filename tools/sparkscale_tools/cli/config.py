"""`sparkscale config check FILE` / `sparkscale config table`: validate a settings file, print the schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

from sparkscale.config import ConfigError, config_table_markdown
from sparkscale.config_io import from_file

# The docs page that holds the generated table (tests/test_docs.py keeps it equal to the schema).
CONFIG_PAGE: Final = "docs/configuration.md"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("config", help="validate a settings file or print the schema")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser(
        "check", help="validate a JSON settings file and print it with defaults filled in"
    )
    check.add_argument("file")
    check.set_defaults(func=_check)
    table = csub.add_parser("table", help="print the configuration table (Markdown)")
    table.add_argument(
        "--write",
        metavar="PAGE",
        nargs="?",
        const=CONFIG_PAGE,
        default=None,
        help=f"replace the table between the page's config-table markers instead of printing "
        f"(default page: {CONFIG_PAGE})",
    )
    table.set_defaults(func=_table)


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = from_file(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(cfg.to_json())
    return 0


def _table(args: argparse.Namespace) -> int:
    table = config_table_markdown()
    if args.write is None:
        print(table)
        return 0
    path = Path(args.write)
    text = path.read_text(encoding="utf-8")
    start, end = "<!-- section:config-table -->", "<!-- /section:config-table -->"
    if start not in text or end not in text:
        print(f"{path}: no {start} … {end} markers", file=sys.stderr)
        return 2
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")
    return 0
