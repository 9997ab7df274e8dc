"""Bursts (policy/burst.py): a young shortfall episode buys a small first step, the whole shortfall once it
has lasted burst_confirm_s. One behaviour per test, numbers worked out in the comments.

Cluster as in test_policy_decide: CORE 2 x r5.2xlarge (48 GiB usable each), TASK group ig-a SPOT r5.2xlarge,
48 GiB usable per node; YARN memory used target 85 %, deadband 8 % (scale out above 91.8 %).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from policy_builders import NOW, ago, cfg, cluster, group, metrics, targets, yarn
from sparkscale.policy import Direction, ReasonCode, ScalerState, decide
from sparkscale.policy.burst import shortage_since
from sparkscale.policy.decide import evaluate
from sparkscale.policy.state import next_state

# 100 % of 192 GiB used + 40 pending containers x 4 GiB: (192 + 160) / 0.85 = 414.1 GiB wanted, 192 counted:
# +222.1 GiB = 5 nodes of 48 GiB (240 GiB)
BURST = yarn(192, 100, ContainerPending=40, AppsRunning=1)
ON = {"burst_first_step_nodes": 1, "burst_confirm_s": 240}


def a(requested=2, **kw):
    return group("ig-a", requested=requested, **kw)


def run(state, *, config=None, c=None):
    return decide(
        now=NOW, cluster=c or cluster(a()), metrics=metrics(**BURST), config=config or cfg(**ON), state=state
    )


def test_off_by_default_buys_the_whole_shortfall():
    d = run(ScalerState(), config=cfg())
    assert targets(d) == {"ig-a": 7}  # 2 + 5
    assert all(r.code is not ReasonCode.BURST_UNCONFIRMED for r in d.reasons)


def test_the_first_request_of_an_episode_is_small_and_says_why():
    d = run(ScalerState())  # no episode yet: this evaluation starts one (age 0 s)
    assert d.direction is Direction.OUT
    assert targets(d) == {"ig-a": 3}  # 2 + burst_first_step_nodes 1
    why = d.reasons[0]
    assert why.code is ReasonCode.BURST_UNCONFIRMED
    assert why.values == {"episode_age_s": 0.0, "confirm_s": 240.0, "first_step_nodes": 1.0}
    assert "240 s" in why.text
    assert "222 GiB" in why.text  # the whole shortfall it waits to buy
    assert d.desired_task_nodes == 7  # the estimate is still the whole need (the audit shows both)


def test_a_second_scale_out_before_confirmation_adds_nothing():
    # episode 200 s old, its first step requested 130 s ago (past the 120 s cooldown): hold
    state = ScalerState(shortage_since=ago(200), last_scale_out_at=ago(130))
    d = run(state, c=cluster(a(3, running=2)))
    # counted 96 + 3 x 48 = 240: (192 + 160) / 0.85 = 414.1 still wants 4 nodes more
    assert d.direction is Direction.HOLD
    assert d.reasons[0].code is ReasonCode.BURST_UNCONFIRMED
    assert d.reasons[0].values["first_step_nodes"] == 0.0


def test_a_confirmed_episode_buys_the_whole_shortfall():
    # 240 s old: confirmed. counted 240 GiB; 414.1 - 240 = 174.1 GiB -> 4 nodes (192 GiB)
    state = ScalerState(shortage_since=ago(240), last_scale_out_at=ago(130))
    d = run(state, c=cluster(a(3, running=2)))
    assert targets(d) == {"ig-a": 7}
    assert all(r.code is not ReasonCode.BURST_UNCONFIRMED for r in d.reasons)


@pytest.mark.parametrize(
    ("previous", "short", "expected"),
    [
        (None, True, NOW),  # an episode begins
        (ago(300), True, ago(300)),  # it goes on
        (ago(300), False, None),  # it is over (covered, or demand fell)
        (ago(300), None, None),  # not tracked
        (NOW.replace(year=2030), True, NOW),  # a start in the future (clock skew) restarts it
    ],
)
def test_shortage_since(previous, short, expected):
    assert shortage_since(previous, short=short, now=NOW) == expected


def test_next_state_tracks_the_episode_only_when_the_mechanism_is_on():
    c, m = cluster(a()), metrics(**BURST)
    for config, expected in ((cfg(**ON), NOW), (cfg(), None)):
        d, seen = evaluate(now=NOW, cluster=c, metrics=m, config=config, state=ScalerState())
        s = next_state(
            previous=ScalerState(), decision=d, cluster=c, metrics=m, now=NOW, config=config, observed=seen
        )
        assert s.shortage_since == expected
    # covered (YARN at 50 %): no episode
    calm = metrics(**yarn(192, 50, AppsRunning=1))
    d, seen = evaluate(now=NOW, cluster=c, metrics=calm, config=cfg(**ON), state=ScalerState())
    prev = replace(ScalerState(), shortage_since=ago(60))
    s = next_state(
        previous=prev, decision=d, cluster=c, metrics=calm, now=NOW, config=cfg(**ON), observed=seen
    )
    assert s.shortage_since is None
