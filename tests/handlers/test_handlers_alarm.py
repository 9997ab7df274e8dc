"""The alarm Lambda end to end on moto: real payload samples in; ModifyInstanceGroups, DynamoDB, SNS, EMF
out. Handlers are called directly (moto cannot run SNS -> Lambda without Docker), with a fake
LambdaContext."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from handlers import alarm, common
from sparkscale import names
from sparkscale.errors import GroupBusy, InvalidRequest, Throttled, TransientAwsError

from tests.handlers.conftest import Deployment
from tests.scale.shell_support import (
    FakeLambdaContext,
    alarm_body,
    emf_documents,
    fixture,
    group_counts,
    published,
    sns_event_for,
)


def _v(doc: dict[str, Any], name: str) -> Any:
    """One EMF value (Powertools writes a metric's values as a list)."""
    value = doc[name]
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _check_emf_shape(doc: dict[str, Any]) -> None:
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == names.SCALER_NAMESPACE
    assert directive["Dimensions"] == [[names.DIM_CLUSTER_ID]]  # ClusterId only: no service dimension


def test_an_alarm_scales_the_spot_task_group_and_tells_operators(
    deployment_both: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment_both
    cid = d.cluster.cluster_id
    before = group_counts(d.aws.emr, cid)
    out = alarm.handler(sns_event_for(alarm_body(cid), "msg-1"), FakeLambdaContext(aws_request_id="req-1"))
    [result] = out["results"]
    assert result["outcome"] == "applied"
    after = group_counts(d.aws.emr, cid)
    task = d.cluster.tasks["spot-r5"]
    assert after[task][1] > before[task][1]
    assert after[task][1] <= 8
    assert {g: c for g, c in after.items() if g != task} == {g: c for g, c in before.items() if g != task}
    # the operator email
    [msg] = published(d.sqs, d.topic)
    assert msg["Subject"].startswith(f"sparkscale {cid}: scale out 2 -> {after[task][1]} TASK nodes")
    assert len(msg["Subject"]) < 100
    assert "Why:" in msg["Message"]
    assert {k: v["Value"] for k, v in msg["MessageAttributes"].items()} == {"cluster": cid, "kind": "action"}
    # the EMF document
    docs = emf_documents(capsys.readouterr().out)
    [doc] = docs
    _check_emf_shape(doc)
    assert doc[names.DIM_CLUSTER_ID] == cid
    assert _v(doc, names.M_SCALING_ACTIONS) == 1
    assert _v(doc, names.M_DESIRED_TASK_NODES) == after[task][1]
    assert _v(doc, names.M_RUNNING_TASK_NODES) == 2
    assert _v(doc, names.M_DECISION_LATENCY_MS) > 0
    # the record in DynamoDB: state and an audit item with a TTL
    items = d.aws.dynamodb.scan(TableName=d.table)["Items"]
    sks = sorted(i["sk"]["S"].split("#")[0] for i in items if i["pk"]["S"] == f"cluster#{cid}")
    # the lease was released and the write-ahead intent removed; the notice's once-only mark stays (TTL'd)
    assert sks == ["audit", "notice", "state"]


def test_duplicate_sns_delivery_does_nothing_the_second_time(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment
    rt = d.runtime()
    event = sns_event_for(alarm_body(d.cluster.cluster_id), "same-message-id")
    first = alarm.handler(event, FakeLambdaContext(aws_request_id="req-1"))
    capsys.readouterr()
    second = alarm.handler(event, FakeLambdaContext(aws_request_id="req-2"))
    assert second == first  # the stored result, not a new evaluation
    assert rt.ports.capacity.calls == 1  # type: ignore[attr-defined]
    assert emf_documents(capsys.readouterr().out) == []
    assert len(published(d.sqs, d.topic)) == 1
    audits = [i for i in d.aws.dynamodb.scan(TableName=d.table)["Items"] if i["sk"]["S"].startswith("audit#")]
    assert len(audits) == 1


def _one_invocation_at_a_time_per_process_for_log_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda runs one invocation per process at a time; this test runs fifty in threads of one process.
    Powertools keeps its log keys per process (inject_lambda_context clears and appends them on every
    invocation) and its formatter iterates them while formatting: one lock around those, as one process has
    them, so that the race the test is about (lease, idempotency, one resize) is the only one in it."""
    lock = threading.RLock()
    for name in ("format", "append_keys", "remove_keys", "clear_state"):
        original = getattr(LambdaPowertoolsFormatter, name)

        def serialized(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(LambdaPowertoolsFormatter, name, serialized)


def test_fifty_concurrent_invocations_for_one_cluster_resize_once(
    deployment_both: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _one_invocation_at_a_time_per_process_for_log_keys(monkeypatch)
    d = deployment_both
    cid = d.cluster.cluster_id
    rt = d.runtime()
    before = group_counts(d.aws.emr, cid)
    barrier = threading.Barrier(50)
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def invoke(i: int) -> None:
        event = sns_event_for(alarm_body(cid), f"msg-{i}")
        barrier.wait()
        try:
            out = alarm.handler(event, FakeLambdaContext(aws_request_id=f"req-{i}"))
        except BaseException:
            with lock:
                errors.append(traceback.format_exc())  # the whole traceback: a race shows where it is
            return
        with lock:
            results.extend(out["results"])

    threads = [threading.Thread(target=invoke, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == 50
    outcomes = [r["outcome"] for r in results]
    assert outcomes.count("applied") == 1
    assert set(outcomes) <= {"applied", "lease_held", "hold"}
    assert rt.ports.capacity.calls == 1  # type: ignore[attr-defined]  # exactly one ModifyInstanceGroups
    after = group_counts(d.aws.emr, cid)
    task = d.cluster.tasks["spot-r5"]
    assert 0 <= after[task][1] <= 8
    assert after[task][1] > before[task][1]
    assert after[d.cluster.master] == before[d.cluster.master]
    assert after[d.cluster.core] == before[d.cluster.core]


@pytest.mark.parametrize(
    "path",
    [
        "sns/sns-event.json",
        "sns/snsSqsEvent.json",
        "sns/cloudwatch-alarm-sns-payload-single-metric.json",
        "sns/cloudwatch-alarm-sns-payload-multiple-metrics.json",
        "eventbridge/CloudWatch_Alarm_State_Change_composite_with_suppressor.json",
        "eventbridge/EMR_Cluster_State_Change_TERMINATED.json",
    ],
)
def test_rejected_events_are_logged_counted_and_never_raise(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    rt = deployment.runtime()
    out = alarm.handler(fixture(path), FakeLambdaContext())
    [result] = out["results"]
    assert result["outcome"] == "rejected"
    assert result["reason"]
    assert rt.ports.capacity.calls == 0  # type: ignore[attr-defined]
    captured = capsys.readouterr().out
    [doc] = emf_documents(captured)
    _check_emf_shape(doc)
    assert _v(doc, names.M_REJECTED_EVENTS) == 1
    assert doc[names.DIM_CLUSTER_ID] == "unknown"
    rejected = [r for r in caplog.records if r.getMessage().startswith("rejected event: ")]
    assert len(rejected) == 1
    assert rejected[0].levelname == "WARNING"


def test_an_unmanaged_cluster_is_rejected_under_its_own_id(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.runtime()
    out = alarm.handler(sns_event_for(alarm_body("j-NOTOURS0001"), "m"), FakeLambdaContext())
    assert out["results"][0]["outcome"] == "rejected"
    [doc] = emf_documents(capsys.readouterr().out)
    assert (doc[names.DIM_CLUSTER_ID], _v(doc, names.M_REJECTED_EVENTS)) == ("j-NOTOURS0001", 1)


def test_every_accepted_sample_shape_reaches_run_once(deployment: Deployment) -> None:
    cid = deployment.cluster.cluster_id
    for path, home in (  # each alarm reaches a function of its own account and region
        ("sns/emr-alarm-sns-metric-math.json", "eu-west-1:123456789012"),
        ("sns/emr-alarm-sqs-event.json", "eu-west-1:231436140809"),
        ("eventbridge/emr-alarm-state-change-metric-math.json", "us-east-1:123456789012"),
        ("sns/emr-alarm-message-body-single-metric.json", "us-east-1:123456789012"),
    ):
        text = json.dumps(fixture(path)).replace("j-2AXXXXXXGAPLF", cid)
        ctx = FakeLambdaContext(invoked_function_arn=f"arn:aws:lambda:{home}:function:sparkscale-alarm")
        out = alarm.handler(json.loads(text), ctx)
        assert out["results"][0]["outcome"] in {"applied", "hold"}, (path, out)
        assert out["results"][0]["cluster_id"] == cid


def test_a_transient_failure_raises_and_the_retry_runs_again(deployment: Deployment) -> None:
    d = deployment
    rt = d.runtime()
    real = rt.ports

    class Down:
        def read_metrics(self, cluster_id: str, now: Any) -> Any:
            raise TransientAwsError("GetMetricData: InternalError")

    rt.ports = replace(real, metrics=Down())
    event = sns_event_for(alarm_body(d.cluster.cluster_id), "retried-message")
    with pytest.raises(TransientAwsError):
        alarm.handler(event, FakeLambdaContext(aws_request_id="req-1"))
    rt.ports = real  # CloudWatch is back; SNS redelivers the same message
    out = alarm.handler(event, FakeLambdaContext(aws_request_id="req-2"))
    assert out["results"][0]["outcome"] == "applied"
    leases = [i for i in d.aws.dynamodb.scan(TableName=d.table)["Items"] if i["sk"]["S"] == "lease"]
    assert leases == []


def test_terminated_cluster_is_notified_once(deployment: Deployment) -> None:
    d = deployment
    cid = d.cluster.cluster_id
    d.aws.emr.terminate_job_flows(JobFlowIds=[cid])
    d.runtime()
    for i in range(3):
        out = alarm.handler(sns_event_for(alarm_body(cid), f"m-{i}"), FakeLambdaContext())
        assert out["results"][0]["outcome"] == "cluster_gone"
    msgs = published(d.sqs, d.topic)
    assert [m["MessageAttributes"]["kind"]["Value"] for m in msgs] == ["cluster_gone"]


def test_dry_run_environment_brake(deployment: Deployment) -> None:
    d = deployment
    d.monkeypatch.setenv(names.ENV_DRY_RUN, "true")
    d.configure()
    before = group_counts(d.aws.emr, d.cluster.cluster_id)
    out = alarm.handler(sns_event_for(alarm_body(d.cluster.cluster_id), "m"), FakeLambdaContext())
    assert out["results"][0]["outcome"] == "dry_run"
    assert group_counts(d.aws.emr, d.cluster.cluster_id) == before
    [msg] = published(d.sqs, d.topic)
    assert msg["Subject"].startswith("[DRY RUN]")


def test_cold_import_loads_neither_boto3_nor_pydantic_nor_the_tracer() -> None:
    heavy = ("boto3", "pydantic", "aws_xray_sdk", "sparkscale.adapters.aws")
    code = "import sys, handlers.alarm, handlers.reconcile; "
    code += f"print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2] / "lambdas",
        timeout=60,
    )
    assert out.stdout.strip() == "[]"


def test_runtime_requires_table_and_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(names.ENV_TABLE_NAME, raising=False)
    monkeypatch.setenv(names.ENV_OPERATOR_TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:t")
    with pytest.raises(RuntimeError, match=names.ENV_TABLE_NAME):
        common.build_runtime({names.ENV_OPERATOR_TOPIC_ARN: "arn"})


class _Raising:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        def fail(*_a: Any, **_k: Any) -> Any:
            raise self.exc

        return fail


@pytest.mark.parametrize(
    ("port", "exc", "outcome", "mail_kinds"),
    [
        ("metrics", Throttled("GetMetricData: Throttling: Rate exceeded"), "throttled", []),
        ("capacity", GroupBusy("instance group ig-1 is RESIZING"), "group_busy", []),
        (
            "capacity",
            InvalidRequest("ModifyInstanceGroups: ValidationException: bad"),
            "invalid",
            ["failure"],
        ),
        ("notifier", TransientAwsError("Publish: InternalError"), "applied", []),
    ],
)
def test_faults_become_outcomes_not_exceptions(  # noqa: PLR0917
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
    port: str,
    exc: Exception,
    outcome: str,
    mail_kinds: list[str],
) -> None:
    d = deployment
    rt = d.runtime()
    rt.ports = replace(rt.ports, **{port: _Raising(exc)})
    out = alarm.handler(sns_event_for(alarm_body(d.cluster.cluster_id), "m"), FakeLambdaContext())
    assert out["results"][0]["outcome"] == outcome
    assert [m["MessageAttributes"]["kind"]["Value"] for m in published(d.sqs, d.topic)] == mail_kinds
    [doc] = emf_documents(capsys.readouterr().out)
    assert _v(doc, names.M_SCALING_ACTIONS) == (1 if outcome == "applied" else 0)
    if outcome in {"throttled", "invalid"} or port == "notifier":
        assert _v(doc, names.M_FAILURES) == 1
    audits = [i for i in d.aws.dynamodb.scan(TableName=d.table)["Items"] if i["sk"]["S"].startswith("audit#")]
    assert len(audits) == (0 if port == "metrics" else 1)  # the decision is recorded whenever one was made
