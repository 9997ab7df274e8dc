"""SQS: the reconcile schedule's evaluation messages (SendMessageBatch, ten at a time, each delayed), and a
failed one brought back sooner than the queue's visibility timeout (ChangeMessageVisibility)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters.aws_errors import translate
from sparkscale.errors import TransientAwsError
from sparkscale.usecases.fanout import MAX_DELAY_S, SEND_BATCH, Evaluation

log = logging.getLogger(__name__)


class SqsEvaluationQueue:
    """usecases.fanout.EvaluationQueue and RetryingQueue on one SQS queue (the client is injected)."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, evaluations: Sequence[Evaluation]) -> int:
        """Send every evaluation; entries SQS refused are logged. Raises when none could be sent."""
        sent = failed = 0
        error: Exception | None = None
        for i in range(0, len(evaluations), SEND_BATCH):
            chunk = evaluations[i : i + SEND_BATCH]
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": e.body(),
                    "DelaySeconds": max(0, min(MAX_DELAY_S, e.delay_s)),
                }
                for n, e in enumerate(chunk)
            ]
            try:
                resp = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                error = translate(exc, "SendMessageBatch")
                failed += len(chunk)
                log.warning("could not queue %d evaluations: %s", len(chunk), error)
                continue
            refused = resp.get("Failed", []) or []
            for f in refused:
                log.warning("evaluation message refused: %s", f)
            sent += len(chunk) - len(refused)
            failed += len(refused)
        if evaluations and not sent:
            raise error or TransientAwsError("SendMessageBatch: every evaluation message was refused")
        return sent

    def retry_later(self, receipt_handle: str, delay_s: int) -> None:
        """ChangeMessageVisibility of a received message: visible again `delay_s` seconds from now. Raises
        the project's error when SQS refuses (the queue's visibility timeout then stands)."""
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, int(delay_s))
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ChangeMessageVisibility") from exc
