"""The Kinesis iterator-age alarm spec (alarms.kinesis_alarm_specs) evaluated as the replay and the demo
evaluate it (kinesis_age_datapoints, then AlarmSpec.state_for): ALARM only after the age rose every minute for
streaming_iterator_age_rising_minutes minutes above the caught-up age."""

from __future__ import annotations

import pytest
from sparkscale.alarms import alarm_specs, kinesis_age_datapoints, kinesis_alarm_specs
from sparkscale.config import Config

CID = "j-KIN0001"
CONFIG = Config.from_mapping({"streams": ["orders"]})  # 5 rising minutes, caught up at 60 s


def _state(ages_s: list[float | None]) -> str:
    (spec,) = kinesis_alarm_specs(CONFIG, CID)
    ms = [None if a is None else a * 1000.0 for a in ages_s]
    return spec.state_for(kinesis_age_datapoints(ms, CONFIG))


@pytest.mark.parametrize(
    ("ages_s", "state"),
    [
        ([100, 130, 160, 190, 220, 250], "ALARM"),  # 5 rising minutes above 60 s
        ([100, 100, 130, 160, 190, 220], "OK"),  # only 4: one flat minute
        ([1, 2, 3, 4, 5, 6], "OK"),  # rising, but caught up (a few seconds)
        ([300, 290, 280, 270, 260, 250], "OK"),  # high, but falling: catching up
        ([100, 130, None, 190, 220, 250], "OK"),  # a missing minute counts as not breaching
    ],
)
def test_rising_for_the_set_minutes_above_the_caught_up_age(ages_s: list[float | None], state: str) -> None:
    assert _state(ages_s) == state


def test_the_rate_is_per_second_and_zero_under_the_caught_up_age() -> None:
    assert kinesis_age_datapoints([None, 90_000.0, 120_000.0, 30_000.0], CONFIG) == [None, None, 500.0, 0.0]


def test_the_alarms_come_last_and_only_with_streams() -> None:
    plain = alarm_specs(Config(), CID)
    streaming = alarm_specs(CONFIG, CID)
    assert streaming[: len(plain)] == plain
    assert [s.kind for s in streaming[len(plain) :]] == ["kinesis-age-rising-orders"]
    assert alarm_specs(CONFIG, CID, include_heap=False)[-1].kind == "kinesis-age-rising-orders"
