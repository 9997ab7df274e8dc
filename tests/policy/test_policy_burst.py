"""Bursts (policy/burst.py): a young burst buys a small first step; the whole shortfall once it has lasted
burst_confirm_s, unless the cluster's earlier bursts that lasted as long mostly ended too soon for new nodes
to be useful. One behaviour per test, numbers worked out in the comments.

Cluster as in test_policy_decide: CORE 2 x r5.2xlarge (48 GiB usable each), TASK group ig-a SPOT r5.2xlarge,
48 GiB usable per node; YARN memory used target 85 %, deadband 8 % (scale out above 91.8 %).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from policy_builders import NOW, ago, cfg, cluster, group, metrics, targets, yarn
from sparkscale.config import Config
from sparkscale.policy import Direction, ReasonCode, ScalerState, decide
from sparkscale.policy.burst import (
    HISTORY,
    MIN_LONGER,
    next_burst,
    remaining_s,
    starts_burst,
    without_history_s,
)
from sparkscale.policy.decide import evaluate
from sparkscale.policy.model import BurstLevel, BurstReading
from sparkscale.policy.state import next_state

# 100 % of 192 GiB used + 40 pending containers x 4 GiB: (192 + 160) / 0.85 = 414.1 GiB wanted, 192 counted:
# +222.1 GiB = 5 nodes of 48 GiB (240 GiB)
BURST = yarn(192, 100, ContainerPending=40, AppsRunning=1)
ON = {"burst_first_step_nodes": 1, "burst_confirm_s": 240, "burst_useful_s": 360}
# lead time 360 s (no delay measured yet) + burst_useful_s 360 s = 720 s: the whole shortfall is bought when
# the earlier bursts that lasted as long went on for a median of at least 720 s more
SHORT_ONES = (600.0, 700.0, 800.0, 900.0)  # at 240 s: 360, 460, 560, 660 s more, median 510 s < 720 s
LONG_ONES = (1200.0, 1500.0, 1800.0, 3600.0)  # at 240 s: median 1410 s more >= 720 s


def a(requested=2, **kw):
    return group("ig-a", requested=requested, **kw)


def run(state, *, config=None, c=None):
    return decide(
        now=NOW, cluster=c or cluster(a()), metrics=metrics(**BURST), config=config or cfg(**ON), state=state
    )


def going_on(
    age_s, *, durations=(), first_step_ago=130, out_of_memory=True, need_gib=0.0, heap_pressed_ago=None
):
    """A burst that began age_s ago on the 192 GiB (base) with its first step requested first_step_ago,
    asked for a need of need_gib (0: not known), and the executors' heap pressed since heap_pressed_ago,
    when given."""
    return ScalerState(
        burst_levels=(BurstLevel(ago(age_s), 192.0, need_gib),),
        burst_short=True,
        burst_out_of_memory=out_of_memory,
        burst_durations_s=durations,
        last_scale_out_at=ago(first_step_ago),
        heap_pressure_since=None if heap_pressed_ago is None else ago(heap_pressed_ago),
    )


def test_on_by_default_the_first_request_of_a_burst_is_one_node():
    # the shipped settings (not cfg(), which turns the rule off for the other policy tests)
    d = run(ScalerState(), config=Config())
    assert targets(d) == {"ig-a": 3}  # 2 + 1, not the whole 5
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED
    assert (Config().burst_confirm_s, Config().burst_useful_s) == (120, 720)


def test_a_first_step_is_not_at_max_and_names_no_limit():
    # the rest of the shortfall is left by the burst rule's choice: no "at max" email, no max_task_nodes text
    d = run(ScalerState())
    assert targets(d) == {"ig-a": 3}
    assert not d.at_max_under_pressure
    assert not any("cannot be added" in r.text for r in d.reasons)


def test_a_first_step_at_the_real_maximum_is_at_max():
    # one node of room left and the first step would be two: the maximum binds, not the rule
    d = run(ScalerState(), config=cfg(**{**ON, "burst_first_step_nodes": 2}, max_task_nodes=3))
    assert targets(d) == {"ig-a": 3}
    assert d.at_max_under_pressure


def test_off_buys_the_whole_shortfall():
    d = run(ScalerState(), config=cfg(burst_first_step_nodes=0))
    assert targets(d) == {"ig-a": 7}  # 2 + 5
    assert all(
        r.code not in {ReasonCode.BURST_UNCONFIRMED, ReasonCode.BURST_ENDS_TOO_SOON} for r in d.reasons
    )


def test_the_first_request_of_a_burst_is_small_and_says_why():
    d = run(ScalerState())  # no burst yet: this evaluation starts one (age 0 s)
    assert d.direction is Direction.OUT
    assert targets(d) == {"ig-a": 3}  # 2 + burst_first_step_nodes 1
    why = d.reasons[0]
    assert why.code is ReasonCode.BURST_UNCONFIRMED
    assert why.values == {"burst_age_s": 0.0, "confirm_s": 240.0, "first_step_nodes": 1.0}
    assert "240 s" in why.text
    assert "222 GiB" in why.text  # the whole shortfall it waits to buy
    assert d.desired_task_nodes == 7  # the estimate is still the whole need (the audit shows both)


def test_a_second_scale_out_before_confirmation_adds_nothing():
    # burst 200 s old, its first step requested 130 s ago (past the 120 s cooldown): hold
    d = run(going_on(200), c=cluster(a(3, running=2)))
    # counted 96 + 3 x 48 = 240: 414.1 still wants 4 nodes more
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED
    assert d.reasons[0].values["first_step_nodes"] == 0.0


def test_a_confirmed_burst_buys_the_whole_shortfall_when_its_history_says_it_goes_on():
    # 240 s old: confirmed; the 4 long ones went on a median 1410 s more. counted 240 GiB; 414.1 - 240 = 174.1
    # GiB -> 4 nodes (192 GiB)
    d = run(going_on(240, durations=LONG_ONES), c=cluster(a(3, running=2)))
    assert targets(d) == {"ig-a": 7}


@pytest.mark.parametrize(
    "durations",
    [
        (100.0, 150.0, 200.0, 230.0),  # none of the 4 lasted 240 s
        (100.0, 150.0, 200.0, 3600.0),  # one did: its 3360 s more alone would decide
    ],
)
def test_a_burst_that_outlasted_all_its_history_but_one_is_taken_to_go_on_as_long_again(durations):
    # fewer than MIN_LONGER (2) earlier bursts lasted as long: nothing to go by, as with no history
    assert MIN_LONGER == 2
    d = run(going_on(240, durations=durations), c=cluster(a(3, running=2)))
    assert d.direction is Direction.HOLD
    why = d.reasons[0]
    assert why.code is ReasonCode.BURST_ENDS_TOO_SOON
    assert why.values["median_remaining_s"] == pytest.approx(240.0)
    assert "fewer than 2 of the 4 earlier bursts lasted as long" in why.text
    assert targets(run(going_on(720, durations=durations), c=cluster(a(3, running=2)))) == {"ig-a": 7}
    # the rule before bought it once confirmed
    config = cfg(**ON, burst_buy_without_history=True)
    assert targets(run(going_on(240, durations=durations), config=config, c=cluster(a(3, running=2)))) == {
        "ig-a": 7
    }


def test_two_earlier_bursts_that_lasted_as_long_are_enough_to_go_by():
    # two of them lasted 240 s and went on 1160 and 3360 s more: median 2260 s >= 720 s, bought at once
    d = run(going_on(240, durations=(100.0, 150.0, 1400.0, 3600.0)), c=cluster(a(3, running=2)))
    assert targets(d) == {"ig-a": 7}


@pytest.mark.parametrize("durations", [(), SHORT_ONES[:3]])
def test_without_history_a_burst_is_taken_to_go_on_as_long_again(durations):
    # fewer than 4 bursts to go by: a burst 240 s old is taken to go on 240 s more, less than the lead time
    # 360 s + burst_useful_s 360 s = 720 s: held at its first step, and says why
    d = run(going_on(240, durations=durations), c=cluster(a(3, running=2)))
    assert d.direction is Direction.HOLD
    why = d.reasons[0]
    assert why.code is ReasonCode.BURST_ENDS_TOO_SOON
    assert why.values["median_remaining_s"] == pytest.approx(240.0)
    assert why.values["bursts"] == 0.0
    assert f"with {len(durations)} earlier burst" in why.text
    assert "as long again, 240 s more (burst_buy_without_history false)" in why.text
    # 719 s old: 719 s more is still short of 720 s; 720 s old: as likely as not to outlast the start and
    # the useful time, the whole shortfall (4 nodes) is bought
    assert run(going_on(719, durations=durations), c=cluster(a(3, running=2))).direction is Direction.HOLD
    assert targets(run(going_on(720, durations=durations), c=cluster(a(3, running=2)))) == {"ig-a": 7}


@pytest.mark.parametrize("durations", [(), SHORT_ONES[:3]])
def test_burst_buy_without_history_buys_a_confirmed_burst_at_once(durations):
    # the rule before: with nothing to go by, a confirmed burst (240 s old) buys its whole shortfall
    config = cfg(**ON, burst_buy_without_history=True)
    d = run(going_on(240, durations=durations), config=config, c=cluster(a(3, running=2)))
    assert targets(d) == {"ig-a": 7}


def test_without_history_s():
    off = cfg(**ON)
    assert Config().burst_buy_without_history is False  # shipped: as long again
    assert without_history_s((), 300.0, off) == 300.0
    assert without_history_s(SHORT_ONES[:3], 90.0, off) == 90.0
    assert without_history_s(SHORT_ONES, 300.0, off) is None  # 4 bursts: the history speaks
    assert without_history_s((), 300.0, cfg(**ON, burst_buy_without_history=True)) is None


def test_a_burst_whose_like_ended_too_soon_holds_at_its_first_step():
    d = run(going_on(240, durations=SHORT_ONES), c=cluster(a(3, running=2)))
    assert d.direction is Direction.HOLD
    why = d.reasons[0]
    assert why.code is ReasonCode.BURST_ENDS_TOO_SOON
    assert why.values["median_remaining_s"] == pytest.approx(510.0)  # (460 + 560) / 2
    assert why.values["bursts"] == 4.0
    assert why.values["lead_time_s"] == 360.0
    assert "less than the lead time 360 s + burst_useful_s 360 s" in why.text


def test_memory_running_out_again_in_a_held_burst_gets_a_first_step_of_its_own():
    # held at its first step (counted 240 GiB) with the demand within it at the last evaluation; now 414.1 GiB
    # wanted x 0.85 = 352 GiB > 240 counted: memory runs out again, a new burst: one node now (the reaction
    # target)
    state = going_on(600, durations=SHORT_ONES, out_of_memory=False)
    d = run(state, c=cluster(a(3, running=2)))
    assert targets(d) == {"ig-a": 4}
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED
    # ... while it was already out of memory at the last evaluation: the same burst, held
    assert run(going_on(600, durations=SHORT_ONES), c=cluster(a(3, running=2))).direction is Direction.HOLD


# A held burst whose need grows. ON: burst_useful_s 360, lead time 360 s (none measured): a step requested
# 720 s ago or more. Counted 96 + 3 x 48 = 240 GiB; the need is 414.1 GiB. Durations that say "ends too soon"
# at 1500 s: 100, 200, 300, 400 s more, median 250 s < 720 s.
LATE_ONES = (1600.0, 1700.0, 1800.0, 1900.0)


def test_a_held_burst_whose_need_grew_gets_a_first_step_of_its_own():
    # its last step was asked for a need of 300 GiB, 800 s ago; 414.1 > 300 x 1.08: a job joined the burst,
    # a new burst on top, one node now (the reaction target). Before burst_regrowth it held until the heap
    # alarm or the end of the burst (bursty-batch seed 211: 292 s).
    state = going_on(1500, durations=LATE_ONES, first_step_ago=800, need_gib=300.0)
    d = run(state, c=cluster(a(3, running=2)))
    assert targets(d) == {"ig-a": 4}
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED
    assert d.reasons[0].values["burst_age_s"] == 0.0


@pytest.mark.parametrize(
    ("first_step_ago", "need_gib", "config"),
    [
        (700, 300.0, cfg(**ON)),  # its last step is younger than lead time + burst_useful_s (720 s)
        (800, 390.0, cfg(**ON)),  # 414.1 is within the deadband of 390 (421.2): the need did not grow
        (800, 0.0, cfg(**ON)),  # its need is not known (a state stored before it was kept)
        (800, 300.0, cfg(**ON, burst_regrowth=False)),  # the rule off: held as before
    ],
)
def test_a_held_burst_holds_while_its_need_has_not_grown_for_long_enough(first_step_ago, need_gib, config):
    state = going_on(1500, durations=LATE_ONES, first_step_ago=first_step_ago, need_gib=need_gib)
    d = run(state, config=config, c=cluster(a(3, running=2)))
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.BURST_ENDS_TOO_SOON


def test_heap_pressure_in_a_held_burst_gets_its_first_step_again():
    # held (its step 200 s ago, too young for regrowth) while the executors' heap is pressed (85 % beyond
    # 70 x 1.08): one node, once per heap-pressure episode, as when YARN asks for nothing more (before, the
    # burst rule's hold hid the heap rule: bursty-batch s1 waited 181 s, seed 101 up to 661 s)
    m = metrics(**BURST, JvmHeapUsedPercent=85)
    c = cluster(a(3, running=2))
    held = going_on(1500, durations=LATE_ONES, first_step_ago=200)
    d = decide(now=NOW, cluster=c, metrics=m, config=cfg(**ON), state=held)
    assert targets(d) == {"ig-a": 4}
    assert [r.code for r in d.reasons[:2]] == [ReasonCode.HEAP_PRESSURE, ReasonCode.BURST_ENDS_TOO_SOON]
    # the pressure began before that step: it was answered, the burst holds
    answered = replace(held, heap_pressure_since=ago(300))
    assert decide(now=NOW, cluster=c, metrics=m, config=cfg(**ON), state=answered).direction is Direction.HOLD
    # burst_regrowth off: the hold as before
    off = cfg(**ON, burst_regrowth=False)
    assert decide(now=NOW, cluster=c, metrics=m, config=off, state=held).direction is Direction.HOLD


def test_the_decision_and_the_state_agree_when_the_bursts_end_at_this_reading():
    # the stored burst's base (500 GiB) is above this reading's need (414.1 < 500 x 1.08): it ends now, and
    # the shortfall (414.1 > 240 counted) is a new burst, for next_state and for the decision alike.
    # (Before, the decision judged against the stored burst: 300 s old, confirmed, nothing in the history:
    # it bought the whole shortfall while the state started a new burst.)
    state = ScalerState(
        burst_levels=(BurstLevel(ago(300), 500.0, 600.0),),
        burst_short=True,
        burst_out_of_memory=True,
        last_scale_out_at=ago(200),
    )
    c, m, config = cluster(a(3, running=2)), metrics(**BURST), cfg(**ON)
    d, seen = evaluate(now=NOW, cluster=c, metrics=m, config=config, state=state)
    assert targets(d) == {"ig-a": 4}  # a first step: 3 + 1
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED
    after = next_state(
        previous=state, decision=d, cluster=c, metrics=m, now=NOW, config=config, observed=seen
    )
    assert [b.since for b in after.burst_levels] == [NOW]


T0 = ago(2000)
HELD = BurstLevel(T0, 200.0, 300.0)  # began 2000 s ago on 200 GiB; its last step asked for a need of 300 GiB
SHORT = BurstReading(True, True, 400.0, 250.0)  # short and out of memory: 400 GiB needed, 250 counted


@pytest.mark.parametrize(
    ("kept", "was", "reading", "last_step_ago", "starts"),
    [
        ((), (True, True), SHORT, 100, True),  # no burst goes on
        ((HELD,), (False, False), SHORT, 100, True),  # not short at the last evaluation
        ((HELD,), (True, False), SHORT, 100, True),  # memory runs out again
        ((HELD,), (True, True), SHORT, 100, False),  # the same burst, held
        ((HELD,), (True, True), SHORT, 720, True),  # held 720 s since its step and 400 > 300 x 1.08: regrown
        ((HELD,), (True, True), SHORT, 719, False),  # ... one second too soon
        ((HELD,), (True, True), SHORT._replace(demand_gib=324.0), 900, False),  # within the deadband of 300
        ((HELD,), (True, True), SHORT, 2100, False),  # its last step was before it began: none for it yet
        ((HELD,), (True, True), SHORT, None, False),  # no step at all
        ((), (False, False), SHORT._replace(short=False), None, False),  # not short: nothing begins
        ((HELD,), (True, True), SHORT._replace(short=False), 900, False),
    ],
)
def test_starts_burst_is_the_one_rule(kept, was, reading, last_step_ago, starts):
    last = None if last_step_ago is None else ago(last_step_ago)
    assert (
        starts_burst(kept, was, reading, last_step_at=last, lead_s=360.0, now=NOW, config=cfg(**ON)) is starts
    )


def test_a_step_for_the_newest_burst_sets_the_need_its_growth_is_judged_against():
    reading = BurstReading(True, True, 320.0, 250.0)  # within the deadband of... nothing: just held
    common = {"last_step_at": ago(100), "lead_s": 360.0, "now": NOW, "config": cfg(**ON)}
    stepped, _, _ = next_burst((OLD_HELD,), (True, True), (), reading, stepped=True, **common)
    assert stepped == (OLD_HELD._replace(need_gib=320.0),)
    held, _, _ = next_burst((OLD_HELD,), (True, True), (), reading, stepped=False, **common)
    assert held == (OLD_HELD,)


OLD_HELD = BurstLevel(ago(300), 200.0, 280.0)
# the executors' heap at 90 %, beyond its deadband (heap_used_target_pct 70 x 1.08 = 75.6 %)
PRESSED = {**BURST, "JvmHeapUsedPercent": 90}


@pytest.mark.parametrize("durations", [SHORT_ONES, ()])  # held by its history, or for lack of it
def test_a_held_burst_whose_heap_is_pressed_again_gets_another_first_step(durations):
    # held at its first step (requested 130 s ago), memory out all along; the heap went beyond its deadband
    # 60 s ago, after that request: the need outgrew what was asked, one node now (3 -> 4), not the whole
    # shortfall
    c = cluster(a(3, running=2))
    state = going_on(600, durations=durations, heap_pressed_ago=60)
    d = decide(now=NOW, cluster=c, metrics=metrics(**PRESSED), config=cfg(**ON), state=state)
    assert targets(d) == {"ig-a": 4}
    assert d.reasons[0].code is ReasonCode.HEAP_PRESSURE  # what drove the node leads
    why = d.reasons[1]
    assert why.code is ReasonCode.BURST_ENDS_TOO_SOON
    assert why.values["first_step_nodes"] == 1.0
    assert "heap is pressed again since the last request: at most 1 node now" in why.text
    assert not d.at_max_under_pressure


@pytest.mark.parametrize(
    ("heap_pressed_ago", "config"),
    [
        (200, cfg(**ON)),  # pressed since before the last request: that request was its answer
        (60, cfg(**ON, burst_regrowth=False)),  # the rule off: only memory running out again
    ],
)
def test_a_held_burst_gets_no_step_for_a_heap_pressed_before_its_last_request_or_with_the_rule_off(
    heap_pressed_ago, config
):
    c = cluster(a(3, running=2))
    state = going_on(600, durations=SHORT_ONES, heap_pressed_ago=heap_pressed_ago)
    d = decide(now=NOW, cluster=c, metrics=metrics(**PRESSED), config=config, state=state)
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.BURST_ENDS_TOO_SOON
    assert Config().burst_regrowth is True  # shipped on


def test_remaining_s():
    assert remaining_s(SHORT_ONES[:3], 0.0) is None  # fewer than MIN_HISTORY
    assert remaining_s(SHORT_ONES, 1000.0) is None  # none lasted that long
    assert remaining_s(SHORT_ONES, 650.0) == (pytest.approx(150.0), 3)  # 50, 150, 250 s more


OLD = BurstLevel(ago(300), 200.0)


@pytest.mark.parametrize(
    ("levels", "was", "reading", "expected_levels", "ended"),
    [
        # a burst begins: base = the capacity counted, need = the largest need
        ((), (False, False), BurstReading(True, True, 400.0, 200.0), (BurstLevel(NOW, 200.0, 400.0),), ()),
        # it goes on while demand > base x 1.08 (200 x 1.08 = 216), even when covered
        ((OLD,), (True, True), BurstReading(False, False, 300.0, 400.0), (OLD,), ()),
        # the demand falls to the base: it ends, its 300 s join the history
        ((OLD,), (False, False), BurstReading(False, False, 210.0, 400.0), (), (300.0,)),
        # short again after it was covered: a new burst on top (base 400)
        (
            (OLD,),
            (False, False),
            BurstReading(True, False, 500.0, 400.0),
            (OLD, BurstLevel(NOW, 400.0, 500.0)),
            (),
        ),
        # still short, still out of memory: the same burst
        ((OLD,), (True, True), BurstReading(True, True, 430.0, 250.0), (OLD,), ()),
        # still short, out of memory again after it was not: a new burst on top
        (
            (OLD,),
            (True, False),
            BurstReading(True, True, 430.0, 250.0),
            (OLD, BurstLevel(NOW, 250.0, 430.0)),
            (),
        ),
    ],
)
def test_next_burst(levels, was, reading, expected_levels, ended):
    out_levels, seen, durations = next_burst(
        levels, was, (), reading, last_step_at=None, stepped=False, lead_s=360.0, now=NOW, config=cfg(**ON)
    )
    assert out_levels == expected_levels
    assert seen == (reading.short, reading.out_of_memory)
    assert durations == ended


def test_next_burst_keeps_a_bounded_history_and_forgets_bursts_when_off():
    many = tuple(float(i) for i in range(HISTORY))
    level = (BurstLevel(NOW - timedelta(seconds=99), 200.0),)
    calm = BurstReading(False, False, 0.0, 400.0)
    _, _, durations = next_burst(
        level,
        (False, False),
        many,
        calm,
        last_step_at=None,
        stepped=False,
        lead_s=360.0,
        now=NOW,
        config=cfg(**ON),
    )
    assert len(durations) == HISTORY
    assert durations[-1] == 99.0
    off = next_burst(
        level,
        (True, True),
        many,
        None,
        last_step_at=None,
        stepped=False,
        lead_s=360.0,
        now=NOW,
        config=cfg(**ON),
    )
    assert off == ((), (False, False), many)


def test_next_state_follows_bursts_only_when_the_mechanism_is_on():
    c, m = cluster(a()), metrics(**BURST)
    wanted = (192 + 160) / 0.85  # the largest need: 414.1 GiB
    on = (BurstLevel(NOW, 192.0, pytest.approx(wanted)),)
    for config, expected in ((cfg(**ON), on), (cfg(burst_first_step_nodes=0), ())):
        d, seen = evaluate(now=NOW, cluster=c, metrics=m, config=config, state=ScalerState())
        s = next_state(
            previous=ScalerState(), decision=d, cluster=c, metrics=m, now=NOW, config=config, observed=seen
        )
        assert s.burst_levels == expected
