"""Which instances a shrink keeps and which it removes, from the agent's YARN node report.

`choose_shrinks(changes, instances, report, now, max_age_s)`: for every TASK group a decision shrinks by N,
- protect the group's instances that host a YARN application master (a Spark driver in cluster mode), at most
  as many as the group keeps (EMR must still be able to remove N);
- terminate up to N of the others, the idle first: nodes YARN marks UNHEALTHY or LOST, then the fewest
  running containers, then the least memory in use (host name last, so the choice is deterministic); nodes
  already DECOMMISSIONING are EMR's already and never chosen again; an instance with no YARN node is not
  chosen (EMR knows better what it is).
Without a report, or with one older than `max_age_s`, nothing is chosen and the reason says so: EMR picks the
nodes, as it did before there was a choice.

Hosts are matched to instances (ListInstances: PrivateDnsName, PrivateIpAddress -> Ec2InstanceId) by the full
private DNS name, its first label (`ip-10-0-1-23`), or the private IP. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sparkscale.policy.model import GroupTarget
from sparkscale.policy.reasons import Reason, ReasonCode

GONE_STATES = frozenset({"DECOMMISSIONING", "DECOMMISSIONED", "SHUTDOWN"})  # YARN NodeState: EMR's already
BROKEN_STATES = frozenset({"UNHEALTHY", "LOST"})  # YARN NodeState: no work to lose, first to go
RUNNING = "RUNNING"  # EMR InstanceState of an instance that can be chosen


@dataclass(frozen=True, slots=True)
class YarnNode:
    """One element of the RM's /ws/v1/cluster/nodes, as the agent reported it."""

    host: str  # nodeHostName
    state: str  # YARN NodeState: RUNNING, UNHEALTHY, DECOMMISSIONING, LOST, ...
    containers: int  # numContainers
    used_memory_mb: float  # usedMemoryMB


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What the master-node agent saw in the ResourceManager at `collected_at`."""

    collected_at: datetime
    nodes: tuple[YarnNode, ...]
    am_hosts: frozenset[str]  # hosts of the running applications' masters (amHostHttpAddress without port)


@dataclass(frozen=True, slots=True)
class ClusterInstance:
    """One element of EMR's ListInstances."""

    instance_id: str  # Ec2InstanceId
    group_id: str
    state: str  # EMR InstanceState
    private_dns: str = ""
    private_ip: str = ""


@dataclass(frozen=True, slots=True)
class InstanceShrink:
    """ModifyInstanceGroups' ShrinkPolicy.InstanceResizePolicy of one group."""

    group_id: str
    protect: tuple[str, ...]  # InstancesToProtect (EC2 instance ids)
    terminate: tuple[str, ...]  # InstancesToTerminate (EC2 instance ids)
    termination_timeout_s: int | None = None  # InstanceTerminationTimeout; None: EMR's default


@dataclass(frozen=True, slots=True)
class ShrinkChoice:
    shrinks: tuple[InstanceShrink, ...]  # only groups with something to protect or terminate
    reasons: tuple[Reason, ...]


NO_CHOICE = ShrinkChoice((), ())


def host_keys(host: str) -> frozenset[str]:
    """The names a host may be known by: itself and, for a DNS name, its first label (lower case)."""
    h = host.strip().lower()
    if not h:
        return frozenset()
    if h.replace(".", "").isdigit():
        return frozenset({h, "ip-" + h.replace(".", "-")})
    return frozenset({h, h.split(".", 1)[0]})


def _instance_keys(i: ClusterInstance) -> frozenset[str]:
    return host_keys(i.private_dns) | host_keys(i.private_ip)


def choose_shrinks(
    *,
    changes: Sequence[GroupTarget],
    instances: Sequence[ClusterInstance],
    report: NodeReport | None,
    now: datetime,
    max_age_s: float,
    termination_timeout_s: int | None = None,
) -> ShrinkChoice:
    """See the module docstring. Groups that do not shrink are left alone."""
    shrinking = [c for c in changes if c.target < c.current]
    if not shrinking:
        return NO_CHOICE
    stale = _staleness(report, now, max_age_s)
    if stale is not None or report is None:
        text = f"{stale} EMR chooses which nodes go."
        return ShrinkChoice((), (Reason(ReasonCode.NODES_UNKNOWN, text, {"max_age_s": max_age_s}),))
    shrinks, reasons = [], []
    for change in shrinking:
        shrink, reason = _choose_group(change, instances, report, termination_timeout_s)
        if shrink.protect or shrink.terminate:
            shrinks.append(shrink)
        reasons.append(reason)
    return ShrinkChoice(tuple(shrinks), tuple(reasons))


def _staleness(report: NodeReport | None, now: datetime, max_age_s: float) -> str | None:
    """Why the report cannot be used, or None when it is fresh."""
    if report is None:
        return "No node report from the agent."
    age = (now - report.collected_at).total_seconds()
    if age > max_age_s or age < -max_age_s:
        return f"The agent's node report is {age:.0f} s old (node_report_max_age_s {max_age_s:.0f} s)."
    return None


def _choose_group(
    change: GroupTarget,
    instances: Sequence[ClusterInstance],
    report: NodeReport,
    termination_timeout_s: int | None,
) -> tuple[InstanceShrink, Reason]:
    remove = change.current - change.target
    running = sorted(
        (i for i in instances if i.group_id == change.group_id and i.state == RUNNING and i.instance_id),
        key=lambda i: i.instance_id,
    )
    nodes = _nodes_by_instance(running, report.nodes)
    am_keys = frozenset(k for h in report.am_hosts for k in host_keys(h))
    am_instances = [i for i in running if _instance_keys(i) & am_keys]
    protect = am_instances[: max(0, change.target)]
    candidates = [
        (i, nodes[i.instance_id])
        for i in running
        if i not in am_instances and i.instance_id in nodes and nodes[i.instance_id].state not in GONE_STATES
    ]
    candidates.sort(key=lambda pair: _idleness(pair[1]))
    count = min(remove, max(0, len(running) - change.target), len(candidates))
    chosen = candidates[:count]
    shrink = InstanceShrink(
        change.group_id,
        tuple(i.instance_id for i in protect),
        tuple(i.instance_id for i, _ in chosen),
        termination_timeout_s,
    )
    unprotected = [i for i in am_instances if i not in protect]
    return shrink, _reason(change, remove, protect, chosen, unprotected, nodes)


def _idleness(node: YarnNode) -> tuple[int, int, float, str]:
    return (0 if node.state in BROKEN_STATES else 1, node.containers, node.used_memory_mb, node.host)


def _nodes_by_instance(running: Iterable[ClusterInstance], nodes: Sequence[YarnNode]) -> dict[str, YarnNode]:
    by_key: dict[str, YarnNode] = {}
    for n in nodes:
        for k in host_keys(n.host):
            by_key.setdefault(k, n)
    out: dict[str, YarnNode] = {}
    for i in running:
        found = next((by_key[k] for k in sorted(_instance_keys(i)) if k in by_key), None)
        if found is not None:
            out[i.instance_id] = found
    return out


def _reason(  # noqa: PLR0917 - one sentence from the parts of one choice
    change: GroupTarget,
    remove: int,
    protect: Sequence[ClusterInstance],
    chosen: Sequence[tuple[ClusterInstance, YarnNode]],
    unprotected: Sequence[ClusterInstance],
    nodes: dict[str, YarnNode],
) -> Reason:
    def name(i: ClusterInstance) -> str:
        node = nodes.get(i.instance_id)
        return f"{i.instance_id} ({node.host if node else i.private_dns or i.private_ip})"

    parts = [f"{change.group_name or change.group_id} loses {remove} node{'s' if remove != 1 else ''}"]
    if protect:
        parts.append("keeps " + ", ".join(name(i) for i in protect) + " (application master)")
    if chosen:
        parts.append("removes " + ", ".join(f"{name(i)}, {n.containers} containers" for i, n in chosen))
    if unprotected:
        parts.append("cannot keep " + ", ".join(name(i) for i in unprotected) + " as well")
    if len(chosen) < remove:
        parts.append(f"EMR picks {remove - len(chosen)}")
    values = {"protected": float(len(protect)), "terminated": float(len(chosen)), "remove": float(remove)}
    return Reason(ReasonCode.NODES_CHOSEN, "; ".join(parts) + ".", values, subject=change.group_id)
