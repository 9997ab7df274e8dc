"""The replay's outputs: the JSON scores, the timeline CSV, the plot and the text summary."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from sparkscale_tools.replay.run import ReplayResult

SCORE_KEYS = (
    "cost_usd",
    "cost_ratio_vs_oracle",
    "theta_u_pct",
    "theta_o_pct",
    "tau_u_pct",
    "tau_o_pct",
    "actions",
    "reaction_s_p50",
    "reaction_s_max",
)
BACKLOG_KEYS = ("queued_gib_hours", "wait_p50_min", "wait_p95_min", "wait_max_min", "left_gib")


def json_text(result: ReplayResult) -> str:
    """`{"step_s", "core_gib", "offers": [...], "policies": {NAME: {scores}}}`; no NaN (null instead)."""
    return json.dumps(_clean(result.to_json_dict()), indent=2, allow_nan=False) + "\n"


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def timeline_columns(result: ReplayResult) -> list[str]:
    cols = ["time_s", "demand_gib"]
    for name, run in result.runs.items():
        cols += [f"supply_gib_{name}", f"cost_usd_per_h_{name}"]
        if run.backlog is not None:
            cols.append(f"queued_gib_{name}")
    return cols


def timeline_text(result: ReplayResult) -> str:
    """`time_s,demand_gib`, then `supply_gib_<policy>,cost_usd_per_h_<policy>` per policy (and with the
    backlog model `queued_gib_<policy>`, the work left waiting after the step); a row per step."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(timeline_columns(result))
    runs = list(result.runs.values())
    for k, d in enumerate(result.demand):
        row: list[str] = [f"{k * result.step_s:g}", f"{d:.6g}"]
        for r in runs:
            row += [f"{r.supply_gib[k]:.6g}", f"{r.cost_usd_per_h[k]:.6g}"]
            if r.backlog is not None:
                row.append(f"{r.backlog.queue_after[k]:.6g}")
        w.writerow(row)
    return buf.getvalue()


def legend_label(name: str, s: dict[str, Any]) -> str:
    ratio = s.get("cost_ratio_vs_oracle")
    react = s.get("reaction_s_p50")
    return (
        f"{name}: ${s['cost_usd']:.0f}"
        + (f" ({ratio:.2f}× oracle)" if ratio is not None else "")
        + f", τ_U {s['tau_u_pct']:.1f} %, θ_U {s['theta_u_pct']:.1f} %, {s['actions']} actions"
        + (f", reaction p50 {react:.0f} s" if react is not None else "")
    )


def write_plot(result: ReplayResult, path: str | Path, *, title: str = "sparkscale replay") -> None:
    """Demand and each policy's supply over time (hours, or days for runs over three days), scores in the
    legend. matplotlib is imported here (Agg backend), never at module import."""
    import matplotlib  # noqa: PLC0415 - heavy, optional for the rest of the replay

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    span_s = len(result.demand) * result.step_s
    unit, div = ("days", 86_400.0) if span_s > 3 * 86_400 else ("hours", 3600.0)
    x = [k * result.step_s / div for k in range(len(result.demand))]
    scores = _clean(result.to_json_dict())["policies"]
    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=100)
    ax.fill_between(x, result.demand, step="post", color="0.85", label="demand (GiB)")
    for name, run in result.runs.items():
        ax.step(x, run.supply_gib, where="post", linewidth=1.0, label=legend_label(name, scores[name]))
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("usable YARN memory (GiB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.85)
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summary_text(result: ReplayResult) -> str:
    """The human-readable table printed on stdout."""
    lines = [
        f"step {result.step_s} s, {len(result.demand)} steps "
        f"({len(result.demand) * result.step_s / 3600:.1f} h); core {result.core_gib:.0f} GiB usable "
        "(same for every policy, not in cost_usd)",
        "offers: "
        + "; ".join(
            f"{o['group']} {o['instance_type']} {o['market']} {o['usable_gib_per_node']:g} GiB "
            f"${o['usd_per_hour']:.4f}/h"
            for o in result.offers
        ),
    ]
    if result.emr_rules:
        lines.append(result.emr_rules)
    lines += [f"note: {n}" for n in result.notes]
    head = (
        f"{'policy':<22}{'cost $':>11}{'×oracle':>9}{'θ_U %':>8}{'θ_O %':>8}{'τ_U %':>8}{'τ_O %':>8}"
        f"{'actions':>9}{'react p50 s':>12}{'max s':>8}"
    )
    lines += ["", head, "-" * len(head)]
    for name, s in result.scores.items():
        lines.append(
            f"{name:<22}{s.cost_usd:>11.2f}{_fmt(s.cost_ratio_vs_oracle, '>9.3f'):>9}{s.theta_u_pct:>8.2f}"
            f"{s.theta_o_pct:>8.1f}{s.tau_u_pct:>8.2f}{s.tau_o_pct:>8.1f}{s.actions:>9d}"
            f"{_fmt(s.reaction_s_p50, '>12.0f'):>12}{_fmt(s.reaction_s_max, '>8.0f'):>8}"
        )
    if result.backlog_scores is not None:
        head = (
            f"{'backlog':<22}{'queued GiB-h':>13}{'wait p50 min':>13}{'p95 min':>9}{'max min':>9}"
            f"{'left GiB':>10}"
        )
        lines += [
            "",
            "backlog model: demand is work arriving; what does not fit waits (FIFO) and runs later. θ/τ "
            "above compare supply with the arrivals; waits are per GiB of work, over all of it.",
            head,
            "-" * len(head),
        ]
        for name, b in result.backlog_scores.items():
            lines.append(
                f"{name:<22}{b.queued_gib_hours:>13.1f}{b.wait_p50_min:>13.0f}{b.wait_p95_min:>9.0f}"
                f"{b.wait_max_min:>9.0f}{b.left_gib:>10.1f}"
            )
    oracle = result.oracle_cost_usd
    if result.whole_node_floor_usd is not None:
        ratio = f" = {result.whole_node_floor_usd / oracle:.3f} × oracle" if oracle else ""
        lines += [
            "",
            f"whole-node floor ${result.whole_node_floor_usd:.2f}{ratio}: the cheapest mix of whole nodes of "
            "every offering covering each step with zero delay; no policy serving all the demand pays less",
        ]
    if result.foresight_cost_usd is not None and result.params is not None:
        ratio = f" = {result.foresight_cost_usd / oracle:.3f} × oracle" if oracle else ""
        lines += [
            f"foresight bound ${result.foresight_cost_usd:.2f}{ratio}: those nodes billed from their "
            f"request, {result.params.provisioning_s:g} s before use, to their termination, "
            f"{result.params.decommission_s:g} s after release; no policy serving all the demand pays less, "
            "even knowing every job in advance",
        ]
    return "\n".join(lines) + "\n"
