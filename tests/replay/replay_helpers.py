"""Helpers shared by the replay tests (imported as `replay_helpers`; tests/replay is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from sparkscale.policy.model import Market, Role
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "data" / "traces"


def tiny_cluster(
    *, task_usd: float = 0.30, spot_risk: float = 0.0, shortfalls_per_day: float = 0.0
) -> ClusterSpec:
    """1 × r5.2xlarge core (64 GiB → 48 GiB usable at 0.75) and one SPOT task group of 128 GiB nodes
    (96 GiB usable) at `task_usd` per node-hour: numbers easy to check by hand."""
    return ClusterSpec(
        cluster_id="j-GOLDEN0001",
        name="golden",
        groups=(
            GroupSpec("ig-M", "master", Role.MASTER, Market.ON_DEMAND, "m5.xlarge", 16.0, 4, 0.192, nodes=1),
            GroupSpec("ig-C", "core", Role.CORE, Market.ON_DEMAND, "r5.2xlarge", 64.0, 8, 0.504, nodes=1),
            GroupSpec(
                "ig-T",
                "task",
                Role.TASK,
                Market.SPOT,
                "r5.4xlarge",
                128.0,
                16,
                task_usd,
                interruption_rate_per_node_hour=spot_risk,
                shortfall_episodes_per_day=shortfalls_per_day,
            ),
        ),
    )
