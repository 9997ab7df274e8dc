"""Bursts: tell a burst that will outlast the provisioning delay from one that will not, and buy the whole
shortfall only for the first kind (`burst_first_step_nodes` > 0, the default; 0 turns it off).

Why: a node requested now is usable about six minutes later (the lead time) and is billed from its request
until it is released, after the stabilization window. A burst that ends before its nodes are usable buys
nothing but cost, and part of a shortfall bought does not make the cluster short of memory for less time. At
its start a burst that will last an hour looks the same as one that will last ten minutes; what tells them
apart is how long it has already lasted, and how long the cluster's earlier bursts went on once they had
lasted that long. So:

1. The first scale-out of a burst adds at most `burst_first_step_nodes` (it meets the reaction target, and a
   shortfall of a node or two is served at once); no more until the burst has lasted `burst_confirm_s`.
2. Then the whole shortfall is bought, unless the cluster's own history says otherwise: of its last
   bursts (at most HISTORY) that lasted at least as long as this one has, the median went on for less than
   the lead time + `burst_useful_s` more. Then nodes bought now would be usable for less than
   `burst_useful_s` before it ends: it holds at the first step, and asks again at every evaluation (a burst
   that goes on becomes one of the long ones). With fewer than MIN_HISTORY bursts in the history (a new
   cluster; the demo's single day), or fewer than MIN_LONGER of them that lasted as long, a burst is taken
   to go on for as long again as it has lasted (`burst_buy_without_history` false, the default; see
   without_history_s), so it is bought once it has lasted the lead time + `burst_useful_s`; true buys it
   as soon as it is confirmed. A held burst whose executors' heap is pressed again after its last request
   gets another first step (`burst_regrowth`, _step).

A burst: from the evaluation where a signal beyond its deadband asks for more than the capacity counted
(running CORE + requested TASK nodes) until the demand no longer needs more than the capacity counted when it
began (its base): so what was bought for it does not end it, only the demand falling does. A shortfall that
begins while a burst goes on (after what was bought for it covered it, or when memory runs out again: the
demand at the target's fill was within the capacity counted and is beyond it now) is a new burst on top of
it, with a first step of its own: memory running out again is answered within the reaction target. So is a
held burst whose need grows (`burst_regrowth`, regrown): once its last step is the lead time +
`burst_useful_s` old, a need beyond the one that step was asked for (a job joining it) is a new burst on top
(and scale_out gives a held burst whose executors' heap is pressed its first step again).
One predicate (starts_burst) says when a burst begins, for the state and the decision alike. Kept in
ScalerState (burst_levels, burst_short, burst_out_of_memory, burst_durations_s) by next_state, only while
`burst_first_step_nodes` > 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from statistics import median

from sparkscale.config import Config
from sparkscale.policy.context import Context
from sparkscale.policy.estimate import Capacity, Estimate, gib
from sparkscale.policy.forecast import lead_time_s
from sparkscale.policy.model import BurstLevel, BurstReading
from sparkscale.policy.planner import EPS
from sparkscale.policy.reasons import Reason, ReasonCode

HISTORY = 32  # the most burst durations kept (the cluster's recent bursts)
# fewer earlier bursts than this that lasted as long as this one: their median is no evidence (one long burst
# in the history would decide alone), and the burst is taken to go on for as long again, as with no history
MIN_LONGER = 2
MAX_LEVELS = 8  # the most bursts followed at once (one on top of another)
MIN_HISTORY = 4  # fewer bursts in the history than this: nothing to go by (without_history_s)


def read_burst(est: Estimate, cap: Capacity, config: Config) -> BurstReading | None:
    """What next_state needs to follow bursts: short of memory now (decide's scale-out condition), the
    largest need and the capacity counted. None when the mechanism is off or no signal reports."""
    if config.burst_first_step_nodes <= 0 or not est.needs:
        return None
    edge = 1.0 + config.deadband_pct / 100.0
    short = any(n.ratio > edge and n.desired_gib > cap.counted_gib + EPS for n in est.needs)
    demand = max(n.desired_gib for n in est.needs)
    return BurstReading(short, _out_of_memory(demand, cap.counted_gib, config), demand, cap.counted_gib)


def _out_of_memory(demand_gib: float, counted_gib: float, config: Config) -> bool:
    """The demand at the target's fill (what runs and waits, for YARN memory) is more than the capacity
    counted: memory runs out, not only the headroom."""
    return demand_gib * config.yarn_memory_used_target_pct / 100.0 > counted_gib + EPS


def going_on(
    levels: Sequence[BurstLevel], demand_gib: float, *, now: datetime, config: Config
) -> tuple[list[BurstLevel], list[float]]:
    """The bursts this demand keeps going (it needs more than their base, beyond the deadband), and how long
    each of the others lasted (they end now)."""
    edge = 1.0 + config.deadband_pct / 100.0
    kept: list[BurstLevel] = []
    ended: list[float] = []
    for level in levels:
        if level.since <= now and demand_gib > level.base_gib * edge + EPS:
            kept.append(level)
        else:
            ended.append(max(0.0, (now - level.since).total_seconds()))
    return kept, ended


def starts_burst(
    kept: Sequence[BurstLevel],
    was: tuple[bool, bool],
    reading: BurstReading,
    *,
    last_step_at: datetime | None,
    lead_s: float,
    now: datetime,
    config: Config,
) -> bool:
    """Does a new burst begin at this reading? The one rule next_burst (the state) and first_step (the
    decision) both follow. `kept`: the bursts still going on after this reading (going_on); `was`: the last
    evaluation's (short, out of memory); `last_step_at`: the last scale-out requested before this reading;
    `lead_s`: the lead time.

    Only when short of memory now, and: no burst goes on, or the last evaluation was not short, or memory
    runs out again (the demand at the target's fill was within the capacity counted and is beyond it now),
    or the newest burst is held and its need grew (regrown)."""
    if not reading.short:
        return False
    if not kept or not was[0] or (reading.out_of_memory and not was[1]):
        return True
    return config.burst_regrowth and regrown(
        kept[-1], reading.demand_gib, last_step_at=last_step_at, lead_s=lead_s, now=now, config=config
    )


def regrown(
    level: BurstLevel,
    demand_gib: float,
    *,
    last_step_at: datetime | None,
    lead_s: float,
    now: datetime,
    config: Config,
) -> bool:
    """A held burst whose need grew: a step was requested for it at least the lead time + burst_useful_s
    ago, and its largest need is now beyond (the deadband) the one that step was asked for.

    Why that long: a burst is held because the cluster's earlier bursts say it ends before nodes bought now
    would be useful for burst_useful_s. One that outlasts that since its last step, and needs more than then,
    has proved the history wrong: it gets a new first step (a job joining a long burst is answered within the
    reaction target). Any sooner, a slow ramp (SWIM's) would be bought node by node, which costs more than
    EMR's rules (docs/benchmarks.md, the frontier's burst rows)."""
    if last_step_at is None or last_step_at < level.since or level.need_gib <= 0:
        return False
    if (now - last_step_at).total_seconds() < lead_s + config.burst_useful_s:
        return False
    return demand_gib > level.need_gib * (1.0 + config.deadband_pct / 100.0) + EPS


def next_burst(
    levels: tuple[BurstLevel, ...],
    was: tuple[bool, bool],
    durations_s: tuple[float, ...],
    reading: BurstReading | None,
    *,
    last_step_at: datetime | None,
    stepped: bool,
    lead_s: float,
    now: datetime,
    config: Config,
) -> tuple[tuple[BurstLevel, ...], tuple[bool, bool], tuple[float, ...]]:
    """(burst_levels, (burst_short, burst_out_of_memory), burst_durations_s) after this evaluation. `was`:
    the last evaluation's (short, out of memory); `last_step_at`: the last scale-out requested before it;
    `stepped`: this evaluation requested one; `lead_s`: the lead time.

    A burst begins when starts_burst says so, on top of the bursts going on, and goes on while the demand
    needs more than its base (beyond the deadband). A step requested for the newest burst makes its need the
    one its growth is judged against (regrown). When a burst ends its duration joins the history (the last
    HISTORY kept). Nothing read (off, or no signal): no burst, the history kept."""
    if reading is None:
        return (), (False, False), durations_s
    kept, ended = going_on(levels, reading.demand_gib, now=now, config=config)
    if starts_burst(kept, was, reading, last_step_at=last_step_at, lead_s=lead_s, now=now, config=config):
        kept.append(BurstLevel(now, reading.counted_gib, reading.demand_gib))
    elif stepped and kept:
        kept[-1] = kept[-1]._replace(need_gib=reading.demand_gib)
    if ended:
        durations_s = (*durations_s, *ended)[-HISTORY:]
    return tuple(kept[-MAX_LEVELS:]), (reading.short, reading.out_of_memory), durations_s


def remaining_s(durations_s: Sequence[float], age_s: float) -> tuple[float, int] | None:
    """The median time the past bursts that lasted at least `age_s` went on after it, and how many there
    were; None when the history is shorter than MIN_HISTORY or none lasted that long (nothing to go by)."""
    if len(durations_s) < MIN_HISTORY:
        return None
    longer = [d - age_s for d in durations_s if d >= age_s]
    if not longer:
        return None
    return median(longer), len(longer)


def without_history_s(durations_s: Sequence[float], age_s: float, config: Config) -> float | None:
    """How long a burst that has lasted `age_s` is taken to go on when its history gives nothing to go by (it
    holds fewer than MIN_HISTORY bursts, or fewer than MIN_LONGER of them lasted as long): as long again
    (`burst_buy_without_history` false), or None (true: it is bought). None as well when the history speaks
    (remaining_s).

    Why as long again: with no bursts of its own to compare, what is known is only how long this one has
    lasted; of the bursts that have lasted a while, about half go on at least as long again (the median of a
    scale-free prior on durations, Gott's delta-t argument). Buying the whole shortfall of a burst that is
    two minutes old would wager on the long half with nothing to go by: on `make demo`'s single day, whose
    history starts empty, its first two large bursts (15 minutes each) were bought whole and cost twice EMR's
    rules. Held until it has lasted the lead time + burst_useful_s, a burst is bought only when it is as
    likely as not to outlast the nodes' start and their useful time. One earlier burst that lasted as long
    is no evidence either: its time alone would decide (the SWIM day's 07:10 spike was bought whole on it)."""
    if config.burst_buy_without_history:
        return None
    if len(durations_s) >= MIN_HISTORY and sum(1 for d in durations_s if d >= age_s) >= MIN_LONGER:
        return None
    return age_s


def _step_text(nodes: int) -> str:
    if not nodes:
        return "its first step is already requested."
    return f"at most {nodes} node{'s' if nodes != 1 else ''} now (burst_first_step_nodes)."


def _newest_since(ctx: Context) -> datetime:
    """When the newest burst going on after this evaluation's reading began; now when this evaluation starts
    one (starts_burst: the rule next_burst follows) or there is nothing to read."""
    state = ctx.state
    reading = read_burst(ctx.est, ctx.cap, ctx.config)
    if reading is None:
        return ctx.now
    kept, _ = going_on(state.burst_levels, reading.demand_gib, now=ctx.now, config=ctx.config)
    was = (state.burst_short, state.burst_out_of_memory)
    last, lead = state.last_scale_out_at, lead_time_s(state)
    if not kept or starts_burst(
        kept, was, reading, last_step_at=last, lead_s=lead, now=ctx.now, config=ctx.config
    ):
        return ctx.now
    return kept[-1].since


def first_step(
    ctx: Context, heap_pressure: Callable[[Context], Reason | None]
) -> tuple[int, Reason, Reason | None] | None:
    """The most nodes this scale-out may add, why, and the heap-pressure reason that gave a held burst its
    first step again; None when the whole shortfall may be bought (the mechanism is off, or the burst is
    confirmed and its history does not say it ends too soon). `heap_pressure`: scale_out's heap-pressure
    rule, asked only of a burst held at its first step (`burst_regrowth`)."""
    cfg, state = ctx.config, ctx.state
    if cfg.burst_first_step_nodes <= 0:
        return None
    since = _newest_since(ctx)
    age = max(0.0, (ctx.now - since).total_seconds())
    short = gib(max(0.0, ctx.est.need_gib))
    if age < cfg.burst_confirm_s:
        nodes, step, pressed = _step(ctx, since, heap_pressure)
        text = (
            f"Burst not yet confirmed: short of memory for {age:.0f} s of the {cfg.burst_confirm_s} s after "
            f"which the whole shortfall ({short}) is bought; {step}"
        )
        values = {
            "burst_age_s": age,
            "confirm_s": float(cfg.burst_confirm_s),
            "first_step_nodes": float(nodes),
        }
        return nodes, Reason(ReasonCode.BURST_UNCONFIRMED, text, values), pressed
    lead = lead_time_s(state)
    assumed = without_history_s(state.burst_durations_s, age, cfg)
    past = remaining_s(state.burst_durations_s, age) if assumed is None else (assumed, 0)
    if past is None or past[0] >= lead + cfg.burst_useful_s:
        return None
    left, count = past
    n = len(state.burst_durations_s)
    if assumed is None:
        why = f"the {count} earlier bursts that lasted as long went on for a median {left:.0f} s more"
    elif n >= MIN_HISTORY:
        why = (
            f"fewer than {MIN_LONGER} of the {n} earlier bursts lasted as long, so it is taken to go on "
            f"for as long again, {left:.0f} s more (burst_buy_without_history false)"
        )
    else:
        why = (
            f"with {n} earlier burst{'s' if n != 1 else ''} to go by (fewer than {MIN_HISTORY}) it is taken "
            f"to go on for as long again, {left:.0f} s more (burst_buy_without_history false)"
        )
    nodes, step, pressed = _step(ctx, since, heap_pressure)
    text = (
        f"Burst likely over before new nodes are useful: it has lasted {age:.0f} s, and {why}, less than "
        f"the lead time {lead:.0f} s + burst_useful_s {cfg.burst_useful_s} s; the whole shortfall ({short}) "
        "is not bought, " + step
    )
    values = {
        "burst_age_s": age,
        "confirm_s": float(cfg.burst_confirm_s),
        "first_step_nodes": float(nodes),
        "median_remaining_s": left,
        "bursts": float(count),
        "lead_time_s": lead,
    }
    return nodes, Reason(ReasonCode.BURST_ENDS_TOO_SOON, text, values), pressed


def _step(
    ctx: Context, since: datetime, heap_pressure: Callable[[Context], Reason | None]
) -> tuple[int, str, Reason | None]:
    """A held burst's step: its first step's nodes unless one was requested since it began; then none,
    unless its executors' heap is pressed since (`burst_regrowth`): in a burst held at its first step memory
    never stops running out, so "memory runs out again" cannot tell that its need outgrew what was asked (a
    job joining it); the heap can: it falls back once the first step's nodes run and is pressed again when
    more work arrives. The nodes, the sentence that ends the reason, and the heap-pressure reason if any."""
    cfg, last = ctx.config, ctx.state.last_scale_out_at
    if last is None or last < since:
        return cfg.burst_first_step_nodes, _step_text(cfg.burst_first_step_nodes), None
    pressed = heap_pressure(ctx) if cfg.burst_regrowth else None
    if pressed is None:
        return 0, _step_text(0), None
    step = "the executors' heap is pressed again since the last request: " + _step_text(
        cfg.burst_first_step_nodes
    )
    return cfg.burst_first_step_nodes, step, pressed
