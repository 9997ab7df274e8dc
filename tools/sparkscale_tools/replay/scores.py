"""Scores of one policy's run (see docs/replay.md): cost, and the SPEC Research Group elasticity metrics.

Over the run's total time T = K·Δt with demand d_k and supply s_k at step k:
  θ_U = 100/T · Σ max(d−s, 0)/max(d, 1 GiB) · Δt     (average relative under-provisioning, %)
  θ_O = 100/T · Σ max(s−d, 0)/max(d, 1 GiB) · Δt     (average relative over-provisioning, %)
  τ_U = 100/T · Σ [s < d] · Δt                        (share of time under-provisioned, %)
  τ_O = 100/T · Σ [s > d] · Δt                        (share of time over-provisioned, %)
Reaction: for each under-provisioning episode (a maximal run of steps with s < d), the time from its start
to the first scale-out request at or after it, if one comes before the episode ends; episodes that end
without a request (demand fell on its own, or the policy was at its maximum) have no reaction time. Demand
changes only at a step, but supply also drops between steps (nodes decommissioned or reclaimed): an episode
whose supply fell below the previous step's demand after that step starts at that moment (from the run's
supply changes), not at the next step, so a request made in between is its answer, not an earlier one's.
An episode answered before it began: when no request falls between its start and its first step, and the
supply plus the TASK nodes launching at that step (requested earlier, not yet usable) cover its demand, the
policy had already asked for enough; its reaction is measured from its first step those nodes do not cover
(the demand outgrew what was asked for) to the first request at or after it, and it has none when they cover
every step (docs/replay.md, "Scores and outputs").
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Scores:
    cost_usd: float
    cost_ratio_vs_oracle: float | None
    theta_u_pct: float
    theta_o_pct: float
    tau_u_pct: float
    tau_o_pct: float
    actions: int
    reaction_s_p50: float | None
    reaction_s_max: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def episodes(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Maximal runs of True as (first step, one past the last step)."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for k, f in enumerate(flags):
        if f and start is None:
            start = k
        elif not f and start is not None:
            out.append((start, k))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


Onset = Callable[[int], float]  # an episode's first step -> the time it started


def exact_onsets(
    demand: Sequence[float],
    supply_changes: Sequence[tuple[float, float]],
    step_s: float,
    short: Callable[[float, float], bool],
) -> Onset:
    """When an episode whose first sampled step is `first` really started: the earliest supply change within
    the step before it from which `short(demand, supply)` held up to that step; else the step itself.
    `supply_changes` are (time, supply after it), in time order; a change at a step's own time is part of
    that step's sample."""
    times = [t for t, _ in supply_changes]

    def onset(first: int) -> float:
        t0 = first * step_s
        if first == 0:
            return t0
        d, lo = demand[first - 1], t0 - step_s
        at = t0
        i = bisect.bisect_left(times, t0) - 1
        while i >= 0 and times[i] > lo and short(d, supply_changes[i][1]):
            at = times[i]
            i -= 1
        return at

    return onset


def reaction_times(
    flags: Sequence[bool],
    scale_out_times_s: Sequence[float],
    step_s: float,
    *,
    onset: Onset | None = None,
    covered: Sequence[bool] | None = None,
) -> list[float]:
    """Per episode of `flags`, seconds from its start (its first step, or `onset(first step)`) to the first
    scale-out request within it. With `covered` (per step: the supply plus the nodes launching cover the
    demand), an episode whose first step is covered and that has no request between its start and that step
    was answered before it began: it is timed from its first uncovered step instead, and skipped when it has
    none (the module docstring)."""
    times = sorted(scale_out_times_s)
    out: list[float] = []
    for first, end in episodes(flags):
        t0 = first * step_s if onset is None else onset(first)
        t1 = end * step_s
        i = bisect.bisect_left(times, t0)
        answered_in_first_step = i < len(times) and times[i] <= first * step_s
        if covered is not None and covered[first] and not answered_in_first_step:
            uncovered = next((k for k in range(first, end) if not covered[k]), None)
            if uncovered is None:
                continue  # what was asked for before it began covered all of it
            t0 = uncovered * step_s
            i = bisect.bisect_left(times, t0)
        if i < len(times) and times[i] < t1:
            out.append(times[i] - t0)
    return out


def covered_steps(
    demand: Sequence[float], supply: Sequence[float], launching: Sequence[float]
) -> list[bool] | None:
    """Per step, whether the supply plus the memory launching covers the demand (None without `launching`,
    as for the oracle and static-peak, which launch nothing)."""
    if len(launching) != len(demand):
        return None
    return [s + n >= d for d, s, n in zip(demand, supply, launching, strict=True)]


def median(xs: Sequence[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def score(
    *,
    demand: Sequence[float],
    supply: Sequence[float],
    step_s: float,
    cost_usd: float,
    oracle_cost_usd: float | None,
    actions: int,
    scale_out_times_s: Sequence[float],
    supply_changes: Sequence[tuple[float, float]] = (),
    launching: Sequence[float] = (),
) -> Scores:
    """`launching`: per step, the memory of nodes launched and not yet usable (RunRecord.launching_gib); with
    it an episode answered before it began is timed as the module docstring says."""
    if len(demand) != len(supply) or not demand:
        raise ValueError(f"demand ({len(demand)}) and supply ({len(supply)}) need the same, non-zero length")
    k = len(demand)
    under_rel = over_rel = 0.0
    n_under = n_over = 0
    flags: list[bool] = []
    for d, s in zip(demand, supply, strict=True):
        denom = d if d > 1.0 else 1.0
        if s < d:
            under_rel += (d - s) / denom
            n_under += 1
            flags.append(True)
        else:
            if s > d:
                over_rel += (s - d) / denom
                n_over += 1
            flags.append(False)
    # 100/T · Σ x·Δt = 100 · Σ x / K
    onset = exact_onsets(demand, supply_changes, step_s, lambda d, s: s < d)
    covered = covered_steps(demand, supply, launching)
    reactions = reaction_times(flags, scale_out_times_s, step_s, onset=onset, covered=covered)
    ratio = None
    if oracle_cost_usd is not None and oracle_cost_usd > 0:
        ratio = cost_usd / oracle_cost_usd
    elif oracle_cost_usd == 0 and cost_usd == 0:
        ratio = 1.0
    return Scores(
        cost_usd=cost_usd,
        cost_ratio_vs_oracle=ratio,
        theta_u_pct=100.0 * under_rel / k,
        theta_o_pct=100.0 * over_rel / k,
        tau_u_pct=100.0 * n_under / k,
        tau_o_pct=100.0 * n_over / k,
        actions=actions,
        reaction_s_p50=median(reactions),
        reaction_s_max=max(reactions) if reactions else None,
    )


def heap_reaction_times(
    heap_pct: Sequence[float],
    threshold_pct: float,
    scale_out_times_s: Sequence[float],
    step_s: float,
    *,
    heap_of: Callable[[float, float], float | None] | None = None,
    demand: Sequence[float] = (),
    supply_changes: Sequence[tuple[float, float]] = (),
) -> list[float]:
    """Heap-pressure reaction: per episode of the model's executor heap used % above `threshold_pct` (the
    stack's heap alarm threshold), seconds from its start to the first scale-out request within it. With
    `heap_of(demand, supply)` (the model's heap used %), the run's demand and supply changes, an episode
    that began between two steps starts when the supply fell (see `exact_onsets`)."""
    flags = [not math.isnan(h) and h > threshold_pct for h in heap_pct]
    onset = None
    if heap_of is not None:

        def pressed(d: float, s: float) -> bool:
            h = heap_of(d, s)
            return h is not None and h > threshold_pct

        onset = exact_onsets(demand, supply_changes, step_s, pressed)
    return reaction_times(flags, scale_out_times_s, step_s, onset=onset)
