"""next_state and the JSON-safe state form."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import NOW, ago, cfg, cluster, group, metrics, yarn
from sparkscale.policy import (
    Decision,
    Direction,
    GroupTarget,
    Market,
    Recommendation,
    ScalerState,
    next_state,
    state_from_dict,
    state_to_dict,
)
from sparkscale.policy.model import BurstLevel

CONFIG = cfg()


def decision(direction=Direction.HOLD, *, current=2, target=2, dry_run=False, nodes=None, gib=None):
    t = GroupTarget("ig-a", "a", "r5.2xlarge", Market.SPOT, current, target, 0.16)
    return Decision(
        "j-TEST",
        NOW,
        direction,
        (t,),
        ("x.",),
        dry_run,
        desired_task_nodes=nodes,
        desired_task_memory_gib=gib,
    )


def ns(d, *, previous=None, c=None, m=None):
    return next_state(
        previous=previous or ScalerState(),
        decision=d,
        cluster=c or cluster(group("ig-a", requested=2)),
        metrics=m or metrics(**yarn(192, 50, AppsRunning=1)),
        now=NOW,
        config=CONFIG,
    )


@pytest.mark.parametrize(
    ("d", "out", "in_"),
    [
        (decision(Direction.OUT, target=3), NOW, None),
        (decision(Direction.IN, target=1), None, NOW),
        (decision(Direction.OUT, target=3, dry_run=True), None, None),  # a dry run changes nothing
        (decision(), None, None),
    ],
)
def test_last_actions(d, out, in_):
    s = ns(d)
    assert s.last_scale_out_at == out
    assert s.last_scale_in_at == in_


@pytest.mark.parametrize(
    ("values", "previous", "expected"),
    [
        ({"AppsRunning": 1}, ago(5000), NOW),  # active: now
        ({"AppsRunning": 0, "AppsPending": 0}, ago(5000), ago(5000)),  # idle: kept
        ({"AppsRunning": 0}, None, NOW),  # first observation starts the clock
        ({}, ago(10), ago(10)),  # unknown: kept
    ],
)
def test_last_active(values, previous, expected):
    s = ns(decision(), previous=ScalerState(last_active_at=previous), m=metrics(**values))
    assert s.last_active_at == expected


def test_recommendations_window():
    prev = ScalerState(
        recommendations=(Recommendation(ago(700), 9, 432.0), Recommendation(ago(100), 4, 192.0))
    )
    s = ns(decision(nodes=3, gib=144.0), previous=prev)
    # 700 s > scale_in_stabilization_s 600: dropped; this decision appended
    assert s.recommendations == (Recommendation(ago(100), 4, 192.0), Recommendation(NOW, 3, 144.0))
    assert ns(decision(), previous=prev).recommendations == (Recommendation(ago(100), 4, 192.0),)


def test_recommendations_are_capped():
    prev = ScalerState(recommendations=tuple(Recommendation(ago(1), 1, 1.0) for _ in range(300)))
    assert len(ns(decision(nodes=1, gib=1.0), previous=prev).recommendations) == 256


def test_shortfall_tracking():
    c = cluster(group("ig-a", requested=3, running=2), group("ig-b", requested=1, running=1))
    # a new shortfall starts now; ig-b has none
    assert ns(decision(), c=c).shortfall_since == {"ig-a": NOW}
    # an existing one keeps its start
    prev = ScalerState(shortfall_since={"ig-a": ago(400), "ig-b": ago(50)})
    assert ns(decision(), previous=prev, c=c).shortfall_since == {"ig-a": ago(400)}  # ig-b recovered
    # a group the decision grows keeps its clock: asking more of a group that does not deliver does not
    # postpone the spot fallback (nodes can now be added to a RESIZING group)
    grown = decision(Direction.OUT, current=3, target=4)
    assert ns(grown, previous=prev, c=c).shortfall_since == {"ig-a": ago(400)}
    # ... but a group that delivered nodes since it was last seen restarts it (the rest get their full time):
    # ig-a ran 1 node at the last decision and runs 2 now
    seen = replace(prev, shortfall_running={"ig-a": 1})
    s = ns(grown, previous=seen, c=c)
    assert s.shortfall_since == {"ig-a": NOW}
    assert s.shortfall_running == {"ig-a": 2}
    # no progress (still 2 running): the clock keeps its start
    assert ns(decision(), previous=replace(prev, shortfall_running={"ig-a": 2}), c=c).shortfall_since == {
        "ig-a": ago(400)
    }


def test_yarn_memory_scale_is_remembered():
    # settled cluster (CORE 2 + ig-a 2 running, 192 GiB derived), YARN reports 230.4 GiB: 1.2 measured
    c = cluster(group("ig-a", requested=2))
    s = ns(decision(), c=c, m=metrics(**yarn(230.4, 50, AppsRunning=1)))
    assert s.yarn_memory_scale == pytest.approx(1.2)
    # while a group resizes it cannot be measured: the last value stays
    busy = cluster(group("ig-a", requested=3, running=2))
    assert ns(decision(), previous=s, c=busy).yarn_memory_scale == pytest.approx(1.2)


def test_heap_pressure_since():
    # heap 80 % > 70 x 1.08 = 75.6 %: pressure from now on, and kept while it lasts
    pressed = metrics(**yarn(192, 50, AppsRunning=1, JvmHeapUsedPercent=80))
    s = ns(decision(), m=pressed)
    assert s.heap_pressure_since == NOW
    assert ns(
        decision(), previous=replace(s, heap_pressure_since=ago(120)), m=pressed
    ).heap_pressure_since == (ago(120))
    # back under the threshold (or no heap datapoint): cleared
    calm = metrics(**yarn(192, 50, AppsRunning=1, JvmHeapUsedPercent=75))
    assert ns(decision(), previous=s, m=calm).heap_pressure_since is None
    assert ns(decision(), previous=s).heap_pressure_since is None


@pytest.mark.parametrize(
    ("running", "err_age_s", "kept"),
    [
        (2, 30, True),  # still short: kept
        (2, 5000, True),
        (3, 30, True),  # delivered, but younger than spot_fallback_timeout_s 600: kept
        (3, 601, False),  # delivered and old: cleared
    ],
)
def test_capacity_errors_cleared_on_recovery(running, err_age_s, kept):
    c = cluster(group("ig-a", requested=3, running=running))
    prev = ScalerState(capacity_errors={"ig-a": ago(err_age_s), "ig-gone": ago(1)})
    s = ns(decision(current=3, target=3), previous=prev, c=c)
    assert ("ig-a" in s.capacity_errors) is kept
    assert "ig-gone" not in s.capacity_errors  # groups no longer in the cluster are forgotten


def test_round_trip_is_json_safe():
    s = ScalerState(
        last_scale_out_at=ago(10),
        last_active_at=ago(3),
        recommendations=(Recommendation(ago(5), 3, 144.0), Recommendation(ago(1), 2, None)),
        shortfall_since={"ig-a": ago(100)},
        capacity_errors={"ig-b": ago(50)},
        shortfall_running={"ig-a": 1},
        yarn_memory_scale=1.2,
        heap_pressure_since=ago(30),
    )
    d = state_to_dict(s)
    assert state_from_dict(json.loads(json.dumps(d))) == s
    assert d["last_scale_out_at"] == "2025-06-01T11:59:50+00:00"


def test_empty_dict_is_a_fresh_state_and_decimals_are_accepted():
    assert state_from_dict({}) == ScalerState()
    s = state_from_dict(
        {
            "recommendations": [
                {"at": "2025-06-01T12:00:00Z", "task_nodes": Decimal(3), "task_memory_gib": Decimal("1.5")}
            ]
        }
    )
    assert s.recommendations == (Recommendation(NOW, 3, 1.5),)
    # naive datetimes are read as UTC
    assert state_from_dict({"last_active_at": "2025-06-01T12:00:00"}).last_active_at == NOW


def test_a_burst_level_stored_before_its_need_was_kept_reads_with_need_unknown():
    raw = {"burst_levels": [{"since": "2025-06-01T12:00:00+00:00", "base_gib": 192}]}
    (level,) = state_from_dict(raw).burst_levels
    assert (level.base_gib, level.need_gib) == (192.0, 0.0)  # 0: not known, no growth judged against it


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"last_scale_out_at": "yesterday"}, "last_scale_out_at"),
        ({"last_scale_in_at": 5}, "last_scale_in_at"),
        ({"recommendations": "x"}, "recommendations"),
        ({"recommendations": [{"at": "2025-06-01T12:00:00Z"}]}, "recommendations[0]"),
        ({"recommendations": [5]}, "recommendations[0]"),
        ({"shortfall_since": []}, "shortfall_since"),
        ({"capacity_errors": {"ig-a": None}}, "capacity_errors.ig-a"),
        ({"shortfall_running": []}, "shortfall_running"),
        ({"shortfall_running": {"ig-a": "two"}}, "shortfall_running.ig-a"),
        ({"yarn_memory_scale": "big"}, "yarn_memory_scale"),
        ({"yarn_memory_scale": -1}, "yarn_memory_scale"),
        ({"heap_pressure_since": 3}, "heap_pressure_since"),
        ({"burst_levels": {"a": 1}}, "burst_levels"),
        ({"burst_levels": [{"since": "soon", "base_gib": 1}]}, "burst_levels[0]"),
        ({"burst_levels": [{"since": "2025-06-01T12:00:00+00:00"}]}, "burst_levels[0]"),
        (
            {"burst_levels": [{"since": "2025-06-01T12:00:00+00:00", "base_gib": 1, "need_gib": "x"}]},
            "burst_levels",
        ),
        ({"burst_short": "yes"}, "burst_short"),
        ({"burst_out_of_memory": 1}, "burst_out_of_memory"),
        ({"burst_durations_s": [1, "long"]}, "burst_durations_s"),
    ],
)
def test_malformed_state_raises_value_error_naming_the_field(raw, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        state_from_dict(raw)


when = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
states = st.builds(
    ScalerState,
    last_scale_out_at=st.none() | when,
    last_scale_in_at=st.none() | when,
    last_active_at=st.none() | when,
    recommendations=st.lists(
        st.builds(Recommendation, when, st.integers(0, 500), st.none() | st.floats(0, 1e5, allow_nan=False)),
        max_size=5,
    ).map(tuple),
    shortfall_since=st.dictionaries(st.text("igab-0123", min_size=1, max_size=6), when, max_size=3),
    capacity_errors=st.dictionaries(st.text("igab-0123", min_size=1, max_size=6), when, max_size=3),
    shortfall_running=st.dictionaries(st.text("igab-0123", min_size=1, max_size=6), st.integers(0, 50)),
    yarn_memory_scale=st.none() | st.floats(0.5, 2.0),
    heap_pressure_since=st.none() | when,
    burst_levels=st.lists(
        st.builds(BurstLevel, when, st.floats(0, 1e5, allow_nan=False), st.floats(0, 1e5, allow_nan=False)),
        max_size=3,
    ).map(tuple),
    burst_short=st.booleans(),
    burst_out_of_memory=st.booleans(),
    burst_durations_s=st.lists(st.floats(0, 1e6, allow_nan=False), max_size=4).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(states)
def test_round_trip_property(s):
    assert state_from_dict(json.loads(json.dumps(state_to_dict(s)))) == s


def test_next_state_uses_target_for_an_applied_decision():
    # applied OUT to 4 on a group with 2 running: the shortfall starts now
    c = cluster(group("ig-a", requested=2))
    s = ns(decision(Direction.OUT, current=2, target=4), c=c)
    assert s.shortfall_since == {"ig-a": NOW}
    # the same decision as a dry run: nothing requested, no shortfall
    s = ns(replace(decision(Direction.OUT, current=2, target=4), dry_run=True), c=c)
    assert s.shortfall_since == {}
