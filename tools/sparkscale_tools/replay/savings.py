"""The savings report (`sparkscale report`, docs/savings-report.md): what sparkscale's TASK nodes cost one
cluster over a period, next to what EMR's default rules, static peak and the oracle would have cost serving
the same demand.

- sparkscale, as it ran: its requested TASK nodes from the audit records (usecases/savings.py), billed per
  second with a one-minute minimum per node at the period's mean spot price; its time short of memory from
  the cluster's own CloudWatch history: YARN's memory (`MemoryTotalMB`) against the demand.
- the others, replayed: the cluster's demand over the period (as `sparkscale replay --cloudwatch` builds it)
  through the replay's own policies and scores (replay/run.py), on the cluster's shape (core and TASK groups
  as EMR lists them, priced like sparkscale's nodes).

Everything is scored with replay/scores.py on the same demand and steps, so the columns compare.

One implementation for both readers: `report_from_aws` reads the history, the shape and the prices and builds
the report; `sparkscale report` calls it, and so does the digest Lambda's weekly section through
`WeekComparer` (with a time budget). That is why this module and what it imports are staged into the Lambda
asset (sparkscale_cdk/lambda_asset.py), and why tabulate and matplotlib are imported only where the CLI
prints or plots.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sparkscale import names
from sparkscale.adapters import instance_data
from sparkscale.config import Config
from sparkscale.policy.model import Cluster, ClusterState, Market, Role
from sparkscale.usecases.digest import ComparisonUnavailable, SkipReason, WeekComparison
from sparkscale.usecases.savings import TaskUsage, task_usage

from sparkscale_tools.replay import policies as pol
from sparkscale_tools.replay.cloudwatch_trace import fetch_series, period_for, trace_from_series
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.run import PolicySpec, ReplayResult, run_replay
from sparkscale_tools.replay.scores import Scores, score

REPORT_POLICIES: Final = (pol.EMR_CUSTOM_RULES, pol.STATIC_PEAK, pol.ORACLE)
SUPPLY_QUERY: Final = ("total", names.EMR_MEMORY_TOTAL_MB)  # fetched with the demand metrics
SPARKSCALE_ACTUAL: Final = "sparkscale (actual)"
SPOT_HISTORY: Final = "spot history"
ASSUMPTIONS: Final = (
    "Demand: YARN memory allocated + pending containers x their size, EMR's 5-minute averages from "
    "CloudWatch (as `sparkscale replay --cloudwatch` builds it).",
    "sparkscale: the TASK nodes it requested (audit records), each billed per second from its request to its "
    "release, at least one minute; time short of memory: YARN's memory (MemoryTotalMB) below that demand.",
    "Prices: SPOT groups at their mean spot price over the period (DescribeSpotPriceHistory, the cluster's "
    "availability zone), ON_DEMAND groups (and SPOT ones without history) at the bundled on-demand table; "
    "the same prices for every policy.",
    "The other policies are replayed with the replay's model (docs/replay.md): new nodes usable 6 minutes "
    "after the request, drained for 2 minutes, no spot interruption; EMR's rules on the cheapest SPOT group.",
    "Not counted: EMR's per-instance fee, core and master nodes, storage, data transfer.",
)


class ReportError(ValueError):
    """A report that cannot be made as asked (no data, unknown cluster shape): one line."""


class NoHistory(ReportError):
    """The cluster has no EMR memory metrics in CloudWatch over the period."""


class FleetCluster(ReportError):
    """The cluster uses instance fleets: the report replays instance groups only."""


class OutOfTime(ReportError):
    """The report did not finish within the time it was given (the digest's budget)."""


@dataclass(frozen=True, slots=True)
class PriceLine:
    group_id: str
    instance_type: str
    market: str
    usd_per_hour: float
    source: str


@dataclass
class SavingsReport:
    cluster_id: str
    start: datetime  # the period the CloudWatch history covers (within the one asked)
    end: datetime
    step_s: int
    demand: list[float]
    actual_supply: list[float]
    usage: TaskUsage
    actual: Scores
    replay: ReplayResult
    prices: tuple[PriceLine, ...]
    emr_group_usd_per_hour: float | None = None  # the group EMR's rules resize (for its node count)
    notes: list[str] = field(default_factory=list)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400.0

    def scores(self) -> dict[str, Scores]:
        return {SPARKSCALE_ACTUAL: self.actual, **self.replay.scores}

    def headline(self) -> str:
        """task nodes cost $X; EMR's default rules would have cost about $Y with ...; static peak $W."""
        s = self.replay.scores
        emr, peak = s[pol.EMR_CUSTOM_RULES], s[pol.STATIC_PEAK]
        gap = emr.tau_u_pct - self.actual.tau_u_pct
        more = f"{abs(gap):.1f} % {'more' if gap >= 0 else 'less'} of the time short of memory"
        return (
            f"TASK nodes cost ${self.actual.cost_usd:,.2f} (short of memory {self.actual.tau_u_pct:.1f} % "
            f"of the time); EMR's default rules would have cost about ${emr.cost_usd:,.2f} with {more} "
            f"({emr.tau_u_pct:.1f} %); static peak ${peak.cost_usd:,.2f}; the oracle "
            f"${s[pol.ORACLE].cost_usd:,.2f}."
        )

    def to_json_dict(self) -> dict[str, Any]:
        u = self.usage
        return {
            "cluster_id": self.cluster_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": round(self.days, 4),
            "step_s": self.step_s,
            "headline": self.headline(),
            "policies": {name: _finite(s.to_dict()) for name, s in self.scores().items()},
            "sparkscale": {
                "records": u.records,
                "node_hours": u.node_hours,
                "billed_node_hours": sum(g.billed_node_s for g in u.groups) / 3600.0,
                "peak_nodes": u.peak_nodes,
                "average_nodes": u.average_nodes,
                "at_max_s": u.at_max_s,
                "scale_outs": u.scale_outs,
                "scale_ins": u.scale_ins,
                "groups": [
                    {
                        "group_id": g.group_id,
                        "instance_type": g.instance_type,
                        "market": g.market,
                        "node_hours": g.node_s / 3600.0,
                        "billed_node_hours": g.billed_node_s / 3600.0,
                        "usd_per_hour": g.usd_per_hour,
                        "price_source": g.price_source,
                        "cost_usd": g.cost_usd,
                    }
                    for g in u.groups
                ],
            },
            "prices": [vars_of(p) for p in self.prices],
            "emr_rules": self.replay.emr_rules,
            "assumptions": list(ASSUMPTIONS),
            "notes": list(self.notes),
        }


def vars_of(p: PriceLine) -> dict[str, Any]:
    return {
        "group_id": p.group_id,
        "instance_type": p.instance_type,
        "market": p.market,
        "usd_per_hour": p.usd_per_hour,
        "source": p.source,
    }


def _finite(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


# --- the cluster's shape and prices -------------------------------------------------------------------------
def period_prices(
    cluster: Cluster, spot_means: Mapping[str, float], *, availability_zone: str | None
) -> tuple[PriceLine, ...]:
    """Each TASK group's price per node-hour for the period: SPOT at the mean spot price of its type (from
    the history), else the bundled on-demand table. A type in neither is left out."""
    where = f" in {availability_zone}" if availability_zone else " (dearest zone)"
    out: list[PriceLine] = []
    for g in cluster.task_groups:
        if g.market is Market.SPOT and g.instance_type in spot_means:
            usd, source = spot_means[g.instance_type], f"{SPOT_HISTORY}, mean over the period{where}"
        else:
            table = instance_data.on_demand_usd_per_hour(g.instance_type)
            if table is None:
                continue
            usd = table
            source = "on-demand table" + (" (no spot history)" if g.market is Market.SPOT else "")
        out.append(PriceLine(g.id, g.instance_type, g.market.value, usd, source))
    return tuple(out)


def cluster_shape(cluster: Cluster, prices: Sequence[PriceLine]) -> ClusterSpec:
    """The replay's cluster: the core groups at their running size and the priced TASK groups."""
    priced = {p.group_id: p for p in prices}
    groups: list[GroupSpec] = []
    for g in cluster.groups:
        if g.fleet_id is not None:
            raise FleetCluster(f"{cluster.id} has instance fleets: the report handles instance groups only")
        if g.role is Role.CORE:
            nodes = g.running or g.requested
            usd = instance_data.on_demand_usd_per_hour(g.instance_type) or 0.0
            groups.append(
                GroupSpec(g.id, g.name, g.role, g.market, g.instance_type, g.memory_gib, g.vcpu, usd, nodes)
            )
        elif g.role is Role.TASK and g.id in priced:
            p = priced[g.id]
            groups.append(
                GroupSpec(
                    g.id, g.name, g.role, g.market, g.instance_type, g.memory_gib, g.vcpu, p.usd_per_hour
                )
            )
    spec = ClusterSpec(cluster.id, cluster.name, tuple(groups), cluster.availability_zone or "")
    if not spec.task_groups:
        raise ReportError(f"{cluster.id}: no TASK instance group with a known price to replay")
    return spec


# --- the report ---------------------------------------------------------------------------------------------
def _held(points: Mapping[datetime, float], times: Sequence[datetime]) -> list[float | None]:
    """The value of the last point at or before each of `times` (sorted), the first point's before any."""
    stamps = sorted(points)
    out: list[float | None] = []
    j = 0
    for at in times:
        while j + 1 < len(stamps) and stamps[j + 1] <= at:
            j += 1
        out.append(points[stamps[j]] if stamps else None)
    return out


def build_report(
    *,
    cluster_id: str,
    records: Sequence[Mapping[str, Any]],
    series: Mapping[str, Mapping[datetime, float]],
    end: datetime,
    days: float,
    config: Config,
    shape: ClusterSpec,
    prices: Sequence[PriceLine],
    params: SimParams | None = None,
    seed: int = 0,
    progress: Callable[[str], Any] | None = None,
) -> SavingsReport:
    """The report over the CloudWatch history's span within the `days` before `end`."""
    params = params or SimParams()
    step = params.step_s
    demand_series = {k: dict(v) for k, v in series.items()}
    trace = trace_from_series(
        demand_series,
        cluster_id=cluster_id,
        days=days,
        default_container_mb=config.default_container_memory_mb,
    )
    t0 = min(set(demand_series["alloc"]) | set(demand_series["pending"]))
    t_end = min(end, t0 + timedelta(seconds=trace.end_s))
    demand = trace.resample(step, (t_end - t0).total_seconds())
    total = dict(series.get(SUPPLY_QUERY[0], {}))
    if not total:
        raise NoHistory(f"{cluster_id}: no {names.EMR_MEMORY_TOTAL_MB} datapoints in the last {days:g} days")
    held = _held(total, [t0 + timedelta(seconds=k * step) for k in range(len(demand))])
    supply = [max(0.0, (mb or 0.0) / 1024.0) for mb in held]
    by_group = {p.group_id: p for p in prices}
    by_type = {(p.instance_type, p.market): p for p in prices}

    def price_of(group_id: str, instance_type: str, market: str) -> float | None:
        p = by_group.get(group_id) or by_type.get((instance_type, market))
        return None if p is None else p.usd_per_hour

    usage = task_usage(cluster_id, records, t0, t_end, price_of=price_of, price_source="period price")
    if usage is None:
        raise ReportError(
            f"no decision recorded for {cluster_id} between {_utc(t0)} and {_utc(t_end)} UTC: nothing to "
            "compare (is it managed by this stack, and within audit_ttl_days?)"
        )
    replay = run_replay(
        demand,
        policies=[PolicySpec(n, n) for n in REPORT_POLICIES],
        config=config,
        cluster=shape,
        params=params,
        seed=seed,
        progress=progress,
    )
    actual = score(
        demand=demand,
        supply=supply,
        step_s=step,
        cost_usd=usage.cost_usd,
        oracle_cost_usd=replay.oracle_cost_usd,
        actions=usage.scale_outs + usage.scale_ins,
        scale_out_times_s=(),
    )
    notes = list(replay.notes)
    if t0 > end - timedelta(days=days) + timedelta(seconds=names.EMR_PERIOD_S):
        notes.append(
            f"CloudWatch history starts at {_utc(t0)} UTC: the report covers "
            f"{(t_end - t0) / timedelta(days=1):.2f} days"
        )
    for g in usage.groups:
        if g.price_source == "decisions":
            notes.append(
                f"{g.group_id} ({g.instance_type}) priced at the decisions' price: it is no longer listed"
            )
    return SavingsReport(
        cluster_id=cluster_id,
        start=t0,
        end=t_end,
        step_s=step,
        demand=demand,
        actual_supply=supply,
        usage=usage,
        actual=actual,
        replay=replay,
        prices=tuple(prices),
        emr_group_usd_per_hour=_emr_group(shape, config).usd_per_hour,
        notes=notes,
    )


# --- the report from AWS: `sparkscale report` and the digest's weekly section ------------------------------
def read_shape(emr: Any, cluster_id: str) -> Cluster:
    """The cluster's instance groups and zone (DescribeCluster, ListInstanceGroups), also once it has ended:
    EMR still lists the groups of a terminated cluster for about two months. A cluster of instance fleets is
    refused before any fleet is read (the report replays instance groups only)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - boto only with AWS
    from sparkscale.adapters.aws_errors import translate  # noqa: PLC0415
    from sparkscale.adapters.emr import EmrClusterReader  # noqa: PLC0415
    from sparkscale.adapters.emr_fleet import enum_or_default  # noqa: PLC0415

    try:
        raw = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "DescribeCluster") from exc
    if raw.get("InstanceCollectionType") == "INSTANCE_FLEET":
        raise FleetCluster(f"{cluster_id} has instance fleets: the report handles instance groups only")
    state = str((raw.get("Status") or {}).get("State", ""))
    attrs = raw.get("Ec2InstanceAttributes") or {}
    return Cluster(
        id=cluster_id,
        name=str(raw.get("Name", "")),
        state=enum_or_default(state, ClusterState, "cluster state", ClusterState.TERMINATED),
        groups=tuple(EmrClusterReader(emr).list_groups(cluster_id)),
        availability_zone=attrs.get("Ec2AvailabilityZone") or None,
    )


def spot_means(
    ec2: Any, types: Sequence[str], az: str | None, start: datetime, end: datetime
) -> tuple[dict[str, float], list[str]]:
    """The period's mean spot prices, or none (and a note) when EC2 refuses: the on-demand table then."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from sparkscale.adapters.prices import mean_spot_prices  # noqa: PLC0415

    if ec2 is None:
        return {}, ["no EC2 client: SPOT groups priced at the on-demand table"]
    try:
        return mean_spot_prices(ec2, instance_types=types, availability_zone=az, start=start, end=end), []
    except (ClientError, BotoCoreError) as exc:
        return {}, [f"DescribeSpotPriceHistory failed ({exc}): SPOT groups priced at the on-demand table"]


def floor_to(t: datetime, period_s: int) -> datetime:
    """`t` down to a multiple of `period_s` (CloudWatch's periods start from StartTime)."""
    return datetime.fromtimestamp(t.timestamp() // period_s * period_s, tz=t.tzinfo)


def report_from_aws(
    *,
    emr: Any,
    cloudwatch: Any,
    ec2: Any,
    cluster_id: str,
    records: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
    config: Config,
    seed: int = 0,
    progress: Callable[[str], Any] | None = None,
) -> SavingsReport:
    """The report of [start, end) from the cluster's CloudWatch history (GetMetricData), its instance groups
    (EMR) and the period's spot prices (DescribeSpotPriceHistory), with `records` its audit records."""
    days = (end - start).total_seconds() / 86_400.0
    series = fetch_series(
        cloudwatch,
        cluster_id=cluster_id,
        start=start,
        end=end,
        period_s=period_for(days),
        extra=[SUPPLY_QUERY],
    )
    if not (series["alloc"] or series["pending"]):  # before any EMR or EC2 read: nothing to replay
        raise NoHistory(
            f"{cluster_id}: no {names.EMR_MEMORY_ALLOCATED_MB} or {names.EMR_CONTAINER_PENDING} datapoints "
            f"between {_utc(start)} and {_utc(end)} UTC"
        )
    cluster = read_shape(emr, cluster_id)
    spot_types = sorted({g.instance_type for g in cluster.task_groups if g.market is Market.SPOT})
    means, notes = spot_means(ec2, spot_types, cluster.availability_zone, start, end)
    prices = period_prices(cluster, means, availability_zone=cluster.availability_zone)
    report = build_report(
        cluster_id=cluster_id,
        records=records,
        series=series,
        end=end,
        days=days,
        config=config,
        shape=cluster_shape(cluster, prices),
        prices=prices,
        seed=seed,
        progress=progress,
    )
    report.notes.extend(notes)
    return report


def week_comparison(r: SavingsReport) -> WeekComparison:
    """The digest's one-line comparison from a report."""
    s = r.replay.scores
    return WeekComparison(
        cluster_id=r.cluster_id,
        days=r.days,
        cost_usd=r.actual.cost_usd,
        short_pct=r.actual.tau_u_pct,
        emr_rules_usd=s[pol.EMR_CUSTOM_RULES].cost_usd,
        emr_rules_short_pct=s[pol.EMR_CUSTOM_RULES].tau_u_pct,
        static_peak_usd=s[pol.STATIC_PEAK].cost_usd,
        oracle_usd=s[pol.ORACLE].cost_usd,
        spot_history=any(p.source.startswith(SPOT_HISTORY) for p in r.prices),
    )


class WeekComparer:
    """The digest's `CompareWeek` (usecases/digest.py): `report_from_aws` on one cluster's week, cut when
    it runs past the time it is given (the replay's progress callback checks the clock about 100 times per
    policy; the few AWS reads before it are bounded by the clients' own timeouts and retries, not cut), its
    errors turned into one `ComparisonUnavailable` reason each."""

    def __init__(
        self, *, emr: Any, cloudwatch: Any, ec2: Any, config: Config, clock: Callable[[], float]
    ) -> None:
        self._clients = {"emr": emr, "cloudwatch": cloudwatch, "ec2": ec2}
        self._config = config
        self._clock = clock  # monotonic seconds

    def __call__(
        self,
        cluster_id: str,
        records: Sequence[Mapping[str, Any]],
        start: datetime,
        end: datetime,
        *,
        budget_s: float,
    ) -> WeekComparison:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
        from sparkscale.errors import SparkscaleError  # noqa: PLC0415

        from sparkscale_tools.replay.run import ReplayError  # noqa: PLC0415
        from sparkscale_tools.replay.trace import TraceError  # noqa: PLC0415

        deadline = self._clock() + budget_s

        def check(_policy: str) -> Callable[[int, int], None]:
            def tick(_done: int, _total: int) -> None:
                if self._clock() > deadline:
                    raise OutOfTime(f"the replay took longer than the {budget_s:.0f} s left")

            return tick

        try:
            report = report_from_aws(
                **self._clients,
                cluster_id=cluster_id,
                records=records,
                start=floor_to(start, names.EMR_PERIOD_S),
                end=end,
                config=self._config,
                progress=check,
            )
        except OutOfTime as exc:
            raise ComparisonUnavailable(SkipReason.OUT_OF_TIME, str(exc)) from exc
        except FleetCluster as exc:
            raise ComparisonUnavailable(SkipReason.FLEET, str(exc)) from exc
        except (NoHistory, TraceError) as exc:
            raise ComparisonUnavailable(SkipReason.NO_HISTORY, str(exc)) from exc
        except (ReportError, ReplayError, SparkscaleError, ClientError, BotoCoreError) as exc:
            raise ComparisonUnavailable(SkipReason.FAILED, f"{type(exc).__name__}: {exc}") from exc
        return week_comparison(report)


def _emr_group(shape: ClusterSpec, config: Config) -> GroupSpec:
    """The group the replay's EMR rules resize (policies.EmrRulesController)."""
    spot = any(g.market is Market.SPOT for g in shape.task_groups)
    return shape.cheapest_task_group(config.usable_memory_fraction, market=Market.SPOT if spot else None)


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _hours(seconds: float) -> str:
    h, m = divmod(round(seconds / 60.0), 60)
    return f"{h} h {m:02d} min"


def report_text(r: SavingsReport) -> str:
    """What `sparkscale report` prints."""
    from tabulate import tabulate  # noqa: PLC0415

    u = r.usage
    lines = [
        f"sparkscale report for {r.cluster_id}: {_utc(r.start)} to {_utc(r.end)} UTC ({r.days:.2f} days)",
        "",
        r.headline(),
        "",
    ]
    rows = []
    for name, s in r.scores().items():
        ratio = "-" if s.cost_ratio_vs_oracle is None else f"{s.cost_ratio_vs_oracle:.2f}"
        rows.append(
            (name, f"${s.cost_usd:,.2f}", ratio, f"{s.tau_u_pct:.1f} %", f"{s.theta_u_pct:.1f} %", s.actions)
        )
    heads = ("policy", "TASK nodes cost", "x oracle", "time short of memory", "memory short", "actions")
    lines.append(str(tabulate(rows, headers=heads, tablefmt="simple", disable_numparse=True)))
    lines += [
        "",
        f"sparkscale's TASK nodes: {u.node_hours:,.1f} node-hours, peak {u.peak_nodes}, average "
        f"{u.average_nodes:.1f}, time at max {_hours(u.at_max_s)}; {u.scale_outs} scale-out(s), "
        f"{u.scale_ins} scale-in(s); from {u.records} audit records.",
        "",
        "Prices (USD per node-hour):",
        *(
            f"  {p.group_id}  {p.instance_type} {p.market}: {p.usd_per_hour:.4f} ({p.source})"
            for p in r.prices
        ),
    ]
    if r.replay.emr_rules:
        lines += ["", f"EMR's rules as replayed: {r.replay.emr_rules}"]
    lines += ["", "Assumptions:", *(f"- {a}" for a in ASSUMPTIONS)]
    if r.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in r.notes)]
    return "\n".join(lines) + "\n"


def write_plot(r: SavingsReport, path: str) -> None:
    """Demand, the YARN memory sparkscale's cluster had and the one EMR's rules would have had (top); the
    TASK nodes sparkscale requested and EMR's rules would have (bottom). matplotlib, Agg."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    n = len(r.demand)
    div, unit = (86_400.0, "days") if n * r.step_s > 3 * 86_400 else (3600.0, "hours")
    x = [k * r.step_s / div for k in range(n + 1)]
    emr = r.replay.runs[pol.EMR_CUSTOM_RULES]
    emr_usd = r.emr_group_usd_per_hour
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(14, 7), sharex=True, height_ratios=[3, 1.4], layout="constrained"
    )
    top.fill_between(x, [*r.demand, r.demand[-1]], step="post", color="0.85", label="demand")
    top.step(
        x,
        [*r.actual_supply, r.actual_supply[-1]],
        where="post",
        color="tab:blue",
        label="sparkscale (YARN memory, measured)",
    )
    top.step(
        x,
        [*emr.supply_gib, emr.supply_gib[-1]],
        where="post",
        color="tab:red",
        linestyle="--",
        label="emr-custom-rules (replayed)",
    )
    top.set_ylabel("GiB")
    words = textwrap.wrap(r.headline().replace("$", r"\$"), width=150)  # "$" would start mathtext
    top.set_title("\n".join([f"sparkscale report {r.cluster_id}", *words]), fontsize=9)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    steps = {at: float(count) for at, count in r.usage.steps}
    nodes = [v or 0.0 for v in _held(steps, [r.start + timedelta(seconds=k * r.step_s) for k in range(n)])]
    bottom.step(x, [*nodes, nodes[-1]], where="post", color="tab:blue", label="sparkscale (requested)")
    if emr_usd:
        emr_nodes = [c / emr_usd for c in emr.cost_usd_per_h]
        bottom.step(
            x,
            [*emr_nodes, emr_nodes[-1]],
            where="post",
            color="tab:red",
            linestyle="--",
            label="emr-custom-rules (billed)",
        )
    bottom.set_ylabel("TASK nodes")
    bottom.set_xlabel(f"time ({unit}) from {_utc(r.start)} UTC")
    bottom.set_xlim(0, x[-1])
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.savefig(path)
    plt.close(fig)
