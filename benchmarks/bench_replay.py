"""Replay benchmarks: simulator speed, and the policy comparison table for the docs (docs/benchmarks.md).

    python benchmarks/bench_replay.py                 # print the figures
    python benchmarks/bench_replay.py --write-docs  # also rewrite docs/benchmarks.md's replay block
    python benchmarks/bench_replay.py --quick         # shorter traces (a smoke run)
    python benchmarks/bench_replay.py --streaming     # the streaming table only
    python benchmarks/bench_replay.py --speed-only    # only the speed table (for iterating on speed)
    SPARKSCALE_BENCH_WRITE_DOCS=1 make bench        # `make bench` keeping the docs' table true

Speed: 30 days at 60 s steps (43 200 steps) of the diurnal shape, wall seconds per policy (target ≤ 2 s).
Table: the three bundled traces (data/traces) and two synthetic shapes, every policy; then sparkscale with and
without diversification and spot fallback under spot interruptions and capacity shortfalls; then the
heap-pressure reaction; then the work-conserving model (--backlog: what does not fit waits and runs later)
with queued GiB-hours and waits; then one synthetic shape with a seed never used while tuning (UNTUNED_SEED);
then a stream (the synthetic streaming shape, seed 1 and UNTUNED_SEED) scored by how far behind it falls.
Every table has `reactive-ideal` (the oracle's nodes requested the moment demand changes, with the same
start-up and decommission delays). Targets are checked and reported, never tuned here.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import math
import os
import pstats
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lambdas"))

from sparkscale.alarms import heap_used_threshold_pct  # noqa: E402
from sparkscale.config import Config  # noqa: E402
from sparkscale.usecases.scale import RunResult  # noqa: E402
from sparkscale_tools.replay import synthetic  # noqa: E402
from sparkscale_tools.replay.cluster import ClusterSpec, default_cluster  # noqa: E402
from sparkscale_tools.replay.model import SimParams, heap_used_pct  # noqa: E402
from sparkscale_tools.replay.policies import POLICIES  # noqa: E402
from sparkscale_tools.replay.run import PolicySpec, ReplayResult, run_replay  # noqa: E402
from sparkscale_tools.replay.scores import (  # noqa: E402
    episodes,
    exact_onsets,
    heap_reaction_times,
    median,
    reaction_times,
)
from sparkscale_tools.replay.streaming import StreamParams, synthetic_stream  # noqa: E402
from sparkscale_tools.replay.streaming_run import STREAMING_POLICIES, run_streaming_replay  # noqa: E402
from sparkscale_tools.replay.trace import Trace, load_csv  # noqa: E402

BENCH_PAGE = REPO / "docs" / "benchmarks.md"
WRITE_DOCS_ENV = "SPARKSCALE_BENCH_WRITE_DOCS"
TRACES = REPO / "data" / "traces"
BEGIN, END = "<!-- bench:replay -->", "<!-- /bench:replay -->"
# the streaming table is its own block: `--streaming --write-docs` rewrites it alone
STREAM_BEGIN, STREAM_END = "<!-- bench:streaming -->", "<!-- /bench:streaming -->"
SECTION_BEGIN, SECTION_END = "<!-- section:bench -->", "<!-- /section:bench -->"

# Bounds wide enough for every trace's peak (4096 GiB needs 42 nodes of 96 GiB): the comparison is about
# the policies, not about a cap. Everything else is the default Config.
BENCH_CONFIG = {"max_task_nodes": 60, "group_max_nodes": 60}
SYNTHETIC_PEAK_GIB = 1024.0
SMOOTH = {"google2019", "azure2019", "diurnal"}  # the "smooth traces" of the cost ≤ 1.25 × oracle target
INTERRUPTIONS_PER_NODE_HOUR = 0.02
SHORTFALLS_PER_DAY = 2.0
SHORTFALL_S = 7200.0
DIVERSIFIED_SHARE = 0.5
# On the spiky traces, also a cost-first setting (no default changes): scale in after one minute instead of
# ten and fill YARN to 95 % instead of 85 %. It spends the τ_U that emr-custom-rules leaves on cost.
BATCH_PROFILE: dict[str, Any] = {"scale_in_stabilization_s": 60, "yarn_memory_used_target_pct": 95.0}
BATCH = "sparkscale (batch profile)"
# Sizing for the demand forecast at now + lead time (issue 14), not a default: forecast_mode ships "off".
FORECAST = "sparkscale (forecast act)"
UNTUNED_SEED = 7  # the synthetic shapes were looked at with seed 1 only
UNTUNED_SHAPE = "bursty-batch"


@dataclass(frozen=True)
class Case:
    name: str
    trace: Trace
    smooth: bool


def cases(quick: bool) -> list[Case]:
    days = 3 if quick else 7
    out = []
    for file, label in (
        ("google2019_assigned_mem.csv", "google2019"),
        ("azure2019_assigned_mem.csv", "azure2019"),
        ("swim_fb2009_hadoop.csv", "swim-fb2009"),
    ):
        t = load_csv(TRACES / file)
        if quick:
            t = Trace(
                tuple(x for x in t.times_s if x < days * 86_400),
                t.demand_gib[: sum(1 for x in t.times_s if x < days * 86_400)],
                t.name,
            )
        out.append(Case(label, t, label in SMOOTH))
    out.append(Case("diurnal", synthetic.diurnal(days=days, peak_gib=SYNTHETIC_PEAK_GIB, seed=1), True))
    out.append(
        Case("bursty-batch", synthetic.bursty_batch(days=days, peak_gib=SYNTHETIC_PEAK_GIB, seed=1), False)
    )
    return out


def replay(
    trace: Trace,
    policies: list[PolicySpec],
    config: Config,
    cluster: ClusterSpec,
    *,
    seed: int = 0,
    params: SimParams | None = None,
) -> ReplayResult:
    params = params or SimParams()
    return run_replay(
        trace.resample(params.step_s),
        policies=policies,
        config=config,
        cluster=cluster,
        params=params,
        seed=seed,
    )


def fmt(x: float | None, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


# --- speed -----------------------------------------------------------------------------------------------
SPEED_REPEATS = 3


def speed(config: Config, *, profile: bool) -> tuple[list[str], dict[str, float]]:
    trace = synthetic.diurnal(days=30, step_s=60, peak_gib=SYNTHETIC_PEAK_GIB, seed=1)
    demand = trace.resample(60)
    secs: dict[str, float] = {}
    lines = [
        f"Speed: {len(demand)} steps (30 days at 60 s), diurnal shape, one policy at a time, the best of "
        f"{SPEED_REPEATS} runs (timeit's rule: the slower runs measure the machine's other work):",
        "",
    ]
    lines += ["| policy | wall s | target ≤ 2 s |", "|---|---|---|"]
    for name in POLICIES:
        secs[name] = min(timed_replay(demand, PolicySpec(name, name), config) for _ in range(SPEED_REPEATS))
        lines.append(f"| {name} | {secs[name]:.2f} | {'met' if secs[name] <= 2.0 else 'MISSED'} |")
    runs = [simulator_overhead(demand, config) for _ in range(SPEED_REPEATS)]
    overhead = min(seconds for _, seconds in runs)
    # the pure policy's share of a replay, applied to the best run (a share varies less with the load)
    evaluations, policy_share = min(policy_time(demand, config) for _ in range(SPEED_REPEATS))
    per_call_us = (secs["sparkscale"] - overhead) / evaluations * 1e6
    policy_us = policy_share * secs["sparkscale"] / evaluations * 1e6
    # the schedule before the 120 s default, for comparison: twice the run_once calls
    every_minute = min(
        timed_replay(
            demand, PolicySpec("sparkscale", "sparkscale", replace(config, reconcile_rate_s=60)), config
        )
        for _ in range(SPEED_REPEATS)
    )
    lines += [
        "",
        f"sparkscale's time is the real `run_once` ({evaluations} evaluations: the "
        f"{config.reconcile_rate_s} s reconcile schedule plus alarm notifications, ≈ {per_call_us:.0f} µs "
        f"each, of which the pure policy, `evaluate` and `next_state`, takes ≈ {policy_us:.0f} µs) plus the "
        "simulator: the same replay with each evaluation replaced by a stub that only reads the cluster and "
        f"the metrics takes {overhead:.2f} s. With the reconcile schedule at 60 s (the default before) "
        f"sparkscale takes {every_minute:.2f} s.",
    ]
    if secs["sparkscale"] > 2.0:
        lines += ["", why_over_2_s(overhead, evaluations, policy_us, per_call_us)]
        lines += ["", bound_text(recorded_policy(demand, config))]
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        timed_replay(demand, PolicySpec("sparkscale", "sparkscale"), config)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
        print(buf.getvalue())
    return lines, secs


def timed_replay(demand: list[float], spec: PolicySpec, config: Config) -> float:
    """Wall seconds of one replay of `demand` with one policy, default cluster and model."""
    t0 = time.perf_counter()
    run_replay(demand, policies=[spec], config=config, cluster=default_cluster(), params=SimParams())
    return time.perf_counter() - t0


def why_over_2_s(simulator_s: float, evaluations: int, policy_us: float, per_call_us: float) -> str:
    """Where 2 s would have to come from: the evaluations' budget after the simulator, against the pure
    policy's time per evaluation (what no change to the shell, the adapters or the simulator can lower)."""
    if simulator_s >= 2.0:
        return f"Why sparkscale misses 2 s: the simulator alone took {simulator_s:.2f} s in this run."
    budget_us = (2.0 - simulator_s) / evaluations * 1e6
    text = (
        f"Why sparkscale misses 2 s: after the simulator's {simulator_s:.2f} s, each of the {evaluations} "
        f"evaluations would have ≈ {budget_us:.0f} µs, against ≈ {per_call_us:.0f} µs measured"
    )
    if budget_us < policy_us:
        return (
            f"{text}; the pure policy alone takes ≈ {policy_us:.0f} µs of them, so only a policy about "
            f"{policy_us / budget_us:.1f} × as fast (and a shell, adapters and simulator costing nothing) "
            "could meet it."
        )
    return f"{text}."


@dataclass(frozen=True)
class Recorded:
    """One sparkscale replay split in two by a recording of its pure policy's outputs."""

    evaluations: int
    rest_s: float  # the replay with `evaluate` and `next_state` answered from the recording
    policy_s: float  # `evaluate` and `next_state` alone, on the recorded inputs, outside the replay
    same_metrics: int  # evaluations reading the very snapshot the evaluation before read
    same_state: int  # evaluations starting from a state equal to the one the evaluation before started from


def recorded_policy(demand: list[float], config: Config) -> Recorded:
    """What bounds the replay's time: the same replay with the pure policy costing nothing (its outputs
    replayed from a recording of the real run, so every decision and every simulated event is the same), and
    the pure policy alone on the same inputs. Also how often an evaluation's inputs repeat the evaluation
    before's (a repeat could be answered without deciding again)."""
    import sparkscale.usecases.scale as service_module
    from sparkscale.policy import evaluate as real_evaluate
    from sparkscale.policy import next_state as real_next_state

    inputs: list[tuple[Any, Any, dict[str, Any]]] = []  # (fn, its output, its keyword arguments)

    def recording(fn: Any) -> Any:
        def run(**kwargs: Any) -> Any:
            out = fn(**kwargs)
            inputs.append((fn, out, kwargs))
            return out

        return run

    def replaying() -> Any:
        outputs = iter([out for _, out, _ in inputs])
        return lambda **_: next(outputs)

    spec = PolicySpec("sparkscale", "sparkscale")
    try:
        setattr(service_module, "evaluate", recording(real_evaluate))  # noqa: B010 - measured
        setattr(service_module, "next_state", recording(real_next_state))  # noqa: B010
        real = run_replay(
            demand, policies=[spec], config=config, cluster=default_cluster(), params=SimParams()
        )
        rest = []
        for _ in range(SPEED_REPEATS):
            answer = replaying()  # one iterator over every output, in the order they were asked for
            setattr(service_module, "evaluate", answer)  # noqa: B010
            setattr(service_module, "next_state", answer)  # noqa: B010
            t0 = time.perf_counter()
            again = run_replay(
                demand, policies=[spec], config=config, cluster=default_cluster(), params=SimParams()
            )
            rest.append(time.perf_counter() - t0)
            if repr(again.scores) != repr(real.scores):
                raise RuntimeError("the replay answered from its recording differs from the real one")
    finally:
        setattr(service_module, "evaluate", real_evaluate)  # noqa: B010
        setattr(service_module, "next_state", real_next_state)  # noqa: B010
    alone = []
    for _ in range(SPEED_REPEATS):
        t0 = time.perf_counter()
        for fn, _, kwargs in inputs:
            fn(**kwargs)
        alone.append(time.perf_counter() - t0)
    evaluations = [kwargs for fn, _, kwargs in inputs if fn is real_evaluate]
    pairs = list(itertools.pairwise(evaluations))
    return Recorded(
        len(evaluations),
        min(rest),
        min(alone),
        sum(1 for a, b in pairs if b["metrics"] is a["metrics"]),
        sum(1 for a, b in pairs if b["state"] == a["state"]),
    )


def bound_text(r: Recorded) -> str:
    """The two parts of the replay's time that 2 s has to hold, measured apart."""
    total = r.rest_s + r.policy_s
    return (
        "What bounds it: the same replay with every `evaluate` and `next_state` answered from a recording "
        "of the real run (the simulator, `run_once`'s shell and the simulated adapters run as before; every "
        f"decision, and so every simulated event, is the same) takes {r.rest_s:.2f} s, and the pure policy "
        f"alone, on the same {r.evaluations} inputs outside the replay, takes {r.policy_s:.2f} s "
        f"(≈ {r.policy_s / r.evaluations * 1e6:.0f} µs per evaluation with its next_state): "
        f"{total:.2f} s together, {'more' if total > 2.0 else 'less'} than 2 s. None of the "
        f"{r.evaluations} evaluations can be answered as a repeat of the one before: {r.same_metrics} of "
        "them read the same metrics snapshot (an alarm's run right after the schedule's) and "
        f"{r.same_state} start from the same state (each evaluation records its own time and recommendation "
        "in it)."
    )


def policy_time(demand: list[float], config: Config) -> tuple[int, float]:
    """(evaluations, the share of one sparkscale replay's wall time spent in the pure policy: `evaluate` and
    `next_state`)."""
    import sparkscale.usecases.scale as service_module

    spent, calls = [0.0], [0]
    from sparkscale.policy import evaluate as real_evaluate
    from sparkscale.policy import next_state as real_next_state

    def timed(fn: Any, *, count: bool) -> Any:
        def run(**kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(**kwargs)
            finally:
                spent[0] += time.perf_counter() - t0
                calls[0] += count

        return run

    # scale.py's own names for them (it imports both from sparkscale.policy)
    setattr(service_module, "evaluate", timed(real_evaluate, count=True))  # noqa: B010 - measured
    setattr(service_module, "next_state", timed(real_next_state, count=False))  # noqa: B010
    try:
        seconds = timed_replay(demand, PolicySpec("sparkscale", "sparkscale"), config)
        return calls[0], spent[0] / seconds
    finally:
        setattr(service_module, "evaluate", real_evaluate)  # noqa: B010
        setattr(service_module, "next_state", real_next_state)  # noqa: B010


def simulator_overhead(demand: list[float], config: Config) -> tuple[int, float]:
    """(evaluations, seconds) of a sparkscale replay whose evaluations (run_once under its lease, for the
    alarm and the reconcile Lambdas alike) only read the cluster and the metrics."""
    import sparkscale.usecases.scale as service_module
    from sparkscale.usecases.shell import Shell

    calls = [0]
    real = service_module._run_under_lease

    def stub(shell: Shell, owner: str) -> RunResult:
        calls[0] += 1
        shell.ports.clusters.read_cluster(shell.cluster_id)
        shell.ports.metrics.read_metrics(shell.cluster_id, shell.now)
        return RunResult(shell.cluster_id, "hold", None)

    setattr(service_module, "_run_under_lease", stub)  # noqa: B010 - measure the simulator alone
    try:
        seconds = timed_replay(demand, PolicySpec("sparkscale", "sparkscale"), config)
        return calls[0], seconds
    finally:
        setattr(service_module, "_run_under_lease", real)  # noqa: B010


# --- the comparison table --------------------------------------------------------------------------------
TABLE_HEAD = [
    "| trace | policy | cost $ | × oracle | τ_U % | θ_U % | actions | reaction p50 s |",
    "|---|---|---|---|---|---|---|---|",
]


def case_specs(case: Case, config: Config) -> list[PolicySpec]:
    """Every policy (reactive-ideal included), sparkscale sizing for its forecast, and the batch profile on
    the spiky traces."""
    specs = [PolicySpec(p, p) for p in POLICIES]
    specs.append(PolicySpec(FORECAST, "sparkscale", replace(config, forecast_mode="act")))
    if not case.smooth:
        specs.append(PolicySpec(BATCH, "sparkscale", replace(config, **BATCH_PROFILE)))
    return specs


def table_rows(case: Case, r: ReplayResult) -> list[str]:
    return [
        f"| {case.name} | {name} | {s.cost_usd:.0f} | {fmt(s.cost_ratio_vs_oracle, '.2f')} | "
        f"{s.tau_u_pct:.2f} | {s.theta_u_pct:.2f} | {s.actions} | {fmt(s.reaction_s_p50, '.0f')} |"
        for name, s in r.scores.items()
    ]


def table(config: Config, quick: bool) -> tuple[list[str], list[str], dict[str, ReplayResult]]:
    lines = list(TABLE_HEAD)
    verdicts: list[str] = []
    results: dict[str, ReplayResult] = {}
    for case in cases(quick):
        r = replay(case.trace, case_specs(case, config), config, default_cluster())
        results[case.name] = r
        lines += table_rows(case, r)
        verdicts += targets(case, r)
    return lines, verdicts, results


# --- the work-conserving model ---------------------------------------------------------------------------
BACKLOG_HEAD = [
    "| trace | policy | cost $ | × oracle | τ_U % | queued GiB-h | wait p50 min | wait p95 min | wait max "
    "min |",
    "|---|---|---|---|---|---|---|---|---|",
]


def backlog_rows(case: Case, r: ReplayResult) -> list[str]:
    assert r.backlog_scores is not None
    out = []
    for name, s in r.scores.items():
        b = r.backlog_scores[name]
        out.append(
            f"| {case.name} | {name} | {s.cost_usd:.0f} | {fmt(s.cost_ratio_vs_oracle, '.2f')} | "
            f"{s.tau_u_pct:.2f} | {b.queued_gib_hours:.0f} | {b.wait_p50_min:.0f} | {b.wait_p95_min:.0f} | "
            f"{b.wait_max_min:.0f} |"
        )
    return out


def backlog_table(config: Config, quick: bool) -> list[str]:
    lines = [
        "Work-conserving model (`--backlog`): each step the arrivals (the trace) and the queue compete for "
        "the supply, what does not fit waits (FIFO) and runs later; the signals see arrivals + queue "
        "(pending = queued work). τ_U compares supply with the arrivals; queued GiB-hours = Σ queue × Δt; "
        "waits per GiB of work, over all of it (p50 0: most work ran at once).",
        "",
        *BACKLOG_HEAD,
    ]
    for case in cases(quick):
        specs = case_specs(case, config)
        r = replay(case.trace, specs, config, default_cluster(), params=SimParams(backlog=True))
        lines += backlog_rows(case, r)
    return lines


def untuned(config: Config, quick: bool) -> tuple[list[str], list[str]]:
    """One synthetic shape with a seed never used while tuning: the comparison table, the targets and the
    backlog table."""
    days = 3 if quick else 7
    gen = synthetic.GENERATORS[UNTUNED_SHAPE]
    case = Case(
        f"{UNTUNED_SHAPE} seed {UNTUNED_SEED}",
        gen(days=days, peak_gib=SYNTHETIC_PEAK_GIB, seed=UNTUNED_SEED),
        UNTUNED_SHAPE in SMOOTH,
    )
    specs = case_specs(case, config)
    r = replay(case.trace, specs, config, default_cluster(), seed=UNTUNED_SEED)
    rb = replay(
        case.trace, specs, config, default_cluster(), seed=UNTUNED_SEED, params=SimParams(backlog=True)
    )
    lines = [
        f"Untuned check: {UNTUNED_SHAPE}, {days} days, peak {SYNTHETIC_PEAK_GIB:.0f} GiB, seed "
        f"{UNTUNED_SEED} (the tables above use seed 1, the one the defaults were looked at with):",
        "",
        *TABLE_HEAD,
        *table_rows(case, r),
        "",
        *BACKLOG_HEAD,
        *backlog_rows(case, rb),
    ]
    return lines, targets(case, r)


def forecast_targets(case: Case, r: ReplayResult) -> list[str]:
    """Issue 14's targets, for the default (forecast off) and for forecast_mode act: from the first unserved
    minute to the first scale-out request p50 ≤ 90 s and max ≤ 150 s (where the trace has shortages); on the
    smooth traces τ_U ≤ 1 % at a cost ≤ 1.15 × the foresight bound; on the spiky ones τ_U ≤
    emr-custom-rules' at no more than its cost."""
    emr, out = r.scores["emr-custom-rules"], []
    for name in ("sparkscale", FORECAST):
        s = r.scores.get(name)
        if s is None:
            continue
        if s.reaction_s_p50 is not None and s.reaction_s_max is not None:
            met = s.reaction_s_p50 <= 90.0 and s.reaction_s_max <= 150.0
            within, ahead = strict_reactions(r, name)
            out.append(
                f"{case.name} [{name}]: from the first unserved minute to the first scale-out request p50 "
                f"{s.reaction_s_p50:.0f} s (≤ 90), max {s.reaction_s_max:.0f} s (≤ 150) → "
                f"{'met' if met else 'MISSED'} ({ahead} episode{'' if ahead == 1 else 's'} answered before "
                f"{'it' if ahead == 1 else 'they'} began, timed from the first step the nodes launching no "
                f"longer cover; counting only requests made within each episode: p50 "
                f"{fmt(median(within), '.0f')} s, max {fmt(max(within, default=None), '.0f')} s)"
            )
        if case.smooth:
            ratio = s.cost_usd / r.foresight_cost_usd if r.foresight_cost_usd else math.inf
            met = s.tau_u_pct <= 1.0 and ratio <= 1.15
            out.append(
                f"{case.name} [{name}]: τ_U {s.tau_u_pct:.2f} % (≤ 1 %) at {ratio:.3f} × the foresight bound "
                f"(≤ 1.15) → {'met' if met else 'MISSED'}"
            )
        else:
            ratio = s.cost_usd / emr.cost_usd if emr.cost_usd > 0 else math.inf
            met = s.tau_u_pct <= emr.tau_u_pct + 1e-9 and ratio <= 1.0 + 1e-9
            out.append(
                f"{case.name} [{name}]: τ_U {s.tau_u_pct:.2f} % vs emr-custom-rules {emr.tau_u_pct:.2f} % at "
                f"{ratio:.3f} × its cost (≤ 1) → {'met' if met else 'MISSED'}"
            )
    return out


def strict_reactions(r: ReplayResult, name: str) -> tuple[list[float], int]:
    """The reaction times counting only requests made within each episode (the rule before episodes answered
    before they began were timed from their first uncovered step), and how many episodes that rule changes."""
    run = r.runs[name]
    flags = [s < d for d, s in zip(r.demand, run.supply_gib, strict=True)]
    onset = exact_onsets(r.demand, run.supply_changes, r.step_s, lambda d, s: s < d)
    within = reaction_times(flags, run.scale_out_times_s, r.step_s, onset=onset)
    covered = [s + n >= d for d, s, n in zip(r.demand, run.supply_gib, run.launching_gib, strict=True)]
    times = sorted(run.scale_out_times_s)
    ahead = 0
    for first, _ in episodes(flags):
        t0 = onset(first)
        answered_in_first_step = any(t0 <= t <= first * r.step_s for t in times)
        if covered and covered[first] and not answered_in_first_step:
            ahead += 1
    return within, ahead


def targets(case: Case, r: ReplayResult) -> list[str]:
    sp, emr = r.scores["sparkscale"], r.scores["emr-custom-rules"]
    out = forecast_targets(case, r)
    ok_tau = sp.tau_u_pct <= emr.tau_u_pct + 1e-9
    out.append(
        f"{case.name}: τ_U {sp.tau_u_pct:.2f} % vs emr-custom-rules {emr.tau_u_pct:.2f} % → "
        f"{'met' if ok_tau else 'MISSED'}"
    )
    ratio = sp.cost_usd / emr.cost_usd if emr.cost_usd > 0 else math.inf
    verdict = "met" if ratio <= 0.70 else "MISSED"
    if ratio > 0.70:
        verdict += f" ({cost_context(r)})"
    out.append(
        f"{case.name}: cost {ratio:.2f} × emr-custom-rules (target ≤ 0.70, i.e. ≥ 30 % cheaper) → {verdict}"
    )
    profile = r.scores.get(BATCH)
    if profile is not None:
        p_ratio = profile.cost_usd / emr.cost_usd if emr.cost_usd > 0 else math.inf
        both = p_ratio <= 0.70 and profile.tau_u_pct <= emr.tau_u_pct + 1e-9
        settings = ", ".join(f"{k}={v:g}" for k, v in BATCH_PROFILE.items())
        out.append(
            f"{case.name}, batch profile ({settings}): cost {p_ratio:.3f} × emr-custom-rules, τ_U "
            f"{profile.tau_u_pct:.2f} % vs {emr.tau_u_pct:.2f} % (θ_U {profile.theta_u_pct:.2f} % vs "
            f"{emr.theta_u_pct:.2f} %) → "
            f"{'both met' if both else 'MISSED'}"
        )
    if case.smooth and sp.cost_ratio_vs_oracle is not None:
        out.append(
            f"{case.name} (smooth): cost {sp.cost_ratio_vs_oracle:.2f} × oracle (target ≤ 1.25) → "
            f"{'met' if sp.cost_ratio_vs_oracle <= 1.25 else 'MISSED'}"
        )
    return out


def cost_context(r: ReplayResult) -> str:
    """Why 0.70 × emr-custom-rules is or is not within reach on this trace. A policy that serves all the
    demand cannot cost less than the whole-node floor (ReplayResult.whole_node_floor_usd: the cheapest
    whole-node mix of every offering, zero delay), nor, with the model's start-up and decommission billing,
    less than the foresight bound (ReplayResult.foresight_cost_usd). Where emr-custom-rules itself serves all
    the demand (τ_U 0), the τ_U target obliges every policy to, so a floor above 0.70 × rules the target out;
    elsewhere a policy may leave demand unserved as often as emr-custom-rules does, and no bound applies."""
    emr, oracle = r.scores["emr-custom-rules"], r.scores["oracle"]
    if emr.cost_usd <= 0:
        return "emr-custom-rules costs nothing here"
    floor = (r.whole_node_floor_usd or oracle.cost_usd) / emr.cost_usd
    p = r.params or SimParams()
    foresight = (r.foresight_cost_usd or 0.0) / emr.cost_usd
    if floor > 0.70 and emr.tau_u_pct <= 0:
        return (
            "out of reach for any policy: emr-custom-rules serves all the demand here, and serving all of it "
            "with whole nodes of the cluster's offerings costs at least "
            f"{floor:.3f} × emr-custom-rules even with zero delay (the whole-node floor)"
        )
    if floor > 0.70:
        return (
            f"serving all the demand costs at least {floor:.2f} × emr-custom-rules even with zero delay (the "
            "whole-node floor): below 0.70 × only by leaving demand unserved, as emr-custom-rules does "
            f"{emr.tau_u_pct:.1f} % of the time"
        )
    why = (
        f"with zero start-up delay serving all demand costs at least {floor:.2f} × emr-custom-rules (the "
        f"whole-node floor); with perfect foresight but nodes billed {p.provisioning_s:.0f} s before they "
        f"are usable and {p.decommission_s:.0f} s after release, at least {foresight:.2f} ×"
    )
    if foresight > 0.70:
        why += (
            ", so below 0.70 × only by leaving demand unserved (emr-custom-rules does "
            f"{emr.tau_u_pct:.1f} % of the time)"
        )
    return why


# --- spot market: diversification and fallback under interruptions / shortfalls ---------------------------
def spot_table(config: Config, quick: bool) -> list[str]:
    days = 3 if quick else 7
    shapes = {
        "diurnal": synthetic.diurnal(days=days, peak_gib=SYNTHETIC_PEAK_GIB, seed=1),
        "bursty-batch": synthetic.bursty_batch(days=days, peak_gib=SYNTHETIC_PEAK_GIB, seed=1),
    }
    cluster = default_cluster().with_spot_risk(
        interruption_rate_per_node_hour=INTERRUPTIONS_PER_NODE_HOUR,
        shortfall_episodes_per_day=SHORTFALLS_PER_DAY,
        shortfall_duration_s=SHORTFALL_S,
    )
    base = config.to_dict()
    base.pop("group_bounds", None)
    no_fallback = {"spot_fallback_timeout_s": 10**9, "on_demand_fallback": False}

    def variant(name: str, share: float, fallback: bool) -> PolicySpec:
        raw = {**base, "max_share_per_instance_type": share, **({} if fallback else no_fallback)}
        return PolicySpec(name, "sparkscale", Config.from_mapping(raw), handle_interruptions=fallback)

    specs = [
        variant("sparkscale (no div, no fallback)", 1.0, False),
        variant(f"sparkscale (div {DIVERSIFIED_SHARE:g}, no fallback)", DIVERSIFIED_SHARE, False),
        variant("sparkscale (no div, fallback)", 1.0, True),
        variant(f"sparkscale (div {DIVERSIFIED_SHARE:g}, fallback)", DIVERSIFIED_SHARE, True),
        PolicySpec("emr-custom-rules", "emr-custom-rules"),
        PolicySpec("oracle", "oracle"),
    ]
    lines = [
        f"Spot market ({days}-day synthetic shapes, peak {SYNTHETIC_PEAK_GIB:.0f} GiB, seed 1): every SPOT "
        f"group gets {INTERRUPTIONS_PER_NODE_HOUR:g} interruption warnings per node-hour and "
        f"{SHORTFALLS_PER_DAY:g} capacity shortfalls a day of {SHORTFALL_S / 3600:g} h (no new node "
        f'launches). "div" = max_share_per_instance_type {DIVERSIFIED_SHARE:g} (else 1); "fallback" = '
        "spot_fallback_timeout_s 600 s + on_demand_fallback + the spot events handler (replacement in "
        "another pool); without it (timeout 10⁹ s, no on-demand, no events handler) EMR replaces a "
        "reclaimed node in its own group.",
        "",
        "| trace | policy | cost $ | × oracle | τ_U % | θ_U % | actions | interruptions | fallback "
        "decisions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for shape, trace in shapes.items():
        r = replay(trace, specs, config, cluster, seed=1)
        for name, s in r.scores.items():
            c = r.runs[name].counters
            lines.append(
                f"| {shape} | {name} | {s.cost_usd:.0f} | {fmt(s.cost_ratio_vs_oracle, '.2f')} | "
                f"{s.tau_u_pct:.2f} | {s.theta_u_pct:.2f} | {s.actions} | {c.get('interruptions', 0)} | "
                f"{c.get('decisions_with_fallback', 0)} |"
            )
    return lines


# --- heap-pressure reaction ----------------------------------------------------------------------------
def heap_reaction(config: Config, results: dict[str, ReplayResult]) -> tuple[list[str], list[str]]:
    threshold = heap_used_threshold_pct(config)
    lines = [
        f"Heap-pressure reaction: per episode of the model's executor heap used % above the heap alarm "
        f"threshold ({threshold:g} %), seconds from its start to sparkscale's first scale-out request "
        "(target ≤ 90 s). An episode that a scale-in or a spot reclaim started between two steps starts at "
        "that moment (see the replay's scores).",
        "",
        "| trace | episodes | answered | p50 s | max s |",
        "|---|---|---|---|---|",
    ]
    verdicts = []
    for name, r in results.items():
        run = r.runs["sparkscale"]
        flags = [not math.isnan(h) and h > threshold for h in run.heap_used_pct]
        n_ep = sum(1 for k, f in enumerate(flags) if f and (k == 0 or not flags[k - 1]))
        rt = heap_reaction_times(
            run.heap_used_pct,
            threshold,
            run.scale_out_times_s,
            r.step_s,
            heap_of=lambda d, s: heap_used_pct(d, s, SimParams()),
            demand=r.demand,
            supply_changes=run.supply_changes,
        )
        p50 = median(rt)
        mx = max(rt) if rt else None
        lines.append(f"| {name} | {n_ep} | {len(rt)} | {fmt(p50, '.0f')} | {fmt(mx, '.0f')} |")
        if rt:
            verdicts.append(
                f"{name}: heap reaction p50 {p50:.0f} s, max {mx:.0f} s (target ≤ 90 s) → {verdict(p50, mx)}"
            )
    return lines, verdicts


def verdict(p50: float | None, mx: float | None) -> str:
    if mx is not None and mx <= 90:
        return "met"
    return "p50 met, max MISSED" if p50 is not None and p50 <= 90 else "MISSED"


def write_docs(block: str, begin: str = BEGIN, end: str = END) -> None:
    text = BENCH_PAGE.read_text(encoding="utf-8")
    body = f"{begin}\n{block.rstrip()}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _m: body, text, count=1, flags=re.S)
    elif SECTION_BEGIN in text and SECTION_END in text:
        text = text.replace(SECTION_END, f"{body}\n{SECTION_END}", 1)
    else:
        raise SystemExit(f"{BENCH_PAGE} has no {SECTION_BEGIN} … {SECTION_END} markers")
    BENCH_PAGE.write_text(text, encoding="utf-8")


STREAM_HEAD = [
    "| stream | policy | cost $ | × oracle | p95 s behind | max s behind | % of time behind | fell behind "
    "| catch-up p50 / max s | actions |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def streaming_table(config: Config, quick: bool) -> list[str]:
    """The synthetic stream (seed 1, and UNTUNED_SEED never looked at) through sparkscale, EMR's custom rules
    and the oracle, scored by lag (replay/streaming.py)."""
    days = 2 if quick else 7
    stream = StreamParams()
    rows = []
    for seed in (1, UNTUNED_SEED):
        trace = synthetic_stream(days=days, seed=seed)
        r = run_streaming_replay(
            trace.resample(60),
            policies=list(STREAMING_POLICIES),
            config=config,
            cluster=default_cluster(),
            params=SimParams(),
            stream=stream,
            seed=seed,
        )
        for name, s in r.scores.items():
            catch = f"{fmt(s.catch_up_s_p50, ',.0f')} / {fmt(s.catch_up_s_max, ',.0f')}"
            end = " (still behind at the end)" if s.still_behind_at_end else ""
            rows.append(
                f"| streaming seed {seed}{' (untuned)' if seed == UNTUNED_SEED else ''} | {name} | "
                f"{s.cost_usd:,.2f} | {fmt(s.cost_ratio_vs_oracle, '.2f')} | {s.p95_s_behind:,.0f} | "
                f"{s.max_s_behind:,.0f}{end} | {s.time_behind_pct:.1f} | {s.falls_behind} | {catch} | "
                f"{s.actions} |"
            )
    return [
        f"Streaming: the synthetic stream, {days} days, peak 150,000 rows/s, "
        f"{stream.rows_per_s_per_node:,.0f} rows/s per 16-vCPU TASK node, CORE nodes "
        f"{stream.core_share:g} of that (the model: "
        "[Replay and demo](streaming.md#replay-and-demo)); seed 1 and seed "
        f"{UNTUNED_SEED}, never looked at while tuning. emr-custom-rules reads YARN memory only and a "
        "streaming job's memory does not move when it falls behind.",
        "",
        *STREAM_HEAD,
        *rows,
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--write-docs",
        action="store_true",
        default=os.environ.get(WRITE_DOCS_ENV, "") == "1",
        help=f"rewrite the replay block of docs/benchmarks.md (also: {WRITE_DOCS_ENV}=1, for `make bench`)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="3-day traces (a smoke run; never written to the docs)"
    )
    ap.add_argument("--profile", action="store_true", help="cProfile one 30-day sparkscale replay")
    ap.add_argument("--streaming", action="store_true", help="the streaming table only (its own block)")
    ap.add_argument(
        "--speed-only", action="store_true", help="only the speed table (never written to the docs)"
    )
    args = ap.parse_args()
    config = Config.from_mapping(BENCH_CONFIG)
    t0 = time.perf_counter()
    if args.streaming:
        stream_lines = streaming_table(config, args.quick)
        print("\n".join(stream_lines))
        print(f"\n(total {time.perf_counter() - t0:.1f} s)")
        if args.write_docs and not args.quick:
            write_docs("\n".join(stream_lines), STREAM_BEGIN, STREAM_END)
            print(f"{BENCH_PAGE.relative_to(REPO)}: streaming block rewritten")
        return 0
    speed_lines, _ = speed(config, profile=args.profile)
    print("\n".join(speed_lines), "\n", flush=True)
    if args.speed_only:
        return 0
    table_lines, verdicts, results = table(config, args.quick)
    print("\n".join(table_lines), "\n", flush=True)
    spot_lines = spot_table(config, args.quick)
    print("\n".join(spot_lines), "\n", flush=True)
    heap_lines, heap_verdicts = heap_reaction(config, results)
    print("\n".join(heap_lines), "\n", flush=True)
    backlog_lines = backlog_table(config, args.quick)
    print("\n".join(backlog_lines), "\n", flush=True)
    untuned_lines, untuned_verdicts = untuned(config, args.quick)
    print("\n".join(untuned_lines), "\n")
    stream_lines = streaming_table(config, args.quick)
    print("\n".join(stream_lines), "\n")
    print("Targets:")
    for v in verdicts + heap_verdicts:
        print(f"- {v}")
    print(f"Untuned ({UNTUNED_SHAPE} seed {UNTUNED_SEED}):")
    for v in untuned_verdicts:
        print(f"- {v}")
    print(f"\n(total {time.perf_counter() - t0:.1f} s)")
    if args.write_docs and not args.quick:
        block = "\n".join(
            [
                "### Replay (`benchmarks/bench_replay.py`)",
                "",
                f"Config: defaults with {', '.join(f'`{k}={v}`' for k, v in BENCH_CONFIG.items())}; default "
                "simulated cluster (2 × r5.2xlarge core = 96 GiB usable; SPOT r6g/r7g/r5 4xlarge, r5.2xlarge "
                "and ON_DEMAND r5.4xlarge task groups); default replay model (see "
                "[the model](replay.md#the-model-and-every-assumption-in-it)). Costs are TASK nodes only. "
                "Synthetic shapes: 7 days, peak 1024 GiB, seed 1. On the spiky traces "
                f"(SWIM, bursty-batch) the table also shows `{BATCH}`: "
                + ", ".join(f"`{k}={v:g}`" for k, v in BATCH_PROFILE.items())
                + ", a cost-first setting, not a default. Every trace also shows "
                f"`{FORECAST}`: `forecast_mode=act`, sizing for the demand forecast at now + lead time "
                "(not a default: the targets below say why).",
                "",
                *speed_lines,
                "",
                *table_lines,
                "",
                *spot_lines,
                "",
                *heap_lines,
                "",
                *backlog_lines,
                "",
                *untuned_lines,
                "",
                "Targets (sparkscale τ_U ≤ emr-custom-rules and ≥ 30 % cheaper; ≤ 1.25 × oracle on smooth "
                "traces; "
                "heap reaction ≤ 90 s):",
                "",
                *[f"- {v}" for v in verdicts + heap_verdicts],
                "",
                f"Untuned ({UNTUNED_SHAPE} seed {UNTUNED_SEED}):",
                "",
                *[f"- {v}" for v in untuned_verdicts],
            ]
        )
        write_docs(block)
        write_docs("\n".join(stream_lines), STREAM_BEGIN, STREAM_END)
        print(f"{BENCH_PAGE.relative_to(REPO)}: replay and streaming blocks rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
