"""Small builders for policy tests: a cluster with MASTER, CORE and the TASK groups you pass, metrics by name.

Default numbers (used in the worked comments of the tests):
- CORE: 2 x r5.2xlarge running, 64 GiB each -> 48 GiB usable each at usable_memory_fraction 0.75.
- A TASK group: r5.2xlarge (64 GiB -> 48 GiB usable), SPOT at $0.16/h unless told otherwise.
- cfg(): the defaults, except a YARN memory used target of 85 % and a deadband of 8 % (WORKED_TARGETS).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from sparkscale.config import Config
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    InstanceGroup,
    Market,
    MetricsSnapshot,
    Role,
    Signal,
)

from tests import model_builders
from tests.model_builders import GroupOptions

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MIB = 1024.0


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def group(
    gid: str,
    *,
    instance_type: str = "r5.2xlarge",
    requested: int = 0,
    usd: float = 0.16,
    name: str | None = None,
    **options: Unpack[GroupOptions],
) -> InstanceGroup:
    return model_builders.group(
        gid,
        name=name if name is not None else f"task-{gid}",
        instance_type=instance_type,
        requested=requested,
        usd=usd,
        **options,
    )


def cluster(
    *tasks: InstanceGroup, core_nodes: int = 2, state: ClusterState = ClusterState.RUNNING
) -> Cluster:
    master = group(
        "ig-master", role=Role.MASTER, market=Market.ON_DEMAND, instance_type="m5.xlarge", memory_gib=16,
        requested=1, usd=0.192, name="Master",
    )  # fmt: skip
    core = group(
        "ig-core", role=Role.CORE, market=Market.ON_DEMAND, requested=core_nodes, usd=0.504, name="Core"
    )  # fmt: skip
    return Cluster("j-TEST", "test", state, (master, core, *tasks))


def metrics(at: datetime = NOW, **values: float) -> MetricsSnapshot:
    """metrics(MemoryTotalMB=..., ContainerPending=...) with every datapoint at `at`."""
    return model_builders.snapshot(at, {Signal(k): v for k, v in values.items()})


def yarn(total_gib: float, used_pct: float, **extra: float) -> dict[str, float]:
    """MemoryTotalMB / MemoryAllocatedMB / MemoryAvailableMB for a YARN total and a used share (+ extras)."""
    alloc = total_gib * used_pct / 100.0
    return {
        "MemoryTotalMB": total_gib * MIB,
        "MemoryAllocatedMB": alloc * MIB,
        "MemoryAvailableMB": (total_gib - alloc) * MIB,
        **extra,
    }


# The worked numbers in the policy tests' comments were made at an 85 % target and an 8 % deadband (the
# defaults before the planner weighed lasting premiums and the defaults moved to 93 % / 3.5 %). These tests
# check how the policy works out a decision, not which defaults ship (tests/test_config.py and the replay
# benchmarks do), so they keep those two numbers unless a test sets them.
WORKED_TARGETS: dict[str, Any] = {"yarn_memory_used_target_pct": 85.0, "deadband_pct": 8.0}


def cfg(**kw: Any) -> Config:
    """The settings, with the burst rule off unless a test turns it on: these tests pin the other rules'
    numbers for a whole shortfall bought at once (test_policy_burst.py pins the rule; the property tests
    draw their own settings, the rule on by default), and the worked targets above."""
    return Config.from_mapping({**WORKED_TARGETS, "burst_first_step_nodes": 0, **kw})


def targets(decision: Any) -> dict[str, int]:
    return {t.group_id: t.target for t in decision.targets}
