"""sparkscale.alarms: the pure alarm definitions shared by the stack, the replay and the demo."""

from __future__ import annotations

import pytest
from sparkscale import names
from sparkscale.alarms import AlarmSpec, alarm_specs
from sparkscale.config import Config

CLUSTER = "j-2AXXXXXXGAPLF"


def by_kind(specs: list[AlarmSpec]) -> dict[str, AlarmSpec]:
    out = {s.kind: s for s in specs}
    assert len(out) == len(specs), "one alarm per kind"
    return out


def test_default_config_gives_every_kind_but_the_optional_bytes_alarm() -> None:
    kinds = [s.kind for s in alarm_specs(Config(), CLUSTER)]
    assert kinds == [
        names.ALARM_KIND_TOTAL_LOAD,
        names.ALARM_KIND_YARN_MEMORY,
        names.ALARM_KIND_CONTAINER_PENDING,
        names.ALARM_KIND_IDLE,
        names.ALARM_KIND_HEAP_PCT,
        names.ALARM_KIND_HEAP_CRITICAL,
        names.ALARM_KIND_HEAP_MISSING,
        names.ALARM_KIND_YARN_PENDING,
        names.ALARM_KIND_YARN_MISSING,
    ]


def test_names_are_prefix_cluster_kind_and_unique() -> None:
    cfg = Config.from_mapping({"alarm_prefix": "acme-prod", "heap_used_alarm_bytes": 21474836480})
    specs = alarm_specs(cfg, CLUSTER)
    for s in specs:
        assert s.name == f"acme-prod-{CLUSTER}-{s.kind}"
        assert s.cluster_id == CLUSTER
    assert len({s.name for s in specs}) == len(specs)


def test_emr_alarms_use_emr_namespace_jobflowid_and_300s() -> None:
    specs = by_kind(alarm_specs(Config(), CLUSTER))
    for kind, metric in [
        (names.ALARM_KIND_TOTAL_LOAD, "TotalLoad"),
        (names.ALARM_KIND_YARN_MEMORY, "YARNMemoryAvailablePercentage"),
        (names.ALARM_KIND_CONTAINER_PENDING, "ContainerPendingRatio"),
        (names.ALARM_KIND_IDLE, "IsIdle"),
    ]:
        s = specs[kind]
        assert s.namespace == "AWS/ElasticMapReduce"
        assert s.metric_name == metric
        assert s.dimensions == (("JobFlowId", CLUSTER),)
        assert s.period_s == 300
        assert not s.is_math


def test_total_load_threshold_is_the_configured_one() -> None:
    s = by_kind(alarm_specs(Config.from_mapping({"total_load_alarm_threshold": 42}), CLUSTER))[
        names.ALARM_KIND_TOTAL_LOAD
    ]
    assert (s.threshold, s.comparison) == (42.0, "GreaterThanThreshold")


@pytest.mark.parametrize(
    ("target", "deadband", "expected"),
    [
        (75.0, 10.0, 17.5),  # 100 - 75 * 1.10
        (80.0, 0.0, 20.0),  # 100 - 80
        (60.0, 50.0, 10.0),  # 100 - 60 * 1.5
        (100.0, 10.0, 0.0),  # 100 - 110 clamps at 0: never "too little available"
    ],
)
def test_yarn_memory_threshold_ends_the_policy_deadband(
    target: float, deadband: float, expected: float
) -> None:
    cfg = Config.from_mapping({"yarn_memory_used_target_pct": target, "deadband_pct": deadband})
    s = by_kind(alarm_specs(cfg, CLUSTER))[names.ALARM_KIND_YARN_MEMORY]
    assert s.threshold == pytest.approx(expected)
    assert s.comparison == "LessThanThreshold"


def test_container_pending_ratio_threshold() -> None:
    cfg = Config.from_mapping({"container_pending_ratio_alarm_threshold": 0.25})
    s = by_kind(alarm_specs(cfg, CLUSTER))[names.ALARM_KIND_CONTAINER_PENDING]
    assert (s.threshold, s.comparison) == (0.25, "GreaterThanThreshold")


@pytest.mark.parametrize(("idle_after_s", "periods"), [(900, 3), (901, 4), (300, 1), (0, 1)])
def test_idle_alarm_waits_idle_after_s_in_whole_emr_periods(idle_after_s: int, periods: int) -> None:
    s = by_kind(alarm_specs(Config.from_mapping({"idle_after_s": idle_after_s}), CLUSTER))[
        names.ALARM_KIND_IDLE
    ]
    assert (s.evaluation_periods, s.datapoints_to_alarm) == (periods, periods)
    assert (s.statistic, s.threshold, s.comparison) == ("Minimum", 1.0, "GreaterThanOrEqualToThreshold")


def test_heap_pct_is_metric_math_of_the_agent_sums_with_deadband_threshold() -> None:
    cfg = Config.from_mapping({"heap_used_target_pct": 60, "deadband_pct": 20})
    s = by_kind(alarm_specs(cfg, CLUSTER))[names.ALARM_KIND_HEAP_PCT]
    assert s.is_math
    assert s.namespace == names.HEAP_NAMESPACE
    assert s.period_s == names.HEAP_PERIOD_S == 60
    assert s.threshold == pytest.approx(72.0)  # 60 * 1.20
    assert s.metric_names() == (names.HEAP_EXECUTOR_USED_BYTES, names.HEAP_EXECUTOR_MAX_BYTES)
    assert {m.statistic for m in s.metrics} == {"Sum"}
    ids = {m.id for m in s.metrics}
    assert s.expression is not None
    assert all(i in s.expression for i in ids)
    assert not s.to_operators


def test_heap_critical_goes_to_operators_at_the_configured_pct() -> None:
    cfg = Config.from_mapping({"heap_critical_pct": 95})
    s = by_kind(alarm_specs(cfg, CLUSTER))[names.ALARM_KIND_HEAP_CRITICAL]
    assert s.to_operators
    assert s.threshold == 95.0
    assert s.is_math


def test_heap_bytes_alarm_only_when_configured() -> None:
    assert names.ALARM_KIND_HEAP_BYTES not in by_kind(alarm_specs(Config(), CLUSTER))
    cfg = Config.from_mapping({"heap_used_alarm_bytes": 20 * 2**30})
    s = by_kind(alarm_specs(cfg, CLUSTER))[names.ALARM_KIND_HEAP_BYTES]
    assert (s.metric_name, s.statistic) == (names.HEAP_EXECUTOR_USED_BYTES, "Sum")
    assert (s.threshold, s.comparison) == (float(20 * 2**30), "GreaterThanThreshold")


def test_heap_missing_alarm_is_breaching_on_no_data_and_tells_operators() -> None:
    s = by_kind(alarm_specs(Config.from_mapping({"heap_metric_max_age_s": 240}), CLUSTER))[
        names.ALARM_KIND_HEAP_MISSING
    ]
    assert s.treat_missing_data == "breaching"
    assert s.to_operators
    assert s.namespace == names.HEAP_NAMESPACE
    assert s.evaluation_periods == 4  # 240 s / 60 s
    assert s.state_for([None] * 4) == "ALARM"
    assert s.state_for([None, None, None, 1.0]) == "OK"


def test_include_heap_false_keeps_only_emr_alarms() -> None:
    specs = alarm_specs(Config.from_mapping({"heap_used_alarm_bytes": 1}), CLUSTER, include_heap=False)
    assert {s.namespace for s in specs} == {names.EMR_NAMESPACE}


def test_only_critical_and_missing_go_to_operators() -> None:
    cfg = Config.from_mapping({"heap_used_alarm_bytes": 1})
    assert {s.kind for s in alarm_specs(cfg, CLUSTER) if s.to_operators} == {
        names.ALARM_KIND_HEAP_CRITICAL,
        names.ALARM_KIND_HEAP_MISSING,
        names.ALARM_KIND_YARN_MISSING,
    }


def test_yarn_pending_memory_wakes_the_scaler_after_one_minute_of_any_pending_memory() -> None:
    s = by_kind(alarm_specs(Config(), CLUSTER))[names.ALARM_KIND_YARN_PENDING]
    assert (s.name, s.namespace) == (f"sparkscale-{CLUSTER}-yarn-pending-memory", names.YARN_NAMESPACE)
    assert (s.metric_name, s.statistic) == (names.YARN_PENDING_MEMORY_MB, "Maximum")
    assert s.dimensions == (("JobFlowId", CLUSTER),)
    assert (s.period_s, s.evaluation_periods, s.datapoints_to_alarm) == (60, 1, 1)
    assert (s.threshold, s.comparison) == (0.0, "GreaterThanThreshold")
    assert s.treat_missing_data == "notBreaching"  # a silent collector is the other alarm's business
    assert not s.to_operators  # a wake-up call only
    assert s.state_for([1.0]) == "ALARM"  # 1 MB pending
    assert s.state_for([0.0]) == "OK"
    assert s.state_for([None]) == "OK"
    assert s.state_for([4096.0, 0.0]) == "OK"  # only the last minute counts


@pytest.mark.parametrize(("max_age_s", "periods"), [(150, 3), (60, 1), (600, 10)])
def test_yarn_collector_silent_is_breaching_on_no_data_and_tells_operators(
    max_age_s: int, periods: int
) -> None:
    # ceil(yarn_metric_max_age_s / 60 s): silent for as long as the policy still used its last datapoint
    cfg = Config.from_mapping({"yarn_metric_max_age_s": max_age_s})
    s = by_kind(alarm_specs(cfg, CLUSTER))[names.ALARM_KIND_YARN_MISSING]
    assert (s.namespace, s.metric_name, s.statistic) == (
        names.YARN_NAMESPACE,
        names.YARN_TOTAL_MEMORY_MB,
        "SampleCount",
    )
    assert (s.evaluation_periods, s.datapoints_to_alarm, s.period_s) == (periods, periods, 60)
    assert (s.threshold, s.comparison, s.treat_missing_data) == (1.0, "LessThanThreshold", "breaching")
    assert s.to_operators
    assert s.state_for([None] * periods) == "ALARM"
    assert s.state_for([None] * (periods - 1) + [6.0]) == "OK"  # one minute published: alive


def test_yarn_alarms_follow_include_heap_unless_told() -> None:
    def namespaces(**kw: bool) -> set[str]:
        return {s.namespace for s in alarm_specs(Config(), CLUSTER, **kw)}

    assert names.YARN_NAMESPACE not in namespaces(include_heap=False)  # no bootstrap action, no collector
    assert namespaces(include_heap=False, include_yarn=True) == {names.EMR_NAMESPACE, names.YARN_NAMESPACE}
    assert names.YARN_NAMESPACE not in namespaces(include_yarn=False)
    assert names.HEAP_NAMESPACE in namespaces(include_yarn=False)


def test_state_for_m_of_n_and_missing_data() -> None:
    # heap: 2 of 3 above 70 x 1.035 = 72.45 %
    heap = by_kind(alarm_specs(Config(), CLUSTER))[names.ALARM_KIND_HEAP_PCT]
    assert heap.state_for([80.0, 10.0, 78.0]) == "ALARM"
    assert heap.state_for([80.0, 10.0, 10.0]) == "OK"
    assert heap.state_for([99.0, 80.0, 10.0, 10.0]) == "OK"  # only the last three count
    assert heap.state_for([None, 80.0, None]) == "OK"  # notBreaching: missing counts as good
    assert heap.state_for([]) == "OK"
    yarn = by_kind(alarm_specs(Config(), CLUSTER))[
        names.ALARM_KIND_YARN_MEMORY
    ]  # < 100 - 93 x 1.035 = 3.745 %
    assert yarn.state_for([3.7]) == "ALARM"
    assert yarn.state_for([3.8]) == "OK"


def test_specs_are_frozen() -> None:
    s = alarm_specs(Config(), CLUSTER)[0]
    with pytest.raises(AttributeError):
        s.threshold = 1.0  # type: ignore[misc]
