"""The $/GiB-hour planner: which whole nodes to add across TASK groups.

Adding (`plan_memory`): cover `memory_gib` of usable memory at the lowest USD per hour, in whole nodes, within
per-offer node limits, an optional total node limit and an optional USD/hour limit, with no instance type
holding more than `max_share` of the TASK memory (existing plus added; a type already above its share gets
nothing more). It is an exact branch-and-bound over offers sorted by USD per GiB-hour, seeded with the greedy
plan and every single-instance-type plan, so its answer is never worse than any of those. Under a share limit
an offer may get all its max_nodes, far more than the need asks for: keeping every type within its share can
take extra whole nodes (1 GiB asked, 50 %: 2 x 48 GiB balance 3 x 32 GiB); once a plan covers, the USD/hour
left to beat it bounds how much more memory a branch can add, which is what makes the share pruning bite. A
search budget (`max_steps` tree nodes) bounds the time on large inputs; the best plan found is then returned
and `exhausted` says so. When no plan can keep the share limit and cover the memory, the limit is relaxed (to
1.0) if that covers more, and a reason says so. When nothing can cover it, the plan with the least shortfall
(then the lowest cost) is returned: `shortfall_gib` > 0.

Lasting premiums (`premium_weight`): the cheapest plan per hour now is not the cheapest plan over the nodes'
lives. A node bought for an increment usually stays for hours, while the surplus of a rounded-up larger node
lasts only until demand grows into it (the next increment is smaller by that surplus) or the next scale-in. So
a dear small node (48 GiB at 21 % more per GiB-hour) bought to save rounding on a 20 GiB increment pays its
premium for as long as it stays, and the fleet fills with them. With `premium_weight` w >= 1 every node is
priced, for choosing only, at its USD/hour plus (w - 1) x its premium over the cheapest USD per GiB-hour among
the offers: its premium counts w times, the rounding once. A dear node is then chosen only where the rounding
it saves exceeds its premium over w times the surplus' life (w = 1: the cheapest plan per hour, as before).
Budgets, shares, node limits and the plan's reported cost stay in real USD.

Removing nodes is `removal.plan_removal`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sparkscale.policy.model import Market
from sparkscale.policy.reasons import gib

EPS = 1e-9
MAX_NODES_PER_OFFER = 5_000  # far above any EMR instance group; bounds the search on absurd inputs
DEFAULT_MAX_STEPS = 50_000  # search-tree nodes visited; ~0.1-0.3 s of CPU at most


@dataclass(frozen=True, slots=True)
class Offer:
    """Nodes one can add to (or remove from) one TASK group, or buy of one instance type (the CLI)."""

    key: str  # instance-group id (the policy) or instance type (the CLI)
    instance_type: str
    memory_gib: float  # usable memory of one node, GiB
    usd_per_hour: float  # price of one node-hour
    market: Market = Market.SPOT
    max_nodes: int | None = None  # most nodes to add (or remove); None: as many as could be useful

    @property
    def usd_per_gib_hour(self) -> float:
        return self.usd_per_hour / self.memory_gib if self.memory_gib > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Allocation:
    key: str
    instance_type: str
    market: Market
    nodes: int
    memory_gib: float  # nodes x memory per node
    usd_per_hour: float  # nodes x price per node-hour


@dataclass(frozen=True)
class Plan:
    allocations: tuple[Allocation, ...]  # only offers with nodes > 0, cheapest USD/GiB-hour first
    requested_gib: float
    share_relaxed: bool = False
    exhausted: bool = False  # the search budget ran out: the best plan found, not proven optimal
    reasons: tuple[str, ...] = ()

    @property
    def memory_gib(self) -> float:
        return sum(a.memory_gib for a in self.allocations)

    @property
    def usd_per_hour(self) -> float:
        return sum(a.usd_per_hour for a in self.allocations)

    @property
    def nodes(self) -> int:
        return sum(a.nodes for a in self.allocations)

    @property
    def usd_per_gib_hour(self) -> float:
        mem = self.memory_gib
        return self.usd_per_hour / mem if mem > 0 else 0.0

    @property
    def shortfall_gib(self) -> float:
        return max(0.0, self.requested_gib - self.memory_gib)

    @property
    def covers(self) -> bool:
        return self.shortfall_gib <= EPS

    def nodes_for(self, key: str) -> int:
        return sum(a.nodes for a in self.allocations if a.key == key)


def memory_by_type(allocations: Sequence[Allocation]) -> dict[str, float]:
    out: dict[str, float] = {}
    for a in allocations:
        out[a.instance_type] = out.get(a.instance_type, 0.0) + a.memory_gib
    return out


def share_ok(
    added_by_type: Mapping[str, float], existing_by_type: Mapping[str, float], max_share: float
) -> bool:
    """No instance type that is added to may hold more than max_share of the TASK memory after the addition,
    unless it held more already before (then it may get nothing more)."""
    if max_share >= 1.0 - EPS:
        return True
    total = sum(existing_by_type.values()) + sum(added_by_type.values())
    for t, added in added_by_type.items():
        if added <= EPS:
            continue
        have = existing_by_type.get(t, 0.0)
        if have + added > max(have, max_share * total) + 1e-6:
            return False
    return True


def _sorted(offers: Sequence[Offer]) -> list[Offer]:
    usable = [
        o
        for o in offers
        if o.memory_gib > 0 and o.usd_per_hour >= 0 and (o.max_nodes is None or o.max_nodes > 0)
    ]
    return sorted(usable, key=lambda o: (o.usd_per_gib_hour, -o.memory_gib, o.key))


def allocations_of(offers: Sequence[Offer], counts: Sequence[int]) -> tuple[Allocation, ...]:
    return tuple(
        Allocation(o.key, o.instance_type, o.market, n, n * o.memory_gib, n * o.usd_per_hour)
        for o, n in zip(offers, counts, strict=True)
        if n > 0
    )


@dataclass(frozen=True)
class _Limits:
    max_nodes: int
    max_usd: float
    share: float
    existing: Mapping[str, float]
    max_steps: int


class _Search:
    """Branch and bound: minimize (shortfall, USD/hour, nodes) over whole-node counts."""

    def __init__(
        self, need: float, offers: list[Offer], ub: list[int], limits: _Limits, real_usd: Sequence[float]
    ) -> None:
        """`offers` carry the prices the objective minimizes; `real_usd` the real USD per node-hour that the
        budget limits (the same, unless a premium weight priced the offers)."""
        self.need, self.offers, self.ub = need, offers, ub
        self.real_usd = list(real_usd)
        self.weighted = any(r != o.usd_per_hour for r, o in zip(self.real_usd, offers, strict=True))
        self.max_nodes, self.max_usd, self.share = limits.max_nodes, limits.max_usd, limits.share
        self.existing, self.max_steps = limits.existing, limits.max_steps
        self.existing_total = sum(limits.existing.values())
        self.added: dict[str, float] = {}  # memory added per instance type along the current search path
        self.steps = 0
        k = len(offers)
        self.suffix_mem = [0.0] * (k + 1)
        self.suffix_rate = [math.inf] * (k + 1)
        for i in range(k - 1, -1, -1):
            self.suffix_mem[i] = self.suffix_mem[i + 1] + offers[i].memory_gib * ub[i]
            self.suffix_rate[i] = min(self.suffix_rate[i + 1], offers[i].usd_per_gib_hour)
        self.best: list[int] = [0] * k
        self.best_key: tuple[float, float, int] = self._key_of(self.best) or (need, 0.0, 0)

    def _key_of(self, counts: Sequence[int]) -> tuple[float, float, int] | None:
        """The objective of a complete assignment, or None when it breaks a constraint."""
        nodes = sum(counts)
        if nodes > self.max_nodes:
            return None
        cost = sum(n * o.usd_per_hour for o, n in zip(self.offers, counts, strict=True))
        real = sum(n * usd for usd, n in zip(self.real_usd, counts, strict=True)) if self.weighted else cost
        if real > self.max_usd + 1e-9:
            return None
        added: dict[str, float] = {}
        mem = 0.0
        for o, n in zip(self.offers, counts, strict=True):
            if n:
                added[o.instance_type] = added.get(o.instance_type, 0.0) + n * o.memory_gib
                mem += n * o.memory_gib
        if not share_ok(added, self.existing, self.share):
            return None
        return (round(max(0.0, self.need - mem), 6), round(cost, 9), nodes)

    def offer(self, counts: Sequence[int]) -> None:
        key = self._key_of(counts)
        if key is not None and key < self.best_key:
            self.best_key, self.best = key, list(counts)

    def run(self) -> bool:
        """Search; True when the whole tree was explored (the result is optimal)."""
        counts = [0] * len(self.offers)
        self._dfs(0, 0.0, 0.0, 0, counts)
        return self.steps < self.max_steps

    def _dfs(self, i: int, mem: float, cost: float, nodes: int, counts: list[int]) -> None:
        if self.steps >= self.max_steps:
            return
        sf_best, cost_best, _ = self.best_key
        sf_lb = max(0.0, self.need - mem - self.suffix_mem[i])
        if sf_lb > sf_best + 1e-6:
            return
        if sf_lb >= sf_best - 1e-6:  # cannot beat the shortfall: must beat the cost
            rem = max(0.0, self.need - sf_best - mem)
            # (sf_best is rounded to 1e-6: a remainder below that is nothing, not a reason to prune)
            cost_lb = cost + (rem * self.suffix_rate[i] if rem > 1e-6 else 0.0)
            if cost_lb >= cost_best - 1e-9:
                return
        if self.share < 1.0 - EPS and not self._share_reachable(mem + self._most_more(i, cost)):
            return
        self.steps += 1
        if i == len(self.offers):
            self.offer(counts)
            return
        o = self.offers[i]
        hi = min(self.ub[i], self.max_nodes - nodes)
        usd = self.real_usd[i]
        if usd > 0 and math.isfinite(self.max_usd):
            # the budget is in real USD: the path's real cost (the objective's unless offers are weighted)
            real = sum(counts[j] * self.real_usd[j] for j in range(i)) if self.weighted else cost
            hi = min(hi, math.floor((self.max_usd - real) / usd + 1e-9))
        hi = max(hi, 0)
        cover = min(hi, max(0, math.ceil((self.need - mem) / o.memory_gib - 1e-9)))
        t = o.instance_type
        before = self.added.get(t, 0.0)
        for n in itertools.chain(range(cover, -1, -1), range(cover + 1, hi + 1)):
            counts[i] = n
            self.added[t] = before + n * o.memory_gib
            self._dfs(i + 1, mem + n * o.memory_gib, cost + n * o.usd_per_hour, nodes + n, counts)
            if self.steps >= self.max_steps:
                break
        counts[i] = 0
        self.added[t] = before

    def _most_more(self, i: int, cost: float) -> float:
        """The most memory offers i.. can still add: all their nodes, and once a plan covers the need, no more
        than what the USD/hour left to beat it buys at their cheapest USD per GiB-hour."""
        most = self.suffix_mem[i]
        sf_best, cost_best, _ = self.best_key
        rate = self.suffix_rate[i]
        if sf_best <= 0.0 and rate > 0.0 and math.isfinite(rate):
            most = min(most, max(0.0, cost_best - cost) / rate + 1e-6)
        return most

    def _share_reachable(self, most_added: float) -> bool:
        """False when a type already given nodes exceeds its share even if every remaining node were added."""
        total = self.existing_total + most_added
        for t, a in self.added.items():
            have = self.existing.get(t, 0.0)
            if a > EPS and have + a > max(have, self.share * total) + 1e-6:
                return False
        return True


def _upper_bounds(need: float, offers: Sequence[Offer], share: float) -> list[int]:
    """Per offer, the most nodes the search gives it. Without a share limit: its max_nodes, but no more than
    cover the need plus the largest node (more can only cost more). With one, more memory than the need can
    be what keeps every type within its share (whole nodes: 2 x 48 GiB of one type balance 3 x 32 GiB of
    another for a 1 GiB need), so a bounded offer keeps all its max_nodes, and an unbounded one gets enough
    to cover (need + largest node) / share: room to dilute the other types, not a proof (with unbounded
    offers, whole nodes of unrelated sizes may balance only at absurd totals)."""
    biggest = max((o.memory_gib for o in offers), default=0.0)
    limited = share < 1.0 - EPS
    reach = (need + biggest) / max(share, 0.01) if limited else need + biggest
    out = []
    for o in offers:
        useful = min(MAX_NODES_PER_OFFER, math.ceil(min(reach, 1e12) / o.memory_gib - 1e-9))
        if o.max_nodes is None:
            out.append(useful)
        else:
            out.append(min(o.max_nodes, MAX_NODES_PER_OFFER) if limited else min(o.max_nodes, useful))
    return out


def _single_type_plans(need: float, offers: list[Offer], ub: list[int], max_nodes: int) -> list[list[int]]:
    """For every instance type: fill its offers cheapest first until the need is covered (or they run out)."""
    plans = []
    for t in sorted({o.instance_type for o in offers}):
        counts = [0] * len(offers)
        left, nodes_left = need, max_nodes
        for i, o in enumerate(offers):
            if o.instance_type != t or left <= EPS:
                continue
            n = min(ub[i], nodes_left, max(0, math.ceil(left / o.memory_gib - 1e-9)))
            counts[i] = n
            left -= n * o.memory_gib
            nodes_left -= n
        plans.append(counts)
    return plans


def _greedy(need: float, offers: list[Offer], ub: list[int], max_nodes: int) -> list[int]:
    counts = [0] * len(offers)
    left, nodes_left = need, max_nodes
    for i, o in enumerate(offers):
        if left <= EPS:
            break
        n = min(ub[i], nodes_left, max(0, math.ceil(left / o.memory_gib - 1e-9)))
        counts[i] = n
        left -= n * o.memory_gib
        nodes_left -= n
    return counts


def _greedy_shared(need: float, offers: list[Offer], ub: list[int], limits: _Limits) -> list[int]:
    """One node at a time, the cheapest USD per GiB-hour whose type stays within its share of the projected
    total (existing + max(added, need)). When it covers the need, the final total is at least every projected
    total, so the plan keeps the share limit."""
    counts = [0] * len(offers)
    existing_total = sum(limits.existing.values())
    added: dict[str, float] = {}
    mem, nodes = 0.0, 0
    while mem < need - EPS and nodes < limits.max_nodes:
        for i, o in enumerate(offers):
            if counts[i] >= ub[i]:
                continue
            have = limits.existing.get(o.instance_type, 0.0)
            a = added.get(o.instance_type, 0.0) + o.memory_gib
            projected = existing_total + max(mem + o.memory_gib, need)
            if have + a <= max(have, limits.share * projected) + 1e-6:
                counts[i] += 1
                added[o.instance_type] = a
                mem += o.memory_gib
                nodes += 1
                break
        else:
            break  # no offer can take another node
    return counts


def weighted_offers(offers: Sequence[Offer], premium_weight: float) -> list[Offer]:
    """The offers priced for choosing: each node's USD/hour plus (premium_weight - 1) x its premium over the
    cheapest USD per GiB-hour among `offers` (see the module docstring). The order by USD per GiB-hour is
    kept (the weighted rate is w x rate - (w - 1) x cheapest rate, increasing in the rate for w >= 1)."""
    extra = max(0.0, premium_weight - 1.0)
    if extra <= EPS or not offers:
        return list(offers)
    cheapest = min(o.usd_per_gib_hour for o in offers)
    out = []
    for o in offers:
        premium = max(0.0, o.usd_per_hour - cheapest * o.memory_gib)
        out.append(replace(o, usd_per_hour=o.usd_per_hour + extra * premium))
    return out


def _solve(
    need: float, offers: list[Offer], limits: _Limits, premium_weight: float = 1.0
) -> tuple[list[int], bool]:
    ub = _upper_bounds(need, offers, limits.share)
    real_usd = [o.usd_per_hour for o in offers]
    offers = weighted_offers(offers, premium_weight)
    s = _Search(need, offers, ub, limits, real_usd)
    s.offer(_greedy(need, offers, ub, limits.max_nodes))
    if limits.share < 1.0 - EPS:
        s.offer(_greedy_shared(need, offers, ub, limits))
    for counts in _single_type_plans(need, offers, ub, limits.max_nodes):
        s.offer(counts)
    complete = s.run()
    return s.best, not complete


def plan_memory(
    *,
    memory_gib: float,
    offers: Sequence[Offer],
    max_share: float = 1.0,
    max_nodes: int | None = None,
    max_usd_per_hour: float | None = None,
    existing_gib_by_type: Mapping[str, float] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    premium_weight: float = 1.0,
) -> Plan:
    """Whole nodes covering `memory_gib` (usable GiB) at the lowest USD per hour, each offer's premium over
    the cheapest USD per GiB-hour counted `premium_weight` times. See the module docstring."""
    existing = dict(existing_gib_by_type or {})
    need = float(memory_gib) if math.isfinite(memory_gib) else 1e12
    need = min(max(0.0, need), 1e12)
    ordered = _sorted(offers)
    if need <= EPS or not ordered:
        reasons = () if need <= EPS else (f"No offer can add memory: {gib(need)} cannot be planned.",)
        return Plan((), need, reasons=reasons)
    limit_nodes = max_nodes if max_nodes is not None else 10**9
    limit_usd = max_usd_per_hour if max_usd_per_hour is not None else math.inf
    share = min(1.0, max(0.0, max_share))
    weight = premium_weight if math.isfinite(premium_weight) else 1.0
    limits = _Limits(limit_nodes, limit_usd, share, existing, max_steps)
    counts, exhausted = _solve(need, ordered, limits, weight)
    plan = Plan(allocations_of(ordered, counts), need, exhausted=exhausted)
    if not plan.covers and share < 1.0 - EPS:
        r_counts, r_exhausted = _solve(
            need, ordered, _Limits(limit_nodes, limit_usd, 1.0, existing, max_steps), weight
        )
        relaxed = Plan(allocations_of(ordered, r_counts), need, exhausted=r_exhausted)
        if relaxed.shortfall_gib < plan.shortfall_gib - 1e-6:
            reason = (
                f"The limit of {share * 100:.0f} % of task memory per instance type cannot be kept while "
                f"adding "
                f"{gib(need)} within the node and budget limits: relaxed to cover "
                f"{gib(relaxed.memory_gib)}."
            )
            return Plan(
                relaxed.allocations, need, share_relaxed=True, exhausted=r_exhausted, reasons=(reason,)
            )
    return plan
