"""Cost bounds that put a policy's cost in context (used by the benchmark, not by the scores).

The oracle serves every step's demand with zero delay, so it is the cost lower bound of the model with no
start-up time. A real node is billed from its request, `provisioning_s` before it is usable, until it is
terminated, `decommission_s` after it was released. The *foresight bound* is the oracle's node count billed
that way: a node usable at any time in [t, t + provisioning_s] was requested by t, and a node usable at any
time in [t − decommission_s, t] is not terminated before t, so at time t at least

    billed(t) = max(oracle nodes over [t − decommission_s, t + provisioning_s])

nodes are billed by any policy, however well it foresees demand, that has the oracle's nodes usable at every
step. With the oracle's single cheapest offering this is the least such a policy pays (a mix of smaller nodes
could round some steps more tightly; that is all the bound leaves out). A policy that leaves demand unserved
some of the time can cost less.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence


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


def foresight_cost_usd(
    oracle_usd_per_h: Sequence[float], *, step_s: float, provisioning_s: float, decommission_s: float
) -> float:
    """The foresight bound (module docstring) from the oracle's cost rate per step (USD per hour, one
    offering, so proportional to its node count): each step billed at the highest rate within
    decommission_s before and provisioning_s after it (in whole steps)."""
    if step_s <= 0:
        raise ValueError("step_s must be > 0")
    # whole steps only (rounded down): a partly covered step is not counted, so the bound stays a lower one
    before = math.floor(decommission_s / step_s + 1e-9)
    after = math.floor(provisioning_s / step_s + 1e-9)
    billed = windowed_max(oracle_usd_per_h, before=before, after=after)
    return sum(billed) * step_s / 3600.0
