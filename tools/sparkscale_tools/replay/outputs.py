"""The replay's outputs: the JSON scores, the timeline CSV, the plot and the text summary."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkscale_tools.replay.backlog import BacklogScores
from sparkscale_tools.replay.engine import RunRecord
from sparkscale_tools.replay.run import ReplayResult
from sparkscale_tools.replay.scores import episodes

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


def legend_label(name: str, s: dict[str, Any], fall: Shortfall | None = None) -> str:
    """One policy's scores in plain words: what it cost, the demand it left unserved (GiB-hours, and the
    share of the time it was short), how fast it reacted, how many actions. The SPEC percentages (θ, τ) stay
    in the JSON."""
    ratio = s.get("cost_ratio_vs_oracle")
    react = s.get("reaction_s_p50")
    head = f"{name}: ${s['cost_usd']:,.2f}"
    if ratio is not None and name != ORACLE:
        head += f" ({ratio:.2f}× oracle)"
    rest: list[str] = []
    if fall is not None:
        rest.append(
            "never short of memory"
            if fall.unserved_gib_hours <= 0
            else f"{_gib_h(fall.unserved_gib_hours)} unserved, short {_pct(fall.short_time_pct)} of the time"
        )
    if react is not None:
        rest.append(f"reacts in {react:.0f} s (median)")
    rest.append(f"{s['actions']} actions")
    return f"{head}\n{'; '.join(rest)}"


TITLE_WRAP = 110  # the plot's headline under its title, in characters per line

# Two policies whose supply is the same at this share of the steps or more are said to coincide: the legend
# says so, and the later one is drawn with markers over the earlier one's wide pale line.
COINCIDE_SHARE = 0.9


def coinciding(result: ReplayResult) -> dict[str, tuple[str, float]]:
    """policy -> (the earlier policy its supply line lies on, the share of the steps where they are equal),
    for each policy that coincides with an earlier one (COINCIDE_SHARE)."""
    out: dict[str, tuple[str, float]] = {}
    names = list(result.runs)
    for i, name in enumerate(names):
        mine = result.runs[name].supply_gib
        for other in names[:i]:
            theirs = result.runs[other].supply_gib
            if not mine or len(mine) != len(theirs):
                continue
            same = sum(1 for a, b in zip(mine, theirs, strict=True) if abs(a - b) <= 1e-9 * max(1.0, abs(a)))
            if same / len(mine) >= COINCIDE_SHARE:
                out[name] = (other, same / len(mine))
                break
    return out


def _coincide_words(other: str, share: float) -> str:
    where = "at every step" if share >= 1.0 else f"at {_pct(100.0 * share)} of the steps"
    return f"\nsame supply as {other} {where}: drawn with dots on its line"


# --- the plot -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FreshSignals:
    """The demo's pending-memory signals as the policy could read them, for the plot's signal panel.

    Each series is (time s, GiB) with the time at which the value became readable in CloudWatch (the sample's
    timestamp plus its publication delay), held until the next one: `yarn` is the YARN collector's
    YarnPendingMemoryMB, `emr` what EMR's 5-minute metrics said (ContainerPending × container size).
    `forecast`: the policy's forecast of demand, at the time it is for (decision time + lead time when the
    decision says it), from the decisions that carry one; empty when none does."""

    yarn: Sequence[tuple[float, float]]
    emr: Sequence[tuple[float, float]]
    truth_run: str | None = None  # the run whose true pending memory (demand − supply) is shaded
    forecast: Sequence[tuple[float, float]] = ()
    yarn_label: str = "YARN collector (YarnPendingMemoryMB)"
    emr_label: str = "EMR's 5-minute metrics (ContainerPending × container size)"
    forecast_label: str = "policy's forecast of demand at decision + lead time"


# Distinct styles, so that two policies with the same supply both stay visible: the first is drawn wide and
# pale, the next ones narrower and dashed on top of it. The oracle (a reference) is always thin and black.
_STYLES: tuple[tuple[str, Any, float, float], ...] = (
    ("tab:blue", "-", 3.2, 0.45),
    ("tab:orange", "--", 1.5, 1.0),
    ("tab:green", ":", 1.8, 1.0),
    ("tab:purple", "-.", 1.3, 1.0),
    ("tab:brown", (0, (5, 1, 1, 1, 1, 1)), 1.3, 1.0),
    ("tab:pink", (0, (3, 1)), 1.3, 1.0),
    ("tab:olive", "-", 1.0, 1.0),
)
_ORACLE_STYLE: tuple[str, Any, float, float] = ("black", (0, (1, 1.5)), 1.0, 0.9)
# the unserved demand of the k-th policy: shaded in its colour, hatched from the second on, so that two
# policies short at the same time both show
_HATCHES = ("", "////", "\\\\\\\\", "xx", "..", "++", "--")


def policy_styles(names: Sequence[str]) -> dict[str, tuple[str, Any, float, float]]:
    """(colour, line style, line width, alpha) per policy, in the order given."""
    out: dict[str, tuple[str, Any, float, float]] = {}
    k = 0
    for name in names:
        if name == "oracle":
            out[name] = _ORACLE_STYLE
        else:
            out[name] = _STYLES[k % len(_STYLES)]
            k += 1
    return out


def cumulative_cost(run: RunRecord, step_s: float) -> list[float]:
    """$ spent by the end of each step, from the per-step rate (the total is `run.cost_usd`, billed
    exactly)."""
    out: list[float] = []
    acc = 0.0
    for rate in run.cost_usd_per_h:
        acc += rate * step_s / 3600.0
        out.append(acc)
    return out


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, imported on first use (heavy, optional for the rest of the
    replay)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_formats() -> list[str]:
    """The file extensions `write_plot` can save to (matplotlib's Agg canvas: png, pdf, svg, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    return sorted(FigureCanvasAgg.get_supported_filetypes())


def plot_figure(
    result: ReplayResult, *, title: str = "sparkscale replay", signals: FreshSignals | None = None
) -> Any:
    """The figure `write_plot` saves (matplotlib Figure, Agg backend): on one time axis, (1) demand and each
    policy's supply, the stretches where a policy left demand unserved shaded in its colour, scores in the
    legend; (2) with `signals`, the pending memory the policy could read from the YARN collector and from
    EMR's metrics, and its demand forecast when decisions carry one; (3) each policy's cumulative cost; and
    with `signals` and a shortage in their `truth_run`, (4) a zoom on the start of its largest shortage (its
    own time axis), where the delay of each signal shows. Legends sit to the right of the panels, outside
    the data. The caller closes it (pyplot.close)."""
    plt = _pyplot()
    step = result.step_s
    n = len(result.demand)
    span_s = n * step
    unit, div = ("days", 86_400.0) if span_s > 3 * 86_400 else ("hours", 3600.0)
    # step="post" draws a value up to the next x: one more point so the last step shows in full
    x = [k * step / div for k in range(n + 1)]

    styles = policy_styles(list(result.runs))
    window = _zoom_window(signals, result) if signals is not None else None
    strip = max(0.5, 0.18 * len(result.runs))  # the "short of memory" rows, right under the supply
    heights = [3.0, strip, 1.7, 1.1] if signals is not None else [3.0, strip, 1.1]
    if window is not None:
        heights.append(1.5)
    size = 4.2 + 1.6 * (len(heights) - 1 + strip)
    fig = plt.figure(figsize=(15, size), dpi=100, layout="constrained")
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = fig.add_subplot(grid[0])
    shared = [ax] + [fig.add_subplot(grid[i], sharex=ax) for i in range(2, 4 if signals is not None else 3)]
    cost_ax = shared[-1]
    for a in shared[:-1]:
        a.tick_params(labelbottom=False)
    _supply_panel(ax, result, x, styles)
    words = textwrap.wrap(headline(result), width=TITLE_WRAP)
    ax.set_title("\n".join([title, *words]))
    if signals is not None:
        _signal_panel(shared[1], signals, result, div)
        if window is not None:
            shared[1].axvspan(window[0] / div, window[1] / div, color="gold", alpha=0.3, label="zoomed below")
            shared[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)
            zoom = fig.add_subplot(grid[len(heights) - 1])
            _signal_panel(zoom, signals, result, 3600.0, window=window)
            zoom.set_title(
                "zoom on the largest shortage: when each signal showed the pending memory", fontsize=9
            )
    # made last, so that fig.axes keeps the order above: supply, (signals,) cost, (zoom,) short of memory
    _short_panel(fig.add_subplot(grid[1], sharex=ax), result, styles, div)
    _cost_panel(cost_ax, result, x, styles)
    cost_ax.set_xlabel(f"time ({unit})")
    cost_ax.set_xlim(0, x[-1])
    return fig


def _held(values: Sequence[float]) -> list[float]:
    """`values` with the last repeated: step="post" draws each value up to the next x."""
    return [*values, values[-1]] if values else []


Style = tuple[str, Any, float, float]


def _supply_panel(ax: Any, result: ReplayResult, x: Sequence[float], styles: dict[str, Style]) -> None:
    """Demand (grey) and each policy's supply; the demand a policy left unserved shaded in its colour (hatched
    from the second policy on); one legend entry per policy with its line over its shading and its scores in
    plain words; a policy whose line lies on an earlier one's gets dots and says so."""
    from matplotlib.legend_handler import HandlerTuple  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    scores = _clean(result.to_json_dict())["policies"]
    same = coinciding(result)
    demand = _held(result.demand)
    ax.fill_between(x, demand, step="post", color="0.87", linewidth=0, label="demand (GiB)")
    ax.step(x, demand, where="post", color="0.55", linewidth=0.6)
    handles: list[Any] = [ax.get_legend_handles_labels()[0][0]]
    labels = ["demand (GiB)"]
    for k, (name, run) in enumerate(result.runs.items()):
        color, ls, lw, alpha = styles[name]
        hatch = _HATCHES[k % len(_HATCHES)]
        supply = _held(run.supply_gib)
        low = [min(s, d) for s, d in zip(supply, demand, strict=True)]
        shade = None
        twin = name in same and same[name][1] >= 1.0  # its shading would be the other's, exactly
        if not twin and any(lo < d for lo, d in zip(low, demand, strict=True)):
            look: dict[str, Any] = {
                "facecolor": (color, 0.2),
                "edgecolor": (color, 0.7),
                "hatch": hatch,
                "linewidth": 0,
            }
            ax.fill_between(x, low, demand, step="post", **look)
            shade = Patch(**look)
        marks: dict[str, Any] = {}
        if name in same:  # drawn over the line it coincides with: dots keep both visible
            marks = {"marker": "o", "markersize": 3.5, "markevery": max(1, len(x) // 40), "fillstyle": "none"}
        (line,) = ax.step(
            x, supply, where="post", color=color, linestyle=ls, linewidth=lw, alpha=alpha, label=name, **marks
        )
        handles.append(line if shade is None else (shade, line))
        label = legend_label(name, scores[name], shortfall(result.demand, run.supply_gib, result.step_s))
        labels.append(label + (_coincide_words(*same[name]) if name in same else ""))
    handles.append(Patch(facecolor="0.6", alpha=0.35, linewidth=0))
    labels.append("shaded: demand a policy left unserved (its colour; hatched from the second policy on)")
    ax.set_ylabel("usable YARN memory (GiB)")
    ax.grid(alpha=0.3)
    ax.legend(
        handles,
        labels,
        handler_map={tuple: HandlerTuple(ndivide=1)},
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        framealpha=0.9,
    )


def _short_panel(ax: Any, result: ReplayResult, styles: dict[str, Style], div: float) -> None:
    """When each policy was short of memory: a row per policy (the first on top), a bar in its colour over
    every stretch of steps with supply below demand (at least a pixel wide, so a one-step shortage in a
    three-day run still shows); an empty row: never short."""
    names = list(result.runs)
    step = result.step_s
    for row, name in enumerate(names):
        run = result.runs[name]
        short = [s < d for d, s in zip(result.demand, run.supply_gib, strict=True)]
        bars = [(a * step / div, (b - a) * step / div) for a, b in episodes(short)]
        if bars:
            color = styles[name][0]
            y = len(names) - 1 - row
            ax.broken_barh(bars, (y - 0.35, 0.7), facecolors=color, edgecolors=color, linewidth=0.8)
    ax.set_yticks(range(len(names)), labels=list(reversed(names)), fontsize=7)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.tick_params(labelbottom=False)
    ax.set_ylabel("short of\nmemory", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


# A policy that spends more than this many times the next dearest one would flatten every other cost line:
# the cost panel's axis stops above the others, its line leaves through the top and the legend says so.
OFF_SCALE = 3.0


def off_scale(costs: dict[str, float]) -> set[str]:
    """The policies whose cost is left off the cost panel's scale (OFF_SCALE)."""
    ranked = sorted(costs.items(), key=lambda kv: -kv[1])
    out: set[str] = set()
    for (name, cost), (_, nxt) in itertools.pairwise(ranked):
        if nxt <= 0 or cost <= OFF_SCALE * nxt:
            break
        out.add(name)
    return out


def _cost_panel(ax: Any, result: ReplayResult, x: Sequence[float], styles: dict[str, Style]) -> None:
    """Each policy's cumulative cost of task nodes; the axis stops above all but the far dearest ones
    (off_scale)."""
    same = coinciding(result)
    away = off_scale({name: run.cost_usd for name, run in result.runs.items()})
    for name, run in result.runs.items():
        color, ls, lw, alpha = styles[name]
        spent = cumulative_cost(run, result.step_s)
        label = f"{name}: ${run.cost_usd:,.2f}"
        if name in away:
            label += " (off the scale: its line leaves through the top)"
        marks: dict[str, Any] = {}
        if name in same:
            marks = {"marker": "o", "markersize": 3.5, "markevery": max(1, len(x) // 40), "fillstyle": "none"}
            label += f" (same supply as {same[name][0]})"
        ax.step(
            x,
            [0.0, *spent],
            where="post",
            color=color,
            linestyle=ls,
            linewidth=min(lw, 2.4),
            alpha=alpha,
            label=label,
            **marks,
        )
    shown = [run.cost_usd for name, run in result.runs.items() if name not in away]
    if away and shown and max(shown) > 0:
        ax.set_ylim(0, 1.15 * max(shown))
    ax.set_ylabel("task nodes,\ncumulative $")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)


def headline(result: ReplayResult) -> str:
    """The plot's second title line: which policy was cheapest and which left the least demand unserved, in
    the summary's words (empty with fewer than two policies besides the oracle)."""
    falls = {
        name: shortfall(result.demand, run.supply_gib, result.step_s) for name, run in result.runs.items()
    }
    return " ".join(line.strip() for line in _verdicts(result, falls))


# the zoom: from this long before the largest shortage began to this long after it ended, at least
# ZOOM_MIN_S and at most ZOOM_MAX_S long
ZOOM_MARGIN_S = 600.0
ZOOM_MIN_S = 1800.0
ZOOM_MAX_S = 5400.0


def _zoom_window(signals: FreshSignals, result: ReplayResult) -> tuple[float, float] | None:
    """(start s, end s) around the start of the truth run's largest shortage; None without one."""
    run = result.runs.get(signals.truth_run) if signals.truth_run else None
    if run is None:
        return None
    truth = [max(d - s, 0.0) for d, s in zip(result.demand, run.supply_gib, strict=True)]
    peak = max(range(len(truth)), key=truth.__getitem__, default=0)
    if not truth or truth[peak] <= 0:
        return None
    first = last = peak
    while first > 0 and truth[first - 1] > 0:
        first -= 1
    while last + 1 < len(truth) and truth[last + 1] > 0:
        last += 1
    step = result.step_s
    t0 = max(0.0, first * step - ZOOM_MARGIN_S)
    t1 = min(max(t0 + ZOOM_MIN_S, (last + 1) * step + ZOOM_MARGIN_S), t0 + ZOOM_MAX_S)
    return t0, min(float(len(truth) * step), t1)


def _signal_panel(
    ax: Any,
    signals: FreshSignals,
    result: ReplayResult,
    div: float,
    *,
    window: tuple[float, float] | None = None,
) -> None:
    """The pending memory each source showed, held from when it became readable; with `window` (s), that
    stretch only, on an h:mm axis, with the truth run's scale-out requests."""
    end = len(result.demand) * result.step_s

    def series(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
        pts = sorted(points)
        xs = [t / div for t, _ in pts]
        ys = [v for _, v in pts]
        if pts and pts[-1][0] < end:  # held up to the end of the run
            xs.append(end / div)
            ys.append(ys[-1])
        return xs, ys

    run = result.runs.get(signals.truth_run) if signals.truth_run else None
    if run is not None:
        truth = [max(d - s, 0.0) for d, s in zip(result.demand, run.supply_gib, strict=True)]
        xs = [k * result.step_s / div for k in range(len(truth) + 1)]
        ax.fill_between(
            xs,
            [*truth, truth[-1]],
            step="post",
            color="0.8",
            linewidth=0,
            label=f"memory truly pending in {signals.truth_run} (the model)",
        )
    xs, ys = series(signals.yarn)
    if xs:
        ax.step(xs, ys, where="post", color="tab:red", linewidth=1.3, label=signals.yarn_label)
    xs, ys = series(signals.emr)
    if xs:
        ax.step(
            xs, ys, where="post", color="tab:blue", linestyle="--", linewidth=1.3, label=signals.emr_label
        )
    if signals.forecast:
        pts = sorted(signals.forecast)
        ax.plot(
            [t / div for t, _ in pts],
            [v for _, v in pts],
            linestyle="none",
            marker="o",
            markersize=3.5,
            color="tab:green",
            label=signals.forecast_label,
        )
    ax.grid(alpha=0.3)
    if window is None:
        ax.set_ylabel("pending YARN memory (GiB),\nas readable in CloudWatch")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)
        return
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    t0, t1 = window
    ax.set_xlim(t0 / div, t1 / div)
    requests = [t for t in (run.scale_out_times_s if run is not None else []) if t0 <= t <= t1]
    for i, t in enumerate(requests):
        ax.axvline(
            t / div,
            color="tab:purple",
            linestyle=":",
            linewidth=1.2,
            label=f"scale-out requested by {signals.truth_run}" if i == 0 else None,
        )
    inside = [v for pts in (signals.yarn, signals.emr) for t, v in pts if t0 <= t <= t1]
    if run is not None:
        k0, k1 = int(t0 // result.step_s), int(t1 // result.step_s) + 1
        inside += [max(d - s, 0.0) for d, s in zip(result.demand[k0:k1], run.supply_gib[k0:k1], strict=True)]
    ax.set_ylim(0, max([*inside, 1.0]) * 1.1)

    def clock(v: float, _pos: int) -> str:
        minutes = round(v * 60)
        return f"{minutes // 60}:{minutes % 60:02d}"

    ax.xaxis.set_major_formatter(FuncFormatter(clock))
    ax.set_xlabel("time (h:mm)")
    ax.set_ylabel("pending (GiB)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.9)


def write_plot(
    result: ReplayResult,
    path: str | Path,
    *,
    title: str = "sparkscale replay",
    signals: FreshSignals | None = None,
) -> None:
    """`plot_figure` saved as a PNG (hours on the time axis, or days for runs over three days).
    matplotlib is imported there (Agg backend), never at module import."""
    plt = _pyplot()
    fig = plot_figure(result, title=title, signals=signals)
    try:
        fig.savefig(str(path))
    finally:
        plt.close(fig)


# --- the summary --------------------------------------------------------------------------------------------
ORACLE = "oracle"  # policies.ORACLE: a reference, left out of "cheapest" and "least unserved"
# What each policy is, in a few words, after its name in the summary (names not listed get none).
GLOSSES: dict[str, str] = {
    "sparkscale (demo)": "the real handlers in this demo",
    "sparkscale (replay)": "the same policy in the replay's simulation",
    "sparkscale": "this project's policy, simulated",
    "emr-custom-rules": "EMR's default custom automatic-scaling rules",
    "static-peak": "the peak provisioned all the time",
    "reactive-ideal": "exactly what demand needs, requested the moment it changes",
    ORACLE: "knows the demand, no delay: a reference, not a policy",
}
WRAP = 110  # the plain words' line width (the table is about as wide)
TABLE_KEY = (  # the lines above the table
    "key: short % = share of the time with less memory than demand; unserved = demand left without memory;",
    "     surplus = memory beyond demand (the core nodes' included); ×oracle = cost over the oracle's;",
    "     react = from the start of a shortage to its scale-out request (median, longest);",
    "     the SPEC percentages (θ_U, θ_O, τ_U, τ_O) are in the --json scores",
)


@dataclass(frozen=True)
class Shortfall:
    """How much demand one policy left unserved: the share of the time its supply was below demand (τ_U),
    the unserved memory as a share of all the demand (Σ max(d − s, 0) / Σ d) and in GiB-hours."""

    short_time_pct: float
    unserved_pct: float
    unserved_gib_hours: float
    surplus_gib_hours: float = 0.0  # memory beyond demand, Σ max(s − d, 0) × Δt


def shortfall(demand: Sequence[float], supply: Sequence[float], step_s: float) -> Shortfall:
    if len(demand) != len(supply) or not demand:
        raise ValueError(f"demand ({len(demand)}) and supply ({len(supply)}) need the same, non-zero length")
    gaps = [d - s for d, s in zip(demand, supply, strict=True) if s < d]
    total = sum(d for d in demand if d > 0)
    missing = sum(gaps)
    surplus = sum(s - d for d, s in zip(demand, supply, strict=True) if s > d)
    return Shortfall(
        short_time_pct=100.0 * len(gaps) / len(demand),
        unserved_pct=100.0 * missing / total if total > 0 else 0.0,
        unserved_gib_hours=missing * step_s / 3600.0,
        surplus_gib_hours=surplus * step_s / 3600.0,
    )


def _pct(x: float) -> str:
    """A percentage in words' precision: `0 %`, `<0.1 %`, `2.1 %`, `12 %`."""
    if x <= 0:
        return "0 %"
    if x < 0.05:
        return "<0.1 %"
    return f"{x:.0f} %" if x >= 9.95 else f"{x:.1f} %"


def _gib_h(x: float) -> str:
    if x <= 0:
        return "0 GiB-hours"
    if x < 0.05:
        return "<0.1 GiB-hours"
    return f"{x:,.0f} GiB-hours" if x >= 9.95 else f"{x:.1f} GiB-hours"


def _minutes(x: float) -> str:
    return f"{x:,.0f} min"


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def plain_words(result: ReplayResult) -> list[str]:
    """What each policy cost and how much demand it left unserved (with the backlog model: how long work
    waited), in sentences an operator reads without the table; then which policy was cheapest and which left
    the least demand unserved (the oracle, a reference, aside)."""
    falls = {
        name: shortfall(result.demand, run.supply_gib, result.step_s) for name, run in result.runs.items()
    }
    backlog = result.backlog_scores or {}
    lines: list[str] = []
    for name, s in result.scores.items():
        f = falls.get(name)
        gloss = GLOSSES.get(name)
        head = f"{name} ({gloss})" if gloss else name
        ratio = (
            f" ({s.cost_ratio_vs_oracle:.2f} × the oracle)"
            if s.cost_ratio_vs_oracle is not None and name != ORACLE
            else ""
        )
        text = f"{head}: ${s.cost_usd:,.2f} for the task nodes{ratio}"
        if f is not None:
            if f.unserved_gib_hours <= 0:
                text += "; never short of memory"
            else:
                what = "the work did not fit when it arrived" if name in backlog else "the demand unserved"
                text += (
                    f"; short of memory {_pct(f.short_time_pct)} of the time ({_pct(f.unserved_pct)} of "
                    f"{what}, {_gib_h(f.unserved_gib_hours)})"
                )
        b = backlog.get(name)
        if b is not None:
            text += "; " + _waiting(b)
        lines += textwrap.wrap(text + ".", width=WRAP, subsequent_indent="    ", break_on_hyphens=False)
    lines += _verdicts(result, falls)
    return lines


def _waiting(b: BacklogScores) -> str:
    """One policy's waits under the backlog model (a BacklogScores), in words."""
    if b.queued_gib_hours <= 0:
        return "no work waited"
    half = (
        "at least half of it ran at once"
        if b.wait_p50_min <= 0
        else f"half of it waited {_minutes(b.wait_p50_min)} or less"
    )
    p95 = "95 % ran at once" if b.wait_p95_min <= 0 else f"95 % within {_minutes(b.wait_p95_min)}"
    text = (
        f"work waited {_gib_h(b.queued_gib_hours)} in YARN's queue: {half}, {p95}, the longest "
        f"{_minutes(b.wait_max_min)}"
    )
    if b.left_gib > 0.05:
        text += f"; {b.left_gib:,.1f} GiB still waiting at the end"
    return text


def _verdicts(result: ReplayResult, falls: dict[str, Shortfall]) -> list[str]:
    policies = [n for n in result.scores if n != ORACLE and n in falls]
    if len(policies) < 2:
        return []
    aside = " (the oracle aside)" if ORACLE in result.scores else ""
    cost = {n: result.scores[n].cost_usd for n in policies}
    low = min(cost.values())
    cheapest = [n for n in policies if cost[n] - low < 0.005]
    lines = [f"Cheapest{aside}: {_names(cheapest)} (${low:,.2f})."]
    backlog = result.backlog_scores or {}
    unserved = {n: falls[n].unserved_gib_hours for n in policies}
    least = min(unserved.values())
    best = [n for n in policies if unserved[n] - least < 0.05]
    what = "work that did not fit when it arrived" if backlog else "demand unserved"
    if least <= 0:
        lines.append(
            "Every policy served all the demand."
            if len(best) == len(policies)
            else f"Least {what}: {_names(best)} (none)."
        )
    else:
        f = falls[best[0]]
        lines.append(f"Least {what}: {_names(best)} ({_pct(f.unserved_pct)}, {_gib_h(least)}).")
    waited = {n: backlog[n].queued_gib_hours for n in policies if n in backlog}
    if len(waited) >= 2:
        w = min(waited.values())
        shortest = [n for n in waited if waited[n] - w < 0.05]
        amount = "no work waited" if w <= 0 else f"{_gib_h(w)} queued"
        lines.append(f"Least waiting: {_names(shortest)} ({amount}).")
    return [w for line in lines for w in textwrap.wrap(line, width=WRAP, subsequent_indent="    ")]


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


# The tables here are formatted by hand, not by a table library: tools/replay_identity.sh holds this output
# byte-identical across refactors and the README's benchmark table is copied from it, while a library's
# column widths and borders may change from one of its releases to the next.
def summary_text(result: ReplayResult, *, words: bool = True) -> str:
    """What `sparkscale replay` prints: each policy's cost and unserved demand in words (`plain_words`; not
    with `words=False`), the run's setup, then the table with its key, the backlog table and the cost
    bounds."""
    lines = [*plain_words(result), ""] if words else []
    lines += [
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
        f"{'policy':<22}{'cost $':>11}{'×oracle':>9}{'short %':>9}{'unserved GiB-h':>16}"
        f"{'surplus GiB-h':>15}{'actions':>9}{'react p50 s':>12}{'max s':>8}"
    )
    lines += ["", *TABLE_KEY, head, "-" * len(head)]
    for name, s in result.scores.items():
        f = shortfall(result.demand, result.runs[name].supply_gib, result.step_s)
        lines.append(
            f"{name:<22}{s.cost_usd:>11.2f}{_fmt(s.cost_ratio_vs_oracle, '>9.3f'):>9}{s.tau_u_pct:>9.1f}"
            f"{f.unserved_gib_hours:>16,.1f}{f.surplus_gib_hours:>15,.0f}{s.actions:>9d}"
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
