"""Discovery's AWS side (usecases/discovery.py): which clusters exist and their tags (EMR ListClusters,
DescribeCluster), the alarms it creates and deletes (CloudWatch PutMetricAlarm, DeleteAlarms, DescribeAlarms),
and the registry of clusters managed by tag (items in the state table).

CloudWatch allows about 3 PutMetricAlarm / DeleteAlarms calls per second: `CloudWatchAlarmWriter` paces its
calls to `rate_per_s` and, when CloudWatch throttles anyway (after botocore's own retries), waits with an
exponential backoff and tries again. DeleteAlarms takes at most 100 names per call.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale import names
from sparkscale.adapters.aws_errors import translate
from sparkscale.alarms import AlarmSpec
from sparkscale.errors import Throttled
from sparkscale.ports import ClusterInfo, Registration

log = logging.getLogger(__name__)

DELETE_BATCH: Final = 100  # DeleteAlarms: "You can specify up to 100 alarms in one operation"
ALARM_WRITE_RATE_PER_S: Final = 3.0  # PutMetricAlarm and DeleteAlarms: 3 transactions per second
_MAX_PAGES: Final = 200
_NOT_FOUND: Final = frozenset({"ResourceNotFoundException", "ClusterNotFound"})


class EmrClusterDirectory:
    """ports.ClusterDirectory over ListClusters (active states, every page) and DescribeCluster."""

    def __init__(self, emr: Any) -> None:
        self._emr = emr

    def active_clusters(self) -> list[str]:
        out: list[str] = []
        try:
            pages = self._emr.get_paginator("list_clusters").paginate(
                ClusterStates=list(names.EMR_ACTIVE_STATES)
            )
            for n, page in enumerate(pages):
                if n >= _MAX_PAGES:
                    log.warning("ListClusters: stopped after %d pages", n)
                    break
                out += [str(c["Id"]) for c in page.get("Clusters", []) if c.get("Id")]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ListClusters") from exc
        return out

    def describe(self, cluster_id: str) -> ClusterInfo | None:
        try:
            raw = self._emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in _NOT_FOUND or "not valid" in str(error.get("Message", "")).lower():
                return None
            raise translate(exc, "DescribeCluster") from exc
        except BotoCoreError as exc:
            raise translate(exc, "DescribeCluster") from exc
        tags = {str(t.get("Key", "")): str(t.get("Value", "")) for t in raw.get("Tags", []) or []}
        return ClusterInfo(
            cluster_id=str(raw.get("Id", cluster_id)),
            name=str(raw.get("Name", "")),
            state=str((raw.get("Status") or {}).get("State", "")),
            tags=tags,
        )


def put_alarm_request(spec: AlarmSpec, actions: Sequence[str], people: Sequence[str] = ()) -> dict[str, Any]:
    """PutMetricAlarm's parameters for one spec: the same alarm the stack's ClusterAlarms synthesizes (ALARM
    to `actions` and, for an alarm meant for people, to `people`; OK to `actions` only)."""
    dims = [{"Name": n, "Value": v} for n, v in spec.dimensions]
    req: dict[str, Any] = {
        "AlarmName": spec.name,
        "AlarmDescription": spec.description,
        "ComparisonOperator": spec.comparison,
        "Threshold": spec.threshold,
        "EvaluationPeriods": spec.evaluation_periods,
        "DatapointsToAlarm": spec.datapoints_to_alarm,
        "TreatMissingData": spec.treat_missing_data,
        "ActionsEnabled": True,
        "AlarmActions": [*actions, *people],
        "OKActions": list(actions),
    }
    if not spec.is_math:
        req.update(
            Namespace=spec.namespace,
            MetricName=spec.metric_name,
            Statistic=spec.statistic,
            Period=spec.period_s,
            Dimensions=dims,
        )
        return req
    queries: list[dict[str, Any]] = [
        {"Id": spec.expression_id, "Expression": spec.expression, "Label": spec.kind, "ReturnData": True}
    ]
    for m in spec.metrics:
        metric = {"Namespace": spec.namespace, "MetricName": m.metric_name, "Dimensions": dims}
        queries.append(
            {
                "Id": m.id,
                "MetricStat": {"Metric": metric, "Period": spec.period_s, "Stat": m.statistic},
                "ReturnData": False,
            }
        )
    req["Metrics"] = queries
    return req


class CloudWatchAlarmWriter:
    """ports.AlarmWriter. Every ALARM/OK of a created alarm goes to `alarm_topic_arn`; the ALARM of one marked
    `to_operators` also to `operator_alarm_topic_arn` (as the stack's alarms)."""

    def __init__(
        self,
        cloudwatch: Any,
        *,
        alarm_topic_arn: str,
        operator_alarm_topic_arn: str,
        rate_per_s: float = ALARM_WRITE_RATE_PER_S,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cw = cloudwatch
        self._alarm_topic = alarm_topic_arn
        self._people = operator_alarm_topic_arn
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._attempts = max(1, attempts)
        self._sleep, self._monotonic = sleep, monotonic
        self._last: float | None = None
        self.calls = 0  # write calls made (tests, logs)

    def put_alarms(self, specs: Sequence[AlarmSpec]) -> None:
        for spec in specs:
            people = [self._people] if spec.to_operators and self._people else []
            request = put_alarm_request(spec, [a for a in [self._alarm_topic] if a], people)
            self._write("PutMetricAlarm", self._cw.put_metric_alarm, request)

    def delete_alarms(self, alarm_names: Sequence[str]) -> None:
        todo = list(dict.fromkeys(alarm_names))
        for i in range(0, len(todo), DELETE_BATCH):
            batch = todo[i : i + DELETE_BATCH]
            self._write("DeleteAlarms", self._cw.delete_alarms, {"AlarmNames": batch})

    def alarm_names(self, prefix: str) -> list[str]:
        out: list[str] = []
        try:
            pages = self._cw.get_paginator("describe_alarms").paginate(
                AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"]
            )
            for page in pages:
                out += [str(a["AlarmName"]) for a in page.get("MetricAlarms", []) if a.get("AlarmName")]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "DescribeAlarms") from exc
        return [n for n in out if n.startswith(prefix)]

    def _write(self, operation: str, call: Callable[..., Any], request: Mapping[str, Any]) -> None:
        """One write call, paced to the rate; throttled -> backoff (0.5, 1, 2, 4 s) and again."""
        for attempt in range(self._attempts):
            self._pace()
            try:
                self.calls += 1
                call(**request)
                return
            except (ClientError, BotoCoreError) as exc:
                error = translate(exc, operation)
                if not isinstance(error, Throttled) or attempt == self._attempts - 1:
                    raise error from exc
                wait = 0.5 * 2**attempt
                log.warning("%s throttled: trying again in %.1f s", operation, wait)
                self._sleep(wait)

    def _pace(self) -> None:
        now = self._monotonic()
        if self._last is not None and now - self._last < self._interval:
            self._sleep(self._interval - (now - self._last))
            now = self._monotonic()
        self._last = now


class DynamoClusterRegistry:
    """ports.ClusterRegistry: one item per cluster managed by tag, pk names.REGISTRY_PK, sk "cluster#<id>",
    in the state table (a released item carries the table's TTL attribute)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self._table = table_name

    def registrations(self, now: datetime) -> dict[str, Registration]:
        out: dict[str, Registration] = {}
        for item in self._items():
            exp = item.get(names.TABLE_TTL_ATTR, {}).get("N")
            if exp is not None and int(float(exp)) <= int(now.timestamp()):
                continue  # DynamoDB deletes expired items only eventually
            try:
                reg = registration_from_json(item["registration"]["S"])
            except (KeyError, ValueError, TypeError) as exc:
                log.error("unreadable registry item %s: %s", item.get(names.TABLE_SK), exc)
                continue
            out[reg.cluster_id] = reg
        return out

    def register(self, registration: Registration, *, expires_at: datetime | None = None) -> None:
        item: dict[str, Any] = {
            names.TABLE_PK: {"S": names.REGISTRY_PK},
            names.TABLE_SK: {"S": f"cluster#{registration.cluster_id}"},
            "registration": {"S": registration_to_json(registration)},
            "active": {"BOOL": registration.active},
        }
        if expires_at is not None:
            item[names.TABLE_TTL_ATTR] = {"N": str(int(expires_at.timestamp()))}
        try:
            self._db.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "PutItem(registry)") from exc

    def _items(self) -> Iterator[Mapping[str, Any]]:
        try:
            pages = self._db.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": names.TABLE_PK},
                ExpressionAttributeValues={":pk": {"S": names.REGISTRY_PK}},
                ConsistentRead=True,
            )
            for page in pages:
                yield from page.get("Items", [])
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "Query(registry)") from exc


def registration_to_json(r: Registration) -> str:
    return json.dumps(
        {
            "cluster_id": r.cluster_id,
            "name": r.name,
            "profile": r.profile,
            "paused": r.paused,
            "since": r.since.astimezone(UTC).isoformat(),
            "alarms": list(r.alarms),
            "released_at": None if r.released_at is None else r.released_at.astimezone(UTC).isoformat(),
            "why": r.why,
            **({"streams": list(r.streams)} if r.streams else {}),
        },
        sort_keys=True,
    )


def registration_from_json(text: str) -> Registration:
    d = json.loads(text)
    released = d.get("released_at")
    return Registration(
        cluster_id=str(d["cluster_id"]),
        name=str(d.get("name", "")),
        profile=str(d.get("profile", "")),
        paused=bool(d.get("paused", False)),
        since=datetime.fromisoformat(d["since"]),
        alarms=tuple(str(a) for a in d.get("alarms", [])),
        released_at=None if released is None else datetime.fromisoformat(released),
        why=str(d.get("why", "")),
        streams=tuple(str(x) for x in d.get("streams", []) if isinstance(x, str)),
    )
