"""The schedule's plan: the rate budget from AWS's default rates, alarms first, the others in turns, spread
over the period, leaving out the clusters recently found at their minimum; the message format (bad bodies
are rejected, never evaluated); and how soon a failed message comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sparkscale.config import Config
from sparkscale.errors import BadEvent
from sparkscale.ports import SizeObservation
from sparkscale.usecases.fanout import (
    RETRY_MAX_S,
    Evaluation,
    budget,
    due,
    max_clusters,
    parse_body,
    plan,
    retry_delay_s,
)

NOW = datetime(2026, 3, 2, 12, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("settings", "per_s", "bound_by", "clusters"),
    [
        # 50 % x DescribeCluster's 1 call/s refill / 1 call per evaluation = 0.5/s; x 120 s = 60
        ({}, 0.5, "emr:DescribeCluster", 60),
        # the quota raised to 10/s: 50 % x 10 = 5/s (the account-wide EMR rate raised alike: 20/2 x 50 %)
        ({"emr_read_rate_per_s": 10.0}, 5.0, "emr:DescribeCluster", 600),
        # all of it and a 5-minute period: 1/s x 300 s
        ({"api_share_pct": 100.0, "reconcile_rate_s": 300}, 1.0, "emr:DescribeCluster", 300),
        # raised far: the spot prices' 20/s x 50 % = 10/s binds (counted once per evaluation: an upper bound,
        # they are cached per zone and type set)
        ({"emr_read_rate_per_s": 100.0}, 10.0, "ec2:DescribeSpotPriceHistory", 1200),
    ],
)
def test_budget_is_the_tightest_share_of_the_rates(
    settings: dict[str, float], per_s: float, bound_by: str, clusters: int
) -> None:
    config = Config.from_mapping(settings)
    b = budget(config)
    assert b.evaluations_per_s == pytest.approx(per_s)
    assert b.bound_by == bound_by
    assert max_clusters(config) == clusters


def test_alarms_go_first_undelayed_and_the_rest_spread_over_the_period() -> None:
    clusters = [f"j-{i:04d}" for i in range(40)]
    p = plan(clusters, {"j-0007", "j-0030"}, now=NOW, config=Config())
    assert [e.cluster_id for e in p.evaluations[:2]] == ["j-0007", "j-0030"]
    assert all(e.in_alarm and e.delay_s == 0 for e in p.evaluations[:2])
    rest = p.evaluations[2:]
    assert len(rest) == 38
    assert not p.deferred
    delays = [e.delay_s for e in rest]
    assert delays == sorted(delays)
    assert delays[0] == 0
    assert delays[-1] < 120
    assert len({e.period for e in p.evaluations}) == 1
    assert p.evaluations[0].period == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_over_the_budget_the_others_take_turns_and_each_comes_within_a_few_periods() -> None:
    config = Config()  # 60 a period
    clusters = [f"j-{i:04d}" for i in range(500)]
    alarmed = {f"j-{i:04d}" for i in range(0, 500, 50)}  # 10 in ALARM: evaluated every period
    seen: set[str] = set()
    turns = 9  # 490 others over 50 places a period: ceil(490 / 50) = 10 turns at most
    for k in range(turns + 1):
        p = plan(clusters, alarmed, now=datetime.fromtimestamp(NOW.timestamp() + 120 * k, UTC), config=config)
        ids = [e.cluster_id for e in p.evaluations]
        assert len(ids) == len(set(ids)) <= p.room == 60
        assert alarmed <= set(ids)
        assert set(ids) | set(p.deferred) == set(clusters)
        seen |= set(ids)
    assert seen == set(clusters)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "not json",
        "[]",
        '{"v": 2, "cluster_id": "j-A", "period": "2026-03-02T12:00:00Z", "in_alarm": false}',
        '{"v": 1, "cluster_id": 7, "period": "2026-03-02T12:00:00Z", "in_alarm": false}',
        '{"v": 1, "cluster_id": "j-A", "period": "noon", "in_alarm": false}',
        '{"v": 1, "cluster_id": "j-A", "period": "2026-03-02T12:00:00Z", "in_alarm": "yes"}',
        '{"v": 1, "cluster_id": "j-OTHER", "period": "2026-03-02T12:00:00Z", "in_alarm": false}',
        '{"v": 1, "cluster_id": "j-A", "period": "2026-03-02T12:00:00Z", "in_alarm": false, '
        '"above_minimum": 1}',
    ],
)
def test_a_body_that_is_not_an_evaluation_of_a_managed_cluster_is_rejected(body: object) -> None:
    with pytest.raises(BadEvent):
        parse_body(body, managed=["j-A"])


def test_the_body_round_trips_and_the_key_is_per_cluster_and_period() -> None:
    e = Evaluation("j-A", datetime(2026, 3, 2, 12, 0, tzinfo=UTC), True, 17)
    back = parse_body(e.body(), managed=["j-A"])
    assert (back.cluster_id, back.period, back.in_alarm) == ("j-A", e.period, True)
    assert back.key == e.key == "j-A#2026-03-02T12:00:00Z"
    assert not back.above_minimum  # absent: an earlier version's message reads as before
    above = parse_body(Evaluation("j-A", e.period, False, 5, above_minimum=True).body(), managed=["j-A"])
    assert above.above_minimum
    assert above.key == e.key  # the same evaluation of the period


# --- the selection: which clusters without an alarm in ALARM need this period's evaluation ------------------
def _seen(age_s: float, *, at_minimum: bool = True, resizing: bool = False) -> SizeObservation:
    return SizeObservation(at_minimum, resizing, NOW - timedelta(seconds=age_s))


@pytest.mark.parametrize(
    ("observed", "recheck_s", "expected"),
    [
        (None, 600, True),  # never evaluated, or its record lost: evaluate
        (_seen(0), 600, False),  # found at its minimum just now
        (_seen(599), 600, False),  # ... 599 s ago: still trusted
        (_seen(600), 600, True),  # ... 600 s ago: as old as the recheck allows: evaluate
        (_seen(3 * 86400), 600, True),  # a record days old
        (_seen(30, at_minimum=False), 600, True),  # above (or below) its minimum
        (_seen(30, resizing=True), 600, True),  # a resize in flight
        (_seen(-59), 600, False),  # dated a little ahead (the writer's clock): within MAX_CLOCK_SKEW_S
        (_seen(-61), 600, True),  # dated far ahead: not trusted
        (_seen(0), 0, True),  # selection off: every cluster, every period
    ],
)
def test_due_trusts_only_a_fresh_at_minimum_record(
    observed: SizeObservation | None, recheck_s: int, expected: bool
) -> None:
    config = Config.from_mapping({"at_minimum_recheck_s": recheck_s})
    assert due(observed, now=NOW, config=config) is expected


def test_the_plan_leaves_out_clusters_recently_found_at_their_minimum_but_never_one_in_alarm() -> None:
    clusters = [f"j-{i:04d}" for i in range(10)]
    observed = {
        "j-0000": _seen(10),  # at minimum, fresh: left out
        "j-0001": _seen(10),  # at minimum, fresh, but in ALARM: queued first
        "j-0002": _seen(10, at_minimum=False),  # above its minimum: queued
        "j-0003": _seen(10, resizing=True),  # resizing: queued
        "j-0004": _seen(900),  # stale: queued
        "j-0005": _seen(10),
        "j-0006": _seen(10),
        # j-0007 .. j-0009: no record (never evaluated): queued
    }
    p = plan(clusters, {"j-0001"}, now=NOW, config=Config(), observed=observed)
    ids = [e.cluster_id for e in p.evaluations]
    assert ids == ["j-0001", "j-0002", "j-0003", "j-0004", "j-0007", "j-0008", "j-0009"]
    assert p.at_minimum == ("j-0000", "j-0005", "j-0006")
    assert p.evaluations[0].in_alarm
    # recorded above its minimum or resizing, freshly: evaluated in full (no at-minimum check, no 2nd read);
    # an old record or none: the fanout function's at-minimum check decides
    assert [e.cluster_id for e in p.evaluations if e.above_minimum] == ["j-0002", "j-0003"]
    # the queued ones still spread over the period
    assert [e.delay_s for e in p.evaluations[1:]] == [(i * 120) // 6 for i in range(6)]
    # without records (the store keeps none, or the read failed), every cluster is queued
    assert len(plan(clusters, {"j-0001"}, now=NOW, config=Config()).evaluations) == 10


def test_the_budget_counts_only_the_queued_clusters() -> None:
    """500 clusters at the default budget of 60 a period: with 450 recently found at their minimum, the 10 in
    ALARM and 40 others all fit in one period, none deferred."""
    clusters = [f"j-{i:04d}" for i in range(500)]
    alarmed = {f"j-{i:04d}" for i in range(10)}
    observed = {c: _seen(60) for c in clusters[50:]}
    p = plan(clusters, alarmed, now=NOW, config=Config(), observed=observed)
    assert len(p.evaluations) == 50 <= p.room == 60
    assert not p.deferred
    assert len(p.at_minimum) == 450


@pytest.mark.parametrize(
    ("receive_count", "jitter", "expected"),
    [
        (1, 1.0, 10),  # RETRY_FIRST_S
        (1, 0.0, 5),  # half of it at the least jitter
        (2, 1.0, 20),  # doubling with each receive
        (3, 1.0, 40),
        (5, 1.0, 160),
        (6, 1.0, 300),  # capped at RETRY_MAX_S (under the queue's 360 s visibility timeout)
        (99, 1.0, 300),
        (0, 1.0, 10),  # a missing or bad count reads as the first receive
        (-3, 2.0, 10),  # a jitter out of [0, 1] is clamped
    ],
)
def test_a_failed_message_comes_back_in_seconds_doubling_with_each_receive(
    receive_count: int, jitter: float, expected: int
) -> None:
    assert retry_delay_s(receive_count, jitter) == expected
    assert retry_delay_s(receive_count, jitter) <= RETRY_MAX_S
