"""The daily digest (feature `digest`): one email a day, built from the audit records of the day before in
`digest_time_zone`, sent in the local hour `digest_hour` (docs/email.md, "Daily digest").

`summarize` is pure: the records of one cluster's day in, a `ClusterDay` out (actions, peak and
time-weighted average requested TASK nodes, the estimated cost of the TASK nodes, time at max, the top
reasons, what failed). `run_digest` is the imperative part: the hour rule, the audit read per managed
cluster, the once-per-day claim in the notice ledger (a retry never sends twice), and the one notice.

How the day is read from the records: after each record the TASK groups stand at the record's targets when it
was applied (a resize made), else at its `current` counts (a hold, a dry run, a resize EMR refused). Before
the day's first record they stand at that record's `current` counts. Nodes and their cost (nodes x the
per-node-hour price the decision carries) are step functions between records, integrated over the day; the
time at max is the time from each at-max decision to the next record (or the day's end).

The weekly section: the digest sent on the local weekday `digest_weekly_day` also sums up the seven local days
that end with the digest's day, per cluster (usecases/savings.py: requested TASK nodes, their cost billed per
second with a one-minute minimum at the decisions' prices, time at max, actions), and compares each cluster's
week with EMR's default rules, static peak and the oracle through the injected `CompareWeek` (the savings
report's own code, tools/sparkscale_tools/replay/savings.py `WeekComparer`, staged into the Lambda asset;
docs/savings-report.md). The comparisons run one cluster at a time within the invocation's remaining time
(`remaining_s`, less `COMPARE_RESERVE_S` for the send); a cluster that does not fit, has no CloudWatch
history, uses instance fleets or fails gets a `WeekSkipped` (one line in the email with the `sparkscale
report` command to run instead) and never stops the digest.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from sparkscale import notices
from sparkscale.config import Config
from sparkscale.policy.model import Direction
from sparkscale.policy.reasons import ReasonCode
from sparkscale.ports import AuditReader, Ports
from sparkscale.usecases.savings import TaskUsage, applied, reason_codes, task_usage
from sparkscale.usecases.shell import Outcome, Shell

log = logging.getLogger(__name__)

DIGEST_LEDGER_ID: Final = "digest"  # the ledger's "cluster" of the digest marks (pk cluster#digest)
DIGEST_KEY_TTL_S: Final = 3 * 24 * 3600  # a day's mark outlives every retry of that day
TOP_REASONS: Final = 3
MAX_RECORDS_PER_DAY: Final = 5000  # a record every 20 s all day; more are not read
FAILURE_TEXT_MAX: Final = 160
WEEK_DAYS: Final = 7
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Left for the claim, the notice and the log once the comparisons stop (a Publish takes well under a second).
COMPARE_RESERVE_S: Final = 20.0
# A comparison is not started with less time than this: a week's comparison took 8.9 s, of which 1.7 s the
# replay and the rest the reads (benchmarks/bench_report.py, reads from moto); starting it would only cut it.
COMPARE_MIN_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class ClusterDay:
    """One cluster's day, as the digest shows it."""

    cluster_id: str
    records: int
    scale_outs: int  # applied
    scale_ins: int  # applied
    dry_runs: int  # actions decided, not made (dry run or paused)
    peak_nodes: int  # requested TASK nodes
    average_nodes: float  # time-weighted over the day
    cost_usd: float  # estimate: requested nodes x the per-node-hour price the decisions carry
    at_max_s: float
    top_reasons: tuple[tuple[str, int], ...]  # (reason code, records carrying it), most frequent first
    failures: tuple[tuple[str, int], ...]  # (what failed, how many times)

    @property
    def failed(self) -> int:
        return sum(n for _, n in self.failures)


@dataclass(frozen=True, slots=True)
class WeekComparison:
    """One cluster's week next to what EMR's default rules, static peak and the oracle would have cost serving
    the same demand (the savings report's figures; sparkscale's cost at the period's prices, the same ones
    the others are priced at)."""

    cluster_id: str
    days: float  # the span the cluster's CloudWatch history covers within the week
    cost_usd: float  # sparkscale's requested TASK nodes
    short_pct: float  # sparkscale: % of the time YARN's memory was below the demand
    emr_rules_usd: float
    emr_rules_short_pct: float
    static_peak_usd: float
    oracle_usd: float
    spot_history: bool  # SPOT groups priced at the period's mean spot price (else the on-demand table)


class SkipReason(StrEnum):
    """Why a cluster's week has no comparison (the metric's `reason`)."""

    NO_HISTORY = "no_history"  # no EMR memory metrics in CloudWatch over the week
    FLEET = "fleet"  # instance fleets: the report replays instance groups only
    OUT_OF_TIME = "out_of_time"  # the invocation's remaining time did not fit it
    FAILED = "failed"  # an AWS error or unreadable data
    NOT_DEPLOYED = "not_deployed"  # the function's code has no replay engine (a custom code path)


@dataclass(frozen=True, slots=True)
class WeekSkipped:
    cluster_id: str
    reason: SkipReason
    detail: str


class ComparisonUnavailable(Exception):
    """A `CompareWeek` that cannot compare this cluster's week, and why."""

    def __init__(self, reason: SkipReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CompareWeek(Protocol):
    """One cluster's week compared (the savings report); raises ComparisonUnavailable, and should return
    within `budget_s` seconds."""

    def __call__(
        self,
        cluster_id: str,
        records: Sequence[Mapping[str, Any]],
        start: datetime,
        end: datetime,
        *,
        budget_s: float,
    ) -> WeekComparison: ...


@dataclass(frozen=True, slots=True)
class DigestResult:
    outcome: Outcome  # APPLIED (sent), SKIPPED (not the hour), HOLD (empty day), DUPLICATE (already sent)
    day: date | None
    clusters: tuple[ClusterDay, ...] = ()
    detail: str = ""
    week: tuple[TaskUsage, ...] = ()  # the weekly section (on `digest_weekly_day`), clusters with records
    compared: tuple[WeekComparison, ...] = ()  # the weekly section's comparisons
    not_compared: tuple[WeekSkipped, ...] = ()  # ... and the clusters without one


# --- pure ---------------------------------------------------------------------------------------------------
def zone(name: str) -> tzinfo:
    """The time zone `name`; "UTC" needs no time zone data (ZoneInfo("UTC") reads the tz database)."""
    return UTC if name == "UTC" else ZoneInfo(name)


def digest_day(now: datetime, config: Config) -> date | None:
    """The local day the digest sent at `now` covers (the day before), or None outside `digest_hour`."""
    local = now.astimezone(zone(config.digest_time_zone))
    return local.date() - timedelta(days=1) if local.hour == config.digest_hour else None


def week_of(day: date, now: datetime, config: Config) -> tuple[date, date] | None:
    """The first and last local days of the weekly section of the digest of `day`, sent at `now`: the seven
    days ending with `day`, when `now` is on the local weekday `digest_weekly_day`; else None."""
    local = now.astimezone(zone(config.digest_time_zone))
    if config.digest_weekly_day not in WEEKDAYS or WEEKDAYS[local.weekday()] != config.digest_weekly_day:
        return None
    return day - timedelta(days=WEEK_DAYS - 1), day


def day_bounds(day: date, time_zone: str) -> tuple[datetime, datetime]:
    """The local day's first instant and the next day's, in UTC (23 or 25 hours apart across a DST change:
    two datetimes of the same ZoneInfo subtract as wall-clock times, so they are converted)."""
    tz = zone(time_zone)
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    return start, end


def _stand(r: Mapping[str, Any], *, after: bool) -> tuple[int, float]:
    """(requested TASK nodes, USD per hour of them) before the record, or after it."""
    key = "target" if after and applied(r) else "current"
    targets = r.get("targets") or ()
    nodes = sum(int(t[key]) for t in targets)
    usd = sum(int(t[key]) * float(t.get("usd_per_hour_per_node") or 0.0) for t in targets)
    return nodes, usd


def _failure(r: Mapping[str, Any]) -> str | None:
    if ReasonCode.NOT_APPLIED.value not in reason_codes(r):
        return None
    texts = [
        str(t)
        for c, t in zip(reason_codes(r), r.get("reasons") or (), strict=False)
        if c == ReasonCode.NOT_APPLIED.value
    ]
    what = " ".join(texts[-1].split()) if texts else "Not applied"
    return what if len(what) <= FAILURE_TEXT_MAX else what[: FAILURE_TEXT_MAX - 3] + "..."


def summarize(
    cluster_id: str, records: Sequence[Mapping[str, Any]], start: datetime, end: datetime
) -> ClusterDay | None:
    """One cluster's day from its audit records (any order; those outside [start, end) are ignored). None
    when it has no record that day."""
    day = sorted(((datetime.fromisoformat(str(r["at"])), r) for r in records), key=lambda pair: pair[0])
    day = [(at, r) for at, r in day if start <= at < end]
    if not day:
        return None
    nodes, usd = _stand(day[0][1], after=False)
    peak, node_s, usd_s, at_max_s = nodes, 0.0, 0.0, 0.0
    cursor, at_max = start, False
    for at, r in day:
        span = (at - cursor).total_seconds()
        node_s, usd_s, at_max_s = (
            node_s + nodes * span,
            usd_s + usd * span,
            at_max_s + (span if at_max else 0.0),
        )
        nodes, usd = _stand(r, after=True)
        peak, cursor, at_max = max(peak, nodes), at, bool(r.get("at_max_under_pressure"))
    span = (end - cursor).total_seconds()
    node_s, usd_s, at_max_s = node_s + nodes * span, usd_s + usd * span, at_max_s + (span if at_max else 0.0)
    length = (end - start).total_seconds()
    made = [r for _, r in day if applied(r)]
    reasons = Counter(
        c for _, r in day for c in dict.fromkeys(reason_codes(r)) if c != ReasonCode.NOT_APPLIED.value
    )
    failures = Counter(f for _, r in day if (f := _failure(r)) is not None)
    return ClusterDay(
        cluster_id=cluster_id,
        records=len(day),
        scale_outs=sum(1 for r in made if r.get("direction") == Direction.OUT.value),
        scale_ins=sum(1 for r in made if r.get("direction") == Direction.IN.value),
        dry_runs=sum(1 for _, r in day if r.get("is_action") and r.get("dry_run")),
        peak_nodes=peak,
        average_nodes=node_s / length if length > 0 else float(nodes),
        cost_usd=usd_s / 3600.0,
        at_max_s=at_max_s,
        top_reasons=tuple(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]),
        failures=tuple(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


# --- the use case -------------------------------------------------------------------------------------------
def run_digest(
    *,
    ports: Ports,
    audit: AuditReader,
    config: Config,
    clusters: Sequence[str],
    now: datetime,
    compare_week: CompareWeek | None = None,
    remaining_s: Callable[[], float] | None = None,
) -> DigestResult:
    """Send the digest of the day before when `now` is in the local `digest_hour` and that day has records,
    once per day (the notice ledger's mark `digest#<local date>`). On `digest_weekly_day` the weekly section
    compares each cluster's week through `compare_week` (none: the audit records' figures only) within
    `remaining_s()` (none: no time limit)."""
    day = digest_day(now, config)
    if day is None:
        return DigestResult(Outcome.SKIPPED, None, detail=f"not the digest hour ({config.digest_hour})")
    start, end = day_bounds(day, config.digest_time_zone)
    shell = Shell(ports=ports, config=config, now=now, cluster_id=DIGEST_LEDGER_ID)
    key = f"digest#{day.isoformat()}"
    if shell.claimed_at(key) is not None:
        return DigestResult(Outcome.DUPLICATE, day, detail="already sent")
    week = week_of(day, now, config)
    read_from = start if week is None else day_bounds(week[0], config.digest_time_zone)[0]
    limit = MAX_RECORDS_PER_DAY * (1 if week is None else WEEK_DAYS)
    days: list[ClusterDay] = []
    weeks: list[TaskUsage] = []
    for cid in sorted(dict.fromkeys(clusters)):
        records = audit.audit_since(cid, read_from, limit=limit)  # an error fails the run: retried
        summary = summarize(cid, records, start, end)
        if summary is not None:
            days.append(summary)
        usage = None if week is None else task_usage(cid, records, read_from, end)
        if usage is not None:
            weeks.append(usage)
    if not days and not weeks:
        return DigestResult(Outcome.HOLD, day, detail="no record that day: nothing sent")
    compared, skipped = compare_weeks(
        [w.cluster_id for w in weeks],
        lambda cid: audit.audit_since(cid, read_from, limit=limit),
        start=read_from,
        end=end,
        compare_week=compare_week,
        remaining_s=remaining_s,
    )
    result = DigestResult(
        Outcome.APPLIED, day, tuple(days), week=tuple(weeks), compared=compared, not_compared=skipped
    )
    if not shell.claim(key, DIGEST_KEY_TTL_S):
        return replace(result, outcome=Outcome.DUPLICATE, detail="already sent")
    notice = notices.digest_notice(
        day=day,
        time_zone=config.digest_time_zone,
        clusters=days,
        week=None if week is None else (week[0], result.week),
        compared=compared if compare_week is not None else None,
        not_compared=skipped,
    )
    if not shell.send(notice):
        return replace(result, outcome=Outcome.FAILED, detail="the notice was not sent")
    log.info("digest of %s sent for %d cluster(s), weekly section: %s", day, len(days), week is not None)
    return result


def compare_weeks(
    cluster_ids: Sequence[str],
    records_of: Callable[[str], Sequence[Mapping[str, Any]]],
    *,
    start: datetime,
    end: datetime,
    compare_week: CompareWeek | None,
    remaining_s: Callable[[], float] | None,
) -> tuple[tuple[WeekComparison, ...], tuple[WeekSkipped, ...]]:
    """Each cluster's week compared in turn while the time left allows one more; every other cluster
    skipped with its reason (logged here, counted by the handler). Nothing a comparison raises stops the
    others or the digest. The audit records are read again per cluster (`records_of`), inside its budget:
    holding every cluster's week of records at once would not fit the function's memory."""
    if compare_week is None:
        return (), ()
    compared: list[WeekComparison] = []
    skipped: list[WeekSkipped] = []

    def budget() -> float:
        return math.inf if remaining_s is None else remaining_s() - COMPARE_RESERVE_S

    for cid in cluster_ids:
        if (left := budget()) < COMPARE_MIN_S:
            skip = WeekSkipped(cid, SkipReason.OUT_OF_TIME, f"{max(left, 0.0):.0f} s left in this run")
        else:
            try:
                records = records_of(cid)
                compared.append(compare_week(cid, records, start, end, budget_s=budget()))
                continue
            except ComparisonUnavailable as exc:
                skip = WeekSkipped(cid, exc.reason, exc.detail)
            except Exception as exc:  # one cluster's bug must not cost the others their email
                log.exception("weekly comparison of %s failed", cid)
                skip = WeekSkipped(cid, SkipReason.FAILED, f"{type(exc).__name__}: {exc}")
        log.warning("weekly comparison of %s not made: %s (%s)", cid, skip.reason, skip.detail)
        skipped.append(skip)
    return tuple(compared), tuple(skipped)


def result_dict(result: DigestResult) -> dict[str, Any]:
    """The handler's JSON-safe answer."""
    return {
        "outcome": str(result.outcome),
        "day": None if result.day is None else result.day.isoformat(),
        "clusters": [c.cluster_id for c in result.clusters],
        "detail": result.detail,
        "week_clusters": [w.cluster_id for w in result.week],
        "week_compared": [c.cluster_id for c in result.compared],
        "week_not_compared": {w.cluster_id: str(w.reason) for w in result.not_compared},
    }
