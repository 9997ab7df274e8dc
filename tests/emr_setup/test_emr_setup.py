"""The EMR configurations per release (sparkscale.emr_setup) and the CLI that prints them."""

from __future__ import annotations

import json

import pytest
from sparkscale.emr_setup import parse_release, release_notes, safe_scale_in_configurations
from sparkscale_tools.cli import main


def _classes(label: str | None, **kwargs: bool) -> list[str]:
    return [c["Classification"] for c in safe_scale_in_configurations(label, **kwargs)]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        # spark-defaults everywhere: the streaming metrics switch
        ("emr-5.18.1", ["spark-defaults"]),  # no node labels yet: EMR's own patch keeps AMs on CORE nodes
        ("emr-5.36.2", ["spark-defaults"]),  # node labels with AMs on CORE are the default; Spark 2.4
        ("emr-6.0.0", ["yarn-site", "spark-defaults"]),  # node labels off by default from 6.0.0
        ("emr-6.11.1", ["yarn-site", "spark-defaults"]),  # Spark 3.3: ignores YARN node decommissioning
        ("emr-6.12.0", ["yarn-site", "spark-defaults"]),  # Spark 3.4.0
        ("emr-7.2.0", ["yarn-site", "spark-defaults"]),
        (None, ["yarn-site", "spark-defaults"]),
    ],
)
def test_configurations_per_release(label: str | None, expected: list[str]) -> None:
    assert _classes(label) == expected


def test_keep_shuffle_service_drops_only_the_shuffle_service_switch() -> None:
    full = safe_scale_in_configurations("emr-7.1.0")[1]["Properties"]
    kept = safe_scale_in_configurations("emr-7.1.0", keep_shuffle_service=True)[1]["Properties"]
    assert set(full) - set(kept) == {
        "spark.shuffle.service.enabled",
        "spark.dynamicAllocation.shuffleTracking.enabled",
    }


@pytest.mark.parametrize("label", ["6.12.0", "emr-6.12", "emr-6.x.0", ""])
def test_a_bad_release_label_is_a_value_error(label: str) -> None:
    with pytest.raises(ValueError, match="EMR release label"):
        parse_release(label)


def test_notes_say_why_an_old_release_gets_no_spark_settings() -> None:
    assert any("before 3.4.0" in line for line in release_notes("emr-6.9.0"))


def test_cli_prints_the_json_and_rejects_a_bad_label(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emr-configurations", "--release-label", "emr-6.15.0"]) == 0
    assert json.loads(capsys.readouterr().out) == safe_scale_in_configurations("emr-6.15.0")
    assert main(["emr-configurations", "--release-label", "seven"]) == 2
    assert "not an EMR release label" in capsys.readouterr().err


@pytest.mark.parametrize("label", ["emr-5.36.2", "emr-6.11.1", "emr-7.2.0", None])
def test_streaming_metrics_are_on_in_the_one_spark_defaults_of_every_release(label: str | None) -> None:
    configurations = safe_scale_in_configurations(label)
    spark = [c["Properties"] for c in configurations if c["Classification"] == "spark-defaults"]
    assert len(spark) == 1  # EMR gets each classification once
    assert spark[0]["spark.sql.streaming.metricsEnabled"] == "true"
    assert "spark.decommission.enabled" not in spark[0] or label in ("emr-7.2.0", None)
    without = safe_scale_in_configurations(label, streaming_metrics=False)
    assert all("spark.sql.streaming.metricsEnabled" not in c["Properties"] for c in without)


def test_before_6_12_spark_defaults_holds_only_the_streaming_switch() -> None:
    assert safe_scale_in_configurations("emr-6.9.0")[1]["Properties"] == {
        "spark.sql.streaming.metricsEnabled": "true"
    }
    assert _classes("emr-6.9.0", streaming_metrics=False) == ["yarn-site"]
