"""Shared helpers of tests/adapters, tests/handlers and tests/service (the SHELL engineer's tests).

Fake credentials only; AWS is moto (in process, or a ThreadedMotoServer on 127.0.0.1), never a real endpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Unpack

import boto3
from sparkscale import names
from sparkscale.adapters.aws import AwsClients, boto_config
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    InstanceGroup,
    Market,
    MetricsSnapshot,
    Role,
    Signal,
)

from tests import model_builders
from tests.model_builders import GroupOptions

REGION = "us-east-1"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-samples"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def fixture(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text(encoding="utf-8"))


def fake_aws_env(monkeypatch: Any) -> None:
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def clients(endpoint_url: str | None = None, *, attempts: int = 3) -> AwsClients:
    """boto3 clients with the adapters' botocore Config (few retries: tests stay fast)."""
    s = boto3.session.Session(region_name=REGION)
    cfg = boto_config(attempts=attempts, connect_timeout_s=2, read_timeout_s=10)
    kw: dict[str, Any] = {"config": cfg}
    if endpoint_url:
        kw["endpoint_url"] = endpoint_url
    return AwsClients(
        emr=s.client("emr", **kw),
        cloudwatch=s.client("cloudwatch", **kw),
        dynamodb=s.client("dynamodb", **kw),
        sns=s.client("sns", **kw),
        ec2=s.client("ec2", **kw),
    )


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1 and a free port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- EMR ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmrCluster:
    cluster_id: str
    master: str
    core: str
    tasks: dict[str, str] = field(default_factory=dict)  # name -> group id


def create_cluster(
    emr: Any,
    *,
    tasks: Sequence[tuple[str, str, str, int]] = (("spot-r5", "r5.2xlarge", "SPOT", 1),),
    core_count: int = 2,
) -> EmrCluster:
    """A moto EMR cluster: MASTER m5.xlarge, CORE r5.xlarge x core_count, and TASK groups (name, type, market,
    count)."""
    groups: list[dict[str, Any]] = [
        {
            "Name": "master",
            "InstanceRole": "MASTER",
            "InstanceType": "m5.xlarge",
            "InstanceCount": 1,
            "Market": "ON_DEMAND",
        },
        {
            "Name": "core",
            "InstanceRole": "CORE",
            "InstanceType": "r5.xlarge",
            "InstanceCount": core_count,
            "Market": "ON_DEMAND",
        },
    ]
    for name, itype, market, count in tasks:
        g = {
            "Name": name,
            "InstanceRole": "TASK",
            "InstanceType": itype,
            "InstanceCount": count,
            "Market": market,
        }
        if market == "SPOT":
            g["BidPrice"] = "1.0"
        groups.append(g)
    resp = emr.run_job_flow(
        Name="analytics",
        ReleaseLabel="emr-7.1.0",
        Instances={"InstanceGroups": groups, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )
    cid = resp["JobFlowId"]
    by_name = {g["Name"]: g["Id"] for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]}
    return EmrCluster(cid, by_name["master"], by_name["core"], {n: by_name[n] for n, *_ in tasks})


def group_counts(emr: Any, cluster_id: str) -> dict[str, tuple[str, int]]:
    """group id -> (role, requested count)."""
    return {
        g["Id"]: (g["InstanceGroupType"], g["RequestedInstanceCount"])
        for g in emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    }


# --- DynamoDB, SNS ------------------------------------------------------------------------------------------
def create_table(dynamodb: Any, name: str = "sparkscale-state") -> str:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@dataclass(frozen=True)
class Topic:
    arn: str
    queue_url: str


def create_topic_with_queue(sns: Any, sqs: Any, name: str = "sparkscale-operators") -> Topic:
    """The operator topic with an SQS subscription, so tests can read what was published (subject, body and
    MessageAttributes, as SNS delivers them)."""
    arn = sns.create_topic(Name=name)["TopicArn"]
    url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
    return Topic(arn, url)


def published(sqs: Any, topic: Topic) -> list[dict[str, Any]]:
    """Every SNS envelope delivered to the topic's queue so far (drains the queue)."""
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=topic.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=topic.queue_url, ReceiptHandle=m["ReceiptHandle"])


# --- CloudWatch ---------------------------------------------------------------------------------------------
def put_emr_metric(cw: Any, cluster_id: str, name: str, value: float, at: datetime) -> None:
    cw.put_metric_data(
        Namespace=names.EMR_NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def put_pressure(cw: Any, cluster_id: str, now: datetime, *, yarn_available_pct: float = 5.0) -> None:
    """EMR says: YARN memory nearly full, containers waiting, applications running."""
    at = now - timedelta(seconds=120)
    put_emr_metric(cw, cluster_id, names.EMR_YARN_MEMORY_AVAILABLE_PCT, yarn_available_pct, at)
    put_emr_metric(cw, cluster_id, names.EMR_CONTAINER_PENDING, 40.0, at)
    put_emr_metric(cw, cluster_id, names.EMR_CONTAINER_ALLOCATED, 20.0, at)
    put_emr_metric(cw, cluster_id, names.EMR_MEMORY_ALLOCATED_MB, 80_000.0, at)
    put_emr_metric(cw, cluster_id, names.EMR_MEMORY_TOTAL_MB, 84_000.0, at)
    put_emr_metric(cw, cluster_id, names.EMR_MEMORY_AVAILABLE_MB, 4_000.0, at)
    put_emr_metric(cw, cluster_id, names.EMR_APPS_RUNNING, 3.0, at)
    put_emr_metric(cw, cluster_id, names.EMR_APPS_PENDING, 2.0, at)


# --- Lambda -------------------------------------------------------------------------------------------------
@dataclass
class FakeLambdaContext:
    function_name: str = "sparkscale-alarm"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:sparkscale-alarm"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/sparkscale-alarm"
    log_stream_name: str = "2026/03/02/[$LATEST]0123456789abcdef"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def emf_documents(text: str) -> list[dict[str, Any]]:
    """The EMF documents (JSON lines with an _aws key) in captured stdout."""
    docs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def sns_event_for(trigger_body: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A Lambda SNS event carrying `trigger_body` (the real single-metric sample with a new message)."""
    ev: dict[str, Any] = fixture("sns/emr-alarm-sns-single-metric.json")
    ev["Records"][0]["Sns"]["MessageId"] = message_id
    ev["Records"][0]["Sns"]["Message"] = json.dumps(trigger_body)
    return ev


def alarm_body(cluster_id: str, *, state: str = "ALARM") -> dict[str, Any]:
    """The real single-metric alarm body with the cluster id replaced."""
    body: dict[str, Any] = fixture("sns/emr-alarm-message-body-single-metric.json")
    body["NewStateValue"] = state
    body["Trigger"]["Dimensions"] = [{"value": cluster_id, "name": "JobFlowId"}]
    body["AlarmName"] = names.alarm_name("sparkscale", cluster_id, names.ALARM_KIND_YARN_MEMORY)
    return body


# --- in-memory model builders -------------------------------------------------------------------------------
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def group(
    gid: str,
    *,
    itype: str = "r5.2xlarge",
    requested: int = 1,
    usd: float = 0.15,
    **options: Unpack[GroupOptions],
) -> InstanceGroup:
    return model_builders.group(gid, name=gid, instance_type=itype, requested=requested, usd=usd, **options)


def cluster(
    cid: str = "j-TEST0001", *tasks: InstanceGroup, state: ClusterState = ClusterState.RUNNING
) -> Cluster:
    groups = (
        group("ig-MASTER", role=Role.MASTER, market=Market.ON_DEMAND, itype="m5.xlarge", memory_gib=16.0),
        group(
            "ig-CORE",
            role=Role.CORE,
            market=Market.ON_DEMAND,
            itype="r5.xlarge",
            memory_gib=32.0,
            requested=2,
        ),
        *(tasks or (group("ig-TASK1"),)),
    )
    return Cluster(cid, "analytics", state, groups, "us-east-1a")


def pressure(now: datetime, *, yarn_available_pct: float = 5.0) -> MetricsSnapshot:
    at = now - timedelta(seconds=120)
    vals = {
        Signal.YARN_MEMORY_AVAILABLE_PCT: yarn_available_pct,
        Signal.CONTAINER_PENDING: 40.0,
        Signal.CONTAINER_ALLOCATED: 20.0,
        Signal.MEMORY_ALLOCATED_MB: 80_000.0,
        Signal.MEMORY_TOTAL_MB: 84_000.0,
        Signal.MEMORY_AVAILABLE_MB: 4_000.0,
        Signal.APPS_RUNNING: 3.0,
        Signal.APPS_PENDING: 2.0,
    }
    return model_builders.snapshot(at, vals)
