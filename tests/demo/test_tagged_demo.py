"""`sparkscale demo --tagged-cluster` (issue 15, item 7): part-way through a short run a cluster with the
opt-in tag and an untagged one start on moto; the real discovery handler gives the tagged one its alarms from
the RUNNING event, the real alarm and reconcile handlers scale it, its alarms are gone after its TERMINATED
event, and the untagged one is never evaluated or changed and has no alarm. The stack is synthesized in
process with the `discovery` feature on, as tests/infra does."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sparkscale.alarms import alarm_specs
from sparkscale_cdk.wiring import cdk_json_context
from sparkscale_tools.cli import main
from sparkscale_tools.demo import template as tp
from sparkscale_tools.demo.run import DemoOptions, DemoResult, default_cluster, run_demo
from sparkscale_tools.demo.tagged import TaggedStats
from sparkscale_tools.replay import synthetic

from tests.infra.stack_testlib import synth

pytestmark = pytest.mark.slow

HOURS = 4.0  # bursty-batch, seed 0: the nightly ETL from 01:00 to 03:00; the tagged cluster 01:20-02:40


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk.out")
    features = {**cdk_json_context()["sparkscale:features"], "discovery": True}
    synth({"sparkscale:features": features}, outdir=out)
    return out


def _options(template: Path, out_dir: Path) -> DemoOptions:
    trace = synthetic.bursty_batch(days=HOURS / 24.0, peak_gib=800.0, seed=0)
    return DemoOptions(
        template=template,
        trace=trace,
        out_dir=out_dir,
        cluster=default_cluster(),
        compare=False,
        tagged_cluster=True,
    )


@pytest.fixture(scope="module")
def demo(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, TaggedStats, str]:
    out = io.StringIO()
    result = run_demo(_options(cdk_out, tmp_path_factory.mktemp("demo-out")), out=out, err=io.StringIO())
    assert result.tagged is not None
    return result, result.tagged, out.getvalue()


def test_the_tagged_cluster_gets_its_alarms_from_the_running_event(
    demo: tuple[DemoResult, TaggedStats, str], cdk_out: Path
) -> None:
    result, t, printed = demo
    assert t.tagged_id
    assert t.untagged_id
    assert t.tagged_id != result.cluster_id
    config = tp.load(cdk_out).config
    assert sorted(t.alarms_created) == sorted(s.name for s in alarm_specs(config, t.tagged_id))
    actions = [(c, a) for _, c, a in t.discovery]
    assert actions[:2] == [(t.tagged_id, "adopted"), (t.untagged_id, "ignored")]
    assert t.started_at == "01:20:30"
    assert f"discovery: {t.tagged_id} RUNNING -> adopted" in printed
    assert f"DescribeAlarms sparkscale-{t.tagged_id}-*: {len(t.alarms_created)} alarms" in printed
    # the sweep ran on the schedule all run long (every 120 s) without changing anything the events did
    assert t.sweeps == int(HOURS * 3600 / config.reconcile_rate_s)
    assert [a for _, c, a in t.discovery if c == t.tagged_id] == ["adopted", "released"]


def test_the_tagged_cluster_is_scaled_by_the_real_handlers(demo: tuple[DemoResult, TaggedStats, str]) -> None:
    result, t, printed = demo
    ours = [d for d in result.stats.decisions if d.get("cluster_id") == t.tagged_id]
    assert ("scale_out", "applied") in {(d["direction"], d["outcome"]) for d in ours}
    assert t.max_requested > 0  # read back from moto (ListInstanceGroups) after ModifyInstanceGroups
    assert t.tagged_id in result.stats.result_clusters
    assert f"{t.tagged_id}  SCALE OUT" in printed
    assert f"alarm {t.tagged_id} " in printed  # its alarms were evaluated and woke the alarm handler


def test_its_alarms_are_gone_once_it_terminated(demo: tuple[DemoResult, TaggedStats, str]) -> None:
    _, t, printed = demo
    assert t.ended_at == "02:40:30"
    assert t.alarms_left == []  # DescribeAlarms on moto after the TERMINATED event
    assert f"discovery: {t.tagged_id} TERMINATED -> released" in printed
    assert f"DescribeAlarms sparkscale-{t.tagged_id}-*: 0 alarms left" in printed


def test_the_untagged_cluster_is_never_evaluated_or_touched(
    demo: tuple[DemoResult, TaggedStats, str],
) -> None:
    result, t, _ = demo
    assert t.untagged_alarms == []
    assert t.untagged_changed == []
    assert not t.untagged_registered
    assert t.untagged_id not in result.stats.result_clusters
    assert all(d.get("cluster_id") != t.untagged_id for d in result.stats.decisions)
    assert result.tagged_failures == []


def test_the_first_cluster_and_the_handlers_are_unaffected(demo: tuple[DemoResult, TaggedStats, str]) -> None:
    result, _, _ = demo
    assert result.stats.failures == []
    assert result.stats.fixed_groups_changed == []
    assert result.scaled_out
    assert result.scaled_in_after_out


def test_the_summary_says_it_in_plain_lines(demo: tuple[DemoResult, TaggedStats, str]) -> None:
    result, t, _ = demo
    text = result.files["summary"].read_text(encoding="utf-8")
    assert f"tagged cluster {t.tagged_id} (started 01:20:30, no redeploy)" in text
    assert "0 alarms left" in text
    assert f"untagged cluster {t.untagged_id}: 0 alarms, not registered, groups unchanged" in text
    assert "FAILED" not in text


def test_a_template_without_the_discovery_feature_is_refused(cdk_out: Path, tmp_path: Path) -> None:
    path = tp.find_template(cdk_out)
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["Resources"] = {
        k: r
        for k, r in doc["Resources"].items()
        if (r.get("Properties") or {}).get("Handler") != tp.DISCOVERY_HANDLER
    }
    plain = tmp_path / "Sparkscale.template.json"
    plain.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(tp.DemoError, match="--tagged-cluster needs a stack with the `discovery` feature"):
        run_demo(_options(plain, tmp_path / "out"), out=io.StringIO(), err=io.StringIO())


def test_the_cli_offers_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["demo", "--help"])
    assert done.value.code == 0
    assert "--tagged-cluster" in capsys.readouterr().out
