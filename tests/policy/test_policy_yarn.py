"""The YARN collector (Sparkscale/Yarn, a minute old) and Spark's executor demand in the policy.

Cluster: CORE 2 x 48 GiB usable + TASK group ig-a 2 x 48 GiB usable = 192 GiB counted; defaults: YARN target
85 %, deadband 8 %, yarn_metric_max_age_s 150, emr_metric_max_age_s 900. MB are YARN's own; the YARN scale is
1.0 (no calibration), so 1 GiB of YARN memory is 1 GiB usable.
"""

from __future__ import annotations

import pytest
from policy_builders import MIB, NOW, ago, cfg, cluster, group, targets, yarn
from sparkscale.policy import ScalerState, decide
from sparkscale.policy.estimate import capacity, estimate
from sparkscale.policy.model import MetricsSnapshot, Sample, Signal, SignalSource
from sparkscale.policy.reasons import ReasonCode
from sparkscale.policy.signals import active_from, max_age_s, read_signals

TASK = group("ig-a", requested=2)


def snap(**ages: tuple[float, dict[str, float]]) -> MetricsSnapshot:
    """snap(emr=(240, {...}), rm=(40, {...})): each named batch of metrics, its datapoints that old."""
    return MetricsSnapshot(
        {Signal(k): Sample(v, ago(age)) for age, values in ages.values() for k, v in values.items()}
    )


def rm(alloc_gib: float, pending_gib: float | None = None, total_gib: float = 192, **extra: float):
    """The YARN collector's metrics for an allocation and pending memory, in GiB (MB published)."""
    values = {"YarnAllocatedMemoryMB": alloc_gib * MIB, "YarnTotalMemoryMB": total_gib * MIB, **extra}
    if pending_gib is not None:
        values["YarnPendingMemoryMB"] = pending_gib * MIB
    values["YarnAvailableMemoryMB"] = max(0.0, total_gib - alloc_gib) * MIB
    return values


def est(m: MetricsSnapshot, **config):
    c = cfg(**config)
    r = read_signals(m, now=NOW, config=c)
    return estimate(r, capacity(cluster(TASK), r, blocked={}, config=c), config=c)


def run(m: MetricsSnapshot, **config):
    return decide(now=NOW, cluster=cluster(TASK), metrics=m, config=cfg(**config), state=ScalerState())


def test_every_metric_name_is_a_signal_of_its_source():
    assert Signal("YarnPendingMemoryMB").source is SignalSource.YARN_COLLECTOR
    assert Signal("SparkExecutorsNeeded").source is SignalSource.HEAP_AGENT
    assert Signal("MemoryAllocatedMB").source is SignalSource.EMR
    assert max_age_s(Signal.YARN_ALLOCATED_MEMORY_MB, cfg()) == 150
    assert max_age_s(Signal.SPARK_EXECUTORS_NEEDED, cfg()) == 180  # heap_metric_max_age_s
    assert max_age_s(Signal.CONTAINER_PENDING, cfg()) == 900


def test_fresh_yarn_drives_with_its_reason():
    # 160 GiB allocated + 32 GiB pending = 192 GiB asked for = 100 % of 192 GiB; / 0.85 = 225.88 GiB wanted:
    # +33.88 GiB -> one 48 GiB node. EMR's 5-minute view (50 % used, 4 min old) steps aside.
    m = snap(emr=(240, yarn(192, 50)), rm=(40, rm(160, 32)))
    e = est(m)
    assert [n.signal for n in e.needs] == [Signal.YARN_PENDING_MEMORY_MB]
    d = run(m)
    assert d.driving_signal is Signal.YARN_PENDING_MEMORY_MB
    assert d.driving_value == pytest.approx(32 * MIB)
    assert targets(d) == {"ig-a": 3}
    lead = d.reasons[0]
    assert (lead.code, lead.subject) == (ReasonCode.NEED, Signal.YARN_PENDING_MEMORY_MB)
    assert lead.values["allocated_gib"] == pytest.approx(160.0)
    assert lead.values["pending_gib"] == pytest.approx(32.0)
    assert lead.values["desired_gib"] == pytest.approx(192 / 0.85)
    assert lead.values["age_s"] == pytest.approx(40.0)
    assert lead.text.startswith(
        "YARN memory asked for: 160 GiB allocated + 32 GiB pending (ResourceManager, 40 s old) is 100.0 % of "
        "192 GiB running or requested > target 85.0 % (deadband 8 %): wants 226 GiB of YARN memory"
    )
    assert ReasonCode.YARN_COLLECTOR_STALE not in d.reason_codes


def test_stale_yarn_falls_back_to_emr_and_says_the_collector_is_stale():
    # the collector's newest datapoint is 300 s old (max 150 s): its 400 GiB pending is not believed.
    # EMR: 95 % of 192 = 182.4 GiB allocated (4 min old) / 0.85 = 214.59 GiB: +22.59 GiB -> one node
    m = snap(emr=(240, yarn(192, 95)), rm=(300, rm(190, 400)))
    d = run(m)
    assert d.driving_signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert d.desired_task_nodes == 3
    lead = d.reasons[0]
    assert lead.values["desired_gib"] == pytest.approx(182.4 / 0.85)
    assert (
        "(182 GiB allocated; EMR's 5-minute metric, 4 min old; the YARN collector is stale, 5 min old)"
        in (lead.text)
    )
    stale = [r for r in d.reasons if r.code is ReasonCode.YARN_COLLECTOR_STALE]
    assert len(stale) == 1  # one note for the collector, not one per metric
    assert stale[0].values == {"age_s": 300.0, "max_age_s": 150.0}
    assert stale[0].subject == SignalSource.YARN_COLLECTOR
    assert not [r for r in d.reasons if r.code is ReasonCode.METRIC_IGNORED and "Yarn" in r.text]


def test_without_any_collector_emr_drives_and_nothing_is_said_about_it():
    d = run(snap(emr=(240, yarn(192, 95))))
    assert d.driving_signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    assert "EMR's 5-minute metric, 4 min old)" in d.reasons[0].text
    assert ReasonCode.YARN_COLLECTOR_STALE not in d.reason_codes


def test_both_present_count_yarn_demand_once():
    # EMR (4 min old) says 95 % used and 50 containers waiting: 182.4 + 50 x 4.8 GiB would want 497 GiB.
    # The collector (40 s old) says 96 GiB allocated, nothing pending: 96 / 0.85 = 112.94 GiB, and it alone
    # speaks for YARN (no YARN-memory or pending-container need from EMR).
    m = snap(emr=(240, yarn(192, 95, ContainerPending=50, ContainerAllocated=38)), rm=(40, rm(96, 0)))
    e = est(m)
    assert [n.signal for n in e.needs] == [Signal.YARN_ALLOCATED_MEMORY_MB]
    assert e.driving.desired_gib == pytest.approx(96 / 0.85)
    assert e.driving.value == pytest.approx(96 * MIB)
    assert e.capacity.allocated_gib == pytest.approx(96.0)  # the fresher allocation is the capacity's too
    assert e.container_pending == 0.0  # the ResourceManager's count of what waits, not EMR's 50


def test_pending_containers_stand_for_pending_memory_when_the_rm_has_none():
    # no YarnPendingMemoryMB datum (an old RM): 10 containers x default 4096 MiB = 40 GiB pending;
    # (150 + 40) / 0.85 = 223.53 GiB
    m = snap(rm=(40, rm(150, None, YarnContainersPending=10)))
    e = est(m)
    assert e.driving.signal is Signal.YARN_PENDING_MEMORY_MB
    assert e.driving.desired_gib == pytest.approx(190 / 0.85)
    assert "(10 containers x default_container_memory_mb)" in e.reasons[0].text


@pytest.mark.parametrize(
    ("age_s", "fresh"),
    [(149, True), (150, True), (151, False)],
)
def test_yarn_max_age(age_s, fresh):
    m = snap(rm=(age_s, rm(96, 0)), heap=(age_s, {"JvmHeapUsedPercent": 50.0}))
    r = read_signals(m, now=NOW, config=cfg())
    assert (Signal.YARN_ALLOCATED_MEMORY_MB in r.values) is fresh
    assert Signal.HEAP_USED_PCT in r.values  # the heap's own limit is 180 s
    assert (r.yarn_stale_age_s is None) is fresh


def test_the_collector_tells_whether_applications_run():
    # EMR (4 min old) still says nothing runs; the ResourceManager a minute ago saw one application
    m = snap(emr=(240, {"AppsRunning": 0.0, "AppsPending": 0.0}), rm=(40, {"YarnAppsRunning": 1.0}))
    assert active_from(read_signals(m, now=NOW, config=cfg())) is True


def test_spark_executors_needed_is_a_scale_out_need_of_executor_size():
    # executors: 10 JVMs of 4 GiB heap each (40 GiB summed) + 10 % overhead = 4.4 GiB a container;
    # 60 needed x 4.4 = 264 GiB; / 0.85 = 310.59 GiB wanted. EMR: 50 % of 192 = 96 / 0.85 = 112.94.
    heap = {"JvmHeapMax": 40 * 2**30, "JvmHeapUsed": 20 * 2**30, "JvmCount": 10, "SparkExecutorsNeeded": 60}
    e = est(snap(emr=(240, yarn(192, 50)), heap=(30, heap)))
    d = e.driving
    assert (d.signal, d.value) == (Signal.SPARK_EXECUTORS_NEEDED, 60.0)
    assert d.desired_gib == pytest.approx(264 / 0.85)
    assert not d.scale_in
    reason = e.reasons[0]
    assert reason.values["executor_gib"] == pytest.approx(4.4)
    assert reason.values["demand_gib"] == pytest.approx(264.0)
    assert "Spark asks for 60 executors of 4.4 GiB (JvmHeapMax / JvmCount + overhead)" in reason.text


def test_spark_executors_needed_never_asks_for_less():
    # 2 needed x 4.4 = 8.8 GiB: far under target, but it does not pull the capacity down: YARN's need
    # (96 / 0.85 = 112.94 GiB) is the one scale-in reads
    heap = {"JvmHeapMax": 40 * 2**30, "JvmHeapUsed": 20 * 2**30, "JvmCount": 10, "SparkExecutorsNeeded": 2}
    e = est(snap(emr=(240, yarn(192, 50)), heap=(30, heap)))
    spark = next(n for n in e.needs if n.signal is Signal.SPARK_EXECUTORS_NEEDED)
    assert spark.desired_gib == pytest.approx(8.8 / 0.85)
    assert e.scale_in_need.signal is Signal.YARN_MEMORY_AVAILABLE_PCT
    text = next(r.text for r in e.reasons if r.subject is Signal.SPARK_EXECUTORS_NEEDED)
    assert "(Spark's executor demand never asks for less)" in text
