"""Policy cost per invocation: `decide` on a realistic cluster, and the planner on growing offer lists.

    python benchmarks/bench_policy.py

Prints the median and worst wall time over repeated runs (time.perf_counter). The Lambda calls `decide` once
per invocation; these figures are what the policy adds to a handler's latency.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambdas"))

from sparkscale.config import Config
from sparkscale.policy import (
    Cluster,
    ClusterState,
    GroupStatus,
    InstanceGroup,
    Market,
    MetricsSnapshot,
    Role,
    Sample,
    ScalerState,
    Signal,
    decide,
    plan_memory,
)
from sparkscale.policy.planner import Offer, Plan

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
TYPES = [
    ("r5.2xlarge", 64, 0.16),
    ("r6g.2xlarge", 64, 0.12),
    ("m5.4xlarge", 64, 0.25),
    ("r5.4xlarge", 128, 0.33),
]


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3, max(samples) * 1e3


def bench_decide() -> None:
    groups = [
        InstanceGroup(
            "ig-m",
            "Master",
            Role.MASTER,
            Market.ON_DEMAND,
            "m5.xlarge",
            16,
            4,
            1,
            1,
            GroupStatus.RUNNING,
            0.19,
        ),
        InstanceGroup(
            "ig-c", "Core", Role.CORE, Market.ON_DEMAND, "r5.2xlarge", 64, 8, 3, 3, GroupStatus.RUNNING, 0.5
        ),
    ]
    for i, (t, mem, usd) in enumerate(TYPES):
        groups.append(
            InstanceGroup(f"ig-{i}", t, Role.TASK, Market.SPOT, t, mem, 8, 2, 2, GroupStatus.RUNNING, usd)
        )
    cluster = Cluster("j-BENCH", "bench", ClusterState.RUNNING, tuple(groups))
    total_mb = 3 * 48 * 1024 + 2 * 48 * 1024 * 3 + 2 * 96 * 1024
    metrics = MetricsSnapshot(
        {
            Signal.MEMORY_TOTAL_MB: Sample(total_mb, NOW),
            Signal.MEMORY_ALLOCATED_MB: Sample(total_mb * 0.97, NOW),
            Signal.CONTAINER_PENDING: Sample(40, NOW),
            Signal.CONTAINER_ALLOCATED: Sample(120, NOW),
            Signal.JVM_COUNT: Sample(60, NOW),
            Signal.HEAP_USED_PCT: Sample(82, NOW),
            Signal.APPS_RUNNING: Sample(3, NOW),
        }
    )
    for share in (1.0, 0.5):
        config = Config.from_mapping({"max_share_per_instance_type": share, "max_task_nodes": 60})

        def once(config: Config = config) -> None:
            decide(now=NOW, cluster=cluster, metrics=metrics, config=config, state=ScalerState())

        med, worst = _time(once, 200)
        print(
            f"decide, 4 SPOT task groups, scale-out, max share {share}: "
            f"median {med:.2f} ms, worst {worst:.2f} ms"
        )


def bench_planner() -> None:
    for n in (4, 8, 16, 32):
        offers = [
            Offer(
                f"o{i}",
                f"type{i % max(1, n // 2)}",
                32.0 * (1 + i % 4),
                0.05 + 0.013 * ((i * 7) % 11),
                max_nodes=20,
            )
            for i in range(n)
        ]
        for share in (1.0, 0.34):
            result: dict[str, Plan] = {}

            def run(
                offers: list[Offer] = offers, share: float = share, result: dict[str, Plan] = result
            ) -> None:
                result["plan"] = plan_memory(memory_gib=1000, offers=offers, max_share=share, max_nodes=40)

            med, worst = _time(run, 20)
            plan = result["plan"]
            print(
                f"plan_memory 1000 GiB, {n:2d} offers, max share {share}: median {med:7.2f} ms, worst "
                f"{worst:7.2f} ms, {plan.nodes} nodes, ${plan.usd_per_hour:.3f}/h"
                + (" (search budget reached)" if plan.exhausted else "")
            )


if __name__ == "__main__":
    bench_decide()
    bench_planner()
