"""infra.settings: the typed stack settings read from the CDK context (no synth here)."""

from __future__ import annotations

from typing import Any

import pytest
from sparkscale.config import ConfigError
from sparkscale_cdk.settings import FEATURES_KEY, Features, StackSettings
from sparkscale_cdk.wiring import cdk_json_context


def settings(context: dict[str, Any]) -> StackSettings:
    return StackSettings.from_context(context.get)


def test_cdk_json_context_is_valid_and_manages_an_example_cluster() -> None:
    st = settings(cdk_json_context())
    assert st.config.clusters == ["j-EXAMPLE12345"]
    assert st.features == Features()
    assert st.stack_name == "Sparkscale"
    assert st.emr_instance_role_name is None


def test_cdk_json_sets_the_recommended_cdk_feature_flags() -> None:
    ctx = cdk_json_context()
    assert ctx["@aws-cdk/aws-iam:minimizePolicies"] is True
    assert ctx["@aws-cdk/aws-lambda:recognizeLayerVersion"] is True


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"clusters": []}, "clusters"),
        ({"clusters": ["j-A1", "j-A1"]}, "clusters"),
        ({"clusters": ["i-123"]}, "clusters"),
        ({"clusters": ["j-A1"], "reconcile_rate_s": 90}, "reconcile_rate_s"),
        ({"clusters": ["j-A1"], "lease_ttl_s": 15}, "lease_ttl_s"),
        (
            {"clusters": ["j-A1"], "group_bounds": {f"ig-{i:020d}": {"max_nodes": 3} for i in range(80)}},
            "<document>",
        ),
        ({"clusters": ["j-A1"], "nonsense": 1}, "nonsense"),
    ],
)
def test_bad_settings_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings({"sparkscale": raw})
    assert err.value.field == field


def test_features_from_object_or_json_string() -> None:
    base = {"sparkscale": {"clusters": ["j-A1"]}}
    st = settings({**base, FEATURES_KEY: {"spot_events": False}})
    assert st.features.spot_events is False
    assert st.features.heap_alarms is True
    st = settings({**base, FEATURES_KEY: '{"dashboards": "false"}'})  # `cdk synth -c` passes strings
    assert st.features.dashboards is False


@pytest.mark.parametrize(
    ("spot", "emr"), [(True, True), (True, False), (False, True), (False, False)], ids=str
)
def test_spot_and_emr_event_flags_are_independent(spot: bool, emr: bool) -> None:
    st = settings(
        {"sparkscale": {"clusters": ["j-A1"]}, FEATURES_KEY: {"spot_events": spot, "emr_events": emr}}
    )
    assert (st.features.spot_events, st.features.emr_events) == (spot, emr)


def test_emr_events_defaults_on_and_cdk_json_lists_it() -> None:
    assert Features().emr_events is True
    assert cdk_json_context()[FEATURES_KEY]["emr_events"] is True
    st = settings({"sparkscale": {"clusters": ["j-A1"]}, FEATURES_KEY: {"spot_events": False}})
    assert st.features.emr_events is True  # no longer switched by spot_events


def test_unknown_feature_error_lists_emr_events() -> None:
    with pytest.raises(ConfigError) as err:
        settings({"sparkscale": {"clusters": ["j-A1"]}, FEATURES_KEY: {"emr_event": True}})
    assert err.value.field == "emr_event"
    assert "emr_events" in str(err.value)


@pytest.mark.parametrize(
    "features",
    [{"spot_event": True}, {"spot_events": "maybe"}, {"emr_events": 1}, "not json", [1]],
)
def test_bad_features_are_rejected(features: Any) -> None:
    with pytest.raises(ConfigError):
        settings({"sparkscale": {"clusters": ["j-A1"]}, FEATURES_KEY: features})


def test_config_as_json_string_from_the_command_line() -> None:
    st = settings({"sparkscale": '{"clusters": ["j-B2"], "reconcile_rate_s": 180}'})
    assert st.config.clusters == ["j-B2"]
    assert st.reconcile_rate_minutes == 3


@pytest.mark.parametrize(("lease", "timeout"), [(90, 60), (45, 35), (20, 10), (600, 60)])
def test_handler_timeout_stays_inside_the_lease(lease: int, timeout: int) -> None:
    st = settings({"sparkscale": {"clusters": ["j-A1"], "lease_ttl_s": lease}})
    assert st.handler_timeout_s == timeout < lease


@pytest.mark.parametrize(
    ("key", "value"), [("sparkscale:stackName", "1bad"), ("sparkscale:emrInstanceRoleName", "no spaces")]
)
def test_bad_stack_name_or_role_name(key: str, value: str) -> None:
    with pytest.raises(ConfigError):
        settings({"sparkscale": {"clusters": ["j-A1"]}, key: value})
