"""The tag sparkscale:kinesis-streams=a,b: a tagged cluster's Kinesis streams (its settings' `streams`, its
iterator-age alarms), validated by Kinesis's rules; an invalid name refuses the cluster with a logged reason
and one notice, as an unknown profile does."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sparkscale import names
from sparkscale.adapters.discovery import registration_from_json, registration_to_json
from sparkscale.config import Config, ConfigError, stream_name_problem
from sparkscale.usecases.discovery import Action, cluster_config, handle_state_change, sweep

from tests.discovery.support import NOW, World

STREAMS_TAG = {"kinesis-streams": "orders.v2, clicks-eu"}


def _age_alarms(w: World, cid: str) -> list[str]:
    return [n for n in w.alarm_names(cid) if names.ALARM_KIND_KINESIS_AGE in n]


def test_the_tag_gives_the_cluster_its_streams_and_their_alarms() -> None:
    w = World()
    w.tagged("j-STREAM", **STREAMS_TAG)
    change = handle_state_change(w.run(), "j-STREAM", "RUNNING")
    assert change.action is Action.ADOPTED
    reg = w.registry.registrations(NOW)["j-STREAM"]
    assert reg.streams == ("orders.v2", "clicks-eu")
    cfg = cluster_config(w.config, reg)
    assert cfg.streams == ["orders.v2", "clicks-eu"]
    assert cfg.streaming
    assert _age_alarms(w, "j-STREAM") == [
        "sparkscale-j-STREAM-kinesis-age-rising-clicks-eu",
        "sparkscale-j-STREAM-kinesis-age-rising-orders.v2",
    ]
    # the registry item keeps them
    assert registration_from_json(registration_to_json(reg)) == reg


def test_a_tag_changed_later_updates_the_streams_and_their_alarms() -> None:
    w = World()
    w.tagged("j-S", **STREAMS_TAG)
    handle_state_change(w.run(), "j-S", "RUNNING")
    w.tagged("j-S", **{"kinesis-streams": "orders.v2"})
    result = sweep(w.run(NOW + timedelta(minutes=2)))
    assert [c.action for c in result.changes] == [Action.UPDATED]
    assert result.changes[0].alarms_deleted == ("sparkscale-j-S-kinesis-age-rising-clicks-eu",)
    assert _age_alarms(w, "j-S") == ["sparkscale-j-S-kinesis-age-rising-orders.v2"]
    w.tagged("j-S")  # tag removed: no stream, no iterator-age alarm, the settings' streams again
    sweep(w.run(NOW + timedelta(minutes=4)))
    assert _age_alarms(w, "j-S") == []
    assert cluster_config(w.config, w.registry.registrations(NOW)["j-S"]).streams == []


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        ("orders v2", "not ' '"),
        ("ok,bad/name", "not '/'"),
        ("x" * 129, "1 to 128 characters"),
        ("ünïcode", "only a-z"),
    ],
)
def test_an_invalid_stream_name_refuses_the_cluster_once_with_its_reason(
    tag: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    w = World()
    w.tagged("j-BAD", **{"kinesis-streams": tag})
    with caplog.at_level(logging.WARNING):
        change = handle_state_change(w.run(), "j-BAD", "RUNNING")
    assert change.action is Action.REFUSED
    assert "sparkscale:kinesis-streams" in change.reason
    assert why in change.reason
    assert "j-BAD" not in w.registry.registrations(NOW)
    assert w.alarms.alarms == {}
    assert any("not managed" in r.getMessage() and "j-BAD" in r.getMessage() for r in caplog.records)
    handle_state_change(w.run(), "j-BAD", "WAITING")
    assert len(w.notifier.notices) == 1  # told once
    assert w.notifier.notices[0].subject.endswith("tagged, but not managed")


def test_an_empty_tag_means_no_stream() -> None:
    w = World()
    w.tagged("j-E", **{"kinesis-streams": " , "})
    assert handle_state_change(w.run(), "j-E", "RUNNING").action is Action.ADOPTED
    assert w.registry.registrations(NOW)["j-E"].streams == ()


def test_a_bad_tag_on_a_managed_cluster_keeps_it_as_it_was() -> None:
    w = World()
    w.tagged("j-K", **STREAMS_TAG)
    handle_state_change(w.run(), "j-K", "RUNNING")
    before = dict(w.alarms.alarms)
    w.tagged("j-K", **{"kinesis-streams": "a*b"})
    change = handle_state_change(w.run(), "j-K", "RUNNING")
    assert change.action is Action.REFUSED
    assert "still managed as it was" in change.reason
    assert w.alarms.alarms == before
    assert w.registry.registrations(NOW)["j-K"].streams == ("orders.v2", "clicks-eu")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("A-b_c.9", True), ("x" * 128, True), ("", False), ("x" * 129, False), ("a:b", False)],
)
def test_stream_names_follow_kinesis_rules(name: str, ok: bool) -> None:
    assert (stream_name_problem(name) is None) is ok


def test_the_streams_setting_is_validated_per_cluster_and_per_profile() -> None:
    with pytest.raises(ConfigError, match="streams"):
        Config.from_mapping({"streams": ["bad name"]})
    with pytest.raises(ConfigError, match="streams"):
        Config.from_mapping({"profiles": {"s": {"streams": ["ok", "b@d"]}}})
    cfg = Config.from_mapping({"profiles": {"s": {"streams": "a,b"}}})  # cdk -c's "a,b" form too
    assert cfg.for_profile("s").streams == ["a", "b"]
    assert cfg.streams == []
