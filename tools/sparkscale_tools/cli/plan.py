"""`sparkscale plan --memory-gib N --offers FILE.csv [--max-share F]`: the $/GiB-hour planner on a price list.

The offers CSV has a header and the columns `instance_type,memory_gib,spot_usd_per_hour` (memory_gib: the
instance memory to provision, per node; extra columns are ignored). Prints JSON: `{"allocation":
[{"instance_type", "nodes", "memory_gib", "usd_per_hour"}], "usd_per_hour", "usd_per_gib_hour", "memory_gib",
"reasons"}`. Bad input: one line on stderr (`sparkscale plan: …`), exit 2. The planner is pure and cheap to
import.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from typing import Any

from sparkscale.policy.model import Market
from sparkscale.policy.planner import Offer, plan_memory

from sparkscale_tools.cli.conventions import CliError

COLUMNS = ("instance_type", "memory_gib", "spot_usd_per_hour")


class OffersError(ValueError):
    """The offers file is unusable; the message names the line and the problem."""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "plan", help="cheapest whole-node spot allocation for an amount of memory ($ per GiB-hour)"
    )
    p.add_argument("--memory-gib", required=True, type=float, help="memory to provision, GiB")
    p.add_argument(
        "--offers", required=True, metavar="FILE.csv", help="instance_type,memory_gib,spot_usd_per_hour"
    )
    p.add_argument(
        "--max-share",
        type=float,
        default=1.0,
        help="most of the memory one instance type may hold, 0 < F <= 1 (default 1: no diversification)",
    )
    p.set_defaults(func=_plan)


def read_offers(text: str) -> list[tuple[str, float, float]]:
    """(instance_type, memory_gib, spot_usd_per_hour) per row. Raises OffersError naming the line."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise OffersError(f"offers CSV: missing column(s) {', '.join(missing)} (need {','.join(COLUMNS)})")
    reader.fieldnames = header
    rows: list[tuple[str, float, float]] = []
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        name = (row.get("instance_type") or "").strip()
        if not name:
            raise OffersError(f"offers CSV line {line}: empty instance_type")
        if name in seen:
            raise OffersError(f"offers CSV line {line}: instance type {name} appears twice")
        seen.add(name)
        mem = _number(row.get("memory_gib"), "memory_gib", line)
        price = _number(row.get("spot_usd_per_hour"), "spot_usd_per_hour", line)
        if mem <= 0:
            raise OffersError(f"offers CSV line {line}: memory_gib must be > 0, got {mem:g}")
        if price < 0:
            raise OffersError(f"offers CSV line {line}: spot_usd_per_hour must be >= 0, got {price:g}")
        rows.append((name, mem, price))
    if not rows:
        raise OffersError("offers CSV: no offers (a header and at least one row are needed)")
    return rows


def _number(raw: str | None, column: str, line: int) -> float:
    try:
        value = float((raw or "").strip())
    except ValueError:
        raise OffersError(f"offers CSV line {line}: {column} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise OffersError(f"offers CSV line {line}: {column} must be finite, got {raw!r}")
    return value


def plan_json(memory_gib: float, rows: list[tuple[str, float, float]], max_share: float) -> dict[str, Any]:
    offers = [Offer(name, name, mem, price, Market.SPOT) for name, mem, price in rows]
    plan = plan_memory(memory_gib=memory_gib, offers=offers, max_share=max_share)
    reasons = list(plan.reasons)
    if plan.shortfall_gib > 0:
        reasons.append(f"{plan.shortfall_gib:g} GiB could not be planned.")
    if plan.exhausted:
        reasons.append("The search budget ran out: the best plan found is shown, not proven optimal.")
    return {
        "allocation": [
            {
                "instance_type": a.instance_type,
                "nodes": a.nodes,
                "memory_gib": round(a.memory_gib, 6),
                "usd_per_hour": round(a.usd_per_hour, 6),
            }
            for a in plan.allocations
        ],
        "usd_per_hour": round(plan.usd_per_hour, 6),
        "usd_per_gib_hour": round(plan.usd_per_gib_hour, 8),
        "memory_gib": round(plan.memory_gib, 6),
        "reasons": reasons,
    }


def _plan(args: argparse.Namespace) -> int:
    if not math.isfinite(args.memory_gib) or args.memory_gib < 0:
        raise CliError(f"--memory-gib must be a finite number >= 0, got {args.memory_gib:g}")
    if not math.isfinite(args.max_share) or not 0 < args.max_share <= 1:
        raise CliError(f"--max-share must be in (0, 1], got {args.max_share:g}")
    try:
        with open(args.offers, encoding="utf-8", newline="") as fh:
            text = fh.read()
        rows = read_offers(text)
    except OSError as exc:
        raise CliError(f"cannot read offers file {args.offers}: {exc.strerror or exc}") from None
    except (OffersError, csv.Error, UnicodeDecodeError) as exc:
        raise CliError(str(exc).splitlines()[0] if str(exc) else "offers CSV: unreadable") from None
    print(json.dumps(plan_json(args.memory_gib, rows, args.max_share), indent=2))
    return 0
