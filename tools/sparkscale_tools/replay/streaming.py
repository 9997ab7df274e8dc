"""The streaming replay's model: a stream's input rate over time, how much a cluster processes, how far behind
it falls, and the scores of a run (see docs/replay.md and docs/streaming.md, "Replay and demo").

Pure functions and plain data; the simulated cluster that runs the policies is in streaming_run.py.

A streaming trace is a CSV with a header row, a `time_s` column (seconds from the start, non-negative,
strictly increasing) and an `input_rows_per_s` column (rows per second arriving on the stream, >= 0). Each
value holds until the next point, as for a memory trace (trace.py).

The lag model, per step k of Δt seconds, with input rate r_k rows/s and processing capacity c_k rows/s:

    arrived_k   = r_k · Δt
    processed_k = min(c_k · Δt, backlog_k + arrived_k)          (it cannot process rows that have not arrived)
    backlog_{k+1} = backlog_k + arrived_k − processed_k          (rows behind)
    seconds behind = backlog / r   (the time the stream takes to bring that many rows: the age of the oldest
                                    unread record while the rate holds, what Kinesis reports as iterator age)
                   = backlog / c   when nothing arrives (r = 0)

Capacity c_k, sampled at the step: a node processes in proportion to its vCPUs, rows_per_s_per_node for a
node of REFERENCE_VCPU (16: a 4xlarge); a CORE node core_share of what a TASK node of its size does:

    c_k = Σ running TASK nodes rows_per_s_per_node · vCPU / 16 + core_share · Σ CORE nodes (the same)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from sparkscale import names

from sparkscale_tools.replay.trace import TIME_COLUMN, Trace, TraceError, _number, read_csv_rows

STREAM_COLUMN = "input_rows_per_s"
# Kinesis's own metric (the contract of issue 17): stream level, Maximum over 60 s
KINESIS_NAMESPACE = names.KINESIS_NAMESPACE
KINESIS_ITERATOR_AGE_MS = names.KINESIS_ITERATOR_AGE
DIM_STREAM_NAME = names.DIM_STREAM_NAME
DAY_S = 86_400
REFERENCE_VCPU = 16  # rows_per_s_per_node is for a node of this many vCPUs


# --- the trace ----------------------------------------------------------------------------------------------
def parse_stream_rows(rows: Sequence[Sequence[str]], *, name: str = "trace") -> Trace:
    """A streaming trace from CSV rows (the first is the header). Its values are input rows per second.
    Raises TraceError (one line naming the file, line and reason)."""
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise TraceError(f"{name}: empty file (expected a header with {TIME_COLUMN!r} and {STREAM_COLUMN!r})")
    header = [c.strip() for c in rows[0]]
    for col in (TIME_COLUMN, STREAM_COLUMN):
        if col not in header:
            raise TraceError(f"{name}: no {col!r} column (columns: {', '.join(header)})")
    ti, ri = header.index(TIME_COLUMN), header.index(STREAM_COLUMN)
    times: list[float] = []
    rates: list[float] = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(ti, ri):
            raise TraceError(f"{name}: line {n}: {len(row)} fields, expected {len(header)}")
        t = _number(row[ti], name, n, TIME_COLUMN)
        r = _number(row[ri], name, n, STREAM_COLUMN)
        if t < 0:
            raise TraceError(f"{name}: line {n}: negative time {t:g} s")
        if times and t <= times[-1]:
            raise TraceError(f"{name}: line {n}: time {t:g} s is not after {times[-1]:g} s (unsorted)")
        if r < 0:
            raise TraceError(f"{name}: line {n}: negative input rate {r:g} rows/s")
        times.append(t)
        rates.append(r)
    if not times:
        raise TraceError(f"{name}: no data rows after the header")
    return Trace(tuple(times), tuple(rates), name)


def load_stream_csv(path: str, *, peak_rows_per_s: float | None = None) -> Trace:
    """Read a streaming trace CSV (TraceError for a missing file, column, a bad or negative number, unsorted
    time, no rows); `peak_rows_per_s` rescales it so that its maximum is that rate."""
    from pathlib import Path  # noqa: PLC0415

    trace = parse_stream_rows(read_csv_rows(path), name=str(Path(path)))
    return trace.rescaled(peak_rows_per_s) if peak_rows_per_s is not None else trace


def is_stream_csv(path: str) -> bool:
    """The file's header names the streaming column (and no memory one): replay it as a stream."""
    try:
        with open(path, encoding="utf-8") as fh:
            header = [c.strip() for c in fh.readline().split(",")]
    except (OSError, UnicodeDecodeError):
        return False
    return STREAM_COLUMN in header


def to_csv_text(trace: Trace) -> str:
    lines = [f"{TIME_COLUMN},{STREAM_COLUMN}"]
    lines += [f"{t:g},{r:.6g}" for t, r in zip(trace.times_s, trace.demand_gib, strict=True)]
    return "\n".join(lines) + "\n"


# --- parameters ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamParams:
    """What the streaming job does with the cluster it runs on (the assumptions of the lag model)."""

    rows_per_s_per_node: float = 10_000.0  # rows/s one TASK node of REFERENCE_VCPU vCPUs processes
    core_share: float = 0.5  # a CORE node processes this share of a TASK node's rate (it also runs HDFS)
    trigger_s: float = 60.0  # the micro-batch trigger interval (the replay uses the config's)
    memory_gib: float = 48.0  # YARN memory the job holds all along (its executors): what memory metrics see
    stream_name: str = "clicks"  # the Kinesis stream (dimension StreamName of the iterator age)
    # AWS/Kinesis: a minute's Maximum, timestamped at its start, visible this long after the minute ends
    kinesis_lag_s: float = 10.0
    agent_lag_s: float = 10.0  # the agent's Sparkscale/SparkStreaming PutMetricData lag
    caught_up_s: float = 1.0  # at most this many seconds behind counts as caught up (scores)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float | int) and (not math.isfinite(v) or v < 0):
                raise ValueError(f"streaming parameter {f.name} must be a finite number >= 0, got {v!r}")
        if self.rows_per_s_per_node <= 0:
            raise ValueError("rows_per_s_per_node must be > 0")
        if not self.stream_name:
            raise ValueError("stream_name must not be empty")

    def node_rows_per_s(self, vcpu: int) -> float:
        """What one TASK node of `vcpu` vCPUs processes."""
        return self.rows_per_s_per_node * vcpu / REFERENCE_VCPU

    def core_rows_per_s(self, core: Sequence[tuple[int, int]]) -> float:
        """What the CORE nodes process, from (nodes, vCPUs per node) of each CORE group."""
        return self.core_share * sum(n * self.node_rows_per_s(v) for n, v in core)

    def task_nodes_for(self, input_rows_per_s: float, core_rows_per_s: float, node_rows_per_s: float) -> int:
        """The fewest TASK nodes of `node_rows_per_s` each that keep up with `input_rows_per_s` beside the
        core's share."""
        need = (input_rows_per_s - core_rows_per_s) / node_rows_per_s
        return max(0, math.ceil(need - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the lag model ------------------------------------------------------------------------------------------
class LagStep(NamedTuple):
    backlog_rows: float  # rows behind after the step
    processed_rows_per_s: float  # rows processed during the step / Δt
    seconds_behind: float  # after the step


def seconds_behind(backlog_rows: float, input_rows_per_s: float, capacity_rows_per_s: float) -> float:
    """backlog / input rate; backlog / capacity when nothing arrives; 0 with no backlog. A backlog nothing
    arrives into and nothing drains is infinitely behind."""
    if backlog_rows <= 0:
        return 0.0
    if input_rows_per_s > 0:
        return backlog_rows / input_rows_per_s
    if capacity_rows_per_s > 0:
        return backlog_rows / capacity_rows_per_s
    return math.inf


def lag_step(
    backlog_rows: float, input_rows_per_s: float, capacity_rows_per_s: float, step_s: float
) -> LagStep:
    """One step of the lag model (module docstring)."""
    arrived = input_rows_per_s * step_s
    available = backlog_rows + arrived
    processed = min(capacity_rows_per_s * step_s, available)
    left = available - processed
    if left < 1e-9 * max(1.0, available):  # floating-point residue
        left = 0.0
    return LagStep(left, processed / step_s, seconds_behind(left, input_rows_per_s, capacity_rows_per_s))


def batch_latency_s(
    backlog_rows: float, input_rows_per_s: float, capacity_rows_per_s: float, p: StreamParams
) -> float:
    """A micro-batch takes every row available when it starts (Structured Streaming without a rate limit):
    the backlog plus one trigger interval of input, at the cluster's capacity. At most the trigger interval
    while it keeps up; above it while behind."""
    rows = backlog_rows + input_rows_per_s * p.trigger_s
    if rows <= 0:
        return 0.0
    return rows / capacity_rows_per_s if capacity_rows_per_s > 0 else math.inf


class MicroBatches:
    """The micro-batches behind the batch latency metric, which Spark reports for the last COMPLETED batch:
    a batch that runs for an hour reports nothing until it ends. A batch starts at a step boundary, once the
    one before has ended and a trigger interval has passed since it started; it takes the rows
    `batch_latency_s` counts (the backlog and one trigger interval of input) and processes them at the
    cluster's capacity step by step (nodes that come while it runs speed it up)."""

    def __init__(self, trigger_s: float) -> None:
        self.trigger_s = trigger_s
        self._running: tuple[float, float, float] | None = None  # (start time, rows left, rows taken)
        self._next_start = 0.0
        # (end time, latency s, rows), in time order
        self._done: list[tuple[float, float, float]] = []
        self._read = 0
        self.last_latency_s: float | None = None
        self._last_rows = 0.0

    def step(
        self, t_s: float, step_s: float, *, backlog_rows: float, input_rows_per_s: float, capacity: float
    ) -> None:
        """The step [t_s, t_s + step_s): maybe a batch starts at t_s; the running one progresses."""
        if self._running is None and t_s >= self._next_start:
            rows = backlog_rows + input_rows_per_s * self.trigger_s
            self._running = (t_s, rows, rows)
        if self._running is None:
            return
        start, left, taken = self._running
        work = capacity * step_s
        if work >= left:
            end = t_s + (left / capacity if capacity > 0 else 0.0)
            self._done.append((end, end - start, taken))
            self._running = None
            self._next_start = max(end, start + self.trigger_s)
        else:
            self._running = (start, left - work, taken)

    def latency_at(self, t_s: float) -> float | None:
        """The latency of the last batch completed by `t_s` (None before the first completes)."""
        done, i = self._done, self._read
        while i < len(done) and done[i][0] <= t_s:
            self.last_latency_s, self._last_rows = done[i][1], done[i][2]
            i += 1
        self._read = i
        return self.last_latency_s

    def processed_rate_at(self, t_s: float) -> float | None:
        """Spark's processingRate-total at `t_s`: the last completed batch's rows over its own duration
        (None before the first completes; 0 for a batch of no rows). A query that keeps up finishes each batch
        early, so this is the cluster's capacity, at or above the input rate, not the rows processed per
        second."""
        latency = self.latency_at(t_s)
        if latency is None:
            return None
        if self._last_rows <= 0:
            return 0.0
        return self._last_rows / latency if latency > 0 else math.inf


def streaming_metrics(
    *, input_rows_per_s: float, processed_rows_per_s: float, batch_latency_s: float | None
) -> dict[str, float]:
    """One minute of what the agent publishes (Sparkscale/SparkStreaming, Structured Streaming: the
    DStreams-only scheduling delay and waiting batches are not sent); no latency before a batch completes."""
    out = {
        names.STREAMING_INPUT_ROWS_PER_S: input_rows_per_s,
        names.STREAMING_PROCESSED_ROWS_PER_S: processed_rows_per_s,
    }
    if batch_latency_s is not None:
        out[names.STREAMING_BATCH_LATENCY_MS] = min(batch_latency_s, 1e9) * 1000.0
    return out


# --- scores -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamScores:
    cost_usd: float
    cost_ratio_vs_oracle: float | None
    p95_s_behind: float
    max_s_behind: float
    time_behind_pct: float  # share of steps more than caught_up_s behind
    falls_behind: int  # episodes of being behind
    catch_up_s_p50: float | None  # per episode that ended: from its start to caught up again
    catch_up_s_max: float | None
    still_behind_at_end: bool
    actions: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in (0, 100]); 0 for no value."""
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


def behind_episodes(behind_s: Sequence[float], caught_up_s: float) -> list[tuple[int, int]]:
    """Maximal runs of steps more than `caught_up_s` behind, as (first step, one past the last)."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for k, b in enumerate(behind_s):
        if b > caught_up_s and start is None:
            start = k
        elif b <= caught_up_s and start is not None:
            out.append((start, k))
            start = None
    if start is not None:
        out.append((start, len(behind_s)))
    return out


def stream_score(
    *,
    behind_s: Sequence[float],
    step_s: float,
    cost_usd: float,
    oracle_cost_usd: float | None,
    actions: int,
    caught_up_s: float,
) -> StreamScores:
    """`behind_s[k]`: seconds behind at the end of step k. An episode starting at step k (behind at its end)
    and ending at step e (caught up at its end) took (e − k) · Δt to catch up: from the start of the step it
    fell behind in to the end of the step it caught up in, less one step (the step it caught up in)."""
    if not behind_s:
        raise ValueError("no step to score")
    eps = behind_episodes(behind_s, caught_up_s)
    n = len(behind_s)
    ended = [(e - k) * step_s for k, e in eps if e < n]
    ratio = None
    if oracle_cost_usd is not None and oracle_cost_usd > 0:
        ratio = cost_usd / oracle_cost_usd
    elif oracle_cost_usd == 0 and cost_usd == 0:
        ratio = 1.0
    return StreamScores(
        cost_usd=cost_usd,
        cost_ratio_vs_oracle=ratio,
        p95_s_behind=percentile(behind_s, 95.0),
        max_s_behind=max(behind_s),
        time_behind_pct=100.0 * sum(e - k for k, e in eps) / n,
        falls_behind=len(eps),
        catch_up_s_p50=percentile(ended, 50.0) if ended else None,
        catch_up_s_max=max(ended) if ended else None,
        still_behind_at_end=bool(eps) and eps[-1][1] == n,
        actions=actions,
    )


# --- a synthetic stream -------------------------------------------------------------------------------------
def synthetic_stream(
    *,
    days: float = 7.0,
    step_s: int = 60,
    peak_rows_per_s: float = 150_000.0,
    trough_fraction: float = 0.25,
    bursts_per_hour: float = 0.5,
    seed: int = 1,
) -> Trace:
    """Input rows/s: a daily rhythm (trough at 08:00, peak at 20:00) with slow AR(1) noise (5 %, one-hour
    correlation), plus bursts: Poisson arrivals (`bursts_per_hour`), each multiplying the rate by 1.5–3 for
    5–30 minutes (a campaign, a replayed partition, a backfill). Deterministic for a seed; rescaled so that
    its maximum is `peak_rows_per_s`."""
    rng = random.Random(f"streaming:{seed}")  # noqa: S311 - reproducible simulation, not security
    n = max(1, round(days * DAY_S / step_s))
    rho = math.exp(-step_s / 3600.0)
    sigma = 0.05 * math.sqrt(1 - rho * rho)
    noise = 0.0
    level: list[float] = []
    for k in range(n):
        phase = (k * step_s / DAY_S - 8 / 24) * 2 * math.pi  # lowest at 08:00, highest 12 h later
        shape = 0.5 - 0.5 * math.cos(phase)
        noise = rho * noise + rng.gauss(0.0, sigma)
        level.append(max(0.0, (trough_fraction + (1 - trough_fraction) * shape) * (1 + noise)))
    factor = [1.0] * n
    horizon = n * step_s
    t = rng.expovariate(bursts_per_hour / 3600.0) if bursts_per_hour > 0 else math.inf
    while t < horizon:
        mult = rng.uniform(1.5, 3.0)
        duration = rng.uniform(300.0, 1800.0)
        for k in range(math.ceil(t / step_s), min(n, math.ceil((t + duration) / step_s))):
            factor[k] = max(factor[k], mult)
        t += rng.expovariate(bursts_per_hour / 3600.0)
    raw = [lv * f for lv, f in zip(level, factor, strict=True)]
    peak = max(raw) or 1.0
    return Trace(
        tuple(float(k * step_s) for k in range(n)),
        tuple(v * peak_rows_per_s / peak for v in raw),
        "synthetic:streaming",
    )
