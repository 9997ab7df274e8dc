"""The digest against moto: the state table created as the stack creates it, audit records written by the
real DynamoDB adapter's `save`, the notice read back through an SQS queue subscribed to the operator topic.
An empty day sends nothing; the local hour rule in a non-UTC time zone; a retry in the same day sends once;
the handler end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from handlers import common
from handlers import digest as digest_handler
from moto import mock_aws
from sparkscale import names
from sparkscale.adapters.aws import aws_ports
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.config import Config
from sparkscale.policy.model import ScalerState
from sparkscale.ports import Ports
from sparkscale.usecases.digest import run_digest
from sparkscale.usecases.shell import Outcome

from tests.digest.support import PRICE, decision
from tests.scale.shell_support import (
    REGION,
    FakeLambdaContext,
    Topic,
    clients,
    create_table,
    create_topic_with_queue,
    fake_aws_env,
    published,
)

PARIS = Config(clusters=["j-DIGEST1", "j-DIGEST2"], digest_hour=8, digest_time_zone="Europe/Paris")
# Tuesday 10 March 2026 in Paris (UTC+1): the day runs from 9 March 23:00 UTC to 10 March 23:00 UTC
DAY_START = datetime(2026, 3, 9, 23, tzinfo=UTC)
SEND_AT = datetime(2026, 3, 11, 7, 15, tzinfo=UTC)  # 08:15 in Paris, the day after


@dataclass
class Account:
    store: DynamoStateStore
    ports: Ports
    topic: Topic
    sqs: Any
    table: str

    def save(self, at: datetime, current: int, target: int, **kw: Any) -> None:
        d = decision(at, current, target, **kw)
        self.store.save(d.cluster_id, ScalerState(), d, at)

    def sent(self) -> list[dict[str, Any]]:
        return published(self.sqs, self.topic)

    def digest(self, now: datetime, config: Config = PARIS) -> Outcome:
        return run_digest(
            ports=self.ports, audit=self.store, config=config, clusters=config.clusters, now=now
        ).outcome


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    fake_aws_env(monkeypatch)
    with mock_aws():
        aws = clients()
        table = create_table(aws.dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = create_topic_with_queue(aws.sns, sqs)
        ports = aws_ports(clients=aws, config=PARIS, table_name=table, topic_arn=topic.arn)
        assert isinstance(ports.state, DynamoStateStore)
        yield Account(ports.state, ports, topic, sqs, table)
    common.set_runtime(None)


def test_an_empty_day_sends_nothing(account: Account) -> None:
    account.save(DAY_START - timedelta(minutes=5), 2, 4)  # the day before: not this digest's
    account.save(DAY_START + timedelta(days=1, minutes=5), 2, 4)  # the day after
    assert account.digest(SEND_AT) is Outcome.HOLD
    assert account.sent() == []


def test_the_day_is_sent_in_the_local_hour_only(account: Account) -> None:
    account.save(DAY_START + timedelta(hours=6), 2, 6)
    account.save(DAY_START + timedelta(hours=12), 6, 6, at_max=True)
    account.save(DAY_START + timedelta(hours=18), 6, 2)
    account.save(DAY_START + timedelta(hours=3), 1, 3, cid="j-DIGEST2", dry_run=True)
    assert account.digest(SEND_AT - timedelta(hours=1)) is Outcome.SKIPPED  # 07:15 in Paris
    assert account.digest(SEND_AT + timedelta(hours=1)) is Outcome.SKIPPED  # 09:15 in Paris
    assert account.sent() == []
    assert account.digest(SEND_AT) is Outcome.APPLIED
    [msg] = account.sent()
    assert msg["Subject"].startswith(
        "sparkscale daily digest 2026-03-10: 2 cluster(s), 1 out, 1 in, 0 failed"
    )
    assert msg["MessageAttributes"]["kind"]["Value"] == names.NOTICE_KIND_DIGEST
    body = msg["Message"]
    assert "(Europe/Paris)" in body
    node_hours = 2 * 6 + 6 * 12 + 2 * 6
    assert f"${node_hours * PRICE:,.2f} (estimate from the decisions' prices)" in body
    assert "Time at max:        6 h 00 min" in body
    assert "j-DIGEST2 (1 decisions recorded)" in body
    assert "1 decided but not made (dry run or paused)" in body


def test_a_retry_in_the_same_day_sends_once(account: Account) -> None:
    account.save(DAY_START + timedelta(hours=2), 2, 3, not_applied="Not applied: throttled by EMR.")
    assert account.digest(SEND_AT) is Outcome.APPLIED
    assert account.digest(SEND_AT + timedelta(minutes=20)) is Outcome.DUPLICATE  # same hour, a retry
    assert account.digest(SEND_AT + timedelta(days=1)) is Outcome.HOLD  # the next day: nothing recorded
    [msg] = account.sent()
    assert "Not applied: throttled by EMR. (x1)" in msg["Message"]
    assert "1 failed" in msg["Subject"]


def test_the_handler_end_to_end(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    account.save(DAY_START + timedelta(hours=1), 2, 5)
    common.set_runtime(
        common.Runtime(
            config=PARIS,
            ports=account.ports,
            alarms=None,
            table_name=account.table,
            alarm_prefix="sparkscale",
            clock=lambda: SEND_AT,
        )
    )
    ctx = FakeLambdaContext()
    out = digest_handler.handler({"source": "aws.events"}, ctx)
    again = digest_handler.handler({"source": "aws.events"}, ctx)
    assert (out["outcome"], out["day"], out["clusters"]) == ("applied", "2026-03-10", ["j-DIGEST1"])
    assert again["outcome"] == "duplicate"
    assert len(account.sent()) == 1
    json.dumps(out)


# --- the weekly section (digest_weekly_day, default Monday) -------------------------------------------------
# Monday 16 March 2026, 08:15 in Paris: the digest of Sunday 15 March, and the week Monday 9 to Sunday
# 15 March (local days: from 8 March 23:00 UTC to 15 March 23:00 UTC)
MONDAY_SEND = datetime(2026, 3, 16, 7, 15, tzinfo=UTC)
WEEK_START = datetime(2026, 3, 8, 23, tzinfo=UTC)


def _week_records(account: Account) -> None:
    account.save(WEEK_START - timedelta(minutes=1), 0, 9)  # the Sunday before the week: not in it
    account.save(datetime(2026, 3, 10, 10, tzinfo=UTC), 0, 4)  # Tuesday: 4 nodes for 2 h
    account.save(datetime(2026, 3, 10, 12, tzinfo=UTC), 4, 0)
    account.save(datetime(2026, 3, 15, 10, tzinfo=UTC), 0, 2, cid="j-DIGEST2")  # Sunday: 2 nodes for 1 h
    account.save(datetime(2026, 3, 15, 11, tzinfo=UTC), 2, 0, cid="j-DIGEST2")


def test_the_monday_digest_adds_the_week(account: Account) -> None:
    _week_records(account)
    assert account.digest(MONDAY_SEND) is Outcome.APPLIED
    [msg] = account.sent()
    assert msg["Subject"].startswith("sparkscale daily digest 2026-03-15 + weekly: 1 cluster(s)")
    body = msg["Message"]
    # the day: j-DIGEST2 only; the week: both, 4 x 2 = 8 and 2 x 1 = 2 node-hours at $0.25
    assert "j-DIGEST2 (2 decisions recorded)" in body
    assert "j-DIGEST1 (" not in body.split("The week")[0]
    week = body.split("The week 2026-03-09 to 2026-03-15: 2 cluster(s), about $2.50 of TASK nodes")[1]
    assert "j-DIGEST1 over the week (2 decisions recorded)" in week
    assert "  TASK nodes cost:    $2.00 for 8.0 node-hours" in week
    assert "  TASK nodes:         peak 4, average 0.0 (requested, time-weighted)" in week
    assert "j-DIGEST2 over the week (2 decisions recorded)" in week
    assert "  TASK nodes cost:    $0.50 for 2.0 node-hours" in week
    assert "sparkscale report --cluster j-DIGEST1 --days 7" in week


def test_a_quiet_sunday_still_sends_the_monday_week(account: Account) -> None:
    account.save(datetime(2026, 3, 10, 10, tzinfo=UTC), 0, 4)
    assert account.digest(MONDAY_SEND) is Outcome.APPLIED
    [msg] = account.sent()
    assert "No decision recorded that day." in msg["Message"]
    assert "j-DIGEST1 over the week (1 decisions recorded)" in msg["Message"]


@pytest.mark.parametrize("weekly_day", ["never", "tuesday"])
def test_no_weekly_section_on_other_days_or_when_off(account: Account, weekly_day: str) -> None:
    _week_records(account)
    config = Config(
        clusters=PARIS.clusters,
        digest_hour=8,
        digest_time_zone="Europe/Paris",
        digest_weekly_day=weekly_day,
    )
    result = run_digest(
        ports=account.ports, audit=account.store, config=config, clusters=config.clusters, now=MONDAY_SEND
    )
    assert (result.outcome, result.week) == (Outcome.APPLIED, ())
    [msg] = account.sent()
    assert "weekly" not in msg["Subject"]
    assert "over the week" not in msg["Message"]
