"""SNS notifier against moto (in process and over HTTP), read back through an SQS subscription."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.sns import SnsNotifier
from sparkscale.errors import InvalidRequest
from sparkscale.notices import SUBJECT_MAX
from sparkscale.notices import subject_line as sns_subject
from sparkscale.ports import Notice

from tests.scale.shell_support import REGION, create_topic_with_queue, published


def test_publish_sets_subject_body_and_filterable_attributes(aws: AwsClients) -> None:
    sqs = boto3.session.Session(region_name=REGION).client(
        "sqs", endpoint_url=aws.sns.meta.endpoint_url if "127.0.0.1" in aws.sns.meta.endpoint_url else None
    )
    topic = create_topic_with_queue(aws.sns, sqs)
    body = "sparkscale asked EMR to scale out cluster j-1.\n\nWhy:\n  - YARN memory is short → +4 nodes."
    SnsNotifier(aws.sns, topic.arn).notify(
        Notice(
            kind="action", cluster_id="j-1", subject="sparkscale j-1: scale out 2 → 6 TASK nodes", body=body
        )
    )
    [msg] = published(sqs, topic)
    assert msg["Subject"] == "sparkscale j-1: scale out 2 -> 6 TASK nodes"
    assert msg["Message"] == body  # the body is UTF-8 text, unchanged
    attrs = {k: v["Value"] for k, v in msg["MessageAttributes"].items()}
    assert attrs == {"cluster": "j-1", "kind": "action"}


def test_subjects_are_ascii_one_line_and_under_100_characters() -> None:
    s = sns_subject("[DRY RUN] sparkscale j-ABC: would scale out 2 → 60 TASK nodes\n" + "x" * 200)
    assert len(s) <= SUBJECT_MAX < 100
    assert s.isascii()
    assert "\n" not in s
    assert s.endswith("...")
    assert s.startswith("[DRY RUN] sparkscale j-ABC: would scale out 2 -> 60 TASK nodes")
    assert sns_subject("   ") == "sparkscale notice"


def test_publishing_to_a_missing_topic_is_an_invalid_request() -> None:
    with mock_aws():
        sns = boto3.session.Session(region_name=REGION).client("sns")
        with pytest.raises(InvalidRequest, match="Publish"):
            SnsNotifier(sns, f"arn:aws:sns:{REGION}:123456789012:nope").notify(
                Notice(kind="failure", cluster_id="j-1", subject="s", body="b")
            )
