"""The forecast's state (trend window, lead times, pending scale-out) and the demand history: DynamoDB on moto
and the in-memory store behave the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.memory import InMemoryStateStore
from sparkscale.policy import Direction, ScalerState
from sparkscale.policy.forecast import HISTORY_KEEP_S, bucket_start, history_ranges
from sparkscale.policy.model import Decision, DemandSample, PendingScaleOut

from tests.scale.shell_support import create_table

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CID = "j-DDBTEST01"
STATE = ScalerState(
    demand_samples=(DemandSample(T0 - timedelta(seconds=120), 150.5), DemandSample(T0, 214.25)),
    lead_times_s=(370.0, 410.5),
    pending_scale_out=PendingScaleOut(T0, 7),
)


Store = DynamoStateStore | InMemoryStateStore


@pytest.fixture
def dynamo(aws: AwsClients) -> DynamoStateStore:
    return DynamoStateStore(aws.dynamodb, create_table(aws.dynamodb), audit_ttl_days=30)


def test_forecast_state_round_trips_in_dynamodb(dynamo: DynamoStateStore) -> None:
    _round_trip(dynamo)


def test_forecast_state_round_trips_in_memory() -> None:
    _round_trip(InMemoryStateStore())


def test_demand_history_in_dynamodb(dynamo: DynamoStateStore) -> None:
    _history(dynamo)


def test_demand_history_in_memory() -> None:
    _history(InMemoryStateStore())


def _round_trip(store: Store) -> None:
    store.save(CID, STATE, Decision(CID, T0, Direction.HOLD, (), (), False), T0)
    assert store.load_state(CID) == STATE


def _history(store: Store) -> None:
    """Each bucket keeps its peak; only the ranges asked for come back."""
    b = bucket_start(T0)
    store.record_demand(CID, b, 100.0, T0)
    store.record_demand(CID, b, 80.0, T0)  # lower: the peak stays
    store.record_demand(CID, b + timedelta(minutes=5), 120.0, T0)
    day_ago = b - timedelta(days=1)
    store.record_demand(CID, day_ago, 90.0, T0)
    got = store.load_demand(CID, [(b, b + timedelta(minutes=5)), (day_ago, day_ago)])
    assert dict(got) == {b: 100.0, b + timedelta(minutes=5): 120.0, day_ago: 90.0}
    assert store.load_demand("j-OTHER", history_ranges(T0, 360)) == {}


def test_demand_items_expire_a_week_and_a_day_after_their_hour(aws: AwsClients) -> None:
    store = DynamoStateStore(aws.dynamodb, create_table(aws.dynamodb))
    store.record_demand(CID, bucket_start(T0 + timedelta(minutes=7)), 50.0, T0)
    items = aws.dynamodb.scan(TableName="sparkscale-state")["Items"]
    (item,) = [i for i in items if i["sk"]["S"].startswith("demand#")]
    assert item["sk"]["S"] == "demand#2026-03-02T12"
    assert item["m05"]["N"] == "50.0"
    assert int(item["expires_at"]["N"]) == int(T0.timestamp()) + 3600 + HISTORY_KEEP_S
