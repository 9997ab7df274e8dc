"""Fan-out load test: 500 clusters managed by tag on a moto server (127.0.0.1), a realistic latency injected
into every AWS call, and the real handlers: the reconcile schedule queues one evaluation per cluster to a
real (moto) SQS queue, and worker threads standing in for the fanout Lambda's concurrency
(`fanout_max_concurrency`) receive each message and call `handlers.fanout.handler` with it.

Measured: the time for one period (schedule to last evaluation), calls per second per API, every cluster
evaluated, none evaluated twice at once (under the lease); then a fault run in which a share of the EMR and
DynamoDB calls is throttled: every cluster still evaluated within two periods.

Time may be compressed TIME_SCALE times (default 1: the deployed pace, ~5 minutes): the period's spread (the
SQS delays), the queue's visibility timeout and botocore's retry backoff are divided by it; the per-call
latencies are real. Call rates are printed as measured and as they would be at the deployed pace.

    python benchmarks/bench_fanout.py             # prints the figures
    SPARKSCALE_BENCH_WRITE_DOCS=1 python benchmarks/bench_fanout.py   # also its row in docs/benchmarks.md
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambdas"), str(ROOT / "tools"), str(ROOT)]

CLUSTERS = 500
PRESSURED = 25  # clusters with 2 task nodes, pressure metrics and an alarm in ALARM
CONCURRENCY = 10  # fanout_max_concurrency
PERIOD_S = 120  # reconcile_rate_s
# the period's spread, the visibility timeout and botocore's backoff are divided by it. 1 (the default): the
# deployed pace, about 5 minutes; SPARKSCALE_FANOUT_TIME_SCALE=2 halves the waits, but on a 2-core machine the
# harness's own CPU (handlers and moto, ~80-95 ms an evaluation) then becomes the limit, not the fan-out
TIME_SCALE = float(os.environ.get("SPARKSCALE_FANOUT_TIME_SCALE", "1"))
VISIBILITY_S = 360 / TIME_SCALE  # the queue's visibility timeout, 360 s deployed: a failed message comes back
THROTTLED_SHARE = 0.2  # fault run: this share of EMR and DynamoDB calls answer ThrottlingException
# per-call latency (s): an assumed typical in-Region round trip of each service's calls (not measured here)
LATENCY_S = {
    "emr": 0.060,
    "cloudwatch": 0.080,
    "dynamodb": 0.008,
    "sqs": 0.015,
    "sns": 0.020,
    "ec2": 0.120,
}
WRITE_DOCS_ENV = "SPARKSCALE_BENCH_WRITE_DOCS"
BENCH_PAGE = ROOT / "docs" / "benchmarks.md"
ROW_PREFIX = "| `bench_fanout.py` |"
SETTINGS = {
    "reconcile_rate_s": PERIOD_S,
    "fanout_max_concurrency": CONCURRENCY,
    "emr_read_rate_per_s": 10.0,  # the EMR read quotas raised to 10/s: 600 evaluations a period fit
    "discovery_tag_key": "sparkscale:managed",
    "max_task_nodes": 8,
    "group_max_nodes": 8,
}


@dataclass
class Recorder:
    """AWS calls (with times), evaluations done, and evaluations running under a lease, per cluster."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[tuple[float, str]] = field(default_factory=list)
    throttled: int = 0
    done: dict[str, float] = field(default_factory=dict)  # cluster -> when first evaluated
    running: collections.Counter[str] = field(default_factory=collections.Counter)
    overlaps: int = 0
    throttle_share: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(21))

    def reset(self, throttle_share: float) -> None:
        with self.lock:
            self.calls.clear()
            self.done.clear()
            self.throttled = self.overlaps = 0
            self.throttle_share = throttle_share


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def instrument(client: Any, rec: Recorder) -> None:
    """Latency on every call; throttling on a share of the EMR and DynamoDB calls (a real 400 answer, so
    botocore's own retries and backoff run)."""
    from botocore.awsrequest import AWSResponse

    service = client.meta.service_model.service_name
    latency = LATENCY_S.get(service, 0.02)
    throttleable = service in ("emr", "dynamodb")

    def before_send(request: Any, event_name: str = "", **_: Any) -> Any:
        op = event_name.rsplit(".", 1)[-1]
        time.sleep(latency)
        with rec.lock:
            rec.calls.append((time.perf_counter(), f"{service}:{op}"))
            throttle = throttleable and rec.throttle_share and rec.rng.random() < rec.throttle_share
            if throttle:
                rec.throttled += 1
        if throttle:
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "bench"}
            return AWSResponse(request.url, 400, headers, _Raw(body))
        return None

    client.meta.events.register("before-send", before_send)


class ScaledQueue:
    """The real SQS adapter with the plan's delays divided by TIME_SCALE."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def send(self, evaluations: Sequence[Any]) -> int:
        return int(self.inner.send([replace(e, delay_s=round(e.delay_s / TIME_SCALE)) for e in evaluations]))


def compress_backoff() -> None:
    """botocore's retry backoff divided by TIME_SCALE, like every other wait of the benchmark."""
    from botocore.retries.standard import ExponentialBackoff

    inner = ExponentialBackoff.delay_amount

    def delay_amount(self: Any, context: Any) -> float:
        return float(inner(self, context)) / TIME_SCALE

    ExponentialBackoff.delay_amount = delay_amount


def _one_cluster(aws: Any, registry: Any, i: int, now: Any) -> str:
    from sparkscale import names
    from sparkscale.ports import Registration

    from tests.scale.shell_support import create_cluster, put_pressure

    busy = i < PRESSURED
    c = create_cluster(aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 2 if busy else 0)])
    aws.emr.add_tags(ResourceId=c.cluster_id, Tags=[{"Key": "sparkscale:managed", "Value": "true"}])
    registry.register(Registration(c.cluster_id, "analytics", "", False, now))
    if busy:
        put_pressure(aws.cloudwatch, c.cluster_id, now)
        name = names.alarm_name("sparkscale", c.cluster_id, names.ALARM_KIND_YARN_MEMORY)
        aws.cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace=names.EMR_NAMESPACE,
            MetricName=names.EMR_YARN_MEMORY_AVAILABLE_PCT,
            Dimensions=[{"Name": names.DIM_JOB_FLOW_ID, "Value": c.cluster_id}],
            Statistic="Average",
            Period=300,
            EvaluationPeriods=1,
            Threshold=15.0,
            ComparisonOperator="LessThanThreshold",
        )
        aws.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="bench")
    return str(c.cluster_id)


def setup(url: str) -> tuple[Any, Any, str, list[str]]:
    from sparkscale import clock, names
    from sparkscale.adapters.discovery import DynamoClusterRegistry

    from tests.scale.shell_support import clients, create_table

    aws = clients(url)
    import boto3

    sqs = boto3.session.Session(region_name="us-east-1").client("sqs", endpoint_url=url)
    table = create_table(aws.dynamodb)
    registry = DynamoClusterRegistry(aws.dynamodb, table)
    now = clock.utcnow()
    with ThreadPoolExecutor(max_workers=4) as pool:  # moto runs in its own process: setup in parallel
        ids = list(pool.map(lambda i: _one_cluster(aws, registry, i, now), range(CLUSTERS)))
    queue_url = sqs.create_queue(
        QueueName="sparkscale-evaluations", Attributes={"VisibilityTimeout": str(round(VISIBILITY_S))}
    )["QueueUrl"]
    topic = aws.sns.create_topic(Name="sparkscale-operators")["TopicArn"]
    os.environ.update(
        {
            names.ENV_TABLE_NAME: table,
            names.ENV_OPERATOR_TOPIC_ARN: topic,
            names.ENV_ALARM_PREFIX: "sparkscale",
            names.ENV_CONFIG_JSON: json.dumps(SETTINGS),
            names.ENV_EVALUATION_QUEUE_URL: queue_url,
        }
    )
    return aws, sqs, queue_url, ids


def serialize_powertools_log_keys() -> None:
    """Lambda runs one invocation per process; here threads share one process: one lock around the
    formatter's per-process keys (as tests/handlers' fifty-thread test does)."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    lock = threading.RLock()
    for name in ("format", "append_keys", "remove_keys", "clear_state"):
        original = getattr(LambdaPowertoolsFormatter, name)

        def serialized(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(LambdaPowertoolsFormatter, name, serialized)


def watch_evaluations(rec: Recorder) -> None:
    """Record evaluations done (fanout.evaluate returned) and those running under the lease at once."""
    from sparkscale.usecases import fanout as fanout_usecase
    from sparkscale.usecases import scale

    inner_evaluate, inner_locked = fanout_usecase.evaluate, scale._evaluate

    def evaluate(evaluation: Any, **kw: Any) -> Any:
        result = inner_evaluate(evaluation, **kw)
        with rec.lock:
            rec.done.setdefault(evaluation.cluster_id, time.perf_counter())
        return result

    def locked(shell: Any) -> Any:
        with rec.lock:
            rec.running[shell.cluster_id] += 1
            if rec.running[shell.cluster_id] > 1:
                rec.overlaps += 1
        try:
            return inner_locked(shell)
        finally:
            with rec.lock:
                rec.running[shell.cluster_id] -= 1

    fanout_usecase.evaluate = evaluate
    scale._evaluate = locked


def worker(sqs: Any, url: str, stop: threading.Event, failures: collections.Counter[str]) -> None:
    """One unit of the fanout Lambda's concurrency: receive one message, invoke the handler, delete it
    unless it was reported failed (then it comes back after the visibility timeout, as in Lambda)."""
    from handlers import fanout

    from tests.scale.shell_support import FakeLambdaContext

    while not stop.is_set():
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
        for m in msgs:
            record = {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            }
            out = fanout.handler({"Records": [record]}, FakeLambdaContext(aws_request_id=m["MessageId"]))
            if out["batchItemFailures"]:
                failures[m["MessageId"]] += 1
                continue
            with contextlib.suppress(Exception):  # received again meanwhile: its new receipt deletes it
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by this process, or by the process `pid` (Linux /proc)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RunFigures:
    period_s: float
    evaluated: int
    overlaps: int
    rates: dict[str, tuple[float, float]]  # api -> (mean, peak over 1 s) calls/s as measured
    throttled: int
    failed_messages: int
    within_two_periods: bool
    cpu_ms_per_evaluation: float  # this process's and the moto server's CPU, per evaluation


def run(
    sqs: Any, url: str, ids: list[str], rec: Recorder, *, periods: int, throttle: float, moto_pid: int
) -> RunFigures:
    from handlers import common, reconcile
    from sparkscale import clock

    from tests.scale.shell_support import FakeLambdaContext

    rec.reset(throttle)
    stop = threading.Event()
    failures: collections.Counter[str] = collections.Counter()
    threads = [threading.Thread(target=worker, args=(sqs, url, stop, failures)) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    scaled_period = PERIOD_S / TIME_SCALE
    cpu0 = cpu_s() + cpu_s(moto_pid)
    t0 = time.perf_counter()
    base = clock.utcnow()
    for k in range(periods):
        wait = t0 + k * scaled_period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        # the schedule's clock moves a whole period per tick (a new period key), however compressed
        tick = base + timedelta(seconds=PERIOD_S * k)
        common.set_clock(functools.partial(lambda at: at, tick))
        reconcile.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, FakeLambdaContext())
    deadline = t0 + (periods + 1) * scaled_period + 30
    shown = 0.0
    while len(rec.done) < len(ids) and time.perf_counter() < deadline:
        time.sleep(0.2)
        if time.perf_counter() - shown > 10:
            shown = time.perf_counter()
            print(f"  ... {len(rec.done)} evaluated, {len(rec.calls)} calls", file=sys.stderr)
    elapsed = max(rec.done.values(), default=t0) - t0
    cpu = cpu_s() + cpu_s(moto_pid) - cpu0
    stop.set()
    for t in threads:
        t.join()
    sqs.purge_queue(QueueUrl=url)  # what a run left (retries of failed messages) never counts for the next
    common.set_clock(None)
    return RunFigures(
        period_s=elapsed,
        evaluated=len(rec.done),
        overlaps=rec.overlaps,
        rates=_rates(rec.calls, max(elapsed, 1.0)),
        throttled=rec.throttled,
        failed_messages=sum(failures.values()),
        within_two_periods=bool(rec.done) and elapsed <= 2 * scaled_period and len(rec.done) == len(ids),
        cpu_ms_per_evaluation=1000 * cpu / max(len(rec.done), 1),
    )


def _rates(calls: list[tuple[float, str]], span_s: float) -> dict[str, tuple[float, float]]:
    """api -> (calls a second over the run, most calls in any one second)."""
    by_api: dict[str, list[float]] = collections.defaultdict(list)
    for at, api in calls:
        by_api[api].append(at)
    out = {}
    for api, times in sorted(by_api.items()):
        times.sort()
        span = span_s
        peak, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - 1.0:
                j += 1
            peak = max(peak, i - j + 1)
        out[api] = (len(times) / span, float(peak))
    return out


@contextlib.contextmanager
def moto_process() -> Iterator[tuple[str, int]]:
    """A moto server on 127.0.0.1 in its own process: the handlers' threads do not share its interpreter
    lock (on this 2-core machine: one core each)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main() -> None:
    from tests.scale.shell_support import FAKE_ENV

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the moto process is stopped on the way out

    os.environ.update(FAKE_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "sparkscale-fanout"
    os.environ["POWERTOOLS_SERVICE_NAME"] = "sparkscale"
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    t_start = time.perf_counter()
    rec = Recorder()
    with moto_process() as (url, moto_pid), contextlib.redirect_stdout(io.StringIO()) as emf:
        os.environ["AWS_ENDPOINT_URL"] = url
        _aws, sqs, queue_url, ids = setup(url)
        from handlers import common

        rt = common.runtime()
        for client in (
            rt.clients.emr,
            rt.clients.cloudwatch,
            rt.clients.dynamodb,
            rt.clients.sns,
            rt.clients.ec2,
        ):
            instrument(client, rec)
        sending: Any = rt.evaluations  # the SQS adapter, with its own client
        instrument(sending._sqs, rec)
        rt.evaluations = ScaledQueue(rt.evaluations)
        serialize_powertools_log_keys()
        watch_evaluations(rec)
        compress_backoff()
        setup_s = time.perf_counter() - t_start
        normal = run(sqs, queue_url, ids, rec, periods=1, throttle=0.0, moto_pid=moto_pid)
        faulty = run(sqs, queue_url, ids, rec, periods=2, throttle=THROTTLED_SHARE, moto_pid=moto_pid)
    total_s = time.perf_counter() - t_start
    emf_documents = emf.getvalue().count('"_aws"')  # the handlers' EMF output, kept off the figures
    load = os.getloadavg()[0]
    print(
        f"setup: {CLUSTERS} clusters on moto in {setup_s:.0f} s; total {total_s:.0f} s; {emf_documents} EMF "
        f"documents; load average {load:.1f} on {os.cpu_count()} cores"
    )
    for label, f in (
        ("normal run", normal),
        (f"fault run ({THROTTLED_SHARE:.0%} of EMR/DynamoDB calls throttled)", faulty),
    ):
        print(
            f"{label}: {f.evaluated}/{CLUSTERS} evaluated in {f.period_s:.1f} s "
            f"(compressed period {PERIOD_S / TIME_SCALE:.0f} s = {PERIOD_S} s deployed), "
            f"{f.overlaps} evaluations of one cluster at once, {f.throttled} throttled answers, "
            f"{f.failed_messages} messages retried, within two periods: {f.within_two_periods}; "
            f"the harness evaluated {f.evaluated / max(f.period_s, 1e-9):.1f} clusters a second, "
            f"{f.cpu_ms_per_evaluation:.0f} ms of CPU each (handlers and moto)"
        )
        for api, (mean, peak) in f.rates.items():
            pace = mean / TIME_SCALE
            print(f"   {api:34s} {mean:6.1f}/s mean, {peak:4.0f}/s peak measured; deployed {pace:5.2f}/s")
    if os.environ.get(WRITE_DOCS_ENV, "") == "1":
        write_row(normal, faulty)


def write_row(normal: RunFigures, faulty: RunFigures) -> None:
    """This benchmark's row of the table in docs/benchmarks.md (replaced, or put before bench_frontier's)."""

    def pace(f: RunFigures, api: str) -> str:
        return f"{f.rates.get(api, (0.0, 0.0))[0] / TIME_SCALE:.2f}/s"

    what = (
        f"[the reconcile fan-out](many-clusters.md) on a moto server: {CLUSTERS} clusters managed by tag "
        f"({PRESSURED} in ALARM), per-call latency, {CONCURRENCY} workers calling the real handlers, time "
        f"compressed {TIME_SCALE:g}x; then {THROTTLED_SHARE:.0%} of EMR and DynamoDB calls throttled"
    )
    figure = (
        f"{normal.evaluated}/{CLUSTERS} evaluated in {normal.period_s * TIME_SCALE:.0f} s of deployed time "
        f"(period {PERIOD_S} s), {normal.overlaps} concurrent evaluations of a cluster; deployed pace: "
        f"DescribeCluster {pace(normal, 'emr:DescribeCluster')}, ListInstanceGroups "
        f"{pace(normal, 'emr:ListInstanceGroups')}, "
        f"GetMetricData {pace(normal, 'cloudwatch:GetMetricData')}; "
        f"throttled: {faulty.evaluated}/{CLUSTERS} in {faulty.period_s * TIME_SCALE:.0f} s, "
        f"{faulty.failed_messages} messages retried, {faulty.overlaps} concurrent; the harness's pace "
        f"{normal.evaluated / max(normal.period_s, 1e-9):.1f} evaluations/s, "
        f"{normal.cpu_ms_per_evaluation:.0f} ms of CPU each (handlers and moto), at a load average of "
        f"{os.getloadavg()[0]:.0f} on {os.cpu_count()} cores (the period needs "
        f"{CLUSTERS * TIME_SCALE / PERIOD_S:.1f}/s)"
    )
    target = "all within a period; within two periods when throttled; none at once"
    row = f"{ROW_PREFIX} {what} | {figure} | {target} |"
    text = BENCH_PAGE.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.startswith(ROW_PREFIX)]
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| `bench_frontier.py` |"))
    lines.insert(at, row)
    BENCH_PAGE.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
