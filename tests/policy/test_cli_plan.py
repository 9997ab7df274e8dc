"""`sparkscale plan`: the planner on a price list. Offers: tests/fixtures/policy/offers_illustrative.csv
(instance memory from the shared instance table; spot prices ILLUSTRATIVE, see its PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sparkscale_tools.cli import main

OFFERS = Path(__file__).parents[1] / "fixtures" / "policy" / "offers_illustrative.csv"


def plan(capsys, *args):
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_cheapest_whole_nodes(capsys):
    # 100 GiB: 2 x r6g.2xlarge (128 GiB, 2 x 0.1210 = 0.2420 $/h) beats r6g + 2 r5.xlarge (0.2722) and
    # 4 r5.xlarge (0.3024); $/GiB-hour = 0.242 / 128 = 0.001890625 (printed to 8 decimals)
    code, out, err = plan(capsys, "--memory-gib", "100", "--offers", str(OFFERS))
    assert code == 0
    assert err == ""
    doc = json.loads(out)
    assert doc["allocation"] == [
        {"instance_type": "r6g.2xlarge", "nodes": 2, "memory_gib": 128.0, "usd_per_hour": 0.242}
    ]
    assert doc["usd_per_hour"] == pytest.approx(0.242)
    assert doc["usd_per_gib_hour"] == pytest.approx(0.242 / 128, abs=1e-8)


def test_plan_with_max_share(capsys):
    # 256 GiB, at most half per type: 2 r6g.2xlarge (128 GiB, 0.2420) + 4 r5.xlarge (128 GiB, 0.3024) = 0.5444
    code, out, _ = plan(capsys, "--memory-gib", "256", "--offers", str(OFFERS), "--max-share", "0.5")
    assert code == 0
    doc = json.loads(out)
    assert {a["instance_type"]: a["nodes"] for a in doc["allocation"]} == {"r6g.2xlarge": 2, "r5.xlarge": 4}
    assert doc["usd_per_hour"] == pytest.approx(0.5444)
    assert doc["usd_per_gib_hour"] == pytest.approx(0.5444 / 256, abs=1e-8)
    for a in doc["allocation"]:
        assert a["memory_gib"] <= 0.5 * 256


def test_plan_zero_memory(capsys):
    code, out, _ = plan(capsys, "--memory-gib", "0", "--offers", str(OFFERS))
    assert code == 0
    assert json.loads(out)["allocation"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("instance_type,memory_gib\nr5.xlarge,32\n", "missing column(s) spot_usd_per_hour"),
        (
            "instance_type,memory_gib,spot_usd_per_hour\nr5.xlarge,lots,0.1\n",
            "line 2: memory_gib is not a number",
        ),
        ("instance_type,memory_gib,spot_usd_per_hour\nr5.xlarge,0,0.1\n", "line 2: memory_gib must be > 0"),
        ("instance_type,memory_gib,spot_usd_per_hour\nr5.xlarge,32,-1\n", "spot_usd_per_hour must be >= 0"),
        ("instance_type,memory_gib,spot_usd_per_hour\nr5.xlarge,32,nan\n", "must be finite"),
        ("instance_type,memory_gib,spot_usd_per_hour\n,32,0.1\n", "empty instance_type"),
        ("instance_type,memory_gib,spot_usd_per_hour\na,32,0.1\na,32,0.2\n", "appears twice"),
        ("instance_type,memory_gib,spot_usd_per_hour\n", "no offers"),
        ("", "missing column(s)"),
    ],
)
def test_bad_csv_is_one_line_and_exit_2(capsys, tmp_path, content, message):
    f = tmp_path / "offers.csv"
    f.write_text(content, encoding="utf-8")
    code, out, err = plan(capsys, "--memory-gib", "10", "--offers", str(f))
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--memory-gib", "-1"],
        ["--memory-gib", "nan"],
        ["--memory-gib", "10", "--max-share", "0"],
        ["--memory-gib", "10", "--max-share", "1.5"],
    ],
)
def test_bad_arguments_exit_2(capsys, args):
    code, out, err = plan(capsys, *args, "--offers", str(OFFERS))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1


def test_missing_file_exits_2(capsys, tmp_path):
    code, _, err = plan(capsys, "--memory-gib", "10", "--offers", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "cannot read offers file" in err
    assert err.count("\n") == 1


def test_binary_file_exits_2(capsys, tmp_path):
    f = tmp_path / "offers.csv"
    f.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = plan(capsys, "--memory-gib", "10", "--offers", str(f))
    assert code == 2
    assert err.count("\n") == 1
