"""Bursts: a shortfall that may be over before new nodes are usable buys a small first step, and the rest only
once it has lasted long enough to be worth it (`burst_first_step_nodes`, `burst_confirm_s`).

Why: a node requested now is usable about six minutes later and is billed from its request until it is
released (after the stabilization window). A burst that ends before then buys nothing but cost, and at its
start a burst that will last an hour looks the same as one that will last ten minutes. What does tell them
apart is how long the shortfall has already lasted: bursts that have lasted a few minutes are mostly the long
ones. So the first request of a shortfall episode is small (it meets the reaction target and serves a
shortfall of a node or two at once), and the whole shortfall is bought once the episode has lasted
`burst_confirm_s`.

A shortfall episode: the evaluations in a row where a signal beyond its deadband asks for more than the
capacity counted (running CORE + requested TASK nodes). It is tracked in ScalerState.shortage_since by
next_state, only while `burst_first_step_nodes` > 0 (otherwise the state is what it was without this module).
"""

from __future__ import annotations

from datetime import datetime

from sparkscale.config import Config
from sparkscale.policy.context import Context
from sparkscale.policy.estimate import Capacity, Estimate, gib
from sparkscale.policy.planner import EPS
from sparkscale.policy.reasons import Reason, ReasonCode


def short_of_memory(est: Estimate, cap: Capacity, config: Config) -> bool:
    """A signal beyond its deadband asks for more than the capacity counted (decide's scale-out condition)."""
    edge = 1.0 + config.deadband_pct / 100.0
    return any(n.ratio > edge and n.desired_gib > cap.counted_gib + EPS for n in est.needs)


def shortage_since(previous: datetime | None, *, short: bool | None, now: datetime) -> datetime | None:
    """When the current shortfall episode began: kept while short, `now` when one begins, None when over
    (or unknown: `short` None)."""
    if not short:
        return None
    return now if previous is None or previous > now else previous


def first_step(ctx: Context) -> tuple[int, Reason] | None:
    """The most nodes this scale-out may add while its shortfall episode is younger than burst_confirm_s, and
    why; None when the whole shortfall may be bought (the mechanism is off, or the episode is confirmed).

    One small request per unconfirmed episode: a second scale-out before confirmation adds nothing."""
    cfg = ctx.config
    if cfg.burst_first_step_nodes <= 0:
        return None
    since = ctx.state.shortage_since or ctx.now  # no episode yet: this evaluation starts one
    age = (ctx.now - since).total_seconds()
    if age >= cfg.burst_confirm_s:
        return None
    last = ctx.state.last_scale_out_at
    nodes = 0 if last is not None and last >= since else cfg.burst_first_step_nodes
    short = max(0.0, ctx.est.need_gib)
    text = (
        f"Burst not yet confirmed: short of memory for {age:.0f} s of the {cfg.burst_confirm_s} s after "
        f"which the whole shortfall ({gib(short)}) is bought; "
        + (
            f"at most {nodes} node{'s' if nodes != 1 else ''} now (burst_first_step_nodes)."
            if nodes
            else "its first step is already requested."
        )
    )
    values = {"episode_age_s": age, "confirm_s": float(cfg.burst_confirm_s), "first_step_nodes": float(nodes)}
    return nodes, Reason(ReasonCode.BURST_UNCONFIRMED, text, values)
