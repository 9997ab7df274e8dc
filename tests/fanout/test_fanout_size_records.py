"""The size records the schedule selects by (issue #21, "groups above minimum from the registry"): every
evaluation writes what it saw of the TASK groups in the same write as its state, a skipped cluster alone, a
resize marks the cluster resizing; the schedule reads them for many clusters at once; anything missing or
malformed reads as "evaluate". DynamoDB on moto; the use case on the in-memory ports."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from sparkscale.adapters.dynamodb import AT_MINIMUM, OBSERVED_AT, RESIZING, DynamoStateStore
from sparkscale.config import Config
from sparkscale.errors import Throttled
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.policy.model import Decision, Direction, GroupStatus, MetricsSnapshot, ScalerState
from sparkscale.ports import INTENT_SCALE, INTENT_SPOT, Intent, Ports, SizeObservation
from sparkscale.usecases.scale import observe, reconcile_once

from tests.scale.shell_support import T0, clients, cluster, create_table, fake_aws_env, group, pressure

CID = "j-SIZE0001"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    fake_aws_env(monkeypatch)
    with mock_aws():
        aws = clients()
        yield aws.dynamodb, create_table(aws.dynamodb)


def _hold(cid: str = CID, at: datetime = T0) -> Decision:
    return Decision(cid, at, Direction.HOLD, (), (), dry_run=False)


def test_an_evaluation_writes_its_observation_with_its_state_in_one_transaction(
    ddb: tuple[Any, str],
) -> None:
    client, table = ddb
    store = DynamoStateStore(client, table)
    seen = SizeObservation(at_minimum=True, resizing=False, observed_at=T0)
    with Stubber(client) as stub:  # exactly one call: the state+audit transaction, the record on the state
        stub.add_response("transact_write_items", {}, {"TransactItems": ANY})
        store.save_observed(CID, ScalerState(), _hold(), T0, seen)
        stub.assert_no_pending_responses()
    store.save_observed(CID, ScalerState(), _hold(), T0, seen)  # now on moto
    assert store.observations([CID, "j-NEVER"]) == {CID: seen}
    assert store.load_state(CID) == ScalerState()
    # a state written without an observation drops the record: the schedule then evaluates the cluster
    store.save(CID, ScalerState(), _hold(), T0 + timedelta(minutes=2))
    assert store.observations([CID]) == {}


def test_a_recorded_resize_marks_the_cluster_resizing(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    store = DynamoStateStore(client, table)
    store.save_observed(CID, ScalerState(), _hold(), T0, SizeObservation(True, False, T0))
    at = T0 + timedelta(minutes=3)
    intent = Intent(
        id="i-1", kind=INTENT_SCALE, at=at, owner="me", changes=(), decision=_hold(at=at), state=ScalerState()
    )
    assert store.put_intent(CID, intent)
    assert store.record_intent(CID, intent, at)
    assert store.observations([CID]) == {CID: SizeObservation(False, True, at)}
    # a spot replacement's resize (no state of its own): the record alone, the state kept
    store.save_observed(CID, ScalerState(last_scale_out_at=T0), _hold(), T0, SizeObservation(True, False, T0))
    assert store.clear_intent(CID, "i-1") is None
    later = at + timedelta(minutes=5)
    spot = Intent(id="i-2", kind=INTENT_SPOT, at=later, owner="me", changes=(), key="spot-event-1")
    assert store.put_intent(CID, spot)
    assert store.record_intent(CID, spot, later)
    assert store.observations([CID]) == {CID: SizeObservation(False, True, later)}
    assert store.load_state(CID) == ScalerState(last_scale_out_at=T0)


def test_a_skipped_cluster_updates_its_record_and_keeps_its_state(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    store = DynamoStateStore(client, table)
    state = ScalerState(last_scale_out_at=T0)
    store.save_observed(CID, state, _hold(), T0, SizeObservation(False, True, T0))
    later = SizeObservation(True, False, T0 + timedelta(minutes=10))
    store.record_observation(CID, later)
    assert store.observations([CID]) == {CID: later}
    assert store.load_state(CID) == state
    store.record_observation("j-NOSTATE", later)  # no state item yet: the record alone, a fresh state
    assert store.load_state("j-NOSTATE") == ScalerState()
    assert store.observations(["j-NOSTATE"]) == {"j-NOSTATE": later}


@pytest.mark.parametrize(
    "attributes",
    [
        {},  # an item without a record (written before this version)
        {AT_MINIMUM: {"BOOL": True}, RESIZING: {"BOOL": False}},  # no time
        {AT_MINIMUM: {"S": "true"}, RESIZING: {"BOOL": False}, OBSERVED_AT: {"N": "1772452800"}},  # a string
        {AT_MINIMUM: {"BOOL": True}, RESIZING: {"BOOL": False}, OBSERVED_AT: {"S": "noon"}},
        {AT_MINIMUM: {"BOOL": True}, RESIZING: {"NULL": True}, OBSERVED_AT: {"N": "1772452800"}},
        {AT_MINIMUM: {"BOOL": True}, RESIZING: {"BOOL": False}, OBSERVED_AT: {"N": "1e120"}},  # no date
    ],
)
def test_a_missing_or_malformed_record_reads_as_none(
    ddb: tuple[Any, str], attributes: dict[str, Any]
) -> None:
    client, table = ddb
    item = {"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "state"}, **attributes}
    client.put_item(TableName=table, Item=item)
    assert DynamoStateStore(client, table).observations([CID]) == {}


def test_the_schedule_reads_every_managed_cluster_100_keys_a_call(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    store = DynamoStateStore(client, table)
    ids = [f"j-MANY{i:04d}" for i in range(230)]
    for i, cid in enumerate(ids):
        if i % 3:  # a third never evaluated: no record
            store.record_observation(cid, SizeObservation(i % 2 == 0, False, T0))
    calls: list[int] = []
    client.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **_: calls.append(sum(len(v["Keys"]) for v in params["RequestItems"].values())),
    )
    got = store.observations([*ids, ids[0]])  # a repeated id is asked for once
    assert calls == [100, 100, 30]
    assert set(got) == {cid for i, cid in enumerate(ids) if i % 3}
    assert got[ids[1]] == SizeObservation(False, False, T0)


def test_unprocessed_keys_are_asked_again_then_read_as_no_record(ddb: tuple[Any, str]) -> None:
    client, table = ddb
    store = DynamoStateStore(client, table)
    key = {"pk": {"S": f"cluster#{CID}"}, "sk": {"S": "state"}}
    item = {**key, AT_MINIMUM: {"BOOL": True}, RESIZING: {"BOOL": False}, OBSERVED_AT: {"N": "1772452800"}}
    left = {table: {"Keys": [key]}}
    with Stubber(client) as stub:
        stub.add_response("batch_get_item", {"Responses": {table: []}, "UnprocessedKeys": left})
        stub.add_response("batch_get_item", {"Responses": {table: [item]}, "UnprocessedKeys": {}})
        assert store.observations([CID]) == {
            CID: SizeObservation(True, False, datetime.fromtimestamp(1772452800, UTC))
        }
        for _ in range(4):  # DynamoDB keeps leaving it: after BATCH_GET_ROUNDS calls, no record
            stub.add_response("batch_get_item", {"Responses": {table: []}, "UnprocessedKeys": left})
        assert store.observations([CID]) == {}
        stub.add_client_error(
            "batch_get_item", "ProvisionedThroughputExceededException", http_status_code=400
        )
        with pytest.raises(Throttled):
            store.observations([CID])


# --- the use case on the in-memory ports --------------------------------------------------------------------
CFG = Config.from_mapping({"clusters": [CID], "max_task_nodes": 8, "group_max_nodes": 8})


def _ports(emr: FakeEmr, store: InMemoryStateStore, metrics: FixedMetrics | None = None) -> Ports:
    return Ports(emr, metrics or FixedMetrics(), emr, store, CollectingNotifier(), ledger=store)


@pytest.mark.parametrize(
    ("requested", "running", "status", "at_minimum", "resizing"),
    [
        (0, 0, GroupStatus.RUNNING, True, False),
        (2, 2, GroupStatus.RUNNING, False, False),  # above its minimum of 0
        (0, 2, GroupStatus.RUNNING, True, True),  # shrinking to its minimum
        (0, 0, GroupStatus.RESIZING, True, True),
        (3, 1, GroupStatus.RUNNING, False, True),  # growing
    ],
)
def test_observe_says_at_minimum_and_resizing(
    requested: int, running: int, status: GroupStatus, at_minimum: bool, resizing: bool
) -> None:
    c = cluster(CID, group("ig-T", requested=requested, running=running, status=status))
    assert observe(c, CFG, T0) == SizeObservation(at_minimum, resizing, T0)


def test_a_cluster_skipped_at_its_minimum_is_recorded_so_the_schedule_leaves_it_alone() -> None:
    emr, store = FakeEmr(cluster(CID, group("ig-T", requested=0, running=0))), InMemoryStateStore()
    result = reconcile_once(
        now=T0, cluster_id=CID, ports=_ports(emr, store), config=CFG, owner="o", in_alarm=False
    )
    assert result.outcome == "skipped"
    assert store.observed[CID] == SizeObservation(True, False, T0)
    assert store.saves == 0  # the record alone, no state written


def test_an_evaluated_cluster_is_recorded_with_its_state() -> None:
    emr, store = FakeEmr(cluster(CID, group("ig-T", requested=2, running=2))), InMemoryStateStore()
    metrics = FixedMetrics({CID: pressure(T0)})
    result = reconcile_once(
        now=T0, cluster_id=CID, ports=_ports(emr, store, metrics), config=CFG, owner="o", in_alarm=True
    )
    assert result.outcome == "applied"  # under pressure: scaled out, recorded as a resize
    assert store.observed[CID] == SizeObservation(False, True, T0)
    # once the nodes arrived and the pressure is gone: held above its minimum, not resizing
    emr.deliver(CID)
    metrics.snapshots[CID] = MetricsSnapshot()  # no metrics: held
    later = T0 + timedelta(minutes=2)
    reconcile_once(
        now=later, cluster_id=CID, ports=_ports(emr, store, metrics), config=CFG, owner="o", in_alarm=False
    )
    assert store.observed[CID] == SizeObservation(False, False, later)


def test_a_store_that_cannot_record_never_fails_the_skip() -> None:
    class Failing(InMemoryStateStore):
        def record_observation(self, cluster_id: str, observed: SizeObservation) -> None:
            raise Throttled("UpdateItem(state.groups): throttled")

    emr, store = FakeEmr(cluster(CID, group("ig-T", requested=0, running=0))), Failing()
    result = reconcile_once(
        now=T0, cluster_id=CID, ports=_ports(emr, store), config=CFG, owner="o", in_alarm=False
    )
    assert result.outcome == "skipped"


def test_the_in_memory_store_keeps_the_records_as_the_dynamodb_store() -> None:
    store = InMemoryStateStore()
    store.save_observed(CID, ScalerState(), _hold(), T0, SizeObservation(True, False, T0))
    assert store.observations([CID, "j-NEVER"]) == {CID: SizeObservation(True, False, T0)}
    store.save(CID, ScalerState(), _hold(), T0)  # a state without an observation drops it
    assert store.observations([CID]) == {}
    spot = Intent(id="i-2", kind=INTENT_SPOT, at=T0, owner="me", changes=(), key="spot-event-1")
    assert store.put_intent(CID, spot)
    assert store.record_intent(CID, spot, T0)
    assert store.observations([CID]) == {CID: SizeObservation(False, True, T0)}
