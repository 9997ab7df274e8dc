"""Demand traces: memory (GiB) the workload wants over time.

A trace is a CSV with a header row, a `time_s` column (seconds from the start, non-negative, strictly
increasing) and one numeric demand column (`demand_gib` by default, any other with `column=`). Each value
holds until the next point (a 300 s trace replayed at 60 s steps repeats each value five times). `peak_gib`
rescales the whole trace so that its maximum is that many GiB.

Bad input raises `TraceError` with one line saying what and where; the CLI prints it and exits 2.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

TIME_COLUMN = "time_s"
DEFAULT_COLUMN = "demand_gib"


class TraceError(ValueError):
    """A trace that cannot be replayed; the message is one line naming the file, row and reason."""


@dataclass(frozen=True)
class Trace:
    """Points (time_s, demand_gib), time strictly increasing from >= 0; demand >= 0."""

    times_s: tuple[float, ...]
    demand_gib: tuple[float, ...]
    name: str = "trace"

    def __post_init__(self) -> None:
        if not self.times_s:
            raise TraceError(f"{self.name}: no data rows")
        if len(self.times_s) != len(self.demand_gib):
            raise TraceError(f"{self.name}: {len(self.times_s)} times but {len(self.demand_gib)} values")
        previous = -math.inf
        for i, (t, d) in enumerate(zip(self.times_s, self.demand_gib, strict=True)):
            if not (math.isfinite(t) and math.isfinite(d)):
                raise TraceError(f"{self.name}: point {i + 1}: not a finite number")
            if t < 0:
                raise TraceError(f"{self.name}: point {i + 1}: negative time {t:g} s")
            if t <= previous:
                raise TraceError(
                    f"{self.name}: point {i + 1}: time {t:g} s is not after {previous:g} s (unsorted)"
                )
            if d < 0:
                raise TraceError(f"{self.name}: point {i + 1}: negative demand {d:g}")
            previous = t

    @property
    def peak_gib(self) -> float:
        return max(self.demand_gib)

    @property
    def end_s(self) -> float:
        """The time the trace covers up to: the last point plus the median spacing (the last value holds for
        one more interval), or 60 s for a single point."""
        if len(self.times_s) == 1:
            return self.times_s[0] + 60.0
        gaps = sorted(b - a for a, b in zip(self.times_s, self.times_s[1:], strict=False))
        return self.times_s[-1] + gaps[len(gaps) // 2]

    def value_at(self, t_s: float) -> float:
        """The demand at `t_s`: the last point at or before it (the first point before the trace starts)."""
        i = bisect.bisect_right(self.times_s, t_s) - 1
        return self.demand_gib[max(i, 0)]

    def resample(self, step_s: float, duration_s: float | None = None) -> list[float]:
        """Demand at 0, step, 2·step, … up to (excluding) `duration_s` (default: the trace's end), holding
        each point's value until the next point."""
        if not step_s > 0:
            raise TraceError(f"step must be > 0 s, got {step_s:g}")
        end = self.end_s if duration_s is None else duration_s
        n = max(1, math.ceil(end / step_s - 1e-9))
        out: list[float] = []
        times, values = self.times_s, self.demand_gib
        j, last = 0, len(times) - 1
        for k in range(n):
            t = k * step_s
            while j < last and times[j + 1] <= t:
                j += 1
            out.append(values[j])
        return out

    def rescaled(self, peak_gib: float) -> Trace:
        """The same shape with its maximum at `peak_gib` (an all-zero trace cannot be rescaled)."""
        if not (math.isfinite(peak_gib) and peak_gib > 0):
            raise TraceError(f"--peak-gib must be a positive number, got {peak_gib:g}")
        peak = self.peak_gib
        if peak <= 0:
            raise TraceError(f"{self.name}: every demand is 0, cannot rescale to a peak")
        f = peak_gib / peak
        return Trace(self.times_s, tuple(d * f for d in self.demand_gib), self.name)


def from_points(points: Iterable[tuple[float, float]], name: str = "trace") -> Trace:
    pts = list(points)
    return Trace(tuple(float(t) for t, _ in pts), tuple(float(d) for _, d in pts), name)


def parse_rows(rows: Sequence[Sequence[str]], *, column: str = DEFAULT_COLUMN, name: str = "trace") -> Trace:
    """Parse CSV rows (the first is the header)."""
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise TraceError(f"{name}: empty file (expected a header with {TIME_COLUMN!r} and {column!r})")
    header = [c.strip() for c in rows[0]]
    if TIME_COLUMN not in header:
        raise TraceError(f"{name}: no {TIME_COLUMN!r} column (columns: {', '.join(header)})")
    if column not in header:
        raise TraceError(f"{name}: no column {column!r} (columns: {', '.join(header)})")
    ti, di = header.index(TIME_COLUMN), header.index(column)
    times: list[float] = []
    values: list[float] = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) <= max(ti, di):
            raise TraceError(f"{name}: line {n}: {len(row)} fields, expected {len(header)}")
        times.append(_number(row[ti], name, n, TIME_COLUMN))
        values.append(_number(row[di], name, n, column))
    if not times:
        raise TraceError(f"{name}: no data rows after the header")
    return Trace(tuple(times), tuple(values), name)


def _number(text: str, name: str, line: int, column: str) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise TraceError(f"{name}: line {line}: {column} is not a number: {text.strip()!r}") from None
    if not math.isfinite(v):
        raise TraceError(f"{name}: line {line}: {column} is not a finite number: {text.strip()!r}")
    return v


def load_csv(path: str | Path, *, column: str = DEFAULT_COLUMN, peak_gib: float | None = None) -> Trace:
    """Read a trace CSV. Raises TraceError (one line) for a missing file, a missing column, a non-numeric
    cell, unsorted or negative time, a negative demand or an empty file."""
    trace = parse_rows(read_csv_rows(path), column=column, name=str(Path(path)))
    return trace.rescaled(peak_gib) if peak_gib is not None else trace


def read_csv_rows(path: str | Path) -> list[list[str]]:
    """A trace file's CSV rows (memory or stream); TraceError when it cannot be read or is not text."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))
    except OSError as exc:
        raise TraceError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(f"{p}: not a text CSV file: {exc}") from None


def to_csv_text(trace: Trace) -> str:
    lines = [f"{TIME_COLUMN},{DEFAULT_COLUMN}"]
    lines += [f"{t:g},{d:.6g}" for t, d in zip(trace.times_s, trace.demand_gib, strict=True)]
    return "\n".join(lines) + "\n"
