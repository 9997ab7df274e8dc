"""SNS: operator notices on the operator topic.

Subject: ASCII, one line, under 100 characters (SNS rejects anything else for email); the body is plain text
readable in an email. MessageAttributes `cluster` and `kind` (String) let subscribers filter, e.g. a filter
policy {"kind": ["action", "failure"]}.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters.aws_errors import translate
from sparkscale.ports import Notice

SUBJECT_MAX: Final = 99  # "must be less than 100 characters"
_CTRL: Final = re.compile(r"[\x00-\x1f\x7f]+")


def sns_subject(text: str) -> str:
    """`text` as an SNS subject: ASCII (arrows become '->'), no control characters, at most 99 characters,
    starting with a letter, number or punctuation mark."""
    t = text.replace("→", "->").replace("…", "...").replace("—", "-").replace("–", "-")
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode("ascii")
    t = _CTRL.sub(" ", t).strip()
    t = re.sub(r" {2,}", " ", t) or "sparkscale notice"
    if len(t) > SUBJECT_MAX:
        t = t[: SUBJECT_MAX - 3].rstrip() + "..."
    return t


class SnsNotifier:
    """ports.Notifier publishing to one SNS topic (the client is injected)."""

    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic = topic_arn

    def notify(self, notice: Notice) -> None:
        try:
            self._sns.publish(
                TopicArn=self._topic,
                Subject=sns_subject(notice.subject),
                Message=notice.body,
                MessageAttributes={
                    "cluster": {"DataType": "String", "StringValue": notice.cluster_id or "-"},
                    "kind": {"DataType": "String", "StringValue": notice.kind},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "Publish") from exc
