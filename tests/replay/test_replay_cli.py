"""`sparkscale replay`: JSON schema, timeline columns, the plot file, bad input, --cloudwatch against moto."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sparkscale import names
from sparkscale_tools.cli import main
from sparkscale_tools.replay.cloudwatch_trace import trace_from_cloudwatch
from sparkscale_tools.replay.trace import TraceError

BASELINES = "emr-custom-rules,static-peak,oracle"
SCORE_KEYS = {
    "cost_usd",
    "cost_ratio_vs_oracle",
    "theta_u_pct",
    "theta_o_pct",
    "tau_u_pct",
    "tau_o_pct",
    "actions",
    "reaction_s_p50",
    "reaction_s_max",
}


def small_trace(tmp_path: Path) -> Path:
    p = tmp_path / "small.csv"
    rows = ["time_s,demand_gib"] + [
        f"{k * 300},{v}" for k, v in enumerate([100, 100, 600, 900, 900, 300, 100, 100])
    ]
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_json_timeline_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_csv, out_png = tmp_path / "o.json", tmp_path / "o.csv", tmp_path / "o.png"
    code = main(
        [
            "replay",
            "--trace",
            str(small_trace(tmp_path)),
            "--policies",
            BASELINES,
            "--json",
            str(out_json),
            "--timeline",
            str(out_csv),
            "--plot",
            str(out_png),
            "--progress",
            "off",
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "emr-custom-rules on ig-" in stdout
    assert "YARNMemoryAvailablePercentage < 15" in stdout
    assert "whole-node floor $" in stdout
    assert "foresight bound $" in stdout
    assert "360 s before use" in stdout
    assert "120 s after release" in stdout
    doc = json.loads(out_json.read_text())
    assert set(doc) == {"step_s", "core_gib", "offers", "policies"}
    assert doc["step_s"] == 60
    assert doc["core_gib"] == pytest.approx(96.0)
    assert doc["offers"]
    assert all(
        set(o) == {"group", "instance_type", "market", "usable_gib_per_node", "usd_per_hour"}
        for o in doc["offers"]
    )
    assert list(doc["policies"]) == ["emr-custom-rules", "static-peak", "oracle"]
    for scores in doc["policies"].values():
        assert set(scores) == SCORE_KEYS
    assert doc["policies"]["oracle"]["cost_ratio_vs_oracle"] == 1.0
    with out_csv.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == [
        "time_s",
        "demand_gib",
        "supply_gib_emr-custom-rules",
        "cost_usd_per_h_emr-custom-rules",
        "supply_gib_static-peak",
        "cost_usd_per_h_static-peak",
        "supply_gib_oracle",
        "cost_usd_per_h_oracle",
    ]
    assert len(rows) == 1 + 8 * 5  # 8 points of 300 s at 60 s steps
    assert rows[1][:2] == ["0", "100"]
    assert rows[11][:2] == ["600", "600"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--column", "nope"], "no column 'nope'"),
        (["--policies", "sparkscale,magic"], "unknown policy 'magic'"),
        (["--peak-gib", "-3"], "--peak-gib must be a positive number"),
        (["--step-s", "0"], "must be > 0"),
        (["--days", "3"], "--days goes with --cloudwatch or --synthetic"),
        (["--config", "/nonexistent/cfg.json"], "cannot read"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["replay", "--trace", str(small_trace(tmp_path)), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("time_s,demand_gib\n0,x\n", "not a number"),
        ("time_s,demand_gib\n60,1\n0,1\n", "unsorted"),
        ("time_s,demand_gib\n-1,1\n", "negative time"),
        ("time_s,gib\n0,1\n", "no column 'demand_gib'"),
    ],
)
def test_bad_trace_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    assert main(["replay", "--trace", str(p)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_synthetic_source_and_cluster_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = tmp_path / "cluster.json"
    cluster.write_text(
        json.dumps(
            {
                "core": {"instance_type": "r5.xlarge", "nodes": 3},
                "task_groups": [
                    {"id": "ig-A", "instance_type": "r6g.2xlarge", "market": "SPOT", "usd_per_hour": 0.12}
                ],
            }
        )
    )
    out = tmp_path / "o.json"
    code = main(
        [
            "replay",
            "--synthetic",
            "bursty-batch",
            "--days",
            "0.25",
            "--peak-gib",
            "300",
            "--cluster",
            str(cluster),
            "--policies",
            "static-peak,oracle",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["core_gib"] == pytest.approx(3 * 32 * 0.75)
    assert doc["offers"] == [
        {
            "group": "ig-A",
            "instance_type": "r6g.2xlarge",
            "market": "SPOT",
            "usable_gib_per_node": 48.0,
            "usd_per_hour": 0.12,
        }
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"core": {"instance_type": "r5.xlarge"}, "task_groups": [{"instance_type": "zz.9"}]})
    )
    assert main(["replay", "--synthetic", "diurnal", "--cluster", str(bad)]) == 2
    assert "memory_gib" in capsys.readouterr().err


def _put_history(cw: object, cluster_id: str, now: datetime) -> None:
    # three 5-minute datapoints: allocated 8 GiB in 4 containers (2 GiB each) + 3 pending → 8 + 6 = 14 GiB;
    # then 16 GiB, 0 pending; then nothing allocated and 2 pending (default 4096 MiB containers) → 8 GiB
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    points = [
        (now - timedelta(minutes=15), 8192, 4, 3),
        (now - timedelta(minutes=10), 16384, 8, 0),
        (now - timedelta(minutes=5), 0, 0, 2),
    ]
    for ts, alloc_mb, calloc, pending in points:
        cw.put_metric_data(  # type: ignore[attr-defined]
            Namespace=names.EMR_NAMESPACE,
            MetricData=[
                {
                    "MetricName": names.EMR_MEMORY_ALLOCATED_MB,
                    "Dimensions": dims,
                    "Timestamp": ts,
                    "Value": alloc_mb,
                },
                {
                    "MetricName": names.EMR_CONTAINER_ALLOCATED,
                    "Dimensions": dims,
                    "Timestamp": ts,
                    "Value": calloc,
                },
                {
                    "MetricName": names.EMR_CONTAINER_PENDING,
                    "Dimensions": dims,
                    "Timestamp": ts,
                    "Value": pending,
                },
            ],
        )


@pytest.mark.usefixtures("aws_env")
def test_trace_from_cloudwatch_history_against_moto() -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0, minute=0)  # noqa: TID251 - test data only
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        _put_history(cw, "j-HISTORY01", now)
        trace = trace_from_cloudwatch(
            cw, cluster_id="j-HISTORY01", end=now, days=1, default_container_mb=4096
        )
        assert trace.times_s == (0.0, 300.0, 600.0)
        assert trace.demand_gib == pytest.approx((14.0, 16.0, 8.0))
        with pytest.raises(TraceError, match="no MemoryAllocatedMB"):
            trace_from_cloudwatch(cw, cluster_id="j-OTHER0001", end=now, days=1, default_container_mb=4096)
    with pytest.raises(TraceError, match="--days"):
        trace_from_cloudwatch(cw, cluster_id="j-HISTORY01", end=now, days=0, default_container_mb=4096)


@pytest.mark.usefixtures("aws_env")
def test_cli_cloudwatch_source_against_moto(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sparkscale.clock import utcnow

    now = utcnow()
    with mock_aws():
        _put_history(boto3.client("cloudwatch", region_name="us-east-1"), "j-HISTORY02", now)
        out = tmp_path / "o.json"
        code = main(
            [
                "replay",
                "--cloudwatch",
                "j-HISTORY02",
                "--days",
                "1",
                "--policies",
                "oracle",
                "--json",
                str(out),
            ]
        )
        assert code == 0, capsys.readouterr().err
        assert "cloudwatch:j-HISTORY02" in capsys.readouterr().out
        assert json.loads(out.read_text())["policies"]["oracle"]["cost_usd"] == 0.0  # 16 GiB fits in core
        assert main(["replay", "--cloudwatch", "j-NOHISTORY", "--days", "1"]) == 2
        assert "no MemoryAllocatedMB" in capsys.readouterr().err


def test_progress_bar_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "replay",
            "--trace",
            str(small_trace(tmp_path)),
            "--policies",
            "emr-custom-rules",
            "--progress",
            "on",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "\r" in captured.err
    assert "100%" in captured.err
    assert "40/40" in captured.err
    assert captured.err.endswith("\n")
    assert "[" not in captured.out.splitlines()[0]  # the bar never goes to stdout


def test_progress_bar_names_the_policy_and_ends_complete_on_its_own_line() -> None:
    import io

    from sparkscale_tools.replay.progress import ProgressBar

    buf = io.StringIO()
    update = ProgressBar(buf).for_policy("sparkscale")
    for done in range(10, 1001, 10):  # the engine reports every few steps, not each one
        update(done, 1000)
    last = buf.getvalue().split("\r")[-1]
    assert last.startswith("sparkscale")
    assert "100%" in last
    assert "1000/1000" in last
    assert last.endswith("\n")
