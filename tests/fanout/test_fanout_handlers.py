"""The fan-out on moto: the schedule reads every page of DescribeAlarms and queues one message per cluster;
the fanout Lambda evaluates each once per period, reports only the failed messages, and never evaluates a
cluster whose lease another evaluation holds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber
from handlers import fanout, reconcile
from sparkscale import clock, names
from sparkscale.adapters.aws import boto_config
from sparkscale.adapters.cloudwatch import CloudWatchAlarmReader
from sparkscale.adapters.sqs import SqsEvaluationQueue
from sparkscale.errors import SparkscaleError
from sparkscale.ports import SizeObservation
from sparkscale.usecases.fanout import Evaluation, period_start

from tests.handlers.conftest import Deployment
from tests.scale.shell_support import FakeLambdaContext, create_cluster, emf_documents

SCHEDULED = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


class CollectingQueue:
    def __init__(self) -> None:
        self.sent: list[Evaluation] = []

    def send(self, evaluations: Any) -> int:
        self.sent += list(evaluations)
        return len(evaluations)


def _alarm(name: str, cluster_id: str) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "StateValue": "ALARM",
        "Dimensions": [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}],
    }


def test_every_page_of_describe_alarms_is_read() -> None:
    import boto3

    cw = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).client("cloudwatch", config=boto_config(attempts=1))
    page1 = [_alarm(f"sparkscale-j-P1C{i:03d}-yarn-memory", f"j-P1C{i:03d}") for i in range(100)]
    page2 = [_alarm("sparkscale-j-LAST-yarn-memory", "j-LAST")]
    with Stubber(cw) as stub:  # checked against the real CloudWatch API model
        params = {"AlarmNamePrefix": "sparkscale", "StateValue": "ALARM", "AlarmTypes": ["MetricAlarm"]}
        stub.add_response("describe_alarms", {"MetricAlarms": page1, "NextToken": "t2"}, params)
        stub.add_response("describe_alarms", {"MetricAlarms": page2}, {**params, "NextToken": "t2"})
        found = CloudWatchAlarmReader(cw).clusters_in_alarm("sparkscale")
        stub.assert_no_pending_responses()
    assert len(found) == 101
    assert "j-LAST" in found


def test_the_schedule_queues_one_message_per_cluster_alarms_first(deployment: Deployment) -> None:
    d = deployment
    busy = d.cluster.cluster_id
    others = [create_cluster(d.aws.emr).cluster_id for _ in range(3)]
    name = names.alarm_name("sparkscale", busy, names.ALARM_KIND_YARN_MEMORY)
    d.aws.cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=names.EMR_NAMESPACE,
        MetricName=names.EMR_YARN_MEMORY_AVAILABLE_PCT,
        Dimensions=[{"Name": names.DIM_JOB_FLOW_ID, "Value": busy}],
        Statistic="Average",
        Period=300,
        EvaluationPeriods=1,
        Threshold=15.0,
        ComparisonOperator="LessThanThreshold",
    )
    d.aws.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    d.configure(clusters=[*others, busy])
    rt = d.runtime()
    rt.evaluations = queue = CollectingQueue()
    out = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert out["queued"] == 4
    assert out["deferred"] == []
    assert out["in_alarm"] == [busy]
    assert [e.cluster_id for e in queue.sent] == [busy, *sorted(others)]
    assert queue.sent[0].in_alarm
    assert queue.sent[0].delay_s == 0
    assert not any(e.in_alarm for e in queue.sent[1:])
    assert rt.ports.capacity.calls == 0  # type: ignore[attr-defined]  # nothing evaluated here


def test_the_sqs_adapter_sends_each_message_with_its_delay(deployment: Deployment) -> None:
    d = deployment
    url = d.sqs.create_queue(QueueName="evaluations")["QueueUrl"]
    at = period_start(clock.utcnow(), 120)
    todo = [Evaluation(f"j-{i:02d}", at, False, 0) for i in range(23)]
    assert SqsEvaluationQueue(d.sqs, url).send(todo) == 23
    bodies = []
    while msgs := d.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in msgs]
        d.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
        )
    assert sorted(b["cluster_id"] for b in bodies) == [e.cluster_id for e in todo]


def _record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1772452800000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sparkscale-evaluations",
        "awsRegion": "us-east-1",
    }


def _body(cluster_id: str, period: datetime, in_alarm: bool = False) -> str:
    return Evaluation(cluster_id, period, in_alarm).body()


def test_only_the_failed_messages_are_reported_and_bad_ones_are_never_retried(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deployment
    held = create_cluster(d.aws.emr).cluster_id
    d.configure(clusters=[d.cluster.cluster_id, held])
    rt = d.runtime()
    now = clock.utcnow()
    assert rt.ports.state.acquire_lease(held, "another-evaluation", now, 90)  # an evaluation in progress
    period = period_start(now, 120)
    event = {
        "Records": [
            _record("m-ok", _body(d.cluster.cluster_id, period, in_alarm=True)),
            _record("m-bad", "not an evaluation"),
            _record("m-held", _body(held, period)),
        ]
    }
    out = fanout.handler(event, FakeLambdaContext(function_name="sparkscale-fanout"))
    assert out == {"batchItemFailures": [{"itemIdentifier": "m-held"}]}
    assert rt.ports.capacity.calls == 1  # type: ignore[attr-defined]  # the pressured cluster scaled once
    docs = emf_documents(capsys.readouterr().out)
    assert any(doc.get(names.M_REJECTED_EVENTS) for doc in docs)
    assert any(doc.get(names.DIM_CLUSTER_ID) == held and doc.get(names.M_FAILURES) for doc in docs)
    # the lease freed, the retried message evaluates the cluster
    rt.ports.state.release_lease(held, "another-evaluation")
    again = fanout.handler({"Records": [_record("m-held", _body(held, period))]}, FakeLambdaContext())
    assert again == {"batchItemFailures": []}


def test_a_duplicate_delivery_of_a_period_evaluates_once(deployment: Deployment) -> None:
    d = deployment
    rt = d.runtime()
    period = period_start(clock.utcnow(), 120)
    body = _body(d.cluster.cluster_id, period, in_alarm=True)
    for message_id in ("m-1", "m-1-redelivered", "m-1-again"):
        out = fanout.handler({"Records": [_record(message_id, body)]}, FakeLambdaContext())
        assert out == {"batchItemFailures": []}
    assert rt.ports.capacity.calls == 1  # type: ignore[attr-defined]
    audits = [i for i in d.aws.dynamodb.scan(TableName=d.table)["Items"] if i["sk"]["S"].startswith("audit#")]
    assert len(audits) == 1
    # the next period is a new evaluation (level-triggered): it decides again from what it reads
    nxt = _body(d.cluster.cluster_id, datetime.fromtimestamp(period.timestamp() + 120, UTC), in_alarm=True)
    assert fanout.handler({"Records": [_record("m-2", nxt)]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert (
        len([i for i in d.aws.dynamodb.scan(TableName=d.table)["Items"] if i["sk"]["S"].startswith("audit#")])
        == 2
    )


@pytest.mark.parametrize("event", [None, [], {}, {"Records": []}, {"Records": "x"}, "text"])
def test_an_event_that_is_not_an_sqs_batch_is_rejected_without_raising(
    deployment: Deployment, event: Any
) -> None:
    assert fanout.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}


def test_a_cluster_registered_after_the_list_was_read_is_evaluated_not_rejected(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparkscale.ports import Registration

    d = deployment
    rt = d.runtime()
    period = period_start(clock.utcnow(), 120)
    first = fanout.handler(
        {"Records": [_record("m-1", _body(d.cluster.cluster_id, period))]}, FakeLambdaContext()
    )
    assert first == {"batchItemFailures": []}
    late = create_cluster(d.aws.emr).cluster_id  # tagged and registered after the list was cached
    assert rt.registry is not None
    rt.registry.register(Registration(late, "analytics", "", False, clock.utcnow()))
    capsys.readouterr()
    out = fanout.handler({"Records": [_record("m-late", _body(late, period))]}, FakeLambdaContext())
    assert out == {"batchItemFailures": []}
    docs = [doc for doc in emf_documents(capsys.readouterr().out) if doc.get(names.DIM_CLUSTER_ID) == late]
    assert [doc.get("outcome") for doc in docs] == ["hold"]  # evaluated (no metrics yet: held), not rejected
    assert not any(names.M_REJECTED_EVENTS in doc for doc in docs)


def test_the_schedule_leaves_alone_the_clusters_last_found_at_their_minimum(deployment: Deployment) -> None:
    """The first period queues every cluster (no records); their evaluations record what they saw; the next
    period queues only the one above its minimum. A lost or malformed record queues its cluster again."""
    d = deployment
    busy = d.cluster.cluster_id  # 2 task nodes, under pressure (no alarm: moto evaluates none)
    idle_ids = [
        create_cluster(d.aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 0)]).cluster_id for _ in range(3)
    ]
    d.configure(clusters=[busy, *idle_ids])
    rt = d.runtime()
    rt.evaluations = queue = CollectingQueue()
    first = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert first["queued"] == 4
    assert first["at_minimum"] == 0
    for i, e in enumerate(queue.sent):  # the fanout function evaluates each
        out = fanout.handler({"Records": [_record(f"m-{i}", e.body())]}, FakeLambdaContext())
        assert out == {"batchItemFailures": []}
    queue.sent.clear()
    second = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert [e.cluster_id for e in queue.sent] == [busy]  # scaled out: resizing, above its minimum
    assert queue.sent[0].above_minimum
    assert second["at_minimum"] == 3
    # evaluated in full with one read of the cluster: the budget's one DescribeCluster per evaluation
    reads: list[str] = []
    rt.clients.emr.meta.events.register("before-call.emr.DescribeCluster", lambda **_: reads.append("r"))
    nxt = replace(queue.sent[0], period=datetime.fromtimestamp(queue.sent[0].period.timestamp() + 120, UTC))
    assert fanout.handler({"Records": [_record("m-next", nxt.body())]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert reads == ["r"]
    # a state item rewritten without its record (an older version, a restore): that cluster is queued again
    key = {"pk": {"S": f"cluster#{idle_ids[0]}"}, "sk": {"S": "state"}}
    d.aws.dynamodb.update_item(
        TableName=d.table,
        Key=key,
        UpdateExpression="SET groups_at_minimum = :bad",
        ExpressionAttributeValues={":bad": {"S": "yes"}},
    )
    queue.sent.clear()
    third = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert sorted(e.cluster_id for e in queue.sent) == sorted([busy, idle_ids[0]])
    assert third["at_minimum"] == 2


def test_without_readable_records_the_schedule_queues_every_cluster(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    d = deployment
    others = [
        create_cluster(d.aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 0)]).cluster_id for _ in range(2)
    ]
    d.configure(clusters=[d.cluster.cluster_id, *others])
    rt = d.runtime()
    rt.evaluations = CollectingQueue()
    for cid in others:  # recently found at their minimum ...
        seen = SizeObservation(True, False, clock.utcnow())
        rt.ports.state.record_observation(cid, seen)  # type: ignore[attr-defined]
    with Stubber(rt.dynamodb) as stub:  # ... but the read fails
        stub.add_client_error("batch_get_item", "InternalServerError", http_status_code=500)
        out = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert out["queued"] == 3
    assert out["at_minimum"] == 0
    assert "size records unreadable" in caplog.text
    # and with the selection off (at_minimum_recheck_s = 0) nothing is read: every cluster, every period
    d.configure(clusters=[d.cluster.cluster_id, *others], at_minimum_recheck_s=0)
    rt = d.runtime()
    rt.evaluations = CollectingQueue()
    reads: list[str] = []
    rt.dynamodb.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **_: reads.append("read"))
    out = reconcile.handler(SCHEDULED, FakeLambdaContext(function_name="sparkscale-reconcile"))
    assert out["queued"] == 3
    assert reads == []


class RetryRecorder(CollectingQueue):
    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__()
        self.retries: list[tuple[str, int]] = []
        self.fail = fail

    def retry_later(self, receipt_handle: str, delay_s: int) -> None:
        self.retries.append((receipt_handle, delay_s))
        if self.fail is not None:
            raise self.fail


@pytest.mark.parametrize(("receives", "most_s"), [("1", 10), ("3", 40), (None, 10), ("many", 10)])
def test_a_failed_message_is_brought_back_in_seconds(
    deployment: Deployment, receives: str | None, most_s: int
) -> None:
    d = deployment
    rt = d.runtime()
    rt.evaluations = queue = RetryRecorder()
    cid = d.cluster.cluster_id
    assert rt.ports.state.acquire_lease(cid, "another-evaluation", clock.utcnow(), 90)  # it fails: lease held
    record = _record("m-held", _body(cid, period_start(clock.utcnow(), 120)))
    if receives is None:
        del record["attributes"]["ApproximateReceiveCount"]
    else:
        record["attributes"]["ApproximateReceiveCount"] = receives
    out = fanout.handler({"Records": [record]}, FakeLambdaContext())
    assert out == {"batchItemFailures": [{"itemIdentifier": "m-held"}]}
    [(handle, delay)] = queue.retries
    assert handle == "rh-m-held"
    assert most_s / 2 <= delay <= most_s


def test_a_message_sqs_will_not_bring_back_sooner_still_fails_and_is_retried(deployment: Deployment) -> None:
    from sparkscale.errors import TransientAwsError

    d = deployment
    rt = d.runtime()
    rt.evaluations = queue = RetryRecorder(fail=TransientAwsError("ChangeMessageVisibility: 500"))
    cid = d.cluster.cluster_id
    assert rt.ports.state.acquire_lease(cid, "another-evaluation", clock.utcnow(), 90)
    record = _record("m-held", _body(cid, period_start(clock.utcnow(), 120)))
    out = fanout.handler({"Records": [record]}, FakeLambdaContext())
    assert out == {"batchItemFailures": [{"itemIdentifier": "m-held"}]}  # the visibility timeout stands
    assert len(queue.retries) == 1
    # a succeeding message is never delayed
    rt.ports.state.release_lease(cid, "another-evaluation")
    assert fanout.handler({"Records": [record]}, FakeLambdaContext()) == {"batchItemFailures": []}
    assert len(queue.retries) == 1


def test_the_sqs_adapter_brings_a_received_message_back_after_the_delay(deployment: Deployment) -> None:
    d = deployment
    url = d.sqs.create_queue(QueueName="evaluations", Attributes={"VisibilityTimeout": "360"})["QueueUrl"]
    queue = SqsEvaluationQueue(d.sqs, url)
    queue.send([Evaluation("j-A", period_start(clock.utcnow(), 120), False, 0)])
    [m] = d.sqs.receive_message(QueueUrl=url)["Messages"]
    assert d.sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # invisible for 360 s
    queue.retry_later(m["ReceiptHandle"], 0)  # (0 here: a test does not wait)
    [again] = d.sqs.receive_message(QueueUrl=url)["Messages"]
    assert again["MessageId"] == m["MessageId"]
    with pytest.raises(SparkscaleError):
        queue.retry_later("not-a-receipt-handle", 10)
