"""Cost bounds that put a policy's cost in context: printed with a replay and used by the benchmark, never
part of the scores. Both are lower bounds for any policy that serves all the demand (one that leaves demand
unserved some of the time can cost less).

*Whole-node floor*: per step, the cheapest set of whole nodes of the cluster's offerings, mixed as it likes,
whose usable memory covers the demand above core, with zero delay (an unbounded covering knapsack, solved
once for every whole GiB). Node sizes are rounded up and demand down to whole GiB, so it never exceeds the
true optimum. The oracle uses its single cheapest offering, so it can cost a little more: its last node is
rounded up where a smaller node might do.

*Foresight bound*: real nodes are billed from their request, `provisioning_s` before they are usable, until
they terminate, `decommission_s` after release. Whatever is usable at any time in [t, t + provisioning_s] was
requested by t, and whatever was usable at any time in [t − decommission_s, t] has not terminated before t,
so the nodes billed at t cover the largest demand of that window, and cost at least the floor's rate for it:

    billed(t) >= max(floor rate over [t − decommission_s, t + provisioning_s])

(the cheapest cover of the largest demand is the largest of the cheapest covers, since a cover of more also
covers less). That is the least a policy pays even if it knows every job in advance.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence


def windowed_max(values: Sequence[float], *, before: int, after: int) -> list[float]:
    """out[k] = max(values[k − before .. k + after]), clipped to the sequence (a monotonic deque, O(n))."""
    if before < 0 or after < 0:
        raise ValueError("before and after must be >= 0")
    n = len(values)
    out: list[float] = []
    window: deque[int] = deque()  # indices whose values decrease from the front
    nxt = 0  # the next index to enter the window
    for k in range(n):
        while nxt < n and nxt <= k + after:
            while window and values[window[-1]] <= values[nxt]:
                window.pop()
            window.append(nxt)
            nxt += 1
        while window[0] < k - before:
            window.popleft()
        out.append(values[window[0]])
    return out


def cheapest_cover_usd(need_gib: int, offers: Iterable[tuple[float, float]]) -> list[float]:
    """out[r] = the least USD per hour of whole nodes whose usable GiB (each size rounded up) add up to at
    least r, for r = 0..need_gib. `offers`: (usable GiB per node, USD per node-hour), unlimited of each."""
    sizes = [(max(1, math.ceil(size - 1e-9)), usd) for size, usd in offers if size > 0]
    if not sizes:
        raise ValueError("no offer with usable memory")
    best = [0.0] * (max(0, need_gib) + 1)
    for r in range(1, len(best)):
        best[r] = min(usd + best[max(0, r - size)] for size, usd in sizes)
    return best


def floor_rates(
    demand_gib: Sequence[float], *, core_gib: float, offers: Sequence[tuple[float, float]]
) -> list[float]:
    """USD per hour of the whole-node floor at each step (module docstring)."""
    above = [max(0, math.floor(d - core_gib + 1e-9)) for d in demand_gib]
    table = cheapest_cover_usd(max(above, default=0), offers)
    return [table[r] for r in above]


def whole_node_floor_usd(rates: Sequence[float], *, step_s: float) -> float:
    """The whole-node floor over the run, from its per-step rates (floor_rates)."""
    return sum(rates) * step_s / 3600.0


def foresight_cost_usd(
    rates: Sequence[float], *, step_s: float, provisioning_s: float, decommission_s: float
) -> float:
    """The foresight bound (module docstring) from per-step cover rates in USD per hour (floor_rates, or any
    rate that grows with the demand it covers): each step billed at the highest rate within decommission_s
    before and provisioning_s after it, in whole steps."""
    if step_s <= 0:
        raise ValueError("step_s must be > 0")
    # whole steps only (rounded down): a partly covered step is not counted, so the bound stays a lower one
    before = math.floor(decommission_s / step_s + 1e-9)
    after = math.floor(provisioning_s / step_s + 1e-9)
    billed = windowed_max(rates, before=before, after=after)
    return sum(billed) * step_s / 3600.0


def delayed_information_bound_usd(
    demand_gib: Sequence[float],
    *,
    core_gib: float,
    usd_per_gib_hour: float,
    step_s: float,
    delay_s: float,
    short_steps: int,
    grid_gib: float = 8.0,
) -> float:
    """A lower bound on the cost of any policy whose TASK memory at each step is a non-decreasing function of
    the demand `delay_s` earlier (what it saw when nodes usable now had to be requested), and that leaves the
    demand unserved in at most `short_steps` steps (docs/benchmarks.md, the settings' frontier).

    What it proves: no such policy reaches that shortfall for less, on this trace. What it does not: a policy
    that remembers more than the one delayed value (how long a burst has lasted, what earlier bursts did,
    the trend) is outside the class, as are sparkscale and EMR's rules; on one fixed trace such a policy can
    memorize the trace, so no bound over it says anything.

    Every step is made easier so that the bound stays below the true optimum: memory above core billed at
    `usd_per_gib_hour` (the cheapest offering's usable GiB-hour) only while usable, in fractions of a node;
    the first `delay_s` steps left out; the demand rounded down to `grid_gib` (a level on that grid serves a
    step when it is at least the rounded demand, and rounding any policy's level down to the grid costs no
    more and serves no fewer steps). It is the Lagrangian dual of that problem, max over λ of
    min_f [cost(f) + λ · (steps short(f) − short_steps)], solved exactly for each λ by dynamic programming
    over the observed values in increasing order (f non-decreasing): a lower bound for every λ."""
    if step_s <= 0 or grid_gib <= 0 or delay_s < 0:
        raise ValueError("step_s and grid_gib must be > 0, delay_s >= 0")
    import numpy as np  # noqa: PLC0415  (the replay extra brings it; the other bounds do without)

    delay = math.ceil(delay_s / step_s - 1e-9)
    seen = np.asarray(demand_gib[: max(0, len(demand_gib) - delay)], dtype=float)
    need = np.floor(np.maximum(0.0, np.asarray(demand_gib[delay:], dtype=float) - core_gib) / grid_gib)
    if need.size == 0:
        return 0.0
    levels = int(need.max()) + 1  # level l serves the steps whose need is <= l (l x grid_gib GiB)
    order = np.argsort(seen, kind="stable")
    xs, needs = seen[order], need[order].astype(int)
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    # per observed value: how many steps, and how many of them each level leaves short
    short_at = []
    for first, end in zip(starts, [*starts[1:], len(xs)], strict=True):
        counts = np.bincount(needs[first:end], minlength=levels)
        short_at.append(((end - first) - np.cumsum(counts), end - first))
    unit = usd_per_gib_hour * grid_gib * step_s / 3600.0  # one level for one step
    level_cost = np.arange(levels, dtype=float) * unit

    def dual(lam: float) -> float:
        best = np.zeros(levels)
        for short, n in short_at:
            best = np.minimum.accumulate(best) + n * level_cost + lam * short
        return float(best.min()) - lam * short_steps

    # the dual is concave in λ: a golden-section search on log λ; every λ gives a valid bound
    total = float(need.size)
    lo, hi = math.log(unit * 1e-3), math.log(unit * levels * total + 1.0)
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = dual(math.exp(a)), dual(math.exp(b))
    best = max(0.0, fa, fb)
    for _ in range(40):
        if fa < fb:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = dual(math.exp(b))
        else:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = dual(math.exp(a))
        best = max(best, fa, fb)
    return best
