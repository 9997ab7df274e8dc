"""The reconcile fan-out (docs/many-clusters.md): the evaluation queue the reconcile schedule sends one
message per cluster to, its dead-letter queue, and the fanout Lambda that consumes it with bounded
concurrency and reports each failed message (ReportBatchItemFailures), so that only those are retried."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from sparkscale_cdk import names
from sparkscale_cdk.constructs.function import FunctionOptions, ScalerFunction, encrypted_queue
from sparkscale_cdk.constructs.grants import grant_on

FANOUT_HANDLER: Final = "handlers.fanout.handler"
# One cluster per invocation: a slow cluster never holds back another one's evaluation.
BATCH_SIZE: Final = 1
# AWS's advice for an SQS event source: a visibility timeout of six times the function's timeout.
VISIBILITY_TIMEOUT_FACTOR: Final = 6
# A message that failed this often (lease held, throttled, a failing AWS call) goes to the DLQ; the next
# periods' messages for the cluster keep evaluating it meanwhile.
MAX_RECEIVES: Final = 5
SEND_ACTIONS: Final = ("sqs:SendMessage",)  # SendMessageBatch is authorized as SendMessage
QUEUE_RETENTION: Final = Duration.days(1)  # an evaluation a day old is long replaced by newer ones


class EvaluationFanOut(Construct):
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    handler: ScalerFunction
    event_source: sources.SqsEventSource

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        options: FunctionOptions,
        reconcile: ScalerFunction,
        max_concurrency: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue", key=options.key)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=options.key,
            enforce_ssl=True,
            retention_period=QUEUE_RETENTION,
            visibility_timeout=Duration.seconds(VISIBILITY_TIMEOUT_FACTOR * options.timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVES, queue=self.dead_letter_queue
            ),
        )
        self.handler = ScalerFunction(
            self,
            "Function",
            handler=FANOUT_HANDLER,
            description="sparkscale: evaluate one cluster the reconcile schedule queued",
            # the event source never runs more than max_concurrency; reserving as many keeps them available
            options=replace(options, reserved_concurrency=max_concurrency),
        )
        self.event_source = sources.SqsEventSource(
            self.queue,
            batch_size=BATCH_SIZE,
            max_concurrency=max_concurrency,
            report_batch_item_failures=True,
        )
        self.handler.function.add_event_source(self.event_source)
        # SendMessage only: the key's producer actions come with every ScalerFunction (its own DLQ)
        grant_on(reconcile.function, SEND_ACTIONS, [self.queue.queue_arn])
        reconcile.function.add_environment(names.ENV_EVALUATION_QUEUE_URL, self.queue.queue_url)
        # the fanout function brings a failed message back sooner (ChangeMessageVisibility, which the event
        # source's consume grant includes) than the visibility timeout: it needs the queue's URL too
        self.handler.function.add_environment(names.ENV_EVALUATION_QUEUE_URL, self.queue.queue_url)
