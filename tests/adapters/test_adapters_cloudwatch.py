"""CloudWatch adapters against moto (in process and over HTTP): one GetMetricData per evaluation, the window
from the injected `now`, heap sums and the cluster-wide percentage; DescribeAlarms for the reconcile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from sparkscale import clock, names
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.cloudwatch import CloudWatchAlarmReader, CloudWatchMetricsSource, metric_queries
from sparkscale.errors import Throttled
from sparkscale.policy.model import Signal

from tests.scale.shell_support import put_emr_metric

CID = "j-CWTEST0001"


def _count_calls(client: Any, operation: str) -> list[str]:
    calls: list[str] = []
    client.meta.events.register(f"before-call.*.{operation}", lambda **_: calls.append(operation))
    return calls


def _put_heap(cw: Any, cluster_id: str, at: datetime, *, used: float, cap: float, jvms: float) -> None:
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    cw.put_metric_data(
        Namespace=names.HEAP_NAMESPACE,
        MetricData=[
            {
                "MetricName": names.HEAP_EXECUTOR_USED_BYTES,
                "Dimensions": dims,
                "Timestamp": at,
                "Value": used,
            },
            {"MetricName": names.HEAP_EXECUTOR_MAX_BYTES, "Dimensions": dims, "Timestamp": at, "Value": cap},
            {"MetricName": names.HEAP_JVM_COUNT, "Dimensions": dims, "Timestamp": at, "Value": jvms},
        ],
    )


def test_one_get_metric_data_call_reads_emr_and_heap_signals(aws: AwsClients) -> None:
    now = clock.utcnow().replace(microsecond=0)
    put_emr_metric(
        aws.cloudwatch, CID, names.EMR_YARN_MEMORY_AVAILABLE_PCT, 12.5, now - timedelta(seconds=200)
    )
    put_emr_metric(aws.cloudwatch, CID, names.EMR_CONTAINER_PENDING, 7.0, now - timedelta(seconds=200))
    put_emr_metric(
        aws.cloudwatch, "j-OTHERCLUSTER", names.EMR_APPS_RUNNING, 9.0, now - timedelta(seconds=200)
    )
    # two nodes' agents publish into the same per-cluster metric in the same minute: the cluster sums
    at = now - timedelta(seconds=90)
    _put_heap(aws.cloudwatch, CID, at, used=6e9, cap=8e9, jvms=2)
    _put_heap(aws.cloudwatch, CID, at, used=2e9, cap=8e9, jvms=2)
    calls = _count_calls(aws.cloudwatch, "GetMetricData")
    snap = CloudWatchMetricsSource(aws.cloudwatch).read_metrics(CID, now)
    assert calls == ["GetMetricData"]
    assert snap.get(Signal.YARN_MEMORY_AVAILABLE_PCT).value == 12.5  # type: ignore[union-attr]
    assert snap.get(Signal.CONTAINER_PENDING).value == 7.0  # type: ignore[union-attr]
    assert snap.get(Signal.APPS_RUNNING) is None  # another cluster's datapoint is not ours
    assert snap.get(Signal.TOTAL_LOAD) is None  # no datapoint: absent, not zero
    assert snap.get(Signal.HEAP_USED_BYTES).value == 8e9  # type: ignore[union-attr]
    assert snap.get(Signal.HEAP_MAX_BYTES).value == 16e9  # type: ignore[union-attr]
    assert snap.get(Signal.JVM_COUNT).value == 4  # type: ignore[union-attr]
    # 100 * (6 + 2) / (8 + 8) = 50 %, not the mean of 75 % and 25 % per node (which happens to agree) nor 75
    assert snap.get(Signal.HEAP_USED_PCT).value == pytest.approx(50.0)  # type: ignore[union-attr]


def test_empty_results_mean_absent_signals(aws: AwsClients) -> None:
    snap = CloudWatchMetricsSource(aws.cloudwatch).read_metrics("j-NODATA", clock.utcnow())
    assert dict(snap.samples) == {}


def test_the_window_follows_the_injected_now_on_every_call() -> None:
    src = CloudWatchMetricsSource(object(), lookback_s=1200)
    t1 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    t2 = t1 + timedelta(hours=5)
    r1, r2 = src.request(CID, t1), src.request(CID, t2)
    # at least the lookback, from a 5-minute boundary: 12:00:01 - 1200 s = 11:40:01, aligned to 11:40:00
    assert r1["StartTime"] == datetime(2026, 3, 2, 11, 40, tzinfo=UTC)
    assert r1["EndTime"] == t1 + timedelta(seconds=1)
    r3 = src.request(CID, t1 + timedelta(seconds=170))  # 12:02:51 - 1200 s = 11:42:51 -> 11:40:00
    assert r3["StartTime"] == datetime(2026, 3, 2, 11, 40, tzinfo=UTC)
    assert r2["EndTime"] - r1["EndTime"] == timedelta(hours=5)
    assert r1["EndTime"] > t1 >= r1["StartTime"]
    ids = [q["Id"] for q in r1["MetricDataQueries"]]
    assert len(ids) == len(set(ids)) == len(metric_queries())
    stats = {
        q["MetricStat"]["Metric"]["MetricName"]: q["MetricStat"]["Stat"] for q in r1["MetricDataQueries"]
    }
    assert stats[names.HEAP_EXECUTOR_USED_BYTES] == "Sum"
    assert stats[names.EMR_YARN_MEMORY_AVAILABLE_PCT] == "Average"
    periods = {
        q["MetricStat"]["Metric"]["Namespace"]: q["MetricStat"]["Period"] for q in r1["MetricDataQueries"]
    }
    assert periods == {names.EMR_NAMESPACE: 300, names.HEAP_NAMESPACE: 60, names.YARN_NAMESPACE: 60}
    assert stats[names.YARN_PENDING_MEMORY_MB] == "Average"
    assert stats[names.YARN_AVAILABLE_MEMORY_MB] == "Minimum"
    assert stats[names.SPARK_EXECUTORS_NEEDED] == "Sum"


def test_a_heap_minute_that_has_just_begun_is_skipped_for_the_previous_complete_one() -> None:
    src = CloudWatchMetricsSource(object(), heap_settle_s=15)
    now = datetime(2026, 3, 2, 12, 1, 5, tzinfo=UTC)
    complete, partial = datetime(2026, 3, 2, 12, 0, tzinfo=UTC), datetime(2026, 3, 2, 12, 1, tzinfo=UTC)
    used, cap = "heap_jvmheapused", "heap_jvmheapmax"
    # at 12:01:05 only one of two nodes has published into the 12:01 minute: its sum is half the cluster
    snap = src.snapshot({used: {complete: 8e9, partial: 3e9}, cap: {complete: 16e9, partial: 8e9}}, now)
    assert snap.get(Signal.HEAP_USED_BYTES).value == 8e9  # type: ignore[union-attr]
    assert snap.get(Signal.HEAP_USED_PCT).at == complete  # type: ignore[union-attr]
    later = src.snapshot(
        {used: {complete: 8e9, partial: 9e9}, cap: {complete: 16e9, partial: 16e9}},
        now + timedelta(seconds=20),
    )
    assert later.get(Signal.HEAP_USED_BYTES).value == 9e9  # type: ignore[union-attr]


def test_throttling_after_retries_is_throttled() -> None:
    import boto3

    cw = boto3.session.Session(region_name="us-east-1").client("cloudwatch")
    with Stubber(cw) as stub:
        stub.add_client_error("get_metric_data", service_error_code="Throttling", http_status_code=400)
        with pytest.raises(Throttled, match="GetMetricData"):
            CloudWatchMetricsSource(cw).read_metrics(CID, clock.utcnow())


def test_alarm_reader_finds_clusters_with_an_alarm_in_alarm(aws: AwsClients) -> None:
    cw = aws.cloudwatch
    for cid, kind in (("j-AAA1", names.ALARM_KIND_YARN_MEMORY), ("j-BBB2", names.ALARM_KIND_TOTAL_LOAD)):
        cw.put_metric_alarm(
            AlarmName=names.alarm_name("sparkscale", cid, kind),
            Namespace=names.EMR_NAMESPACE,
            MetricName=names.EMR_YARN_MEMORY_AVAILABLE_PCT,
            Dimensions=[{"Name": names.DIM_JOB_FLOW_ID, "Value": cid}],
            Statistic="Average",
            Period=300,
            EvaluationPeriods=1,
            Threshold=15.0,
            ComparisonOperator="LessThanThreshold",
        )
    cw.put_metric_alarm(  # another stack's alarm: not ours even in ALARM
        AlarmName="other-j-CCC3",
        Namespace=names.EMR_NAMESPACE,
        MetricName=names.EMR_TOTAL_LOAD,
        Dimensions=[{"Name": names.DIM_JOB_FLOW_ID, "Value": "j-CCC3"}],
        Statistic="Average",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    # moto alarms never evaluate: set the states by hand
    cw.set_alarm_state(
        AlarmName=names.alarm_name("sparkscale", "j-AAA1", names.ALARM_KIND_YARN_MEMORY),
        StateValue="ALARM",
        StateReason="test",
    )
    cw.set_alarm_state(AlarmName="other-j-CCC3", StateValue="ALARM", StateReason="test")
    found = CloudWatchAlarmReader(cw).clusters_in_alarm("sparkscale")
    assert found == {"j-AAA1": [names.alarm_name("sparkscale", "j-AAA1", names.ALARM_KIND_YARN_MEMORY)]}


def test_the_yarn_collector_and_spark_demand_come_in_the_same_call_with_their_statistics(
    aws: AwsClients,
) -> None:
    now = clock.utcnow().replace(second=0, microsecond=0) + timedelta(seconds=30)
    minute = now - timedelta(seconds=90)  # the collector's last closed minute, as one statistic set each
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": CID}]

    def stats(name: str, lo: float, hi: float) -> dict[str, Any]:
        # six 10 s polls of the minute, from lo to hi
        values = {"SampleCount": 6.0, "Sum": 3 * (lo + hi), "Minimum": lo, "Maximum": hi}
        return {"MetricName": name, "Dimensions": dims, "Timestamp": minute, "StatisticValues": values}

    aws.cloudwatch.put_metric_data(
        Namespace=names.YARN_NAMESPACE,
        MetricData=[
            stats(names.YARN_PENDING_MEMORY_MB, 0.0, 8192.0),
            stats(names.YARN_ALLOCATED_MEMORY_MB, 100_000.0, 120_000.0),
            stats(names.YARN_AVAILABLE_MEMORY_MB, 20_000.0, 40_000.0),
            stats(names.YARN_TOTAL_MEMORY_MB, 140_000.0, 140_000.0),
            stats(names.YARN_CONTAINERS_PENDING, 0.0, 2.0),
            stats(names.YARN_APPS_PENDING, 0.0, 1.0),
            stats(names.YARN_APPS_RUNNING, 3.0, 3.0),
        ],
    )
    # two drivers' agents report what dynamic allocation needs: summed
    for needed in (30.0, 12.0):
        aws.cloudwatch.put_metric_data(
            Namespace=names.HEAP_NAMESPACE,
            MetricData=[
                {"MetricName": names.SPARK_EXECUTORS_NEEDED, "Dimensions": dims, "Timestamp": minute,
                 "Value": needed},
                {"MetricName": names.SPARK_EXECUTORS_TARGET, "Dimensions": dims, "Timestamp": minute,
                 "Value": needed / 2},
            ],
        )  # fmt: skip
    calls = _count_calls(aws.cloudwatch, "GetMetricData")
    snap = CloudWatchMetricsSource(aws.cloudwatch).read_metrics(CID, now)
    assert calls == ["GetMetricData"]

    def value(signal: Signal) -> float:
        sample = snap.get(signal)
        assert sample is not None, signal
        return sample.value

    # allocated and pending memory as the minute's Averages, which add up to its demand (Sum / SampleCount:
    # (0 + 8192) / 2 and (100000 + 120000) / 2); the rest at their peak (Maximum), free room at its lowest
    assert value(Signal.YARN_PENDING_MEMORY_MB) == 4096.0
    assert value(Signal.YARN_ALLOCATED_MEMORY_MB) == 110_000.0
    assert value(Signal.YARN_AVAILABLE_MEMORY_MB) == 20_000.0
    assert value(Signal.YARN_TOTAL_MEMORY_MB) == 140_000.0
    assert value(Signal.YARN_CONTAINERS_PENDING) == 2.0
    assert value(Signal.YARN_APPS_PENDING) == 1.0
    assert value(Signal.YARN_APPS_RUNNING) == 3.0
    assert value(Signal.SPARK_EXECUTORS_NEEDED) == 42.0  # Sum of both drivers
    assert value(Signal.SPARK_EXECUTORS_TARGET) == 21.0
    at = snap.get(Signal.YARN_PENDING_MEMORY_MB).at  # type: ignore[union-attr]
    assert timedelta(0) < now - at <= timedelta(seconds=150)  # that minute's datapoint (moto's buckets)
