"""The bootstrap action in a sandbox root (fake /mnt/var/lib/info, fake `aws` and `systemctl` on PATH), the
Spark metrics configuration it writes, and the zipapp it installs, run with no site-packages (no boto3)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sparkscale.agent.bundle import MAIN, agent_sources, build_agent_pyz, build_bootstrap_dir
from sparkscale.emr_setup import SPARK_STREAMING_METRICS

from tests.agent.conftest import REPO, LineReader, free_udp_port, spark_lines

SCRIPT = REPO / "bootstrap" / "install-heap-agent.sh"
SPARK_METRICS_JSON = REPO / "bootstrap" / "spark-metrics.json"
UNIT = "etc/systemd/system/sparkscale-heap-agent.service"

FAKE_AWS = """#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["s3", "cp"]:
    plain, skip = [], False
    for arg in args[2:]:
        if skip:
            skip = False
        elif arg == "--region":
            skip = True
        elif not arg.startswith("--"):
            plain.append(arg)
    src, dst = plain
    path = os.path.join(os.environ["FAKE_S3"], src[len("s3://"):])
    if not os.path.isfile(path):
        sys.exit("fatal error: An error occurred (404) when calling the HeadObject operation: Not Found")
    shutil.copyfile(path, dst)
elif args[:2] == ["cloudwatch", "put-metric-data"]:
    data = args[args.index("--metric-data") + 1][len("file://"):]
    out = os.environ["FAKE_CW_DIR"]
    shutil.copyfile(data, os.path.join(out, "%03d.json" % len(os.listdir(out))))
else:
    sys.exit("fake aws: unexpected " + " ".join(args))
"""
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$FAKE_SYSTEMCTL_LOG"
"""


class Sandbox:
    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.bin = base / "bin"
        self.s3 = base / "s3"
        self.cw = base / "cw"
        for d in (self.root / "mnt/var/lib/info", self.bin, self.s3 / "assets-bucket", self.cw):
            d.mkdir(parents=True)
        (self.root / "mnt/var/lib/info/job-flow.json").write_text(
            json.dumps({"jobFlowId": "j-2AXXXXXXGAPLF", "jobFlowCreationInstant": 1700000000000})
        )
        self.aws_log = base / "aws.log"
        self.systemctl_log = base / "systemctl.log"
        (self.bin / "aws").write_text(FAKE_AWS.format(python=sys.executable))
        (self.bin / "systemctl").write_text(FAKE_SYSTEMCTL)
        for tool in ("aws", "systemctl"):
            (self.bin / tool).chmod(0o755)
        self.asset_dir = self.s3 / "assets-bucket" / "sparkscale"
        build_bootstrap_dir(self.asset_dir)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPARKSCALE_"))}
        env.update(
            PATH=f"{self.bin}:{env['PATH']}",
            SPARKSCALE_ROOT=str(self.root),
            SPARKSCALE_PYTHON=sys.executable,
            SPARKSCALE_SPARK_CONF_WAIT_S="0",
            FAKE_AWS_LOG=str(self.aws_log),
            FAKE_SYSTEMCTL_LOG=str(self.systemctl_log),
            FAKE_S3=str(self.s3),
            FAKE_CW_DIR=str(self.cw),
        )
        env.update(extra)
        return env

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def properties(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_shellcheck_clean():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    done = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_spark_metrics_classification_is_statsd_to_loopback_with_jvm_source_on_driver_and_executor_only():
    (config,) = json.loads(SPARK_METRICS_JSON.read_text())
    assert config["Classification"] == "spark-metrics"
    props = config["Properties"]
    assert props["*.sink.statsd.host"] == "127.0.0.1"
    assert props["*.sink.statsd.port"] == "8125"
    assert (props["*.sink.statsd.period"], props["*.sink.statsd.unit"]) == ("10", "seconds")
    assert {k for k in props if k.endswith(".class")} == {
        "driver.sink.statsd.class",
        "executor.sink.statsd.class",
        "driver.source.jvm.class",
        "executor.source.jvm.class",
    }


def test_install_writes_agent_unit_and_spark_config_and_starts_the_service(sandbox):
    spark_conf = sandbox.root / "etc/spark/conf"
    spark_conf.mkdir(parents=True)
    (spark_conf / "metrics.properties").write_text(
        "*.sink.servlet.class=org.apache.spark.metrics.sink.MetricsServlet\n"
    )

    done = sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "eu-west-1")
    assert done.returncode == 0, done.stderr
    assert "cluster j-2AXXXXXXGAPLF, region eu-west-1" in done.stderr

    agent = sandbox.root / "opt/sparkscale/heap-agent.pyz"
    assert agent.read_bytes() == (sandbox.asset_dir / "heap-agent.pyz").read_bytes()
    assert oct(agent.stat().st_mode & 0o777) == "0o644"

    unit = (sandbox.root / UNIT).read_text()
    assert (
        f"ExecStart={sys.executable} /opt/sparkscale/heap-agent.pyz --port 8125 --cluster-id j-2AXXXXXXGAPLF "
        "--interval-s 60 --run-as nobody\n"
    ) in unit
    assert "Restart=on-failure\n" in unit
    assert "Environment=AWS_REGION=eu-west-1\n" in unit
    assert "WantedBy=multi-user.target" in unit
    assert sandbox.systemctl_log.read_text().splitlines() == [
        "daemon-reload",
        "enable sparkscale-heap-agent.service",
        "restart sparkscale-heap-agent.service",
    ]
    aws_calls = [json.loads(line) for line in sandbox.aws_log.read_text().splitlines()]
    assert [c[:2] for c in aws_calls] == [["s3", "cp"]]
    assert "--region" in aws_calls[0]

    # Spark's config: the same properties as the EMR classification, ours and patched into Spark's file
    expected = json.loads(SPARK_METRICS_JSON.read_text())[0]["Properties"]
    assert properties((sandbox.root / "etc/sparkscale/metrics.properties").read_text()) == expected
    patched = (spark_conf / "metrics.properties").read_text()
    assert patched.startswith("*.sink.servlet.class=org.apache.spark.metrics.sink.MetricsServlet\n")
    assert properties(patched) == {
        "*.sink.servlet.class": "org.apache.spark.metrics.sink.MetricsServlet",
        **expected,
    }

    # again (a re-run, or a node reboot running it twice): one block, same unit
    assert sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "eu-west-1").returncode == 0
    again = (spark_conf / "metrics.properties").read_text()
    assert again == patched
    assert again.count("# BEGIN sparkscale") == 1
    assert (sandbox.root / UNIT).read_text() == unit


def test_install_turns_streaming_metrics_on_in_spark_defaults_unless_told_not_to(sandbox):
    """The same property as sparkscale.emr_setup's spark-defaults classification, as a marked block kept once;
    SPARKSCALE_STREAMING_METRICS=0 leaves Spark's spark-defaults.conf as it was."""
    spark_conf = sandbox.root / "etc/spark/conf"
    spark_conf.mkdir(parents=True)
    (spark_conf / "spark-defaults.conf").write_text("spark.master yarn\n")
    for _ in range(2):  # a re-run replaces the block
        done = sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "eu-west-1")
        assert done.returncode == 0, done.stderr
    patched = (spark_conf / "spark-defaults.conf").read_text()
    assert patched.startswith("spark.master yarn\n")
    assert patched.count("# BEGIN sparkscale") == 1
    lines = [line.split() for line in patched.splitlines() if line and not line.startswith("#")]
    assert lines == [["spark.master", "yarn"], ["spark.sql.streaming.metricsEnabled", "true"]]
    assert (
        dict(lines)["spark.sql.streaming.metricsEnabled"]
        == SPARK_STREAMING_METRICS["spark.sql.streaming.metricsEnabled"]
    )
    assert "patched metrics.properties spark-defaults.conf in" in done.stderr

    (spark_conf / "spark-defaults.conf").write_text("spark.master yarn\n")
    done = sandbox.run(
        "s3://assets-bucket/sparkscale/heap-agent.pyz", "eu-west-1", SPARKSCALE_STREAMING_METRICS="0"
    )
    assert done.returncode == 0, done.stderr
    assert (spark_conf / "spark-defaults.conf").read_text() == "spark.master yarn\n"
    assert "# BEGIN sparkscale" in (spark_conf / "metrics.properties").read_text()
    bad = sandbox.run(
        "s3://assets-bucket/sparkscale/heap-agent.pyz", "eu-west-1", SPARKSCALE_STREAMING_METRICS="yes"
    )
    assert bad.returncode != 0
    assert "bad SPARKSCALE_STREAMING_METRICS" in bad.stderr


@pytest.mark.parametrize("form", ["prefix", "zip"])
def test_agent_url_may_be_a_prefix_or_the_zipped_bootstrap_folder(sandbox, form):
    if form == "prefix":
        url = "s3://assets-bucket/sparkscale/"
    else:
        with zipfile.ZipFile(sandbox.s3 / "assets-bucket" / "bootstrap.zip", "w") as archive:
            for path in sandbox.asset_dir.iterdir():
                archive.write(path, path.name)
        url = "s3://assets-bucket/bootstrap.zip"
    done = sandbox.run(url, "us-east-1")
    assert done.returncode == 0, done.stderr
    installed = (sandbox.root / "opt/sparkscale/heap-agent.pyz").read_bytes()
    assert installed == (sandbox.asset_dir / "heap-agent.pyz").read_bytes()


def test_spark_not_installed_yet_leaves_its_conf_alone(sandbox):
    done = sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1")
    assert done.returncode == 0, done.stderr
    assert (sandbox.root / "etc/sparkscale/metrics.properties").is_file()
    assert not (sandbox.root / "etc/spark").exists()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("no-job-flow", ("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1"), "cannot read"),
        ("bad-job-flow", ("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1"), "no jobFlowId"),
        ("", ("s3://assets-bucket/missing.pyz", "us-east-1"), "could not copy the agent"),
        ("", ("s3://assets-bucket/sparkscale/heap-agent.pyz", "not a region"), "bad region"),
        ("", (), "usage"),
    ],
)
def test_failures_are_loud_and_install_nothing(sandbox, setup, args, message):
    job_flow = sandbox.root / "mnt/var/lib/info/job-flow.json"
    if setup == "no-job-flow":
        job_flow.unlink()
    elif setup == "bad-job-flow":
        job_flow.write_text("{}")
    done = sandbox.run(*args)
    assert done.returncode != 0
    assert message in done.stderr
    assert not (sandbox.root / UNIT).exists()
    assert not sandbox.systemctl_log.exists()


def test_installed_agent_runs_without_site_packages_and_publishes_through_the_aws_cli(sandbox):
    """`python -S`: no site-packages, so no boto3, like a bare EMR node; the agent falls back to the CLI."""
    assert sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1").returncode == 0
    probe = subprocess.run([sys.executable, "-S", "-c", "import boto3"], capture_output=True, check=False)
    assert probe.returncode != 0  # really no boto3 under -S

    port = free_udp_port()
    agent = sandbox.root / "opt/sparkscale/heap-agent.pyz"
    job_flow = str(sandbox.root / "mnt/var/lib/info/job-flow.json")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-S",
            str(agent),
            "--port",
            str(port),
            "--interval-s",
            "1",
            "--job-flow-json",
            job_flow,
        ],
        env=sandbox.env(AWS_REGION="us-east-1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = LineReader(proc)
    try:
        out.wait_for(lambda line: "publisher=aws-cli" in line, 20)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for line in spark_lines():
                tx.sendto(line, ("127.0.0.1", port))
        out.wait_for(lambda line: line.startswith("publish ok executors=2 "), 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    batches = [json.loads(p.read_text()) for p in sorted(sandbox.cw.iterdir())]
    sent = next(b for b in batches if {d["MetricName"]: d["Value"] for d in b}["JvmCount"] == 2)
    assert {d["Dimensions"][0]["Value"] for d in sent} == {"j-2AXXXXXXGAPLF"}
    values = {d["MetricName"]: d["Value"] for d in sent}
    assert values["JvmHeapUsed"] == 55948288 + 51264264
    assert values["DriverHeapMax"] == 1073741824


def test_agent_sources_parse_as_python_3_7():
    """EMR 5.30-6.x nodes run Python 3.7 (Amazon Linux 2), 7.x run 3.9: no newer syntax in the zipapp."""
    sources = [("__main__.py", MAIN)] + [(name, path.read_text()) for name, path in agent_sources()]
    assert {name for name, _ in sources} >= {"sparkscale/names.py", "sparkscale/agent/server.py"}
    for name, text in sources:
        ast.parse(text, filename=name, feature_version=(3, 7))


def test_zipapp_is_byte_for_byte_reproducible(tmp_path):
    first = build_agent_pyz(tmp_path / "a" / "heap-agent.pyz").read_bytes()
    second = build_agent_pyz(tmp_path / "b" / "heap-agent.pyz").read_bytes()
    assert first == second
    assert first.startswith(b"#!/usr/bin/env python3\n")


def test_zipapp_runs_where_typing_has_no_final(tmp_path):
    """Python 3.7's typing has no Final; names.py imports it; the zipapp's __main__ provides a stand-in."""
    pyz = build_agent_pyz(tmp_path / "heap-agent.pyz")
    code = (
        "import runpy, sys, typing; del typing.Final; sys.argv = ['heap-agent.pyz', '--help'];"
        f"runpy.run_path({str(pyz)!r}, run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "--cluster-id" in done.stdout


# --- the YARN collector: on the master node only ------------------------------------------------------------

AGENT = "/opt/sparkscale/heap-agent.pyz"
BASE_EXEC = "--port 8125 --cluster-id j-2AXXXXXXGAPLF --interval-s 60 --run-as nobody"


def _fqdn() -> str:
    done = subprocess.run(["hostname", "-f"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else socket.gethostname()


def _exec_start(sandbox: Sandbox) -> str:
    (line,) = [x for x in (sandbox.root / UNIT).read_text().splitlines() if x.startswith("ExecStart=")]
    return line.split(f"{AGENT} ", 1)[1]


def _instance(sandbox: Sandbox, master: bool) -> None:
    # the fields EMR writes to instance.json (isMaster, isRunningNameNode, ...), the one we read is isMaster
    (sandbox.root / "mnt/var/lib/info/instance.json").write_text(
        json.dumps({"isMaster": master, "isRunningNameNode": master, "isRunningDataNode": not master})
    )


def _yarn_site(sandbox: Sandbox, address: str) -> None:
    conf = sandbox.root / "etc/hadoop/conf"
    conf.mkdir(parents=True)
    (conf / "yarn-site.xml").write_text(
        '<?xml version="1.0"?>\n<configuration>\n'
        "  <property><name>yarn.resourcemanager.hostname</name>"
        "<value>ip-10-0-0-9.ec2.internal</value></property>\n"
        f"  <property><name>yarn.resourcemanager.webapp.address</name><value>{address}</value></property>\n"
        "</configuration>\n"
    )


@pytest.mark.parametrize(
    ("master", "env", "yarn_site", "expected"),
    [
        (True, {}, None, " --yarn-rm-url http://{fqdn}:8088"),
        (False, {}, None, ""),
        (None, {}, None, ""),  # no instance.json: not the master
        (True, {"SPARKSCALE_YARN": "off"}, None, ""),
        (True, {}, "ip-10-0-0-9.ec2.internal:8089", " --yarn-rm-url http://ip-10-0-0-9.ec2.internal:8089"),
        (True, {}, "0.0.0.0:8088", " --yarn-rm-url http://{fqdn}:8088"),
        (True, {}, "${yarn.resourcemanager.hostname}:8088", " --yarn-rm-url http://{fqdn}:8088"),
        (
            True,
            {"SPARKSCALE_YARN_RM_URL": "http://10.0.0.5:8088", "SPARKSCALE_YARN_HIGH_RESOLUTION": "1"},
            None,
            " --yarn-rm-url http://10.0.0.5:8088 --yarn-high-resolution",
        ),
    ],
    ids=[
        "master",
        "core",
        "no-instance-json",
        "off",
        "yarn-site",
        "wildcard",
        "unexpanded",
        "override-hires",
    ],
)
def test_yarn_collector_is_on_for_the_master_only(sandbox, master, env, yarn_site, expected):
    if master is not None:
        _instance(sandbox, master)
    if yarn_site is not None:
        _yarn_site(sandbox, yarn_site)
    done = sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1", **env)
    assert done.returncode == 0, done.stderr
    assert _exec_start(sandbox) == BASE_EXEC + expected.format(fqdn=_fqdn())
    assert ("YARN collector on" in done.stderr) == bool(expected)


def test_the_state_table_turns_the_node_report_on_for_the_master_only(sandbox):
    _instance(sandbox, True)
    done = sandbox.run(
        "s3://assets-bucket/sparkscale/heap-agent.pyz", "--state-table", "Sparkscale-State1", "us-east-1"
    )
    assert done.returncode == 0, done.stderr
    assert (
        _exec_start(sandbox)
        == BASE_EXEC + f" --yarn-rm-url http://{_fqdn()}:8088 --state-table Sparkscale-State1"
    )
    _instance(sandbox, False)
    done = sandbox.run(
        "s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1", "--state-table", "Sparkscale-State1"
    )
    assert done.returncode == 0, done.stderr
    assert _exec_start(sandbox) == BASE_EXEC  # core and task nodes: no YARN collector, no report


@pytest.mark.parametrize("args", [("--state-table", "a b"), ("--state-table",)])
def test_a_bad_state_table_fails_loudly(sandbox, args):
    _instance(sandbox, True)
    done = sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1", *args)
    assert done.returncode != 0
    assert not (sandbox.root / UNIT).exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPARKSCALE_YARN_RM_URL": "http://rm:8088/; rm -rf /"}, "bad ResourceManager URL"),
        ({"SPARKSCALE_YARN": "maybe"}, "bad SPARKSCALE_YARN"),
        ({"SPARKSCALE_YARN_HIGH_RESOLUTION": "yes"}, "bad SPARKSCALE_YARN_HIGH_RESOLUTION"),
    ],
)
def test_bad_yarn_settings_fail_loudly_and_install_nothing(sandbox, env, message):
    _instance(sandbox, True)
    done = sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1", **env)
    assert done.returncode != 0
    assert message in done.stderr
    assert not (sandbox.root / UNIT).exists()


def test_the_installed_agent_accepts_the_master_flags(sandbox):
    """The flags the unit passes are the agent's own: parsed by the installed zipapp (no site-packages)."""
    _instance(sandbox, True)
    assert sandbox.run("s3://assets-bucket/sparkscale/heap-agent.pyz", "us-east-1").returncode == 0
    flags = _exec_start(sandbox).split()
    code = (
        "import runpy, sys; sys.path.insert(0, sys.argv[1]);"
        "from sparkscale.agent.cli import build_parser;"
        "a = build_parser().parse_args(sys.argv[2:]); print(a.yarn_rm_url, a.run_as)"
    )
    agent = str(sandbox.root / AGENT.lstrip("/"))
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, agent, *flags], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"http://{_fqdn()}:8088", "nobody"]
