"""The node report (agent/nodes.py): parsing the RM's real /ws/v1/cluster/nodes and /ws/v1/cluster/apps
bodies, a fake RM over HTTP on 127.0.0.1 and DynamoDB on a moto server, read back by the scaler's adapter,
and the agent process with --state-table."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
from sparkscale import names
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.agent import cli as agent_cli
from sparkscale.agent.nodes import (
    NODES_PATH,
    RUNNING_APPS_PATH,
    AwsCliItemSink,
    NodeReporter,
    ReportError,
    make_boto3_item_sink,
    parse_am_hosts,
    parse_nodes,
    report_item,
)
from sparkscale.agent.yarn import CLUSTER_METRICS_PATH, YarnCollector
from sparkscale.policy.node_choice import NodeReport, YarnNode

from tests.agent.conftest import LineReader, agent_env, free_udp_port
from tests.agent.test_agent_yarn import FIXTURES, WITH_PENDING, FakeRM

NODES_DOCS = (FIXTURES / "cluster-nodes-hadoop-docs.json").read_bytes()
APPS_DOCS = (FIXTURES / "cluster-apps-hadoop-docs.json").read_bytes()
T0 = 1_789_998_840.0
TABLE = "sparkscale-state"


def _nodes_body(*nodes: tuple[str, str, int, int]) -> bytes:
    """The docs' node object, with host, state, numContainers and usedMemoryMB replaced."""
    template = json.loads(NODES_DOCS)["nodes"]["node"][0]
    out = []
    for host, state, containers, used in nodes:
        node = dict(template, nodeHostName=host, state=state, numContainers=containers, usedMemoryMB=used)
        node["id"] = f"{host}:8041"
        out.append(node)
    return json.dumps({"nodes": {"node": out}}).encode()


def _apps_body(*am_addresses: str) -> bytes:
    template = json.loads(APPS_DOCS)["apps"]["app"][1]
    apps = [dict(template, state="RUNNING", amHostHttpAddress=a) for a in am_addresses]
    return json.dumps({"apps": {"app": apps}}).encode()


# --- parsing ------------------------------------------------------------------------------------------------
def test_nodes_of_the_hadoop_docs():
    assert parse_nodes(NODES_DOCS) == [
        {"host": "host.domain.com", "state": "RUNNING", "containers": 0, "used_mb": 0},
        {"host": "host.domain.com", "state": "RUNNING", "containers": 0, "used_mb": 0},
    ]


def test_am_hosts_of_the_hadoop_docs_drop_the_port_and_repeat_once():
    assert parse_am_hosts(APPS_DOCS) == ["host.domain.com"]


@pytest.mark.parametrize("body", [b'{"nodes": null}', b'{"nodes": {}}'])
def test_an_empty_cluster_has_no_nodes(body):
    assert parse_nodes(body) == []


def test_no_running_app_means_no_am_host():
    assert parse_am_hosts(b'{"apps": null}') == []
    assert parse_am_hosts(_apps_body("")) == []  # accepted, no AM container yet


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<html>standby</html>", "not_json"),
        (b'{"clusterMetrics": {}}', "bad_shape"),
        (b'{"nodes": {"node": {"state": "RUNNING"}}}', "bad_shape"),
        (b'{"nodes": {"node": [{"state": "RUNNING"}]}}', "bad_shape"),
        (_nodes_body(("h", "RUNNING", -1, 0)), "bad_value"),
        (
            _nodes_body(("h", "RUNNING", 1, 0)).replace(b'"numContainers": 1', b'"numContainers": "1"'),
            "bad_value",
        ),
    ],
)
def test_a_bad_nodes_body_is_one_typed_error(body, kind):
    with pytest.raises(ReportError) as caught:
        parse_nodes(body)
    assert caught.value.kind == kind


def test_the_item_has_its_own_partition_a_ttl_and_the_report_as_json():
    item = report_item(cluster_id="j-1", nodes=[], am_hosts=["h"], collected_at=T0 + 0.7)
    assert item["pk"] == {"S": "nodes#j-1"}
    assert item["sk"] == {"S": "nodes"}
    assert item["collected_at"] == {"N": str(int(T0))}
    assert item["expires_at"] == {"N": str(int(T0) + 3600)}
    assert json.loads(item["report"]["S"]) == {"am_hosts": ["h"], "nodes": []}


# --- a fake RM over HTTP and DynamoDB on moto, read back by the scaler's adapter ----------------------------
@pytest.fixture
def rm():
    server = FakeRM()
    yield server
    server.close()


def _table(moto_url: str):
    db = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    db.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return db


def test_the_report_goes_from_the_rm_to_dynamodb_and_back_to_the_scaler(rm, moto_url):
    rm.serve(
        NODES_PATH,
        _nodes_body(
            ("ip-10-0-0-1.ec2.internal", "RUNNING", 3, 6144),
            ("ip-10-0-0-2.ec2.internal", "RUNNING", 0, 0),
            ("ip-10-0-0-3.ec2.internal", "DECOMMISSIONING", 1, 2048),
        ),
    )
    rm.serve(RUNNING_APPS_PATH, _apps_body("ip-10-0-0-1.ec2.internal:8042", "ip-10-0-0-1.ec2.internal:8042"))
    db = _table(moto_url)
    lines: list[str] = []
    reporter = NodeReporter(
        get=YarnCollector(rm.url).get,
        sink=make_boto3_item_sink(region="us-east-1", endpoint_url=moto_url),
        table=TABLE,
        cluster_id="j-NODES",
        log=lines.append,
        period_s=30,
    )
    reporter.maybe_report(T0)
    reporter.maybe_report(T0 + 10)  # not due: no second read
    assert rm.requests == [NODES_PATH, RUNNING_APPS_PATH]
    assert lines == ["nodes-report state=ok nodes=3 am_hosts=1 reports=1 failures=0"]

    report = DynamoStateStore(db, TABLE).load_node_report("j-NODES")
    assert report == NodeReport(
        datetime.fromtimestamp(T0, tz=UTC),
        (
            YarnNode("ip-10-0-0-1.ec2.internal", "RUNNING", 3, 6144.0),
            YarnNode("ip-10-0-0-2.ec2.internal", "RUNNING", 0, 0.0),
            YarnNode("ip-10-0-0-3.ec2.internal", "DECOMMISSIONING", 1, 2048.0),
        ),
        frozenset({"ip-10-0-0-1.ec2.internal"}),
    )
    assert DynamoStateStore(db, TABLE).load_node_report("j-OTHER") is None


def test_a_broken_rm_writes_nothing_and_the_reporter_goes_on(rm, moto_url):
    rm.serve(NODES_PATH, b"<html>oops</html>")
    db = _table(moto_url)
    lines: list[str] = []
    reporter = NodeReporter(
        get=YarnCollector(rm.url, timeout_s=0.5).get,
        sink=make_boto3_item_sink(region="us-east-1", endpoint_url=moto_url),
        table=TABLE,
        cluster_id="j-BROKEN",
        log=lines.append,
    )
    reporter.maybe_report(T0)
    assert reporter.failures == 1
    assert "not_json" in lines[0]
    assert DynamoStateStore(db, TABLE).load_node_report("j-BROKEN") is None


def test_a_malformed_item_is_no_report(moto_url):
    db = _table(moto_url)
    item = report_item(cluster_id="j-BAD", nodes=[], am_hosts=[], collected_at=T0)
    item["report"] = {"S": '{"nodes": [{"host": "h"}]}'}
    db.put_item(TableName=TABLE, Item=item)
    assert DynamoStateStore(db, TABLE).load_node_report("j-BAD") is None


def test_the_aws_cli_sink_runs_put_item_with_the_item_in_a_file():
    seen = {}

    def run(cmd, **kwargs):
        seen["cmd"] = cmd
        with open(cmd[cmd.index("--item") + 1].removeprefix("file://")) as handle:
            seen["item"] = json.load(handle)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    item = report_item(cluster_id="j-1", nodes=[], am_hosts=[], collected_at=T0)
    AwsCliItemSink(aws="aws", region="eu-west-1", endpoint_url=None, run=run).put(TABLE, item)
    assert seen["cmd"][:5] == ["aws", "dynamodb", "put-item", "--table-name", TABLE]
    assert seen["item"] == item


# --- the agent process --------------------------------------------------------------------------------------
def test_state_table_needs_the_yarn_collector(aws_env, capsys):
    assert agent_cli.main(["--cluster-id", "j-OK", "--state-table", TABLE]) == 2
    assert "--state-table needs --yarn-rm-url" in capsys.readouterr().err


def test_agent_process_writes_the_node_report(moto_url, rm):
    rm.serve(CLUSTER_METRICS_PATH, WITH_PENDING)
    rm.serve(NODES_PATH, _nodes_body(("ip-10-0-0-7.ec2.internal", "RUNNING", 2, 4096)))
    rm.serve(RUNNING_APPS_PATH, _apps_body("ip-10-0-0-7.ec2.internal:8042"))
    db = _table(moto_url)
    cmd = [
        sys.executable,
        "-m",
        "sparkscale.agent",
        "--port",
        str(free_udp_port()),
        "--cluster-id",
        "j-AGENT",
    ]
    cmd += ["--yarn-rm-url", rm.url, "--yarn-poll-s", "0.5", "--yarn-period-s", "1", "--state-table", TABLE]
    cmd += ["--node-report-period-s", "0.5"]
    proc = subprocess.Popen(
        cmd, env=agent_env(moto_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = LineReader(proc)
    try:
        assert f"node_report={TABLE}" in out.wait_for(lambda s: s.startswith("start "), 20)
        out.wait_for(lambda s: s.startswith("nodes-report state=ok nodes=1 am_hosts=1"), 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    report = DynamoStateStore(db, TABLE).load_node_report("j-AGENT")
    assert report is not None
    assert report.am_hosts == {"ip-10-0-0-7.ec2.internal"}
    assert report.nodes == (YarnNode("ip-10-0-0-7.ec2.internal", "RUNNING", 2, 4096.0),)
    assert names.NODE_REPORT_PK_PREFIX == "nodes#"
