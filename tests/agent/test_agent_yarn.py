"""The YARN collector: parsing real RM bodies, a real HTTP server on 127.0.0.1 (good, 500, garbage, slow,
huge, redirect), the minute window, the loop with injected clocks, and the agent process to moto."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sparkscale import names
from sparkscale.agent import cli as agent_cli
from sparkscale.agent.publish import Publisher
from sparkscale.agent.yarn import (
    CLUSTER_METRICS_PATH,
    ROOT_QUEUE_JMX_PATH,
    StatWindow,
    YarnCollector,
    YarnError,
    YarnLoop,
    YarnSample,
    fetch,
    minute_data,
    parse_cluster_metrics,
    parse_root_queue_pending_mb,
    sample_data,
)
from sparkscale.agent.yarn import (
    METRICS as YARN_METRICS,
)
from sparkscale.clock import utcnow

from tests.agent.conftest import REPO, LineReader, agent_env, cloudwatch, free_udp_port

FIXTURES = REPO / "tests" / "fixtures" / "yarn"
DOCS = (FIXTURES / "cluster-metrics-hadoop-docs.json").read_bytes()  # no pendingMB
WITH_PENDING = (FIXTURES / "cluster-metrics-with-pending.json").read_bytes()
JMX = (FIXTURES / "jmx-root-queue-metrics.json").read_bytes()
T0 = 1_789_998_840.0  # a minute boundary


# --- parsing (plain unit tests) ----------------------------------------------------------------------------


def test_cluster_metrics_with_pending_mb():
    values, pending = parse_cluster_metrics(WITH_PENDING)
    assert pending == 5983232
    assert values == {
        "allocated_mb": 183296,
        "available_mb": 840704,
        "total_mb": 1024000,
        "containers_pending": 487,
        "apps_pending": 1,
        "apps_running": 1,
    }


def test_cluster_metrics_of_the_hadoop_docs_have_no_pending_mb():
    values, pending = parse_cluster_metrics(DOCS)
    assert pending is None
    assert values["total_mb"] == 17408
    assert values["available_mb"] == 17408


def test_root_queue_pending_mb_from_jmx():
    assert parse_root_queue_pending_mb(JMX) == 1250


def _with(**changes: object) -> bytes:
    doc = json.loads(WITH_PENDING)
    doc["clusterMetrics"].update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"<html>Service Unavailable</html>", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "bad_shape"),
        (b'{"clusterMetrics": null}', "bad_shape"),
        (b'{"RemoteException": {"message": "x"}}', "bad_shape"),
        (_with(totalMB=None), "bad_value"),
        (_with(availableMB=-1024), "bad_value"),  # Hadoop has had negative-gauge bugs
        (_with(appsRunning="3"), "bad_value"),
        (_with(appsPending=True), "bad_value"),
        (_with(allocatedMB=1.5), "bad_value"),
        (_with(pendingMB=-1), "bad_value"),
        (_with(totalMB=2**60), "bad_value"),
    ],
)
def test_garbage_is_one_typed_error(body, kind):
    with pytest.raises(YarnError) as caught:
        parse_cluster_metrics(body)
    assert caught.value.kind == kind


def test_a_missing_required_field_is_bad_shape():
    doc = json.loads(WITH_PENDING)
    del doc["clusterMetrics"]["containersPending"]
    with pytest.raises(YarnError, match="containersPending") as caught:
        parse_cluster_metrics(json.dumps(doc).encode())
    assert caught.value.kind == "bad_shape"


@pytest.mark.parametrize("body", [b'{"beans": []}', b'{"beans": [{"name": "x", "PendingMB": 1}]}', b"{}"])
def test_jmx_without_the_root_queue_bean_is_bad_shape(body):
    with pytest.raises(YarnError) as caught:
        parse_root_queue_pending_mb(body)
    assert caught.value.kind == "bad_shape"


def test_statistic_set_of_a_minute():
    """Six 10 s samples, pending 0, 2048, 4096, 4096, 1024, 0 → SampleCount 6, Sum 11264, Min 0, Max 4096."""
    window = StatWindow()
    for pending in (0, 2048, 4096, 4096, 1024, 0):
        window.add(YarnSample(float(pending), 100.0, 900.0, 1000.0, 1.0, 0.0, 2.0))
    data = {d["MetricName"]: d for d in minute_data(window, cluster_id="j-Y", timestamp=T0)}
    assert set(data) == {m for m, _, _ in YARN_METRICS}
    assert data[names.YARN_PENDING_MEMORY_MB]["StatisticValues"] == {
        "SampleCount": 6.0,
        "Sum": 11264.0,
        "Minimum": 0.0,
        "Maximum": 4096.0,
    }
    assert data[names.YARN_PENDING_MEMORY_MB]["Unit"] == "Megabytes"
    assert data[names.YARN_APPS_RUNNING]["StatisticValues"]["Maximum"] == 2.0
    assert all(d["Dimensions"] == [{"Name": "JobFlowId", "Value": "j-Y"}] for d in data.values())
    assert {d["Timestamp"] for d in data.values()} == {"2026-09-21T13:54:00Z"}


def test_samples_without_pending_memory_publish_the_other_six_and_an_empty_window_nothing():
    window = StatWindow()
    assert minute_data(window, cluster_id="j-Y", timestamp=T0) == []  # never zeros
    window.add(YarnSample(None, 100.0, 900.0, 1000.0, 1.0, 0.0, 2.0))
    metrics = [d["MetricName"] for d in minute_data(window, cluster_id="j-Y", timestamp=T0)]
    assert len(metrics) == 6
    assert names.YARN_PENDING_MEMORY_MB not in metrics


def test_high_resolution_datum_per_sample():
    data = sample_data(YarnSample(5.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0), cluster_id="j-Y", timestamp=T0 + 10)
    assert {d["StorageResolution"] for d in data} == {1}
    assert {d["Timestamp"] for d in data} == {"2026-09-21T13:54:10Z"}
    assert {d["MetricName"]: d["Value"] for d in data}[names.YARN_PENDING_MEMORY_MB] == 5.0


# --- a real HTTP server on 127.0.0.1 ------------------------------------------------------------------------


class FakeRM:
    """http.server in a thread; `routes` maps a path to (status, body, delay_s, headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float, dict[str, str]]] = {}
        self.requests: list[str] = []
        rm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rm.requests.append(self.path)
                status, body, delay_s, headers = rm.routes.get(self.path, (404, b"not found", 0.0, {}))
                if delay_s:
                    time.sleep(delay_s)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout, too large)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, path: str, body: bytes, status: int = 200, delay_s: float = 0.0, **headers: str) -> None:
        self.routes[path] = (status, body, delay_s, headers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rm():
    server = FakeRM()
    yield server
    server.close()


def test_poll_reads_pending_mb_from_cluster_metrics(rm):
    rm.serve(CLUSTER_METRICS_PATH, WITH_PENDING)
    collector = YarnCollector(rm.url + "/")
    sample = collector.poll()
    assert sample == YarnSample(5983232.0, 183296.0, 840704.0, 1024000.0, 487.0, 1.0, 1.0)
    assert rm.requests == [CLUSTER_METRICS_PATH]  # no JMX request when pendingMB is there


def test_poll_falls_back_to_the_root_queue_over_jmx(rm):
    rm.serve(CLUSTER_METRICS_PATH, DOCS)
    rm.serve(ROOT_QUEUE_JMX_PATH, JMX)
    collector = YarnCollector(rm.url)
    sample = collector.poll()
    assert sample is not None
    assert sample.pending_mb == 1250
    assert sample.total_mb == 17408
    assert collector.counters.pending_from_jmx == 1
    assert rm.requests == [CLUSTER_METRICS_PATH, ROOT_QUEUE_JMX_PATH]


def test_poll_without_any_pending_source_keeps_the_rest(rm):
    rm.serve(CLUSTER_METRICS_PATH, DOCS)  # and /jmx answers 404
    collector = YarnCollector(rm.url)
    sample = collector.poll()
    assert sample is not None
    assert sample.pending_mb is None
    assert collector.counters.pending_unavailable == 1
    assert "HTTP 404" in collector.counters.last_error


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda rm: rm.serve(CLUSTER_METRICS_PATH, b'{"RemoteException":{}}', status=500), "http_status"),
        (
            lambda rm: rm.serve(
                CLUSTER_METRICS_PATH, b"This is standby RM. Redirecting to the current active RM"
            ),
            "not_json",
        ),
        (lambda rm: rm.serve(CLUSTER_METRICS_PATH, _with(allocatedMB=-5)), "bad_value"),
        (lambda rm: rm.serve(CLUSTER_METRICS_PATH, b"x" * (300 * 1024)), "too_large"),
        (lambda rm: rm.serve(CLUSTER_METRICS_PATH, WITH_PENDING, delay_s=3.0), "timeout"),
        (
            lambda rm: rm.serve(
                CLUSTER_METRICS_PATH, b"", status=307, Location="http://10.0.0.2:8088" + CLUSTER_METRICS_PATH
            ),
            "standby",
        ),
    ],
    ids=["500", "html", "negative", "huge", "slow", "redirect"],
)
def test_a_bad_rm_is_one_counted_error_and_no_sample(rm, setup, kind):
    setup(rm)
    collector = YarnCollector(rm.url, timeout_s=0.5)
    started = time.monotonic()
    assert collector.poll() is None
    assert time.monotonic() - started < 2.5  # the timeout holds; no retry inside a poll
    assert collector.counters.errors[kind] == 1
    assert collector.counters.failed_polls == 1
    assert collector.counters.good_polls == 0


def test_an_rm_that_is_down_is_unreachable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    collector = YarnCollector(f"http://127.0.0.1:{port}", timeout_s=0.5)
    assert collector.poll() is None
    assert collector.counters.errors["unreachable"] == 1


def test_fetch_reads_at_most_max_bytes(rm):
    rm.serve("/big", b"y" * 5000)
    assert fetch(rm.url + "/big", timeout_s=1, max_bytes=5000) == b"y" * 5000
    with pytest.raises(YarnError, match="too_large"):
        fetch(rm.url + "/big", timeout_s=1, max_bytes=4999)


# --- the loop, with injected clocks and a recording sink ----------------------------------------------------


class Sink:
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[dict]]] = []

    def put(self, namespace: str, data: list[dict]) -> None:
        self.calls.append((namespace, data))


class ScriptedCollector(YarnCollector):
    def __init__(self, samples: list[YarnSample | None]) -> None:
        super().__init__("http://unused:8088")
        self.samples = list(samples)

    def poll(self) -> YarnSample | None:
        self.counters.polls += 1
        sample = self.samples.pop(0)
        if sample is None:
            self.counters.errors["unreachable"] += 1
        else:
            self.counters.good_polls += 1
        return sample


def _loop(samples, *, high_resolution=False):
    sink, lines = Sink(), []
    loop = YarnLoop(
        collector=ScriptedCollector(samples),
        publisher=Publisher(sink=sink, namespace=names.YARN_NAMESPACE),
        cluster_id="j-LOOP",
        high_resolution=high_resolution,
        wall_clock=lambda: T0,
        monotonic=lambda: 1000.0,
        log=lines.append,
    )
    return loop, sink, lines


def test_one_statistic_set_per_minute_and_a_minute_of_failures_publishes_nothing():
    good = YarnSample(2048.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0)
    # minute 1: 6 good samples; minute 2: RM down all minute; minute 3 starts with a good one
    loop, sink, lines = _loop([good] * 6 + [None] * 6 + [good])
    for slot in range(13):
        loop.step(T0 + 10 * slot)
    assert len(sink.calls) == 1  # minute 1 only; minute 2 had no sample; minute 3 is not over
    namespace, data = sink.calls[0]
    assert namespace == "Sparkscale/Yarn"
    assert {d["Timestamp"] for d in data} == {"2026-09-21T13:54:00Z"}
    assert {d["StatisticValues"]["SampleCount"] for d in data} == {6.0}
    assert loop.collector.counters.skipped_minutes == 1
    assert any(line.startswith("yarn-skip period=2026-09-21T13:55:00Z") for line in lines)
    assert sum(line.startswith("yarn-poll-failed") for line in lines) == 6


def test_a_minute_is_never_published_twice_when_the_clock_steps_back():
    good = YarnSample(1.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0)
    loop, sink, _ = _loop([good] * 10)
    for t in (0, 10, 60, 5, 15, 60, 120):  # back into the first minute after it was sent
        loop.step(T0 + t)
    stamps = [call[1][0]["Timestamp"] for call in sink.calls]
    assert stamps == sorted(set(stamps))


def test_high_resolution_publishes_every_good_sample():
    good = YarnSample(1.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0)
    loop, sink, _ = _loop([good, None, good], high_resolution=True)
    for slot in range(3):
        loop.step(T0 + 10 * slot)
    assert [call[1][0]["Timestamp"] for call in sink.calls] == [
        "2026-09-21T13:54:00Z",
        "2026-09-21T13:54:20Z",
    ]
    assert all(d["StorageResolution"] == 1 for _, data in sink.calls for d in data)


def test_a_bug_in_a_step_is_logged_and_the_loop_goes_on():
    loop, _, lines = _loop([])
    calls = []

    def broken(now_wall: float) -> None:
        calls.append(now_wall)
        raise RuntimeError("boom")

    loop.step = broken  # type: ignore[method-assign]
    clock = [T0 + 9.99]
    loop.wall_clock = lambda: clock[0]
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        clock[0] += 0.01
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert calls
    assert any("bug: RuntimeError: boom" in line for line in lines)


# --- CLI validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--yarn-rm-url", "localhost:8088"], "is not http://HOST:PORT"),
        (["--yarn-rm-url", "file:///etc/passwd"], "is not http://HOST:PORT"),
        (["--yarn-rm-url", "http://u:p@rm:8088"], "is not http://HOST:PORT"),
        (["--yarn-rm-url", "http://rm:8088/ws/v1"], "is not http://HOST:PORT"),
        (["--yarn-high-resolution"], "needs --yarn-rm-url"),
        (["--yarn-rm-url", "http://rm:8088", "--yarn-timeout-s", "0"], "--yarn-timeout-s must be positive"),
    ],
)
def test_bad_yarn_arguments_exit_2(aws_env, capsys, argv, message):
    assert agent_cli.main(["--cluster-id", "j-OK", *argv]) == 2
    assert message in capsys.readouterr().err


# --- the agent process: heap over UDP and YARN over HTTP, both to moto --------------------------------------


def _stats(cw, metric: str, statistic: str) -> list[float]:
    now = utcnow()
    points = cw.get_metric_statistics(
        Namespace=names.YARN_NAMESPACE,
        MetricName=metric,
        Dimensions=[{"Name": "JobFlowId", "Value": "j-YARNTEST"}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=[statistic],
    )["Datapoints"]
    return [p[statistic] for p in points]


def test_agent_process_publishes_yarn_and_heap_and_survives_a_broken_rm(moto_url, rm):
    rm.serve(CLUSTER_METRICS_PATH, WITH_PENDING)
    port = free_udp_port()
    cmd = [sys.executable, "-m", "sparkscale.agent", "--port", str(port), "--cluster-id", "j-YARNTEST"]
    cmd += ["--interval-s", "1", "--yarn-rm-url", rm.url, "--yarn-poll-s", "0.5", "--yarn-period-s", "1"]
    cmd += ["--yarn-timeout-s", "0.3"]
    proc = subprocess.Popen(
        cmd, env=agent_env(moto_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = LineReader(proc)
    try:
        assert f"yarn={rm.url} yarn_resolution_s=1" in out.wait_for(lambda s: s.startswith("start "), 20)
        out.wait_for(lambda s: s.startswith("yarn-publish state=ok"), 20)
        rm.serve(CLUSTER_METRICS_PATH, WITH_PENDING, delay_s=2.0)  # now slow: heap must go on every second
        out.wait_for(lambda s: s.startswith("yarn-skip"), 20)
        heap_during = out.wait_for(lambda s: s.startswith("publish ok"), 5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert heap_during
    assert any(" timeout=" in line for line in out.rest())

    cw = cloudwatch(moto_url)
    metrics = cw.list_metrics(Namespace=names.YARN_NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in metrics} == set(names.YARN_METRICS)
    assert all(m["Dimensions"] == [{"Name": "JobFlowId", "Value": "j-YARNTEST"}] for m in metrics)
    assert set(_stats(cw, names.YARN_PENDING_MEMORY_MB, "Maximum")) == {5983232.0}
    assert set(_stats(cw, names.YARN_AVAILABLE_MEMORY_MB, "Minimum")) == {840704.0}
    assert min(_stats(cw, names.YARN_CONTAINERS_PENDING, "Minimum")) == 487.0  # never a zero from the bad RM
    assert cw.list_metrics(Namespace=names.HEAP_NAMESPACE)["Metrics"]


def test_fixtures_have_provenance():
    provenance = (FIXTURES / "PROVENANCE.md").read_text()
    for path in Path(FIXTURES).glob("*.json"):
        assert path.name in provenance
