"""The fan-out use case: the reconcile schedule decides which clusters to evaluate this period and queues one
message per cluster; the evaluating function consumes them with bounded concurrency (docs/many-clusters.md).

- `schedule`: which clusters this period (every cluster with an alarm in ALARM, then the others that need
  it as far as the rate budget allows, taking turns), each message delayed so the evaluations spread over
  the period. A cluster needs it unless its last evaluation, at most `at_minimum_recheck_s` ago, found its
  TASK groups at their minimum with no resize in flight (`due`; the record is a SizeObservation kept with
  the cluster's state): no record, an old one or an unreadable one all mean "evaluate";
- `evaluate`: one message -> `reconcile_once` under the cluster's lease. An evaluation that did not happen
  (the lease is held by another evaluation, throttled after retries) raises `EvaluateLater`, so the message
  is retried, never dropped; an ambiguous AWS failure propagates for the same reason. A failed message comes
  back after `retry_delay_s` (seconds, doubling with each receive), not after the queue's whole visibility
  timeout (six function timeouts): within the period it was meant for.

The budget: every evaluation reads DescribeCluster, ListInstanceGroups and GetMetricData once; the account's
per-API rates (AWS's published defaults, `API_LIMITS`) times `api_share_pct` bound how many evaluations a
second the deployment may start; times the period, how many clusters one period can evaluate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, runtime_checkable

from sparkscale.config import Config
from sparkscale.errors import BadEvent
from sparkscale.ports import Ports, SizeObservation
from sparkscale.usecases.shell import Outcome

MESSAGE_VERSION: Final = 1
MAX_DELAY_S: Final = 900  # SQS DelaySeconds: at most 15 minutes
# a record this far ahead of the schedule's clock is not trusted (clocks differ by far less: evaluate)
MAX_CLOCK_SKEW_S: Final = 60
SEND_BATCH: Final = 10  # SendMessageBatch: at most 10 entries


@dataclass(frozen=True, slots=True)
class ApiLimit:
    """One AWS API's per-account, per-Region sustained rate (its bucket's refill rate) and its source."""

    api: str
    rate_per_s: float
    burst: float
    source: str


# AWS's defaults (adjustable in Service Quotas); docs/many-clusters.md cites the pages.
DESCRIBE_CLUSTER: Final = ApiLimit("emr:DescribeCluster", 1.0, 10, "Service Quotas L-D74118B4, L-81AF5123")
LIST_INSTANCE_GROUPS: Final = ApiLimit(
    "emr:ListInstanceGroups", 1.0, 10, "Service Quotas L-84D58688, L-2266B3CF"
)
MODIFY_INSTANCE_GROUPS: Final = ApiLimit(
    "emr:ModifyInstanceGroups", 0.5, 5, "Service Quotas L-87EDCC64, L-A3F85680"
)
EMR_ALL_OPERATIONS: Final = ApiLimit("emr:* (account-wide)", 5.0, 25, "Service Quotas L-432FAB44, L-283CCA2A")
GET_METRIC_DATA: Final = ApiLimit("cloudwatch:GetMetricData", 50.0, 50, "CloudWatch service quotas")
DESCRIBE_ALARMS: Final = ApiLimit("cloudwatch:DescribeAlarms", 9.0, 9, "CloudWatch service quotas")
PUT_METRIC_ALARM: Final = ApiLimit("cloudwatch:PutMetricAlarm", 3.0, 3, "CloudWatch service quotas")
DESCRIBE_SPOT_PRICE_HISTORY: Final = ApiLimit(
    "ec2:DescribeSpotPriceHistory", 20.0, 100, "EC2 API request throttling, non-mutating actions"
)
API_LIMITS: Final = (
    DESCRIBE_CLUSTER,
    LIST_INSTANCE_GROUPS,
    MODIFY_INSTANCE_GROUPS,
    EMR_ALL_OPERATIONS,
    GET_METRIC_DATA,
    DESCRIBE_ALARMS,
    PUT_METRIC_ALARM,
    DESCRIBE_SPOT_PRICE_HISTORY,
)
# Calls one evaluation makes at most (a skipped cluster makes the two EMR reads only). Spot prices are
# cached per Availability Zone and type set for spot_price_cache_s in each warm container: at most one call
# per evaluation, far fewer in practice; ModifyInstanceGroups is paced by the cooldowns, not per evaluation.
CALLS_PER_EVALUATION: Final[Mapping[str, int]] = {
    DESCRIBE_CLUSTER.api: 1,
    LIST_INSTANCE_GROUPS.api: 1,
    EMR_ALL_OPERATIONS.api: 2,
    GET_METRIC_DATA.api: 1,
    DESCRIBE_SPOT_PRICE_HISTORY.api: 1,
}


@dataclass(frozen=True, slots=True)
class Budget:
    """Evaluations a second the deployment may start, and which API bounds it."""

    evaluations_per_s: float
    bound_by: str

    def per_period(self, period_s: int) -> int:
        return max(1, math.floor(self.evaluations_per_s * period_s + 1e-9))


def limits_for(config: Config) -> tuple[ApiLimit, ...]:
    """API_LIMITS with the EMR reads at the rate the account grants (`emr_read_rate_per_s`)."""
    emr_read = config.emr_read_rate_per_s
    out = []
    for lim in API_LIMITS:
        rate = lim.rate_per_s
        if lim.api in (DESCRIBE_CLUSTER.api, LIST_INSTANCE_GROUPS.api):
            rate = emr_read
        elif lim is EMR_ALL_OPERATIONS:  # a raised per-API rate needs the account-wide one raised alike
            rate = max(rate, 2 * emr_read)
        out.append(ApiLimit(lim.api, rate, lim.burst, lim.source))
    return tuple(out)


def budget(config: Config) -> Budget:
    """min over the APIs of share x rate / calls per evaluation."""
    share = config.api_share_pct / 100.0
    best: Budget | None = None
    for lim in limits_for(config):
        calls = CALLS_PER_EVALUATION.get(lim.api, 0)
        if not calls:
            continue
        rate = share * lim.rate_per_s / calls
        if best is None or rate < best.evaluations_per_s:
            best = Budget(rate, lim.api)
    assert best is not None  # CALLS_PER_EVALUATION is not empty
    return best


def max_clusters(config: Config) -> int:
    """The most clusters one reconcile period can evaluate within the share of the rate limits."""
    return budget(config).per_period(config.reconcile_rate_s)


# --- the message ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Evaluation:
    """One queued evaluation: a cluster, the period it belongs to, whether it had an alarm in ALARM, and
    whether its size record (fresh) said it is above its minimum or resizing: either way it is evaluated in
    full, without the at-minimum check's own read of the cluster (a second one)."""

    cluster_id: str
    period: datetime  # the start of the reconcile period (UTC)
    in_alarm: bool
    delay_s: int = 0  # SQS DelaySeconds (not part of the body)
    above_minimum: bool = False

    @property
    def key(self) -> str:
        """One evaluation per cluster and period (the idempotency key)."""
        return f"{self.cluster_id}#{self.period.strftime('%Y-%m-%dT%H:%M:%SZ')}"

    def body(self) -> str:
        return json.dumps(
            {
                "v": MESSAGE_VERSION,
                "cluster_id": self.cluster_id,
                "period": self.period.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "in_alarm": self.in_alarm,
                **({"above_minimum": True} if self.above_minimum else {}),
            },
            separators=(",", ":"),
        )


def parse_body(body: Any, *, managed: Iterable[str]) -> Evaluation:
    """The message body back into an Evaluation; BadEvent for anything else (never an evaluation)."""
    try:
        raw = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION:
        raise BadEvent("not an evaluation message")
    cid, period, in_alarm = raw.get("cluster_id"), raw.get("period"), raw.get("in_alarm")
    above = raw.get("above_minimum", False)  # absent in a message of an earlier version
    if not isinstance(cid, str) or not isinstance(period, str) or not isinstance(in_alarm, bool):
        raise BadEvent("evaluation message without cluster_id, period or in_alarm")
    if not isinstance(above, bool):
        raise BadEvent("evaluation message with a malformed above_minimum", cluster_id=cid)
    if cid not in set(managed):
        raise BadEvent("cluster is not managed", cluster_id=cid)
    try:
        at = datetime.strptime(period, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise BadEvent("evaluation message with a malformed period", cluster_id=cid) from None
    return Evaluation(cid, at, in_alarm, above_minimum=above)


# --- a failed message's retry ---------------------------------------------------------------------------
RETRY_FIRST_S: Final = 10  # a failed evaluation's message is received again about this much later
RETRY_MAX_S: Final = 300  # ... doubling with each receive, up to this (under the queue's visibility timeout)


def retry_delay_s(receive_count: int, jitter: float) -> int:
    """Seconds before a failed evaluation's message is received again: RETRY_FIRST_S, doubling with each
    receive up to RETRY_MAX_S, times a jitter in [0.5, 1] (`jitter` in [0, 1]) so that the retries of many
    clusters that failed together (a burst of throttling) do not come back together."""
    n = min(max(1, receive_count), 16)
    ceiling = min(RETRY_MAX_S, RETRY_FIRST_S << (n - 1))
    spread = 0.5 + 0.5 * min(max(jitter, 0.0), 1.0)
    return max(1, round(ceiling * spread))


@runtime_checkable
class RetryingQueue(Protocol):
    """Optional on the evaluation queue: bring a received message back sooner than its visibility timeout."""

    def retry_later(self, receipt_handle: str, delay_s: int) -> None:
        """The message received with `receipt_handle` is received again `delay_s` seconds from now."""
        ...


# --- the schedule ---------------------------------------------------------------------------------------
class EvaluationQueue(Protocol):
    """Where the schedule sends evaluations (SQS in a deployment)."""

    def send(self, evaluations: Sequence[Evaluation]) -> int:
        """Queue them (each with its delay); the number sent. Raises SparkscaleError when none could be."""
        ...


@dataclass(frozen=True)
class FanOutPlan:
    evaluations: tuple[Evaluation, ...]
    deferred: tuple[str, ...]  # left to a later period: over the rate budget
    budget: Budget
    room: int  # evaluations this period may start
    at_minimum: tuple[str, ...] = ()  # not queued: recently found at their minimum, nothing in flight


def due(observed: SizeObservation | None, *, now: datetime, config: Config) -> bool:
    """Does a cluster with no alarm in ALARM need an evaluation this period? Yes, unless its last record,
    taken at most `at_minimum_recheck_s` ago, found its TASK groups at their minimum with no resize in
    flight. No record (never evaluated, lost, unreadable), an old one, or one dated ahead of `now` by more
    than MAX_CLOCK_SKEW_S: yes. A recheck of 0 turns the selection off (every cluster, every period)."""
    if observed is None or observed.needs_evaluation:
        return True
    return not _fresh(observed, now=now, config=config)


def _fresh(observed: SizeObservation, *, now: datetime, config: Config) -> bool:
    """Taken less than at_minimum_recheck_s ago (and not dated ahead of `now` beyond MAX_CLOCK_SKEW_S)."""
    limit = config.at_minimum_recheck_s
    age_s = (now - observed.observed_at).total_seconds()
    return limit > 0 and -MAX_CLOCK_SKEW_S <= age_s < limit


def period_start(now: datetime, period_s: int) -> datetime:
    ts = int(now.timestamp())
    return datetime.fromtimestamp(ts - ts % period_s, tz=UTC)


def plan(
    clusters: Sequence[str],
    in_alarm: Iterable[str],
    *,
    now: datetime,
    config: Config,
    observed: Mapping[str, SizeObservation] | None = None,
) -> FanOutPlan:
    """Every cluster with an alarm in ALARM (delay 0: they are what pressure looks like), then the others
    that are `due` (all of them when `observed` is None: no records to go by) in turns: when they do not all
    fit in the budget, period k takes every m-th of them (m = how many periods they need), so each is
    evaluated at least every m periods. Delays spread the rest over the period."""
    period_s = config.reconcile_rate_s
    start = period_start(now, period_s)
    b = budget(config)
    room = b.per_period(period_s)
    alarmed = set(in_alarm)
    urgent = [c for c in clusters if c in alarmed]
    rest = sorted(c for c in clusters if c not in alarmed)
    idle: list[str] = []
    if observed is not None:
        idle = [c for c in rest if not due(observed.get(c), now=now, config=config)]
        if idle:
            quiet = set(idle)
            rest = [c for c in rest if c not in quiet]
    left = max(0, room - len(urgent))
    if len(rest) <= left:
        chosen, deferred = rest, []
    else:
        turns = math.ceil(len(rest) / left) if left else 0
        k = int(start.timestamp()) // period_s
        chosen = [c for i, c in enumerate(rest) if turns and i % turns == k % turns][:left]
        kept = set(chosen)
        deferred = [c for c in rest if c not in kept]
    window = min(period_s, MAX_DELAY_S)
    out = [Evaluation(c, start, True, 0) for c in urgent]
    n = len(chosen)
    records = observed or {}

    def above(cluster_id: str) -> bool:
        seen = records.get(cluster_id)
        return seen is not None and seen.needs_evaluation and _fresh(seen, now=now, config=config)

    out += [
        Evaluation(c, start, False, (i * window) // n, above_minimum=above(c)) for i, c in enumerate(chosen)
    ]
    return FanOutPlan(tuple(out), tuple(deferred), b, room, tuple(idle))


# --- the evaluation -------------------------------------------------------------------------------------
class EvaluateLater(Exception):
    """The evaluation did not happen (lease held, throttled): the message must be retried."""

    def __init__(self, cluster_id: str, outcome: str, detail: str) -> None:
        super().__init__(f"{cluster_id}: {outcome}: {detail}")
        self.cluster_id, self.outcome = cluster_id, outcome


RETRIED_OUTCOMES: Final = frozenset({Outcome.LEASE_HELD.value, Outcome.THROTTLED.value})


def evaluate(
    evaluation: Evaluation,
    *,
    now: datetime,
    ports: Ports,
    config: Config,
    owner: str,
    run: Callable[..., Any] | None = None,
) -> Any:
    """One queued evaluation: `reconcile_once` (or `run`, with the same keywords). Raises EvaluateLater when
    it did not happen, so the queue retries the message."""
    runner = run
    if runner is None:
        from sparkscale.usecases.scale import reconcile_once  # noqa: PLC0415 - lazy: cold import

        runner = reconcile_once
    result = runner(
        now=now,
        cluster_id=evaluation.cluster_id,
        ports=ports,
        config=config,
        owner=owner,
        # no at-minimum check (its read would be a second one) when the record said it needs evaluating
        in_alarm=evaluation.in_alarm or evaluation.above_minimum,
    )
    if result.outcome in RETRIED_OUTCOMES:
        raise EvaluateLater(evaluation.cluster_id, result.outcome, result.detail)
    return result
