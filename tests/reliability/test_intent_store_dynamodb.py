"""The DynamoDB intent store (ports.IntentStore) against moto, and its error mapping against botocore's
Stubber (which checks every request against the real DynamoDB model): a lost condition is an answer (False),
a throttle or a 5xx is a typed error the use cases decide about."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from sparkscale import notices
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.errors import Throttled, TransientAwsError
from sparkscale.policy.model import Decision, Direction, GroupTarget, Market, ScalerState
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.ports import INTENT_SCALE, INTENT_SPOT, Intent, IntentStore, Notice
from sparkscale.records import decision_from_dict, decision_to_dict

from tests.scale.shell_support import T0, create_table

CID = "j-TEST0001"
TARGET = GroupTarget("ig-T1", "spot-r5", "r5.2xlarge", Market.SPOT, 1, 3, 0.15)
DECISION = Decision(
    CID,
    T0,
    Direction.OUT,
    (TARGET,),
    (Reason(ReasonCode.NEED, "YARN memory available 5% < 15%"),),
    dry_run=False,
    desired_task_nodes=3,
)
NOTICE = Notice(notices.KIND_ACTION, CID, "sparkscale j-TEST0001: scale out", "body", "footer")


def scale_intent(**over: Any) -> Intent:
    base = {
        "id": "i-1",
        "kind": INTENT_SCALE,
        "at": T0,
        "owner": "req-1",
        "changes": (TARGET,),
        "notice": NOTICE,
        "decision": DECISION,
        "state": ScalerState(last_scale_out_at=T0),
    }
    return Intent(**{**base, **over})


@pytest.fixture
def store(aws_env: None) -> Iterator[DynamoStateStore]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        yield DynamoStateStore(db, create_table(db))


def test_the_dynamodb_store_is_an_intent_store(store: DynamoStateStore) -> None:
    assert isinstance(store, IntentStore)


def test_a_scale_intent_round_trips_and_its_record_is_one_transaction(store: DynamoStateStore) -> None:
    intent = scale_intent()
    assert store.load_intent(CID) is None
    assert store.put_intent(CID, intent)
    assert not store.put_intent(CID, scale_intent(id="i-2"))  # one pending intent per cluster
    loaded = store.load_intent(CID)
    assert loaded == intent
    assert store.audit(CID) == []
    assert store.record_intent(CID, intent, T0)
    assert not store.record_intent(CID, intent, T0)  # recorded once: a second settle writes nothing
    assert store.load_state(CID).last_scale_out_at == T0
    assert [a["targets"][0]["target"] for a in store.audit(CID)] == [3]
    assert store.load_intent(CID) == intent.__class__(**{**intent.__dict__, "recorded": True})
    store.clear_intent(CID, "another")  # not ours: stays
    assert store.load_intent(CID) is not None
    store.clear_intent(CID, intent.id)
    assert store.load_intent(CID) is None


def test_a_spot_intent_marks_its_event_handled_when_recorded(store: DynamoStateStore) -> None:
    intent = Intent("i-9", INTENT_SPOT, T0, "req-9", (TARGET,), NOTICE, key="spot-k", key_ttl_s=3600)
    assert store.put_intent(CID, intent)
    assert store.load_intent(CID) == intent
    assert store.claimed_at(CID, "spot-k", T0) is None
    assert store.record_intent(CID, intent, T0)
    assert store.claimed_at(CID, "spot-k", T0 + timedelta(seconds=3599)) == T0
    assert store.claimed_at(CID, "spot-k", T0 + timedelta(seconds=3600)) is None
    assert store.load_state(CID) == ScalerState()  # a move saves no scaler state


def test_decisions_round_trip_through_their_audit_form() -> None:
    d = decision_to_dict(DECISION)
    assert decision_to_dict(decision_from_dict(d)) == d


def _stubbed() -> tuple[DynamoStateStore, Stubber]:
    db = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return DynamoStateStore(db, "t"), Stubber(db)


def test_a_lost_condition_in_the_record_transaction_is_false() -> None:
    store, stub = _stubbed()
    reasons = [{"Code": "None"}, {"Code": "None"}, {"Code": "ConditionalCheckFailed"}]
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        http_status_code=400,
        response_meta={},
        modeled_fields={"CancellationReasons": reasons},
    )
    with stub:
        assert store.record_intent(CID, scale_intent(), T0) is False
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 400, Throttled),
        ("InternalServerError", 500, TransientAwsError),
        ("TransactionConflictException", 400, None),
    ],
)
def test_other_record_failures_are_typed_errors(
    code: str, status: int, error: type[Exception] | None
) -> None:
    store, stub = _stubbed()
    stub.add_client_error("transact_write_items", service_error_code=code, http_status_code=status)
    with stub, pytest.raises(error or Exception) as caught:
        store.record_intent(CID, scale_intent(), T0)
    assert caught.value.__class__.__module__ == "sparkscale.errors"


def test_put_intent_conflict_is_false_and_a_5xx_raises() -> None:
    store, stub = _stubbed()
    stub.add_client_error("put_item", service_error_code="ConditionalCheckFailedException")
    stub.add_client_error("put_item", service_error_code="ServiceUnavailable", http_status_code=503)
    with stub:
        assert store.put_intent(CID, scale_intent()) is False
        with pytest.raises(TransientAwsError):
            store.put_intent(CID, scale_intent())
