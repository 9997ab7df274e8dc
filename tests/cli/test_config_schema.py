"""`sparkscale config schema` / `config check`: the JSON Schema comes from the one settings schema
(sparkscale.config), the committed copies in schemas/ are what it prints now, and schema and code agree on
what is a bad setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sparkscale.config import Config, ConfigError, config_json_schema
from sparkscale_tools.cli import main
from sparkscale_tools.cli.config import schema_text

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator


@pytest.mark.parametrize(
    ("path", "cdk_json"), [("schemas/sparkscale.schema.json", False), ("schemas/cdk.json.schema.json", True)]
)
def test_the_committed_schema_is_up_to_date(path: str, cdk_json: bool) -> None:
    committed = (REPO / path).read_text(encoding="utf-8")
    flag = " --cdk-json" if cdk_json else ""
    assert committed == schema_text(cdk_json=cdk_json), (
        f"{path} is stale: sparkscale config schema{flag} > {path}"
    )


@pytest.mark.parametrize("cdk_json", [False, True])
def test_the_schemas_are_valid_json_schema(cdk_json: bool) -> None:
    VALIDATOR.check_schema(json.loads(schema_text(cdk_json=cdk_json)))


def test_every_setting_is_in_the_schema_with_its_default_and_meaning() -> None:
    props = config_json_schema()["properties"]
    defaults = Config().to_dict()
    assert set(props) == set(defaults)
    for name, schema in props.items():
        assert schema["default"] == defaults[name], name
        assert schema["description"], name


def test_the_repos_cdk_json_and_the_defaults_are_valid() -> None:
    VALIDATOR(json.loads(schema_text(cdk_json=True))).validate(
        json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))
    )
    VALIDATOR(config_json_schema()).validate(Config().to_dict())


@pytest.mark.parametrize(
    "bad",
    [
        {"deadband_pct": 60},
        {"no_such_setting": 1},
        {"dry_run": 1},
        {"max_task_nodes": 2.5},
        {"forecast_mode": "sometimes"},
        {"clusters": "j-ABC"},
        {"budget_usd_per_hour": -1},
        {"group_bounds": {"ig-1": {"max_nodes": -1}}},
        {"group_bounds": {"ig-1": {"min_nodes": 1}}},
    ],
)
def test_schema_and_code_refuse_the_same_bad_settings(bad: dict[str, Any]) -> None:
    assert not VALIDATOR(config_json_schema()).is_valid(bad)
    if bad == {"clusters": "j-ABC"}:
        return  # the code also takes "a,b" strings, as `cdk synth -c` passes them; the schema wants a list
    with pytest.raises(ConfigError):
        Config.from_mapping(bad)


@pytest.mark.parametrize(
    "good",
    [{}, {"deadband_pct": 10, "group_bounds": {"ig-1": {"max_nodes": 3}}}, {"budget_usd_per_hour": None}],
)
def test_schema_and_code_accept_the_same_good_settings(good: dict[str, Any]) -> None:
    assert VALIDATOR(config_json_schema()).is_valid(good)
    Config.from_mapping(good)


def test_config_check_reads_a_cdk_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(REPO / "cdk.json")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sparkscale"]["clusters"] == ["j-EXAMPLE12345"]
    assert shown["sparkscale"]["deadband_pct"] == Config().deadband_pct  # defaults filled in
    assert shown["sparkscale:features"]["spot_events"] is True
    assert shown["sparkscale:stackName"] == "Sparkscale"


@pytest.mark.parametrize(
    ("context", "why"),
    [
        ({"sparkscale": {"clusters": ["j-A"], "reconcile_rate_s": 90}}, "'reconcile_rate_s': must be whole"),
        ({"sparkscale": {}}, "'clusters': list at least one EMR cluster id"),
        ({"sparkscale": {"clusters": ["j-A"]}, "sparkscale:features": {"nope": True}}, "unknown feature"),
        ({"sparkscale": {"clusters": ["j-A"]}, "sparkscale:stackName": "1bad"}, "sparkscale:stackName"),
    ],
)
def test_config_check_of_a_bad_cdk_json_is_one_line_exit_2(
    context: dict[str, Any], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"app": "python3 app.py", "context": context}))
    assert main(["config", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"sparkscale config check: {path}: ")
    assert why in err


def test_config_check_of_a_settings_file_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"clusters": ["j-A"], "dry_run": true}')
    assert main(["config", "check", str(path)]) == 0
    assert Config.from_json(capsys.readouterr().out) == Config.from_mapping(
        {"clusters": ["j-A"], "dry_run": True}
    )
