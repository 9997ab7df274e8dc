"""The streaming signal (policy/streaming.py) and decide() with streaming metrics.

Unless a test says otherwise: CORE 2 x r5.2xlarge (48 GiB usable each) and TASK group ig-a, SPOT r5.2xlarge,
2 nodes of 48 GiB usable: 192 GiB running and counted. YARN used 80 % of 192 GiB (within the deadband of the
85 % target: 80 / 85 = 0.94), so only the stream can drive. Trigger interval 60 s (latency target 60 s),
rate tolerance 10 %, iterator age rising for 5 minutes, caught up at an iterator age of at most 60 s.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import NOW, ago, cfg, cluster, group, metrics, targets, yarn
from sparkscale.policy import Direction, ReasonCode, Recommendation, ScalerState, Signal, decide
from sparkscale.policy.model import MetricsSnapshot, Sample
from sparkscale.policy.streaming import (
    MAX_RATIO,
    STREAMING_SIGNALS,
    StreamingObservation,
    StreamStatus,
    assess,
    keep_up_ratio,
    observe,
    rising_run,
)

AGE = Signal.KINESIS_ITERATOR_AGE_MS


def run(m, *, config=None, state=None, requested=2):
    c = cluster(group("ig-a", requested=requested))
    return decide(now=NOW, cluster=c, metrics=m, config=config or cfg(), state=state or ScalerState())


def with_history(snapshot: MetricsSnapshot, ages_s: list[float], step_s: float = 60.0) -> MetricsSnapshot:
    """`snapshot` plus the iterator age: one datapoint a minute, the last one now (seconds -> ms)."""
    n = len(ages_s)
    history = tuple(Sample(a * 1000.0, ago((n - 1 - i) * step_s)) for i, a in enumerate(ages_s))
    samples = dict(snapshot.samples)
    samples[AGE] = history[-1]
    return MetricsSnapshot(samples, {AGE: history})


def codes(d):
    return [r.code for r in d.reasons]


# --- the pure signal ----------------------------------------------------------------------------------------
def test_rising_run_counts_minutes_up_to_the_newest_and_its_slope():
    # 100, 130, ..., 280 s: 6 rising minutes; +180 s of age in 360 s: slope 0.5
    hist = [Sample(a * 1000.0, ago((6 - i) * 60)) for i, a in enumerate(range(100, 281, 30))]
    assert rising_run(hist) == (6, pytest.approx(0.5))
    # a flat minute in the middle ends the run: 3 rising minutes after it
    flat = [*hist[:3], Sample(hist[2].value, hist[3].at), *hist[4:]]
    assert rising_run(flat)[0] == 3
    # a gap of more than 90 s (a minute missing) ends it too: 2 rising minutes after it
    assert rising_run([*hist[:3], *hist[4:]])[0] == 2
    assert rising_run([]) == (0, 0.0)
    assert rising_run(hist[:1]) == (0, 0.0)


@pytest.mark.parametrize(
    ("obs", "status", "ratio", "behind_by"),
    [
        # 1500 arriving / 1000 processed / (1 - 10 % tolerance to spare) = 1.667
        (StreamingObservation(1500.0, 1000.0), StreamStatus.BEHIND, 1.5 / 0.9, ("rate",)),
        # 1050 / 1000: within the 10 % tolerance, no latency or age: caught up
        (StreamingObservation(1050.0, 1000.0), StreamStatus.CAUGHT_UP, 1.0, ()),
        # nothing processed at all: the most a ratio may ask for
        (StreamingObservation(1000.0, 0.0), StreamStatus.BEHIND, MAX_RATIO, ("rate",)),
        # batch latency 150 s over the 60 s target: 2.5
        (StreamingObservation(batch_latency_ms=150_000.0), StreamStatus.BEHIND, 2.5, ("latency",)),
        # DStreams scheduling delay 90 s: 1.5
        (StreamingObservation(scheduling_delay_ms=90_000.0), StreamStatus.BEHIND, 1.5, ("latency",)),
        # iterator age 120 s, not rising: neither behind nor caught up
        (StreamingObservation(iterator_age_ms=120_000.0), StreamStatus.CATCHING_UP, 1.0, ()),
        # iterator age 2 s and latency 10 s: caught up
        (
            StreamingObservation(batch_latency_ms=10_000.0, iterator_age_ms=2_000.0),
            StreamStatus.CAUGHT_UP,
            1.0,
            (),
        ),
        # latency exactly at its target is not under it: catching up
        (StreamingObservation(batch_latency_ms=60_000.0), StreamStatus.CATCHING_UP, 1.0, ()),
        # rate 1.667 and latency 2.5: both named; the latency's ask is bounded by the rates' evidence,
        # 1500 / 1000 x max(1 / (1 - 10 % tolerance), 1 + 20 % headroom) = 1.8, the larger asked for
        (StreamingObservation(1500.0, 1000.0, 150_000.0), StreamStatus.BEHIND, 1.8, ("rate", "latency")),
        # latency 600 s (10 x its target) with the rates level: at most 1.2 (the headroom), not 10
        (StreamingObservation(1000.0, 1000.0, 600_000.0), StreamStatus.BEHIND, 1.2, ("latency",)),
    ],
)
def test_assess(obs, status, ratio, behind_by):
    found = assess(obs, cfg())
    assert found is not None
    assert (found.status, found.behind_by) == (status, behind_by)
    assert found.ratio == pytest.approx(ratio)


def test_nothing_reported_says_nothing():
    assert assess(StreamingObservation(), cfg()) is None
    assert observe({Signal.YARN_APPS_RUNNING: 1.0}, {}) == StreamingObservation()


def test_latency_target_defaults_to_the_trigger_interval_and_may_be_set():
    obs = StreamingObservation(batch_latency_ms=45_000.0)  # 45 s
    assert assess(obs, cfg(streaming_trigger_interval_s=30)).ratio == pytest.approx(1.5)  # behind
    set_50 = cfg(streaming_trigger_interval_s=30, streaming_latency_target_s=50)
    assert assess(obs, set_50).status is StreamStatus.CAUGHT_UP  # under 50 s
    assert assess(obs, cfg()).status is StreamStatus.CAUGHT_UP  # under the 60 s default trigger


def test_iterator_age_rising_for_the_set_minutes_is_behind_with_the_slope_ratio():
    # +30 s of age every minute: slope 0.5 -> 1 / (1 - 0.5) = 2
    ages = [100.0 + 30 * i for i in range(7)]  # 6 rising minutes
    hist = tuple(Sample(a * 1000.0, ago((6 - i) * 60)) for i, a in enumerate(ages))
    obs = StreamingObservation(iterator_age_ms=hist[-1].value, iterator_age_history=hist)
    found = assess(obs, cfg())
    assert (found.status, found.ratio, found.rising_minutes) == (StreamStatus.BEHIND, pytest.approx(2.0), 6)
    assert found.signal is AGE
    # 6 rising minutes are not enough when 7 are asked for
    assert assess(obs, cfg(streaming_iterator_age_rising_minutes=7)).status is StreamStatus.CATCHING_UP
    # rising, but under the caught-up age (a few ms of noise): not behind
    small = tuple(Sample(float(i), s.at) for i, s in enumerate(hist))
    quiet = StreamingObservation(iterator_age_ms=small[-1].value, iterator_age_history=small)
    assert assess(quiet, cfg()).status is StreamStatus.CAUGHT_UP


_maybe = st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None)
@given(
    inp=_maybe,
    done=_maybe,
    lat=_maybe,
    delay=_maybe,
    waiting=_maybe,
    ages=st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), max_size=12),
    rising=st.integers(min_value=2, max_value=15),
)
def test_assess_invariants(inp, done, lat, delay, waiting, ages, rising):  # noqa: PLR0917 - hypothesis draws
    hist = tuple(Sample(a, ago((len(ages) - 1 - i) * 60)) for i, a in enumerate(ages))
    obs = StreamingObservation(inp, done, lat, delay, waiting, ages[-1] if ages else None, hist)
    config = cfg(streaming_iterator_age_rising_minutes=rising)
    found = assess(obs, config)
    if not obs.reports:
        assert found is None
        return
    assert found is not None
    # the ratio is a finite number in [1, MAX_RATIO], and above 1 only when behind
    assert 1.0 <= found.ratio <= MAX_RATIO
    assert math.isfinite(found.ratio)
    assert found.behind or found.ratio == 1.0
    # caught up never while the latency is at or over its target, or the age over its caught-up bound
    if found.status is StreamStatus.CAUGHT_UP:
        assert obs.latency_ms is None or obs.latency_ms < 60_000.0
        assert obs.iterator_age_ms is None or obs.iterator_age_ms <= 60_000.0
    # behind whenever processing is under the input rate beyond the tolerance
    if inp is not None and done is not None and inp > 0 and done < inp * 0.9:
        assert found.behind
        assert "rate" in found.behind_by
    assert found.text()  # the sentence can always be made


# --- decide() with streaming metrics ------------------------------------------------------------------------
def test_no_streaming_metric_changes_nothing():
    m = metrics(**yarn(192, 80))
    assert run(m) == run(MetricsSnapshot(m.samples, {}))
    assert not any(r.code is ReasonCode.STREAM_NOT_CAUGHT_UP for r in run(m).reasons)


def test_behind_by_rate_asks_in_proportion():
    # 1500 / 1000 / 0.9 = 1.667 x 192 GiB running = 320 GiB: +128 GiB -> 3 nodes of 48 GiB
    d = run(metrics(**yarn(192, 80), StreamingInputRowsPerSecond=1500, StreamingProcessedRowsPerSecond=1000))
    assert d.direction is Direction.OUT
    assert targets(d) == {"ig-a": 5}
    assert d.driving_signal is Signal.STREAMING_PROCESSED_ROWS_PER_S
    assert d.driving_value == 1000
    lead = d.reasons[0]
    assert lead.code is ReasonCode.NEED
    assert lead.subject == Signal.STREAMING_PROCESSED_ROWS_PER_S
    assert lead.values["input_rows_per_s"] == 1500
    assert lead.values["ratio"] == pytest.approx(1.5 / 0.9)
    assert "1500 rows/s arriving, 1000 rows/s processed" in lead.text


def test_a_stream_behind_is_bought_whole_with_the_burst_rule_on():
    # the burst rule's one-node first step is for memory bursts that may end on their own; a stream's lag
    # grows until it is caught up (the shipped settings have the rule on; cfg() turns it off for the others)
    m = metrics(**yarn(192, 80), StreamingInputRowsPerSecond=1500, StreamingProcessedRowsPerSecond=1000)
    d = run(m, config=cfg(burst_first_step_nodes=1))
    assert targets(d) == {"ig-a": 5}
    assert not any(r.code is ReasonCode.BURST_UNCONFIRMED for r in d.reasons)


def test_behind_by_latency_is_bounded_by_the_step():
    # latency 300 s / 60 s = 5 x 192 GiB = 960 GiB: +768 GiB = 16 nodes, max_scale_out_step_nodes 3 -> 5
    d = run(
        metrics(**yarn(192, 80), StreamingBatchLatencyMs=300_000),
        config=cfg(max_scale_out_step_nodes=3),
    )
    assert targets(d) == {"ig-a": 5}
    assert "batch latency 300.0 s" in d.reasons[0].text
    assert ReasonCode.LIMIT in codes(d)


def test_behind_by_a_rising_iterator_age():
    # +30 s a minute for 6 minutes: slope 0.5, ratio 2: 384 GiB wanted, +192 GiB -> 4 nodes
    d = run(with_history(metrics(**yarn(192, 80)), [100.0 + 30 * i for i in range(7)]))
    assert targets(d) == {"ig-a": 6}
    assert d.driving_signal is AGE
    assert "Kinesis iterator age 280.0 s, rising for 6 min" in d.reasons[0].text


def test_nodes_in_flight_count_against_a_stream_behind():
    # the same 1.667 x 192 GiB running = 320 GiB, but 3 TASK nodes are already requested (counted 336): hold
    c = cluster(group("ig-a", requested=5, running=2))
    m = metrics(**yarn(192, 80), StreamingInputRowsPerSecond=1500, StreamingProcessedRowsPerSecond=1000)
    d = decide(now=NOW, cluster=c, metrics=m, config=cfg(), state=ScalerState())
    assert d.direction is Direction.HOLD
    assert ReasonCode.COVERED in codes(d)


def test_the_latency_asks_nothing_more_while_nodes_are_coming_or_the_backlog_drains():
    # latency 300 s / 60 s = 5 x 192 GiB: but 1 node is coming (the backlog grows until it runs): hold
    coming = cluster(group("ig-a", requested=3, running=2))
    m = metrics(**yarn(192, 80), StreamingBatchLatencyMs=300_000)
    d = decide(now=NOW, cluster=coming, metrics=m, config=cfg(), state=ScalerState())
    assert d.direction is Direction.HOLD
    # processing 2000 rows/s for 1000 arriving: the backlog drains by itself; no scale-in, no scale-out
    m = metrics(
        **yarn(192, 30),
        StreamingBatchLatencyMs=300_000,
        StreamingInputRowsPerSecond=1000,
        StreamingProcessedRowsPerSecond=2000,
    )
    d = run(m)
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.STREAM_NOT_CAUGHT_UP


def test_never_scales_in_while_behind():
    # YARN used 30 % wants far less; latency 63 s is behind (1.05, within the deadband: no scale-out)
    d = run(metrics(**yarn(192, 30), StreamingBatchLatencyMs=63_000))
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.STREAM_NOT_CAUGHT_UP
    assert "latency above its target" in d.reasons[0].text


def test_no_scale_in_while_catching_up():
    # iterator age 120 s > 60 s, not rising: not behind, not caught up
    d = run(with_history(metrics(**yarn(192, 30)), [120.0]))
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.STREAM_NOT_CAUGHT_UP
    assert d.reasons[0].values["iterator_age_ms"] == 120_000


def test_scales_in_once_caught_up():
    # iterator age 2 s, latency 10 s: caught up, YARN used 30 % decides: scale in
    d = run(with_history(metrics(**yarn(192, 30), StreamingBatchLatencyMs=10_000), [2.0]))
    assert d.direction is Direction.IN


def test_caught_up_waits_for_the_stabilization_window():
    # caught up now, but 5 minutes ago the stream held the TASK memory (96 GiB) as the recommendation
    state = ScalerState(recommendations=(Recommendation(ago(300), 2, 96.0),))
    d = run(with_history(metrics(**yarn(192, 30), StreamingBatchLatencyMs=10_000), [2.0]), state=state)
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.STABILIZATION


def test_receiver_based_dstreams_say_receivers_bound_ingestion():
    d = run(metrics(**yarn(192, 80), StreamingSchedulingDelayMs=90_000, StreamingWaitingBatches=3))
    assert d.direction is Direction.OUT  # 1.5 x 192 = 288: +2 nodes
    assert targets(d) == {"ig-a": 4}
    text = d.reasons[0].text
    assert "receiver-based DStreams" in text
    assert "at most one per shard" in text
    assert "3 batches waiting" in text


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf])
def test_bad_streaming_values_cause_no_action(bad):
    d = run(metrics(**yarn(192, 80), StreamingInputRowsPerSecond=bad, StreamingBatchLatencyMs=bad))
    assert d.direction is Direction.HOLD
    assert any(r.code is ReasonCode.METRIC_IGNORED for r in d.reasons)


def test_stale_streaming_metrics_are_ignored():
    m = metrics(**yarn(192, 80))
    stale = MetricsSnapshot(
        {**m.samples, Signal.STREAMING_BATCH_LATENCY_MS: Sample(300_000.0, ago(181))},
    )
    assert run(stale).direction is Direction.HOLD


@settings(max_examples=150, deadline=None)
@given(
    used=st.floats(min_value=0, max_value=100),
    latency_s=st.floats(min_value=0, max_value=3600),
    inp=st.floats(min_value=0, max_value=1e6),
    done=st.floats(min_value=0, max_value=1e6),
    requested=st.integers(min_value=0, max_value=20),
)
def test_never_scales_in_unless_caught_up(used, latency_s, inp, done, requested):
    """Whatever the memory says, no decision removes nodes while the stream is not caught up, and none
    goes outside the bounds."""
    m = metrics(
        **yarn(96 + 48 * requested, used),
        StreamingInputRowsPerSecond=inp,
        StreamingProcessedRowsPerSecond=done,
        StreamingBatchLatencyMs=latency_s * 1000,
    )
    d = run(m, requested=requested)
    found = assess(StreamingObservation(inp, done, latency_s * 1000), cfg())
    if found.status is not StreamStatus.CAUGHT_UP:
        assert d.direction is not Direction.IN
    assert all(0 <= t.target <= 20 for t in d.targets)


# --- caught up: the capacity that keeps up is a floor -------------------------------------------------------
@pytest.mark.parametrize(
    ("obs", "keep_up"),
    [
        # 3000 arriving, the capacity running processes 10 000: 0.3 of it keeps up, x 1.2 headroom = 0.36
        (StreamingObservation(3000.0, 10_000.0), 0.36),
        # processing level with the input: all of it, x 1.2
        (StreamingObservation(1000.0, 1000.0), 1.2),
        # nothing arriving: nothing to keep up with
        (StreamingObservation(0.0, 5000.0), 0.0),
        # before the first batch Spark reports 0 for both rates: no evidence
        (StreamingObservation(0.0, 0.0), None),
        # one rate only, or only a latency: no evidence
        (StreamingObservation(3000.0, None, 10_000.0), None),
        (StreamingObservation(batch_latency_ms=10_000.0), None),
    ],
)
def test_keep_up_ratio_is_input_over_processed_with_the_headroom(obs, keep_up):
    found = assess(obs, cfg())
    assert found is not None
    if keep_up is None:
        assert found.keep_up_ratio is None
        assert keep_up_ratio(obs, cfg()) is None
    else:
        assert found.keep_up_ratio == pytest.approx(keep_up)
        assert keep_up_ratio(obs, cfg(streaming_headroom_pct=0)) == pytest.approx(keep_up / 1.2)


def caught_up_run(requested: int, used: float, inp: float, done: float, *, state=None, config=None):
    """Caught up (processed above the input, latency 10 s, iterator age 2 s) with `requested` TASK nodes all
    running: 96 GiB of CORE + 48 GiB a TASK node."""
    m = metrics(
        **yarn(96 + 48 * requested, used),
        StreamingInputRowsPerSecond=inp,
        StreamingProcessedRowsPerSecond=done,
        StreamingBatchLatencyMs=10_000,
    )
    return run(with_history(m, [2.0]), requested=requested, state=state, config=config)


def test_caught_up_scales_in_no_lower_than_the_capacity_that_keeps_up():
    # 10 nodes running (480 GiB); YARN used 10 % wants 56 GiB (0 TASK nodes); the stream keeps up with
    # 3000 / 10 000 x 1.2 = 0.36 x 480 = 172.8 GiB: 96 CORE + 2 TASK nodes (192 GiB), not 1 (144 GiB)
    d = caught_up_run(8, 10, 3000, 10_000, config=cfg(max_scale_in_step_nodes=20))
    assert d.direction is Direction.IN
    assert targets(d) == {"ig-a": 2}
    lead = d.reasons[0]
    assert lead.subject == Signal.STREAMING_PROCESSED_ROWS_PER_S
    assert lead.values["keep_up_ratio"] == pytest.approx(0.36)
    assert lead.values["floor_gib"] == pytest.approx(172.8)
    assert "keeping up needs 0.36 x the capacity running" in lead.text
    assert "3000 rows/s arriving, 10000 rows/s processed" in lead.text
    # without the rates (the iterator age and latency only) the memory decides alone, down to 0 TASK nodes
    m = metrics(**yarn(480, 10), StreamingBatchLatencyMs=10_000)
    alone = run(with_history(m, [2.0]), requested=8, config=cfg(max_scale_in_step_nodes=20))
    assert targets(alone) == {"ig-a": 0}


def test_caught_up_at_the_floor_holds_and_says_why():
    # 2 TASK nodes (192 GiB); the stream needs 1000 / 1100 x 1.2 = 1.09 x 192 GiB: above the capacity, it
    # asks for no more (caught up) and holds what runs while YARN memory wants less
    d = caught_up_run(2, 10, 1000, 1100)
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.STREAM_KEEP_UP_FLOOR
    assert "keeps up with the input" in d.reasons[0].text


def test_the_floor_never_asks_for_more_when_caught_up():
    # processing within the tolerance below the input (1000 / 950), YARN used 80 %: caught up, no scale-out
    d = caught_up_run(2, 80, 1000, 950)
    assert d.direction is Direction.HOLD


@settings(max_examples=200, deadline=None)
@given(
    used=st.floats(min_value=0, max_value=100),
    inp=st.floats(min_value=1, max_value=1e6),
    spare=st.floats(min_value=1.0, max_value=20.0),
    requested=st.integers(min_value=0, max_value=20),
    headroom=st.sampled_from([0.0, 20.0, 50.0]),
)
def test_never_scales_in_below_the_floor_while_the_input_is_steady(used, inp, spare, requested, headroom):
    """A steady input (caught up: processed = `spare` x input, latency 10 s, age 2 s): whatever YARN memory
    says, the capacity after the decision is at least min(running, running x input / processed x (1 +
    headroom)), the capacity that keeps up."""
    done = inp * spare
    config = cfg(streaming_headroom_pct=headroom, max_scale_in_step_nodes=20)
    d = caught_up_run(requested, used, inp, done, config=config)
    running = 96.0 + 48.0 * requested
    floor = min(running, running * inp / done * (1.0 + headroom / 100.0))
    after = 96.0 + 48.0 * targets(d).get("ig-a", requested)
    assert after >= floor - 1e-6
    # caught up, the stream never asks for more: only memory over its target may add nodes
    if d.direction is Direction.OUT:
        assert d.driving_signal not in STREAMING_SIGNALS
