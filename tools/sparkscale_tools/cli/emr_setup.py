"""`sparkscale emr-configurations [--release-label emr-7.2.0]`: print the EMR configurations (JSON) that keep
Spark jobs alive on scale-in, the same the stack outputs as SafeScaleInConfigurations (docs/safe-scale-in.md).

    aws emr create-cluster ... --configurations "$(sparkscale emr-configurations --release-label emr-7.2.0)"
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sparkscale.emr_setup import release_notes, safe_scale_in_configurations


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "emr-configurations",
        help="print the EMR configurations (JSON) that keep Spark drivers and shuffle data alive on scale-in",
    )
    p.add_argument(
        "--release-label",
        metavar="emr-X.Y.Z",
        help="the cluster's EMR release (default: one of 6.12.0 or later, what the stack outputs)",
    )
    p.add_argument(
        "--keep-shuffle-service",
        action="store_true",
        help="leave Spark's external shuffle service on (Spark then ignores YARN node decommissioning)",
    )
    p.add_argument("--notes", action="store_true", help="also print what they do, one line each, on stderr")
    p.set_defaults(func=_print)


def _print(args: argparse.Namespace) -> int:
    try:
        configurations = safe_scale_in_configurations(
            args.release_label, keep_shuffle_service=args.keep_shuffle_service
        )
        notes = release_notes(args.release_label)
    except ValueError as exc:
        print(f"emr-configurations: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(configurations, indent=2, sort_keys=True))
    if args.notes:
        for line in notes:
            print(f"# {line}", file=sys.stderr)
    return 0
