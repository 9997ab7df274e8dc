"""Operator notices: what the scaler did or failed to do, as an email-readable text (pure).

Every notice has a one-line ASCII subject under 100 characters (the SNS adapter enforces it again) and a
plain-text body: the cluster, each changed TASK group (from -> to nodes, instance type, market, price), the
driving signal and its value, the TASK groups' USD per hour before and after, and the policy's reasons.
Dry-run decisions say so in the subject and the first line. A decision with spot fallback (TASK groups that
got no new capacity) says which groups were blocked and which groups took the capacity instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sparkscale.policy.fallback import label
from sparkscale.policy.model import Cluster, Decision, Direction, GroupTarget, Signal
from sparkscale.ports import Notice

KIND_ACTION = "action"
KIND_DRY_RUN = "dry_run"
KIND_FAILURE = "failure"
KIND_AT_MAX = "at_max"
KIND_CLUSTER_GONE = "cluster_gone"
KIND_FALLBACK = "fallback"

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


def _group_line(t: GroupTarget) -> str:
    who = (
        f"{t.group_name} ({t.group_id}, "
        if t.group_name and t.group_name != t.group_id
        else f"{t.group_id} ("
    )
    return (
        f"  {who}{t.market.value} {t.instance_type}): "
        f"{t.current} -> {t.target} nodes at ${t.usd_per_hour_per_node:.4f}/node-hour"
    )


def group_label(group_id: str, decision: Decision | None, cluster: Cluster | None) -> str:
    """'name (id, MARKET type)' from the cluster, else from the decision's targets, else the id."""
    g = cluster.group(group_id) if cluster is not None else None
    if g is not None:
        return label(g)
    t = next((t for t in decision.targets if t.group_id == group_id), None) if decision else None
    if t is None:
        return group_id
    who = (
        f"{t.group_name} ({t.group_id}, "
        if t.group_name and t.group_name != t.group_id
        else f"{t.group_id} ("
    )
    return f"{who}{t.market.value} {t.instance_type})"


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
            f"  Capacity went to: {group_label(t.group_id, d, cluster)} {t.current} -> {t.target} nodes"
            for t in went
        ]
    else:
        lines.append("  Capacity went to: no group in their place in this decision.")
    return lines


def _footer(cluster_id: str, kind: str) -> str:
    return f"--\nsparkscale | cluster {cluster_id} | kind {kind}"


def decision_notice(
    decision: Decision, cluster: Cluster | None = None, *, running: int | None = None
) -> Notice:
    """An action (or, for a dry-run decision, what it would have done)."""
    d = decision
    kind = KIND_DRY_RUN if d.dry_run else KIND_ACTION
    before, after = _nodes(d.targets)
    verb = _VERB[d.direction]
    name = f" ({cluster.name})" if cluster is not None and cluster.name else ""
    if d.dry_run:
        subject = f"[DRY RUN] sparkscale {d.cluster_id}: would {verb} {before} -> {after} TASK nodes"
        head = (
            f"DRY RUN - nothing was changed. sparkscale would {verb} EMR cluster {d.cluster_id}{name} "
            f"at {_ts(d.at)}."
        )
    else:
        subject = f"sparkscale {d.cluster_id}: {verb} {before} -> {after} TASK nodes"
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
        f"TASK nodes requested: {before} -> {after}"
        + (f" (running now: {running})" if running is not None else "")
        + (f"; the estimate asked for {d.desired_task_nodes}" if d.desired_task_nodes is not None else ""),
        f"Cost of the TASK groups: ${d.usd_per_hour_before:.2f}/h -> ${d.usd_per_hour_after:.2f}/h",
    ]
    if d.at_max_under_pressure:
        lines.append("At the maximum TASK capacity and still under pressure.")
    fallback = fallback_lines(d, cluster)
    if fallback:
        lines += ["", *fallback]
    lines += ["", "Why:", *[f"  - {r}" for r in d.reasons], "", _footer(d.cluster_id, kind)]
    return Notice(kind=kind, cluster_id=d.cluster_id, subject=subject, body="\n".join(lines))


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
        _footer(d.cluster_id, KIND_AT_MAX),
    ]
    return Notice(kind=KIND_AT_MAX, cluster_id=d.cluster_id, subject=subject, body="\n".join(lines))


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
        "",
        _footer(cluster_id, KIND_FAILURE),
    ]
    return Notice(kind=KIND_FAILURE, cluster_id=cluster_id, subject=subject, body="\n".join(lines))


def cluster_gone_notice(cluster_id: str, *, why: str, now: datetime) -> Notice:
    subject = f"sparkscale {cluster_id}: cluster is gone, no longer managed"
    lines = [
        f"EMR cluster {cluster_id} is terminating, terminated or unknown ({why}), seen at {_ts(now)}.",
        "",
        "sparkscale stops evaluating it and will not notify about it again. Remove it from the `clusters` "
        "setting when convenient.",
        "",
        _footer(cluster_id, KIND_CLUSTER_GONE),
    ]
    return Notice(kind=KIND_CLUSTER_GONE, cluster_id=cluster_id, subject=subject, body="\n".join(lines))
