"""Trace loading, validation, holding and rescaling; the synthetic shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_helpers import TRACES
from sparkscale_tools.replay import synthetic
from sparkscale_tools.replay.trace import TraceError, load_csv


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_a_coarse_trace_holds_each_value_until_the_next_point(tmp_path: Path) -> None:
    t = load_csv(write(tmp_path, "time_s,demand_gib\n0,10\n300,40\n600,5\n"))
    # end = last point + median spacing (300 s) = 900 s → 15 steps of 60 s: 5 × 10, 5 × 40, 5 × 5
    assert t.resample(60) == [10.0] * 5 + [40.0] * 5 + [5.0] * 5
    assert t.value_at(299.9) == 10.0
    assert t.value_at(300) == 40.0


def test_a_finer_trace_is_sampled_at_the_steps(tmp_path: Path) -> None:
    t = load_csv(write(tmp_path, "time_s,demand_gib\n0,1\n30,2\n60,3\n90,4\n"))
    # end = 90 + 30 = 120 → steps at 0 and 60
    assert t.resample(60) == [1.0, 3.0]


def test_any_numeric_column_and_peak_rescaling(tmp_path: Path) -> None:
    p = write(tmp_path, "time_s,cpu,mem\n0,1,2\n60,3,8\n")
    t = load_csv(p, column="mem", peak_gib=100)
    assert t.demand_gib == (25.0, 100.0)
    assert load_csv(p, column="cpu").demand_gib == (1.0, 3.0)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", "demand_gib", "empty file"),
        ("time_s,demand_gib\n", "demand_gib", "no data rows"),
        ("time_s,other\n0,1\n", "demand_gib", "no column 'demand_gib'"),
        ("t,demand_gib\n0,1\n", "demand_gib", "no 'time_s' column"),
        ("time_s,demand_gib\n0,abc\n", "demand_gib", "line 2: demand_gib is not a number: 'abc'"),
        ("time_s,demand_gib\n0,1\n60,nan\n", "demand_gib", "not a finite number"),
        ("time_s,demand_gib\n60,1\n0,2\n", "demand_gib", "unsorted"),
        ("time_s,demand_gib\n0,1\n0,2\n", "demand_gib", "unsorted"),
        ("time_s,demand_gib\n-60,1\n0,2\n", "demand_gib", "negative time"),
        ("time_s,demand_gib\n0,-1\n", "demand_gib", "negative demand"),
        ("time_s,demand_gib\n0\n", "demand_gib", "1 fields, expected 2"),
    ],
)
def test_bad_input_raises_one_clear_line(tmp_path: Path, text: str, column: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(TraceError) as err:
        load_csv(p, column=column)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(p) in str(err.value)


def test_missing_file_and_all_zero_rescale(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="every demand is 0"):
        load_csv(write(tmp_path, "time_s,demand_gib\n0,0\n"), peak_gib=10)


def test_the_bundled_traces_load() -> None:
    for name, peak, days in [
        ("google2019_assigned_mem.csv", 2048, 28),
        ("azure2019_assigned_mem.csv", 2048, 30),
        ("swim_fb2009_hadoop.csv", 4096, 1),
    ]:
        t = load_csv(TRACES / name)
        assert t.peak_gib == pytest.approx(peak)
        assert t.end_s == pytest.approx(days * 86_400, rel=0.01)


def test_synthetic_shapes_are_deterministic_and_peak_scaled() -> None:
    a = synthetic.diurnal(days=2, peak_gib=500, seed=3)
    assert a == synthetic.diurnal(days=2, peak_gib=500, seed=3)
    assert a != synthetic.diurnal(days=2, peak_gib=500, seed=4)
    assert max(a.demand_gib) == pytest.approx(500)
    # trough near 03:00, peak near 15:00 each day
    day = a.demand_gib[: 86_400 // 300]
    assert day.index(max(day)) * 300 / 3600 == pytest.approx(15, abs=2.5)
    b = synthetic.bursty_batch(days=1, peak_gib=800, seed=3)
    assert b == synthetic.bursty_batch(days=1, peak_gib=800, seed=3)
    assert max(b.demand_gib) == pytest.approx(800)
    assert min(b.demand_gib) < 0.2 * 800  # a low baseline between bursts
