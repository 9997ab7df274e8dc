"""policy/forecast.py and the policy's use of it (forecast_mode). Worked numbers in the comments.

Constants used below: TREND_WINDOW_S 600, DAMPING_S 600, MAX_GROWTH_PER_S 1/600 (of the median sample),
DEFAULT_LEAD_S 360; a horizon of 360 s moves the projection by slope x 600 x (1 - e^-0.6) = slope x
270.7128 s.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import NOW, ago, cfg, cluster, group, metrics, targets, yarn
from sparkscale.config import ConfigError
from sparkscale.policy import Direction, GroupStatus, ReasonCode, ScalerState, decide, next_state
from sparkscale.policy.decide import evaluate
from sparkscale.policy.forecast import (
    DEFAULT_LEAD_S,
    bucket_start,
    forecast,
    history_ranges,
    lead_time_s,
    measure_lead,
    seasonal,
    seasonal_shift,
    trend,
)
from sparkscale.policy.model import Decision, DemandSample, GroupTarget, Market, PendingScaleOut
from sparkscale.records import decision_to_dict

AHEAD_360 = 600.0 * (1.0 - math.exp(-0.6))  # 270.7128 s


def samples(values, step=120):
    """Samples ending at NOW, `step` s apart."""
    n = len(values)
    return tuple(DemandSample(ago(step * (n - 1 - i)), float(v)) for i, v in enumerate(values))


# --- trend ------------------------------------------------------------------------------------------------
def test_a_linear_ramp_is_projected_along_its_damped_slope():
    # 1000 + 0.5 GiB/s over 600 s: 1000, 1060, ..., 1300 at NOW. Slope 0.5 (under the clip 1150/600 =
    # 1.92), level 1300; 360 s ahead: 1300 + 0.5 x 270.7128 = 1435.356
    value, slope = trend(samples([1000 + 60 * i for i in range(6)]), 360)
    assert slope == pytest.approx(0.5)
    assert value == pytest.approx(1300 + 0.5 * AHEAD_360)
    assert value == pytest.approx(1435.356, abs=1e-3)


def test_a_spike_moves_neither_the_slope_nor_the_level():
    # five samples of 1000 and one of 5000: 10 pairwise slopes of 0, 5 positive -> median 0; level = median
    # of (1000 x 5, 5000) = 1000: the spike is clipped away
    value, slope = trend(samples([1000] * 5 + [5000]), 360)
    assert (value, slope) == (pytest.approx(1000.0), 0.0)


def test_a_steep_ramp_has_its_slope_clipped():
    # 0, 1200, ..., 4800 over 480 s: slope 10 GiB/s > the clip (median sample 2400) / 600 = 4 GiB/s; the
    # level along the clipped slope = median(0+1920, 1200+1440, 2400+960, 3600+480, 4800) = 3360;
    # + 4 x 270.7128 = 4442.85
    value, slope = trend(samples([0, 1200, 2400, 3600, 4800]), 360)
    assert slope == pytest.approx(4.0)
    assert value == pytest.approx(3360 + 4 * AHEAD_360)
    assert value == pytest.approx(4442.85, abs=1e-2)


def test_too_few_samples_forecast_the_current_demand():
    assert trend(samples([100, 900]), 360) == (900.0, 0.0)
    assert trend((), 360) == (0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e5), min_size=1, max_size=12), st.floats(0, 3600))
def test_the_trend_is_never_negative_and_never_beyond_the_clipped_slope(values, horizon):
    value, slope = trend(samples(values, step=50), horizon)
    assert value >= 0.0
    level_cap = max(*values, 96.0) / 600.0 + 1e-9
    assert abs(slope) <= level_cap


# --- seasonal ---------------------------------------------------------------------------------------------
def _day(recent, yesterday, target_yesterday):
    """History: the last half hour's 6 completed buckets, the same a day before, and a day before the
    target's bucket (NOW + 360 s)."""
    nb = bucket_start(NOW)
    day = timedelta(days=1)
    h = {}
    for i, (r, y) in enumerate(zip(recent, yesterday, strict=True)):
        b = nb - timedelta(seconds=300 * (6 - i))
        h[b], h[b - day] = float(r), float(y)
    h[bucket_start(NOW + timedelta(seconds=360)) - day] = float(target_yesterday)
    return h


def test_seasonal_with_a_day_of_history_that_repeats():
    # the last half hour is within 10 % of a day before (median error <= 25 %): credible; the target's bucket
    # a day before held 2000 GiB
    h = _day([1000, 1100, 1000, 1200, 1100, 1000], [1050, 1000, 1100, 1150, 1000, 1050], 2000)
    assert seasonal(h, NOW, NOW + timedelta(seconds=360)) == 2000.0
    fc = forecast(now=NOW, state=ScalerState(), sample=DemandSample(NOW, 1000.0), history=h)
    assert (fc.value_gib, fc.method, fc.seasonal_gib) == (2000.0, "seasonal", 2000.0)


def test_seasonal_is_not_believed_when_yesterday_looked_different():
    # yesterday's last half hour was half of today's: median relative error 0.5 > 0.25
    h = _day([1000] * 6, [500] * 6, 2000)
    assert seasonal(h, NOW, NOW + timedelta(seconds=360)) is None
    assert seasonal({}, NOW, NOW) is None


def test_history_ranges_cover_what_seasonal_reads():
    ranges = history_ranges(NOW, 360)
    nb = bucket_start(NOW)
    assert ranges[0] == (nb - timedelta(seconds=1800), nb - timedelta(seconds=300))
    assert ranges[1][1] == bucket_start(NOW + timedelta(seconds=360)) - timedelta(days=1)
    assert ranges[2][0] == nb - timedelta(seconds=1800) - timedelta(days=7)


def _shifted_day(recent, yesterday, base_yesterday, target_yesterday):
    """_day, plus a day before the bucket holding NOW (what the shift starts from)."""
    h = _day(recent, yesterday, target_yesterday)
    h[bucket_start(NOW) - timedelta(days=1)] = float(base_yesterday)
    return h


def test_seasonal_shift_adds_yesterdays_change_scaled_to_today():
    # today runs at 1.25 x yesterday (1000 against 800: median error 0.2 <= 0.25, credible); yesterday went
    # from 800 now to 1200 at the target time: 1000 + 400 x 1.25 = 1500. The peak rule says 1200, the
    # level yesterday, and misses that today is higher
    h = _shifted_day([1000] * 6, [800] * 6, 800, 1200)
    target = NOW + timedelta(seconds=360)
    assert seasonal_shift(h, NOW, target, 1000.0) == pytest.approx(1500.0)
    assert seasonal(h, NOW, target) == 1200.0
    shift = forecast(
        now=NOW, state=ScalerState(), sample=DemandSample(NOW, 1000.0), history=h, seasonal_rule="shift"
    )
    peak = forecast(now=NOW, state=ScalerState(), sample=DemandSample(NOW, 1000.0), history=h)
    assert (shift.value_gib, shift.method) == (pytest.approx(1500.0), "seasonal")
    assert (peak.value_gib, peak.method) == (1200.0, "seasonal")


def test_seasonal_shift_forecasts_a_fall_the_peak_rule_does_not():
    # yesterday fell from 800 to 600 over the lead time: 1000 - 200 x 1.25 = 750, below the demand now; the
    # peak rule keeps the larger of the trend (1000 now) and 600
    h = _shifted_day([1000] * 6, [800] * 6, 800, 600)
    now_sample = DemandSample(NOW, 1000.0)
    shift = forecast(now=NOW, state=ScalerState(), sample=now_sample, history=h, seasonal_rule="shift")
    peak = forecast(now=NOW, state=ScalerState(), sample=now_sample, history=h)
    assert shift.value_gib == pytest.approx(750.0)
    assert peak.value_gib == 1000.0


def test_seasonal_shift_falls_back_to_the_trend():
    # not credible (yesterday half of today), or no bucket a day before now: the trend (here the demand now)
    target = NOW + timedelta(seconds=360)
    assert seasonal_shift(_shifted_day([1000] * 6, [500] * 6, 500, 2000), NOW, target, 1000.0) is None
    assert seasonal_shift(_day([1000] * 6, [900] * 6, 2000), NOW, target, 1000.0) is None
    assert seasonal_shift({}, NOW, target, 1000.0) is None
    h = _shifted_day([1000] * 6, [500] * 6, 500, 2000)
    fc = forecast(
        now=NOW, state=ScalerState(), sample=DemandSample(NOW, 1000.0), history=h, seasonal_rule="shift"
    )
    assert (fc.value_gib, fc.method, fc.seasonal_gib) == (1000.0, "current", None)


def test_the_setting_chooses_the_seasonal_rule_in_decide():
    c, m = cluster(group("ig-a", requested=2)), metrics(**yarn(192, 95))
    now_gib = run(c, m, mode="act").forecast.current_gib
    h = _shifted_day([now_gib] * 6, [0.8 * now_gib] * 6, 0.8 * now_gib, 0.8 * now_gib + 100)
    peak = decide(
        now=NOW, cluster=c, metrics=m, config=cfg(forecast_mode="act"), state=ScalerState(), history=h
    )
    shift = decide(
        now=NOW,
        cluster=c,
        metrics=m,
        config=cfg(forecast_mode="act", forecast_seasonal="shift"),
        state=ScalerState(),
        history=h,
    )
    assert peak.forecast is not None
    assert shift.forecast is not None
    # the peak rule: the larger of the trend (the demand now) and yesterday's peak at the target time
    assert peak.forecast.value_gib == pytest.approx(max(now_gib, 0.8 * now_gib + 100))
    assert shift.forecast.value_gib == pytest.approx(now_gib + 100 * 1.25)


def test_an_unknown_seasonal_rule_is_refused():
    with pytest.raises(ConfigError, match="forecast_seasonal"):
        cfg(forecast_seasonal="median")


# --- lead time --------------------------------------------------------------------------------------------
def _out(targets_total):
    t = GroupTarget("ig-a", "a", "r5.2xlarge", Market.SPOT, 2, targets_total, 0.16)
    return Decision("j-TEST", NOW, Direction.OUT, (t,), (), False)


def test_lead_time_is_the_median_of_measured_delays_and_360_s_until_measured():
    assert lead_time_s(ScalerState()) == DEFAULT_LEAD_S == 360.0
    assert lead_time_s(ScalerState(lead_times_s=(300.0, 500.0, 370.0))) == 370.0


def test_a_scale_out_is_measured_when_its_nodes_run():
    hold = Decision("j-TEST", NOW, Direction.HOLD, (), (), False)
    # requested 4 nodes 400 s ago; the group turned RUNNING with 4 nodes 30 s ago: 370 s measured
    prev = ScalerState(pending_scale_out=PendingScaleOut(ago(400), 4))
    c = cluster(replace(group("ig-a", requested=4, running=4), status_since=ago(30)))
    leads, pending = measure_lead(prev, c, hold, acted=False, now=NOW)
    assert (leads, pending) == ((370.0,), None)
    # not there yet: still pending, nothing measured
    c3 = cluster(group("ig-a", requested=4, running=3, status=GroupStatus.RESIZING))
    assert measure_lead(prev, c3, hold, acted=False, now=NOW) == ((), prev.pending_scale_out)
    # a new scale-out starts a new measurement
    leads, pending = measure_lead(ScalerState(), c, _out(6), acted=True, now=NOW)
    assert pending == PendingScaleOut(NOW, 6)


# --- the policy -------------------------------------------------------------------------------------------
def run(c, m, *, mode, state=None, history=None):
    return decide(
        now=NOW,
        cluster=c,
        metrics=m,
        config=cfg(forecast_mode=mode),
        state=state or ScalerState(),
        history=history,
    )


def _ramp_state():
    # demand 150 -> 214.59 GiB over the last 600 s (samples every 120 s, the newest comes from the metrics)
    return ScalerState(demand_samples=samples([150, 163, 176, 189, 202])[:-1])


def test_act_sizes_for_the_forecast():
    # 95 % of 192 GiB = 182.4 allocated wants 214.59 GiB now (off: +1 node of 48 GiB -> 3).
    # Samples 150, 163, 176, 189 at -480..-120 s and 214.59 now: the median slope is 13/120 = 0.1083 GiB/s
    # (clip: median sample 176 / 600 = 0.293); the level is the median of the samples moved to NOW = 202;
    # 360 s + 0 s of age ahead: 202 + 0.1083 x 270.71 = 231.3 GiB: +39.3 over 192 -> still 1 node, but
    # sized for the forecast
    off = run(cluster(group("ig-a", requested=2)), metrics(**yarn(192, 95)), mode="off")
    act = run(cluster(group("ig-a", requested=2)), metrics(**yarn(192, 95)), mode="act", state=_ramp_state())
    assert targets(off) == targets(act) == {"ig-a": 3}
    assert act.reasons[0].code is ReasonCode.FORECAST
    assert act.forecast is not None
    assert act.forecast.value_gib == pytest.approx(202 + 13 / 120 * AHEAD_360, abs=1e-3)
    # a faster ramp buys for the forecast, not for now: 100, 130, 160, 190 then 214.59 -> slope 0.25 (clip
    # 160 / 600 = 0.267): level median(100+120, 130+90, 160+60, 190+30, 214.59) = 220;
    # + 0.25 x 270.71 = 287.7 GiB: +95.7 over 192 -> 2 nodes (off: 1)
    fast = ScalerState(demand_samples=samples([100, 130, 160, 190, 0])[:-1])
    act2 = run(cluster(group("ig-a", requested=2)), metrics(**yarn(192, 95)), mode="act", state=fast)
    assert act2.forecast is not None
    assert act2.forecast.value_gib == pytest.approx(220 + 0.25 * AHEAD_360, abs=1e-3)
    assert targets(act2) == {"ig-a": 4}


def test_act_holds_for_a_burst_forecast_to_end_before_new_nodes():
    # a flat 150 GiB for 8 minutes, then 100 % of 192 + 20 pending containers x 4 GiB = 320 GiB now (off:
    # +3 nodes). Trend: 4 pairs of the new sample positive, 6 zero -> slope 0, level 150: the forecast 150
    # GiB is within the 192 GiB counted: buy nothing, and say why
    flat = ScalerState(demand_samples=samples([150, 150, 150, 150, 0])[:-1])
    m = metrics(**yarn(192, 100, ContainerPending=20))
    off = run(cluster(group("ig-a", requested=2)), m, mode="off", state=flat)
    act = run(cluster(group("ig-a", requested=2)), m, mode="act", state=flat)
    assert targets(off) == {"ig-a": 5}
    assert act.direction is Direction.HOLD
    assert targets(act) == {"ig-a": 2}
    lead = act.reasons[0]
    assert lead.code is ReasonCode.BURST_ENDS_BEFORE_NODES
    assert lead.values["forecast_gib"] == pytest.approx(150.0)
    assert lead.text.startswith("Burst ends before new nodes: 320 GiB of demand now, but 150 GiB forecast")


def test_act_never_scales_in_below_the_forecast():
    # 6 TASK nodes: 96 + 288 = 384 GiB counted; 40 % used = 153.6 / 0.85 = 180.7 GiB wanted now (off: scale
    # in). The last 8 minutes were at 400 GiB: the level 400 keeps every node (forecast >= 78.2 % of 384)
    high = ScalerState(demand_samples=samples([400, 400, 400, 400, 0])[:-1])
    m = metrics(**yarn(384, 40, AppsRunning=1))
    c = cluster(group("ig-a", requested=6))
    off = run(c, m, mode="off", state=high)
    act = run(c, m, mode="act", state=high)
    assert off.direction is Direction.IN
    assert act.direction is Direction.HOLD
    assert act.reasons[0].code is ReasonCode.FORECAST
    assert "never scaling in below it" in act.reasons[0].text


def test_observe_decides_as_off_and_records_the_forecast():
    for m in (
        metrics(**yarn(192, 95)),
        metrics(**yarn(192, 100, ContainerPending=20)),
        metrics(**yarn(384, 40)),
    ):
        state = _ramp_state()
        c = cluster(group("ig-a", requested=2))
        off = run(c, m, mode="off", state=state)
        obs = run(c, m, mode="observe", state=state)
        assert off.forecast is None
        assert obs.forecast is not None
        assert replace(obs, forecast=None) == off
        assert "forecast" not in decision_to_dict(off)
        assert decision_to_dict(obs)["forecast"]["value_gib"] == obs.forecast.value_gib


def test_next_state_keeps_the_trend_window_only_when_forecasting():
    c = cluster(group("ig-a", requested=2))
    m = metrics(**yarn(192, 95))
    for mode, kept in (("off", 0), ("observe", 1)):
        config = cfg(forecast_mode=mode)
        d, obs = evaluate(now=NOW, cluster=c, metrics=m, config=config, state=ScalerState())
        s = next_state(
            previous=ScalerState(), decision=d, cluster=c, metrics=m, now=NOW, config=config, observed=obs
        )
        assert len(s.demand_samples) == kept
    assert s.demand_samples[0].gib == pytest.approx(182.4 / 0.85)
