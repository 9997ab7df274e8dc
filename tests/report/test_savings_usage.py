"""sparkscale's TASK nodes from its audit records (usecases/savings.py): node-seconds, the per-second bill
with a one-minute minimum per node, peak, average, time at max, actions; hand-computed on small cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sparkscale.usecases.savings import MIN_BILLED_S, task_usage

from tests.digest.support import PRICE, record

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)


def test_steps_node_hours_and_cost_by_hand() -> None:
    # 2 nodes from the start (there before it), 2 -> 5 at 01:00, 5 -> 1 at 03:00, until 04:00:
    # node-hours = 2*1 + 5*2 + 1*1 = 13; at $0.25 per node-hour: $3.25 (no node lives under a minute)
    records = [record(T0 + HOUR, 2, 5), record(T0 + 3 * HOUR, 5, 1)]
    u = task_usage("j-DIGEST1", records, T0, T0 + 4 * HOUR)
    assert u is not None
    assert u.node_hours == pytest.approx(13.0)
    assert u.cost_usd == pytest.approx(13.0 * PRICE)
    assert (u.peak_nodes, u.scale_outs, u.scale_ins, u.records) == (5, 1, 1, 2)
    assert u.average_nodes == pytest.approx(13.0 / 4)
    assert [n for _, n in u.steps] == [2, 5, 1]
    assert u.nodes_at(T0 + 2 * HOUR) == 5
    assert u.groups[0].price_source == "decisions"


def test_a_node_removed_within_a_minute_is_billed_a_minute() -> None:
    # 0 -> 3 at 00:10, 3 -> 1 twenty seconds later: the two newest nodes lived 20 s, billed 60 s each;
    # the one left lives from 00:10:00 to 01:00 (3000 s) and is still there: billed as it ran
    start = T0 + timedelta(minutes=10)
    records = [record(start, 0, 3, codes=()), record(start + timedelta(seconds=20), 3, 1, codes=())]
    u = task_usage("j-DIGEST1", records, T0, T0 + HOUR)
    assert u is not None
    g = u.groups[0]
    assert g.node_s == pytest.approx(2 * 20 + 3000)
    assert g.billed_node_s == pytest.approx(2 * MIN_BILLED_S + 3000)
    assert u.cost_usd == pytest.approx((2 * 60 + 3000) * PRICE / 3600)


def test_holds_dry_runs_and_refused_resizes_leave_the_nodes_where_they_were() -> None:
    records = [
        record(T0 + HOUR, 2, 6, dry_run=True),
        record(T0 + 2 * HOUR, 2, 6, not_applied="throttled"),
        record(T0 + 3 * HOUR, 2, 2),
    ]
    u = task_usage("j-DIGEST1", records, T0, T0 + 4 * HOUR)
    assert u is not None
    assert (u.node_hours, u.peak_nodes, u.scale_outs, u.scale_ins) == (8.0, 2, 0, 0)


def test_time_at_max_and_prices_from_a_price_function() -> None:
    records = [record(T0 + HOUR, 2, 4, at_max=True), record(T0 + 2.5 * HOUR, 4, 4)]
    u = task_usage(
        "j-DIGEST1", records, T0, T0 + 3 * HOUR, price_of=lambda gid, it, m: 0.1, price_source="spot history"
    )
    assert u is not None
    assert u.at_max_s == pytest.approx(1.5 * 3600)
    # 2*1 + 4*2 = 10 node-hours at $0.10
    assert u.cost_usd == pytest.approx(1.0)
    assert u.groups[0].price_source == "spot history"


def test_no_record_in_the_period_and_bad_records() -> None:
    assert task_usage("j-DIGEST1", [record(T0 - HOUR, 0, 1)], T0, T0 + HOUR) is None
    bad: list[dict[str, object]] = [
        {"at": "yesterday"},
        {"targets": "x"},
        {"at": (T0 + HOUR).isoformat(), "targets": [{"group_id": "ig-1", "current": "many"}, 7]},
    ]
    u = task_usage("j-DIGEST1", [*bad, record(T0 + 2 * HOUR, 1, 1)], T0, T0 + 3 * HOUR)
    assert u is not None
    assert u.records == 2
    assert u.node_hours == pytest.approx(3.0)


def test_the_weekly_day_setting_is_checked() -> None:
    from sparkscale.config import Config, ConfigError

    assert Config().digest_weekly_day == "monday"
    assert Config.from_mapping({"digest_weekly_day": "never"}).digest_weekly_day == "never"
    with pytest.raises(ConfigError, match="digest_weekly_day"):
        Config.from_mapping({"digest_weekly_day": "Mon"})
