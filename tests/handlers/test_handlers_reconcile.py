"""The reconcile Lambda on moto: clusters in ALARM or above their minimum are evaluated, the others skipped,
and one failing cluster never stops the others."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from handlers import reconcile
from sparkscale import clock, names

from tests.handlers.conftest import Deployment
from tests.scale.shell_support import FakeLambdaContext, create_cluster, emf_documents, put_emr_metric

SCHEDULED = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-03-02T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/sparkscale-reconcile"],
    "detail": {},
}


def _alarm(cw: Any, cluster_id: str, state: str) -> None:
    name = names.alarm_name("sparkscale", cluster_id, names.ALARM_KIND_YARN_MEMORY)
    cw.put_metric_alarm(
        AlarmName=name,
        Namespace=names.EMR_NAMESPACE,
        MetricName=names.EMR_YARN_MEMORY_AVAILABLE_PCT,
        Dimensions=[{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}],
        Statistic="Average",
        Period=300,
        EvaluationPeriods=1,
        Threshold=15.0,
        ComparisonOperator="LessThanThreshold",
    )
    cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")  # moto never evaluates alarms


def test_reconcile_evaluates_clusters_in_alarm_or_above_minimum(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment
    busy = d.cluster.cluster_id  # 2 task nodes, pressure, alarm in ALARM
    idle = create_cluster(d.aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 0)]).cluster_id
    gone = create_cluster(d.aws.emr).cluster_id
    d.aws.emr.terminate_job_flows(JobFlowIds=[gone])
    _alarm(d.aws.cloudwatch, busy, "ALARM")
    _alarm(d.aws.cloudwatch, idle, "OK")
    d.configure(clusters=[busy, idle, gone])
    out = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    by_cluster = {r["cluster_id"]: r["outcome"] for r in out["results"]}
    assert by_cluster == {busy: "applied", idle: "skipped", gone: "cluster_gone"}
    assert out["in_alarm"] == [busy]
    docs = {doc[names.DIM_CLUSTER_ID]: doc for doc in emf_documents(capsys.readouterr().out)}
    assert set(docs) == {busy, idle, gone}
    assert docs[busy][names.M_SCALING_ACTIONS] in (1, [1], 1.0, [1.0])


def test_an_alarm_that_stays_in_alarm_keeps_scaling_after_the_cooldown(deployment: Deployment) -> None:
    d = deployment
    cid = d.cluster.cluster_id
    _alarm(d.aws.cloudwatch, cid, "ALARM")
    d.configure(cooldown_after_scale_out_s=0)
    first = reconcile.handler(SCHEDULED, FakeLambdaContext())["results"][0]
    # no new notification arrives (the alarm stays in ALARM); the demand keeps growing
    put_emr_metric(
        d.aws.cloudwatch, cid, names.EMR_CONTAINER_PENDING, 400.0, clock.utcnow() - timedelta(seconds=60)
    )
    second = reconcile.handler(SCHEDULED, FakeLambdaContext())["results"][0]
    assert first["outcome"] == "applied"
    assert second["outcome"] == "applied"
    assert sum(t for _, t in second["targets"].values()) > sum(t for _, t in first["targets"].values())


def test_one_failing_cluster_does_not_stop_the_others(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment
    good = d.cluster.cluster_id
    bad = "j-BROKEN000001"
    _alarm(d.aws.cloudwatch, good, "ALARM")
    _alarm(d.aws.cloudwatch, bad, "ALARM")
    d.configure(clusters=[bad, good])
    rt = d.runtime()
    real = rt.ports.clusters

    class Flaky:
        def read_cluster(self, cluster_id: str) -> Any:
            if cluster_id == bad:
                raise RuntimeError("unexpected bug")
            return real.read_cluster(cluster_id)

    rt.ports = replace(rt.ports, clusters=Flaky())
    out = reconcile.handler(SCHEDULED, FakeLambdaContext())
    by_cluster = {r["cluster_id"]: r["outcome"] for r in out["results"]}
    assert by_cluster == {bad: "failed", good: "applied"}
    docs = emf_documents(capsys.readouterr().out)
    failures = [doc for doc in docs if names.M_FAILURES in doc]
    assert [f[names.DIM_CLUSTER_ID] for f in failures] == [bad]
