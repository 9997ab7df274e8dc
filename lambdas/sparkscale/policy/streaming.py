"""The streaming signal: how far behind a streaming cluster is, and how much more capacity that asks for.

A streaming job's demand is not memory waiting in YARN: it is input arriving faster than it is processed.
From the fresh readings (signals.read_signals) of Spark's streaming metrics (the agent's
Sparkscale/SparkStreaming) and of the Kinesis iterator age (AWS/Kinesis GetRecords.IteratorAgeMilliseconds,
the most of the cluster's streams), `assess` says one of three things:

- BEHIND when any of these holds:
  - rate: rows processed per second below the rows arriving per second by more than
    streaming_rate_tolerance_pct (Structured Streaming);
  - latency: the slowest query's batch latency, or the DStreams scheduling delay, above the latency target
    (streaming_latency_target_s, else the trigger interval streaming_trigger_interval_s);
  - iterator age: the Kinesis iterator age has risen every minute for streaming_iterator_age_rising_minutes
    minutes and is above streaming_caught_up_iterator_age_s.
  It asks for the capacity running times the largest of: input / processed rate / (1 - tolerance) (the
  tolerance to spare, so a backlog drains); latency / target (not while nodes are coming, nor while the
  processed rate beats the input rate by the tolerance: the latency measures the backlog, which then grows
  until the nodes run, or drains by itself); and, from the iterator age's slope s (ms of age gained per ms),
  1 / (1 - s): a consumer that reads records at a share r of their arrival rate sees their age grow by
  1 - r every second, so arrival / reading = 1 / (1 - s). With both rates reported, the latency's and the
  iterator age's asks are bounded by input / processed x max(1 / (1 - tolerance), 1 + headroom): both grow
  with the backlog, not with the shortfall of rate, and would overshoot. The usual step, bounds and budget
  limit what is added.
- CAUGHT_UP when the iterator age (if reported) is at most streaming_caught_up_iterator_age_s, the latency
  (if reported) under its target and no rate is behind: the other signals may then scale in, never below the
  capacity that keeps up (keep_up_ratio: input / processed x (1 + streaming_headroom_pct); Spark's processed
  rate is a batch's rows over its own duration, what the capacity running can process); the stabilization
  window keeps the highest recommendation of its last seconds, so scale-in waits until the stream has been
  caught up for the whole window.
- CATCHING_UP otherwise (neither behind nor caught up): no scale-in.

Receiver-based DStreams (a scheduling delay or waiting batches, no Structured Streaming rates) read Kinesis
with one receiver per shard: executors beyond the receivers (at most one per shard) do not speed up ingestion,
only processing, and the reason says so.

Pure: no I/O, no clock; every number comes from the readings and the settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sparkscale.config import Config
from sparkscale.policy.model import Sample, Signal

STREAMING_SIGNALS: Final = (
    Signal.STREAMING_INPUT_ROWS_PER_S,
    Signal.STREAMING_PROCESSED_ROWS_PER_S,
    Signal.STREAMING_BATCH_LATENCY_MS,
    Signal.STREAMING_SCHEDULING_DELAY_MS,
    Signal.STREAMING_WAITING_BATCHES,
    Signal.KINESIS_ITERATOR_AGE_MS,
)
# the most a ratio may ask for (a consumer that processes nothing): the step and bounds limit it anyway
MAX_RATIO: Final = 10.0
# the iterator age's slope (ms per ms) beyond which it counts as MAX_RATIO (1 / (1 - 0.9) = 10)
_MAX_SLOPE: Final = 1.0 - 1.0 / MAX_RATIO
# two datapoints of the minute series are consecutive when at most this far apart (a gap breaks a rise)
_MINUTE_S: Final = 60.0
_GAP_S: Final = 90.0


class StreamStatus(StrEnum):
    BEHIND = "behind"
    CATCHING_UP = "catching_up"  # neither behind nor caught up: no scale-in
    CAUGHT_UP = "caught_up"


@dataclass(frozen=True, slots=True)
class StreamingObservation:
    """The fresh streaming numbers of one evaluation (None: not reported, or not fresh). Rates are rows per
    second summed over queries; latency and delay in ms, the slowest query's; the iterator age in ms, the
    most of the cluster's streams; `iterator_age_history` the iterator age's recent per-minute datapoints,
    oldest first, ending with the fresh one (empty when it is not fresh)."""

    input_rows_per_s: float | None = None
    processed_rows_per_s: float | None = None
    batch_latency_ms: float | None = None
    scheduling_delay_ms: float | None = None
    waiting_batches: float | None = None
    iterator_age_ms: float | None = None
    iterator_age_history: tuple[Sample, ...] = ()

    @property
    def reports(self) -> bool:
        """Some streaming number is fresh: the signal has something to say."""
        return any(
            v is not None
            for v in (
                self.input_rows_per_s,
                self.processed_rows_per_s,
                self.batch_latency_ms,
                self.scheduling_delay_ms,
                self.waiting_batches,
                self.iterator_age_ms,
            )
        )

    @property
    def receiver_based(self) -> bool:
        """DStreams (a scheduling delay or waiting batches) with no Structured Streaming rate."""
        dstreams = self.scheduling_delay_ms is not None or self.waiting_batches is not None
        return dstreams and self.input_rows_per_s is None and self.processed_rows_per_s is None

    @property
    def latency_ms(self) -> float | None:
        """The larger of the batch latency and the scheduling delay (None: neither reported)."""
        values = [v for v in (self.batch_latency_ms, self.scheduling_delay_ms) if v is not None]
        return max(values) if values else None


def observe(
    values: Mapping[Signal, float], history: Mapping[Signal, Sequence[Sample]]
) -> StreamingObservation:
    """The observation from the fresh values (signal -> value) and the snapshot's history."""
    age = values.get(Signal.KINESIS_ITERATOR_AGE_MS)
    return StreamingObservation(
        values.get(Signal.STREAMING_INPUT_ROWS_PER_S),
        values.get(Signal.STREAMING_PROCESSED_ROWS_PER_S),
        values.get(Signal.STREAMING_BATCH_LATENCY_MS),
        values.get(Signal.STREAMING_SCHEDULING_DELAY_MS),
        values.get(Signal.STREAMING_WAITING_BATCHES),
        age,
        tuple(history.get(Signal.KINESIS_ITERATOR_AGE_MS, ())) if age is not None else (),
    )


def rising_run(history: Sequence[Sample]) -> tuple[int, float]:
    """(minutes, slope): how many consecutive minutes the series has risen up to its newest datapoint, and
    the age gained per ms of time over those minutes (0.0 when it has not risen). A gap of more than a
    minute and a half between two datapoints, or a minute without a rise, ends the run. Invalid values
    (negative, not finite) end it too."""
    points = sorted(history, key=lambda s: s.at)
    minutes = 0
    first = last = len(points) - 1
    while first > 0:
        a, b = points[first - 1], points[first]
        gap = (b.at - a.at).total_seconds()
        if not (_finite(a.value) and _finite(b.value)) or gap <= 0 or gap > _GAP_S or b.value <= a.value:
            break
        minutes += max(1, round(gap / _MINUTE_S))
        first -= 1
    if minutes == 0:
        return 0, 0.0
    span_ms = (points[last].at - points[first].at).total_seconds() * 1000.0
    slope = (points[last].value - points[first].value) / span_ms if span_ms > 0 else 0.0
    return minutes, slope


def _finite(v: float) -> bool:
    return 0.0 <= v < float("inf")


@dataclass(frozen=True, slots=True)
class StreamingAssessment:
    """What the streaming signal concluded, with every number its reason states."""

    status: StreamStatus
    ratio: float  # capacity asked for / capacity running (1.0 unless behind)
    signal: Signal  # the metric that drives: the condition with the largest ratio (or the first reported)
    value: float  # that metric's value
    observation: StreamingObservation
    latency_target_ms: float
    rising_minutes: int = 0
    slope: float = 0.0  # iterator age gained per ms, over the rising minutes
    behind_by: tuple[str, ...] = ()  # "rate", "latency", "iterator_age": the conditions that hold
    ratios: tuple[float, ...] = ()  # what each of them asks for, in the same order
    # the capacity that keeps up with the input, over the capacity running: input / processed rate x
    # (1 + streaming_headroom_pct); None without both rates (or with nothing processed)
    keep_up_ratio: float | None = None
    headroom_pct: float = 0.0

    def sizing_ratio(self, *, nodes_coming: bool) -> float:
        """The ratio to size for. While nodes are coming the latency's is left out: a backlog keeps growing
        until they run, and so does the latency (it measures the backlog, not the shortfall of rate), so it
        would ask again for what is already coming; the rates and the iterator age's slope do not."""
        if not nodes_coming:
            return self.ratio
        kept = [r for b, r in zip(self.behind_by, self.ratios, strict=True) if b != "latency"]
        return min(MAX_RATIO, max([1.0, *kept]))

    @property
    def behind(self) -> bool:
        return self.status is StreamStatus.BEHIND

    def values(self) -> dict[str, float]:
        """The numbers the reason states, by name (Reason.values)."""
        o = self.observation
        out: dict[str, float] = {"ratio": self.ratio, "latency_target_ms": self.latency_target_ms}
        if self.keep_up_ratio is not None:
            out["keep_up_ratio"] = self.keep_up_ratio
            out["headroom_pct"] = self.headroom_pct
        named = {
            "input_rows_per_s": o.input_rows_per_s,
            "processed_rows_per_s": o.processed_rows_per_s,
            "batch_latency_ms": o.batch_latency_ms,
            "scheduling_delay_ms": o.scheduling_delay_ms,
            "waiting_batches": o.waiting_batches,
            "iterator_age_ms": o.iterator_age_ms,
        }
        out.update({k: v for k, v in named.items() if v is not None})
        if o.iterator_age_ms is not None:
            out["iterator_age_rising_minutes"] = float(self.rising_minutes)
        return out

    def text(self) -> str:
        """The sentence: the numbers, what they mean, and for receiver-based DStreams what more executors
        cannot do."""
        o = self.observation
        parts: list[str] = []
        if o.input_rows_per_s is not None or o.processed_rows_per_s is not None:
            parts.append(
                f"{_num(o.input_rows_per_s)} rows/s arriving, {_num(o.processed_rows_per_s)} rows/s processed"
            )
        if o.batch_latency_ms is not None:
            parts.append(f"batch latency {o.batch_latency_ms / 1000:.1f} s")
        if o.scheduling_delay_ms is not None:
            parts.append(f"scheduling delay {o.scheduling_delay_ms / 1000:.1f} s")
        if o.waiting_batches is not None:
            parts.append(f"{o.waiting_batches:.0f} batches waiting")
        if o.latency_ms is not None:
            parts.append(f"latency target {self.latency_target_ms / 1000:.1f} s")
        if o.iterator_age_ms is not None:
            rising = f", rising for {self.rising_minutes} min" if self.rising_minutes else ""
            parts.append(f"Kinesis iterator age {o.iterator_age_ms / 1000:.1f} s{rising}")
        numbers = "; ".join(parts)
        if self.status is StreamStatus.BEHIND:
            how = ", ".join(_BEHIND_TEXT[b] for b in self.behind_by)
            text = f"Stream behind ({how}): {numbers}; asks for {self.ratio:.2f} x the capacity running"
        elif self.status is StreamStatus.CATCHING_UP:
            text = f"Stream not caught up yet: {numbers}"
        else:
            text = f"Stream caught up: {numbers}"
            if self.keep_up_ratio is not None:
                text += (
                    f"; keeping up needs {self.keep_up_ratio:.2f} x the capacity running (input / processed "
                    f"rate, {self.headroom_pct:g} % headroom)"
                )
        if o.receiver_based:
            text += (
                " (receiver-based DStreams: one receiver per Kinesis shard reads the stream, so executors "
                "beyond the receivers, at most one per shard, speed up processing, not ingestion)"
            )
        return text


_BEHIND_TEXT: Final = {
    "rate": "processing below the input rate",
    "latency": "latency above its target",
    "iterator_age": "Kinesis iterator age rising",
}


def _num(v: float | None) -> str:
    return "?" if v is None else f"{v:.0f}"


def latency_target_ms(config: Config) -> float:
    """streaming_latency_target_s, else the trigger interval, in ms."""
    return (config.streaming_latency_target_s or config.streaming_trigger_interval_s) * 1000.0


def assess(obs: StreamingObservation, config: Config) -> StreamingAssessment | None:
    """Behind, catching up or caught up, and the capacity ratio it asks for (None: nothing reported)."""
    if not obs.reports:
        return None
    target_ms = latency_target_ms(config)
    tolerance = config.streaming_rate_tolerance_pct / 100.0
    headroom = config.streaming_headroom_pct / 100.0
    caught_up_ms = config.streaming_caught_up_iterator_age_s * 1000.0
    # (condition, ratio, driving signal, its value) for each condition that holds
    behind: list[tuple[str, float, Signal, float]] = []
    rate_behind = False
    inp, done = obs.input_rows_per_s, obs.processed_rows_per_s
    if inp is not None and done is not None and inp > 0:
        rate_behind = done < inp * (1.0 - tolerance)
        if rate_behind:
            # enough to process the input with the tolerance to spare, so that a backlog drains
            ratio = inp / done / (1.0 - tolerance) if done > 0 else MAX_RATIO
            behind.append(("rate", ratio, Signal.STREAMING_PROCESSED_ROWS_PER_S, done))
    latency = obs.latency_ms
    keep_up = keep_up_ratio(obs, config)
    # The latency grows with the backlog and the iterator age with the backlog over the input rate (it jumps
    # when the input falls), neither with the shortfall of rate: with both rates reported, they ask at most
    # for what processes the input with the tolerance or the headroom to spare, or they overshoot as the
    # backlog grows (the rate's own ratio still asks for what is missing).
    rate_bound = MAX_RATIO
    if keep_up is not None and inp is not None and done is not None:
        rate_bound = max(1.0, inp / done * max(1.0 / (1.0 - tolerance), 1.0 + headroom))
    if latency is not None and latency > target_ms:
        lat_signal = (
            Signal.STREAMING_BATCH_LATENCY_MS
            if obs.batch_latency_ms is not None and obs.batch_latency_ms >= (obs.scheduling_delay_ms or 0.0)
            else Signal.STREAMING_SCHEDULING_DELAY_MS
        )
        # processing clearly faster than the input: the backlog behind the latency drains by itself, and
        # the latency (which measures the backlog, not a shortfall of rate) asks for nothing more
        draining = inp is not None and done is not None and done > inp * (1.0 + tolerance)
        lat_ratio = 1.0 if draining else latency / target_ms
        behind.append(("latency", min(lat_ratio, rate_bound), lat_signal, latency))
    minutes, slope = rising_run(obs.iterator_age_history)
    age = obs.iterator_age_ms
    if age is not None and age > caught_up_ms and minutes >= config.streaming_iterator_age_rising_minutes:
        ratio = 1.0 / (1.0 - min(max(slope, 0.0), _MAX_SLOPE))
        behind.append(("iterator_age", min(ratio, rate_bound), Signal.KINESIS_ITERATOR_AGE_MS, age))
    if behind:
        _, ratio, signal, value = max(behind, key=lambda b: b[1])
        return StreamingAssessment(
            StreamStatus.BEHIND,
            min(MAX_RATIO, max(1.0, ratio)),
            signal,
            value,
            obs,
            target_ms,
            minutes,
            slope,
            tuple(b[0] for b in behind),
            tuple(b[1] for b in behind),
            keep_up,
            config.streaming_headroom_pct,
        )
    caught_up = (age is None or age <= caught_up_ms) and (latency is None or latency < target_ms)
    signal, value = _reported(obs)
    status = StreamStatus.CAUGHT_UP if caught_up else StreamStatus.CATCHING_UP
    headroom_pct = config.streaming_headroom_pct
    return StreamingAssessment(
        status, 1.0, signal, value, obs, target_ms, minutes, slope, (), (), keep_up, headroom_pct
    )


def keep_up_ratio(obs: StreamingObservation, config: Config) -> float | None:
    """The capacity that keeps up with the input, over the capacity running: input / processed rate x
    (1 + streaming_headroom_pct). Spark's processed rate is a batch's rows over the batch's own duration, so
    it measures what the capacity running can process (at or above the input while the query keeps up):
    input / processed is the share of that capacity the input needs. None without both rates, or with nothing
    processed (before a query's first batch Spark reports 0 for both)."""
    inp, done = obs.input_rows_per_s, obs.processed_rows_per_s
    if inp is None or done is None or done <= 0 or inp < 0:
        return None
    return min(MAX_RATIO, inp / done * (1.0 + config.streaming_headroom_pct / 100.0))


def _reported(obs: StreamingObservation) -> tuple[Signal, float]:
    """The first streaming metric reported (the need's signal when nothing is behind)."""
    for signal, value in (
        (Signal.KINESIS_ITERATOR_AGE_MS, obs.iterator_age_ms),
        (Signal.STREAMING_BATCH_LATENCY_MS, obs.batch_latency_ms),
        (Signal.STREAMING_SCHEDULING_DELAY_MS, obs.scheduling_delay_ms),
        (Signal.STREAMING_PROCESSED_ROWS_PER_S, obs.processed_rows_per_s),
        (Signal.STREAMING_INPUT_ROWS_PER_S, obs.input_rows_per_s),
        (Signal.STREAMING_WAITING_BATCHES, obs.waiting_batches),
    ):
        if value is not None:
            return signal, value
    raise ValueError("nothing reported")  # pragma: no cover - assess checks obs.reports first
