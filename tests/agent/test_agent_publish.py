"""Publishing: the fixed metric set, one call per interval, retries with backoff, a bounded buffer.

boto3 requests go through botocore's Stubber (each request checked against the real CloudWatch model); the
AWS CLI path through a fake `run`. No request leaves the process.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from sparkscale import names
from sparkscale.agent.aggregate import HeapSnapshot
from sparkscale.agent.publish import (
    MAX_DATUMS_PER_CALL,
    AwsCliSink,
    Boto3Sink,
    Publisher,
    PublishError,
    iso_utc,
    metric_data,
)
from sparkscale.agent.server import HeapAgent, align_down, open_socket, publish_loop, serve

SNAP = HeapSnapshot(
    executor_jvms=2,
    executor_used_bytes=300.0,
    executor_max_bytes=1000.0,
    executor_used_pct=30.0,
    executor_max_jvm_used_pct=40.0,
    driver_jvms=1,
    driver_used_bytes=10.0,
    driver_max_bytes=100.0,
    driver_used_pct=10.0,
)
T0 = 1_789_998_840.0  # 2026-09-21T13:54:00Z (calendar.timegm), a minute boundary


def _batch(ts: float = T0, cluster: str = "j-ABC") -> list[dict]:
    return metric_data(SNAP, cluster_id=cluster, timestamp=ts)


class RecordingSink:
    name = "fake"

    def __init__(self, errors: list[PublishError | None] | None = None) -> None:
        self.calls: list[list[dict]] = []
        self.errors = list(errors or [])

    def put(self, namespace: str, data: list[dict]) -> None:
        assert namespace == names.HEAP_NAMESPACE
        self.calls.append(data)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


THROTTLED = PublishError("Throttling: Rate exceeded", code="Throttling", retryable=True)


def test_metric_data_is_the_fixed_set_with_only_the_jobflowid_dimension():
    data = metric_data(SNAP, cluster_id="j-ABC", timestamp=T0 + 0.7)
    assert [(d["MetricName"], d["Unit"], d["Value"]) for d in data] == [
        (names.HEAP_EXECUTOR_USED_BYTES, "Bytes", 300.0),
        (names.HEAP_EXECUTOR_MAX_BYTES, "Bytes", 1000.0),
        (names.HEAP_EXECUTOR_USED_PCT, "Percent", 30.0),
        (names.HEAP_EXECUTOR_MAX_JVM_USED_PCT, "Percent", 40.0),
        (names.HEAP_JVM_COUNT, "Count", 2.0),
        (names.HEAP_DRIVER_USED_BYTES, "Bytes", 10.0),
        (names.HEAP_DRIVER_MAX_BYTES, "Bytes", 100.0),
        (names.HEAP_DRIVER_USED_PCT, "Percent", 10.0),
    ]
    assert all(d["Dimensions"] == [{"Name": "JobFlowId", "Value": "j-ABC"}] for d in data)
    assert {d["Timestamp"] for d in data} == {"2026-09-21T13:54:00Z"}
    assert iso_utc(0) == "1970-01-01T00:00:00Z"


def test_zero_snapshot_still_publishes_every_metric():
    zero = HeapSnapshot(0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0)
    data = metric_data(zero, cluster_id="j-ABC", timestamp=T0)
    assert len(data) == 8
    assert {d["Value"] for d in data} == {0.0}


# --- boto3 through Stubber ---------------------------------------------------------------------------------


@pytest.fixture
def cw(aws_env):
    return boto3.client("cloudwatch", region_name="us-east-1")


def test_boto3_sink_sends_one_valid_putmetricdata(cw):
    data = _batch()
    with Stubber(cw) as stub:
        stub.add_response("put_metric_data", {}, {"Namespace": names.HEAP_NAMESPACE, "MetricData": data})
        Boto3Sink(cw).put(names.HEAP_NAMESPACE, data)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "retryable", "throttled"),
    [
        ("Throttling", 400, True, True),
        ("ThrottlingException", 400, True, True),
        ("InternalServiceError", 500, True, False),
        ("AccessDenied", 403, True, False),  # an IAM policy can be fixed while the agent runs
        ("InvalidParameterValue", 400, False, False),
        ("MissingParameter", 400, False, False),
    ],
)
def test_boto3_sink_classifies_cloudwatch_errors(cw, code, status, retryable, throttled):
    with Stubber(cw) as stub:
        stub.add_client_error("put_metric_data", service_error_code=code, http_status_code=status)
        with pytest.raises(PublishError) as caught:
            Boto3Sink(cw).put(names.HEAP_NAMESPACE, _batch())
    assert (caught.value.code, caught.value.retryable, caught.value.throttled) == (code, retryable, throttled)


def test_boto3_sink_treats_an_invalid_request_as_permanent(cw):
    bad = [dict(_batch()[0], Value="not a number")]
    with Stubber(cw) as stub:
        stub.add_response("put_metric_data", {})  # never reached: botocore validates before sending
        with pytest.raises(PublishError) as caught:
            Boto3Sink(cw).put(names.HEAP_NAMESPACE, bad)
    assert caught.value.code == "ParamValidationError"
    assert not caught.value.retryable


def test_boto3_sink_retries_connection_errors():
    class Down:
        def put_metric_data(self, **_kwargs):
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    with pytest.raises(PublishError) as caught:
        Boto3Sink(Down()).put(names.HEAP_NAMESPACE, _batch())
    assert caught.value.retryable


# --- the Publisher ------------------------------------------------------------------------------------------


def test_success_sends_one_call_and_empties_the_buffer():
    sink = RecordingSink()
    pub = Publisher(sink=sink)
    pub.enqueue(_batch())
    assert pub.due(now=0.0)
    outcome = pub.attempt(now=0.0)
    assert (outcome.sent, outcome.datums, len(sink.calls), pub.pending_batches) == (True, 8, 1, 0)
    assert not pub.due(now=1.0)


def test_failures_back_off_exponentially_up_to_the_cap_then_one_call_sends_the_backlog():
    sink = RecordingSink([THROTTLED] * 6)
    pub = Publisher(sink=sink, base_backoff_s=2.0, max_backoff_s=20.0, jitter=lambda: 1.0)
    now = 0.0
    delays = []
    for minute in range(6):
        pub.enqueue(_batch(T0 + 60 * minute))
        outcome = pub.attempt(now)
        assert outcome.throttled
        delays.append(pub.next_attempt_at - now)
        assert not pub.due(now + delays[-1] - 0.01)
        now += delays[-1]
    assert delays == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    assert pub.throttled_calls == pub.failed_calls == 6
    outcome = pub.attempt(now)  # the sink works again
    assert outcome.sent
    last = sink.calls[-1]
    assert len(last) == 6 * 8  # the whole backlog in ONE call ...
    stamps = [d["Timestamp"] for d in last[::8]]
    assert stamps == sorted(stamps)  # ... oldest first,
    assert len(set(stamps)) == 6  # ... each with its own minute
    assert (pub.pending_batches, pub.consecutive_failures, pub.sent_batches) == (0, 0, 6)


def test_jitter_spreads_the_delay_between_half_and_full():
    pub = Publisher(sink=RecordingSink(), base_backoff_s=4.0, max_backoff_s=60.0, jitter=lambda: 0.0)
    assert pub.backoff_s(1) == 2.0
    assert pub.backoff_s(3) == 8.0
    assert pub.backoff_s(1000) == 30.0  # capped, and no overflow


def test_the_buffer_is_bounded_and_drops_the_oldest():
    sink = RecordingSink([THROTTLED] * 10)
    pub = Publisher(sink=sink, max_pending_batches=3, jitter=lambda: 0.0)
    for minute in range(5):
        pub.enqueue(_batch(T0 + 60 * minute))
        pub.attempt(now=1e9)  # always due
    assert pub.pending_batches == 3
    assert pub.dropped_batches == 2
    assert [d["Timestamp"] for d in sink.calls[-1][::8]] == [iso_utc(T0 + 60 * m) for m in (2, 3, 4)]


def test_a_request_cloudwatch_rejects_is_dropped_not_retried_forever():
    sink = RecordingSink(
        [PublishError("InvalidParameterValue: x", code="InvalidParameterValue", retryable=False)]
    )
    pub = Publisher(sink=sink)
    pub.enqueue(_batch())
    outcome = pub.attempt(now=0.0)
    assert not outcome.sent
    assert "not retryable" in outcome.error
    assert (pub.pending_batches, pub.dropped_batches, pub.consecutive_failures) == (0, 1, 0)


def test_one_call_never_exceeds_the_putmetricdata_limit():
    sink = RecordingSink()
    pub = Publisher(sink=sink, max_pending_batches=200)
    for minute in range(200):
        pub.enqueue(_batch(T0 + 60 * minute))
    pub.attempt(now=0.0)
    pub.attempt(now=0.0)
    assert [len(call) for call in sink.calls] == [MAX_DATUMS_PER_CALL, 200 * 8 - MAX_DATUMS_PER_CALL]


# --- the publish loop, on a fake clock ---------------------------------------------------------------------


class FakeClock:
    """wall and monotonic advance together; `stop.wait(t)` advances them by t."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 1000.0
        self.waits: list[float] = []

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


class FakeStop:
    def __init__(self, clock: FakeClock, *, after_s: float) -> None:
        self.clock = clock
        self.deadline = clock.mono + after_s
        self._set = False

    def wait(self, timeout: float) -> bool:
        self.clock.waits.append(timeout)
        if self.clock.mono + timeout >= self.deadline:
            self.clock.advance(max(0.0, self.deadline - self.clock.mono))
            self._set = True
            return True
        self.clock.advance(timeout)
        return False

    def is_set(self) -> bool:
        return self._set


def _run_loop(sink, *, start_wall: float, run_s: float, interval_s: float = 60.0):
    clock = FakeClock(start_wall)
    agent = HeapAgent(cluster_id="j-ABC", silent_after_s=30.0)
    pub = Publisher(sink=sink, base_backoff_s=2.0, max_backoff_s=60.0, jitter=lambda: 1.0)
    lines: list[str] = []
    publish_loop(
        agent=agent,
        publisher=pub,
        interval_s=interval_s,
        stop=FakeStop(clock, after_s=run_s),  # type: ignore[arg-type]
        wall_clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
        log=lines.append,
    )
    return pub, lines


def test_the_loop_sends_one_batch_per_minute_stamped_with_the_minute():
    sink = RecordingSink()
    _pub, lines = _run_loop(sink, start_wall=T0 + 17.3, run_s=5 * 60)
    assert len(sink.calls) == 5  # boundaries at +1..+5 minutes (the 5th at exactly run_s-17.3 s)
    assert [call[0]["Timestamp"] for call in sink.calls] == [iso_utc(T0 + 60 * m) for m in range(1, 6)]
    assert all(len(call) == 8 for call in sink.calls)
    assert len(lines) == 5
    assert all(line.startswith("publish ok executors=0 ") for line in lines)


def test_the_loop_retries_between_minutes_with_backoff_then_catches_up():
    sink = RecordingSink([THROTTLED, THROTTLED, THROTTLED])
    pub, lines = _run_loop(sink, start_wall=T0 + 59.0, run_s=30.0)
    # t=60: fails; retries after 2 s and 4 s fail; the one after 8 s (t=74) sends the minute's batch
    assert [len(call) for call in sink.calls] == [8, 8, 8, 8]
    assert [line.split()[:2] for line in lines] == [
        ["publish", "failed"],
        ["retry", "failed"],
        ["retry", "failed"],
        ["retry", "ok"],
    ]
    assert "error='Throttling: Rate exceeded'" in lines[0]
    assert pub.pending_batches == 0


def test_on_stop_the_pending_batches_get_one_last_try():
    sink = RecordingSink([THROTTLED])
    pub, lines = _run_loop(sink, start_wall=T0 + 59.0, run_s=1.5)  # fails at t=60, stops at 60.5
    assert [line.split()[:2] for line in lines] == [["publish", "failed"], ["final", "ok"]]
    assert len(sink.calls) == 2
    assert pub.pending_batches == 0


def test_align_down():
    assert align_down(T0 + 59.9, 60) == T0
    assert align_down(T0 + 60.0, 60) == T0 + 60


# --- the AWS CLI sink --------------------------------------------------------------------------------------


class FakeRun:
    def __init__(self, returncode: int = 0, stderr: str = "", exc: Exception | None = None) -> None:
        self.returncode, self.stderr, self.exc = returncode, stderr, exc
        self.commands: list[list[str]] = []
        self.payloads: list[list[dict]] = []
        self.env: dict[str, str] = {}

    def __call__(self, cmd, **kwargs):
        self.commands.append(cmd)
        self.env = kwargs["env"]
        path = cmd[cmd.index("--metric-data") + 1].removeprefix("file://")
        with open(path) as handle:
            self.payloads.append(json.load(handle))
        if self.exc:
            raise self.exc
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


def test_cli_sink_runs_put_metric_data_with_the_batch_as_a_file():
    run = FakeRun()
    sink = AwsCliSink(aws="/usr/bin/aws", region="eu-west-1", endpoint_url="http://127.0.0.1:5000", run=run)
    sink.put(names.HEAP_NAMESPACE, _batch())
    cmd = run.commands[0]
    assert cmd[:5] == ["/usr/bin/aws", "cloudwatch", "put-metric-data", "--namespace", names.HEAP_NAMESPACE]
    assert cmd[cmd.index("--region") + 1] == "eu-west-1"
    assert cmd[cmd.index("--endpoint-url") + 1] == "http://127.0.0.1:5000"
    assert run.payloads == [_batch()]
    assert run.env["AWS_MAX_ATTEMPTS"] == "1"  # the Publisher owns retrying


@pytest.mark.parametrize(
    ("stderr", "retryable", "throttled"),
    [
        (
            "\nAn error occurred (Throttling) when calling the PutMetricData operation: Rate exceeded\n",
            True,
            True,
        ),
        (
            "An error occurred (InvalidParameterValue) when calling the PutMetricData operation: bad",
            False,
            False,
        ),
        ("Parameter validation failed:\nInvalid type for parameter MetricData[0].Value", False, False),
        ("Could not connect to the endpoint URL: https://monitoring.eu-west-1.amazonaws.com/", True, False),
    ],
)
def test_cli_sink_classifies_failures(stderr, retryable, throttled):
    sink = AwsCliSink(
        aws="aws", region="eu-west-1", endpoint_url=None, run=FakeRun(returncode=254, stderr=stderr)
    )
    with pytest.raises(PublishError) as caught:
        sink.put(names.HEAP_NAMESPACE, _batch())
    assert (caught.value.retryable, caught.value.throttled) == (retryable, throttled)


def test_cli_sink_timeout_is_retryable():
    run = FakeRun(exc=subprocess.TimeoutExpired(cmd="aws", timeout=30))
    with pytest.raises(PublishError) as caught:
        AwsCliSink(aws="aws", region="eu-west-1", endpoint_url=None, run=run).put(
            names.HEAP_NAMESPACE, _batch()
        )
    assert caught.value.retryable


# --- floods ------------------------------------------------------------------------------------------------


def test_a_flood_beyond_the_packet_budget_is_dropped_unread_and_counted():
    agent = HeapAgent(cluster_id="j-ABC", silent_after_s=30.0, max_packets_per_s=10)
    for i in range(15):
        agent.on_datagram(f"app.{i}.jvm.heap.used:1|g".encode(), now=5.0)
    assert agent.counters.flood_dropped_packets == 5
    assert agent.snapshot(5.0).executor_jvms == 10
    agent.on_datagram(b"app.99.jvm.heap.used:1|g", now=6.1)  # a new second
    assert agent.snapshot(6.1).executor_jvms == 11
    assert agent.counters.packets == 16


def test_an_unexpected_client_exception_is_retried_not_fatal():
    class Broken:
        name = "broken"

        def put(self, namespace, data):
            raise OSError(28, "No space left on device")

    pub = Publisher(sink=Broken(), jitter=lambda: 1.0)
    pub.enqueue(_batch())
    outcome = pub.attempt(now=0.0)
    assert "OSError" in outcome.error
    assert (pub.pending_batches, pub.consecutive_failures, pub.next_attempt_at) == (1, 1, 2.0)


def test_a_clock_stepping_back_neither_resends_a_minute_nor_stalls():
    clock = FakeClock(T0 + 59.5)
    sink = RecordingSink()
    pub = Publisher(sink=sink)
    # after each wait, step the wall clock: back 60.2 s right after the T0+60 minute was sent, later back 1 h
    steps = iter([0.1, -60.2, 0.0, 0.0, -3600.0])

    class SteppingStop(FakeStop):
        def wait(self, timeout: float) -> bool:
            stopped = super().wait(timeout)
            clock.wall += next(steps, 0.0)
            return stopped

    publish_loop(
        agent=HeapAgent(cluster_id="j-ABC", silent_after_s=30.0),
        publisher=pub,
        interval_s=60.0,
        stop=SteppingStop(clock, after_s=300.0),  # type: ignore[arg-type]
        wall_clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
        log=lambda _line: None,
    )
    stamps = [call[0]["Timestamp"] for call in sink.calls]
    assert len(stamps) == len(
        set(stamps)
    )  # the minute at T0+60 was sent once, though the clock came back to it
    assert stamps[0] == iso_utc(T0 + 60)
    # then, an hour back, it goes on at the next boundary of the new time (T0-3360), not an hour later
    assert stamps[1:] == [iso_utc(T0 + 120), iso_utc(T0 - 3360)]


def test_a_bug_in_the_publish_thread_stops_the_agent_so_systemd_restarts_it():
    class BuggyAgent(HeapAgent):
        def batch(self, now, timestamp):
            raise KeyError("bug")

    sock = open_socket("127.0.0.1", 0)
    stop = threading.Event()
    try:
        with pytest.raises(RuntimeError, match="publish thread failed: KeyError"):
            serve(
                sock=sock,
                agent=BuggyAgent(cluster_id="j-ABC", silent_after_s=30.0),
                publisher=Publisher(sink=RecordingSink()),
                interval_s=0.2,
                stop=stop,
                wall_clock=time.time,
                monotonic=time.monotonic,
                log=lambda _line: None,
            )
    finally:
        sock.close()
    assert stop.is_set()
