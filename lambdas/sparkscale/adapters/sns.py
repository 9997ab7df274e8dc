"""SNS: operator notices on the operator topic.

Subject: ASCII, one line, under 100 characters (SNS rejects anything else for email); the body is plain text
readable in an email. MessageAttributes `cluster` and `kind` (String) let subscribers filter, e.g. a filter
policy {"kind": ["action", "failure"]}.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters.aws_errors import translate
from sparkscale.notices import subject_line
from sparkscale.ports import Notice


class SnsNotifier:
    """ports.Notifier publishing to one SNS topic (the client is injected)."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic = topic_arn

    def notify(self, notice: Notice) -> None:
        try:
            self._sns.publish(
                TopicArn=self._topic,
                Subject=subject_line(notice.subject),  # the one rule, again at the edge
                Message=notice.message,
                MessageAttributes={
                    "cluster": {"DataType": "String", "StringValue": notice.cluster_id or "-"},
                    "kind": {"DataType": "String", "StringValue": notice.kind},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "Publish") from exc
