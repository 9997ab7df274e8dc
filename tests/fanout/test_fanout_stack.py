"""The fan-out in the stack: the evaluation queue (encrypted, TLS only, a DLQ after 5 receives, a visibility
timeout of six function timeouts), its event source (one message per invocation, maximum concurrency, failed
messages reported), the DLQ alarm, the reconcile function allowed only SendMessage on it and told its URL.
Resources are found through the constructs, never by logical ID."""

from __future__ import annotations

from typing import Any

import pytest
from sparkscale_cdk import names
from sparkscale_cdk.constructs.fanout import FANOUT_HANDLER, MAX_RECEIVES, EvaluationFanOut
from sparkscale_cdk.wiring import cdk_json_context

from tests.infra.stack_testlib import Synth, as_list, synth

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    ctx = dict(cdk_json_context())
    ctx["sparkscale"] = {**ctx["sparkscale"], "fanout_max_concurrency": 7}
    return synth(ctx, outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="module")
def fan(s: Synth) -> EvaluationFanOut:
    return s.stack.autoscaler.fanout


def _queue(s: Synth, queue: Any) -> dict[str, Any]:
    arn = s.ref(queue.queue_arn)
    [(key, _)] = [
        (k, v) for k, v in s.resources("AWS::SQS::Queue").items() if {"Fn::GetAtt": [k, "Arn"]} == arn
    ]
    return dict(s.resources("AWS::SQS::Queue")[key]["Properties"])


def test_the_queue_is_encrypted_retried_then_dead_lettered(s: Synth, fan: EvaluationFanOut) -> None:
    q = _queue(s, fan.queue)
    assert q["KmsMasterKeyId"] == s.ref(s.stack.autoscaler.notifications.key.key_arn)
    assert q["RedrivePolicy"] == {
        "deadLetterTargetArn": s.ref(fan.dead_letter_queue.queue_arn),
        "maxReceiveCount": MAX_RECEIVES,
    }
    assert q["VisibilityTimeout"] == 6 * s.function(FANOUT_HANDLER)["Timeout"]
    alarm = s.alarm(f"{s.settings.config.alarm_prefix}-dlq-fanout-queue")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": s.ref(fan.dead_letter_queue.queue_name)}]
    assert alarm["AlarmActions"] == [s.ref(s.stack.autoscaler.notifications.operator_alarm_topic.topic_arn)]


def test_one_message_per_invocation_bounded_concurrency_failures_reported(
    s: Synth, fan: EvaluationFanOut
) -> None:
    [mapping] = s.props("AWS::Lambda::EventSourceMapping")
    assert mapping["EventSourceArn"] == s.ref(fan.queue.queue_arn)
    assert mapping["FunctionName"] == s.ref(fan.handler.function.function_name)
    assert mapping["BatchSize"] == 1
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 7}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert s.function(FANOUT_HANDLER)["ReservedConcurrentExecutions"] == 7


def test_the_reconcile_function_may_only_send_to_the_queue_and_knows_its_url(
    s: Synth, fan: EvaluationFanOut
) -> None:
    reconcile = s.stack.autoscaler.scaler.reconcile
    env = s.function("handlers.reconcile.handler")["Environment"]["Variables"]
    assert env[names.ENV_EVALUATION_QUEUE_URL] == s.ref(fan.queue.queue_url)
    queue_arn = s.ref(fan.queue.queue_arn)
    on_queue = [st for st in s.role_statements(reconcile.role) if queue_arn in as_list(st["Resource"])]
    assert [as_list(st["Action"]) for st in on_queue] == [["sqs:SendMessage"]]  # with its own DLQ's
    consume = {a for st in s.role_statements(fan.handler.role) for a in as_list(st["Action"])}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= consume
    # a failed message is brought back sooner than the visibility timeout: the function knows the queue
    fanout_env = s.function(FANOUT_HANDLER)["Environment"]["Variables"]
    assert fanout_env[names.ENV_EVALUATION_QUEUE_URL] == s.ref(fan.queue.queue_url)
    # the evaluation queue is not the alarm function's business
    alarm_fn = s.stack.autoscaler.scaler.alarm
    assert not any(
        s.ref(fan.queue.queue_arn) in as_list(st["Resource"]) for st in s.role_statements(alarm_fn.role)
    )
