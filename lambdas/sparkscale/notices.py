"""Every operator notice, built here and nowhere else (pure): what the scaler did or failed to do, as an
email-readable text.

One subject rule for all of them (`subject_line`: one line, ASCII, under 100 characters, as SNS email needs;
the SNS adapter applies it again). The body is plain text; the footer ("sparkscale | cluster J | kind K") is
kept apart (`Notice.footer`), so that a notice can quote another's body without parsing it. A decision notice
names the cluster, each changed TASK group (from -> to nodes, instance type, market, price), the driving
signal and its value, the TASK groups' USD per hour before and after, and the policy's reasons. Dry-run
decisions say so in the subject and the first line. A decision with spot fallback (TASK groups that got no
new capacity) says which groups were blocked and which groups took the capacity instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sparkscale import names
from sparkscale.config import Config
from sparkscale.events.emr import EmrEvent, EmrEventKind
from sparkscale.events.spot import SpotEvent, SpotEventKind
from sparkscale.policy.fallback import label
from sparkscale.policy.fleet import UNITS_TYPE, split_market_group_id
from sparkscale.policy.model import Cluster, Decision, Direction, GroupTarget, Market, Signal
from sparkscale.policy.reasons import ReasonCode
from sparkscale.policy.replacement import ReplacementKind, ReplacementPlan
from sparkscale.ports import Notice, PauseMark
from sparkscale.usecases.shell import Outcome

if TYPE_CHECKING:
    from datetime import date

    from sparkscale.usecases.digest import ClusterDay, WeekComparison, WeekSkipped
    from sparkscale.usecases.savings import TaskUsage
    from sparkscale.usecases.scale import RunResult

KIND_ACTION: Final = names.NOTICE_KIND_ACTION
KIND_DRY_RUN: Final = names.NOTICE_KIND_DRY_RUN
KIND_FAILURE: Final = names.NOTICE_KIND_FAILURE
KIND_AT_MAX: Final = names.NOTICE_KIND_AT_MAX
KIND_CLUSTER_GONE: Final = names.NOTICE_KIND_CLUSTER_GONE
KIND_FALLBACK: Final = names.NOTICE_KIND_FALLBACK
KIND_INTERRUPTION: Final = names.NOTICE_KIND_INTERRUPTION
KIND_REPLACEMENT_FAILED: Final = names.NOTICE_KIND_REPLACEMENT_FAILED
KIND_DISCOVERY: Final = names.NOTICE_KIND_DISCOVERY
KIND_DISCOVERY_REFUSED: Final = names.NOTICE_KIND_DISCOVERY_REFUSED
KIND_DIGEST: Final = names.NOTICE_KIND_DIGEST
KINDS: Final = names.NOTICE_KINDS
DIGEST_CLUSTER: Final = "all"  # the digest's `cluster` attribute: it covers every managed cluster

SUBJECT_MAX: Final = 99  # SNS: "must be less than 100 characters"
_CTRL: Final = re.compile(r"[\x00-\x1f\x7f]+")
WEEK_COVERED_DAYS: Final = 6.9  # a weekly comparison over fewer days of history says how many


def subject_line(text: str) -> str:
    """The one subject rule: ASCII (arrows become '->'), no control characters, at most 99 characters,
    never empty. Idempotent, so the SNS adapter can apply it again."""
    t = text.replace("→", "->").replace("…", "...").replace("—", "-").replace("–", "-")
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode("ascii")
    t = _CTRL.sub(" ", t).strip()
    t = re.sub(r" {2,}", " ", t) or "sparkscale notice"
    if len(t) > SUBJECT_MAX:
        t = t[: SUBJECT_MAX - 3].rstrip() + "..."
    return t


def _notice(kind: str, cluster_id: str, subject: str, lines: Sequence[str]) -> Notice:
    return Notice(
        kind=kind,
        cluster_id=cluster_id,
        subject=subject_line(subject),
        body="\n".join(lines),
        footer=f"--\nsparkscale | cluster {cluster_id} | kind {kind}",
    )


_UNITS = {
    Signal.YARN_MEMORY_AVAILABLE_PCT: "% of YARN memory available",
    Signal.HEAP_USED_PCT: "% of executor heap used (cluster-wide)",
    Signal.HEAP_USED_BYTES: "bytes of executor heap used",
    Signal.CONTAINER_PENDING: "containers pending",
    Signal.TOTAL_LOAD: "concurrent HDFS transfers",
    Signal.APPS_PENDING: "applications pending",
    Signal.MEMORY_AVAILABLE_MB: "MB of YARN memory available",
}
_VERB = {Direction.OUT: "scale out", Direction.IN: "scale in", Direction.HOLD: "hold"}


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def paused_text(mark: PauseMark) -> str:
    """`paused by an operator (BY since TIME: WHY)`: what a paused cluster's reasons and notices say."""
    why = f": {mark.why}" if mark.why else ""
    return f"paused by an operator ({mark.by} since {_ts(mark.at)}{why})"


def _nodes(targets: Sequence[GroupTarget]) -> tuple[int, int]:
    return sum(t.current for t in targets), sum(t.target for t in targets)


def _signal_line(d: Decision) -> str:
    if d.driving_signal is None:
        return "Driving signal: none"
    value = "n/a" if d.driving_value is None else f"{d.driving_value:,.2f}"
    unit = _UNITS.get(d.driving_signal, "")
    return f"Driving signal: {d.driving_signal.value} = {value}" + (f" ({unit})" if unit else "")


def _short_signal(d: Decision) -> str:
    if d.driving_signal is None or d.driving_value is None:
        return ""
    return f" ({d.driving_signal.value} {d.driving_value:,.1f})"


def _target_label(t: GroupTarget) -> str:
    """'name (id, MARKET type)' of a decision's target, as policy.fallback.label writes a group's."""
    who = (
        f"{t.group_name} ({t.group_id}, "
        if t.group_name and t.group_name != t.group_id
        else f"{t.group_id} ("
    )
    return f"{who}{t.market.value} {t.instance_type})"


def _unit(targets: Sequence[GroupTarget]) -> str:
    """'units' for a fleet cluster's targets (markets of an instance fleet: policy/fleet.py), else 'nodes'."""
    return "units" if any(t.instance_type == UNITS_TYPE for t in targets) else "nodes"


def _group_line(t: GroupTarget) -> str:
    u = _unit((t,))
    return (
        f"  {_target_label(t)}: {t.current} -> {t.target} {u} at ${t.usd_per_hour_per_node:.4f}/{u[:-1]}-hour"
    )


def group_label(group_id: str, decision: Decision | None, cluster: Cluster | None) -> str:
    """'name (id, MARKET type)' from the cluster, else from the decision's targets, else the id."""
    g = cluster.group(group_id) if cluster is not None else None
    if g is not None:
        return label(g)
    t = next((t for t in decision.targets if t.group_id == group_id), None) if decision else None
    return group_id if t is None else _target_label(t)


def fallback_lines(d: Decision, cluster: Cluster | None) -> list[str]:
    """The 'Spot fallback' part of a decision notice: which TASK groups got no new capacity, and which groups
    took the capacity instead (empty when no group was blocked)."""
    if not d.fallback_groups:
        return []
    lines = ["Spot fallback:"]
    lines += [f"  Blocked, gets no new capacity: {group_label(gid, d, cluster)}" for gid in d.fallback_groups]
    went = [t for t in d.changes if t.group_id in d.fallback_to and t.target > t.current]
    if went:
        lines += [
            f"  Capacity went to: {group_label(t.group_id, d, cluster)} {t.current} -> {t.target} "
            + _unit((t,))
            for t in went
        ]
    else:
        lines.append("  Capacity went to: no group in their place in this decision.")
    return lines


def decision_notice(
    decision: Decision, cluster: Cluster | None = None, *, running: int | None = None
) -> Notice:
    """An action (or, for a dry-run decision, what it would have done)."""
    d = decision
    kind = KIND_DRY_RUN if d.dry_run else KIND_ACTION
    before, after = _nodes(d.targets)
    unit = _unit(d.targets)
    verb = _VERB[d.direction]
    name = f" ({cluster.name})" if cluster is not None and cluster.name else ""
    if d.dry_run:
        paused = ReasonCode.PAUSED in d.reason_codes
        tag, what = ("PAUSED", "PAUSED by an operator") if paused else ("DRY RUN", "DRY RUN")
        subject = f"[{tag}] sparkscale {d.cluster_id}: would {verb} {before} -> {after} TASK {unit}"
        head = (
            f"{what} - nothing was changed. sparkscale would {verb} EMR cluster {d.cluster_id}{name} "
            f"at {_ts(d.at)}."
        )
    else:
        subject = f"sparkscale {d.cluster_id}: {verb} {before} -> {after} TASK {unit}"
        head = f"sparkscale asked EMR to {verb} cluster {d.cluster_id}{name} at {_ts(d.at)}."
    subject += _short_signal(d)
    changed = [_group_line(t) for t in d.changes] or ["  (no group changes)"]
    lines = [
        head,
        "",
        "Changed TASK groups:",
        *changed,
        "",
        _signal_line(d),
        f"TASK {unit} requested: {before} -> {after}"
        + (f" (running now: {running})" if running is not None else "")
        + (f"; the estimate asked for {d.desired_task_nodes}" if d.desired_task_nodes is not None else ""),
        f"Cost of the TASK groups: ${d.usd_per_hour_before:.2f}/h -> ${d.usd_per_hour_after:.2f}/h",
    ]
    if d.at_max_under_pressure:
        lines.append("At the maximum TASK capacity and still under pressure.")
    fallback = fallback_lines(d, cluster)
    if fallback:
        lines += ["", *fallback]
    lines += ["", "Why:", *[f"  - {r}" for r in d.reasons]]
    return _notice(kind, d.cluster_id, subject, lines)


def at_max_notice(decision: Decision) -> Notice:
    d = decision
    _, after = _nodes(d.targets)
    subject = f"sparkscale {d.cluster_id}: at max TASK capacity ({after} nodes), still under pressure"
    lines = [
        f"EMR cluster {d.cluster_id} is at its maximum TASK capacity ({after} nodes requested) at "
        f"{_ts(d.at)} and its signals still ask for more.",
        "Raise max_task_nodes / the groups' max_nodes / budget_usd_per_hour, or add a TASK group, if this "
        "persists.",
        "",
        _signal_line(d),
        *([f"The estimate asked for {d.desired_task_nodes} TASK nodes."] if d.desired_task_nodes else []),
        f"Cost of the TASK groups: ${d.usd_per_hour_after:.2f}/h",
        "",
        "Why:",
        *[f"  - {r}" for r in d.reasons],
        "",
        "(Sent at most once an hour while it lasts.)",
    ]
    return _notice(KIND_AT_MAX, d.cluster_id, subject, lines)


def failure_notice(cluster_id: str, *, what: str, error: BaseException, now: datetime) -> Notice:
    err = type(error).__name__
    subject = f"sparkscale {cluster_id}: {what} failed ({err})"
    lines = [
        f"sparkscale could not {what} for EMR cluster {cluster_id} at {_ts(now)}.",
        "",
        f"Error: {err}: {error}",
        "",
        "Nothing else was changed. The cluster is evaluated again on the next alarm or reconcile run; this "
        "notice is sent at most once an hour per kind of error.",
    ]
    return _notice(KIND_FAILURE, cluster_id, subject, lines)


def cluster_gone_notice(
    cluster_id: str, *, why: str, now: datetime, in_clusters_setting: bool = True
) -> Notice:
    """`in_clusters_setting`: the cluster is in the static `clusters` setting (the operator removes it) rather
    than managed by tag (discovery releases it: nothing for the operator to do)."""
    subject = f"sparkscale {cluster_id}: cluster is gone, no longer managed"
    cleanup = (
        "Remove it from the `clusters` setting when convenient."
        if in_clusters_setting
        else "It was managed by tag: the next discovery sweep deletes its alarms and releases it; "
        "nothing to do."
    )
    lines = [
        f"EMR cluster {cluster_id} is terminating, terminated or unknown ({why}), seen at {_ts(now)}.",
        "",
        f"sparkscale stops evaluating it and will not notify about it again. {cleanup}",
    ]
    return _notice(KIND_CLUSTER_GONE, cluster_id, subject, lines)


# --- clusters managed by tag (usecases/discovery.py) ------------------------------------------------------
def _profile_text(profile: str, paused: bool) -> str:
    text = f"profile {profile}" if profile else "the base settings"
    return text + (" (paused: decided on, never resized)" if paused else "")


def managing_notice(
    cluster_id: str, *, name: str, profile: str, paused: bool, alarms: Sequence[str], now: datetime
) -> Notice:
    subject = f"sparkscale {cluster_id}: now managing it with {_profile_text(profile, False)}"
    lines = [
        f"EMR cluster {cluster_id} ({name or 'no name'}) carries the opt-in tag: sparkscale manages it from "
        f"{_ts(now)} with {_profile_text(profile, paused)}.",
        "",
        f"Alarms created ({len(alarms)}): " + (", ".join(alarms) or "none"),
        "",
        "It is managed until it terminates or the tag is removed; its alarms are then deleted.",
    ]
    return _notice(KIND_DISCOVERY, cluster_id, subject, lines)


def released_notice(cluster_id: str, *, why: str, alarms: Sequence[str], now: datetime) -> Notice:
    subject = f"sparkscale {cluster_id}: no longer managed ({why})"
    lines = [
        f"EMR cluster {cluster_id} is no longer managed by sparkscale since {_ts(now)}: {why}.",
        "",
        f"Alarms deleted ({len(alarms)}): " + (", ".join(alarms) or "none"),
    ]
    return _notice(KIND_DISCOVERY, cluster_id, subject, lines)


def refused_notice(cluster_id: str, *, why: str, now: datetime) -> Notice:
    subject = f"sparkscale {cluster_id}: tagged, but not managed"
    lines = [
        f"EMR cluster {cluster_id} carries the opt-in tag, but sparkscale does not manage it ({_ts(now)}): "
        f"{why}.",
        "",
        "Fix the cluster's tags (or the settings' `profiles`); the next sweep picks it up.",
    ]
    return _notice(KIND_DISCOVERY_REFUSED, cluster_id, subject, lines)


# --- spot events ----------------------------------------------------------------------------------------
def interruption_notice(
    *,
    event: SpotEvent,
    plan: ReplacementPlan,
    applied: bool,
    dry_run: bool = False,
    error: str | None = None,
    why: str = "dry run",
) -> Notice:
    """The operator message for one handled event (a rebalance says it is one); its kind says whether it
    needs a person (`_interruption_kind`)."""
    short = "interruption" if event.kind is SpotEventKind.INTERRUPTION else "rebalance"
    lost = plan.interrupted
    where = f"{plan.group_id} ({lost.instance_type})" if lost else plan.group_id
    if plan.replacement is not None and error is None:
        to = plan.replacement
        verb = "would move" if dry_run else ("moved" if applied else "not moved")
        target = to.instance_type + (" on-demand" if to.market is Market.ON_DEMAND else "")
        headline = f"{short} {event.instance_id}: {verb} to {target}"
    elif error is not None:
        headline = f"{short} {event.instance_id}: replacement FAILED"
    else:
        headline = f"{short} {event.instance_id}: left to EMR"
    subject = f"sparkscale {plan.cluster_id}: {headline}"
    if event.kind is SpotEventKind.INTERRUPTION:
        event_line = (
            f"EC2 Spot Instance Interruption Warning (instance-action: {event.action or 'not given'})"
        )
    else:
        event_line = (
            "EC2 Instance Rebalance Recommendation: a RECOMMENDATION, the instance is at elevated risk of "
            "interruption and has not been reclaimed yet"
        )
    lines = [
        f"Cluster:    {plan.cluster_id}",
        f"Event:      {event_line}",
        f"Instance:   {event.instance_id} in {where}",
        f"Event time: {event.at.isoformat()} (id {event.event_id or '-'})",
        f"Outcome:    {plan.kind}" + (f" ({why}: nothing changed)" if dry_run else ""),
    ]
    if plan.changes:
        lines.append("Changes:")
        lines += [
            f"  {t.group_id} {t.group_name} {t.instance_type} {t.market}: {t.current} -> {t.target} "
            f"(${t.usd_per_hour_per_node:.4f}/node-h)"
            for t in plan.changes
        ]
    lines.append("Why:")
    lines += [f"  - {r}" for r in plan.reasons]
    if error is not None:
        lines.append(f"Error:      {error}")
    return _notice(_interruption_kind(plan, error), plan.cluster_id, subject, lines)


def _interruption_kind(plan: ReplacementPlan, error: str | None) -> str:
    """A replacement that failed is an alert; one that fell back to on-demand is a fallback (both emailed by
    default); a node moved to another spot pool or left to EMR is routine."""
    if error is not None:
        return KIND_REPLACEMENT_FAILED
    if plan.kind is ReplacementKind.REPLACED_ON_DEMAND:
        return KIND_FALLBACK
    return KIND_INTERRUPTION


# --- EMR capacity events ---------------------------------------------------------------------------------
def fallback_key(group_id: str) -> str:
    """The notice-ledger key: one fallback notice per group per REPEAT_NOTICE_S."""
    return f"fallback:{group_id}"


def fallback_notice(
    *, event: EmrEvent, run: RunResult, config: Config, held: Sequence[Notice] = ()
) -> Notice:
    """One operator message for a capacity event: which group is blocked and why (EMR's words), what the
    scaler did about it now (where the capacity went), and the scaler's own decision notice (`held`)."""
    gid = event.group_id or "?"
    u = "units" if split_market_group_id(gid) is not None else "nodes"  # a fleet's market counts units
    d = run.decision
    who = group_label(gid, d, None)
    if who == gid and event.instance_type:
        who = f"{gid} (SPOT {event.instance_type})"
    acted = d is not None and run.outcome in (Outcome.APPLIED, Outcome.DRY_RUN)
    changes = d.changes if d is not None and acted else ()
    went = [t for t in changes if t.target > t.current]
    what = "arrested" if event.kind is EmrEventKind.ARRESTED else "no capacity"
    headline = f"spot fallback: {gid} ({what})"
    if went:
        dest = ", ".join(
            dict.fromkeys(
                t.instance_type + (" on-demand" if t.market is Market.ON_DEMAND else "") for t in went
            )
        )
        headline += f" -> {dest}"
    dry = "[DRY RUN] " if went and run.outcome == Outcome.DRY_RUN else ""
    subject = f"{dry}sparkscale {event.cluster_id}: {headline}"
    counts = (
        f", {event.running} of {event.requested} requested nodes running"
        if event.running is not None and event.requested is not None
        else ""
    )
    od = (
        "then to an ON_DEMAND TASK group (on_demand_fallback is on)"
        if config.on_demand_fallback
        else "not to ON_DEMAND groups (on_demand_fallback is off)"
    )
    lines = [
        f"Cluster:    {event.cluster_id}",
        f"Group:      {who}{counts}",
        f"EMR event:  {event.severity or '?'} {event.state or '?'} at {event.at.isoformat()} "
        f"(id {event.event_id or '-'})",
        f"EMR says:   {event.message or event.reason}",
        "",
        f"sparkscale gives {gid} no new capacity until it runs all its requested {u} and "
        f"spot_fallback_timeout_s ({config.spot_fallback_timeout_s} s) has passed since EMR's report; EMR "
        "keeps trying to fill what it was already asked for. The unmet part goes to the next cheapest SPOT "
        f"TASK group, {od}. Capacity moves back to spot once the group delivers again.",
        "",
    ]
    if changes:
        lines.append("What the scaler did now" + (" (DRY RUN: nothing changed):" if d and d.dry_run else ":"))
        lines += [
            f"  {group_label(t.group_id, d, None)}: {t.current} -> {t.target} {u} "
            f"(${t.usd_per_hour_per_node:.4f}/{u[:-1]}-hour)"
            for t in changes
        ]
    else:
        detail = f": {run.detail}" if run.detail else ""
        lines.append(
            f"What the scaler did now: no change ({run.outcome}{detail}). The next evaluation that needs "
            "capacity puts it on the other TASK groups."
        )
    for n in held:  # the decision's own notice, quoted without its footer: this one has its own
        lines += ["", f"The scaler's decision ({n.subject}):", "", n.body]
    return _notice(KIND_FALLBACK, event.cluster_id, subject, lines)


# --- the daily digest (usecases/digest.py) -----------------------------------------------------------------
def _hours(seconds: float) -> str:
    h, m = divmod(round(seconds / 60.0), 60)
    return f"{h} h {m:02d} min"


def _digest_cluster_lines(c: ClusterDay) -> list[str]:
    reasons = ", ".join(f"{code} ({n})" for code, n in c.top_reasons) or "none"
    lines = [
        f"{c.cluster_id} ({c.records} decisions recorded)",
        f"  Actions taken:      {c.scale_outs} scale-out(s), {c.scale_ins} scale-in(s)"
        + (f"; {c.dry_runs} decided but not made (dry run or paused)" if c.dry_runs else ""),
        f"  TASK nodes:         peak {c.peak_nodes}, average {c.average_nodes:.1f} "
        "(requested, time-weighted)",
        f"  TASK nodes cost:    ${c.cost_usd:,.2f} (estimate from the decisions' prices)",
        f"  Time at max:        {_hours(c.at_max_s)}",
        f"  Top reasons:        {reasons}",
    ]
    if c.failures:
        lines.append(f"  Failed:             {c.failed}")
        lines += [f"    - {what} (x{n})" for what, n in c.failures]
    else:
        lines.append("  Failed:             nothing")
    return lines


_SKIP_TEXT: Final = {  # usecases.digest.SkipReason -> why the email shows no comparison
    "no_history": "no CloudWatch history of its YARN memory over the week",
    "fleet": "it uses instance fleets, which the savings report does not replay",
    "out_of_time": "no time left in this run of the digest",
    "failed": "the comparison failed",
    "not_deployed": "the digest function was deployed without the replay engine",
}
COMPARISON_FOOTNOTE: Final = (
    "(*) Each cluster's own demand (CloudWatch, 5-minute averages) replayed with the savings report's model "
    "(new nodes usable after 6 minutes, no spot interruption); every policy, sparkscale included, priced at "
    "the week's mean spot price (EC2 price history; on-demand where there is none), hence a cost that "
    "differs from the one above; TASK nodes only. Details: sparkscale report --cluster <id> --days 7."
)


def _comparison_line(c: WeekComparison) -> str:
    gap = c.emr_rules_short_pct - c.short_pct
    covered = "" if c.days > WEEK_COVERED_DAYS else f" (the {c.days:.1f} days with history)"
    prices = "" if c.spot_history else " (on-demand prices: no spot price history)"
    return (
        f"  Against EMR's rules{covered}: task nodes cost ${c.cost_usd:,.2f}; EMR's default rules would have "
        f"cost about ${c.emr_rules_usd:,.2f} with {abs(gap):.1f} % {'more' if gap >= 0 else 'less'} time "
        f"short of memory ({c.emr_rules_short_pct:.1f} % vs {c.short_pct:.1f} %); static peak "
        f"${c.static_peak_usd:,.2f}; the oracle ${c.oracle_usd:,.2f}{prices} (*)"
    )


def _skipped_line(s: WeekSkipped) -> str:
    why = _SKIP_TEXT.get(str(s.reason), str(s.reason))
    run = "" if str(s.reason) == "fleet" else f": run sparkscale report --cluster {s.cluster_id} --days 7"
    return f"  Against EMR's rules: not compared ({why}){run}"


def _weekly_lines(
    first: date,
    last: date,
    week: Sequence[TaskUsage],
    compared: Sequence[WeekComparison] | None = None,
    not_compared: Sequence[WeekSkipped] = (),
) -> list[str]:
    """The weekly section: per cluster, what its requested TASK nodes were over the seven days, and with
    `compared` (the digest ran the comparisons) how EMR's rules, static peak and the oracle compare."""
    cost = sum(w.cost_usd for w in week)
    lines = [
        f"The week {first.isoformat()} to {last.isoformat()}: {len(week)} cluster(s), about ${cost:,.2f} of "
        "TASK nodes (requested nodes billed per second, at least a minute per node, at the decisions' "
        "prices).",
    ]
    by_cluster = {c.cluster_id: _comparison_line(c) for c in compared or ()}
    by_cluster.update({s.cluster_id: _skipped_line(s) for s in not_compared})
    for w in week:
        default = f"  Against EMR's rules: sparkscale report --cluster {w.cluster_id} --days 7"
        lines += [
            "",
            f"{w.cluster_id} over the week ({w.records} decisions recorded)",
            f"  TASK nodes cost:    ${w.cost_usd:,.2f} for {w.node_hours:,.1f} node-hours",
            f"  TASK nodes:         peak {w.peak_nodes}, average {w.average_nodes:.1f} "
            "(requested, time-weighted)",
            f"  Time at max:        {_hours(w.at_max_s)}",
            f"  Actions taken:      {w.scale_outs} scale-out(s), {w.scale_ins} scale-in(s)",
            by_cluster.get(w.cluster_id, default),
        ]
    if not week:
        lines.append("No decision recorded that week.")
    if compared:
        lines += ["", COMPARISON_FOOTNOTE]
    return lines


def digest_notice(
    *,
    day: date,
    time_zone: str,
    clusters: Sequence[ClusterDay],
    week: tuple[date, Sequence[TaskUsage]] | None = None,
    compared: Sequence[WeekComparison] | None = None,
    not_compared: Sequence[WeekSkipped] = (),
) -> Notice:
    """The daily digest: one section per cluster that recorded a decision on `day` (local, `time_zone`);
    with `week` (its first day, and the clusters with records in the seven days ending with `day`), the
    weekly section after them, with each cluster's comparison (`compared`) or why it has none
    (`not_compared`)."""
    outs = sum(c.scale_outs for c in clusters)
    ins = sum(c.scale_ins for c in clusters)
    failed = sum(c.failed for c in clusters)
    cost = sum(c.cost_usd for c in clusters)
    weekly = " + weekly" if week is not None else ""
    subject = (
        f"sparkscale daily digest {day.isoformat()}{weekly}: {len(clusters)} cluster(s), {outs} out, "
        f"{ins} in, {failed} failed, ~${cost:,.0f}"
    )
    lines = [
        f"sparkscale's day {day.isoformat()} ({time_zone}), from the audit records: {len(clusters)} "
        f"cluster(s), {outs} scale-out(s), {ins} scale-in(s), {failed} failure(s), about ${cost:,.2f} of "
        "TASK nodes.",
        "",
        "Costs are estimates from the decisions: requested TASK nodes x the price per node-hour each "
        "decision carries, over the day. Time at max: from each decision at the maximum and still under "
        "pressure to the next decision.",
    ]
    for c in clusters:
        lines += ["", *_digest_cluster_lines(c)]
    if not clusters:
        lines += ["", "No decision recorded that day."]
    if week is not None:
        lines += ["", *_weekly_lines(week[0], day, week[1], compared, not_compared)]
    lines += ["", "(One email a day; a day without any decision sends nothing.)"]
    return _notice(KIND_DIGEST, DIGEST_CLUSTER, subject, lines)
