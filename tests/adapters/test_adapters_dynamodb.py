"""DynamoDB state store against moto (in process and over HTTP); error paths through botocore Stubber."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import ANY, Stubber
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.errors import Throttled, TransientAwsError
from sparkscale.policy import Reason, ReasonCode
from sparkscale.policy.model import Decision, Direction, GroupTarget, Market, Recommendation, ScalerState
from sparkscale.ports import PauseMark

from tests.scale.shell_support import REGION, create_table

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CID = "j-DDBTEST01"


@pytest.fixture
def store(aws: AwsClients) -> DynamoStateStore:
    return DynamoStateStore(aws.dynamodb, create_table(aws.dynamodb), audit_ttl_days=30)


def _decision(direction: Direction = Direction.OUT) -> Decision:
    t = GroupTarget("ig-T", "spot", "r5.2xlarge", Market.SPOT, 1, 3, 0.15)
    return Decision(
        CID,
        T0,
        direction,
        (t,),
        (Reason(ReasonCode.NEED, "YARN memory is short."),),
        dry_run=False,
        usd_per_hour_before=0.15,
        usd_per_hour_after=0.45,
    )


def test_lease_is_exclusive_until_released_or_expired(store: DynamoStateStore) -> None:
    assert store.acquire_lease(CID, "a", T0, 90)
    assert not store.acquire_lease(CID, "b", T0 + timedelta(seconds=30), 90)  # conditional write fails
    assert store.acquire_lease(CID, "a", T0 + timedelta(seconds=30), 90)  # the holder may renew
    store.release_lease(CID, "b")  # not the holder: nothing happens
    assert not store.acquire_lease(CID, "b", T0 + timedelta(seconds=31), 90)
    store.release_lease(CID, "a")
    assert store.acquire_lease(CID, "b", T0 + timedelta(seconds=32), 90)
    # b never releases (crashed): the lease expires after its TTL, whatever DynamoDB's TTL sweeper does
    assert not store.acquire_lease(CID, "c", T0 + timedelta(seconds=32 + 89), 90)
    assert store.acquire_lease(CID, "c", T0 + timedelta(seconds=32 + 90), 90)
    assert store.acquire_lease("j-OTHER", "b", T0, 90)  # leases are per cluster


def test_state_and_audit_round_trip_with_ttl(aws: AwsClients, store: DynamoStateStore) -> None:
    assert store.load_state(CID) == ScalerState()
    state = ScalerState(
        last_scale_out_at=T0,
        last_active_at=T0,
        recommendations=(Recommendation(T0, 3, 96.0),),
        shortfall_since={"ig-T": T0},
    )
    store.save(CID, state, _decision(), T0)
    assert store.load_state(CID) == state
    audit = store.audit(CID)
    assert len(audit) == 1
    assert audit[0]["direction"] == "scale_out"
    assert audit[0]["targets"][0]["target"] == 3
    items = aws.dynamodb.scan(TableName="sparkscale-state")["Items"]
    audit_items = [i for i in items if i["sk"]["S"].startswith("audit#")]
    assert int(audit_items[0]["expires_at"]["N"]) == int((T0 + timedelta(days=30)).timestamp())
    state_item = next(i for i in items if i["sk"]["S"] == "state")
    assert state_item["pk"]["S"] == f"cluster#{CID}"
    assert "expires_at" not in state_item  # the state never expires


def test_corrupt_state_starts_fresh(aws: AwsClients, store: DynamoStateStore) -> None:
    aws.dynamodb.put_item(
        TableName="sparkscale-state",
        Item={
            "pk": {"S": f"cluster#{CID}"},
            "sk": {"S": "state"},
            "state": {"S": json.dumps({"last_scale_out_at": 5})},
        },
    )
    assert store.load_state(CID) == ScalerState()


def test_notice_claims_are_once_until_they_expire(store: DynamoStateStore) -> None:
    assert store.claimed_at(CID, "at_max", T0) is None
    assert store.claim(CID, "at_max", T0, 3600)
    assert not store.claim(CID, "at_max", T0 + timedelta(minutes=59), 3600)
    assert store.claimed_at(CID, "at_max", T0 + timedelta(minutes=59)) == T0
    assert store.claimed_at(CID, "at_max", T0 + timedelta(hours=1)) is None
    assert store.claim(CID, "at_max", T0 + timedelta(hours=1), 3600)
    assert store.claim(CID, "cluster_gone", T0, None)
    assert not store.claim(CID, "cluster_gone", T0 + timedelta(days=400), None)  # forever


def _stubbed() -> tuple[DynamoStateStore, Stubber]:
    ddb = boto3.session.Session(region_name=REGION).client("dynamodb")
    return DynamoStateStore(ddb, "t"), Stubber(ddb)


def test_conditional_failure_means_lease_held_not_an_error() -> None:
    store, stub = _stubbed()
    with stub:
        stub.add_client_error(
            "put_item", service_error_code="ConditionalCheckFailedException", http_status_code=400
        )
        assert store.acquire_lease(CID, "a", T0, 90) is False
        stub.add_client_error(
            "delete_item", service_error_code="ConditionalCheckFailedException", http_status_code=400
        )
        store.release_lease(CID, "a")  # lost lease: logged, not raised


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, Throttled),
        ("ThrottlingException", 400, Throttled),
        ("InternalServerError", 500, TransientAwsError),
    ],
)
def test_dynamodb_errors_become_typed_errors(code: str, status: int, expected: type[Exception]) -> None:
    store, stub = _stubbed()
    with stub:
        stub.add_client_error("put_item", service_error_code=code, http_status_code=status)
        with pytest.raises(expected):
            store.acquire_lease(CID, "a", T0, 90)
        stub.add_client_error(
            "transact_write_items",
            service_error_code=code,
            http_status_code=status,
            expected_params={"TransactItems": ANY},
        )
        with pytest.raises(expected):
            store.save(CID, ScalerState(), _decision(), T0)


def test_pause_mark_round_trip_and_resume(aws: AwsClients, store: DynamoStateStore) -> None:
    assert store.load_pause(CID) is None
    mark = PauseMark(at=T0, by="cli:alice", why="maintenance")
    store.save_pause(CID, mark)
    assert store.load_pause(CID) == mark
    assert store.load_pause("j-OTHER") is None  # per cluster
    item = aws.dynamodb.get_item(
        TableName="sparkscale-state", Key={"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "paused"}}
    )
    assert item["Item"]["paused_by"]["S"] == "cli:alice"
    assert "expires_at" not in item["Item"]  # a pause lasts until resumed
    store.save_pause(CID, None)
    assert store.load_pause(CID) is None
    store.save_pause(CID, None)  # resuming a cluster that is not paused is fine


def test_a_hand_written_pause_mark_still_pauses(aws: AwsClients, store: DynamoStateStore) -> None:
    aws.dynamodb.put_item(
        TableName="sparkscale-state", Item={"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "paused"}}
    )
    mark = store.load_pause(CID)
    assert mark is not None
    assert mark.by == "unknown"


def test_audit_since_is_newest_first_from_the_given_time(store: DynamoStateStore) -> None:
    for minutes, direction in ((0, Direction.OUT), (30, Direction.HOLD), (90, Direction.IN)):
        store.save(CID, ScalerState(), _decision(direction), T0 + timedelta(minutes=minutes))
    store.save("j-OTHER", ScalerState(), _decision(), T0 + timedelta(minutes=45))
    recent = store.audit_since(CID, T0 + timedelta(minutes=30))
    assert [r["direction"] for r in recent] == ["scale_in", "hold"]
    assert [r["direction"] for r in store.audit_since(CID, T0 - timedelta(days=1))] == [
        "scale_in",
        "hold",
        "scale_out",
    ]
    assert len(store.audit_since(CID, T0, limit=2)) == 2
    assert store.audit_since(CID, T0 + timedelta(hours=2)) == []
