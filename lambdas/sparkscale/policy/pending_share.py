"""A confirmed burst's scale-out buys a share of the memory waiting, not all of it (`pending_share_pct` < 100;
100, the default, leaves every scale-out as it was).

Why: when memory is short, Spark work waits in YARN's queue and runs later; it is not lost. Buying the whole
waiting memory starts every waiting container at once: the queue is gone a few minutes after the nodes are
usable, and the nodes then idle through the lead time they were billed for, the stabilization window and the
decommission. Buying a share runs the same work on fewer nodes, in turn, for longer: each node bought is busy
for more of the time it is billed. The price is that the work waits longer, and that a job that needs all of
its executors at once (or a level of demand that does not queue) is short for longer.

A wait no deeper than `pending_whole_multiple` times the capacity the bursts going on began with (the lowest
burst level's base) is bought whole: more than that waiting is a queue of work rather than one job's executors
(0, the default: every wait is). Beyond it, the memory bought for is that base plus the whole multiple plus
`pending_share_pct` of the rest of what waits now (the largest need at the target's fill, less the memory
allocated), never less than what is allocated. It is measured from the burst's base, not from what runs
now: what runs includes what earlier steps bought for the queue, and a share of the queue added to it at
every evaluation would keep adding until the queue is gone (nearly as much as buying it whole). As the queue
drains the memory bought for shrinks, and the scale-in stabilization window keeps the nodes while it does.

Applies only where the burst rule would buy the whole shortfall (policy/burst.py: the burst is confirmed and
not judged to end too soon); never to heap pressure or a stream behind, which are bought whole.
"""

from __future__ import annotations

from sparkscale.policy.context import Context
from sparkscale.policy.estimate import gib
from sparkscale.policy.planner import EPS
from sparkscale.policy.reasons import Reason, ReasonCode


def share_cap(ctx: Context, need_gib: float) -> tuple[float, Reason] | None:
    """The most memory this scale-out may add (≥ 0) and why, when `pending_share_pct` makes it less than
    `need_gib`; None when it does not bind (100 %, no burst going on, no signal, or the share covers it)."""
    cfg, cap = ctx.config, ctx.cap
    levels = ctx.state.burst_levels
    if cfg.pending_share_pct >= 100.0 or not levels or not ctx.est.needs:
        return None
    fill = cfg.yarn_memory_used_target_pct / 100.0
    demand = max(n.desired_gib for n in ctx.est.needs) * fill  # what runs and waits
    held = cap.held_gib
    running = min(demand, cap.running_gib) if held is None else held
    waiting = max(0.0, demand - running)
    base = min(level.base_gib for level in levels)
    share = cfg.pending_share_pct / 100.0
    whole = cfg.pending_whole_multiple * base
    if waiting <= whole:  # not a queue that deep: bought whole
        return None
    target = max(base + (whole + share * (waiting - whole)) / fill, running / fill)
    allowed = max(0.0, target - cap.counted_gib)
    if allowed >= need_gib - EPS:
        return None
    text = (
        f"Buying {cfg.pending_share_pct:g} % of the memory waiting (pending_share_pct) beyond {gib(whole)} "
        f"(pending_whole_multiple): {gib(waiting)} waits beyond the {gib(running)} running; the capacity the "
        f"burst began with ({gib(base)}) plus the part bought whole and that share asks for {gib(target)}, "
        f"{gib(allowed)} more than the {gib(cap.counted_gib)} counted, not the whole "
        f"shortfall ({gib(need_gib)}); the rest runs in turn on the nodes bought."
    )
    values = {
        "waiting_gib": waiting,
        "whole_gib": whole,
        "running_gib": running,
        "base_gib": base,
        "target_gib": target,
        "allowed_gib": allowed,
        "need_gib": need_gib,
        "pending_share_pct": cfg.pending_share_pct,
    }
    return allowed, Reason(ReasonCode.PENDING_SHARE, text, values)
