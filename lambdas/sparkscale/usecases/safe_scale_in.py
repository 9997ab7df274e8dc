"""Safe scale-in, the use cases' side: before a shrink, choose which instances EMR keeps and removes.

`choose_nodes` reads the agent's node report (ports.NodeReportSource on the state store) and the cluster's
TASK instances (ports.InstanceLister on the cluster reader), asks the pure chooser (policy/node_choice.py),
and adds its reasons to the decision; `resize` then passes the choice to EMR when the capacity writer can
take it (ports.ShrinkingCapacityWriter). Ports without these (the replay's, the in-memory set's) change
nothing: no read, no reason, the resize as before. A report or instance list that cannot be read never
fails the decision: EMR then chooses, and the reason says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import cast

from sparkscale.config import Config
from sparkscale.errors import SparkscaleError
from sparkscale.policy.fleet import split_market_group_id
from sparkscale.policy.model import Decision, GroupTarget
from sparkscale.policy.node_choice import InstanceShrink, choose_shrinks
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.ports import InstanceLister, NodeReportSource, Ports, ShrinkingCapacityWriter, supports

log = logging.getLogger(__name__)

NO_SHRINKS: Mapping[str, InstanceShrink] = {}


def choose_nodes(
    ports: Ports, cluster_id: str, decision: Decision, config: Config
) -> tuple[Decision, Mapping[str, InstanceShrink]]:
    """The decision with the choice's reasons, and the InstanceShrink of each group that has one."""
    if not any(t.target < t.current for t in decision.changes):
        return decision, NO_SHRINKS
    if any(split_market_group_id(t.group_id) is not None for t in decision.changes):
        return decision, NO_SHRINKS  # an instance fleet: ModifyInstanceFleet takes no instances to keep
    if not supports(ports.state, NodeReportSource) or not supports(ports.clusters, InstanceLister):
        return decision, NO_SHRINKS
    source, lister = cast(NodeReportSource, ports.state), cast(InstanceLister, ports.clusters)
    if not supports(ports.capacity, ShrinkingCapacityWriter):
        return decision, NO_SHRINKS
    try:
        report = source.load_node_report(cluster_id)
        instances = lister.list_instances(cluster_id) if report is not None else ()  # none to map
    except SparkscaleError as exc:
        log.warning("node report or instances of %s unreadable: %s", cluster_id, exc)
        why = f"The node report or the instance list could not be read ({exc}): EMR chooses which nodes go."
        return _with(decision, (Reason(ReasonCode.NODES_UNKNOWN, why),)), NO_SHRINKS
    choice = choose_shrinks(
        changes=decision.changes,
        instances=instances,
        report=report,
        now=decision.at,
        max_age_s=config.node_report_max_age_s,
        termination_timeout_s=config.scale_in_node_timeout_s,
    )
    return _with(decision, choice.reasons), {s.group_id: s for s in choice.shrinks}


def resize(
    ports: Ports, cluster_id: str, changes: Sequence[GroupTarget], shrinks: Mapping[str, InstanceShrink]
) -> None:
    """ModifyInstanceGroups, with the chosen instances when there are any and the writer takes them."""
    capacity = ports.capacity
    if shrinks and supports(capacity, ShrinkingCapacityWriter):
        cast(ShrinkingCapacityWriter, capacity).resize_shrinking(cluster_id, changes, shrinks)
    else:
        capacity.resize(cluster_id, changes)


def _with(decision: Decision, reasons: tuple[Reason, ...]) -> Decision:
    return replace(decision, reasons=(*decision.reasons, *reasons)) if reasons else decision
