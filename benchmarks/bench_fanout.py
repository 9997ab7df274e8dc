"""Fan-out load test: 500 clusters managed by tag on a moto server (127.0.0.1), a realistic latency injected
into every AWS call, and the real handlers: the reconcile schedule queues one evaluation per cluster that
needs one to a real (moto) SQS queue, and worker threads standing in for the fanout Lambda's concurrency
(`fanout_max_concurrency`) receive each message and call `handlers.fanout.handler` with it.

Runs: stress (every cluster queued: at_minimum_recheck_s = 0), realistic (the default selection: only the
clusters in ALARM or above their minimum), then SPARKSCALE_FANOUT_FAULT_RUNS (1) throttled runs (every cluster
queued, a share of the EMR and DynamoDB calls throttled, two periods: every cluster still evaluated within
two periods). Measured: the time from the schedule to the last queued cluster's first evaluation, calls per
second per API, every cluster evaluated, none evaluated twice at once (under the lease), where the time goes
(each evaluation's wall time, botocore's backoff, the retried messages, the CPU of the harness and of moto).

Time may be compressed TIME_SCALE times (default 1: the deployed pace, ~7 minutes): the period's spread (the
SQS delays), the queue's visibility timeout, a failed message's retry delay and botocore's retry backoff are
divided by it; the per-call latencies are real. Call rates are printed as measured and as they would be at
the deployed pace.

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
ABOVE_MINIMUM = 50  # clusters with 2 task nodes, no alarm, no metrics (held above their minimum)
RECHECK_S = 600  # at_minimum_recheck_s of the realistic run (the default)
FAULT_RUNS = int(os.environ.get("SPARKSCALE_FANOUT_FAULT_RUNS", "1"))  # throttled runs, one after another
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
    evaluations: int = 0  # every evaluation, repeats of a later period included
    seconds: list[float] = field(default_factory=list)  # wall time of each evaluation
    backoff_s: float = 0.0  # botocore's retry sleeps, summed over every thread
    failed_at: dict[str, float] = field(default_factory=dict)  # cluster -> when its message first failed
    running: collections.Counter[str] = field(default_factory=collections.Counter)
    overlaps: int = 0
    throttle_share: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(21))

    def reset(self, throttle_share: float) -> None:
        with self.lock:
            self.calls.clear()
            self.done.clear()
            self.seconds.clear()
            self.failed_at.clear()
            self.throttled = self.overlaps = self.evaluations = 0
            self.backoff_s = 0.0
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
    """The real SQS adapter with the plan's delays and a failed message's retry delay / TIME_SCALE."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def send(self, evaluations: Sequence[Any]) -> int:
        return int(self.inner.send([replace(e, delay_s=round(e.delay_s / TIME_SCALE)) for e in evaluations]))

    def retry_later(self, receipt_handle: str, delay_s: int) -> None:
        self.inner.retry_later(receipt_handle, max(1, round(delay_s / TIME_SCALE)))


def compress_backoff(rec: Recorder) -> None:
    """botocore's retry backoff divided by TIME_SCALE, like every other wait of the benchmark; the sleeps
    are summed (where a throttled run's time goes)."""
    from botocore.retries.standard import ExponentialBackoff

    inner = ExponentialBackoff.delay_amount

    def delay_amount(self: Any, context: Any) -> float:
        delay = float(inner(self, context)) / TIME_SCALE
        with rec.lock:
            rec.backoff_s += delay
        return delay

    ExponentialBackoff.delay_amount = delay_amount


def _one_cluster(aws: Any, registry: Any, i: int, now: Any) -> str:
    from sparkscale import names
    from sparkscale.ports import Registration

    from tests.scale.shell_support import create_cluster, put_pressure

    busy = i < PRESSURED
    above = PRESSURED <= i < PRESSURED + ABOVE_MINIMUM
    c = create_cluster(aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 2 if busy or above else 0)])
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
        t = time.perf_counter()
        result = inner_evaluate(evaluation, **kw)
        with rec.lock:
            rec.done.setdefault(evaluation.cluster_id, time.perf_counter())
            rec.evaluations += 1
            rec.seconds.append(time.perf_counter() - t)
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


def worker(
    sqs: Any, url: str, stop: threading.Event, failures: collections.Counter[str], rec: Recorder
) -> None:
    """One unit of the fanout Lambda's concurrency: receive one message, invoke the handler, delete it
    unless it was reported failed (then it comes back after the visibility timeout, as in Lambda)."""
    from handlers import fanout

    from tests.scale.shell_support import FakeLambdaContext

    while not stop.is_set():
        msgs = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        for m in msgs:
            record = {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),  # as Lambda passes them
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            }
            out = fanout.handler({"Records": [record]}, FakeLambdaContext(aws_request_id=m["MessageId"]))
            if out["batchItemFailures"]:
                failures[m["MessageId"]] += 1
                cid = json.loads(m["Body"]).get("cluster_id", "")
                with rec.lock:
                    rec.failed_at.setdefault(cid, time.perf_counter())
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
    label: str
    period_s: float  # from the first schedule to the last first evaluation of a queued cluster
    queued: int  # clusters the first schedule queued
    at_minimum: int  # clusters it left alone (recently found at their minimum)
    evaluated: int
    evaluations: int  # every evaluation, a later period's repeats included
    overlaps: int
    rates: dict[str, tuple[float, float]]  # api -> (mean, peak over 1 s) calls/s as measured
    throttled: int
    failed_messages: int
    retried_done_s: list[float]  # for each cluster whose first message failed: when it was evaluated
    within_two_periods: bool
    cpu_ms_per_evaluation: float  # this process's and the moto server's CPU, per evaluation
    cpu_harness_s: float
    cpu_moto_s: float
    backoff_s: float  # botocore's retry sleeps, summed over the workers
    p50_s: float  # one evaluation's wall time
    p95_s: float


def run(
    sqs: Any,
    url: str,
    rec: Recorder,
    *,
    label: str,
    periods: int,
    throttle: float,
    moto_pid: int,
    recheck_s: int,
) -> RunFigures:
    """Schedule `periods` periods (the first at once, the next a period later each) with the selection's
    at_minimum_recheck_s = `recheck_s` (0: every cluster), and wait until every cluster the first period
    queued was evaluated once (or a deadline)."""
    from handlers import common, reconcile
    from sparkscale import clock

    from tests.scale.shell_support import FakeLambdaContext

    rt = common.runtime()
    rt.config = replace(rt.config, at_minimum_recheck_s=recheck_s)
    rec.reset(throttle)
    stop = threading.Event()
    failures: collections.Counter[str] = collections.Counter()
    threads = [
        threading.Thread(target=worker, args=(sqs, url, stop, failures, rec)) for _ in range(CONCURRENCY)
    ]
    for t in threads:
        t.start()
    scaled_period = PERIOD_S / TIME_SCALE
    cpu0_self, cpu0_moto = cpu_s(), cpu_s(moto_pid)
    t0 = time.perf_counter()
    base = clock.utcnow()
    first: dict[str, Any] = {}
    for k in range(periods):
        wait = t0 + k * scaled_period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        # the schedule's clock moves a whole period per tick (a new period key), however compressed
        tick = base + timedelta(seconds=PERIOD_S * k)
        common.set_clock(functools.partial(lambda at: at, tick))
        out = reconcile.handler(
            {"source": "aws.events", "detail-type": "Scheduled Event"}, FakeLambdaContext()
        )
        first = first or out
    expected = int(first.get("queued", 0))
    deadline = t0 + (periods + 1) * scaled_period + 30
    shown = time.perf_counter()
    while len(rec.done) < expected and time.perf_counter() < deadline:
        time.sleep(0.2)
        if time.perf_counter() - shown > 30:
            shown = time.perf_counter()
            print(f"  ... {len(rec.done)}/{expected} evaluated, {len(rec.calls)} calls", file=sys.stderr)
    elapsed = max(rec.done.values(), default=t0) - t0
    cpu_harness, cpu_moto = cpu_s() - cpu0_self, cpu_s(moto_pid) - cpu0_moto
    stop.set()
    for t in threads:
        t.join()
    sqs.purge_queue(QueueUrl=url)  # what a run left (retries of failed messages) never counts for the next
    common.set_clock(None)
    secs = sorted(rec.seconds) or [0.0]
    retried = sorted(rec.done[c] - t0 for c, at in rec.failed_at.items() if rec.done.get(c, at + 1) > at)
    return RunFigures(
        label=label,
        period_s=elapsed,
        queued=expected,
        at_minimum=int(first.get("at_minimum", 0)),
        evaluated=len(rec.done),
        evaluations=rec.evaluations,
        overlaps=rec.overlaps,
        rates=_rates(rec.calls, max(elapsed, 1.0)),
        throttled=rec.throttled,
        failed_messages=sum(failures.values()),
        retried_done_s=retried,
        within_two_periods=bool(rec.done) and elapsed <= 2 * scaled_period and len(rec.done) >= expected,
        cpu_ms_per_evaluation=1000 * (cpu_harness + cpu_moto) / max(rec.evaluations, 1),
        cpu_harness_s=cpu_harness,
        cpu_moto_s=cpu_moto,
        backoff_s=rec.backoff_s,
        p50_s=secs[len(secs) // 2],
        p95_s=secs[min(len(secs) - 1, int(len(secs) * 0.95))],
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
        _aws, sqs, queue_url, _ids = setup(url)
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
        compress_backoff(rec)
        setup_s = time.perf_counter() - t_start
        # the stress runs queue every cluster (at_minimum_recheck_s = 0), so the selection cannot make
        # them light; the realistic run queues only what the records and the alarms say needs evaluating
        normal = run(
            sqs, queue_url, rec, label="stress", periods=1, throttle=0.0, recheck_s=0, moto_pid=moto_pid
        )
        usual = run(
            sqs,
            queue_url,
            rec,
            label="realistic",
            periods=1,
            throttle=0.0,
            recheck_s=RECHECK_S,
            moto_pid=moto_pid,
        )
        faulty = [
            run(
                sqs,
                queue_url,
                rec,
                label=f"throttled {n + 1}",
                periods=2,
                throttle=THROTTLED_SHARE,
                recheck_s=0,
                moto_pid=moto_pid,
            )
            for n in range(FAULT_RUNS)
        ]
    total_s = time.perf_counter() - t_start
    emf_documents = emf.getvalue().count('"_aws"')  # the handlers' EMF output, kept off the figures
    load = os.getloadavg()[0]
    print(
        f"setup: {CLUSTERS} clusters on moto in {setup_s:.0f} s ({PRESSURED} in ALARM, {ABOVE_MINIMUM} more "
        f"above their minimum); total {total_s:.0f} s; {emf_documents} EMF documents; load average "
        f"{load:.1f} on {os.cpu_count()} cores"
    )
    for f in (normal, usual, *faulty):
        describe(f)
    if os.environ.get(WRITE_DOCS_ENV, "") == "1":
        write_row(normal, usual, faulty)


def describe(f: RunFigures) -> None:
    throttling = f"{THROTTLED_SHARE:.0%} of EMR/DynamoDB calls throttled" if f.throttled else "no throttling"
    margin = 2 * PERIOD_S / TIME_SCALE - f.period_s
    print(
        f"{f.label} run ({throttling}): queued {f.queued}, left at their minimum {f.at_minimum}; "
        f"{f.evaluated}/{f.queued} evaluated in {f.period_s:.1f} s (period {PERIOD_S / TIME_SCALE:.0f} s; "
        f"two periods with {margin:.0f} s to spare: {f.within_two_periods}), {f.overlaps} evaluations of one "
        f"cluster at once, {f.throttled} throttled answers, {f.failed_messages} messages retried"
    )
    print(
        f"   {f.evaluations} evaluations, each {f.p50_s:.2f} s (p50), {f.p95_s:.2f} s (p95) of wall time; "
        f"botocore's backoff {f.backoff_s:.0f} s in all; CPU {f.cpu_ms_per_evaluation:.0f} ms an evaluation "
        f"(this process {f.cpu_harness_s:.0f} s, moto {f.cpu_moto_s:.0f} s); clusters whose first message "
        f"failed were evaluated at {[round(x) for x in f.retried_done_s]} s"
    )
    for api, (mean, peak) in f.rates.items():
        pace = mean / TIME_SCALE
        print(f"   {api:34s} {mean:6.1f}/s mean, {peak:4.0f}/s peak measured; deployed {pace:5.2f}/s")


def write_row(normal: RunFigures, usual: RunFigures, faulty: Sequence[RunFigures]) -> None:
    """This benchmark's row of the table in docs/benchmarks.md (replaced, or put before bench_frontier's)."""

    def pace(f: RunFigures, api: str) -> str:
        return f"{f.rates.get(api, (0.0, 0.0))[0] / TIME_SCALE:.2f}/s"

    what = (
        f"[the reconcile fan-out](many-clusters.md) on a moto server: {CLUSTERS} clusters managed by tag "
        f"({PRESSURED} in ALARM, {ABOVE_MINIMUM} more above their minimum), per-call latency, {CONCURRENCY} "
        f"workers calling the real handlers, time compressed {TIME_SCALE:g}x; every cluster queued (stress), "
        f"then only those that need it (realistic), then {THROTTLED_SHARE:.0%} of EMR and DynamoDB calls "
        f"throttled, every cluster queued, for two periods"
    )
    throttled = "; ".join(
        f"{f.evaluated}/{f.queued} in {f.period_s * TIME_SCALE:.0f} s "
        f"({2 * PERIOD_S - f.period_s * TIME_SCALE:.0f} s to spare, {f.throttled} throttled answers, "
        f"{f.failed_messages} messages retried, {f.overlaps} concurrent)"
        for f in faulty
    )
    figure = (
        f"stress: {normal.evaluated}/{CLUSTERS} evaluated in {normal.period_s * TIME_SCALE:.0f} s of "
        f"deployed time (period {PERIOD_S} s), {normal.overlaps} concurrent evaluations of a cluster; "
        f"deployed pace: DescribeCluster {pace(normal, 'emr:DescribeCluster')}, ListInstanceGroups "
        f"{pace(normal, 'emr:ListInstanceGroups')}, "
        f"GetMetricData {pace(normal, 'cloudwatch:GetMetricData')}; "
        f"realistic: {usual.queued} queued, {usual.at_minimum} left at their minimum, "
        f"{usual.evaluated}/{usual.queued} evaluated in {usual.period_s * TIME_SCALE:.0f} s, DescribeCluster "
        f"{pace(usual, 'emr:DescribeCluster')}; throttled: {throttled}; "
        f"{normal.cpu_ms_per_evaluation:.0f} ms of CPU an evaluation (handlers and moto), at a load average "
        f"of {os.getloadavg()[0]:.0f} on {os.cpu_count()} cores"
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
