"""The foresight bound (the oracle's nodes billed from request to termination) and the whole-node floor."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sparkscale_tools.replay.bounds import (
    cheapest_cover_usd,
    delayed_information_bound_usd,
    floor_rates,
    foresight_cost_usd,
    whole_node_floor_usd,
    windowed_max,
)


def test_windowed_max_by_hand() -> None:
    #        k:  0  1  2  3  4  5
    values = [1, 0, 0, 5, 0, 2]
    # before=1, after=2: k=0 -> [0..2] = 1; k=1 -> [0..3] = 5; k=2 -> [1..4] = 5; k=3 -> [2..5] = 5;
    # k=4 -> [3..5] = 5; k=5 -> [4..5] = 2
    assert windowed_max(values, before=1, after=2) == [1, 5, 5, 5, 5, 2]
    assert windowed_max(values, before=0, after=0) == values
    assert windowed_max([], before=3, after=3) == []


@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=60),
    st.integers(min_value=0, max_value=8),
    st.integers(min_value=0, max_value=8),
)
def test_windowed_max_matches_the_definition(values: list[float], before: int, after: int) -> None:
    expect = [max(values[max(0, k - before) : k + after + 1]) for k in range(len(values))]
    assert windowed_max(values, before=before, after=after) == expect


def test_windowed_max_rejects_negative_widths() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        windowed_max([1.0], before=-1, after=0)


def test_one_job_is_billed_from_request_to_termination() -> None:
    # one node at 2 USD/h is needed for steps 10..19 (10 minutes at 60 s steps) in a 40-step run. With 360 s
    # provisioning it is requested at step 4 (billed from step 4), and with 120 s decommission it is billed
    # through step 21: steps 4..21 = 18 steps = 0.3 h -> 0.60 USD, against the oracle's 10 steps = 0.333 USD.
    rates = [0.0] * 40
    rates[10:20] = [2.0] * 10
    bound = foresight_cost_usd(rates, step_s=60, provisioning_s=360, decommission_s=120)
    assert bound == pytest.approx(18 * 2.0 / 60)
    no_delay = foresight_cost_usd(rates, step_s=60, provisioning_s=0, decommission_s=0)
    assert no_delay == pytest.approx(10 * 2.0 / 60)


def test_partial_steps_are_not_counted() -> None:
    # 390 s of provisioning covers 6 whole 60 s steps before the need (the 7th only in part): 6 are billed
    rates = [0.0] * 20
    rates[10] = 1.0
    assert foresight_cost_usd(rates, step_s=60, provisioning_s=390, decommission_s=0) == pytest.approx(7 / 60)


@given(
    st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=60),
    st.integers(min_value=0, max_value=900),
    st.integers(min_value=0, max_value=900),
)
def test_the_bound_is_never_below_the_oracle(rates: list[float], prov: int, decom: int) -> None:
    oracle = sum(rates) * 60 / 3600
    assert foresight_cost_usd(rates, step_s=60, provisioning_s=prov, decommission_s=decom) >= oracle - 1e-9


def test_cheapest_cover_by_hand() -> None:
    # a big node of 96 GiB at 0.28 USD/h and a small one of 48 GiB at 0.17: 1..48 GiB -> one small (0.17);
    # 49..96 -> one big (0.28, cheaper than two small at 0.34); 97..144 -> big + small (0.45); 145..192 ->
    # two big (0.56)
    table = cheapest_cover_usd(192, [(96.0, 0.28), (48.0, 0.17)])
    assert table[0] == 0.0
    assert table[1] == table[48] == pytest.approx(0.17)
    assert table[49] == table[96] == pytest.approx(0.28)
    assert table[97] == table[144] == pytest.approx(0.45)
    assert table[145] == table[192] == pytest.approx(0.56)


def test_sizes_round_up_so_the_floor_stays_a_lower_bound() -> None:
    # a node of 47.5 usable GiB counts as 48: 48 GiB is covered by one node (really it takes two)
    assert cheapest_cover_usd(48, [(47.5, 1.0)])[48] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no offer"):
        cheapest_cover_usd(10, [(0.0, 1.0)])


def test_whole_node_floor_by_hand() -> None:
    # core 48 GiB; demand 30, 100, 200 GiB over three 60 s steps -> above core 0, 52, 152 GiB -> 0 + 0.28 +
    # 0.56 (152 > 144) = 0.84 USD per hour over one-minute steps -> 0.84 / 60 USD
    rates = floor_rates([30.0, 100.0, 200.0], core_gib=48.0, offers=[(96.0, 0.28), (48.0, 0.17)])
    assert rates == pytest.approx([0.0, 0.28, 0.56])
    assert whole_node_floor_usd(rates, step_s=60) == pytest.approx(0.84 / 60)


@given(st.lists(st.floats(min_value=0, max_value=2000, allow_nan=False), min_size=1, max_size=30))
def test_the_floor_is_never_above_the_single_offering_oracle(demand: list[float]) -> None:
    offers = [(96.0, 0.2822), (48.0, 0.1714), (96.0, 0.3326)]
    oracle = sum(math.ceil(max(0.0, d - 96.0) / 96.0 - 1e-9) * 0.2822 for d in demand) * 60 / 3600
    rates = floor_rates(demand, core_gib=96.0, offers=offers)
    assert whole_node_floor_usd(rates, step_s=60) <= oracle + 1e-9


@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=40))
def test_the_floor_rate_grows_with_demand(demand: list[int]) -> None:
    # what the foresight bound relies on: a cover of more memory also covers less
    rates = floor_rates(sorted(float(d) for d in demand), core_gib=0.0, offers=[(96.0, 0.28), (48.0, 0.17)])
    assert rates == sorted(rates)


# --- the delayed-information bound --------------------------------------------------------------------------
def _best_monotone_usd(demand, *, delay, short_steps, unit):
    """Brute force: every non-decreasing map from the observed demand (delay steps earlier) to a whole-GiB
    level, the cheapest one leaving at most short_steps steps short (core 0, 1 USD per GiB-step)."""
    seen, need = demand[: len(demand) - delay], demand[delay:]
    xs = sorted(set(seen))
    best = math.inf
    for levels in itertools.product(range(max(need) + 1), repeat=len(xs)):
        if any(a > b for a, b in itertools.pairwise(levels)):
            continue
        f = dict(zip(xs, levels, strict=True))
        short = sum(f[x] < d for x, d in zip(seen, need, strict=True))
        if short <= short_steps:
            best = min(best, unit * sum(f[x] for x in seen))
    return best


def _bound(demand, *, delay, short_steps):
    # 3600 USD per GiB-hour at 1 s steps: 1 USD per GiB per step; whole GiB
    return delayed_information_bound_usd(
        demand,
        core_gib=0.0,
        usd_per_gib_hour=3600.0,
        step_s=1.0,
        delay_s=delay,
        short_steps=short_steps,
        grid_gib=1.0,
    )


def test_delayed_bound_by_hand() -> None:
    demand = [0, 4, 4, 0, 0, 4, 4, 0]
    # no delay, nothing short: the level follows the demand, 4 GiB in 4 steps = 16 GiB-steps (the floor)
    assert _bound(demand, delay=0, short_steps=0) == pytest.approx(16.0, abs=1e-6)
    # one step of delay: it sees 0 before each burst's first step (0 -> 4) and after its end (4 -> 0), so
    # f(0) = 4 to serve every step: 4 GiB in all 7 steps = 28
    assert _bound(demand, delay=1, short_steps=0) == pytest.approx(28.0, abs=1e-6)
    # allowed 2 steps short (the bursts' first steps): f(0) = 0, f(4) = 4, seen 4 times: 16 (f(4) = 0 leaves
    # 4 steps short). The dual of this 0/1 problem may fall below it (here 14), never above
    assert 0.0 < _bound(demand, delay=1, short_steps=2) <= 16.0 + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=2, max_size=7),
    st.integers(0, 2),
    st.integers(0, 3),
)
def test_delayed_bound_never_exceeds_the_best_monotone_policy(demand, delay, short_steps) -> None:
    if delay >= len(demand):
        return
    best = _best_monotone_usd(demand, delay=delay, short_steps=short_steps, unit=1.0)
    assert _bound(demand, delay=delay, short_steps=short_steps) <= best + 1e-6


def test_delayed_bound_grows_with_the_delay_on_a_burst() -> None:
    # a 30-step burst of 100 GiB every 100 steps: the later it sees the demand, the more it pays at equal
    # shortfall (10 % of the steps short)
    demand = ([0.0] * 70 + [100.0] * 30) * 5
    b = [_bound(demand, delay=d, short_steps=50) for d in (0, 5, 20)]
    assert b[0] <= b[1] + 1e-6 <= b[2] + 2e-6
    assert b[2] > b[0]
