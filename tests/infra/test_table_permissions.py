"""Each function's DynamoDB permissions are exactly the actions its code path calls (issue #18: no Scan,
BatchWriteItem, ConditionCheckItem or DescribeTable anywhere; BatchGetItem for the reconcile schedule only),
on the state table only.

- alarm, reconcile, emr_events (run_once): lease, state, audit, ledger, intents, capacity errors, demand
  buckets, Powertools idempotency (alarm) -> Get/Put/Update/DeleteItem; the demand history -> Query;
- reconcile, besides: the managed clusters' size records (issue #21) -> BatchGetItem;
- spot_events: lease, state (read), ledger, intents -> Get/Put/Update/DeleteItem.

TransactWriteItems (state + audit, the intent record) has no IAM action of its own: IAM authorizes each Put
and Update inside it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sparkscale_cdk.constructs.state import DEMAND_READ_ACTIONS, ITEM_ACTIONS, SIZE_RECORD_READ_ACTIONS
from stack_testlib import Synth, as_list, synth

pytestmark = pytest.mark.slow

ITEMS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
NEVER = {
    "dynamodb:Scan",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
    "dynamodb:PartiQLSelect",
}


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(outdir=tmp_path_factory.mktemp("cdk.out"))  # cdk.json: spot_events and emr_events on


def _dynamodb(s: Synth, role: Any) -> tuple[set[str], list[Any]]:
    actions: set[str] = set()
    resources: list[Any] = []
    for st in s.role_statements(role):
        mine = [a for a in as_list(st["Action"]) if a.startswith("dynamodb:")]
        if mine:
            assert st["Effect"] == "Allow"
            actions |= set(mine)
            resources += [r for r in as_list(st["Resource"]) if r not in resources]
    return actions, resources


def _roles(s: Synth) -> dict[str, Any]:
    a = s.stack.autoscaler
    assert a.spot_events is not None
    assert a.emr_events is not None
    return {
        "alarm": a.scaler.alarm.role,
        "reconcile": a.scaler.reconcile.role,
        "fanout": a.fanout.handler.role,
        "emr_events": a.emr_events.handler.role,
        "spot_events": a.spot_events.handler.role,
    }


def test_the_constants_are_the_documented_actions() -> None:
    assert set(ITEM_ACTIONS) == ITEMS
    assert set(DEMAND_READ_ACTIONS) == {"dynamodb:Query"}
    assert set(SIZE_RECORD_READ_ACTIONS) == {"dynamodb:BatchGetItem"}


@pytest.mark.parametrize("fn", ["alarm", "reconcile", "fanout", "emr_events"])
def test_run_once_functions_get_item_actions_and_query_only(s: Synth, fn: str) -> None:
    actions, resources = _dynamodb(s, _roles(s)[fn])
    schedule = {"dynamodb:BatchGetItem"} if fn == "reconcile" else set()
    assert actions == ITEMS | {"dynamodb:Query"} | schedule
    assert resources == [s.ref(s.stack.autoscaler.state.table.table_arn)]


def test_spot_events_gets_item_actions_only(s: Synth) -> None:
    actions, resources = _dynamodb(s, _roles(s)["spot_events"])
    assert actions == ITEMS  # no Query: the spot move reads no demand history
    assert resources == [s.ref(s.stack.autoscaler.state.table.table_arn)]


def test_no_function_may_scan_batch_or_describe(s: Synth) -> None:
    reconcile_policy = s.stack.autoscaler.scaler.reconcile.role
    for _, st in s.policy_statements():
        never = NEVER
        if st in s.role_statements(reconcile_policy):
            never = NEVER - {"dynamodb:BatchGetItem"}  # the schedule's size records, by key
        assert not never & set(as_list(st["Action"])), st
        assert not any(a.startswith("dynamodb:") and "*" in a for a in as_list(st["Action"]))
