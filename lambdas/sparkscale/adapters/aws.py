"""Building the AWS side: botocore Config (retries), the clients, and the Ports of a real deployment.

Used by the Lambda handlers (lazily, on the first invocation), the `sparkscale decide` CLI and the demo:

    clients = make_clients()                       # boto3's default session: region, AWS_ENDPOINT_URL, ...
    ports = aws_ports(clients=clients, config=cfg, table_name=..., topic_arn=...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import boto3
from botocore.config import Config as BotoConfig

from sparkscale.adapters.cloudwatch import CloudWatchAlarmReader, CloudWatchMetricsSource
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.adapters.emr import EmrCapacityWriter, EmrClusterReader
from sparkscale.adapters.prices import SpotPriceSource
from sparkscale.adapters.sns import SnsNotifier
from sparkscale.adapters.sqs import SqsEvaluationQueue
from sparkscale.config import Config
from sparkscale.ports import Ports

RetryMode = Literal["standard", "adaptive"]
# Calls to AWS per API request, the first one included. botocore's Config has two spellings: `max_attempts`
# counts the retries only (botocore adds one: max_attempts=4 made 5 calls), `total_max_attempts` counts every
# call (the meaning of AWS_MAX_ATTEMPTS and of max_attempts in ~/.aws/config). Only the latter is used here.
ATTEMPTS: Final = 4


def boto_config(
    *,
    mode: RetryMode = "standard",
    attempts: int = ATTEMPTS,
    connect_timeout_s: float = 3.0,
    read_timeout_s: float = 10.0,
) -> BotoConfig:
    """Retries with exponential backoff and jitter on throttling, 5xx and connection errors (botocore's
    standard mode): at most `attempts` calls per request, the first included (1: no retry). What still fails
    after them becomes Throttled / TransientAwsError."""
    if attempts < 1:
        raise ValueError(f"attempts counts the first call too: at least 1, not {attempts}")
    return BotoConfig(
        retries={"mode": mode, "total_max_attempts": attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        user_agent_appid="sparkscale",
    )


@dataclass(frozen=True)
class AwsClients:
    emr: Any
    cloudwatch: Any
    dynamodb: Any
    sns: Any
    ec2: Any | None = None  # spot prices (DescribeSpotPriceHistory); None: on-demand table prices only


def make_clients(
    session: boto3.session.Session | None = None,
    *,
    config: BotoConfig | None = None,
    with_ec2: bool = True,
) -> AwsClients:
    """Clients from `session` (default: a new default session, so AWS_REGION, AWS_ENDPOINT_URL and the
    credential chain apply)."""
    s = session or boto3.session.Session()
    cfg = config or boto_config()
    return AwsClients(
        emr=s.client("emr", config=cfg),
        cloudwatch=s.client("cloudwatch", config=cfg),
        dynamodb=s.client("dynamodb", config=cfg),
        sns=s.client("sns", config=cfg),
        ec2=s.client("ec2", config=cfg) if with_ec2 else None,
    )


def aws_ports(*, clients: AwsClients, config: Config, table_name: str, topic_arn: str) -> Ports:
    """The Ports of a real deployment. The DynamoDB store is also the notice ledger."""
    store = DynamoStateStore(clients.dynamodb, table_name, audit_ttl_days=config.audit_ttl_days)
    prices = (
        SpotPriceSource(clients.ec2, cache_s=config.spot_price_cache_s) if clients.ec2 is not None else None
    )
    return Ports(
        clusters=EmrClusterReader(clients.emr, fleet_unit_memory=config.fleet_unit_memory),
        metrics=CloudWatchMetricsSource(clients.cloudwatch, lookback_s=config.emr_metric_max_age_s + 300),
        capacity=EmrCapacityWriter(clients.emr),
        state=store,
        notifier=SnsNotifier(clients.sns, topic_arn),
        prices=prices,
        ledger=store,
    )


def alarm_reader(clients: AwsClients) -> CloudWatchAlarmReader:
    return CloudWatchAlarmReader(clients.cloudwatch)


def evaluation_queue(queue_url: str, session: boto3.session.Session | None = None) -> SqsEvaluationQueue:
    """The reconcile schedule's queue of evaluations (SQS, same retries as every other client)."""
    s = session or boto3.session.Session()
    return SqsEvaluationQueue(s.client("sqs", config=boto_config()), queue_url)
