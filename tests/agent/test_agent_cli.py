"""`sparkscale heap-agent` as a real process: UDP in, boto3 over HTTP to a moto server out, SIGTERM stops."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sparkscale import names
from sparkscale.agent import cli as agent_cli
from sparkscale.agent.aggregate import HeapSnapshot
from sparkscale.agent.publish import AwsCliSink, PublishError, metric_data
from sparkscale.clock import utcnow
from sparkscale_tools.cli import main as sparkscale_main

from tests.agent.conftest import LineReader, agent_env, cloudwatch, free_udp_port, spark_lines


def test_agent_process_publishes_real_spark_lines_to_cloudwatch_and_stops_on_sigterm(moto_url):
    port = free_udp_port()
    cmd = [sys.executable, "-m", "sparkscale_tools.cli", "heap-agent", "--port", str(port)]
    cmd += ["--cluster-id", "j-CLITEST", "--interval-s", "1", "--spark-period-s", "10"]
    proc = subprocess.Popen(
        cmd, env=agent_env(moto_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = LineReader(proc)
    try:
        out.wait_for(lambda line: line.startswith("start cluster=j-CLITEST"), 20)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for line in spark_lines():
                tx.sendto(line, ("127.0.0.1", port))
            tx.sendto(b"\xff\xfe not utf-8", ("127.0.0.1", port))
            tx.sendto(b"app.1.jvm.heap.used:NaN|g", ("127.0.0.1", port))
        published = out.wait_for(lambda line: line.startswith("publish ok executors=2 "), 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.rest()[-1].startswith("stopped sent_batches=")
    assert "used_bytes=107212552 max_bytes=1073741824 " in published
    assert "drivers=1 driver_used_bytes=70550784 " in published
    assert " non_utf8=1 " in published
    assert " invalid=1 " in published

    cw = cloudwatch(moto_url)
    metrics = cw.list_metrics(Namespace=names.HEAP_NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in metrics} == {
        names.HEAP_EXECUTOR_USED_BYTES,
        names.HEAP_EXECUTOR_MAX_BYTES,
        names.HEAP_EXECUTOR_USED_PCT,
        names.HEAP_EXECUTOR_MAX_JVM_USED_PCT,
        names.HEAP_JVM_COUNT,
        names.HEAP_DRIVER_USED_BYTES,
        names.HEAP_DRIVER_MAX_BYTES,
        names.HEAP_DRIVER_USED_PCT,
    }
    assert all(m["Dimensions"] == [{"Name": "JobFlowId", "Value": "j-CLITEST"}] for m in metrics)
    now = utcnow()
    stats = cw.get_metric_statistics(
        Namespace=names.HEAP_NAMESPACE,
        MetricName=names.HEAP_JVM_COUNT,
        Dimensions=[{"Name": "JobFlowId", "Value": "j-CLITEST"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    assert max(p["Maximum"] for p in stats["Datapoints"]) == 2


def test_cluster_id_defaults_to_job_flow_json(tmp_path):
    path = tmp_path / "job-flow.json"
    path.write_text('{"jobFlowId": "j-FROMFILE", "jobFlowCreationInstant": 1}')
    assert agent_cli.read_cluster_id(str(path)) == "j-FROMFILE"
    path.write_text("not json")
    with pytest.raises(agent_cli.UsageError, match="cannot read jobFlowId"):
        agent_cli.read_cluster_id(str(path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster-id", "cluster-1"], "is not an EMR cluster id"),
        (["--cluster-id", "j-OK", "--port", "70000"], "is not a UDP port"),
        (["--cluster-id", "j-OK", "--interval-s", "0"], "--interval-s must be positive"),
        (["--cluster-id", "j-OK", "--max-pending-batches", "-1"], "--max-pending-batches must be positive"),
        (["--job-flow-json", "/nonexistent/job-flow.json"], "cannot read jobFlowId"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(aws_env, capsys, argv, message):
    assert sparkscale_main(["heap-agent", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_no_region_exits_2(monkeypatch, capsys):
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    assert sparkscale_main(["heap-agent", "--cluster-id", "j-OK"]) == 2
    assert "no region" in capsys.readouterr().err


def test_a_taken_port_exits_1(aws_env, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert sparkscale_main(["heap-agent", "--cluster-id", "j-OK", "--port", str(port)]) == 1
    assert "cannot listen on udp" in capsys.readouterr().err


def _real_aws_cli() -> str | None:
    """An AWS CLI installed on this machine, if any (the tests' fakes are never on this PATH)."""
    return shutil.which("aws") or shutil.which("aws", path=str(Path(sys.base_prefix) / "bin"))


@pytest.mark.skipif(_real_aws_cli() is None, reason="no AWS CLI on this machine")
def test_cli_sink_publishes_through_a_real_aws_cli_to_moto(moto_url, monkeypatch):
    """The no-boto3 path with the real `aws cloudwatch put-metric-data` (its request, its error output)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # and --endpoint-url: CLI v1 ignores the variable
    aws = _real_aws_cli()
    assert aws is not None
    sink = AwsCliSink(aws=aws, region="us-east-1", endpoint_url=moto_url)
    snap = HeapSnapshot(2, 300.0, 1000.0, 30.0, 40.0, 1, 10.0, 100.0, 10.0)
    sink.put(names.HEAP_NAMESPACE, metric_data(snap, cluster_id="j-REALCLI", timestamp=utcnow().timestamp()))
    metrics = cloudwatch(moto_url).list_metrics(Namespace=names.HEAP_NAMESPACE)["Metrics"]
    assert len(metrics) == 8
    assert {m["Dimensions"][0]["Value"] for m in metrics} == {"j-REALCLI"}
    bad = [dict(metric_data(snap, cluster_id="j-REALCLI", timestamp=0.0)[0], Value="x")]
    with pytest.raises(PublishError) as caught:
        sink.put(names.HEAP_NAMESPACE, bad)
    assert not caught.value.retryable
