"""The schedule's plan: the rate budget from AWS's default rates, alarms first, the others in turns, spread
over the period; and the message format (bad bodies are rejected, never evaluated)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sparkscale.config import Config
from sparkscale.errors import BadEvent
from sparkscale.usecases.fanout import Evaluation, budget, max_clusters, parse_body, plan

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
