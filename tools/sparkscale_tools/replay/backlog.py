"""The work-conserving model (`SimParams.backlog`, `sparkscale replay --backlog`): demand is work arriving,
and what does not fit in the supply waits and runs later instead of vanishing (Spark work queues in YARN when
memory is short).

Per step k, with arrivals a_k GiB (the trace's value), the queue q_k and the usable memory s_k sampled at
the step (the same sample the scores use):

    wanted_k = a_k + q_k,   served_k = min(s_k, wanted_k),   q_{k+1} = wanted_k − served_k

in GiB-steps (a GiB of memory for one step). Service is FIFO: the oldest queued work first, then the step's
own arrivals. A GiB that arrives in step k and is served in step k' waited (k' − k) steps; work served in its
own step waited 0. The policies' signals are computed from wanted_k instead of a_k (engine.World), so
allocated memory is what runs (served_k) and pending memory is what waits (q_{k+1}).

Scores (`BacklogScores`): queued GiB-hours = Σ_k q_{k+1} · Δt (equivalently, Σ over the work of GiB × hours
waited); p50 / p95 / max wait in minutes, over every GiB that arrived (weighted by GiB, so a p50 of 0 says
that most work ran at once); work still queued at the end counts with the wait it had so far (a lower bound)
and is reported as `left_gib`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

EPS_GIB = 1e-9  # a queue entry below this is served (floating-point residue of min/subtract)


@dataclass(frozen=True)
class BacklogScores:
    queued_gib_hours: float
    wait_p50_min: float
    wait_p95_min: float
    wait_max_min: float
    left_gib: float  # still queued when the trace ends

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backlog:
    """The FIFO queue of one policy's run: `step` once per scoring step, in order."""

    __slots__ = ("_k", "_queue", "queue_after", "queue_gib", "queued_gib_steps", "step_s", "waited")

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self._queue: deque[list[float]] = deque()  # [arrival step, GiB], oldest first
        self.queue_gib = 0.0  # q_k before the next step
        self.queued_gib_steps = 0.0
        self.waited: dict[int, float] = {}  # steps waited -> GiB served after that wait
        self.queue_after: list[float] = []  # q_{k+1} per step
        self._k = 0

    def wanted(self, arrival_gib: float) -> float:
        """a_k + q_k: what the step's work asks of YARN."""
        return arrival_gib + self.queue_gib

    def step(self, arrival_gib: float, supply_gib: float) -> float:
        """Serve step k (the next one) with `supply_gib`; returns the queue left for the next step."""
        k = self._k
        self._k = k + 1
        room = supply_gib if supply_gib > 0 else 0.0
        q, waited = self._queue, self.waited
        while q and room > EPS_GIB:
            entry = q[0]
            take = entry[1] if entry[1] < room else room
            w = k - int(entry[0])
            waited[w] = waited.get(w, 0.0) + take
            room -= take
            entry[1] -= take
            if entry[1] <= EPS_GIB:
                q.popleft()
        if arrival_gib > 0:
            take = arrival_gib if arrival_gib < room else room
            if take > 0:
                waited[0] = waited.get(0, 0.0) + take
            rest = arrival_gib - take
            if rest > EPS_GIB:
                q.append([float(k), rest])
        self.queue_gib = sum(e[1] for e in q) if q else 0.0
        self.queued_gib_steps += self.queue_gib
        self.queue_after.append(self.queue_gib)
        return self.queue_gib

    def scores(self) -> BacklogScores:
        waits = dict(self.waited)
        for arrived, gib in self._queue:  # censored at the end: the wait so far
            w = self._k - int(arrived)
            waits[w] = waits.get(w, 0.0) + gib
        to_min = self.step_s / 60.0
        return BacklogScores(
            queued_gib_hours=self.queued_gib_steps * self.step_s / 3600.0,
            wait_p50_min=weighted_quantile(waits, 0.50) * to_min,
            wait_p95_min=weighted_quantile(waits, 0.95) * to_min,
            wait_max_min=max((w for w, g in waits.items() if g > EPS_GIB), default=0) * to_min,
            left_gib=self.queue_gib,
        )


def weighted_quantile(weights: dict[int, float], q: float) -> float:
    """The smallest value v with at least a share `q` of the total weight at values <= v (0 if none)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    acc = 0.0
    for v in sorted(weights):
        acc += weights[v]
        if acc >= q * total - 1e-12 * total:
            return float(v)
    return float(max(weights))


def backlog_of(arrivals: Sequence[float], supply: Sequence[float], step_s: float) -> Backlog:
    """The queue of a run whose supply does not depend on it (oracle, static-peak), replayed afterwards."""
    b = Backlog(step_s)
    for a, s in zip(arrivals, supply, strict=True):
        b.step(a, s)
    return b
