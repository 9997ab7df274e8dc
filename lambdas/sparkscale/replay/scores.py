"""Scores of one policy's run (see the README): cost, and the SPEC Research Group elasticity metrics.

Over the run's total time T = K·Δt with demand d_k and supply s_k at step k:
  θ_U = 100/T · Σ max(d−s, 0)/max(d, 1 GiB) · Δt     (average relative under-provisioning, %)
  θ_O = 100/T · Σ max(s−d, 0)/max(d, 1 GiB) · Δt     (average relative over-provisioning, %)
  τ_U = 100/T · Σ [s < d] · Δt                        (share of time under-provisioned, %)
  τ_O = 100/T · Σ [s > d] · Δt                        (share of time over-provisioned, %)
Reaction: for each under-provisioning episode (a maximal run of steps with s < d), the time from its first
step to the first scale-out request at or after it, if one comes before the episode ends; episodes that end
without a request (demand fell on its own, or the policy was at its maximum) have no reaction time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
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


def reaction_times(flags: Sequence[bool], scale_out_times_s: Sequence[float], step_s: float) -> list[float]:
    """Per episode of `flags`, seconds from its first step to the first scale-out request within it."""
    times = sorted(scale_out_times_s)
    out: list[float] = []
    for first, end in episodes(flags):
        t0, t1 = first * step_s, end * step_s
        i = bisect.bisect_left(times, t0)
        if i < len(times) and times[i] < t1:
            out.append(times[i] - t0)
    return out


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
) -> Scores:
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
    reactions = reaction_times(flags, scale_out_times_s, step_s)
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
    heap_pct: Sequence[float], threshold_pct: float, scale_out_times_s: Sequence[float], step_s: float
) -> list[float]:
    """Heap-pressure reaction: per episode of the model's executor heap used % above `threshold_pct` (the
    stack's heap alarm threshold), seconds to the first scale-out request within it."""
    flags = [not math.isnan(h) and h > threshold_pct for h in heap_pct]
    return reaction_times(flags, scale_out_times_s, step_s)
