"""The pure scaling policy: a snapshot of a cluster and its metrics in, a Decision with reasons out.

No I/O of any kind: no boto3, no os.environ, no clock, no logging. `now` and every input are passed in.

    decide(now=, cluster=, metrics=, config=, state=) -> Decision
    evaluate(same) -> (Decision, Observation | None)                (decide, and what next_state reuses)
    Decision.reasons: tuple[Reason, ...]  Reason(code: ReasonCode, text, values, subject); the first drove it
    next_state(previous=, decision=, cluster=, metrics=, now=, config=, observed=) -> ScalerState
    state_to_dict(state) -> dict   /   state_from_dict(d) -> ScalerState
    plan_memory(memory_gib=, offers=, max_share=, ...) -> Plan     (the $/GiB-hour planner)
    plan_removal(memory_gib=, offers=, ...) -> Plan                (scale-in: most expensive memory first)
"""

from sparkscale.policy.decide import METRICS_MISSING, decide, evaluate
from sparkscale.policy.estimate import Capacity, Estimate, Need, capacity, estimate, usable_gib
from sparkscale.policy.fallback import blocked_groups
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    Decision,
    Direction,
    GroupStatus,
    GroupTarget,
    InstanceGroup,
    Market,
    MetricsSnapshot,
    Observation,
    Recommendation,
    Role,
    Sample,
    ScalerState,
    Signal,
)
from sparkscale.policy.planner import Allocation, Offer, Plan, plan_memory
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.removal import plan_removal
from sparkscale.policy.signals import Readings, is_active, read_signals
from sparkscale.policy.state import next_state, state_from_dict, state_to_dict

__all__ = [
    "METRICS_MISSING",
    "Allocation",
    "Capacity",
    "Cluster",
    "ClusterState",
    "Decision",
    "Direction",
    "Estimate",
    "GroupStatus",
    "GroupTarget",
    "InstanceGroup",
    "Market",
    "MetricsSnapshot",
    "Need",
    "Observation",
    "Offer",
    "Plan",
    "Readings",
    "Reason",
    "ReasonCode",
    "Recommendation",
    "Role",
    "Sample",
    "ScalerState",
    "Signal",
    "blocked_groups",
    "capacity",
    "decide",
    "estimate",
    "evaluate",
    "is_active",
    "next_state",
    "plan_memory",
    "plan_removal",
    "read_signals",
    "state_from_dict",
    "state_to_dict",
    "usable_gib",
]
