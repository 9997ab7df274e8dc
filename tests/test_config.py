"""The one configuration schema: defaults valid, every kind of bad value named, JSON round trip."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest
from sparkscale.config import Config, ConfigError, GroupBounds


def test_defaults_are_valid_and_equal_an_empty_mapping():
    assert Config.from_mapping({}) == Config()
    assert Config.from_mapping(None) == Config()
    Config()._check_relations("test")  # the defaults pass the cross-field checks too


def test_every_field_has_unit_doc_and_kind():
    for f in fields(Config):
        assert f.metadata["unit"], f.name
        assert f.metadata["doc"].endswith("."), f.name
        assert f.metadata["kind"] in ("policy", "deploy"), f.name


def test_json_round_trip():
    cfg = Config.from_mapping(
        {
            "budget_usd_per_hour": 12.5,
            "group_bounds": {"ig-1": {"min_nodes": 1, "max_nodes": 4}, "spot-r5": {"max_nodes": 2}},
            "clusters": ["j-ABC123"],
            "operator_emails": ["ops@example.com"],
            "dry_run": True,
            "heap_used_alarm_bytes": 21474836480,
            "max_share_per_instance_type": 0.5,
        }
    )
    text = cfg.to_json()
    assert Config.from_json(text) == cfg
    assert json.loads(text)["group_bounds"]["spot-r5"] == {"min_nodes": 0, "max_nodes": 2}
    assert Config.from_json(Config().to_json()) == Config()


def test_bounds_for_id_then_name_then_defaults():
    cfg = Config.from_mapping(
        {"group_bounds": {"ig-1": {"min_nodes": 1, "max_nodes": 4}, "spot": {"min_nodes": 2, "max_nodes": 3}}}
    )
    assert cfg.bounds_for("ig-1", "spot") == GroupBounds(1, 4)
    assert cfg.bounds_for("ig-2", "spot") == GroupBounds(2, 3)
    assert cfg.bounds_for("ig-3", "other") == GroupBounds(0, 20)


def test_coercions():
    cfg = Config.from_mapping({"dry_run": "TRUE", "clusters": "j-A1, j-B2", "max_task_nodes": 30.0})
    assert cfg.dry_run is True
    assert cfg.clusters == ["j-A1", "j-B2"]
    assert cfg.max_task_nodes == 30
    assert isinstance(cfg.max_task_nodes, int)


@pytest.mark.parametrize(
    ("raw", "field", "why"),
    [
        ({"no_such_setting": 1}, "no_such_setting", "unknown setting"),
        ({"max_task_nodes": "lots"}, "max_task_nodes", "must be a number"),
        ({"max_task_nodes": True}, "max_task_nodes", "must be a number"),  # a bool is not a number
        ({"max_task_nodes": None}, "max_task_nodes", "got null"),
        ({"max_task_nodes": 2.5}, "max_task_nodes", "whole number"),
        ({"max_task_nodes": -1}, "max_task_nodes", "must be >= 0 nodes"),
        ({"yarn_memory_used_target_pct": 101}, "yarn_memory_used_target_pct", "must be <= 100 %"),
        ({"deadband_pct": math.inf}, "deadband_pct", "must be finite"),
        ({"deadband_pct": math.nan}, "deadband_pct", "must be finite"),
        ({"budget_usd_per_hour": -5}, "budget_usd_per_hour", "must be >= 0"),
        ({"heap_used_alarm_bytes": 1.5}, "heap_used_alarm_bytes", "whole number"),
        ({"dry_run": "yes"}, "dry_run", "true or false"),
        ({"dry_run": 1}, "dry_run", "true or false"),
        ({"alarm_prefix": 5}, "alarm_prefix", "must be text"),
        ({"alarm_prefix": "has space"}, "alarm_prefix", "letters, digits"),
        ({"clusters": [1]}, "clusters", "list of strings"),
        ({"clusters": ["cluster-1"]}, "clusters", "not an EMR cluster id"),
        ({"operator_emails": ["nobody"]}, "operator_emails", "not an email address"),
        ({"min_task_nodes": 5, "max_task_nodes": 4}, "min_task_nodes", "> max_task_nodes 4"),
        ({"group_min_nodes": 3, "group_max_nodes": 2}, "group_min_nodes", "> group_max_nodes 2"),
        ({"heap_used_target_pct": 95}, "heap_critical_pct", "below heap_used_target_pct"),
        ({"group_bounds": []}, "group_bounds", "must be an object"),
        ({"group_bounds": {"ig-1": 3}}, "group_bounds", "'ig-1' must be"),
        ({"group_bounds": {"ig-1": {"max_nodes": 3, "x": 1}}}, "group_bounds", "'ig-1' must be"),
        ({"group_bounds": {"ig-1": {"min_nodes": 1}}}, "group_bounds", "needs max_nodes"),
        ({"group_bounds": {"ig-1": {"max_nodes": -1}}}, "group_bounds", "whole numbers >= 0"),
        ({"group_bounds": {"ig-1": {"max_nodes": True}}}, "group_bounds", "whole numbers >= 0"),
        (
            {"group_bounds": {"ig-1": {"min_nodes": 4, "max_nodes": 3}}},
            "group_bounds",
            "min_nodes 4 > max_nodes 3",
        ),
        ({"spot_fallback_timeout_s": 10}, "spot_fallback_timeout_s", "must be >= 60 s"),
        ({"max_share_per_instance_type": 0}, "max_share_per_instance_type", "must be >= 0.05"),
    ],
)
def test_bad_field_raises_config_error_naming_it(raw, field, why):
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(raw, source="cdk.json")
    assert info.value.field == field
    assert why in info.value.why
    assert str(info.value).startswith(f"cdk.json: invalid setting {field!r}:")


@pytest.mark.parametrize(("text", "why"), [("{not json", "not JSON"), ("[1, 2]", "must be a JSON object")])
def test_bad_json_document(text, why):
    with pytest.raises(ConfigError) as info:
        Config.from_json(text)
    assert info.value.field == "<document>"
    assert why in info.value.why
