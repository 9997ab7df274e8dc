"""The planner's way down: which whole nodes to remove across TASK groups.

`plan_removal` gives back at most `memory_gib`, the most expensive memory (USD per GiB-hour)
first, whole nodes only, never more than asked (a node larger than what is left to remove is skipped),
within per-offer removable counts and a node limit. Diversification on the way down: a removal may not push
an instance type above its share of what remains, where the share applies to the type's memory above ONE of
its nodes (whole nodes cannot keep two balanced types within 50 % after removing one node, nor any limit at
small totals), unless it does not increase the largest overshoot (a type already above its share may lose
nodes, and others may go while that does not make it worse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sparkscale.policy.planner import EPS, Offer, Plan, allocations_of

FIT_GIB = 1e-6  # plan_removal takes a node at most this much larger than the memory left to remove


def plan_removal(
    *,
    memory_gib: float,
    offers: Sequence[Offer],
    max_nodes: int | None = None,
    max_share: float = 1.0,
    existing_gib_by_type: Mapping[str, float] | None = None,
) -> Plan:
    """Nodes to remove: at most `memory_gib` of usable memory, the most expensive USD per GiB-hour first.
    `offers[i].max_nodes` is how many nodes that group may lose (None: none).
    Allocations are removed nodes."""
    left = max(0.0, float(memory_gib))
    nodes_left = max_nodes if max_nodes is not None else 10**9
    remaining = dict(existing_gib_by_type or {})
    ordered = sorted(
        (o for o in offers if o.memory_gib > 0 and (o.max_nodes or 0) > 0),
        key=lambda o: (-o.usd_per_gib_hour, -o.memory_gib, o.key),
    )
    counts = [0] * len(ordered)
    share = min(1.0, max(0.0, max_share))
    limited = share < 1.0 - EPS  # without a share limit, any node that fits may go
    slack = _node_slack(offers, remaining) if limited else {}
    # One node at a time, always from the most expensive offer that may lose one now: removing a cheap node
    # can make room under the share limit for an expensive one that was blocked a moment before.
    while nodes_left > 0:
        for i, o in enumerate(ordered):
            if counts[i] >= (o.max_nodes or 0) or o.memory_gib > left + FIT_GIB:
                continue
            if limited:
                after = dict(remaining)
                after[o.instance_type] = after.get(o.instance_type, 0.0) - o.memory_gib
                if not _remaining_share_ok(remaining, after, share, slack):
                    continue
                remaining = after
            counts[i] += 1
            left -= o.memory_gib
            nodes_left -= 1
            break
        else:
            break
    return Plan(allocations_of(ordered, counts), max(0.0, float(memory_gib)))


def _node_slack(offers: Sequence[Offer], existing: Mapping[str, float]) -> dict[str, float]:
    """Per instance type, the memory of one of its nodes (the largest of its offers, removable or not);
    types with no offer get the largest node of any offer."""
    out: dict[str, float] = {}
    for o in offers:
        if o.memory_gib > 0:
            out[o.instance_type] = max(out.get(o.instance_type, 0.0), o.memory_gib)
    biggest = max(out.values(), default=0.0)
    for t in existing:
        out.setdefault(t, biggest)
    return out


def _overshoot(by_type: Mapping[str, float], share: float, slack: Mapping[str, float]) -> dict[str, float]:
    """Per type, GiB above its share of the total once one of its nodes is set aside (<= 0: within)."""
    total = sum(max(0.0, v) for v in by_type.values())
    return {t: max(0.0, v) - slack.get(t, 0.0) - share * total for t, v in by_type.items()}


def _remaining_share_ok(
    before: Mapping[str, float], after: Mapping[str, float], share: float, slack: Mapping[str, float]
) -> bool:
    """A removal may not push a type that was within its share (its memory above one node) above it, unless
    the largest overshoot does not grow. A type already above may stay above (it cannot always lose nodes)."""
    if share >= 1.0 - EPS:
        return True
    if sum(max(0.0, v) for v in after.values()) <= EPS:
        return True
    over_after = _overshoot(after, share, slack)
    over_before = _overshoot(before, share, slack)
    newly_above = any(v > 1e-6 and over_before.get(t, 0.0) <= 1e-6 for t, v in over_after.items())
    if not newly_above:
        return True
    return max(over_after.values()) <= max([0.0, *over_before.values()]) + 1e-6
