"""The node report: which YARN nodes run what, written to the state table for the scaler (master only).

Every `period_s` (30 s by default) the master-node agent reads the ResourceManager's
`GET <rm>/ws/v1/cluster/nodes` (per node: nodeHostName, state, numContainers, usedMemoryMB) and
`GET <rm>/ws/v1/cluster/apps?states=RUNNING` (per running application: amHostHttpAddress, the NodeManager
web address `host:port` of its application master), and puts ONE item per cluster in the state table:

    pk "nodes#<cluster id>", sk "nodes", collected_at (N, epoch s), report (S, JSON), expires_at (N, TTL)
    report = {"nodes": [{"host", "state", "containers", "used_mb"}, ...], "am_hosts": [host, ...]}

The partition key is the report's own (not "cluster#<id>", which holds the scaler's lease and state): the
EMR instance role's policy allows PutItem only where `dynamodb:LeadingKeys` is "nodes#<managed cluster id>",
and LeadingKeys sees only the partition key. The scaler (adapters/dynamodb.py `load_node_report`) uses a
report only while it is younger than node_report_max_age_s; the TTL (an hour) removes the item of a cluster
that is gone. Cost: one PutItem of ~100 bytes per node every 30 s, about 86,400 write units a month for a
20-node cluster (~$0.11 on demand, us-east-1).

Robustness as in yarn.py: every request has a timeout and a size limit, a bad body is one counted error and no
write (the previous report then ages out), and nothing here raises into the loop. Writes go through boto3
when the node's Python has it, else `aws dynamodb put-item`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import TYPE_CHECKING, Any

from sparkscale import names

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

NODES_PATH = "/ws/v1/cluster/nodes"
RUNNING_APPS_PATH = "/ws/v1/cluster/apps?states=RUNNING"
DEFAULT_PERIOD_S = 30.0
REPORT_TTL_S = 3600  # the item outlives its usefulness (node_report_max_age_s) by far; TTL cleans up
MAX_NODES = 2000  # ~100 bytes each: well under DynamoDB's 400 KB item limit
MAX_BYTES = 8 * 1024 * 1024  # a nodes body is ~700 bytes per node; apps ~1.5 KB per running application


class ReportError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def _items(body: bytes, outer: str, inner: str) -> list[Any]:
    """`{"nodes": {"node": [...]}}` -> the list; `{"nodes": null}` and `{"nodes": {}}` (nothing) -> []."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError("not_json", f"{type(exc).__name__}: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or outer not in doc:
        raise ReportError("bad_shape", f"no {outer} object")
    wrapper = doc[outer]
    if wrapper is None or wrapper == {}:
        return []
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get(inner), list):
        raise ReportError("bad_shape", f"{outer}.{inner} is not a list")
    return list(wrapper[inner])


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError("bad_value", f"{key}={value!r} is not a non-negative integer")
    return value


def parse_nodes(body: bytes) -> list[dict[str, Any]]:
    """A /ws/v1/cluster/nodes body -> [{"host", "state", "containers", "used_mb"}], in the RM's order."""
    out = []
    for node in _items(body, "nodes", "node"):
        if not isinstance(node, dict):
            raise ReportError("bad_shape", "a node is not an object")
        host, state = node.get("nodeHostName"), node.get("state")
        if not isinstance(host, str) or not host or not isinstance(state, str):
            raise ReportError("bad_shape", "a node without nodeHostName or state")
        out.append(
            {
                "host": host,
                "state": state,
                "containers": _count(node.get("numContainers", 0), "numContainers"),
                "used_mb": _count(node.get("usedMemoryMB", 0), "usedMemoryMB"),
            }
        )
    return out


def parse_am_hosts(body: bytes) -> list[str]:
    """A /ws/v1/cluster/apps body -> the sorted hosts of the applications' masters (amHostHttpAddress without
    its port). An application without one (not yet given an AM container) is skipped."""
    hosts = set()
    for app in _items(body, "apps", "app"):
        if not isinstance(app, dict):
            raise ReportError("bad_shape", "an app is not an object")
        address = app.get("amHostHttpAddress")
        if isinstance(address, str) and address:
            hosts.add(address.rsplit(":", 1)[0] if ":" in address else address)
    return sorted(hosts)


def report_item(
    *, cluster_id: str, nodes: list[dict[str, Any]], am_hosts: list[str], collected_at: float
) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) of one report."""
    report = json.dumps({"nodes": nodes[:MAX_NODES], "am_hosts": am_hosts}, sort_keys=True)
    return {
        names.TABLE_PK: {"S": names.NODE_REPORT_PK_PREFIX + cluster_id},
        names.TABLE_SK: {"S": names.NODE_REPORT_SK},
        "collected_at": {"N": str(int(collected_at))},
        "report": {"S": report},
        names.TABLE_TTL_ATTR: {"N": str(int(collected_at) + REPORT_TTL_S)},
    }


class Boto3ItemSink:
    name = "boto3"

    def __init__(self, client: Any) -> None:
        self._client = client

    def put(self, table: str, item: dict[str, Any]) -> None:
        self._client.put_item(TableName=table, Item=item)


def make_boto3_item_sink(*, region: str, endpoint_url: str | None) -> Boto3ItemSink:
    """Raises ImportError when the node's Python has no boto3."""
    import boto3  # noqa: PLC0415 - optional on EMR nodes
    from botocore.config import Config  # noqa: PLC0415

    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
    return Boto3ItemSink(
        boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url, config=config)
    )


class AwsCliItemSink:
    """`aws dynamodb put-item` (for nodes whose Python has no boto3)."""

    name = "aws-cli"

    def __init__(
        self,
        *,
        aws: str,
        region: str,
        endpoint_url: str | None,
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    ) -> None:
        self._aws = aws
        self._region = region
        self._endpoint_url = endpoint_url
        self._run = run

    def put(self, table: str, item: dict[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", prefix="node-report-", suffix=".json") as handle:
            json.dump(item, handle)
            handle.flush()
            cmd = [
                self._aws,
                "dynamodb",
                "put-item",
                "--table-name",
                table,
                "--item",
                "file://" + handle.name,
            ]
            cmd += ["--region", self._region]
            if self._endpoint_url:
                cmd += ["--endpoint-url", self._endpoint_url]
            done = self._run(
                cmd,
                env=dict(os.environ, AWS_PAGER=""),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                universal_newlines=True,
                timeout=30,
                check=False,
            )
        if done.returncode != 0:
            lines = (done.stderr or "").strip().splitlines()
            raise RuntimeError(f"aws cli exit {done.returncode}: {lines[-1][:300] if lines else ''}")


def resolve_dynamodb_endpoint(environ: Any) -> str | None:
    return environ.get("AWS_ENDPOINT_URL_DYNAMODB") or environ.get("AWS_ENDPOINT_URL") or None


class NodeReporter:
    """Reads the RM's nodes and running apps and writes the report, at most once per `period_s`.
    `maybe_report` never raises: failures are counted and logged."""

    def __init__(
        self,
        *,
        get: Callable[[str], bytes],
        sink: Any,
        table: str,
        cluster_id: str,
        log: Callable[[str], None],
        period_s: float = DEFAULT_PERIOD_S,
    ) -> None:
        self.get = get
        self.sink = sink
        self.table = table
        self.cluster_id = cluster_id
        self.log = log
        self.period_s = period_s
        self.last_report_at: float | None = None
        self.reports = 0
        self.failures = 0

    def due(self, now_wall: float) -> bool:
        last = self.last_report_at
        return last is None or now_wall - last >= self.period_s or now_wall < last

    def maybe_report(self, now_wall: float) -> None:
        if not self.due(now_wall):
            return
        self.last_report_at = now_wall
        try:
            nodes = parse_nodes(self.get(NODES_PATH))
            am_hosts = parse_am_hosts(self.get(RUNNING_APPS_PATH))
            item = report_item(
                cluster_id=self.cluster_id, nodes=nodes, am_hosts=am_hosts, collected_at=now_wall
            )
            self.sink.put(self.table, item)
        except Exception as exc:  # an RM or DynamoDB failure costs one report, never the agent
            self.failures += 1
            self.log(
                f"nodes-report state=failed reports={self.reports} failures={self.failures} error={exc!r}"
            )
            return
        self.reports += 1
        self.log(
            f"nodes-report state=ok nodes={len(nodes)} am_hosts={len(am_hosts)} "
            f"reports={self.reports} failures={self.failures}"
        )
