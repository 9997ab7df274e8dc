"""The YARN collector: poll the ResourceManager's REST API every 10 s, publish once a minute (master only).

`GET <rm>/ws/v1/cluster/metrics` gives `clusterMetrics` with allocatedMB, availableMB, totalMB,
containersPending, appsPending, appsRunning in every Hadoop 2.x/3.x. `pendingMB` is newer: Hadoop's own
ClusterMetricsInfo.java has it in current trunk but not in older 3.x sources (see tests/fixtures/yarn/
PROVENANCE.md), and the REST docs never listed it. When it is absent, the pending memory comes from the root
queue's QueueMetrics over the RM's JMX servlet, `GET <rm>/jmx?qry=Hadoop:service=ResourceManager,
name=QueueMetrics,q0=root` → `PendingMB` (a QueueMetrics gauge in every Hadoop 2.x/3.x; same port). When both
fail the minute carries the other six metrics and no YarnPendingMemoryMB datum.

Robustness: every request has a socket timeout (3 s by default) and an overall deadline, reads at most
`max_bytes`, follows no redirect (a standby RM of an HA master group redirects to the active one: only the
active RM's node publishes), and ignores proxy variables. Anything else than a well-formed body with
non-negative integers is one error, logged and counted; a minute without a single good sample publishes
nothing (never zeros). It all runs on its own thread with its own Publisher and retry buffer, so a slow or
broken RM or a YARN publish failure never delays the heap metrics.

Cost (CloudWatch list prices, us-east-1, stated as assumptions: $0.30 per custom metric-month for the first
10,000 metrics, prorated by the hour; PutMetricData $0.01 per 1,000 requests; 730 h = 43,800 min a month):
  60 s (default): 7 metrics x $0.30 = $2.10, plus 1 call/min (the Yarn namespace is its own call)
                  = 43,800 calls = $0.44; about $2.54 per cluster-month.
  10 s (--yarn-high-resolution): the same 7 metrics ($2.10; a high-resolution metric costs the same to
                  store) plus 6 calls/min = 262,800 calls = $2.63; about $4.73 per cluster-month. Alarms on
                  high-resolution metrics with a period under 60 s cost $0.30 instead of $0.10 each.
Storage of a high-resolution datum costs the same; only the calls differ (and sub-minute data is kept at
that resolution for 3 hours only). The account-wide free tier (10 metrics, 1 million API requests a month)
would absorb one cluster's calls; the figures above are without it. Sources: the CloudWatch pricing page as
the brief states it, and secondary summaries of it (the official page was not in the search index).
SparkExecutorsNeeded/Target add 2 metrics ($0.60 per cluster-month) and no calls (they ride in the heap
batch).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, NamedTuple

from sparkscale import names

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from sparkscale.agent.nodes import NodeReporter
    from sparkscale.agent.publish import Publisher

CLUSTER_METRICS_PATH = "/ws/v1/cluster/metrics"
ROOT_QUEUE_JMX_PATH = "/jmx?qry=Hadoop:service=ResourceManager,name=QueueMetrics,q0=root"
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_MAX_BYTES = 256 * 1024  # a clusterMetrics body is ~1-2 KiB, the root QueueMetrics bean ~3 KiB
MAX_VALUE = 2**53  # larger than any real MB or count; beyond it a float is no longer exact
_CHUNK = 16 * 1024

# (metric, unit, YarnSample field)
METRICS = (
    (names.YARN_PENDING_MEMORY_MB, "Megabytes", "pending_mb"),
    (names.YARN_ALLOCATED_MEMORY_MB, "Megabytes", "allocated_mb"),
    (names.YARN_AVAILABLE_MEMORY_MB, "Megabytes", "available_mb"),
    (names.YARN_TOTAL_MEMORY_MB, "Megabytes", "total_mb"),
    (names.YARN_CONTAINERS_PENDING, "Count", "containers_pending"),
    (names.YARN_APPS_PENDING, "Count", "apps_pending"),
    (names.YARN_APPS_RUNNING, "Count", "apps_running"),
)
# clusterMetrics key of each field read from it (pendingMB is optional, see the module docstring)
_REQUIRED = (
    ("allocated_mb", "allocatedMB"),
    ("available_mb", "availableMB"),
    ("total_mb", "totalMB"),
    ("containers_pending", "containersPending"),
    ("apps_pending", "appsPending"),
    ("apps_running", "appsRunning"),
)
ERROR_KINDS = (
    "unreachable",  # connection refused, DNS, reset
    "timeout",  # no answer (or no whole answer) within the timeout
    "http_status",  # an answer other than 200
    "standby",  # a redirect: this RM is the standby of an HA pair
    "too_large",  # more than max_bytes
    "not_json",
    "bad_shape",  # JSON, but not {"clusterMetrics": {...}} with every field
    "bad_value",  # a field that is not a non-negative integer
)


class YarnError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class YarnSample(NamedTuple):
    pending_mb: float | None  # None: neither pendingMB nor the root queue's PendingMB could be read
    allocated_mb: float
    available_mb: float
    total_mb: float
    containers_pending: float
    apps_pending: float
    apps_running: float


def _count(value: Any, key: str) -> float:
    # bool is an int in Python, and JSON true is no count
    if isinstance(value, bool) or not isinstance(value, int):
        raise YarnError("bad_value", f"{key}={value!r} is not an integer")
    if not 0 <= value < MAX_VALUE:
        raise YarnError("bad_value", f"{key}={value} is out of range")
    return float(value)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise YarnError("not_json", f"{type(exc).__name__}: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise YarnError("bad_shape", f"a JSON {type(doc).__name__}, not an object")
    return doc


def parse_cluster_metrics(body: bytes) -> tuple[dict[str, float], float | None]:
    """A /ws/v1/cluster/metrics body → (the six required values by YarnSample field, pendingMB or None)."""
    metrics = _json_object(body).get("clusterMetrics")
    if not isinstance(metrics, dict):
        raise YarnError("bad_shape", "no clusterMetrics object")
    values = {}
    for field, key in _REQUIRED:
        if key not in metrics:
            raise YarnError("bad_shape", f"clusterMetrics has no {key}")
        values[field] = _count(metrics[key], key)
    pending = _count(metrics["pendingMB"], "pendingMB") if "pendingMB" in metrics else None
    return values, pending


def parse_root_queue_pending_mb(body: bytes) -> float:
    """A /jmx?qry=…QueueMetrics,q0=root body → the root queue's PendingMB."""
    beans = _json_object(body).get("beans")
    if not isinstance(beans, list):
        raise YarnError("bad_shape", "no beans list")
    for bean in beans:
        if (
            isinstance(bean, dict)
            and bean.get("name") == "Hadoop:service=ResourceManager,name=QueueMetrics,q0=root"
        ):
            if "PendingMB" not in bean:
                raise YarnError("bad_shape", "the root QueueMetrics bean has no PendingMB")
            return _count(bean["PendingMB"], "PendingMB")
    raise YarnError("bad_shape", "no root QueueMetrics bean")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def fetch(
    url: str, *, timeout_s: float, max_bytes: int, monotonic: Callable[[], float] = time.monotonic
) -> bytes:
    """GET `url`: the body of a 200, at most `max_bytes`, within about `timeout_s`; else YarnError."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    # the CLI only accepts http(s) base URLs (cli._validate)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    deadline = monotonic() + timeout_s
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = response.getcode()
            if status != 200:
                raise YarnError("http_status", f"HTTP {status}")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise YarnError("too_large", f"more than {max_bytes} bytes")
                chunks.append(chunk)
                if monotonic() > deadline:
                    raise YarnError("timeout", f"body not read within {timeout_s:g}s")
            return b"".join(chunks)
    except YarnError:
        raise
    except urllib.error.HTTPError as exc:
        kind = "standby" if 300 <= exc.code < 400 else "http_status"
        raise YarnError(kind, f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        kind = "timeout" if isinstance(reason, socket.timeout) else "unreachable"
        raise YarnError(kind, str(reason)[:200]) from None
    except socket.timeout:  # noqa: UP041 - not an alias of TimeoutError before Python 3.10
        raise YarnError("timeout", f"no answer within {timeout_s:g}s") from None
    except (OSError, ValueError) as exc:  # reset mid-body, http.client.IncompleteRead/BadStatusLine, ...
        raise YarnError("unreachable", f"{type(exc).__name__}: {str(exc)[:200]}") from None


class YarnCounters:
    """What every poll did since the agent started. Plain ints, never reset."""

    def __init__(self) -> None:
        self.polls = 0
        self.good_polls = 0
        self.pending_from_jmx = 0  # pendingMB missing from clusterMetrics, read from the root queue
        self.pending_unavailable = 0  # neither had it: the sample has no pending memory
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.skipped_minutes = 0  # periods (minutes, or 10 s slots) without a good sample: nothing published
        self.last_error = ""

    @property
    def failed_polls(self) -> int:
        return sum(self.errors.values())


class YarnCollector:
    """One poll = one YarnSample or None (counted, logged by the caller). Never raises YarnError."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fetcher: Callable[..., bytes] = fetch,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.counters = YarnCounters()
        self._fetch = fetcher

    def _get(self, path: str) -> bytes:
        return self._fetch(self.base_url + path, timeout_s=self.timeout_s, max_bytes=self.max_bytes)

    def get(self, path: str, max_bytes: int | None = None) -> bytes:
        """GET `path` of the RM (the node report's reads): the body, or YarnError."""
        return self._fetch(
            self.base_url + path, timeout_s=self.timeout_s, max_bytes=max_bytes or self.max_bytes
        )

    def poll(self) -> YarnSample | None:
        self.counters.polls += 1
        try:
            values, pending = parse_cluster_metrics(self._get(CLUSTER_METRICS_PATH))
        except YarnError as exc:
            self.counters.errors[exc.kind] += 1
            self.counters.last_error = str(exc)
            return None
        if pending is None:
            try:
                pending = parse_root_queue_pending_mb(self._get(ROOT_QUEUE_JMX_PATH))
                self.counters.pending_from_jmx += 1
            except YarnError as exc:
                self.counters.pending_unavailable += 1
                self.counters.last_error = f"pending memory: {exc}"
        self.counters.good_polls += 1
        return YarnSample(pending_mb=pending, **values)


class StatWindow:
    """The samples of one publication period, as a CloudWatch statistic set per metric."""

    def __init__(self) -> None:
        self.samples = 0
        self._stats: dict[str, list[float]] = {}  # field -> [count, sum, min, max]

    def add(self, sample: YarnSample) -> None:
        self.samples += 1
        for _metric, _unit, field in METRICS:
            value = getattr(sample, field)
            if value is None:
                continue
            stat = self._stats.get(field)
            if stat is None:
                self._stats[field] = [1.0, value, value, value]
            else:
                stat[0] += 1
                stat[1] += value
                stat[2] = min(stat[2], value)
                stat[3] = max(stat[3], value)

    def statistic_sets(self) -> dict[str, dict[str, float]]:
        return {
            field: {"SampleCount": s[0], "Sum": s[1], "Minimum": s[2], "Maximum": s[3]}
            for field, s in self._stats.items()
        }


def _iso_utc(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def minute_data(window: StatWindow, *, cluster_id: str, timestamp: float) -> list[dict[str, Any]]:
    """One statistic-set datum per metric that had at least one value; [] for an empty window."""
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    stats = window.statistic_sets()
    return [
        {
            "MetricName": metric,
            "Dimensions": dims,
            "Timestamp": _iso_utc(timestamp),
            "StatisticValues": stats[field],
            "Unit": unit,
        }
        for metric, unit, field in METRICS
        if field in stats
    ]


def sample_data(sample: YarnSample, *, cluster_id: str, timestamp: float) -> list[dict[str, Any]]:
    """High resolution: one datum per metric for one 10 s sample (StorageResolution 1)."""
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    return [
        {
            "MetricName": metric,
            "Dimensions": dims,
            "Timestamp": _iso_utc(timestamp),
            "Value": getattr(sample, field),
            "Unit": unit,
            "StorageResolution": 1,
        }
        for metric, unit, field in METRICS
        if getattr(sample, field) is not None
    ]


def _align(epoch_s: float, step_s: float) -> float:
    return (epoch_s // step_s) * step_s


def format_line(event: str, collector: YarnCollector, publisher: Publisher, **extra: Any) -> str:
    c = collector.counters
    parts = [f"yarn-{event}"]
    parts += [f"{key}={value}" for key, value in extra.items()]
    parts += [
        f"polls={c.polls}",
        f"good={c.good_polls}",
        f"failed={c.failed_polls}",
        f"pending_from_jmx={c.pending_from_jmx}",
        f"pending_unavailable={c.pending_unavailable}",
        f"skipped_minutes={c.skipped_minutes}",
        f"pending={publisher.pending_batches}",
        f"dropped_batches={publisher.dropped_batches}",
    ]
    parts += [f"{kind}={count}" for kind, count in c.errors.items() if count]
    if c.last_error:
        parts.append(f"last_error={c.last_error!r}")
    return " ".join(parts)


class YarnLoop:
    """Poll every `poll_s` on wall-clock boundaries; publish each finished `period_s` (or every sample with
    high resolution). Owns its Publisher. `run` returns when `stop` is set; nothing in it raises."""

    def __init__(
        self,
        *,
        collector: YarnCollector,
        publisher: Publisher,
        cluster_id: str,
        poll_s: float = float(names.YARN_POLL_S),
        period_s: float = float(names.YARN_PERIOD_S),
        high_resolution: bool = False,
        wall_clock: Callable[[], float],
        monotonic: Callable[[], float],
        log: Callable[[str], None],
        nodes: NodeReporter | None = None,
    ) -> None:
        self.nodes = nodes  # the node report for safe scale-in (agent/nodes.py), when a state table is given
        self.collector = collector
        self.publisher = publisher
        self.cluster_id = cluster_id
        self.poll_s = poll_s
        self.period_s = period_s
        self.high_resolution = high_resolution
        self.wall_clock = wall_clock
        self.monotonic = monotonic
        self.log = log
        self.window = StatWindow()
        self.bucket: float | None = None  # the period the window's samples belong to
        self.last_published: float | None = None

    def step(self, now_wall: float) -> None:
        """One poll slot: close the previous period if this slot starts a new one, then poll."""
        if self.nodes is not None:
            self.nodes.maybe_report(now_wall)
        if self.high_resolution:
            self._step_high_resolution(_align(now_wall, self.poll_s))
            return
        bucket = _align(now_wall, self.period_s)
        if self.bucket is not None and bucket != self.bucket:
            self.close(self.bucket)
        if self.bucket != bucket:
            self.bucket = bucket
            self.window = StatWindow()
        sample = self.collector.poll()
        if sample is None:
            self.log(format_line("poll-failed", self.collector, self.publisher))
        else:
            self.window.add(sample)
        if self.publisher.due(self.monotonic()):
            self._attempt("retry")

    def _step_high_resolution(self, slot: float) -> None:
        if self.last_published is not None and slot <= self.last_published:
            return
        self.last_published = slot
        sample = self.collector.poll()
        if sample is None:
            self.collector.counters.skipped_minutes += 1
            self.log(format_line("skip", self.collector, self.publisher, period=_iso_utc(slot)))
            return
        self.publisher.enqueue(sample_data(sample, cluster_id=self.cluster_id, timestamp=slot))
        if self.publisher.due(self.monotonic()):
            self._attempt("publish", period=_iso_utc(slot), samples=1)

    def close(self, bucket: float) -> None:
        """Publish the window of `bucket` (once), or count the period as skipped when it had no sample."""
        if self.last_published is not None and bucket <= self.last_published:
            return  # the clock stepped back: never publish a period twice
        self.last_published = bucket
        data = minute_data(self.window, cluster_id=self.cluster_id, timestamp=bucket)
        if not data:
            self.collector.counters.skipped_minutes += 1
            self.log(format_line("skip", self.collector, self.publisher, period=_iso_utc(bucket)))
            return
        self.publisher.enqueue(data)
        if self.publisher.due(self.monotonic()):
            self._attempt("publish", period=_iso_utc(bucket), samples=self.window.samples)

    def _attempt(self, event: str, **extra: Any) -> None:
        outcome = self.publisher.attempt(self.monotonic())
        state = "ok" if outcome.sent else ("failed" if outcome.error else "deferred")
        fields: dict[str, Any] = {"state": state, **extra, "datums": outcome.datums}
        if outcome.error:
            fields["error"] = repr(outcome.error)
        self.log(format_line(event, self.collector, self.publisher, **fields))

    def run(self, stop: threading.Event) -> None:
        next_slot = _align(self.wall_clock(), self.poll_s) + self.poll_s
        while True:
            if next_slot - self.wall_clock() > self.poll_s:  # the clock stepped back
                next_slot = _align(self.wall_clock(), self.poll_s) + self.poll_s
            if stop.wait(max(0.0, min(next_slot - self.wall_clock(), self.poll_s))):
                break
            now_wall = self.wall_clock()
            if now_wall < next_slot:
                continue
            next_slot = _align(now_wall, self.poll_s) + self.poll_s
            try:
                self.step(now_wall)
            except Exception as exc:  # a bug here must not take the heap agent down: log, count, go on
                self.collector.counters.last_error = f"bug: {type(exc).__name__}: {exc}"
                self.log(format_line("error", self.collector, self.publisher))
        if self.publisher.pending_batches:  # one last try; the unfinished period is not published
            self._attempt("final")
