"""The digest's pure part: a cluster's day from hand-made audit records, the hour rule, the notice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sparkscale import names, notices
from sparkscale.config import Config, ConfigError
from sparkscale.policy.reasons import ReasonCode
from sparkscale.usecases.digest import day_bounds, digest_day, summarize

from tests.digest.support import PRICE, record

START = datetime(2026, 3, 10, tzinfo=UTC)
END = START + timedelta(days=1)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def test_no_record_that_day_is_none() -> None:
    outside = [record(START - timedelta(minutes=1), 2, 4), record(END, 2, 4)]
    assert summarize("j-DIGEST1", outside, START, END) is None
    assert summarize("j-DIGEST1", [], START, END) is None


def test_nodes_cost_actions_and_at_max_integrated_over_the_day() -> None:
    records = [
        record(at(6), 2, 6),  # 2 nodes 00-06, then 6
        record(at(12), 6, 6, codes=(ReasonCode.BOUNDS,), at_max=True),  # hold at max: 12-18 at max
        record(at(18), 6, 2, codes=(ReasonCode.IDLE,)),  # 2 nodes 18-24
    ]
    day = summarize("j-DIGEST1", list(reversed(records)), START, END)  # newest first, as the store gives
    assert day is not None
    assert (day.records, day.scale_outs, day.scale_ins, day.dry_runs) == (3, 1, 1, 0)
    assert day.peak_nodes == 6
    node_hours = 2 * 6 + 6 * 12 + 2 * 6
    assert day.average_nodes == pytest.approx(node_hours / 24)
    assert day.cost_usd == pytest.approx(node_hours * PRICE)
    assert day.at_max_s == pytest.approx(6 * 3600)
    assert day.top_reasons == (("bounds", 1), ("idle", 1), ("need", 1))
    assert day.failures == ()


def test_dry_runs_and_refused_resizes_change_no_node_and_are_counted() -> None:
    records = [
        record(at(1), 2, 8, dry_run=True),
        record(at(2), 2, 5, not_applied="Not applied: throttled by EMR after retries: slow down."),
        record(at(3), 2, 5, not_applied="Not applied: throttled by EMR after retries: slow down."),
        record(at(4), 2, 3, not_applied="Not applied: EMR rejected the request: bad."),
    ]
    day = summarize("j-DIGEST1", records, START, END)
    assert day is not None
    assert (day.scale_outs, day.scale_ins, day.dry_runs) == (0, 0, 1)
    assert day.peak_nodes == 2
    assert day.average_nodes == pytest.approx(2.0)
    assert day.failures == (
        ("Not applied: throttled by EMR after retries: slow down.", 2),
        ("Not applied: EMR rejected the request: bad.", 1),
    )
    assert day.failed == 3
    assert day.top_reasons == (("need", 4),)  # not_applied is a failure, not a reason


def test_top_reasons_are_three_by_count() -> None:
    counts = {ReasonCode.COOLDOWN: 1, ReasonCode.NEED: 2, ReasonCode.IDLE: 3, ReasonCode.BOUNDS: 4}
    codes = [c for c, n in counts.items() for _ in range(n)]
    records = [record(at(h), 3, 3, codes=(c,)) for h, c in enumerate(codes)]
    day = summarize("j-DIGEST1", records, START, END)
    assert day is not None
    assert [c for c, _ in day.top_reasons] == ["bounds", "idle", "need"]
    assert day.top_reasons[0] == ("bounds", 4)


def test_the_digest_hour_and_the_local_day() -> None:
    paris = Config(digest_hour=8, digest_time_zone="Europe/Paris")
    # 07:30 UTC in March is 08:30 in Paris (UTC+1): the digest of the day before
    assert digest_day(datetime(2026, 3, 10, 7, 30, tzinfo=UTC), paris) == date(2026, 3, 9)
    assert digest_day(datetime(2026, 3, 10, 8, 30, tzinfo=UTC), paris) is None
    start, end = day_bounds(date(2026, 3, 29), "Europe/Paris")  # the spring change: a 23-hour day
    assert (end - start) == timedelta(hours=23)
    assert start.astimezone(UTC) == datetime(2026, 3, 28, 23, tzinfo=UTC)


def test_the_settings_are_validated() -> None:
    assert Config.from_mapping({"digest_time_zone": "America/New_York", "digest_hour": 23}).digest_hour == 23
    with pytest.raises(ConfigError, match="digest_time_zone"):
        Config.from_mapping({"digest_time_zone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="digest_hour"):
        Config.from_mapping({"digest_hour": 24})
    assert names.NOTICE_KIND_DIGEST in Config().email_notice_kinds


def test_the_notice() -> None:
    day = summarize(
        "j-DIGEST1", [record(at(6), 2, 6), record(at(9), 6, 4, not_applied="Not applied: x")], START, END
    )
    assert day is not None
    n = notices.digest_notice(day=date(2026, 3, 10), time_zone="UTC", clusters=[day])
    assert n.kind == names.NOTICE_KIND_DIGEST
    assert n.subject == notices.subject_line(n.subject)
    assert len(n.subject) < 100
    assert n.subject.isascii()
    assert n.subject.startswith("sparkscale daily digest 2026-03-10: 1 cluster(s), 1 out, 0 in, 1 failed")
    for text in ("estimate", "j-DIGEST1", "Not applied: x (x1)", "peak 6"):
        assert text in n.body


def test_settings_load_where_there_is_no_time_zone_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Lambda runtime without a tz database must still read its settings: only the digest needs a zone."""
    from zoneinfo import ZoneInfoNotFoundError

    from sparkscale import config as config_module

    def missing(name: str) -> None:
        raise ZoneInfoNotFoundError(name)

    monkeypatch.setattr(config_module, "ZoneInfo", missing)
    monkeypatch.setattr(config_module, "available_timezones", set)
    assert Config.from_mapping({"digest_time_zone": "Europe/Paris"}).digest_time_zone == "Europe/Paris"
    assert Config.from_mapping({}).digest_time_zone == "UTC"
    # UTC needs no data
    assert digest_day(datetime(2026, 3, 10, 8, tzinfo=UTC), Config()) == date(2026, 3, 9)
