"""The demand expected when nodes requested now would be usable. Pure: no clock, no I/O.

    lead time  = the cluster's own measured request -> usable delay (median of the last LEAD_SAMPLES
                 scale-outs, measured by next_state from ScalerState.pending_scale_out; DEFAULT_LEAD_S until
                 one was measured)
    horizon    = the age of the datapoint that drove the demand + the lead time
    demand     = the usable GiB the estimate says the cluster should have (the driving need's desired memory)

Two forecasts of the demand at now + lead time, and one rule to combine them:

- **trend** (always, from ScalerState.demand_samples: the samples of the last TREND_WINDOW_S): Theil-Sen. The
  slope is the median of the pairwise slopes, clipped to +-MAX_GROWTH_PER_S x max(the samples' median,
  SLOPE_FLOOR_GIB); the
  level at the newest sample is the median of the samples moved along that slope to it, so one sample alone
  (a spike, or a dip) moves neither. The projection is damped: level + slope x DAMPING_S x (1 - e^(-h /
  DAMPING_S)), so it never extrapolates a slope further than DAMPING_S however long the horizon. Fewer than
  MIN_TREND_SAMPLES samples: the current demand.
- **seasonal naive** (as EC2 predictive scaling does), from the 5-minute peak buckets of the demand history
  (DemandHistory, kept by the StateStore with a TTL, at most a week and a day): the peak one day and one week
  before the target time. A period counts only when it is *credible*: at least MIN_CHECK_BUCKETS of the last
  CHECK_S's completed buckets have a value one period earlier, and their median relative error is at most
  SEASONAL_TOLERANCE (the pattern repeated over the last half hour). So seasonal needs a day of history, and a
  random burst yesterday predicts nothing today unless today looked like yesterday so far.
- **combine**: the larger of the trend and the credible seasonal peaks (a forecast sized for the larger of
  what the recent trend and the repeating pattern say); only the trend when no period is credible.
- **seasonal shift** (setting forecast_seasonal = shift, instead of the two rules above when a period is
  credible): the demand now plus the period's change from now to the target time, scaled by today's level
  against the period's (the median ratio over the same completed buckets as the credibility check):

      current + (peak(target - period) - peak(now - period)) x median(actual(b) / peak(b - period))

  On a pattern that repeats up to a slowly drifting level (a diurnal day) it knows the ramp ahead without
  the headroom the larger-of rule buys: the peak of the target bucket a day earlier, taken whole, carries
  that day's noise, and the larger of two forecasts is biased up. The larger of the credible periods' shifts;
  the trend when none is credible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from statistics import median

from sparkscale.policy.model import (
    Cluster,
    Decision,
    DemandSample,
    Direction,
    Forecast,
    GroupStatus,
    PendingScaleOut,
    Sample,
    ScalerState,
    Signal,
)

DEFAULT_LEAD_S = 360.0  # EMR's usual request -> RUNNING time of a task node, until one was measured
LEAD_SAMPLES = 9  # the lead time is the median of this many measured delays
MAX_PENDING_S = 3600.0  # a scale-out not running after this measures nothing (spot shortfall, cancelled)
TREND_WINDOW_S = 600.0  # the trend's window
MAX_SAMPLES = 12  # at most this many samples in the window (the newest): 66 pairwise slopes at most
MIN_TREND_SAMPLES = 3
MAX_GROWTH_PER_S = 1.0 / 600.0  # |slope| <= max(median sample, SLOPE_FLOOR_GIB) per 10 minutes
SLOPE_FLOOR_GIB = 96.0  # one 4xlarge node of usable memory: a ramp from nothing may still grow
DAMPING_S = 600.0
BUCKET_S = 300
DAY_S = 86_400
WEEK_S = 7 * DAY_S
PERIODS_S = (DAY_S, WEEK_S)
HISTORY_KEEP_S = WEEK_S + DAY_S  # history older than this is never read (the store's TTL)
CHECK_S = 1800  # seasonal credibility: the last half hour's completed buckets
MIN_CHECK_BUCKETS = 4
SEASONAL_TOLERANCE = 0.25
SEASONAL_FLOOR_GIB = 48.0  # relative errors are taken against at least this much demand

# 5-minute bucket start (UTC) -> peak demand in it (GiB): what the seasonal forecast reads
DemandHistory = Mapping[datetime, float]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- lead time ----------------------------------------------------------------------------------------------
def lead_time_s(state: ScalerState) -> float:
    """The measured request -> usable delay: the median of the last measured ones, else DEFAULT_LEAD_S."""
    return median(state.lead_times_s) if state.lead_times_s else DEFAULT_LEAD_S


def measure_lead(
    previous: ScalerState, cluster: Cluster, decision: Decision, *, acted: bool, now: datetime
) -> tuple[tuple[float, ...], PendingScaleOut | None]:
    """lead_times_s and pending_scale_out after a decision (next_state). A pending scale-out is measured once
    the TASK groups run at least the nodes it requested: until the latest RUNNING group's status change after
    the request when the cluster says when (InstanceGroup.status_since), else until now (the first evaluation
    that saw them). A new scale-out replaces the pending one; a scale-in drops it (nothing to measure)."""
    leads, pending = previous.lead_times_s, previous.pending_scale_out
    if pending is not None:
        waited = (now - pending.at).total_seconds()
        running = sum(g.running for g in cluster.task_groups)
        if running >= pending.task_nodes:
            changes = [
                g.status_since
                for g in cluster.task_groups
                if g.status is GroupStatus.RUNNING
                and g.status_since is not None
                and pending.at <= g.status_since <= now
            ]
            usable = max(changes) if changes else now
            leads = (*leads, (usable - pending.at).total_seconds())[-LEAD_SAMPLES:]
            pending = None
        elif waited > MAX_PENDING_S:
            pending = None
    if acted and decision.direction is Direction.OUT:
        pending = PendingScaleOut(now, sum(t.target for t in decision.targets))
    elif acted and decision.direction is Direction.IN:
        pending = None
    return leads, pending


# --- demand samples -----------------------------------------------------------------------------------------
def sample_at(signal: Signal | None, samples: Mapping[Signal, Sample], now: datetime) -> datetime:
    """When the driving signal's datapoint was taken: its own sample's time (for the heap percentage, that of
    the summed heap datapoints it is computed from), else `now`."""
    if signal is Signal.HEAP_USED_PCT and Signal.HEAP_USED_BYTES in samples:
        return samples[Signal.HEAP_USED_BYTES].at
    if signal is not None and signal in samples:
        return samples[signal].at
    return now


def add_sample(samples: Sequence[DemandSample], new: DemandSample) -> tuple[DemandSample, ...]:
    """The trend window after `new`: in time order, one sample per datapoint time (the larger demand), only
    those within TREND_WINDOW_S of the newest, at most MAX_SAMPLES."""
    if samples and samples[-1].at == new.at:
        kept = [*samples[:-1], DemandSample(new.at, max(new.gib, samples[-1].gib))]
    elif not samples or samples[-1].at < new.at:
        kept = [*samples, new]
    else:  # an older datapoint (the driving signal changed): in its place
        kept = sorted([s for s in samples if s.at != new.at] + [new], key=lambda s: s.at)
    newest = kept[-1].at
    start = newest - timedelta(seconds=TREND_WINDOW_S)
    return tuple([s for s in kept if s.at >= start][-MAX_SAMPLES:])


# --- the two forecasts --------------------------------------------------------------------------------------
def trend(samples: Sequence[DemandSample], horizon_s: float) -> tuple[float, float]:
    """(projection at the newest sample + horizon_s, clipped slope in GiB/s): see the module docstring."""
    if not samples:
        return 0.0, 0.0
    if len(samples) < MIN_TREND_SAMPLES:
        return samples[-1].gib, 0.0
    t0 = samples[-1].at
    xs = [(s.at - t0).total_seconds() for s in samples]
    ys = [s.gib for s in samples]
    n = len(xs)
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(n) for j in range(i + 1, n) if xs[j] > xs[i]]
    slope = median(slopes) if slopes else 0.0
    level = median([y - slope * x for x, y in zip(xs, ys, strict=True)])
    limit = max(median(ys), SLOPE_FLOOR_GIB) * MAX_GROWTH_PER_S
    if abs(slope) > limit:
        slope = math.copysign(limit, slope)
        level = median([y - slope * x for x, y in zip(xs, ys, strict=True)])
    ahead = DAMPING_S * (1.0 - math.exp(-max(0.0, horizon_s) / DAMPING_S))
    return max(0.0, level + slope * ahead), slope


def bucket_start(t: datetime) -> datetime:
    """The start of the 5-minute bucket holding `t` (UTC)."""
    s = int((t - _EPOCH).total_seconds()) // BUCKET_S * BUCKET_S
    return _EPOCH + timedelta(seconds=s)


def _buckets(first: datetime, last: datetime) -> list[datetime]:
    n = int((last - first).total_seconds()) // BUCKET_S
    return [first + timedelta(seconds=BUCKET_S * i) for i in range(n + 1)]


def history_ranges(now: datetime, lead_s: float) -> tuple[tuple[datetime, datetime], ...]:
    """The bucket ranges (first, last bucket start, inclusive) `seasonal` reads at `now` with this lead: the
    last CHECK_S's completed buckets, and the same stretch up to the target time one day and one week
    before."""
    nb = bucket_start(now)
    first, last = nb - timedelta(seconds=CHECK_S), nb - timedelta(seconds=BUCKET_S)
    target = bucket_start(now + timedelta(seconds=lead_s))
    out = [(first, last)]
    for p in PERIODS_S:
        back = timedelta(seconds=p)
        out.append((first - back, target - back))
    return tuple(out)


def _credible_ratio(history: DemandHistory, now: datetime, back: timedelta) -> float | None:
    """The median ratio of the demand now to the period `back` earlier over the last CHECK_S, when that
    period is credible (its median relative error over at least MIN_CHECK_BUCKETS buckets is within
    SEASONAL_TOLERANCE); None when it is not (see the module docstring)."""
    nb = bucket_start(now)
    errors, ratios = [], []
    for b in _buckets(nb - timedelta(seconds=CHECK_S), nb - timedelta(seconds=BUCKET_S)):
        actual, past = history.get(b), history.get(b - back)
        if actual is not None and past is not None:
            errors.append(abs(actual - past) / max(actual, past, SEASONAL_FLOOR_GIB))
            ratios.append(actual / max(past, SEASONAL_FLOOR_GIB))
    if len(errors) >= MIN_CHECK_BUCKETS and median(errors) <= SEASONAL_TOLERANCE:
        return median(ratios)
    return None


def seasonal(history: DemandHistory, now: datetime, target_at: datetime) -> float | None:
    """The larger of the credible periods' peaks at target_at (one day, one week earlier); None when neither
    is credible (see the module docstring)."""
    if not history:
        return None
    best: float | None = None
    for p in PERIODS_S:
        back = timedelta(seconds=p)
        then = history.get(bucket_start(target_at) - back)
        if then is not None and _credible_ratio(history, now, back) is not None:
            best = then if best is None else max(best, then)
    return best


def seasonal_shift(
    history: DemandHistory, now: datetime, target_at: datetime, current_gib: float
) -> float | None:
    """The larger of the credible periods' shifted forecasts at target_at (module docstring, seasonal shift);
    None when no period is credible or a period lacks the buckets at now or at target_at."""
    if not history:
        return None
    nb = bucket_start(now)
    best: float | None = None
    for p in PERIODS_S:
        back = timedelta(seconds=p)
        then, base = history.get(bucket_start(target_at) - back), history.get(nb - back)
        if then is None or base is None:
            continue
        ratio = _credible_ratio(history, now, back)
        if ratio is not None:
            value = max(0.0, current_gib + (then - base) * ratio)
            best = value if best is None else max(best, value)
    return best


def combine(trend_gib: float, seasonal_gib: float | None) -> tuple[float, str]:
    """The forecast and what decided it: the larger of the trend and a credible seasonal peak."""
    if seasonal_gib is not None and seasonal_gib > trend_gib:
        return seasonal_gib, "seasonal"
    return trend_gib, "trend"


def forecast(
    *,
    now: datetime,
    state: ScalerState,
    sample: DemandSample,
    history: DemandHistory,
    seasonal_rule: str = "peak",
) -> Forecast:
    """The demand at now + lead time, from the trend window with `sample` added and the history.
    `seasonal_rule`: the setting forecast_seasonal (peak: the larger of trend and seasonal peak; shift: the
    seasonal shift when a period is credible, else the trend)."""
    lead = lead_time_s(state)
    age = max(0.0, (now - sample.at).total_seconds())
    samples = add_sample(state.demand_samples, sample)
    target_at = now + timedelta(seconds=lead)
    projected, slope = trend(samples, (target_at - samples[-1].at).total_seconds())
    if seasonal_rule == "shift":
        season = seasonal_shift(history, now, target_at, sample.gib)
        value, method = (projected, "trend") if season is None else (season, "seasonal")
    else:
        season = seasonal(history, now, target_at)
        value, method = combine(projected, season)
    if len(samples) < MIN_TREND_SAMPLES and season is None:
        method = "current"
    return Forecast(
        target_at=target_at,
        lead_time_s=round(lead, 3),
        signal_age_s=round(age, 3),
        current_gib=round(sample.gib, 6),
        trend_gib=round(projected, 6),
        slope_gib_per_s=round(slope, 9),
        seasonal_gib=None if season is None else round(season, 6),
        value_gib=round(value, 6),
        method=method,
    )
