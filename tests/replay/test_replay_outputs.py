"""The replay's outputs an operator reads: the summary's plain words (on a hand-made result whose numbers are
worked out below) and the plot's panels, checked through matplotlib's objects, not pixels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sparkscale_tools.replay import outputs
from sparkscale_tools.replay.backlog import BacklogScores
from sparkscale_tools.replay.engine import RunRecord
from sparkscale_tools.replay.run import ReplayResult
from sparkscale_tools.replay.scores import score

STEP_S = 1800  # half-hour steps: GiB-hours are half the GiB-steps
DEMAND = [100.0, 200.0, 200.0, 100.0]  # Σ = 600 GiB-steps
# policy              supply                  short at         unserved GiB-steps   cost
# sparkscale (demo)   100 150 200 100         step 1 (50)      50                   $4.27
# emr-custom-rules    100 100 100 100         steps 1, 2       100 + 100 = 200      $1.86
# oracle              = demand                never            0                    $3.00
#   sparkscale (demo): τ_U 1/4 = 25 %; 50/600 = 8.3 % of the demand; 50 × 0.5 h = 25 GiB-hours;
#                      4.27/3 = 1.42 × the oracle
#   emr-custom-rules:  τ_U 2/4 = 50 %; 200/600 = 33 % of the demand; 200 × 0.5 h = 100 GiB-hours;
#                      1.86/3 = 0.62 × the oracle
SUPPLY = {
    "sparkscale (demo)": [100.0, 150.0, 200.0, 100.0],
    "emr-custom-rules": [100.0, 100.0, 100.0, 100.0],
    "oracle": list(DEMAND),
}
COST = {"sparkscale (demo)": 4.27, "emr-custom-rules": 1.86, "oracle": 3.00}
RATE = {  # $/h per step: the cumulative cost panel adds rate × 0.5 h
    "sparkscale (demo)": [2.0, 3.0, 2.0, 1.54],
    "emr-custom-rules": [0.93, 0.93, 0.93, 0.93],
    "oracle": [1.0, 2.0, 2.0, 1.0],
}


def _result(*, backlog: dict[str, BacklogScores] | None = None) -> ReplayResult:
    runs = {
        name: RunRecord(name, supply_gib=SUPPLY[name], cost_usd_per_h=RATE[name], cost_usd=COST[name])
        for name in SUPPLY
    }
    scores = {
        name: score(
            demand=DEMAND,
            supply=SUPPLY[name],
            step_s=STEP_S,
            cost_usd=COST[name],
            oracle_cost_usd=COST["oracle"],
            actions=2,
            scale_out_times_s=[],
        )
        for name in SUPPLY
    }
    return ReplayResult(
        step_s=STEP_S,
        core_gib=96.0,
        offers=[],
        demand=list(DEMAND),
        runs=runs,
        scores=scores,
        oracle_cost_usd=COST["oracle"],
        backlog_scores=backlog,
    )


def _sentences(lines: list[str]) -> list[str]:
    """The wrapped lines joined back into one line per sentence block (continuations are indented)."""
    out: list[str] = []
    for line in lines:
        if line.startswith("    ") and out:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out


# --- the words ----------------------------------------------------------------------------------------------
def test_shortfall_by_hand() -> None:
    f = outputs.shortfall(DEMAND, SUPPLY["emr-custom-rules"], STEP_S)
    assert f.short_time_pct == pytest.approx(50.0)
    assert f.unserved_pct == pytest.approx(100.0 * 200 / 600)
    assert f.unserved_gib_hours == pytest.approx(100.0)
    never = outputs.shortfall(DEMAND, SUPPLY["oracle"], STEP_S)
    assert (never.short_time_pct, never.unserved_pct, never.unserved_gib_hours) == (0.0, 0.0, 0.0)


def test_the_plain_words_say_what_each_policy_cost_and_left_unserved() -> None:
    lines = outputs.plain_words(_result())
    assert all(len(line) <= outputs.WRAP for line in lines)
    assert _sentences(lines) == [
        "sparkscale (demo) (the real handlers in this demo): $4.27 for the task nodes (1.42 × the oracle); "
        "short of memory 25 % of the time (8.3 % of the demand unserved, 25 GiB-hours).",
        "emr-custom-rules (EMR's default custom automatic-scaling rules): $1.86 for the task nodes "
        "(0.62 × the oracle); short of memory 50 % of the time (33 % of the demand unserved, 100 GiB-hours).",
        "oracle (knows the demand, no delay: a reference, not a policy): $3.00 for the task nodes; "
        "never short of memory.",
        "Cheapest (the oracle aside): emr-custom-rules ($1.86).",
        "Least demand unserved: sparkscale (demo) (8.3 %, 25 GiB-hours).",
    ]


def test_with_the_backlog_model_the_words_say_how_long_work_waited() -> None:
    backlog = {
        "sparkscale (demo)": BacklogScores(12.0, 0.0, 14.0, 40.0, 3.0),
        "emr-custom-rules": BacklogScores(30.4, 5.0, 20.0, 25.0, 0.0),
        "oracle": BacklogScores(0.0, 0.0, 0.0, 0.0, 0.0),
    }
    got = _sentences(outputs.plain_words(_result(backlog=backlog)))
    assert got == [
        "sparkscale (demo) (the real handlers in this demo): $4.27 for the task nodes (1.42 × the oracle); "
        "short of memory 25 % of the time (8.3 % of the work did not fit when it arrived, 25 GiB-hours); "
        "work waited 12 GiB-hours in YARN's queue: at least half of it ran at once, 95 % within 14 min, the "
        "longest 40 min; 3.0 GiB still waiting at the end.",
        "emr-custom-rules (EMR's default custom automatic-scaling rules): $1.86 for the task nodes "
        "(0.62 × the oracle); short of memory 50 % of the time (33 % of the work did not fit when it "
        "arrived, 100 GiB-hours); work waited 30 GiB-hours in YARN's queue: half of it waited 5 min or less, "
        "95 % within 20 min, the longest 25 min.",
        "oracle (knows the demand, no delay: a reference, not a policy): $3.00 for the task nodes; "
        "never short of memory; no work waited.",
        "Cheapest (the oracle aside): emr-custom-rules ($1.86).",
        "Least work that did not fit when it arrived: sparkscale (demo) (8.3 %, 25 GiB-hours).",
        "Least waiting: sparkscale (demo) (12 GiB-hours queued).",
    ]


def test_ties_are_named_together_and_a_run_alone_gets_no_verdict() -> None:
    r = _result()
    r.runs["static-peak"] = RunRecord("static-peak", supply_gib=[200.0] * 4, cost_usd_per_h=[0.93] * 4)
    r.scores["static-peak"] = r.scores["emr-custom-rules"]  # the same $1.86
    r.runs["sparkscale"] = RunRecord("sparkscale", supply_gib=list(DEMAND), cost_usd_per_h=[1.0] * 4)
    r.scores["sparkscale"] = r.scores["sparkscale (demo)"]
    verdicts = outputs.plain_words(r)[-2:]
    assert verdicts == [
        "Cheapest (the oracle aside): emr-custom-rules and static-peak ($1.86).",
        "Least demand unserved: static-peak and sparkscale (none).",
    ]
    alone = _result()
    for name in ("emr-custom-rules", "oracle"):
        del alone.runs[name], alone.scores[name]
    assert not any(line.startswith(("Cheapest", "Least")) for line in outputs.plain_words(alone))


def test_the_replay_summary_puts_the_words_above_the_keyed_table() -> None:
    text = outputs.summary_text(_result())
    lines = text.splitlines()
    assert lines[0].startswith("sparkscale (demo) (the real handlers in this demo): $4.27 for the task nodes")
    key = lines.index(outputs.TABLE_KEY[0])
    assert lines[key].startswith("key: short % = share of the time with less memory than demand")
    head = key + len(outputs.TABLE_KEY)
    assert lines[head].split() == [
        "policy",
        "cost",
        "$",
        "×oracle",
        "short",
        "%",
        "unserved",
        "GiB-h",
        "surplus",
        "GiB-h",
        "actions",
        "react",
        "p50",
        "s",
        "max",
        "s",
    ]
    # the table in plain units: sparkscale (demo) short 1 step of 4, 50 GiB × 0.5 h unserved, and beyond
    # demand 0 + 0 + 0 + 0 = 0 GiB-h; emr-custom-rules 200 × 0.5 = 100 GiB-h unserved
    row = lines[head + 2].split()
    assert row[:3] == ["sparkscale", "(demo)", "4.27"]
    assert row[4:7] == ["25.0", "25.0", "0"]
    assert lines[head + 3].split()[1:5] == ["1.86", "0.620", "50.0", "100.0"]
    assert max(i for i, line in enumerate(lines) if line.startswith(("Cheapest", "Least"))) < key
    assert not any(greek in text for greek in ("θ_U %", "τ_U %", "θ_O %"))  # the SPEC %s: in the JSON only
    bare = outputs.summary_text(_result(), words=False)
    assert "for the task nodes" not in bare
    assert outputs.TABLE_KEY[0] in bare


# --- the plot -----------------------------------------------------------------------------------------------
@pytest.fixture
def figures() -> Iterator[list[Any]]:
    """Figures made by a test, closed after it."""
    made: list[Any] = []
    yield made
    import matplotlib.pyplot as plt

    for fig in made:
        plt.close(fig)


def _signals(*, forecast: bool) -> outputs.FreshSignals:
    return outputs.FreshSignals(
        yarn=[(70.0 + 60 * k, 50.0 if 1800 <= 70 + 60 * k < 3600 else 0.0) for k in range(100)],
        emr=[(120.0 + 300 * k, 50.0 if 1800 <= 120 + 300 * k < 3600 else 0.0) for k in range(24)],
        truth_run="sparkscale (demo)",
        forecast=[(2160.0, 210.0), (5760.0, 100.0)] if forecast else (),
    )


def _labels(ax: Any) -> list[str]:
    """The entries of the panel's legend."""
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_replay_plot_has_supply_and_cost_panels_on_one_time_axis(figures: list[Any]) -> None:
    fig = outputs.plot_figure(_result(), title="t")
    figures.append(fig)
    supply_ax, cost_ax, short_ax = fig.axes
    assert supply_ax.get_ylabel() == "usable YARN memory (GiB)"
    assert cost_ax.get_ylabel().startswith("task nodes")
    assert cost_ax.get_xlabel() == "time (hours)"
    assert supply_ax.get_shared_x_axes().joined(supply_ax, cost_ax)
    labels = _labels(supply_ax)
    for name in SUPPLY:
        assert sum(label.startswith(f"{name}: $") for label in labels) == 1
    assert any(label.startswith("shaded: demand a policy left unserved") for label in labels)
    # the scores in plain words: $, unserved GiB-hours, the share of the time short; no SPEC percentages
    demo = next(label for label in labels if label.startswith("sparkscale (demo)"))
    assert (
        demo
        == "sparkscale (demo): $4.27 (1.42× oracle)\n25 GiB-hours unserved, short 25 % of the time; 2 actions"
    )
    assert "never short of memory" in next(label for label in labels if label.startswith("oracle"))
    assert not any(greek in label for label in labels for greek in ("θ", "τ"))
    title, *headline = supply_ax.get_title().splitlines()  # the verdicts under the title, wrapped
    assert title == "t"
    assert " ".join(headline) == (
        "Cheapest (the oracle aside): emr-custom-rules ($1.86). Least demand unserved: sparkscale (demo) "
        "(8.3 %, 25 GiB-hours)."
    )
    # every policy's line has its own colour and style: one cannot hide another with the same supply
    lines = [ln for ln in supply_ax.get_lines() if not str(ln.get_label()).startswith("_")]
    assert len({(ln.get_color(), str(ln.get_linestyle())) for ln in lines}) == len(SUPPLY)
    # the unserved stretches: one shaded area per policy that left demand unserved (and the demand's own)
    assert len(supply_ax.collections) == 1 + 2
    # the cumulative cost ends at rate × 0.5 h summed: sparkscale (demo) (2 + 3 + 2 + 1.54) / 2 = 4.27
    ends = {str(ln.get_label()).split(":")[0]: ln.get_ydata()[-1] for ln in cost_ax.get_lines()}
    assert ends["sparkscale (demo)"] == pytest.approx(4.27)
    assert ends["emr-custom-rules"] == pytest.approx(1.86)
    assert cost_ax.get_ylim()[1] > 4.27  # no policy off the scale here
    # the legends sit to the right of the data
    fig.canvas.draw()
    for ax in (supply_ax, cost_ax):
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    # right under the supply: when each policy was short, a row each (the first on top), bars per stretch
    assert short_ax.get_shared_x_axes().joined(supply_ax, short_ax)
    assert supply_ax.get_position().y0 > short_ax.get_position().y0 > cost_ax.get_position().y0
    assert [t.get_text() for t in short_ax.get_yticklabels()] == [
        "oracle",
        "emr-custom-rules",
        "sparkscale (demo)",
    ]
    bars = {round(c.get_paths()[0].vertices[:, 1].mean()): c for c in short_ax.collections}
    assert sorted(bars) == [1, 2]  # emr-custom-rules (row 1) and sparkscale (demo) (row 2); the oracle: none
    # sparkscale (demo) short at step 1 only: 0.5 h to 1 h; emr-custom-rules at steps 1 and 2: 0.5 h to 1.5 h
    assert bars[2].get_paths()[0].get_extents().x0 == pytest.approx(0.5)
    assert bars[2].get_paths()[0].get_extents().x1 == pytest.approx(1.0)
    assert bars[1].get_paths()[0].get_extents().x1 == pytest.approx(1.5)


def test_the_demo_plot_adds_the_fresh_signal_panel_and_its_forecast(figures: list[Any]) -> None:
    fig = outputs.plot_figure(_result(), signals=_signals(forecast=True))
    figures.append(fig)
    assert len(fig.axes) == 5
    supply_ax, signal_ax, cost_ax, zoom_ax, _short_ax = fig.axes
    assert signal_ax.get_ylabel().startswith("pending YARN memory (GiB)")
    assert signal_ax.get_shared_x_axes().joined(supply_ax, signal_ax)
    assert signal_ax.get_shared_x_axes().joined(supply_ax, cost_ax)
    assert not zoom_ax.get_shared_x_axes().joined(supply_ax, zoom_ax)
    labels = _labels(signal_ax)
    assert labels == [
        "memory truly pending in sparkscale (demo) (the model)",
        "YARN collector (YarnPendingMemoryMB)",
        "EMR's 5-minute metrics (ContainerPending × container size)",
        "policy's forecast of demand at decision + lead time",
        "zoomed below",
    ]
    # the zoom: from 10 min before the shortage of step 1 (0:30 to 1:00) to 10 min after, on an h:mm axis
    assert zoom_ax.get_xlim() == pytest.approx((20 / 60, 70 / 60))
    assert zoom_ax.get_xlabel() == "time (h:mm)"
    assert zoom_ax.xaxis.get_major_formatter()(0.5, 0) == "0:30"
    forecast = next(ln for ln in signal_ax.get_lines() if ln.get_label() == labels[3])
    assert list(forecast.get_xdata()) == pytest.approx([0.6, 1.6])  # hours
    assert list(forecast.get_ydata()) == [210.0, 100.0]
    yarn = next(ln for ln in signal_ax.get_lines() if ln.get_label() == labels[1])
    assert yarn.get_xdata()[-1] == pytest.approx(2.0)  # held to the end of the run


def test_without_a_forecast_the_signal_panel_has_no_forecast_line(figures: list[Any], tmp_path: Path) -> None:
    fig = outputs.plot_figure(_result(), signals=_signals(forecast=False))
    figures.append(fig)
    assert not any("forecast" in label for label in _labels(fig.axes[1]))
    assert not any("forecast" in label for label in _labels(fig.axes[3]))
    out = tmp_path / "plot.png"
    outputs.write_plot(_result(), out, signals=_signals(forecast=False))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_policy_on_another_ones_line_gets_dots_and_says_so(figures: list[Any]) -> None:
    result = _result()
    twin = "sparkscale (replay)"
    result.runs[twin] = RunRecord(
        twin, supply_gib=SUPPLY["sparkscale (demo)"], cost_usd_per_h=RATE["sparkscale (demo)"], cost_usd=4.27
    )
    result.scores[twin] = result.scores["sparkscale (demo)"]
    assert outputs.coinciding(result) == {twin: ("sparkscale (demo)", 1.0)}
    fig = outputs.plot_figure(result, title="t")
    figures.append(fig)
    supply_ax, cost_ax, _ = fig.axes
    [label] = [label for label in _labels(supply_ax) if label.startswith(twin)]
    assert label.endswith("\nsame supply as sparkscale (demo) at every step: drawn with dots on its line")
    lines = {str(ln.get_label()): ln for ln in supply_ax.get_lines()}
    assert lines[twin].get_marker() == "o"
    assert lines["sparkscale (demo)"].get_marker() in ("None", None, "")
    assert len(supply_ax.collections) == 1 + 2  # the twin's shortage is the other's: not shaded twice
    assert any(t.endswith("(same supply as sparkscale (demo))") for t in _labels(cost_ax))


def test_a_far_dearer_policy_leaves_the_cost_panel_through_the_top(figures: list[Any]) -> None:
    result = _result()
    peak = "static-peak"
    result.runs[peak] = RunRecord(peak, supply_gib=[300.0] * 4, cost_usd_per_h=[60.0] * 4, cost_usd=120.0)
    result.scores[peak] = result.scores["oracle"]
    assert outputs.off_scale({n: r.cost_usd for n, r in result.runs.items()}) == {peak}
    assert outputs.off_scale({"a": 3.0, "b": 2.0, "c": 0.0}) == set()
    fig = outputs.plot_figure(result, title="t")
    figures.append(fig)
    cost_ax = fig.axes[1]
    assert cost_ax.get_ylim() == pytest.approx((0.0, 1.15 * 4.27))
    assert f"{peak}: $120.00 (off the scale: its line leaves through the top)" in _labels(cost_ax)
