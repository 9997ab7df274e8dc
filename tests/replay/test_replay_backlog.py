"""The work-conserving model (--backlog): FIFO queue arithmetic, the signals it feeds, its scores, and that
with it off every existing score is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_helpers import TRACES, tiny_cluster
from sparkscale.config import Config
from sparkscale_tools.cli import main
from sparkscale_tools.replay import outputs
from sparkscale_tools.replay.backlog import Backlog, backlog_of, weighted_quantile
from sparkscale_tools.replay.cluster import default_cluster
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.policies import DEFAULT_POLICIES, REACTIVE_IDEAL
from sparkscale_tools.replay.run import PolicySpec, parse_policies, run_replay
from sparkscale_tools.replay.trace import load_csv

GOLDEN = Path(__file__).parent / "golden"


def test_queue_arithmetic_by_hand() -> None:
    """Arrivals 10, 50, 50, 0, 0 GiB on 40 GiB each step (60 s):

    step 0: 10 served at once                                   q = 0
    step 1: 40 of 50 served at once, 10 wait                    q = 10
    step 2: the 10 of step 1 first (waited 1), 30 of 50 at once  q = 20
    step 3: the 20 of step 2 (waited 1)                          q = 0
    queued GiB-steps 10 + 20 = 30 → 30 × 60 s = 0.5 GiB-h (= 30 GiB × 1 step waited)
    waits by GiB: 0 steps 80 GiB, 1 step 30 GiB of 110: p50 0 min (80 ≥ 55), p95 1 min (80 < 104.5)
    """
    b = backlog_of([10.0, 50.0, 50.0, 0.0, 0.0], [40.0] * 5, 60.0)
    assert b.queue_after == [0.0, 10.0, 20.0, 0.0, 0.0]
    assert b.waited == {0: 80.0, 1: 30.0}
    s = b.scores()
    assert s.queued_gib_hours == pytest.approx(0.5)
    assert s.wait_p50_min == 0.0
    assert s.wait_p95_min == 1.0
    assert s.wait_max_min == 1.0
    assert s.left_gib == 0.0


def test_work_still_queued_at_the_end_counts_with_its_wait_so_far() -> None:
    """100 GiB on 40 GiB, one 300 s step: 40 served at once, 60 left, censored at 1 step = 5 min."""
    s = backlog_of([100.0], [40.0], 300.0).scores()
    assert s.left_gib == pytest.approx(60.0)
    assert s.queued_gib_hours == pytest.approx(60.0 * 300 / 3600)
    assert s.wait_p50_min == 5.0  # 60 of 100 GiB waited (at least) one step
    assert s.wait_p95_min == 5.0


def test_backlog_wanted_is_arrivals_plus_queue() -> None:
    b = Backlog(60.0)
    assert b.wanted(5.0) == 5.0
    b.step(50.0, 20.0)
    assert b.wanted(5.0) == pytest.approx(35.0)


def test_weighted_quantile() -> None:
    assert weighted_quantile({}, 0.5) == 0.0
    assert weighted_quantile({0: 1.0, 3: 1.0}, 0.5) == 0.0
    assert weighted_quantile({0: 1.0, 3: 1.0}, 0.51) == 3.0


def test_reactive_ideal_under_the_backlog_by_hand() -> None:
    """Arrivals 30, 30, 200, 200, 200 then 0 (20 steps of 60 s); core 48 GiB; task nodes of 96 GiB usable,
    $0.30/h, usable 360 s after the request. reactive-ideal asks at each step for ⌈(wanted − 48)/96⌉ nodes of
    wanted = arrivals + queue; the supply stays 48 GiB until the first nodes come at 480 s.

    step  wanted  served from (GiB @ steps waited)            queue after   request
    0,1   30      30 @0                                        0             0
    2     200     48 @0                                        152           2 (t=120)
    3     352     48 of step 2 @1                              304           4 (t=180: +2)
    4     504     48 of step 2 @2                              456           5 (t=240: +1)
    5     456     48 of step 2 @3                              408           5
    6     408     8 of step 2 @4, 40 of step 3 @3              360           4 (t=360: the 5th, still
                                                                                starting, cancelled)
    7     360     48 of step 3 @4                              312           4
    8     312     2 nodes usable at 480 → 240 GiB:                           3 (t=480: one starting
                  112 of step 3 @5, 128 of step 4 @4           72               node cancelled)
    9     72      the 3rd usable at 540, then 2 released → 144:               1 (t=540)
                  72 of step 4 @5                              0
    10    0                                                    0             0 (t=600)

    queued GiB-steps 152+304+456+408+360+312+72 = 2064 → 2064/60 = 34.4 GiB-h
    waits: 0: 108, 1: 48, 2: 48, 3: 88, 4: 184, 5: 184 GiB (660 in all) → p50 4 min (292 < 330 ≤ 476),
    p95 5 min (476 < 627), max 5 min
    cost: two nodes 120→660 and 120→720 s... billed from request to termination: three nodes requested at
    120, 120, 180 terminate at 660, 660, 720 (1620 node-s); the 5th billed 240→360 (120), the 4th 180→480
    (300): 2040 node-s × $0.30/3600 = $0.17. Scores against arrivals: τ_U = steps 2, 3, 4 = 15 %.
    """
    arrivals = [30.0, 30.0, 200.0, 200.0, 200.0] + [0.0] * 15
    result = run_replay(
        arrivals,
        policies=[PolicySpec(REACTIVE_IDEAL, REACTIVE_IDEAL), PolicySpec("oracle", "oracle")],
        config=Config(),
        cluster=tiny_cluster(),
        params=SimParams(backlog=True),
    )
    run = result.runs[REACTIVE_IDEAL]
    assert run.supply_gib == [48.0] * 8 + [240.0, 144.0] + [48.0] * 10
    assert run.backlog is not None
    assert run.backlog.queue_after[:10] == pytest.approx(
        [0.0, 0.0, 152.0, 304.0, 456.0, 408.0, 360.0, 312.0, 72.0, 0.0]
    )
    assert run.backlog.waited == pytest.approx({0: 108.0, 1: 48.0, 2: 48.0, 3: 88.0, 4: 184.0, 5: 184.0})
    assert run.scale_out_times_s == [120.0, 180.0, 240.0]
    s = result.scores[REACTIVE_IDEAL]
    assert s.cost_usd == pytest.approx(0.17)
    assert s.actions == 7
    assert s.tau_u_pct == pytest.approx(15.0)
    assert result.backlog_scores is not None
    b = result.backlog_scores[REACTIVE_IDEAL]
    assert b.queued_gib_hours == pytest.approx(34.4)
    assert (b.wait_p50_min, b.wait_p95_min, b.wait_max_min, b.left_gib) == (4.0, 5.0, 5.0, 0.0)
    # the oracle covers every step's arrivals with no delay: nothing ever waits
    o = result.backlog_scores["oracle"]
    assert (o.queued_gib_hours, o.wait_p95_min) == (0.0, 0.0)


def test_the_queue_drains_at_the_supply_rate() -> None:
    """Work that does not fit is served later, 48 GiB a step, instead of vanishing."""
    arrivals = [200.0] * 5 + [0.0] * 25
    for backlog in (False, True):
        result = run_replay(
            arrivals,
            policies=[PolicySpec("emr-custom-rules", "emr-custom-rules")],
            config=Config.from_mapping({"max_task_nodes": 0, "group_max_nodes": 0}),  # never scales
            cluster=tiny_cluster(),
            params=SimParams(backlog=backlog),
        )
        assert result.runs["emr-custom-rules"].supply_gib == [48.0] * 30
        if backlog:
            b = result.backlog_scores
            assert b is not None
            # 1000 GiB-steps arrive, 48 served a step: the queue drains at step 20 (21 × 48 = 1008)
            queue = result.runs["emr-custom-rules"].backlog
            assert queue is not None
            assert queue.queue_after[19] == pytest.approx(1000 - 20 * 48)
            assert queue.queue_after[20] == 0.0
            assert b["emr-custom-rules"].left_gib == 0.0
        else:
            assert result.backlog_scores is None
            assert result.runs["emr-custom-rules"].backlog is None


def test_backlog_signals_reflect_the_queue() -> None:
    from sparkscale import names
    from sparkscale_tools.replay.engine import RunRecord, World

    class Idle:
        name = "idle"

        def attach(self, world: World) -> None:
            pass

    arrivals = [200.0] * 2 + [0.0] * 10
    w = World(
        demand_gib=arrivals,
        cluster=tiny_cluster(),
        config=Config(),
        params=SimParams(backlog=True),
        seed=0,
        record=RunRecord("idle"),
    )
    w.run(Idle())
    w.yarn.made()
    # the YARN minute [180, 240) is step 3: nothing arrives, 400 − 3·48 = 256 GiB still wanted, 48 running
    by_start = dict(zip(w.yarn.times, w.yarn.values, strict=True))
    m = by_start[180.0]
    assert m[names.YARN_PENDING_MEMORY_MB] == pytest.approx((256 - 48) * 1024)
    assert m[names.YARN_ALLOCATED_MEMORY_MB] == pytest.approx(48 * 1024)
    assert m[names.YARN_APPS_PENDING] > 0
    # the same minute without the backlog: nothing wanted, nothing pending
    w2 = World(
        demand_gib=arrivals,
        cluster=tiny_cluster(),
        config=Config(),
        params=SimParams(),
        seed=0,
        record=RunRecord("idle"),
    )
    w2.run(Idle())
    w2.yarn.made()
    assert dict(zip(w2.yarn.times, w2.yarn.values, strict=True))[180.0][names.YARN_PENDING_MEMORY_MB] == 0.0


@pytest.mark.parametrize(
    ("golden", "extra"),
    [
        ("swim_fb2009_default.json", []),
        (
            "swim_fb2009_spot_seed3.json",
            ["--interruption-rate", "0.05", "--shortfall-per-day", "2", "--seed", "3"],
        ),
    ],
)
def test_without_the_new_signals_and_the_backlog_every_score_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], golden: str, extra: list[str]
) -> None:
    """The JSON the replay wrote before the YARN collector, Spark's executor demand, reactive-ideal and the
    backlog existed (see golden/PROVENANCE.md), byte for byte, with those signals off and no backlog: the
    options add to the model and change nothing else."""
    out = tmp_path / "scores.json"
    # the burst rule off, as the policy was when the golden files were written
    off = tmp_path / "off.json"
    off.write_text('{"burst_first_step_nodes": 0}', encoding="utf-8")
    args = [
        "replay",
        "--trace",
        str(TRACES / "swim_fb2009_hadoop.csv"),
        "--json",
        str(out),
        "--config",
        str(off),
    ]
    assert main([*args, *extra, "--no-yarn-collector", "--no-dynamic-allocation"]) == 0
    capsys.readouterr()
    assert out.read_text(encoding="utf-8") == (GOLDEN / golden).read_text(encoding="utf-8")


def test_backlog_scores_are_added_to_the_json_and_the_timeline() -> None:
    trace = load_csv(TRACES / "swim_fb2009_hadoop.csv")
    demand = trace.resample(60)[:240]
    specs = [*parse_policies(",".join(DEFAULT_POLICIES)), PolicySpec(REACTIVE_IDEAL, REACTIVE_IDEAL)]
    cfg = Config.from_mapping({"max_task_nodes": 60, "group_max_nodes": 60})
    result = run_replay(
        demand, policies=specs, config=cfg, cluster=default_cluster(), params=SimParams(backlog=True)
    )
    data = json.loads(outputs.json_text(result))
    for name in [*DEFAULT_POLICIES, REACTIVE_IDEAL]:
        assert set(outputs.BACKLOG_KEYS) <= set(data["policies"][name])
        assert set(outputs.SCORE_KEYS) <= set(data["policies"][name])
    assert f"queued_gib_{REACTIVE_IDEAL}" in outputs.timeline_columns(result)
    assert "queued GiB-h" in outputs.summary_text(result)
    plain = run_replay(demand, policies=specs, config=cfg, cluster=default_cluster(), params=SimParams())
    assert "queued GiB-h" not in outputs.summary_text(plain)
    assert not any(c.startswith("queued_gib") for c in outputs.timeline_columns(plain))


def test_a_backlog_run_is_a_plain_run_of_what_its_signals_saw() -> None:
    """The policy cannot tell the two models apart: replaying a --backlog run's wanted series (arrivals +
    queue, what its signals were computed from) as a plain trace, the same policy asks for the same nodes
    and has the same supply at every step. So one setting must serve both readings of the same signals
    (the frontier's backlog table: what buys little for a deep queue leaves a level of demand short)."""
    arrivals = list(load_csv(TRACES / "swim_fb2009_hadoop.csv").resample(60.0))[:600]
    config = Config.from_mapping({"max_task_nodes": 60, "group_max_nodes": 60})
    spec = [PolicySpec("sparkscale", "sparkscale", config)]
    queued = run_replay(
        arrivals, policies=spec, config=config, cluster=default_cluster(), params=SimParams(backlog=True)
    )
    run = queued.runs["sparkscale"]
    assert run.backlog is not None
    q = run.backlog.queue_after
    assert max(q) > 1000.0  # a real queue built up (SWIM's first spike)
    wanted = [a + (q[k - 1] if k else 0.0) for k, a in enumerate(arrivals)]
    plain = run_replay(wanted, policies=spec, config=config, cluster=default_cluster(), params=SimParams())
    assert plain.runs["sparkscale"].supply_gib == run.supply_gib
    assert plain.runs["sparkscale"].scale_out_times_s == run.scale_out_times_s
    assert plain.scores["sparkscale"].cost_usd == pytest.approx(queued.scores["sparkscale"].cost_usd)


def test_a_share_of_a_deep_queue_costs_less_and_waits_longer() -> None:
    """SWIM's first spike (3,000 GiB for 15 minutes) under --backlog: buying 5 % of the memory waiting
    instead of all of it costs less and leaves the work waiting longer (pending_share_pct)."""
    arrivals = list(load_csv(TRACES / "swim_fb2009_hadoop.csv").resample(60.0))[:600]
    out = {}
    for share in (100.0, 5.0):
        settings = {"max_task_nodes": 60, "group_max_nodes": 60, "pending_share_pct": share}
        config = Config.from_mapping(settings)
        res = run_replay(
            arrivals,
            policies=[PolicySpec("sparkscale", "sparkscale", config)],
            config=config,
            cluster=default_cluster(),
            params=SimParams(backlog=True),
        )
        assert res.backlog_scores is not None
        out[share] = (res.scores["sparkscale"].cost_usd, res.backlog_scores["sparkscale"].queued_gib_hours)
    # measured with the shipped burst rule (regrowth, no-history prior): $14.5 against $18.9
    assert out[5.0][0] < 0.85 * out[100.0][0]
    assert out[5.0][1] > out[100.0][1]  # 32,716 against 25,478 GiB-h
