"""handlers.spot_events end to end against moto 5.2.5 (mock_aws): the real EventBridge samples, a real EMR
cluster model (MASTER, CORE and two SPOT TASK groups of different types), the DynamoDB lease/ledger table, and
an SNS operator topic subscribed by an SQS queue so the published notice can be read back.

moto launches EC2 instances for the instance groups but does not tag them with aws:elasticmapreduce:*, so the
locator finds them through EMR ListInstances (the tag path is covered with Stubber in test_spot_locator.py).
moto's spot prices are a flat 0.00001, so prices here come out equal; the ranking is tested in
test_spot_interruptions.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sparkscale import names
from sparkscale.clock import utcnow
from sparkscale.errors import LeaseHeld
from sparkscale.usecases.shell import LeaseWait

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws-samples" / "eventbridge"
TABLE = "sparkscale-test"


@dataclass
class FakeContext:
    function_name: str = "sparkscale-spot-events"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:sparkscale-spot-events"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def groups(r5_count: int = 2) -> list[dict]:
    return [
        {"Name": "master", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
        {"Name": "core", "InstanceRole": "CORE", "InstanceType": "m5.2xlarge", "InstanceCount": 2},
        {
            "Name": "spot-r5",
            "InstanceRole": "TASK",
            "InstanceType": "r5.2xlarge",
            "InstanceCount": r5_count,
            "Market": "SPOT",
        },
        {
            "Name": "spot-m5",
            "InstanceRole": "TASK",
            "InstanceType": "m5.4xlarge",
            "InstanceCount": 1,
            "Market": "SPOT",
        },
    ]


@dataclass
class World:
    emr: object
    sqs: object
    queue_url: str
    managed: str
    other: str

    def requested(self, cluster_id: str) -> dict[str, int]:
        out = self.emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
        return {g["Name"]: g["RequestedInstanceCount"] for g in out}

    def group_id(self, cluster_id: str, name: str) -> str:
        out = self.emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
        return next(g["Id"] for g in out if g["Name"] == name)

    def instance_in(self, cluster_id: str, group_name: str) -> str:
        gid = self.group_id(cluster_id, group_name)
        return self.emr.list_instances(ClusterId=cluster_id, InstanceGroupId=gid)["Instances"][0][
            "Ec2InstanceId"
        ]

    def messages(self) -> list[dict]:
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
def world(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        emr = boto3.client("emr")

        def cluster(name: str) -> str:
            return emr.run_job_flow(
                Name=name,
                ReleaseLabel="emr-7.5.0",
                JobFlowRole="EMR_EC2_DefaultRole",
                ServiceRole="EMR_DefaultRole",
                Instances={
                    "KeepJobFlowAliveWhenNoSteps": True,
                    "Placement": {"AvailabilityZone": "us-east-1a"},
                    "InstanceGroups": groups(),
                },
            )["JobFlowId"]

        managed, other = cluster("managed"), cluster("someone-else")
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="operators")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        monkeypatch.setenv(names.ENV_TABLE_NAME, TABLE)
        monkeypatch.setenv(names.ENV_OPERATOR_TOPIC_ARN, topic)
        monkeypatch.setenv(names.ENV_CONFIG_JSON, json.dumps({"clusters": [managed]}))

        from handlers import common, spot_events

        monkeypatch.setattr(spot_events, "LEASE_WAIT", LeaseWait(wait_s=0.0))
        common.set_runtime(None)  # built from the environment above, on the first invocation
        yield World(emr, sqs, queue_url, managed, other)
        common.set_runtime(None)


def event(name: str, instance_id: str) -> dict:
    """The sample for `instance_id`, dated now: a warning is acted on only within its two minutes."""
    ev = json.loads((FIXTURES / name).read_text())
    ev["time"] = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    ev["detail"]["instance-id"] = instance_id
    ev["resources"] = [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
    return ev


def invoke(ev: object, request_id: str = "req-1") -> dict:
    from handlers.spot_events import handler

    return handler(ev, FakeContext(aws_request_id=request_id))


def emf(out: str) -> list[dict]:
    """The EMF documents Powertools Metrics printed (one JSON object per line with an `_aws` key)."""
    docs = []
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def test_interruption_moves_the_node_to_the_other_spot_group_and_tells_operators(world, capsys):
    before = world.requested(world.managed)
    assert before == {"master": 1, "core": 2, "spot-r5": 2, "spot-m5": 1}
    victim = world.instance_in(world.managed, "spot-r5")

    out = invoke(event("EC2_Spot_Instance_Interruption_Warning.json", victim))

    assert out["result"] == "applied"
    assert out["outcome"] == "replaced_spot"
    after = world.requested(world.managed)
    assert after == {"master": 1, "core": 2, "spot-r5": 1, "spot-m5": 2}  # r5 -1, m5 +1: total unchanged
    assert world.requested(world.other) == before  # the other cluster is untouched

    [msg] = world.messages()
    assert msg["Subject"] == f"sparkscale {world.managed}: interruption {victim}: moved to m5.4xlarge"
    assert "instance-action: terminate" in msg["Message"]
    assert f"{world.group_id(world.managed, 'spot-r5')} spot-r5 r5.2xlarge SPOT: 2 -> 1" in msg["Message"]
    assert msg["MessageAttributes"]["kind"]["Value"] == "interruption"

    [doc] = emf(capsys.readouterr().out)
    assert doc[names.DIM_CLUSTER_ID] == world.managed
    assert doc[names.M_SPOT_EVENTS] == [1.0]
    assert doc[names.M_SPOT_REPLACEMENTS] == [1.0]
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == names.SCALER_NAMESPACE
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[names.DIM_CLUSTER_ID]]


def test_the_same_event_twice_moves_one_node(world):
    victim = world.instance_in(world.managed, "spot-r5")
    ev = event("EC2_Spot_Instance_Interruption_Warning.json", victim)
    assert invoke(ev, "req-1")["result"] == "applied"
    again = invoke(ev, "req-2")
    assert again["result"] == "duplicate"
    assert world.requested(world.managed)["spot-m5"] == 2
    assert len(world.messages()) == 1


def test_rebalance_recommendation_is_the_same_move_flagged_as_a_recommendation(world):
    victim = world.instance_in(world.managed, "spot-m5")  # now the m5 node is at risk: r5 gets one
    out = invoke(event("EC2_Instance_Rebalance_Recommendation.json", victim))
    assert out["result"] == "applied"
    assert world.requested(world.managed) == {"master": 1, "core": 2, "spot-r5": 3, "spot-m5": 0}
    [msg] = world.messages()
    assert msg["Subject"] == f"sparkscale {world.managed}: rebalance {victim}: moved to r5.2xlarge"
    assert "a RECOMMENDATION" in msg["Message"]


def test_an_instance_of_an_unmanaged_cluster_changes_nothing(world, capsys):
    before = {c: world.requested(c) for c in (world.managed, world.other)}
    theirs = world.instance_in(world.other, "spot-r5")

    out = invoke(event("EC2_Spot_Instance_Interruption_Warning.json", theirs))

    assert out["result"] == "rejected"
    assert out["reason"] == f"{theirs} is not an instance of a managed cluster ({world.managed})"
    assert {c: world.requested(c) for c in before} == before
    assert world.messages() == []
    [doc] = emf(capsys.readouterr().out)
    assert doc[names.M_REJECTED_EVENTS] == [1.0]
    assert doc[names.DIM_CLUSTER_ID] == "unknown"


@pytest.mark.parametrize(
    "bad",
    [
        json.loads((FIXTURES / "EC2_Instance_State_change_Notification_pending.json").read_text()),
        {"source": "aws.ec2", "detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}},
        "not an event",
        None,
    ],
)
def test_bad_events_are_rejected_not_raised(world, capsys, bad):
    before = world.requested(world.managed)
    out = invoke(bad)
    assert out["result"] == "rejected"
    assert out["reason"]
    assert world.requested(world.managed) == before
    [doc] = emf(capsys.readouterr().out)
    assert doc[names.M_REJECTED_EVENTS] == [1.0]


def _dated(age_s: int) -> str:
    return (utcnow() - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("time", "why"),
    [
        (125, r"is 12\d s old \(more than 120 s\): too old to act on"),  # just past the window
        (-90, r"is dated \d+ s in the future: not acted on"),  # more than MAX_AHEAD_S ahead
        ("2021-06-01T00:00:00Z", r"s old \(more than 120 s\)"),  # a replayed warning
        ("1970-01-01T00:00:00Z", r"bad time '1970-01-01T00:00:00Z'"),  # the issue's: not a date AWS sends
    ],
)
def test_a_warning_outside_its_two_minutes_moves_nothing(world, capsys, time, why):
    victim = world.instance_in(world.managed, "spot-r5")
    before = world.requested(world.managed)
    ev = event("EC2_Spot_Instance_Interruption_Warning.json", victim)
    ev["time"] = _dated(time) if isinstance(time, int) else time  # an int: seconds before now
    out = invoke(ev)
    assert out["result"] == "rejected"
    assert re.search(why, out["reason"]), out
    assert world.requested(world.managed) == before
    assert world.messages() == []
    [doc] = emf(capsys.readouterr().out)
    assert doc[names.M_REJECTED_EVENTS] == [1.0]


def test_waits_for_the_scalers_lease_and_then_fails_for_a_retry(world):
    from sparkscale.adapters.dynamodb import DynamoStateStore

    store = DynamoStateStore(boto3.client("dynamodb"), TABLE)
    assert store.acquire_lease(world.managed, "reconcile:run_once", utcnow(), 90)  # the scaler is evaluating
    victim = world.instance_in(world.managed, "spot-r5")
    before = world.requested(world.managed)
    with pytest.raises(LeaseHeld):
        invoke(event("EC2_Spot_Instance_Interruption_Warning.json", victim))
    assert world.requested(world.managed) == before
    store.release_lease(world.managed, "reconcile:run_once")
    # Lambda's retry, once the scaler is done
    assert (
        invoke(event("EC2_Spot_Instance_Interruption_Warning.json", victim), "req-retry")["result"]
        == "applied"
    )
