"""Step 0 and 1: fresh readings and the estimate. Expected numbers are worked out beside each row.

Cluster: CORE 2 x 48 GiB usable + TASK group ig-a 2 x 48 GiB usable running = 192 GiB of YARN memory.
"""

from __future__ import annotations

import pytest
from policy_builders import MIB, NOW, ago, cfg, cluster, group, metrics, yarn
from sparkscale.policy.estimate import capacity, estimate
from sparkscale.policy.model import MetricsSnapshot, Sample, Signal
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
        # used 90 % of 192 GiB = 172.8 GiB allocated; 172.8 / 0.75 = 230.4 GiB wanted; available 10 %
        (yarn(192, 90), {}, Signal.YARN_MEMORY_AVAILABLE_PCT, 10.0, 230.4),
        # 10 pending containers of 172.8 GiB / 36 = 4.8 GiB: demand 172.8 + 48 = 220.8 GiB; / 0.75 = 294.4 GiB
        (
            yarn(192, 90, ContainerPending=10, ContainerAllocated=36),
            {},
            Signal.CONTAINER_PENDING,
            10.0,
            294.4,
        ),
        # no ContainerAllocated: default 4096 MiB = 4 GiB each: 172.8 + 40 = 212.8; / 0.75 = 283.7333 GiB
        (yarn(192, 90, ContainerPending=10), {}, Signal.CONTAINER_PENDING, 10.0, 283.7333),
        # heap 84 GiB of 100 GiB = 84 % vs 70 %: ratio 1.2 -> 192 x 1.2 = 230.4 (YARN 50 % only wants 128)
        (
            yarn(192, 50, JvmHeapUsed=84 * 2**30, JvmHeapMax=100 * 2**30),
            {},
            Signal.HEAP_USED_PCT,
            84.0,
            230.4,
        ),
        # heap percent only, 35 % vs 70 %: ratio 0.5 -> 96 GiB; YARN 40 % wants 76.8 / 0.75 = 102.4 (wins)
        (yarn(192, 40, JvmHeapUsedPercent=35), {}, Signal.YARN_MEMORY_AVAILABLE_PCT, 60.0, 102.4),
        # TotalLoad 40 over 4 running CORE+TASK nodes = 10 per node vs target 5: ratio 2 -> 384 GiB
        (yarn(192, 50, TotalLoad=40), {"total_load_target_per_node": 5}, Signal.TOTAL_LOAD, 40.0, 384.0),
        # only YARNMemoryAvailablePercentage 40: total derived 192, allocated 60 % = 115.2; / 0.75 = 153.6
        ({"YARNMemoryAvailablePercentage": 40}, {}, Signal.YARN_MEMORY_AVAILABLE_PCT, 40.0, 153.6),
        # allocated + available only (no MemoryTotalMB): total 100 + 100 = 200 GiB, 50 % used; 100 / 0.75
        (
            {"MemoryAllocatedMB": 100 * MIB, "MemoryAvailableMB": 100 * MIB},
            {},
            Signal.YARN_MEMORY_AVAILABLE_PCT,
            50.0,
            133.3333,
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
    # ig-a asks for 4, 2 run: 2 x 48 = 96 GiB in flight. YARN (running) 192 GiB at 90 % wants 230.4 GiB;
    # counted 192 + 96 = 288 GiB -> need 230.4 - 288 = -57.6 GiB (nothing to add)
    est = _estimate(yarn(192, 90), tasks=(group("ig-a", requested=4, running=2),))
    assert est.capacity.in_flight_gib == pytest.approx(96.0)
    assert est.need_gib == pytest.approx(-57.6)


def test_blocked_group_in_flight_does_not_count():
    # same, but ig-a is blocked (spot fallback): its 2 missing nodes do not count -> need 230.4 - 192 = 38.4
    est = _estimate(yarn(192, 90), tasks=(group("ig-a", requested=4, running=2),), blocked={"ig-a": "x"})
    assert est.capacity.in_flight_gib == 0.0
    assert est.capacity.task_nodes == 2
    assert est.need_gib == pytest.approx(38.4)


def test_desired_task_memory_is_task_memory_plus_need():
    # task 96 GiB + need 38.4 GiB = 134.4 GiB of TASK memory
    est = _estimate(yarn(192, 90))
    assert est.desired_task_gib == pytest.approx(134.4)


def test_reason_is_a_sentence_with_numbers_and_units():
    est = _estimate(yarn(192, 91))
    text = est.reason(est.driving)
    assert text.startswith("YARN memory used 91.0 % > target 75.0 % (deadband 10 %)")
    assert "GiB" in text
    assert text.endswith(".")


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
