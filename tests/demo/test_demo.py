"""`sparkscale demo`: a shortened scenario end to end (the real handlers over HTTP against a moto server, the
stack synthesized in process the way tests/infra does), what the demo reads from the template, the Lambda
asset's exclusion of the demo, clean-up on Ctrl-C, and the CLI's answer to bad input.

No test here may reach a real AWS endpoint: the demo sets fake credentials, points every client at its own
moto server on 127.0.0.1 and refuses to run if a handler client points anywhere else.
"""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import matplotlib.pyplot as plt
import pytest
from sparkscale import alarms, clock, names
from sparkscale.config import Config
from sparkscale_tools.cli import main
from sparkscale_tools.demo import aws
from sparkscale_tools.demo import template as tp
from sparkscale_tools.demo.run import (
    DEMO_RUN,
    DemoOptions,
    DemoResult,
    against_emr_rules,
    default_cluster,
    forecast_points,
    run_demo,
    summary_text,
)
from sparkscale_tools.demo.sim import DemoController
from sparkscale_tools.replay import outputs, synthetic
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.run import ReplayResult

from tests.infra.stack_testlib import synth

HOURS = 4.0  # bursty-batch, seed 0: the nightly ETL from 01:00 to 03:00 plus random jobs


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack from cdk.json's context, synthesized once (a cloud assembly with the template and assets)."""
    out = tmp_path_factory.mktemp("cdk.out")
    synth(outdir=out)
    return out


def _port_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 80)) == 0


def _options(cdk_out: Path, out_dir: Path, *, hours: float = HOURS, compare: bool = True) -> DemoOptions:
    trace = synthetic.bursty_batch(days=hours / 24.0, peak_gib=800.0, seed=0)
    return DemoOptions(
        template=cdk_out, trace=trace, out_dir=out_dir, cluster=default_cluster(), compare=compare
    )


@pytest.fixture(scope="module")
def demo(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str, bool]:
    """The scenario, once: (result, what it printed, whether os.environ came back unchanged)."""
    env_before = dict(os.environ)
    out = io.StringIO()
    result = run_demo(_options(cdk_out, tmp_path_factory.mktemp("demo-out")), out=out, err=io.StringIO())
    return result, out.getvalue(), dict(os.environ) == env_before


# --- the template, as the demo reads it ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_alarms_the_demo_evaluates_are_the_stacks_alarm_specs(cdk_out: Path) -> None:
    tpl = tp.load(cdk_out)
    cid = tpl.cluster_ids[0]
    topics = [lid for lid, r in tpl.doc["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    arns = {lid: f"arn:aws:sns:us-east-1:123456789012:{lid}" for lid in topics}
    people = {arns[lid] for lid in tpl.email_topics}
    resolve = tp.Resolver(refs=arns, parameters=tpl.parameters)
    expected = {s.name: s for s in alarms.alarm_specs(tpl.config, cid)}
    got = {}
    for props in tpl.alarms_of(cid):
        params = tp.put_metric_alarm_params(props, resolve)
        actions = {*params.get("AlarmActions", []), *params.get("OKActions", [])}
        spec = tp.alarm_spec(
            params,
            prefix=tpl.alarm_prefix,
            cluster_id=cid,
            to_operators=bool(people & actions),
        )
        got[spec.name] = spec
    assert set(got) == set(expected)
    for name, spec in got.items():
        want = expected[name]
        for attr in (
            "kind",
            "namespace",
            "metric_name",
            "statistic",
            "period_s",
            "evaluation_periods",
            "datapoints_to_alarm",
            "threshold",
            "comparison",
            "treat_missing_data",
            "to_operators",
            "dimensions",
            "metrics",
            "expression",
        ):
            assert getattr(spec, attr) == getattr(want, attr), (name, attr)


@pytest.mark.slow
def test_the_template_gives_table_topics_schedule_and_function_settings(cdk_out: Path) -> None:
    tpl = tp.load(cdk_out)
    assert [k["AttributeName"] for k in tpl.table.key_schema] == [names.TABLE_PK, names.TABLE_SK]
    assert tpl.table.ttl_attribute == names.TABLE_TTL_ATTR
    assert tpl.alarm_topic != tpl.operator_topic
    assert tpl.reconcile_rate_s == tpl.config.reconcile_rate_s
    env = tpl.functions[tp.ALARM_HANDLER].environment
    assert env[names.ENV_OPERATOR_TOPIC_ARN] == {"Ref": tpl.operator_topic}
    renamed = tp.for_cluster(tpl, "j-DEMOTEST00001")
    assert renamed.cluster_ids[0] == "j-DEMOTEST00001"
    assert all("j-DEMOTEST00001" in p["AlarmName"] for p in renamed.alarms_of("j-DEMOTEST00001"))
    assert renamed.alarms_of(tpl.cluster_ids[0]) == []


@pytest.mark.slow
def test_the_lambda_asset_ships_only_the_replay_engine_of_the_tools(cdk_out: Path) -> None:
    assets = [d for d in cdk_out.glob("asset.*") if (d / "handlers").is_dir()]
    assert assets, "no Lambda asset with handlers/ in the cloud assembly"
    for asset in assets:
        assert (asset / "sparkscale" / "usecases" / "scale.py").is_file()
        assert not list(asset.rglob("demo"))
        # of the tools, only the replay engine the weekly digest runs (sparkscale_cdk/lambda_asset.py)
        tools = asset / "sparkscale_tools"
        assert sorted(p.name for p in tools.iterdir()) == ["__init__.py", "replay"]
        assert (tools / "replay" / "savings.py").is_file()
        for left_out in ("cli.py", "outputs.py", "progress.py", "streaming_cli.py"):
            assert not (tools / "replay" / left_out).exists(), left_out
        assert not (asset / "sparkscale" / "replay").exists()


# --- the shortened scenario ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_handlers_scale_out_and_back_in_through_moto_emr(
    demo: tuple[DemoResult, str, bool], cdk_out: Path
) -> None:
    result, _, _ = demo
    s = result.stats
    # what the model read back from moto with ListInstanceGroups after the handlers' ModifyInstanceGroups
    assert result.scaled_out, s.requested
    assert result.scaled_in_after_out, s.requested
    assert result.max_requested > sum(result.initial_task_nodes.values())
    assert s.modifications == result.record.actions > 0
    directions = {(d["direction"], d["outcome"]) for d in s.decisions}
    assert ("scale_out", "applied") in directions
    assert ("scale_in", "applied") in directions
    # both handlers ran; every alarm payload the demo built was accepted by the real alarm handler
    assert s.invocations[tp.ALARM_HANDLER] > 0
    # the schedule of the template the demo deployed (cdk.json: every 120 s)
    assert s.invocations[tp.RECONCILE_HANDLER] == int(HOURS * 3600 / tp.load(cdk_out).reconcile_rate_s)
    assert "rejected" not in s.outcomes
    assert s.failures == []
    assert s.transitions.get(names.ALARM_KIND_YARN_MEMORY, 0) >= 2  # into ALARM and back


@pytest.mark.slow
def test_no_master_or_core_group_changed(demo: tuple[DemoResult, str, bool]) -> None:
    result, _, _ = demo
    assert result.stats.fixed_groups_changed == []
    for _, requested in result.stats.requested:
        fixed = {g: n for g, n in requested.items() if g not in result.task_groups}
        assert sorted(fixed.values()) == [1, 2]  # MASTER x1, CORE x2 as created


@pytest.mark.slow
def test_every_notice_reaches_the_operator_topic_and_only_alerts_are_emailed(
    demo: tuple[DemoResult, str, bool],
) -> None:
    result, printed, _ = demo
    notices, emails = result.stats.notices, result.stats.emails

    def kinds(envelopes: list[dict]) -> list[str | None]:
        return [((e.get("MessageAttributes") or {}).get("kind") or {}).get("Value") for e in envelopes]

    subjects = [str(e.get("Subject", "")) for e in notices]
    applied = sum(1 for d in result.stats.decisions if d["outcome"] == "applied")
    assert kinds(notices).count("action") == applied
    assert any(": scale out " in t for t in subjects)
    assert any(": scale in " in t for t in subjects)
    # the email address gets what the template's filter policy lets through (moto applies it) and the alarms
    # for people, which carry no kind: no routine resize
    emailed = Config().email_notice_kinds
    assert all(k is None or k in emailed for k in kinds(emails))
    assert "action" not in kinds(emails)
    assert len(emails) < len(notices)
    assert "SCALE OUT" in printed
    assert "SCALE IN" in printed
    assert "email to operators:" in printed
    assert "emails an operator's address received" in result.files["summary"].read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_summary_compares_with_emr_custom_rules_and_writes_the_files(
    demo: tuple[DemoResult, str, bool],
) -> None:
    result, _, _ = demo
    replay: ReplayResult = result.replay
    assert {DEMO_RUN, "sparkscale (replay)", "emr-custom-rules", "oracle"} <= set(replay.scores)
    ours, sim = replay.scores[DEMO_RUN], replay.scores["sparkscale (replay)"]
    assert ours.cost_usd > 0
    # the real handlers over moto and the replay's simulated adapters drive the same model to a similar cost
    # (they differ where the real EMR adapter refuses to resize a RESIZING group, which the replay accepts)
    assert ours.cost_usd == pytest.approx(sim.cost_usd, rel=0.35)
    assert result.files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = json.loads(result.files["scores"].read_text(encoding="utf-8"))
    assert DEMO_RUN in scores["policies"]
    lines = result.files["decisions"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(result.stats.decisions)
    assert "Subject: " in result.files["emails"].read_text(encoding="utf-8")
    assert result.files["handler_log"].stat().st_size > 0


@pytest.mark.slow
def test_the_summary_says_in_words_what_each_policy_cost_and_left_unserved(
    demo: tuple[DemoResult, str, bool],
) -> None:
    result, _, _ = demo
    text = result.files["summary"].read_text(encoding="utf-8")
    assert text == summary_text(result, trace_name=_options(Path(), Path()).trace.name)
    lines = text.splitlines()
    words = outputs.plain_words(result.replay)
    first = lines.index(words[0])
    assert lines[first : first + len(words)] == words  # right under the heading
    for name in (DEMO_RUN, "sparkscale (replay)", "emr-custom-rules", "oracle"):
        cost = result.replay.scores[name].cost_usd
        said = f"${cost:,.2f} for the task nodes"
        assert any(line.startswith(f"{name} (") and said in line for line in words)
    assert any(line.startswith("Cheapest (the oracle aside): ") for line in words)
    assert any(line.startswith("Least demand unserved: ") for line in words)
    against = against_emr_rules(result.replay)
    assert against[0].startswith(f"Against EMR's rules: {DEMO_RUN} cost ")
    assert lines[first + len(words) : first + len(words) + len(against)] == against
    key = lines.index(outputs.TABLE_KEY[0])
    assert first < key
    assert lines[key + len(outputs.TABLE_KEY)].startswith("policy")


@pytest.mark.slow
def test_the_plot_shows_the_fresh_signals_under_the_supply(demo: tuple[DemoResult, str, bool]) -> None:
    result, _, _ = demo
    signals = result.signals
    assert signals is not None
    p = SimParams()
    # the collector's minutes, readable 70 s after each minute starts; EMR's 5-minute datapoints 120 s after
    assert len(signals.yarn) >= 4 * len(signals.emr) > 0
    assert signals.yarn[0][0] == pytest.approx(p.yarn_period_s + p.yarn_lag_s)
    assert signals.emr[0][0] == pytest.approx(p.emr_lag_s)
    assert max(v for _, v in signals.yarn) > 0  # the scenario's shortages show as pending memory
    fig = outputs.plot_figure(result.replay, signals=signals)
    try:
        supply_ax, signal_ax, cost_ax, zoom_ax, short_ax = fig.axes
        names = [t.get_text() for t in short_ax.get_yticklabels()]
        assert names == list(reversed(result.replay.runs))  # a "short of memory" row per policy
        assert signal_ax.get_shared_x_axes().joined(supply_ax, signal_ax)
        legend = [t.get_text() for t in signal_ax.get_legend().get_texts()]
        assert any(t.startswith("YARN collector: YarnPendingMemoryMB") for t in legend)
        assert any(t.startswith("EMR's metrics: ContainerPending") for t in legend)
        assert any("forecast" in t for t in legend) == bool(signals.forecast)
        costs = {t.get_text().split(":")[0] for t in cost_ax.get_legend().get_texts()}
        assert costs == set(result.replay.runs)
        assert zoom_ax.get_xlabel() == "time (h:mm)"
    finally:
        plt.close(fig)


def _scores(cost_usd: float, tau_u_pct: float) -> Any:
    return SimpleNamespace(cost_usd=cost_usd, tau_u_pct=tau_u_pct)


@pytest.mark.parametrize(
    ("ours", "theirs", "says"),
    [
        # the demo's day after the burst rule's no-history default: 4 % dearer, short less often
        (
            (1.93, 6.66),
            (1.86, 6.87),
            "cost 1.04 × theirs ($1.93 against $1.86) and was short of memory 6.7 % of the time against "
            "their 6.9 %: $0.07 more than EMR's rules (not met; docs/demo.md says why).",
        ),
        ((1.80, 6.60), (1.86, 6.87), "6.9 %: no more cost at no more time short: met."),
        # cheaper but short 0.5 points more often: the τ half misses
        (
            (1.50, 7.40),
            (1.86, 6.90),
            "short 0.5 points of the time more often (not met; docs/demo.md says why).",
        ),
        (
            (2.00, 7.40),
            (1.86, 6.90),
            "$0.14 more than EMR's rules; short 0.5 points of the time more often (not met;",
        ),
    ],
)
def test_the_summary_says_how_far_the_demo_is_from_emr_rules(
    ours: tuple[float, float], theirs: tuple[float, float], says: str
) -> None:
    replay = SimpleNamespace(scores={DEMO_RUN: _scores(*ours), "emr-custom-rules": _scores(*theirs)})
    text = " ".join(line.strip() for line in against_emr_rules(replay))
    assert text.startswith(f"Against EMR's rules: {DEMO_RUN} cost ")
    assert says in text


def test_no_comparison_with_emr_rules_without_the_baselines() -> None:
    assert against_emr_rules(SimpleNamespace(scores={DEMO_RUN: _scores(1.0, 1.0)})) == []


def test_forecasts_are_read_from_any_decision_field_named_forecast() -> None:
    epoch = SimParams().epoch
    decisions: list[dict[str, Any]] = [
        {"at": "2026-01-05T00:10:00+00:00", "forecast": {"demand_gib": 500.0, "lead_s": 360}},
        {  # records.forecast_to_dict: the value at target_at
            "at": "2026-01-05T00:15:00+00:00",
            "forecast": {
                "target_at": "2026-01-05T00:21:40+00:00",
                "lead_time_s": 400.0,
                "signal_age_s": 70.0,
                "horizon_s": 470.0,
                "current_gib": 100.0,
                "trend_gib": 150.0,
                "slope_gib_per_s": 0.1,
                "seasonal_gib": 0.0,
                "value_gib": 150.0,
                "method": "trend",
            },
        },
        {"at": "2026-01-05T00:20:00+00:00", "forecast_lead_s": 120, "forecast_demand_gib": 300.0},
        {"at": "2026-01-05T00:30:00+00:00", "inputs": {"forecast_mb": 2048.0}},
        {"at": "2026-01-05T00:40:00+00:00", "forecast_mode": "off"},  # a setting, no forecast
        {"at": "2026-01-05T00:50:00+00:00", "direction": "scale_out"},  # none at all
        {"at": "not a time", "forecast": 1.0},
    ]
    assert forecast_points(decisions, epoch) == [
        (960.0, 500.0),
        (1300.0, 150.0),
        (1320.0, 300.0),
        (1800.0, 2.0),
    ]
    assert forecast_points([], epoch) == []


@pytest.mark.slow
def test_the_server_is_stopped_and_everything_restored(demo: tuple[DemoResult, str, bool]) -> None:
    result, _, env_restored = demo
    assert not _port_open(result.endpoint)
    assert env_restored
    assert abs(clock.utcnow().timestamp() - time.time()) < 60  # the wall clock again, not the simulated one
    assert sys.modules["handlers.common"]._clock is clock.utcnow  # the demo set no global clock
    assert sys.modules["handlers.common"]._runtime is None


@pytest.mark.slow
def test_ctrl_c_stops_the_server_and_restores_everything(
    cdk_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_before = dict(os.environ)
    real_clock = clock.utcnow
    urls: list[str] = []
    real_server = aws.moto_server

    @contextmanager
    def recording_server() -> Iterator[str]:
        with real_server() as url:
            urls.append(url)
            assert _port_open(url)
            yield url

    real_reconcile = DemoController._reconcile

    def interrupted(self: DemoController, t_s: float) -> Any:
        if t_s > 1800:
            raise KeyboardInterrupt
        return real_reconcile(self, t_s)

    monkeypatch.setattr(aws, "moto_server", recording_server)
    monkeypatch.setattr(DemoController, "_reconcile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_demo(_options(cdk_out, tmp_path, hours=1.0, compare=False), out=io.StringIO(), err=io.StringIO())
    assert len(urls) == 1
    assert not _port_open(urls[0])
    assert dict(os.environ) == env_before
    assert clock.utcnow is real_clock
    assert sys.modules["handlers.common"]._clock is real_clock
    assert sys.modules["handlers.common"]._runtime is None


# --- the command line -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--template", "{tmp}/missing"], "no such file or directory"),
        (["--template", "{tmp}", "--hours", "0"], "--hours"),
        (["--template", "{tmp}", "--trace", "{tmp}/missing.csv"], "cannot read"),
        (["--template", "{tmp}/bad.json"], "not a JSON template"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    argv = ["demo", *(a.replace("{tmp}", str(tmp_path)) for a in args), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("sparkscale demo: ")
    assert says in err[0]


def test_the_environment_cannot_point_a_client_at_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EMR", "https://elasticmapreduce.us-east-1.amazonaws.com")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    before = dict(os.environ)
    with aws.patched_environ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}):
        assert "AWS_PROFILE" not in os.environ
        assert "AWS_ENDPOINT_URL_EMR" not in os.environ
        assert "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS" not in os.environ
        assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
        assert os.environ["AWS_CONFIG_FILE"] == os.devnull
        assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert dict(os.environ) == before


def test_a_handler_client_pointing_elsewhere_stops_the_demo() -> None:
    class Meta:
        endpoint_url = "https://elasticmapreduce.us-east-1.amazonaws.com"

    class Client:
        meta = Meta()

    with pytest.raises(tp.DemoError, match="refusing to run"):
        aws.check_endpoints("http://127.0.0.1:9", {"emr": Client()})


@pytest.mark.slow
def test_the_demo_prints_the_digest_it_would_send_for_its_day(demo: tuple[DemoResult, str, bool]) -> None:
    result, printed, _ = demo
    day = SimParams().epoch.date().isoformat()  # the demo's day starts at the replay's epoch
    assert (
        f"daily digest the operators would get the next morning: 'sparkscale daily digest {day}:" in printed
    )
    text = result.files["digest"].read_text(encoding="utf-8")
    assert text.startswith(f"sparkscale daily digest {day}: 1 cluster(s)")
    assert f"{result.cluster_id} (" in text
    # the digest reads the audit records; the demo read the requested counts back from moto EMR: they agree
    assert f"TASK nodes:         peak {result.max_requested}, average" in text
    assert text.rstrip().endswith(f"kind {names.NOTICE_KIND_DIGEST}")
    # short on the console: the subject and at most the first lines of the body
    shown = printed.split("daily digest the operators would get the next morning:")[1].split("\n\n")[0]
    assert len(shown.splitlines()) <= 16
