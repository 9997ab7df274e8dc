"""The trade-off sparkscale's settings span against issue 14's cost targets: does any setting meet them?

    python benchmarks/bench_frontier.py                # print the tables
    python benchmarks/bench_frontier.py --write-docs   # also rewrite the frontier block of docs/benchmarks.md
    SPARKSCALE_BENCH_WRITE_DOCS=1 make bench           # the same, with every other benchmark

Issue 14's targets compare one policy run with a reference: on the spiky traces τ_U (the share of the time
short of memory) no higher than emr-custom-rules' at no more than its cost; on the smooth ones τ_U ≤ 1 % at no
more than 1.15 × the foresight bound. The default settings miss them (docs/benchmarks.md, the replay block).
This script replays a grid of the settings that move cost against shortage (how fast it buys, how long it
keeps, how full it runs, whether it sizes for the forecast) and reports, per trace, every point and whether
any meets the target: a measurement of the frontier the policy's settings reach, not a proof for every policy.

Every trace is replayed with the same default cluster and model as the replay block (`max_task_nodes` and
`group_max_nodes` 60). Synthetic shapes with seeds other than 1 (marked *) were not tuned on: the grid and the
defaults before were chosen on seed 1; the 93 % / 3.5 % defaults were checked on diurnal seeds 7 and 23 before
they were chosen, and diurnal seed 41 was looked at only after.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lambdas"))
sys.path.insert(0, str(REPO / "tools"))

from sparkscale.config import Config  # noqa: E402
from sparkscale_tools.replay import synthetic  # noqa: E402
from sparkscale_tools.replay.bounds import delayed_information_bound_usd  # noqa: E402
from sparkscale_tools.replay.cluster import ClusterSpec, default_cluster  # noqa: E402
from sparkscale_tools.replay.engine import RunRecord, World  # noqa: E402
from sparkscale_tools.replay.model import SimParams  # noqa: E402
from sparkscale_tools.replay.policies import nodes_for  # noqa: E402
from sparkscale_tools.replay.run import PolicySpec, ReplayResult, run_replay  # noqa: E402
from sparkscale_tools.replay.scores import Scores, score  # noqa: E402
from sparkscale_tools.replay.trace import Trace, load_csv  # noqa: E402

BENCH_PAGE = REPO / "docs" / "benchmarks.md"
WRITE_DOCS_ENV = "SPARKSCALE_BENCH_WRITE_DOCS"
BEGIN, END = "<!-- bench:frontier -->", "<!-- /bench:frontier -->"
SECTION_END = "<!-- /section:bench -->"
TRACES = REPO / "data" / "traces"
# The burst rule off in the grid: its rows are the whole-shortfall-at-once policy the grid was built for; the
# burst rows (SPIKY_BURSTS, the first is the defaults) turn it on
BASE: dict[str, Any] = {"max_task_nodes": 60, "group_max_nodes": 60, "burst_first_step_nodes": 0}
PEAK_GIB = 1024.0
DAYS = 7

# Spiky: how many nodes one decision may add, how long a recommendation is kept before scaling in, how full
# YARN may run. Smooth: how full YARN may run, and whether it sizes for the forecast at now + lead time.
SPIKY_GRID = {
    "max_scale_out_step_nodes": (10, 2, 1),
    "scale_in_stabilization_s": (600, 300, 180),
    "yarn_memory_used_target_pct": (85.0, 95.0),
}
# How often it may add: cooldown_after_scale_out_s holds every action for that long after a scale-out. With
# one node per decision this is EMR's own cadence (one node, then wait): the rows that show the SWIM target
# reachable and what the same cadence does to bursty-batch.
SPIKY_CADENCE: tuple[dict[str, Any], ...] = (
    {
        "max_scale_out_step_nodes": 1,
        "cooldown_after_scale_out_s": 300,
        "scale_in_stabilization_s": 600,
        "yarn_memory_used_target_pct": 95.0,
    },
    {
        "max_scale_out_step_nodes": 1,
        "cooldown_after_scale_out_s": 600,
        "scale_in_stabilization_s": 600,
        "yarn_memory_used_target_pct": 85.0,
    },
    {
        "max_scale_out_step_nodes": 2,
        "cooldown_after_scale_out_s": 420,
        "scale_in_stabilization_s": 300,
        "yarn_memory_used_target_pct": 85.0,
    },
)
# Bursts (policy/burst.py): a small first step, the whole shortfall only once the burst has lasted
# burst_confirm_s and the cluster's earlier bursts that lasted as long went on for at least the lead time +
# burst_useful_s more. Tuned on SWIM and bursty-batch s1 only; the 93 % / 3.5 % row: the likely next defaults.
# BURSTS is the defaults' burst rule.
BURSTS = {"burst_first_step_nodes": 1, "burst_confirm_s": 120, "burst_useful_s": 720}
SPIKY_BURSTS: tuple[dict[str, Any], ...] = (
    BURSTS,
    {**BURSTS, "burst_useful_s": 900},
    {**BURSTS, "burst_confirm_s": 240},
    {**BURSTS, "yarn_memory_used_target_pct": 93.0, "deadband_pct": 3.5},
    # a held burst whose need grows waits for memory to run out again (the burst rule before burst_regrowth)
    {**BURSTS, "burst_regrowth": False},
)
# Queues (policy/pending_share.py): a confirmed burst buys only a share of the memory waiting beyond what
# the cluster had when it began (pending_share_pct), after buying whole a wait no deeper than
# pending_whole_multiple times that. Tried for the --backlog target on SWIM and bursty-batch s1, s7, s43;
# the other seeds and 101, 211, 307 only checked. Off in the defaults (100 %).
PENDING_SHARES: tuple[dict[str, Any], ...] = (
    {**BURSTS, "pending_share_pct": 4.0},
    {**BURSTS, "pending_share_pct": 6.0},
    {**BURSTS, "pending_share_pct": 6.0, "scale_in_stabilization_s": 300},
    {**BURSTS, "pending_share_pct": 3.0, "pending_whole_multiple": 2.0},
    {**BURSTS, "pending_share_pct": 3.0, "pending_whole_multiple": 4.0},
)
SMOOTH_GRID = {"yarn_memory_used_target_pct": (85.0, 90.0, 93.0), "forecast_mode": ("off", "act")}
# A target above 100 / (1 + deadband) puts the scale-out edge at or above 100 % of the capacity counted
# (93 % with an 8 % deadband: 100.4 %): it then scales out only once demand is unserved. The rows below show
# the planner's part: `node_premium_weight` 1 is the planner before it weighed lasting premiums (it bought
# 48 GiB r5.2xlarge nodes, 21 % more per GiB-hour than r6g.4xlarge, for small increments: a quarter of the
# old defaults' cost on diurnal); leaving out the r5.2xlarge group is what the weight replaces.
NO_SMALL_NODES = {"ig-TASKR52X": {"max_nodes": 0}}
OLD_PLANNER = {"node_premium_weight": 1.0}
SMOOTH_MORE: tuple[dict[str, Any], ...] = (
    {"yarn_memory_used_target_pct": 85.0, "deadband_pct": 8.0, **OLD_PLANNER},  # the defaults before
    {"yarn_memory_used_target_pct": 93.0, "deadband_pct": 3.5, **OLD_PLANNER},
    {"yarn_memory_used_target_pct": 93.0, "deadband_pct": 3.5, "group_bounds": NO_SMALL_NODES, **OLD_PLANNER},
    {"yarn_memory_used_target_pct": 91.0},
    {"yarn_memory_used_target_pct": 92.0},
    # the forecast acted on with the seasonal shift (forecast_seasonal): the demand now plus yesterday's
    # change over the lead time, scaled to today's level, instead of the larger of the trend and yesterday's
    # peak
    {"forecast_mode": "act", "forecast_seasonal": "shift"},
    {"forecast_mode": "act", "forecast_seasonal": "shift", "yarn_memory_used_target_pct": 95.0},
)
SHORT = {
    "max_scale_out_step_nodes": "step",
    "scale_in_stabilization_s": "stab",
    "yarn_memory_used_target_pct": "target",
    "forecast_mode": "forecast",
    "forecast_seasonal": "seasonal",
    "cooldown_after_scale_out_s": "cooldown",
    "deadband_pct": "band",
    "node_premium_weight": "premium ×",
    "burst_first_step_nodes": "burst: first",
    "burst_confirm_s": "confirm",
    "burst_useful_s": "useful",
    "pending_share_pct": "share %",
    "pending_whole_multiple": "whole ×",
    "burst_regrowth": "regrowth",
}
OFF = "burst rule off (the defaults before it)"
# The smooth traces' causal sizing rule (lagged_headroom): the demand this long ago, plus a constant headroom
LAG_S = 120.0
MAX_HEADROOM_PCT = 30


@dataclass(frozen=True)
class Case:
    name: str
    trace: Trace


def spiky_cases() -> list[Case]:
    out = [Case("swim-fb2009", load_csv(TRACES / "swim_fb2009_hadoop.csv"))]
    for seed in (1, 7, 13, 29, 43, 61, 97):
        mark = "" if seed == 1 else "*"
        out.append(
            Case(
                f"bursty-batch s{seed}{mark}", synthetic.bursty_batch(days=DAYS, peak_gib=PEAK_GIB, seed=seed)
            )
        )
    return out


def smooth_cases() -> list[Case]:
    out = [
        Case("google2019", load_csv(TRACES / "google2019_assigned_mem.csv")),
        Case("azure2019", load_csv(TRACES / "azure2019_assigned_mem.csv")),
    ]
    for seed in (1, 7, 23, 41):
        mark = "" if seed == 1 else "*"
        out.append(Case(f"diurnal s{seed}{mark}", synthetic.diurnal(days=DAYS, peak_gib=PEAK_GIB, seed=seed)))
    return out


def grid(axes: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(axes[k] for k in keys))]


def label(settings: dict[str, Any]) -> str:
    parts = []
    for k, v in settings.items():
        if k == "group_bounds":
            parts.append("no r5.2xlarge")
        else:
            parts.append(f"{SHORT[k]} {v:g}" if isinstance(v, float) else f"{SHORT[k]} {v}")
    return " ".join(parts)


def replay(trace: Trace, name: str, config: Config, *, backlog: bool = False) -> ReplayResult:
    params = SimParams(backlog=backlog)
    return run_replay(
        trace.resample(params.step_s),
        policies=[PolicySpec(name, name, config)],
        config=config,
        cluster=default_cluster(),
        params=params,
    )


def spiky_table() -> list[str]:
    lines = [
        "Spiky traces: target τ_U ≤ emr-custom-rules' at a cost ≤ emr-custom-rules'. Each setting's τ_U, "
        "its cost as a multiple of emr-custom-rules' on the same trace, and its longest reaction (target ≤ "
        "150 s); ✓ where τ_U and cost hold. The cooldown rows add `cooldown_after_scale_out_s` (no action "
        "for that long after a scale-out): with one node at a time, EMR's own cadence. The burst rows turn "
        "on the burst rule (`burst_first_step_nodes`, `burst_confirm_s`, `burst_useful_s`: a small first "
        "step, the whole shortfall only for a burst the cluster's earlier bursts say will outlast the lead "
        "time). The burst rule was tuned on SWIM and seed 1, its `burst_useful_s` then also on seed 7; seeds "
        "43 and 61 were looked at while it was changed, seed 97 only once, before it became the default.",
        "",
    ]
    settings = [*grid(SPIKY_GRID), *SPIKY_CADENCE, *SPIKY_BURSTS, *PENDING_SHARES]
    cases = spiky_cases()
    header = "| settings | " + " | ".join(c.name for c in cases) + " |"
    rows: dict[str, list[str]] = {label(s): [] for s in settings}
    met_everywhere = {label(s): True for s in settings}
    refs = []
    for case in cases:
        base = Config.from_mapping(BASE)
        emr = replay(case.trace, "emr-custom-rules", base).scores["emr-custom-rules"]
        refs.append(f"{case.name} τ_U {emr.tau_u_pct:.1f} %, ${emr.cost_usd:,.0f}")
        for s in settings:
            r = replay(case.trace, "sparkscale", Config.from_mapping({**BASE, **s})).scores["sparkscale"]
            ratio = r.cost_usd / emr.cost_usd if emr.cost_usd > 0 else float("inf")
            ok = r.tau_u_pct <= emr.tau_u_pct + 1e-9 and ratio <= 1.0 + 1e-9
            met_everywhere[label(s)] &= ok
            react = "–" if r.reaction_s_max is None else f"{r.reaction_s_max:.0f} s"
            rows[label(s)].append(f"{r.tau_u_pct:.1f} % at {ratio:.2f} ×, {react}{' ✓' if ok else ''}")
    lines += [header, "|---" * (len(cases) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()]
    winners = [k for k, ok in met_everywhere.items() if ok]
    swim = [k for k, cells in rows.items() if cells[0].endswith("✓")]
    lines += [
        "",
        "emr-custom-rules: " + "; ".join(refs) + ".",
        "",
        "Settings meeting the target on every spiky trace: "
        + (", ".join(winners) if winners else "none")
        + ". On SWIM alone: "
        + (", ".join(swim) if swim else "none")
        + ". SWIM's bursts ramp up over 10–50 minutes: buying one node at a time and waiting, as EMR's "
        "rules do, serves the minutes just above the core at little cost and leaves the peaks short; "
        "bursty-batch's jobs jump to their size at once, and the same cadence leaves them short for longer "
        "than EMR's rules. No cadence does both: a policy would have to tell the two shapes apart as they "
        "begin. The burst rows try that: a burst's first step is one node (the reaction target), and the "
        "whole shortfall is bought only when the cluster's earlier bursts that lasted as long mostly went on "
        "long enough for new nodes to be useful. Bursty-batch's jobs last 15–120 minutes and are bought; "
        "SWIM's two 30–40-node spikes last 15 minutes and are not, and its slow ramps get one node each time "
        "memory runs out again, as EMR's cadence does. A held burst whose need grows (a job joining it) gets "
        "a new first step once its last step is the lead time + `burst_useful_s` old (`burst_regrowth`; the "
        "regrowth False row is the rule without it): that answers bursty-batch's joining jobs within the "
        "reaction target. Sooner is dearer (measured, not in the table): a step on growth 120, 240, 360, 600 "
        "or 900 s after the last costs SWIM 1.11, 1.08, 1.04, 1.01 and 1.001 × emr-custom-rules (a new burst "
        "on top at 120 and 240 s: 1.12 and 1.085 ×), against 0.96 × at lead time + 720 s. A growth threshold "
        "of 5 % instead of the deadband costs the same; at 10 % SWIM is 1.06–1.09 × and a job joining a held "
        "burst on seed 211 still waits 292 s. "
        "The share rows (`pending_share_pct`, for the "
        "`--backlog` target below) buy only part of a confirmed burst's waiting memory: here, where demand "
        "that is not served is lost, they leave bursty-batch short longer unless a wait of up to twice the "
        "burst's starting capacity is bought whole (`pending_whole_multiple`).",
        "",
        *delayed_bound_lines(cases),
    ]
    return lines


# The delayed-information bound's delay: EMR's usual request -> usable time (forecast.DEFAULT_LEAD_S) plus a
# minute for the fresh YARN signal's age
DELAY_S = 420.0


def delayed_bound_lines(cases: list[Case]) -> list[str]:
    """replay.bounds.delayed_information_bound_usd at emr-custom-rules' τ_U on each spiky trace: the least any
    policy pays whose supply is a non-decreasing function of the demand it saw DELAY_S earlier."""
    cluster, config = default_cluster(), Config.from_mapping(BASE)
    f = config.usable_memory_fraction
    group = cluster.cheapest_task_group(f)
    per_gib = group.usd_per_hour / group.usable_gib(f)
    cells = []
    for case in cases:
        res = replay(case.trace, "emr-custom-rules", config)
        emr, demand = res.scores["emr-custom-rules"], res.demand
        short = math.floor(emr.tau_u_pct / 100.0 * len(demand) + 1e-9)
        now, late = (
            delayed_information_bound_usd(
                demand,
                core_gib=res.core_gib,
                usd_per_gib_hour=per_gib,
                step_s=res.step_s,
                delay_s=d,
                short_steps=short,
            )
            for d in (0.0, DELAY_S)
        )
        cells.append(
            f"{case.name} ${late:,.2f} = {late / emr.cost_usd:.2f} × emr-custom-rules' cost (${now:,.2f} "
            "seeing the demand at once)"
        )
    return [
        "Does the delay itself rule the target out? A lower bound computed in the replay "
        "(`replay/bounds.py`, `delayed_information_bound_usd`): the least any policy can pay, leaving the "
        "demand unserved no more often than emr-custom-rules, when its TASK memory at each minute is a "
        f"non-decreasing function of the demand it saw {DELAY_S:.0f} s earlier (the lead time + the signal's "
        "age), billed only while usable at the cheapest offering's $ per GiB-hour: " + "; ".join(cells) + ". "
        "Below 1 ×, the delay alone does not rule the target out for that class of policies; what it adds is "
        "the ratio of the two figures. It says nothing about policies that remember more than the one "
        "delayed value (sparkscale and EMR's rules both do): on one fixed trace such a policy could learn "
        "the trace, so no bound over them is meaningful.",
    ]


def backlog_table() -> list[str]:
    """Issue 14's --backlog target on the spiky traces: fewer queued GiB-hours than emr-custom-rules at no
    more cost, for the defaults, the cadence rows and the queue-share rows."""
    lines = [
        "With `--backlog` (work that does not fit waits and runs later): target fewer queued GiB-hours than "
        "emr-custom-rules at no more cost. Each setting's queued GiB-hours, its cost as a multiple of "
        "emr-custom-rules' and its longest reaction; ✓ where queue and cost hold. The share rows turn on "
        "`pending_share_pct` (a confirmed burst buys that share of the memory waiting beyond the capacity it "
        "began with, not all of it) and `pending_whole_multiple` (a wait no deeper than that multiple of the "
        "starting capacity is still bought whole).",
        "",
    ]
    settings = [{}, *SPIKY_CADENCE, BURSTS, *PENDING_SHARES]
    cases = spiky_cases()
    rows: dict[str, list[str]] = {label(s) or OFF: [] for s in settings}
    met_everywhere = {label(s) or OFF: True for s in settings}
    refs, busy = [], []
    for case in cases:
        base = Config.from_mapping(BASE)
        res = replay(case.trace, "emr-custom-rules", base, backlog=True)
        emr, emr_q = res.scores["emr-custom-rules"], _queued(res, "emr-custom-rules")
        emr_busy = _busy_share(res, "emr-custom-rules")
        refs.append(f"{case.name} {emr_q:,.0f} GiB-h, ${emr.cost_usd:,.0f}")
        for s in settings:
            res = replay(case.trace, "sparkscale", Config.from_mapping({**BASE, **s}), backlog=True)
            r, q = res.scores["sparkscale"], _queued(res, "sparkscale")
            ratio = r.cost_usd / emr.cost_usd if emr.cost_usd > 0 else float("inf")
            ok = q < emr_q and ratio <= 1.0 + 1e-9
            met_everywhere[label(s) or OFF] &= ok
            react = "–" if r.reaction_s_max is None else f"{r.reaction_s_max:.0f} s"
            rows[label(s) or OFF].append(f"{q:,.0f} at {ratio:.2f} ×, {react}{' ✓' if ok else ''}")
            if s is BURSTS and not case.name.endswith("*"):
                busy.append(
                    f"{case.name} {_busy_share(res, 'sparkscale'):.0%} (emr-custom-rules {emr_busy:.0%})"
                )
    lines += ["| settings | " + " | ".join(c.name for c in cases) + " |", "|---" * (len(cases) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()]
    winners = [k for k, ok in met_everywhere.items() if ok]
    lines += [
        "",
        "emr-custom-rules with `--backlog`: " + "; ".join(refs) + ".",
        "",
        "Settings meeting the queue and cost target on every spiky trace: "
        + (", ".join(winners) if winners else "none")
        + ". Why the defaults cost about twice EMR's rules here: queued work keeps YARN's pending memory "
        "high, so a burst that goes on is confirmed and its whole queue is bought at once (up to "
        "`max_task_nodes`); the nodes are usable about six minutes later, work the queue off within minutes, "
        "then idle through "
        "the stabilization window and the decommission. Of the memory paid for (CORE and TASK), the work "
        "used " + "; ".join(busy) + ". The share rows buy for a deep queue what works it off over tens of "
        "minutes instead: the same work on fewer nodes, each busy for more of the time it is billed. What "
        "they trade against:",
        "",
        "- SWIM against bursty-batch: SWIM's spikes queue 40,000–60,000 GiB-minutes in 15 minutes and then "
        "stop, so every node bought for them idles after the queue is gone; a larger share (or more bought "
        "whole) lowers bursty-batch's queue and raises SWIM's cost above EMR's rules'. A shorter "
        "stabilization window gives SWIM back part of that cost.",
        "- The two models against each other: the policy cannot tell them apart. A `--backlog` run and the "
        "plain run of the arrivals + queue its signals saw have the same supply at every step "
        "(tests/replay/test_replay_backlog.py), so the same pending memory is a queue that a share works "
        "off cheaply in one model and a level of demand that a share leaves short in the other. The same "
        "rows in the spiky table above show that side: a share with nothing bought whole leaves every "
        "bursty-batch seed short more often than EMR's rules, and the shorter stabilization window also "
        "SWIM. Buying whole a wait of up to twice the burst's starting capacity (`pending_whole_multiple` 2) "
        "keeps the plain target on these traces, with SWIM's cost under `--backlog` just above EMR's rules'; "
        "on a seed looked at only afterwards (bursty-batch 101, plain model) it is short more often than "
        "EMR's rules. Four times buys too much whole to keep the cost on bursty-batch.",
        "- Reactions: the longest ones (up to 1,000–1,500 s, with or without a share) are bursts held at "
        "their first step (`burst_ends_too_soon`) while a new job joins them and the need grows; under the "
        "backlog a burst lasts until its queue is gone, so more jobs join one. `burst_regrowth` answers "
        "such growth only once the burst's last step is the lead time + `burst_useful_s` old (sooner costs "
        "the SWIM day more than EMR's rules without `--backlog`), and a share does not change it.",
    ]
    return lines


def _busy_share(res: ReplayResult, name: str) -> float:
    """The share of the memory paid for (CORE and TASK, GiB-steps) that ran work: served / supplied."""
    run = res.runs[name]
    left = run.backlog.queue_gib if run.backlog is not None else 0.0
    supplied = sum(run.supply_gib)
    return (sum(res.demand) - left) / supplied if supplied > 0 else 0.0


def _queued(res: ReplayResult, name: str) -> float:
    scores = res.backlog_scores or {}
    return scores[name].queued_gib_hours if name in scores else float("nan")


def smooth_table() -> list[str]:
    lines = [
        "Smooth traces: target τ_U ≤ 1 % at a cost ≤ 1.15 × the foresight bound (the cheapest whole nodes "
        "billed from their request, knowing the demand in advance). Each setting's τ_U and cost / foresight "
        "bound; ✓ where both hold.",
        "",
    ]
    settings = [*grid(SMOOTH_GRID), *SMOOTH_MORE]
    cases = smooth_cases()
    rows: dict[str, list[str]] = {label(s): [] for s in settings}
    met_everywhere = {label(s): True for s in settings}
    causal: list[str] = []
    for case in cases:
        foresight = None
        for s in settings:
            res = replay(case.trace, "sparkscale", Config.from_mapping({**BASE, **s}))
            r = res.scores["sparkscale"]
            foresight = res.foresight_cost_usd
            ratio = r.cost_usd / res.foresight_cost_usd if res.foresight_cost_usd else float("inf")
            ok = r.tau_u_pct <= 1.0 and ratio <= 1.15
            met_everywhere[label(s)] &= ok
            rows[label(s)].append(f"{r.tau_u_pct:.2f} % at {ratio:.3f} ×{' ✓' if ok else ''}")
        h, lr = least_headroom(case.trace)
        shown = (
            "none up to 30 %"
            if lr is None or not foresight
            else (f"h {h} %: {lr.tau_u_pct:.2f} % at {lr.cost_usd / foresight:.3f} ×")
        )
        causal.append(f"{case.name} {shown}")
    lines += ["| settings | " + " | ".join(c.name for c in cases) + " |", "|---" * (len(cases) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()]
    winners = [k for k, ok in met_everywhere.items() if ok]
    lines += [
        "",
        "Settings meeting the target on every smooth trace: "
        + (", ".join(winners) if winners else "none")
        + ".",
        "",
        "Is it the forecast error on the ramps? A causal sizing rule, replayed on the same cluster and "
        f"model: every minute, whole nodes of the cheapest offering for the demand of {LAG_S:.0f} s earlier "
        "× (1 + h), released at once, with h the least whole percentage that keeps τ_U ≤ 1 % (chosen on the "
        "trace, as a setting would be): "
        + "; ".join(causal)
        + ". Where it meets the target, what a 7-minute start-up leaves unknown on the ramps is not what "
        "decides: the headroom held (1/0.85 − 1 = 18 % at the old 85 % target, a few % at 93 %) and which "
        "nodes the planner buys for small increments (the `premium × 1` rows: the old planner, buying "
        "48 GiB r5.2xlarge nodes at 21 % more per GiB-hour) do.",
        "",
        *reactive_ideal_lines(),
        "",
        *look_ahead_lines(),
    ]
    return lines


class LaggedHeadroom:
    """A causal sizing rule for the smooth traces (not a policy of the product): every step, the whole nodes
    of the cheapest offering that cover the demand of `lag_s` earlier × (1 + headroom) above core; released
    at once. Run on the replay's simulated cluster, so start-up and release are billed as for every
    policy."""

    name = "lagged-headroom"

    def __init__(self, cluster: ClusterSpec, config: Config, headroom: float, lag_s: float) -> None:
        f = config.usable_memory_fraction
        self.group = cluster.cheapest_task_group(f)
        self.usable_gib = self.group.usable_gib(f)
        self.headroom, self.lag_s = headroom, lag_s

    def target(self, demand_gib: float, core_gib: float) -> int:
        return nodes_for(demand_gib * (1.0 + self.headroom) - core_gib, self.usable_gib)

    def attach(self, world: World) -> None:
        self._w, self._g = world, world.by_id[self.group.id]
        world.every(0.0, float(world.step_s), self._tick)

    def _tick(self, t: float) -> None:
        w, g = self._w, self._g
        target = self.target(w.demand_at(t - self.lag_s), w.core_gib)
        if target != g.requested:
            scale_out = target > g.requested
            w.set_requested(g, target)
            w.record_request(scale_out=scale_out)


def run_rule(rule: Any, demand: list[float], initial_task_nodes: dict[str, int]) -> Scores:
    """Replay one of this benchmark's sizing rules (a World policy with a `name`) over `demand` on the
    default cluster and model, and score it."""
    params, cluster, config = SimParams(), default_cluster(), Config.from_mapping(BASE)
    rec = RunRecord(rule.name)
    world = World(
        demand_gib=demand,
        cluster=cluster,
        config=config,
        params=params,
        seed=0,
        record=rec,
        initial_task_nodes=initial_task_nodes,
    )
    world.run(rule)
    return score(
        demand=demand,
        supply=rec.supply_gib,
        step_s=params.step_s,
        cost_usd=rec.cost_usd,
        oracle_cost_usd=None,
        actions=rec.actions,
        scale_out_times_s=rec.scale_out_times_s,
    )


def lagged_headroom(trace: Trace, headroom: float) -> Scores:
    params, cluster, config = SimParams(), default_cluster(), Config.from_mapping(BASE)
    demand = list(trace.resample(params.step_s))
    rule = LaggedHeadroom(cluster, config, headroom, LAG_S)
    core = cluster.core_gib(config.usable_memory_fraction)
    return run_rule(rule, demand, {rule.group.id: rule.target(demand[0], core)})


def least_headroom(trace: Trace, max_tau_u_pct: float = 1.0) -> tuple[int, Scores | None]:
    """The least whole-percent headroom for which lagged_headroom keeps τ_U ≤ `max_tau_u_pct`, and its
    scores."""
    for h in range(MAX_HEADROOM_PCT + 1):
        r = lagged_headroom(trace, h / 100.0)
        if r.tau_u_pct <= max_tau_u_pct + 1e-9:
            return h, r
    return MAX_HEADROOM_PCT, None


# The look-ahead rule (LookAhead): diurnal seeds first replayed in session 8, after it was written on seed 1
FRESH_DIURNAL = (59, 83, 131)
DAY_S = 86_400.0
SEASON_CHECK_S = 1800.0  # today's level against yesterday's: the median ratio over this trailing window
TREND_POINTS = 10  # the trend before a day of history: Theil-Sen over this many minutes
MAX_LOOKAHEAD_HEADROOM_PCT = 5.0


class LookAhead:
    """An informed causal sizing rule for the diurnal shape (not a policy of the product): what looking ahead
    can reach. Every step it sees the demand `lag_s` late (the YARN collector's lag) and forecasts the demand
    at now + provisioning delay: the demand seen now plus yesterday's change over the same minutes, scaled by
    how today compares with yesterday over the last half hour (seasonal); before a day of history, the
    Theil-Sen trend of the last 10 minutes. It holds whole nodes for the larger of that forecast and the
    demand seen now, × (1 + headroom), mixing the cheapest offering per GiB with one smaller node for the
    last half-node increment. It never swaps node types at a loss: when what it holds covers the need it
    only releases (a big node stays rather than be replaced by a small one that is not yet usable), and a
    small node stays until the big node bought in its place is usable. `seasonal=False`: the trend alone;
    `foresight=True`: the true demand at now + provisioning delay instead of any forecast (a reference, not
    causal); `mixed=False`: whole nodes of the cheapest offering only, as reactive-ideal buys."""

    name = "look-ahead"

    def __init__(
        self,
        cluster: ClusterSpec,
        config: Config,
        params: SimParams,
        *,
        headroom: float,
        seasonal: bool = True,
        foresight: bool = False,
        mixed: bool = True,
    ) -> None:
        f = config.usable_memory_fraction
        self.big = cluster.cheapest_task_group(f)
        self.big_gib = self.big.usable_gib(f)
        smaller = [g for g in cluster.task_groups if mixed and 0 < g.usable_gib(f) < self.big_gib]
        self.small = min(smaller, key=lambda g: g.usd_per_hour) if smaller else None
        self.small_gib = self.small.usable_gib(f) if self.small is not None else 0.0
        self.lead_s, self.lag_s = params.provisioning_s, params.yarn_lag_s
        self.hold_small_s = params.provisioning_s
        self.headroom, self.seasonal, self.foresight = headroom, seasonal, foresight
        self.big_up_at = -math.inf

    def forecast(self, t: float) -> float:
        """The demand expected at t + lead, from what a causal policy knows at t (see the class docstring)."""
        d = self._w.demand_at
        ahead = t + self.lead_s
        if self.foresight:
            return d(ahead)
        seen = t - self.lag_s
        if self.seasonal and seen - SEASON_CHECK_S - DAY_S >= 0:
            window = range(int(SEASON_CHECK_S // 60))
            ratio = median([d(seen - 60 * k) / max(d(seen - 60 * k - DAY_S), 1.0) for k in window])
            return max(0.0, d(seen) + (d(ahead - DAY_S) - d(seen - DAY_S)) * ratio)
        xs = [seen - 60.0 * k for k in range(TREND_POINTS)]
        ys = [d(x) for x in xs]
        n = len(xs)
        slope = median([(ys[i] - ys[j]) / (xs[i] - xs[j]) for i in range(n) for j in range(i + 1, n)])
        level = median([y - slope * (x - seen) for x, y in zip(xs, ys, strict=True)])
        return max(0.0, level + slope * (ahead - seen))

    def split(self, need_gib: float) -> tuple[int, int]:
        """(big, small) nodes that cover `need_gib` cheapest: big nodes, plus one small one when what is left
        fits in it."""
        if need_gib <= 0:
            return 0, 0
        big = math.floor(need_gib / self.big_gib + 1e-9)
        rest = need_gib - big * self.big_gib
        if rest <= 1e-9:
            return big, 0
        if self.small is not None and rest <= self.small_gib + 1e-9:
            return big, 1
        return big + 1, 0

    def attach(self, world: World) -> None:
        self._w, self._big = world, world.by_id[self.big.id]
        self._small = world.by_id[self.small.id] if self.small is not None else None
        world.every(0.0, float(world.step_s), self._tick)

    def start(self, demand0: float, core_gib: float) -> dict[str, int]:
        big, small = self.split(demand0 * (1.0 + self.headroom) - core_gib)
        out = {self.big.id: big}
        if self.small is not None:
            out[self.small.id] = small
        return out

    def _tick(self, t: float) -> None:
        w, bg, sg = self._w, self._big, self._small
        seen = w.demand_at(t) if self.foresight else w.demand_at(t - self.lag_s)
        need = max(self.forecast(t), seen) * (1.0 + self.headroom) - w.core_gib
        held_small = sg.requested if sg is not None else 0
        if bg.requested * self.big_gib + held_small * self.small_gib >= need - 1e-9:  # covered: release only
            big = min(bg.requested, max(0, math.ceil(need / self.big_gib - 1e-9)))
            small = held_small if need > big * self.big_gib + 1e-9 else 0
        else:
            big, small = self.split(need)
            big = max(big, bg.requested)
            if big * self.big_gib >= need - 1e-9:
                small = 0
        if big > bg.requested:
            self.big_up_at = t
        if small < held_small and t - self.big_up_at < self.hold_small_s + w.step_s:
            small = held_small  # until the big node bought in its place is usable
        for g, n in ((bg, big), (sg, small)):
            if g is not None and n != g.requested:
                scale_out = n > g.requested
                w.set_requested(g, n)
                w.record_request(scale_out=scale_out)


def look_ahead(
    trace: Trace, headroom: float, *, seasonal: bool = True, foresight: bool = False, mixed: bool = True
) -> Scores:
    params, cluster, config = SimParams(), default_cluster(), Config.from_mapping(BASE)
    demand = list(trace.resample(params.step_s))
    rule = LookAhead(
        cluster, config, params, headroom=headroom, seasonal=seasonal, foresight=foresight, mixed=mixed
    )
    return run_rule(rule, demand, rule.start(demand[0], cluster.core_gib(config.usable_memory_fraction)))


def look_ahead_within(trace: Trace, max_tau_u_pct: float) -> tuple[float, Scores | None]:
    """The least headroom (0.5 % steps, up to MAX_LOOKAHEAD_HEADROOM_PCT) for which the seasonal look-ahead
    rule keeps τ_U ≤ `max_tau_u_pct`, and its scores."""
    h = 0.0
    while h <= MAX_LOOKAHEAD_HEADROOM_PCT + 1e-9:
        r = look_ahead(trace, h / 100.0)
        if r.tau_u_pct <= max_tau_u_pct + 1e-9:
            return h, r
        h += 0.5
    return MAX_LOOKAHEAD_HEADROOM_PCT, None


def diurnal_cases() -> list[Case]:
    out = [c for c in smooth_cases() if c.name.startswith("diurnal")]
    for seed in FRESH_DIURNAL:
        out.append(Case(f"diurnal s{seed}†", synthetic.diurnal(days=DAYS, peak_gib=PEAK_GIB, seed=seed)))
    return out


def look_ahead_lines() -> list[str]:
    """What looking ahead can reach on the diurnal shapes, against reactive-ideal on the same seed: the
    look-ahead rule with no headroom (seasonal, the trend alone, the cheapest offering alone, and with the
    demand at now + lead known exactly), the least headroom that keeps it within the smooth target's
    τ_U ≤ 1 %, and the product with its forecast acted on with little headroom."""
    rows = []
    acting = {
        **BASE,
        "burst_first_step_nodes": 1,
        "forecast_mode": "act",
        "yarn_memory_used_target_pct": 100.0,
        "deadband_pct": 0.5,
        "scale_in_stabilization_s": 120,
    }
    shifted = {**acting, "forecast_seasonal": "shift"}
    beats_all, single_beats, foresight_single_beats = True, True, True
    margins: list[float] = []
    for case in diurnal_cases():
        config = Config.from_mapping(BASE)
        params = SimParams()
        res = run_replay(
            case.trace.resample(params.step_s),
            policies=[
                PolicySpec("reactive-ideal", "reactive-ideal", config),
                PolicySpec("peak", "sparkscale", Config.from_mapping(acting)),
                PolicySpec("shift", "sparkscale", Config.from_mapping(shifted)),
            ],
            config=config,
            cluster=default_cluster(),
            params=params,
        )
        ideal = res.scores["reactive-ideal"]

        def below(r: Scores, ideal: Scores = ideal) -> bool:
            return r.cost_usd < ideal.cost_usd and r.tau_u_pct <= ideal.tau_u_pct

        def cell(r: Scores) -> str:
            return f"{r.tau_u_pct:.2f} % at ${r.cost_usd:,.1f}{' ✓' if below(r) else ''}"

        seasonal = look_ahead(case.trace, 0.0)
        single = look_ahead(case.trace, 0.0, mixed=False)
        known_single = look_ahead(case.trace, 0.0, foresight=True, mixed=False)
        beats_all &= below(seasonal)
        margins.append(100.0 * (1.0 - seasonal.cost_usd / ideal.cost_usd))
        single_beats &= below(single)
        foresight_single_beats &= below(known_single)
        h, tight = look_ahead_within(case.trace, 1.0)
        within = "none" if tight is None else f"h {h:.1f} %: {cell(tight)}"
        rows.append(
            f"| {case.name} | {cell(ideal)} | {cell(seasonal)} | "
            f"{cell(look_ahead(case.trace, 0.0, seasonal=False))} | {cell(single)} | "
            f"{cell(look_ahead(case.trace, 0.0, foresight=True))} | {cell(known_single)} | {within} | "
            f"{cell(res.scores['peak'])} | {cell(res.scores['shift'])} |"
        )
    return [
        "Looking ahead on the diurnal shapes (issue 14's fourth target: below reactive-ideal's cost at equal "
        "or lower τ_U; † = a seed first replayed after the rule was written on seed 1). The look-ahead rule "
        "(`LookAhead`, not a policy of the product) sees the demand 10 s late, forecasts it at now + the "
        "6-minute start-up from yesterday's change over the same minutes (scaled by today's level against "
        "yesterday's over the last half hour; the trend alone before a day of history), holds whole nodes "
        "for the larger of that and the demand now with no headroom, buys one 48 GiB node for a last "
        "half-node increment and never swaps node types at a loss. Its variants: the trend alone; the "
        "cheapest offering alone (as reactive-ideal buys); the demand at now + start-up known exactly "
        "(foresight, not causal), mixed and cheapest alone; and the least headroom that keeps it short at "
        "most 1 % of the time. The last two columns are the product with its forecast acted on "
        "(`forecast_mode` act, 100 % target, 0.5 % deadband, 120 s scale-in window), with "
        "`forecast_seasonal` peak and shift. ✓ where cost and τ_U are both below reactive-ideal's.",
        "",
        "| trace | reactive-ideal | look-ahead | trend alone | cheapest offering alone | foresight "
        "| foresight, cheapest alone | within τ_U ≤ 1 % | sparkscale act, peak | sparkscale act, shift |",
        "|---" * 10 + "|",
        *rows,
        "",
        "The look-ahead rule is "
        + ("below" if beats_all else "not below")
        + " reactive-ideal's cost at a lower τ_U on every diurnal seed "
        f"({min(margins):.1f}–{max(margins):.1f} % cheaper). With the cheapest offering alone it is "
        + ("below" if single_beats else "not below")
        + " on every seed, and knowing the demand at now + start-up exactly does "
        + ("" if foresight_single_beats else "not ")
        + "get it below. "
        + ("" if foresight_single_beats else WHY_THE_MIX)
        + "Neither target holds at once for the causal rule: the headroom that keeps it short at most 1 % of "
        "the time costs more than reactive-ideal; only knowing the demand ahead exactly (the foresight "
        "column) is below reactive-ideal within τ_U ≤ 1 %.",
    ]


WHY_THE_MIX = (
    "On one offering, being ready for a ramp costs the node-minutes reactive-ideal spends short instead: "
    "what a forecast buys on this shape is being ready at about the same cost, and the saving comes from the "
    "smaller node for the last half-node increment, which the product's planner avoids (a lasting premium, "
    "`node_premium_weight`) and cannot yet swap for a large node as demand grows. "
)


def reactive_ideal_lines() -> list[str]:
    """Issue 14's fourth target on the diurnal shapes: sparkscale (defaults) below reactive-ideal's cost at
    equal or lower τ_U. reactive-ideal requests the oracle's nodes the moment demand changes: it pays about
    the oracle's node-hours, only late. Next to it, the causal rule above with the least headroom that is
    short no more often than reactive-ideal: what seeing the demand 2 minutes late costs at that τ_U."""
    cells = []
    for case in smooth_cases():
        if not case.name.startswith("diurnal"):
            continue
        config = Config.from_mapping(BASE)
        params = SimParams()
        res = run_replay(
            case.trace.resample(params.step_s),
            policies=[
                PolicySpec("sparkscale", "sparkscale", config),
                PolicySpec("reactive-ideal", "reactive-ideal", config),
            ],
            config=config,
            cluster=default_cluster(),
            params=params,
        )
        mine, ideal = res.scores["sparkscale"], res.scores["reactive-ideal"]
        met = mine.cost_usd < ideal.cost_usd and mine.tau_u_pct <= ideal.tau_u_pct
        h, lr = least_headroom(case.trace, ideal.tau_u_pct)
        causal = "none up to 30 %" if lr is None else f"h {h} %: {lr.tau_u_pct:.2f} % at ${lr.cost_usd:,.1f}"
        cells.append(
            f"{case.name}: sparkscale {mine.tau_u_pct:.2f} % at ${mine.cost_usd:,.1f}, reactive-ideal "
            f"{ideal.tau_u_pct:.2f} % at ${ideal.cost_usd:,.1f}{' ✓' if met else ''} (causal rule {causal})"
        )
    return [
        "Below reactive-ideal's cost at equal or lower τ_U (the diurnal shapes; defaults): "
        + "; ".join(cells)
        + ". reactive-ideal buys the oracle's nodes as soon as demand changes and pays about the oracle's "
        "node-hours, only late; the causal rule that knows the demand of 2 minutes ago exactly, resizes "
        "every minute with whole nodes of the cheapest offering and releases at once, needs the headroom "
        "shown to be short no more often, and then costs more than reactive-ideal: without knowing demand "
        "ahead, a policy pays for the minutes it would otherwise be short.",
    ]


def write_docs(block: str) -> None:
    text = BENCH_PAGE.read_text(encoding="utf-8")
    body = f"{BEGIN}\n{block.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: body, text, count=1, flags=re.S)
    elif SECTION_END in text:
        text = text.replace(SECTION_END, f"{body}\n{SECTION_END}", 1)
    else:
        raise SystemExit(f"{BENCH_PAGE} has no {SECTION_END} marker")
    BENCH_PAGE.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--write-docs",
        action="store_true",
        default=os.environ.get(WRITE_DOCS_ENV, "") == "1",
        help=f"rewrite the frontier block of docs/benchmarks.md (also: {WRITE_DOCS_ENV}=1, for `make bench`)",
    )
    ap.add_argument(
        "--only",
        choices=("spiky", "backlog", "smooth"),
        help="run one of the two tables (printed only: the docs block needs both)",
    )
    args = ap.parse_args()
    if args.only:
        table = {"spiky": spiky_table, "backlog": backlog_table, "smooth": smooth_table}[args.only]
        print("\n".join(table()))
        return
    t0 = time.perf_counter()
    lines = [
        "### The settings' frontier (`benchmarks/bench_frontier.py`)",
        "",
        "Can any setting meet issue 14's cost targets? A grid of the settings that trade cost against "
        f"shortage, replayed on every trace ({DAYS}-day synthetic shapes, peak {PEAK_GIB:.0f} GiB; * = a "
        "seed not tuned on; diurnal s41 was first looked at after the 93 % / 3.5 % defaults were chosen). "
        "A measurement of what the policy's settings reach, not a proof for every policy.",
        "",
        *spiky_table(),
        "",
        *backlog_table(),
        "",
        *smooth_table(),
    ]
    block = "\n".join(lines)
    print(block)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.write_docs:
        write_docs(block)
        print(f"wrote {BENCH_PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
