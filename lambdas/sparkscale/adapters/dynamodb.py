"""DynamoDB single table (pk S, sk S, TTL attribute expires_at): the per-cluster lease, the scaler state, the
audit trail and the once-only notice ledger. Powertools Idempotency shares the table (pk "idempotency#<fn>").

| item | pk | sk | attributes |
|---|---|---|---|
| lease | cluster#<id> | lease | owner, acquired_at, expires_at |
| state | cluster#<id> | state | state (JSON), updated_at, last_direction, groups_* (below) |
| audit | cluster#<id> | audit#<ISO time, UTC>#<direction>#<12 hex> | decision (JSON), dry_run, TTL |
| pause | cluster#<id> | paused | paused_at, paused_by, why (absent: not paused) |
| notice ledger | cluster#<id> | notice#<key> | claimed_at, expires_at (absent: forever) |
| intent | cluster#<id> | intent | intent_id, kind, at, changes, notice, decision, state, key, recorded |
| demand history | cluster#<id> | demand#<YYYY-MM-DDTHH> | m00 … m55 (5-minute peaks, GiB), expires_at (TTL) |
| node report | nodes#<id> | nodes | collected_at (epoch s), report (JSON), expires_at (TTL): by the agent |

The node report (agent/nodes.py) has its own partition key so that the EMR instance role may write it and
nothing else: IAM's dynamodb:LeadingKeys condition sees the partition key only, and "cluster#<id>" holds the
lease and the state. The scaler only reads it (`load_node_report`); a malformed report is logged and treated
as none (EMR then chooses the nodes a shrink removes).

The demand history (forecast_mode observe or act) is one small item per UTC hour (≤ 12 numbers; TTL: the
hour's end + a week and a day): a week is
192 items, none near DynamoDB's 400 KB, and the state item does not grow with it. Each evaluation updates one
attribute of one item (kept when a larger peak is there) and reads only the hours the forecast looks at
(three Query calls of one or two items each).

The lease is a conditional PutItem: it succeeds when there is no lease, the lease has expired, or the caller
already holds it. DynamoDB's TTL deletes expired items only eventually, so every read compares expires_at with
`now` itself. `record_capacity_error` (EMR capacity events) rewrites only the state item's `state` attribute,
conditional on the value it read (no audit item: it is an observation, not a decision).

The groups_* attributes are the last SizeObservation (ports.SizeObservationStore): written in the same Put
as the state (an evaluation), set alone by an UpdateItem (a cluster skipped at its minimum), and marked
resizing by `record_intent` (a resize just made). A Put of the state without one drops them: the schedule
then evaluates the cluster (no record means "evaluate"). The schedule reads them for every managed cluster
with BatchGetItem (100 keys a call, only these attributes); an item that lacks one, or holds another type,
reads as no record.

The write-ahead intent (ports.IntentStore, one per cluster) is written with a conditional PutItem before the
resize; `record_intent` is one TransactWriteItems: the state, the audit item, the spot event's ledger key and
the intent's `recorded` flag (conditional on the intent id and not yet recorded), so a record is written once
or not at all. The intent has no TTL: it is removed when settled, and until then it is the only trace of a
resize that may have happened.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale import names
from sparkscale.adapters.aws_errors import translate
from sparkscale.errors import TransientAwsError
from sparkscale.policy import state_from_dict, state_to_dict
from sparkscale.policy.forecast import HISTORY_KEEP_S
from sparkscale.policy.model import Decision, ScalerState
from sparkscale.policy.node_choice import NodeReport, YarnNode
from sparkscale.ports import Intent, Notice, PauseMark, SizeObservation
from sparkscale.records import decision_from_dict, decision_to_dict, target_from_dict, target_to_dict

log = logging.getLogger(__name__)

PK: Final = names.TABLE_PK
SK: Final = names.TABLE_SK
TTL: Final = names.TABLE_TTL_ATTR
SK_LEASE: Final = "lease"
SK_STATE: Final = "state"
SK_INTENT: Final = "intent"
SK_PAUSED: Final = "paused"
AUDIT_PREFIX: Final = "audit#"
NOTICE_PREFIX: Final = "notice#"
DEMAND_PREFIX: Final = "demand#"
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
AT_MINIMUM: Final = "groups_at_minimum"
RESIZING: Final = "groups_resizing"
OBSERVED_AT: Final = "groups_observed_at"
BATCH_GET_KEYS: Final = 100  # BatchGetItem: at most 100 keys a call
BATCH_GET_ROUNDS: Final = 4  # calls for the keys DynamoDB left unprocessed before they read as no record


def cluster_pk(cluster_id: str) -> str:
    return f"cluster#{cluster_id}"


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cancelled_by_condition(exc: ClientError) -> bool:
    """A TransactWriteItems cancelled because one of its conditions failed (not a conflict or a fault)."""
    reasons = exc.response.get("CancellationReasons") or []
    return _code(exc) == "TransactionCanceledException" and any(
        isinstance(r, Mapping) and r.get("Code") == "ConditionalCheckFailed" for r in reasons
    )


def _conditional(call: Callable[..., object], what: str, **request: Any) -> bool:
    """One conditional write (`call(**request)`). True: written. False: its condition failed, an expected
    answer rather than an error (the item is someone else's, or holds a larger value already). Every other
    failure becomes the project's error (errors.translate), named `what`."""
    try:
        call(**request)
    except ClientError as exc:
        if _code(exc) == _CONDITION_FAILED or _cancelled_by_condition(exc):
            return False
        raise translate(exc, what) from exc
    except BotoCoreError as exc:
        raise translate(exc, what) from exc
    return True


def _intent_item(intent: Intent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "intent_id": {"S": intent.id},
        "kind": {"S": intent.kind},
        "at": {"S": intent.at.astimezone(UTC).isoformat()},
        "owner": {"S": intent.owner},
        "changes": {"S": json.dumps([target_to_dict(t) for t in intent.changes], sort_keys=True)},
        "recorded": {"BOOL": intent.recorded},
    }
    if intent.notice is not None:
        n = intent.notice
        notice = {"kind": n.kind, "cluster_id": n.cluster_id, "subject": n.subject, "body": n.body}
        item["notice"] = {"S": json.dumps({**notice, "footer": n.footer}, sort_keys=True)}
    if intent.decision is not None:
        item["decision"] = {"S": json.dumps(decision_to_dict(intent.decision), sort_keys=True)}
    if intent.state is not None:
        item["state"] = {"S": json.dumps(state_to_dict(intent.state), sort_keys=True)}
    if intent.key:
        item["key"] = {"S": intent.key}
    if intent.key_ttl_s is not None:
        item["key_ttl_s"] = {"N": str(int(intent.key_ttl_s))}
    return item


def _intent_from_item(item: Mapping[str, Any]) -> Intent:
    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else str(value["S"])

    changes = tuple(target_from_dict(t) for t in json.loads(item["changes"]["S"]))
    notice, decision, state = text("notice"), text("decision"), text("state")
    ttl = item.get("key_ttl_s")
    return Intent(
        id=str(item["intent_id"]["S"]),
        kind=str(item["kind"]["S"]),
        at=datetime.fromisoformat(item["at"]["S"]),
        owner=str(item["owner"]["S"]),
        changes=changes,
        notice=None if notice is None else Notice(**json.loads(notice)),
        decision=None if decision is None else decision_from_dict(json.loads(decision)),
        state=None if state is None else state_from_dict(json.loads(state)),
        key=text("key") or "",
        key_ttl_s=None if ttl is None else int(ttl["N"]),
        recorded=bool(item.get("recorded", {}).get("BOOL", False)),
    )


def _demand_sk(t: datetime) -> str:
    return f"{DEMAND_PREFIX}{t.astimezone(UTC):%Y-%m-%dT%H}"


def decode_node_report(item: Mapping[str, Any]) -> NodeReport:
    """A node report item (agent/nodes.py `report_item`) as a model. ValueError/KeyError/TypeError when
    malformed."""
    collected_at = datetime.fromtimestamp(float(item["collected_at"]["N"]), tz=UTC)
    doc = json.loads(item["report"]["S"])
    nodes = tuple(
        YarnNode(
            host=str(n["host"]),
            state=str(n["state"]),
            containers=int(n["containers"]),
            used_memory_mb=float(n["used_mb"]),
        )
        for n in doc["nodes"]
    )
    am_hosts = doc["am_hosts"]
    if not isinstance(am_hosts, list):
        raise TypeError("am_hosts is not a list")
    return NodeReport(collected_at, nodes, frozenset(str(h) for h in am_hosts))


def _observation_attributes(observed: SizeObservation) -> dict[str, Any]:
    return {
        AT_MINIMUM: {"BOOL": observed.at_minimum},
        RESIZING: {"BOOL": observed.resizing},
        OBSERVED_AT: {"N": str(_epoch(observed.observed_at))},
    }


def decode_observation(item: Mapping[str, Any]) -> SizeObservation | None:
    """A state item's groups_* attributes as a SizeObservation; None when one is missing or malformed (the
    schedule then evaluates the cluster)."""
    try:
        at_minimum, resizing = item[AT_MINIMUM]["BOOL"], item[RESIZING]["BOOL"]
        seconds = float(item[OBSERVED_AT]["N"])
        if not isinstance(at_minimum, bool) or not isinstance(resizing, bool) or not math.isfinite(seconds):
            return None
        return SizeObservation(at_minimum, resizing, datetime.fromtimestamp(seconds, tz=UTC))
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def _decode_state(cluster_id: str, text: Any) -> ScalerState:
    try:
        return state_from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:  # a corrupt item must not wedge the cluster forever
        log.error("state of %s is unreadable (%s): starting from a fresh state", cluster_id, exc)
        return ScalerState()


class DynamoStateStore:
    """ports.StateStore and ports.NoticeLedger over one DynamoDB table (low-level client, injected)."""

    def __init__(self, dynamodb: Any, table_name: str, *, audit_ttl_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table_name
        self._audit_ttl = timedelta(days=audit_ttl_days)

    def _key(self, cluster_id: str, sk: str) -> dict[str, Any]:
        return {PK: {"S": cluster_pk(cluster_id)}, SK: {"S": sk}}

    # --- lease ----------------------------------------------------------------------------------------------
    def acquire_lease(self, cluster_id: str, owner: str, now: datetime, ttl_s: int) -> bool:
        return _conditional(
            self._db.put_item,
            "PutItem(lease)",
            TableName=self._table,
            Item={
                **self._key(cluster_id, SK_LEASE),
                "owner": {"S": owner},
                "acquired_at": {"S": now.astimezone(UTC).isoformat()},
                TTL: {"N": str(_epoch(now) + int(ttl_s))},
            },
            ConditionExpression="attribute_not_exists(#pk) OR #exp <= :now OR #owner = :owner",
            ExpressionAttributeNames={"#pk": PK, "#exp": TTL, "#owner": "owner"},
            ExpressionAttributeValues={":now": {"N": str(_epoch(now))}, ":owner": {"S": owner}},
        )

    def release_lease(self, cluster_id: str, owner: str) -> None:
        released = _conditional(
            self._db.delete_item,
            "DeleteItem(lease)",
            TableName=self._table,
            Key=self._key(cluster_id, SK_LEASE),
            ConditionExpression="#owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":owner": {"S": owner}},
        )
        if not released:  # expired and taken over (or already gone): not ours to delete
            log.warning("lease of %s was no longer held by %s at release", cluster_id, owner)

    # --- state and audit ------------------------------------------------------------------------------------
    def load_state(self, cluster_id: str) -> ScalerState:
        try:
            resp = self._db.get_item(
                TableName=self._table, Key=self._key(cluster_id, SK_STATE), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetItem(state)") from exc
        item = resp.get("Item")
        if not item or "state" not in item:
            return ScalerState()
        return _decode_state(cluster_id, item["state"].get("S"))

    def save(self, cluster_id: str, state: ScalerState, decision: Decision, now: datetime) -> None:
        """The new state and an audit item, in one transaction (both or neither)."""
        self._save(cluster_id, state, decision, now, None)

    def save_observed(
        self,
        cluster_id: str,
        state: ScalerState,
        decision: Decision,
        now: datetime,
        observed: SizeObservation,
    ) -> None:
        """`save` with the evaluation's SizeObservation on the state item (the same write)."""
        self._save(cluster_id, state, decision, now, observed)

    def _save(
        self,
        cluster_id: str,
        state: ScalerState,
        decision: Decision,
        now: datetime,
        observed: SizeObservation | None,
    ) -> None:
        try:
            self._db.transact_write_items(
                TransactItems=self._state_and_audit(cluster_id, state, decision, now, observed)
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "TransactWriteItems(state+audit)") from exc

    def _state_and_audit(
        self,
        cluster_id: str,
        state: ScalerState,
        decision: Decision,
        now: datetime,
        observed: SizeObservation | None = None,
    ) -> list[dict[str, Any]]:
        iso = now.astimezone(UTC).isoformat()
        audit_sk = f"{AUDIT_PREFIX}{iso}#{decision.direction.value}#{uuid.uuid4().hex[:12]}"
        state_item = {
            **self._key(cluster_id, SK_STATE),
            "state": {"S": json.dumps(state_to_dict(state), sort_keys=True)},
            "updated_at": {"S": iso},
            "last_direction": {"S": decision.direction.value},
        }
        if observed is not None:
            state_item.update(_observation_attributes(observed))
        audit_item = {
            **self._key(cluster_id, audit_sk),
            "decision": {"S": json.dumps(decision_to_dict(decision), sort_keys=True)},
            "direction": {"S": decision.direction.value},
            "dry_run": {"BOOL": decision.dry_run},
            TTL: {"N": str(_epoch(now + self._audit_ttl))},
        }
        return [
            {"Put": {"TableName": self._table, "Item": state_item}},
            {"Put": {"TableName": self._table, "Item": audit_item}},
        ]

    # --- size observations (ports.SizeObservationStore) --------------------------------------------------
    def record_observation(self, cluster_id: str, observed: SizeObservation) -> None:
        """The observation alone: an UpdateItem of the state item's groups_* attributes (the state kept)."""
        try:
            self._db.update_item(**self._observation_update(cluster_id, observed))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "UpdateItem(state.groups)") from exc

    def _observation_update(self, cluster_id: str, observed: SizeObservation) -> dict[str, Any]:
        attrs = _observation_attributes(observed)
        return {
            "TableName": self._table,
            "Key": self._key(cluster_id, SK_STATE),
            "UpdateExpression": "SET #m = :m, #r = :r, #t = :t",
            "ExpressionAttributeNames": {"#m": AT_MINIMUM, "#r": RESIZING, "#t": OBSERVED_AT},
            "ExpressionAttributeValues": {
                ":m": attrs[AT_MINIMUM],
                ":r": attrs[RESIZING],
                ":t": attrs[OBSERVED_AT],
            },
        }

    def observations(self, cluster_ids: Sequence[str]) -> Mapping[str, SizeObservation]:
        """BatchGetItem of the state items' groups_* attributes, 100 keys a call (eventually consistent: a
        hint, not a decision). Keys still unprocessed after BATCH_GET_ROUNDS calls read as no record."""
        out: dict[str, SizeObservation] = {}
        ids = list(dict.fromkeys(cluster_ids))
        prefix = cluster_pk("")
        for i in range(0, len(ids), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [self._key(c, SK_STATE) for c in ids[i : i + BATCH_GET_KEYS]],
                    "ProjectionExpression": "#pk, #m, #r, #t",
                    "ExpressionAttributeNames": {
                        "#pk": PK,
                        "#m": AT_MINIMUM,
                        "#r": RESIZING,
                        "#t": OBSERVED_AT,
                    },
                }
            }
            for _ in range(BATCH_GET_ROUNDS):
                try:
                    resp = self._db.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc, "BatchGetItem(state.groups)") from exc
                for item in (resp.get("Responses") or {}).get(self._table, []):
                    pk = item.get(PK, {}).get("S", "")
                    observed = decode_observation(item)
                    if isinstance(pk, str) and pk.startswith(prefix) and observed is not None:
                        out[pk[len(prefix) :]] = observed
                request = resp.get("UnprocessedKeys") or {}
                if not request.get(self._table, {}).get("Keys"):
                    break
        return out

    # --- write-ahead intents (ports.IntentStore) ------------------------------------------------------------
    def load_intent(self, cluster_id: str) -> Intent | None:
        try:
            resp = self._db.get_item(
                TableName=self._table, Key=self._key(cluster_id, SK_INTENT), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetItem(intent)") from exc
        item = resp.get("Item")
        if not item:
            return None
        try:
            return _intent_from_item(item)
        except (KeyError, ValueError, TypeError) as exc:  # never wedge the cluster on a corrupt item
            log.error("intent of %s is unreadable (%s): ignored", cluster_id, exc)
            return None

    def put_intent(self, cluster_id: str, intent: Intent) -> bool:
        return _conditional(
            self._db.put_item,
            "PutItem(intent)",
            TableName=self._table,
            Item={**self._key(cluster_id, SK_INTENT), **_intent_item(intent)},
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": PK},
        )

    def record_intent(self, cluster_id: str, intent: Intent, now: datetime) -> bool:
        items: list[dict[str, Any]] = []
        resized = SizeObservation(at_minimum=False, resizing=True, observed_at=now)  # evaluated again
        if intent.state is not None and intent.decision is not None:
            items += self._state_and_audit(cluster_id, intent.state, intent.decision, now, resized)
        else:  # a resize with no state of its own (a spot replacement): the record alone, the state kept
            items.append({"Update": self._observation_update(cluster_id, resized)})
        if intent.key:
            claim = self._claim_item(cluster_id, intent.key, now, intent.key_ttl_s)
            items.append({"Put": {"TableName": self._table, "Item": claim}})
        items.append(
            {
                "Update": {
                    "TableName": self._table,
                    "Key": self._key(cluster_id, SK_INTENT),
                    "UpdateExpression": "SET #rec = :yes",
                    "ConditionExpression": "#id = :id AND #rec = :no",
                    "ExpressionAttributeNames": {"#id": "intent_id", "#rec": "recorded"},
                    "ExpressionAttributeValues": {
                        ":id": {"S": intent.id},
                        ":yes": {"BOOL": True},
                        ":no": {"BOOL": False},
                    },
                }
            }
        )
        return _conditional(
            self._db.transact_write_items, "TransactWriteItems(intent record)", TransactItems=items
        )

    def clear_intent(self, cluster_id: str, intent_id: str) -> None:
        # False: another intent (or none) is pending: not ours to remove
        _conditional(
            self._db.delete_item,
            "DeleteItem(intent)",
            TableName=self._table,
            Key=self._key(cluster_id, SK_INTENT),
            ConditionExpression="#id = :id",
            ExpressionAttributeNames={"#id": "intent_id"},
            ExpressionAttributeValues={":id": {"S": intent_id}},
        )

    # --- the operator's pause (ports.PauseMark) -------------------------------------------------------------
    def load_pause(self, cluster_id: str) -> PauseMark | None:
        try:
            resp = self._db.get_item(
                TableName=self._table, Key=self._key(cluster_id, SK_PAUSED), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetItem(paused)") from exc
        item = resp.get("Item")
        if not item:
            return None
        try:
            at = datetime.fromisoformat(item["paused_at"]["S"])
        except (KeyError, ValueError):  # a mark written by hand: paused all the same, since an unknown time
            at = datetime.fromtimestamp(0, UTC)
        return PauseMark(
            at=at, by=item.get("paused_by", {}).get("S", "unknown"), why=item.get("why", {}).get("S", "")
        )

    def save_pause(self, cluster_id: str, mark: PauseMark | None) -> None:
        try:
            if mark is None:
                self._db.delete_item(TableName=self._table, Key=self._key(cluster_id, SK_PAUSED))
                return
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key(cluster_id, SK_PAUSED),
                    "paused_at": {"S": mark.at.astimezone(UTC).isoformat()},
                    "paused_by": {"S": mark.by},
                    "why": {"S": mark.why},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "DeleteItem(paused)" if mark is None else "PutItem(paused)") from exc

    def record_capacity_error(self, cluster_id: str, group_id: str, at: datetime) -> bool:
        """ports.CapacityErrorRecorder: capacity_errors[group_id] = `at` (a later time already recorded is
        kept) in the persisted state; nothing else changes and no audit item is written.

        Called under the cluster's lease. The write is still conditional on the state read (optimistic
        concurrency): if another writer got in between, it re-reads and tries again."""
        key = self._key(cluster_id, SK_STATE)
        for _ in range(3):
            try:
                resp = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "GetItem(state)") from exc
            old_text = (resp.get("Item") or {}).get("state", {}).get("S")
            state = ScalerState() if old_text is None else _decode_state(cluster_id, old_text)
            seen = state.capacity_errors.get(group_id)
            at_utc = at.astimezone(UTC)
            errors = {**state.capacity_errors, group_id: at_utc if seen is None else max(seen, at_utc)}
            text = json.dumps(state_to_dict(replace(state, capacity_errors=errors)), sort_keys=True)
            names_ = {"#state": "state"}
            if old_text is None:
                condition = "attribute_not_exists(#state)"
                values: dict[str, Any] = {":new": {"S": text}}
            else:
                condition = "#state = :old"
                values = {":new": {"S": text}, ":old": {"S": old_text}}
            written = _conditional(
                self._db.update_item,
                "UpdateItem(state.capacity_errors)",
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #state = :new",
                ConditionExpression=condition,
                ExpressionAttributeNames=names_,
                ExpressionAttributeValues=values,
            )
            if written:
                return seen is None
            # changed since the read: read it again
        raise TransientAwsError(
            f"state of {cluster_id} kept changing while recording a capacity error of {group_id}",
            operation="UpdateItem(state.capacity_errors)",
            code=_CONDITION_FAILED,
        )

    def audit(self, cluster_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest audit records of a cluster, newest first (decoded decisions)."""
        try:
            resp = self._db.query(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :audit)",
                ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                ExpressionAttributeValues={
                    ":pk": {"S": cluster_pk(cluster_id)},
                    ":audit": {"S": AUDIT_PREFIX},
                },
                ScanIndexForward=False,
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "Query(audit)") from exc
        return [json.loads(i["decision"]["S"]) for i in resp.get("Items", [])]

    def audit_since(self, cluster_id: str, since: datetime, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The audit records of a cluster saved at or after `since`, newest first, at most `limit` (decoded
        decisions; every page of the Query). The sort key starts with the save time in ISO 8601 UTC, so the
        range is a key condition, not a filter."""
        values = {
            ":pk": {"S": cluster_pk(cluster_id)},
            ":from": {"S": f"{AUDIT_PREFIX}{since.astimezone(UTC).isoformat()}"},
            ":to": {"S": f"{AUDIT_PREFIX}~"},  # '~' sorts after every ISO time
        }
        out: list[dict[str, Any]] = []
        try:
            pages = self._db.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk AND #sk BETWEEN :from AND :to",
                ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
            )
            for page in pages:
                for item in page.get("Items", []):
                    out.append(json.loads(item["decision"]["S"]))
                    if len(out) >= limit:
                        return out
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "Query(audit)") from exc
        return out

    # --- demand history (ports.DemandHistoryStore) ---------------------------------------------------------
    def load_demand(
        self, cluster_id: str, ranges: Sequence[tuple[datetime, datetime]]
    ) -> Mapping[datetime, float]:
        """The recorded 5-minute buckets within each range (inclusive): one Query per range over its hours."""
        out: dict[datetime, float] = {}
        for first, last in ranges:
            try:
                resp = self._db.query(
                    TableName=self._table,
                    KeyConditionExpression="#pk = :pk AND #sk BETWEEN :a AND :b",
                    ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                    ExpressionAttributeValues={
                        ":pk": {"S": cluster_pk(cluster_id)},
                        ":a": {"S": _demand_sk(first)},
                        ":b": {"S": _demand_sk(last)},
                    },
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "Query(demand)") from exc
            for item in resp.get("Items", []):
                text = item[SK]["S"][len(DEMAND_PREFIX) :]
                hour = datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
                for name, value in item.items():
                    if len(name) == 3 and name[0] == "m" and name[1:].isdigit():
                        at = hour + timedelta(minutes=int(name[1:]))
                        if first <= at <= last:
                            out[at] = float(value["N"])
        return out

    def record_demand(self, cluster_id: str, bucket: datetime, peak_gib: float, now: datetime) -> None:
        """Raise one bucket's peak (conditional: a larger peak already recorded stays); the hour item's TTL
        is its end + policy.forecast.HISTORY_KEEP_S."""
        b = bucket.astimezone(UTC)
        hour = b.replace(minute=0, second=0, microsecond=0)
        attr = f"m{b.minute:02d}"
        # False: a larger peak is already there
        _conditional(
            self._db.update_item,
            "UpdateItem(demand)",
            TableName=self._table,
            Key=self._key(cluster_id, _demand_sk(b)),
            UpdateExpression="SET #m = :v, #exp = :exp",
            ConditionExpression="attribute_not_exists(#m) OR #m < :v",
            ExpressionAttributeNames={"#m": attr, "#exp": TTL},
            ExpressionAttributeValues={
                ":v": {"N": repr(round(float(peak_gib), 3))},
                ":exp": {"N": str(_epoch(hour) + 3600 + HISTORY_KEEP_S)},
            },
        )

    # --- node report (ports.NodeReportSource) --------------------------------------------------------------
    def load_node_report(self, cluster_id: str) -> NodeReport | None:
        """The agent's latest node report of the cluster, or None (none, or unreadable: logged)."""
        key = {PK: {"S": names.NODE_REPORT_PK_PREFIX + cluster_id}, SK: {"S": names.NODE_REPORT_SK}}
        try:
            resp = self._db.get_item(TableName=self._table, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetItem(nodes)") from exc
        item = resp.get("Item")
        if not item:
            return None
        try:
            return decode_node_report(item)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node report of %s is unreadable (%s): EMR chooses the nodes", cluster_id, exc)
            return None

    # --- notice ledger --------------------------------------------------------------------------------------
    def _claim_item(self, cluster_id: str, key: str, now: datetime, ttl_s: int | None) -> dict[str, Any]:
        """The notice-ledger item of `key` (no expiry when ttl_s is None): `claim`, and `record_intent`'s
        transaction for the spot event an intent carries."""
        item: dict[str, Any] = {
            **self._key(cluster_id, NOTICE_PREFIX + key),
            "claimed_at": {"S": now.astimezone(UTC).isoformat()},
        }
        if ttl_s is not None:
            item[TTL] = {"N": str(_epoch(now) + int(ttl_s))}
        return item

    def claim(self, cluster_id: str, key: str, now: datetime, ttl_s: int | None) -> bool:
        return _conditional(
            self._db.put_item,
            "PutItem(notice)",
            TableName=self._table,
            Item=self._claim_item(cluster_id, key, now, ttl_s),
            ConditionExpression="attribute_not_exists(#pk) OR #exp <= :now",
            ExpressionAttributeNames={"#pk": PK, "#exp": TTL},
            ExpressionAttributeValues={":now": {"N": str(_epoch(now))}},
        )

    def claimed_at(self, cluster_id: str, key: str, now: datetime) -> datetime | None:
        try:
            resp = self._db.get_item(
                TableName=self._table, Key=self._key(cluster_id, NOTICE_PREFIX + key), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetItem(notice)") from exc
        item = resp.get("Item")
        if not item:
            return None
        exp = item.get(TTL, {}).get("N")
        if exp is not None and int(float(exp)) <= _epoch(now):
            return None
        try:
            return datetime.fromisoformat(item["claimed_at"]["S"])
        except (KeyError, ValueError):
            return now
