"""heap_pressure_waits_for_nodes (scale_out.waiting_for_nodes): a pressed heap that is a shortfall YARN
already shows, with nodes already requested still starting for it, adds no node of its own until they run.

Cluster as in test_policy_decide: CORE 2 x r5.2xlarge (96 GiB usable), TASK group ig-a SPOT r5.2xlarge, 48 GiB
usable per node; YARN memory used target 85 %, deadband 8 %; heap target 70 %, its deadband edge 75.6 %.
"""

from __future__ import annotations

import pytest
from policy_builders import MIB, NOW, ago, cfg, cluster, group, targets, yarn
from sparkscale.config import Config
from sparkscale.policy import Direction, ReasonCode, ScalerState, decide
from sparkscale.policy.model import MetricsSnapshot, Sample, Signal

# the last scale-out 200 s ago, before the heap was pressed (it is pressed as of this evaluation)
STATE = ScalerState(last_scale_out_at=ago(200))


def snap(
    *, alloc_gib: float, pending_gib: float | None, total_gib: float, heap_pct: float
) -> MetricsSnapshot:
    """EMR's 5-minute view (4 min old), the YARN collector's minute (40 s old; none when pending_gib is None)
    and the heap agent's (30 s old)."""
    batches: list[tuple[float, dict[str, float]]] = [
        (240, yarn(total_gib, 100.0 * alloc_gib / total_gib)),
        (30, {"JvmHeapUsedPercent": heap_pct}),
    ]
    if pending_gib is not None:
        rm = {
            "YarnAllocatedMemoryMB": alloc_gib * MIB,
            "YarnPendingMemoryMB": pending_gib * MIB,
            "YarnTotalMemoryMB": total_gib * MIB,
            "YarnAvailableMemoryMB": (total_gib - alloc_gib) * MIB,
        }
        batches.append((40, rm))
    return MetricsSnapshot({Signal(k): Sample(v, ago(age)) for age, vs in batches for k, v in vs.items()})


def run(requested: int, running: int, m: MetricsSnapshot, **config: object):
    c = cluster(group("ig-a", requested=requested, running=running))
    return decide(now=NOW, cluster=c, metrics=m, config=cfg(**config), state=STATE)


# 3 requested, 2 running: 96 + 2 x 48 = 192 GiB runs, 240 counted, 48 GiB starting. YARN: 180 GiB allocated
# (93.75 % of 192, beyond the 78.2 % below which YARN has room) + 20 GiB pending = 200 / 0.85 = 235.3 GiB
# wanted <= 240 counted: the node starting covers it. The heap at 85 % is beyond 75.6 %.
STARTING = snap(alloc_gib=180, pending_gib=20, total_gib=192, heap_pct=85)


def test_a_pressed_heap_waits_for_the_nodes_starting_for_the_shortfall_yarn_shows():
    d = run(3, 2, STARTING)
    assert d.direction is Direction.HOLD
    assert targets(d) == {"ig-a": 3}
    assert ReasonCode.HEAP_PRESSURE not in {r.code for r in d.reasons}
    assert Config().heap_pressure_waits_for_nodes is True  # shipped on


def test_with_the_setting_off_the_heap_adds_its_node_at_once():
    d = run(3, 2, STARTING, heap_pressure_waits_for_nodes=False)
    assert targets(d) == {"ig-a": 4}
    assert d.reasons[0].code is ReasonCode.HEAP_PRESSURE


@pytest.mark.parametrize(
    ("requested", "running", "m"),
    [
        # the nodes have started (3 running: 240 GiB; YARN 190 allocated, 79 % > 78.2 %, + 10 pending = 235.3
        # wanted, covered) and the heap is still pressed: its node now
        (3, 3, snap(alloc_gib=190, pending_gib=10, total_gib=240, heap_pct=85)),
        # nothing pending in YARN: the heap is the only sign of the need, its node now
        (3, 2, snap(alloc_gib=180, pending_gib=0, total_gib=192, heap_pct=85)),
        # no fresh YARN collector (EMR's minutes-old view only): its node now
        (3, 2, snap(alloc_gib=180, pending_gib=None, total_gib=192, heap_pct=85)),
    ],
)
def test_the_heap_adds_its_node_when_nothing_starting_answers_a_shortfall_yarn_shows(requested, running, m):
    d = run(requested, running, m)
    assert d.direction is Direction.OUT
    assert d.reasons[0].code is ReasonCode.HEAP_PRESSURE
