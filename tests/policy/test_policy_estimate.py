"""Step 0 and 1: fresh readings and the estimate. Expected numbers are worked out beside each row.

Cluster: CORE 2 x 48 GiB usable + TASK group ig-a 2 x 48 GiB usable running = 192 GiB of YARN memory, all
of it counted (running CORE + requested TASK). Defaults: YARN target 85 %, heap target 70 %, deadband 8 %.
"""

from __future__ import annotations

import pickle

import pytest
from policy_builders import MIB, NOW, ago, cfg, cluster, group, metrics, yarn
from sparkscale.policy.estimate import SETTLE_S, capacity, estimate, yarn_memory_scale
from sparkscale.policy.model import MetricsSnapshot, Sample, Signal
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.signals import is_active, read_signals

TASK = group("ig-a", requested=2)


def _estimate(values: dict[str, float], *, config=None, tasks=(TASK,), blocked=None):
    config = config or cfg()
    r = read_signals(metrics(**values), now=NOW, config=config)
    cap = capacity(cluster(*tasks), r, blocked=blocked or {}, config=config)
    return estimate(r, cap, config=config)


@pytest.mark.parametrize(
    ("values", "config", "driving", "value", "desired"),
    [
        # used 90 % of 192 GiB = 172.8 GiB allocated; 172.8 / 0.85 = 203.2941 GiB wanted; available 10 %
        (yarn(192, 90), {}, Signal.YARN_MEMORY_AVAILABLE_PCT, 10.0, 203.2941),
        # 10 pending containers of 172.8 GiB / 36 = 4.8 GiB: demand 172.8 + 48 = 220.8 GiB; / 0.85 = 259.7647
        (
            yarn(192, 90, ContainerPending=10, ContainerAllocated=36),
            {},
            Signal.CONTAINER_PENDING,
            10.0,
            259.7647,
        ),
        # no ContainerAllocated: default 4096 MiB = 4 GiB each: 172.8 + 40 = 212.8; / 0.85 = 250.3529 GiB
        (yarn(192, 90, ContainerPending=10), {}, Signal.CONTAINER_PENDING, 10.0, 250.3529),
        # heap 84 GiB of 100 GiB = 84 % vs 70 %: ratio 1.2 of the 96 GiB the executors hold (YARN 50 % of 192;
        # the heap datapoint is not newer than EMR's, so EMR's allocation counts) -> 115.2; YARN wants
        # 96 / 0.85 = 112.94
        (
            yarn(192, 50, JvmHeapUsed=84 * 2**30, JvmHeapMax=100 * 2**30),
            {},
            Signal.HEAP_USED_PCT,
            84.0,
            115.2,
        ),
        # heap percent only, 35 % vs 70 %: under its target the heap never asks for less than the 76.8 GiB
        # the executors hold; YARN 40 % of 192 = 76.8 wants 76.8 / 0.85 = 90.3529 (wins)
        (yarn(192, 40, JvmHeapUsedPercent=35), {}, Signal.YARN_MEMORY_AVAILABLE_PCT, 60.0, 90.3529),
        # TotalLoad 40 over 4 running CORE+TASK nodes = 10 per node vs target 5: ratio 2 x 192 running = 384
        (yarn(192, 50, TotalLoad=40), {"total_load_target_per_node": 5}, Signal.TOTAL_LOAD, 40.0, 384.0),
        # only YARNMemoryAvailablePercentage 40: of the 192 GiB running, allocated 60 % = 115.2; / 0.85
        ({"YARNMemoryAvailablePercentage": 40}, {}, Signal.YARN_MEMORY_AVAILABLE_PCT, 40.0, 135.5294),
        # allocated + available only (no MemoryTotalMB): YARN's total 100 + 100 = 200 GiB, 50 % available;
        # 100 / 0.85 = 117.6471
        (
            {"MemoryAllocatedMB": 100 * MIB, "MemoryAvailableMB": 100 * MIB},
            {},
            Signal.YARN_MEMORY_AVAILABLE_PCT,
            50.0,
            117.6471,
        ),
        # target 80 %: 172.8 / 0.8 = 216 GiB
        (yarn(192, 90), {"yarn_memory_used_target_pct": 80}, Signal.YARN_MEMORY_AVAILABLE_PCT, 10.0, 216.0),
    ],
)
def test_estimate_table(values, config, driving, value, desired):
    est = _estimate(values, config=cfg(**config))
    assert est.driving is not None
    assert est.driving.signal is driving
    assert est.driving.value == pytest.approx(value)
    assert est.desired_gib == pytest.approx(desired, abs=1e-3)


def test_total_load_ignored_when_target_is_zero():
    # default total_load_target_per_node = 0: TotalLoad 1000 must not drive anything
    est = _estimate(yarn(192, 50, TotalLoad=1000))
    assert [n.signal for n in est.needs] == [Signal.YARN_MEMORY_AVAILABLE_PCT]


def test_in_flight_nodes_count_so_a_second_trigger_adds_nothing():
    # ig-a asks for 4, 2 run: 2 x 48 = 96 GiB in flight. YARN 90 % of the 192 GiB running = 172.8 allocated
    # wants 172.8 / 0.85 = 203.2941 GiB; counted 96 (CORE) + 4 x 48 (requested TASK) = 288 GiB -> need
    # 203.2941 - 288 = -84.7059 GiB (nothing to add)
    est = _estimate(yarn(192, 90), tasks=(group("ig-a", requested=4, running=2),))
    assert est.capacity.in_flight_gib == pytest.approx(96.0)
    assert est.capacity.counted_gib == pytest.approx(288.0)
    assert est.need_gib == pytest.approx(-84.7059, abs=1e-3)


def test_blocked_group_in_flight_does_not_count():
    # same, but ig-a is blocked (spot fallback): its 2 missing nodes do not count -> counted 96 + 96 = 192,
    # need 203.2941 - 192 = 11.2941
    est = _estimate(yarn(192, 90), tasks=(group("ig-a", requested=4, running=2),), blocked={"ig-a": "x"})
    assert est.capacity.in_flight_gib == 0.0
    assert est.capacity.task_nodes == 2
    assert est.need_gib == pytest.approx(11.2941, abs=1e-3)


def test_desired_task_memory_is_task_memory_plus_need():
    # task 96 GiB + need 11.2941 GiB = 107.2941 GiB of TASK memory
    est = _estimate(yarn(192, 90))
    assert est.desired_task_gib == pytest.approx(107.2941, abs=1e-3)


def test_capacity_is_the_fresh_cluster_read_not_the_stale_memory_total():
    # EMR's MemoryTotalMB (up to ~7 minutes old) still says 192 GiB, but ig-a now runs 4 nodes: the two
    # that just joined count as running capacity (96 + 4 x 48 = 288 GiB), not nowhere.
    # 172.8 allocated / 288 = 60 %.
    est = _estimate(yarn(192, 90), tasks=(group("ig-a", requested=4),))
    assert est.capacity.running_gib == pytest.approx(288.0)
    assert est.capacity.counted_gib == pytest.approx(288.0)
    assert est.capacity.in_flight_gib == 0.0
    assert est.driving.ratio == pytest.approx(172.8 / 288 / 0.85)
    assert est.driving.value == pytest.approx(10.0)  # the driving value is still EMR's available %


def test_heap_asks_for_the_memory_executors_hold_not_the_idle_yarn_memory():
    # YARN 20 % of 192 = 38.4 GiB allocated; heap 60 % (under its 70 % target). The old rule asked for
    # 192 x 60/70 = 164.6 GiB (all YARN memory, idle included). Now: the executors hold 38.4 GiB and the
    # heap never asks for less than that under target; it is never a reason to scale in.
    est = _estimate(yarn(192, 20, JvmHeapUsedPercent=60))
    heap = next(n for n in est.needs if n.signal is Signal.HEAP_USED_PCT)
    assert heap.desired_gib == pytest.approx(38.4)
    assert not heap.scale_in
    assert est.scale_in_need.signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert est.scale_in_desired_gib == pytest.approx(38.4 / 0.85)
    # over its target (84 %): 38.4 x 84/70 = 46.08 GiB
    est = _estimate(yarn(192, 20, JvmHeapUsedPercent=84))
    heap = next(n for n in est.needs if n.signal is Signal.HEAP_USED_PCT)
    assert heap.desired_gib == pytest.approx(46.08)
    assert heap.over_target


def test_heap_only_gives_no_scale_in_need():
    # early on only the heap agent reports: the heap alone may ask for more, never for less
    est = _estimate({"JvmHeapUsed": 30 * 2**30, "JvmHeapMax": 100 * 2**30})
    assert est.driving.signal is Signal.HEAP_USED_PCT
    assert est.scale_in_need is None


def test_a_newer_heap_datapoint_raises_the_allocation():
    # EMR's datapoint (5 minutes old): 40 % of 192 = 76.8 GiB allocated. The heap agent's, one minute old:
    # executors hold 100 GiB of heap x (1 + 10 % overhead) = 110 GiB -> allocated counts as 110 GiB, and
    # YARN wants 110 / 0.85 = 129.4118 GiB. With an older heap datapoint EMR's figure stands.
    config = cfg()
    emr = metrics(ago(300), **yarn(192, 40))
    for heap_age, held in ((60, 110.0), (400, 76.8)):
        heap = metrics(ago(heap_age), JvmHeapUsed=50 * 2**30, JvmHeapMax=100 * 2**30)
        snap = MetricsSnapshot({**emr.samples, **heap.samples})
        r = read_signals(snap, now=NOW, config=config)
        est = estimate(r, capacity(cluster(TASK), r, blocked={}, config=config), config=config)
        yarn_need = next(n for n in est.needs if n.signal is Signal.YARN_MEMORY_AVAILABLE_PCT)
        assert est.capacity.held_gib == pytest.approx(held)
        assert yarn_need.desired_gib == pytest.approx(held / 0.85)


def test_yarn_memory_scale_calibrates_the_derived_capacity():
    # YARN reports 240 GiB for 192 GiB derived (4 nodes x 64 GiB x 0.75): 1.25 YARN GiB per derived GiB.
    # Settled cluster, no resize for long: measured. 180 GiB allocated (YARN's) = 144 derived GiB; wants
    # 144 / 0.85 = 169.4118 of the 192 derived GiB counted.
    c = cluster(TASK)
    m = metrics(**yarn(240, 75))
    scale = yarn_memory_scale(c, m, now=NOW, config=cfg(), last_resize_at=None)
    assert scale == pytest.approx(1.25)
    r = read_signals(m, now=NOW, config=cfg())
    est = estimate(r, capacity(c, r, blocked={}, config=cfg(), scale=scale), config=cfg())
    assert est.capacity.allocated_gib == pytest.approx(144.0)
    assert est.desired_gib == pytest.approx(169.4118, abs=1e-3)
    # not measured while a group resizes, within SETTLE_S of the last resize, or beyond 1 / usable fraction
    resizing = cluster(group("ig-a", requested=3, running=2))
    assert yarn_memory_scale(resizing, m, now=NOW, config=cfg(), last_resize_at=None) is None
    assert yarn_memory_scale(c, m, now=NOW, config=cfg(), last_resize_at=ago(600)) is None
    assert yarn_memory_scale(c, m, now=NOW, config=cfg(), last_resize_at=ago(SETTLE_S + 1)) is not None
    huge = metrics(**yarn(192 / 0.75 + 1, 50))  # more YARN memory than the instances have
    assert yarn_memory_scale(c, huge, now=NOW, config=cfg(), last_resize_at=None) is None
    # a smaller MemoryTotalMB could be a datapoint older than nodes that just joined: never calibrates down
    small = metrics(**yarn(150, 50))
    assert yarn_memory_scale(c, small, now=NOW, config=cfg(), last_resize_at=None) is None


def test_reason_is_a_sentence_with_numbers_and_units():
    est = _estimate(yarn(192, 93))
    reason = est.reason(est.driving)
    assert (reason.code, reason.subject) == (ReasonCode.NEED, Signal.YARN_MEMORY_AVAILABLE_PCT)
    assert reason.values["desired_gib"] == pytest.approx(210.07, abs=0.01)  # 178.56 / 0.85
    assert est.reasons[0] == reason
    text = str(reason)
    assert text.startswith(
        "YARN memory used 93.0 % of 192 GiB running or requested (179 GiB allocated; EMR's 5-minute metric, "
        "0 s old) > target 85.0 % (deadband 8 %)"
    )
    assert "GiB" in text
    assert text.endswith(".")


def test_a_need_reason_makes_its_values_once_and_only_when_read():
    est = _estimate(yarn(192, 93))
    made = []
    lazy = Reason(ReasonCode.NEED, "sentence", lambda: made.append(1) or {"ratio": 1.5}, "subject")
    eager = Reason(ReasonCode.NEED, "sentence", {"ratio": 1.5}, "subject")
    assert made == []
    assert lazy == eager
    assert lazy.values == {"ratio": 1.5}
    assert made == [1]  # kept once made
    assert pickle.loads(pickle.dumps(lazy)) == eager
    assert tuple(lazy) == (ReasonCode.NEED, "sentence", {"ratio": 1.5}, "subject")
    # the estimate's own: the same numbers as before they were made lazily
    reason = est.reasons[0]
    need = est.driving
    assert need is not None
    assert dict(reason.values) == {
        "value": need.value,
        "ratio": need.ratio,
        "desired_gib": need.desired_gib,
        "counted_gib": est.capacity.counted_gib,
    }


def test_no_capacity_signal_means_no_driving_need():
    est = _estimate({"AppsRunning": 1, "IsIdle": 0})
    assert est.driving is None
    assert est.desired_gib is None
    assert est.need_gib == 0.0


@pytest.mark.parametrize(
    ("signal", "age_s", "kept"),
    [
        ("MemoryTotalMB", 900, True),  # emr_metric_max_age_s 900: exactly at the limit is fresh
        ("MemoryTotalMB", 901, False),
        ("JvmHeapUsedPercent", 180, True),  # heap_metric_max_age_s 180
        ("JvmHeapUsedPercent", 181, False),
        ("ContainerPending", -30, True),  # a datapoint from the future (clock skew) counts as fresh
    ],
)
def test_stale_metrics_are_ignored_per_signal(signal, age_s, kept):
    r = read_signals(metrics(ago(age_s), **{signal: 5.0}), now=NOW, config=cfg())
    assert (Signal(signal) in r.values) is kept
    assert bool(r.ignored) is not kept


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_non_finite_or_negative_values_are_ignored(bad):
    snap = MetricsSnapshot({Signal.MEMORY_TOTAL_MB: Sample(bad, NOW)})
    r = read_signals(snap, now=NOW, config=cfg())
    assert r.values == {}
    assert "MemoryTotalMB ignored" in r.ignored[0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"AppsRunning": 0, "AppsPending": 0}, False),
        ({"AppsRunning": 0, "AppsPending": 1}, True),
        ({"AppsRunning": 2}, True),
        ({"IsIdle": 1}, False),  # no app metrics: IsIdle decides
        ({"IsIdle": 0}, True),
        ({"AppsRunning": 0, "IsIdle": 0}, False),  # app metrics win over IsIdle
        ({}, None),
    ],
)
def test_is_active(values, expected):
    assert is_active(metrics(**values), now=NOW, config=cfg()) is expected
