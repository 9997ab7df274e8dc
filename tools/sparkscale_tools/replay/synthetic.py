"""Two synthetic demand shapes for the benchmark and for trying the replay without a trace of one's own.

- `diurnal`: a smooth daily cycle (low at night, high in the afternoon) with slow noise: interactive and
  scheduled analytics. Smooth, so a good autoscaler should track it closely.
- `bursty_batch`: a low baseline, batch jobs arriving at random (Poisson) each wanting a block of memory for
  a random while, and a nightly ETL: steps up and down that only a fast reaction can follow.

Both are deterministic for a given seed (`random.Random(seed)`), rescaled so that their maximum is `peak_gib`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from sparkscale_tools.replay.trace import Trace

DAY_S = 86_400


def diurnal(
    *,
    days: float = 7.0,
    step_s: int = 300,
    peak_gib: float = 1024.0,
    trough_fraction: float = 0.2,
    seed: int = 1,
) -> Trace:
    """Demand = trough + (peak − trough) · (½ − ½·cos(2π·(t/day − 3/24)))^1.5 · (1 + slow noise); trough at
    03:00, peak at 15:00; AR(1) noise with 3 % standard deviation and a one-hour correlation time."""
    rng = random.Random(f"diurnal:{seed}")  # noqa: S311 - reproducible simulation, not security
    n = max(1, round(days * DAY_S / step_s))
    rho = math.exp(-step_s / 3600.0)
    sigma = 0.03 * math.sqrt(1 - rho * rho)
    noise = 0.0
    raw: list[float] = []
    for k in range(n):
        t = k * step_s
        phase = (t / DAY_S - 3 / 24) * 2 * math.pi
        shape = (0.5 - 0.5 * math.cos(phase)) ** 1.5
        noise = rho * noise + rng.gauss(0.0, sigma)
        level = trough_fraction + (1 - trough_fraction) * shape
        raw.append(max(0.0, level * (1 + noise)))
    return _to_trace(raw, step_s, peak_gib, "synthetic:diurnal")


def bursty_batch(
    *,
    days: float = 7.0,
    step_s: int = 60,
    peak_gib: float = 1024.0,
    jobs_per_hour: float = 1.5,
    seed: int = 1,
) -> Trace:
    """Baseline 5 % of peak; Poisson job arrivals (`jobs_per_hour`), each wanting 10–40 % of the peak for a
    log-normal duration (median 20 min, clipped to 5–120 min); a nightly ETL from 01:00 wanting 50 % for 2 h.
    The sum is clipped at the peak and rescaled so its maximum is `peak_gib`."""
    rng = random.Random(f"bursty:{seed}")  # noqa: S311 - reproducible simulation, not security
    n = max(1, round(days * DAY_S / step_s))
    level = [0.05] * n
    horizon = n * step_s
    t = rng.expovariate(jobs_per_hour / 3600.0)
    while t < horizon:
        size = rng.uniform(0.10, 0.40)
        duration = min(7200.0, max(300.0, rng.lognormvariate(math.log(1200.0), 0.7)))
        _add(level, t, duration, size, step_s)
        t += rng.expovariate(jobs_per_hour / 3600.0)
    d = 0
    while d * DAY_S < horizon:
        _add(level, d * DAY_S + 3600.0, 7200.0, 0.5, step_s)
        d += 1
    return _to_trace([min(v, 1.0) for v in level], step_s, peak_gib, "synthetic:bursty-batch")


def _add(level: list[float], start_s: float, duration_s: float, size: float, step_s: int) -> None:
    first = math.ceil(start_s / step_s)
    last = min(len(level), math.ceil((start_s + duration_s) / step_s))
    for k in range(first, last):
        level[k] += size


def _to_trace(raw: list[float], step_s: int, peak_gib: float, name: str) -> Trace:
    peak = max(raw) or 1.0
    return Trace(
        tuple(float(k * step_s) for k in range(len(raw))), tuple(v * peak_gib / peak for v in raw), name
    )


GENERATORS: dict[str, Callable[..., Trace]] = {"diurnal": diurnal, "bursty-batch": bursty_batch}
