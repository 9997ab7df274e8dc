"""The discovery use case on in-memory ports: the event path, the sweep, orphans, missed and premature
TERMINATED events, profiles and the pause tag, and the settings each managed cluster is evaluated with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sparkscale import notices
from sparkscale.alarms import alarm_specs
from sparkscale.config import Config, ConfigError
from sparkscale.errors import BadEvent
from sparkscale.events.discovery import ClusterStateChange, SweepRequest, parse_discovery_event
from sparkscale.usecases.discovery import (
    KEY_CLUSTER_GONE,
    Action,
    alarm_cluster,
    cluster_config,
    handle_state_change,
    managed_clusters,
    sweep,
)

from tests.discovery.support import NOW, World

PROFILES = {"big": {"max_task_nodes": 50, "group_max_nodes": 50, "yarn_memory_used_target_pct": 70}}


def test_a_tagged_cluster_starting_is_registered_with_its_alarms_and_operators_hear_once() -> None:
    w = World()
    w.tagged("j-NEW1", state="STARTING")
    change = handle_state_change(w.run(), "j-NEW1", "STARTING")
    assert change.action is Action.ADOPTED
    expected = [s.name for s in alarm_specs(w.config, "j-NEW1")]
    assert sorted(change.alarms_created) == sorted(expected) == w.alarm_names("j-NEW1")
    assert w.registry.registrations(NOW)["j-NEW1"].active
    # BOOTSTRAPPING, RUNNING, WAITING: nothing new, no second notice
    for state in ("BOOTSTRAPPING", "RUNNING", "WAITING"):
        assert handle_state_change(w.run(), "j-NEW1", state).action is Action.UNCHANGED
    assert [n.kind for n in w.notifier.notices] == [notices.KIND_DISCOVERY]
    assert "now managing" in w.notifier.notices[0].subject


def test_an_untagged_cluster_is_never_touched() -> None:
    w = World()
    w.emr.add("j-OTHER", "RUNNING", team="x")
    assert handle_state_change(w.run(), "j-OTHER", "RUNNING").action is Action.IGNORED
    result = sweep(w.run())
    assert result.managed == ()
    assert result.changes == ()
    assert w.alarms.alarms == {}
    assert w.notifier.notices == []
    assert w.alarms.calls == []


def test_a_cluster_in_the_static_list_is_left_to_the_stack() -> None:
    w = World(config=Config.from_mapping({"clusters": ["j-STATIC"]}))
    w.tagged("j-STATIC")
    assert handle_state_change(w.run(), "j-STATIC", "RUNNING").action is Action.IGNORED
    assert sweep(w.run()).changes == ()
    assert w.alarms.alarms == {}


def test_the_profile_tag_sets_the_alarm_thresholds_and_the_settings() -> None:
    w = World(config=Config.from_mapping({"profiles": PROFILES}))
    w.tagged("j-BIG", profile="big")
    change = handle_state_change(w.run(), "j-BIG", "RUNNING")
    assert change.profile == "big"
    big = w.config.for_profile("big")
    yarn = next(s for s in alarm_specs(big, "j-BIG") if s.kind == "yarn-memory-low")
    assert w.alarms.alarms[yarn.name] == yarn
    # 100 - 70 * 1.035 = 27.55 % (the base settings' 100 - 93 * 1.035 = 3.745 %)
    assert yarn.threshold == pytest.approx(27.55)
    reg = w.registry.registrations(NOW)["j-BIG"]
    assert cluster_config(w.config, reg).max_task_nodes == 50


def test_an_unknown_profile_is_refused_with_its_reason() -> None:
    w = World(config=Config.from_mapping({"profiles": PROFILES}))
    w.tagged("j-TYPO", profile="bgi")
    change = handle_state_change(w.run(), "j-TYPO", "RUNNING")
    assert change.action is Action.REFUSED
    assert "unknown profile 'bgi' (known: big)" in change.reason
    assert w.alarms.alarms == {}
    assert "j-TYPO" not in w.registry.registrations(NOW)
    assert w.notifier.notices[0].subject.endswith("tagged, but not managed")
    handle_state_change(w.run(), "j-TYPO", "WAITING")
    assert len(w.notifier.notices) == 1  # told once


def test_the_pause_tag_makes_that_cluster_a_dry_run_and_removing_it_resumes() -> None:
    w = World()
    w.tagged("j-P", paused="true")
    handle_state_change(w.run(), "j-P", "RUNNING")
    reg = w.registry.registrations(NOW)["j-P"]
    assert reg.paused
    assert cluster_config(w.config, reg).dry_run
    w.tagged("j-P")  # tag removed
    result = sweep(w.run(NOW + timedelta(minutes=2)))
    assert [c.action for c in result.changes] == [Action.UPDATED]
    assert not cluster_config(w.config, w.registry.registrations(NOW)["j-P"]).dry_run


def test_terminated_confirmed_deletes_the_alarms_and_releases_the_cluster() -> None:
    w = World()
    w.tagged("j-T")
    handle_state_change(w.run(), "j-T", "RUNNING")
    w.tagged("j-T", state="TERMINATED")
    change = handle_state_change(w.run(), "j-T", "TERMINATED")
    assert change.action is Action.RELEASED
    assert len(change.alarms_deleted) == len(alarm_specs(w.config, "j-T"))
    assert w.alarm_names("j-T") == []
    reg = w.registry.registrations(NOW)["j-T"]
    assert not reg.active
    assert w.registry.registrations(NOW + timedelta(days=8)) == {}  # expires
    assert w.store.claimed_at("j-T", KEY_CLUSTER_GONE, NOW) is not None  # the scaler stops
    assert managed_clusters(w.config, w.registry.registrations(NOW)) == []


def test_a_terminated_event_for_a_cluster_emr_still_reports_running_changes_nothing() -> None:
    w = World()
    w.tagged("j-R")
    handle_state_change(w.run(), "j-R", "RUNNING")
    before = dict(w.alarms.alarms)
    change = handle_state_change(w.run(), "j-R", "TERMINATED")
    assert change.action is Action.KEPT
    assert "still reports RUNNING" in change.reason
    assert w.alarms.alarms == before
    assert w.registry.registrations(NOW)["j-R"].active
    assert w.store.claimed_at("j-R", KEY_CLUSTER_GONE, NOW) is None


def test_the_sweep_adopts_clusters_whose_events_were_missed_and_releases_missed_terminations() -> None:
    w = World()
    w.tagged("j-A")
    w.tagged("j-B")
    first = sweep(w.run())
    assert sorted(r.cluster_id for r in first.managed) == ["j-A", "j-B"]
    w.tagged("j-B", state="TERMINATED")  # its TERMINATED event never arrived
    second = sweep(w.run(NOW + timedelta(minutes=2)))
    assert [(c.cluster_id, c.action) for c in second.changes] == [("j-B", Action.RELEASED)]
    assert [r.cluster_id for r in second.managed] == ["j-A"]
    assert w.alarm_names("j-B") == []


def test_a_registered_cluster_emr_no_longer_knows_is_released() -> None:
    w = World()
    w.tagged("j-X")
    sweep(w.run())
    del w.emr.clusters["j-X"]
    result = sweep(w.run())
    assert result.changes[0].action is Action.RELEASED
    assert "unknown to EMR" in result.changes[0].reason


def test_removing_the_opt_in_tag_releases_the_cluster_without_marking_it_gone() -> None:
    w = World()
    w.tagged("j-U")
    sweep(w.run())
    w.emr.add("j-U", "RUNNING")  # no tags any more
    result = sweep(w.run())
    assert result.changes[0].action is Action.RELEASED
    assert w.alarm_names("j-U") == []
    assert w.store.claimed_at("j-U", KEY_CLUSTER_GONE, NOW) is None


def test_orphaned_alarms_are_deleted_and_others_are_kept() -> None:
    w = World(config=Config.from_mapping({"clusters": ["j-STATIC"]}))
    w.tagged("j-LIVE")
    w.alarms.put_alarms(alarm_specs(w.config, "j-GONE"))  # a cluster nobody manages any more
    w.alarms.put_alarms(alarm_specs(w.config, "j-STATIC"))  # the stack's
    w.alarms.alarms["sparkscale-dlq-alarm-fn"] = None  # the stack's, not a cluster's
    w.alarms.alarms["other-j-GONE-idle"] = None  # another prefix
    result = sweep(w.run())
    assert sorted(result.orphans_deleted) == sorted(s.name for s in alarm_specs(w.config, "j-GONE"))
    assert w.alarm_names("j-GONE") == []
    assert w.alarm_names("j-STATIC")
    assert w.alarm_names("j-LIVE")
    assert "sparkscale-dlq-alarm-fn" in w.alarms.alarms
    assert "other-j-GONE-idle" in w.alarms.alarms


def test_a_missing_alarm_is_put_back_by_the_sweep() -> None:
    w = World()
    w.tagged("j-M")
    sweep(w.run())
    name = w.alarm_names("j-M")[0]
    del w.alarms.alarms[name]
    result = sweep(w.run())
    assert [c.action for c in result.changes] == [Action.UPDATED]
    assert name in w.alarms.alarms


def test_a_dry_run_sweep_changes_nothing() -> None:
    w = World()
    w.tagged("j-D")
    w.alarms.put_alarms(alarm_specs(w.config, "j-OLD"))
    calls = len(w.alarms.calls)
    result = sweep(w.run(dry_run=True))
    assert result.dry_run
    assert [r.cluster_id for r in result.managed] == ["j-D"]
    assert result.orphans_deleted
    assert len(w.alarms.calls) == calls
    assert w.registry.items == {}
    assert w.notifier.notices == []


def test_delete_alarms_goes_in_batches_of_100() -> None:
    w = World()
    for i in range(30):  # 30 clusters x 9 alarms = 270 orphans
        w.alarms.put_alarms(alarm_specs(w.config, f"j-O{i:03d}"))
    result = sweep(w.run())
    assert len(result.orphans_deleted) == 270
    assert [n for op, n in w.alarms.calls if op == "DeleteAlarms"] == [100, 100, 70]


def test_alarm_cluster_reads_the_cluster_id_from_the_name() -> None:
    assert alarm_cluster("sparkscale-j-ABC123-heap-pct", "sparkscale") == "j-ABC123"
    assert alarm_cluster("sparkscale-dlq-alarm-fn", "sparkscale") is None
    assert alarm_cluster("other-j-ABC-idle", "sparkscale") is None


def test_the_managed_set_is_the_static_list_then_the_registry() -> None:
    w = World(config=Config.from_mapping({"clusters": ["j-S"]}))
    w.tagged("j-B")
    w.tagged("j-A")
    sweep(w.run())
    assert managed_clusters(w.config, w.registry.registrations(NOW)) == ["j-S", "j-A", "j-B"]


def test_a_profile_removed_from_the_settings_falls_back_to_the_base_settings() -> None:
    w = World(config=Config.from_mapping({"profiles": PROFILES}))
    w.tagged("j-BIG", profile="big")
    sweep(w.run())
    reg = w.registry.registrations(NOW)["j-BIG"]
    assert cluster_config(Config(), reg) == Config()


def test_profiles_are_validated_by_the_same_schema() -> None:
    with pytest.raises(ConfigError, match="'clusters' is a deployment setting"):
        Config.from_mapping({"profiles": {"x": {"clusters": []}}})
    with pytest.raises(ConfigError, match="max_task_nodes"):
        Config.from_mapping({"profiles": {"x": {"max_task_nodes": -1}}})
    with pytest.raises(ConfigError, match="min_task_nodes"):
        Config.from_mapping({"profiles": {"x": {"min_task_nodes": 30}}})  # > the base max_task_nodes 20


def _event(detail_type: str, source: str, detail: dict[str, object]) -> dict[str, object]:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-03-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def test_the_parser_reads_every_state_and_the_schedule() -> None:
    ev = _event("EMR Cluster State Change", "aws.emr", {"clusterId": "j-1ABC", "state": "STARTING"})
    parsed = parse_discovery_event(ev)
    assert isinstance(parsed, ClusterStateChange)
    assert parsed.state == "STARTING"
    assert isinstance(parse_discovery_event(_event("Scheduled Event", "aws.events", {})), SweepRequest)
    with pytest.raises(BadEvent, match="nothing for discovery"):
        parse_discovery_event(
            _event("EMR Cluster State Change", "aws.emr", {"clusterId": "j-1", "state": "X"})
        )
    with pytest.raises(BadEvent, match="neither"):
        parse_discovery_event(_event("EC2 Spot Instance Interruption Warning", "aws.ec2", {}))


def test_a_profile_tag_changed_to_an_unknown_name_keeps_the_cluster_as_it_was() -> None:
    w = World(config=Config.from_mapping({"profiles": PROFILES}))
    w.tagged("j-BIG", profile="big")
    sweep(w.run())
    before = dict(w.alarms.alarms)
    w.tagged("j-BIG", profile="huge")
    result = sweep(w.run())
    assert [c.action for c in result.changes] == [Action.REFUSED]
    assert "(still managed with big)" in result.changes[0].reason
    assert w.alarms.alarms == before
    assert [r.profile for r in result.managed] == ["big"]
