"""A closed loop: the real decide() and next_state() every two minutes against a small model of a streaming
cluster, on a seeded synthetic input (a base rate with noise and one burst), with the streaming signal and
without it (memory only). Nothing in the policy was tuned on these shapes; the seeds are arbitrary.

The model (per minute): every running node (2 CORE + TASK) processes NODE_ROWS_PER_S rows/s; rows that
cannot be processed wait (the backlog); requested nodes run PROVISION_MIN minutes after the request; a
removed node goes at once. What Spark and Kinesis would report: input rate = rows arriving / 60 s; processed
rate = rows processed / busy time (the throughput: the capacity's rate while there is work); batch latency =
the time one trigger's rows take (the backlog's included, capped at 10 minutes); iterator age = the backlog /
the input rate. YARN memory allocated follows the busy share of the capacity (dynamic allocation), so the
memory signal alone scales in once the cluster is idle enough, and scales out only when it is full.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from policy_builders import NOW, cfg, cluster, group
from sparkscale.policy import Direction, ScalerState, Signal, evaluate, next_state
from sparkscale.policy.model import MetricsSnapshot, Sample

NODE_ROWS_PER_S = 500.0
CORE_NODES = 2
PROVISION_MIN = 6
MIB = 1024.0
USABLE_GIB = 48.0  # r5.2xlarge x 0.75


def shape(seed: int, minutes: int) -> list[float]:
    """Rows/s arriving each minute: 1 500 +- 10 %, a burst to 4 000 from minute 60 to 120."""
    rng = random.Random(seed)
    out = []
    for m in range(minutes):
        base = 4000.0 if 60 <= m < 120 else 1500.0
        out.append(base * rng.uniform(0.9, 1.1))
    return out


@dataclass
class Run:
    lag_s: list[float] = field(default_factory=list)  # seconds behind, each minute
    task_node_minutes: int = 0
    actions: list[tuple[int, Direction, int]] = field(default_factory=list)  # (minute, direction, target)
    scale_in_while_behind: int = 0

    def p95_lag_s(self) -> float:
        ordered = sorted(self.lag_s)
        return ordered[int(0.95 * (len(ordered) - 1))]

    def caught_up_at(self, after: int) -> int | None:
        """The first minute at or after `after` with no backlog left."""
        return next((m for m in range(after, len(self.lag_s)) if self.lag_s[m] == 0.0), None)


def simulate(seed: int, *, streaming: bool, minutes: int = 240) -> Run:
    config = cfg(max_task_nodes=20, group_max_nodes=20)
    arriving = shape(seed, minutes)
    requested, running = 2, 2
    coming: list[tuple[int, int]] = []  # (minute it runs, nodes)
    backlog = 0.0
    state = ScalerState()
    ages: list[Sample] = []
    out = Run()
    for m in range(minutes):
        running += sum(n for at, n in coming if at == m)
        coming = [(at, n) for at, n in coming if at != m]
        nodes = CORE_NODES + running
        capacity = nodes * NODE_ROWS_PER_S * 60.0
        rows = arriving[m] * 60.0
        processed = min(backlog + rows, capacity)
        busy = processed / capacity
        backlog = backlog + rows - processed
        lag = backlog / arriving[m]
        out.lag_s.append(lag)
        out.task_node_minutes += requested
        now = NOW + timedelta(minutes=m)
        ages.append(Sample(lag * 1000.0, now))
        if m % 2:
            continue
        total_gib = nodes * USABLE_GIB
        allocated = total_gib * min(1.0, 0.95 * busy)
        values = {
            Signal.MEMORY_TOTAL_MB: total_gib * MIB,
            Signal.MEMORY_ALLOCATED_MB: allocated * MIB,
            Signal.MEMORY_AVAILABLE_MB: (total_gib - allocated) * MIB,
            Signal.APPS_RUNNING: 1.0,
        }
        history = {}
        if streaming:
            values |= {
                Signal.STREAMING_INPUT_ROWS_PER_S: arriving[m],
                Signal.STREAMING_PROCESSED_ROWS_PER_S: capacity / 60.0,
                Signal.STREAMING_BATCH_LATENCY_MS: min(600.0, (backlog + rows) / capacity * 60.0) * 1000.0,
                Signal.KINESIS_ITERATOR_AGE_MS: lag * 1000.0,
            }
            history = {Signal.KINESIS_ITERATOR_AGE_MS: tuple(ages[-20:])}
        snap = MetricsSnapshot({s: Sample(v, now) for s, v in values.items()}, history)
        c = cluster(group("ig-a", requested=requested, running=running))
        decision, observed = evaluate(now=now, cluster=c, metrics=snap, config=config, state=state)
        state = next_state(
            previous=state,
            decision=decision,
            cluster=c,
            metrics=snap,
            now=now,
            config=config,
            observed=observed,
        )
        target = decision.targets[0].target
        if target > requested:
            coming.append((m + PROVISION_MIN, target - requested))
        elif target < requested:
            out.scale_in_while_behind += backlog > 0
            cancel = requested - target
            # cancel nodes still coming first, then running ones
            while cancel and coming:
                at, n = coming.pop()
                k = min(n, cancel)
                cancel -= k
                if n > k:
                    coming.append((at, n - k))
            running -= cancel
        if target != requested:
            out.actions.append((m, decision.direction, target))
        requested = target
    return out


@pytest.mark.parametrize("seed", [1, 2026])
def test_the_streaming_signal_keeps_the_lag_short_and_never_scales_in_behind(seed: int) -> None:
    with_signal = simulate(seed, streaming=True)
    memory_only = simulate(seed, streaming=False)
    caught = with_signal.caught_up_at(60)
    print(  # the figures of the report (pytest -s)
        f"seed {seed}: streaming p95 lag {with_signal.p95_lag_s():.0f} s, "
        f"max {max(with_signal.lag_s):.0f} s, "
        f"caught up at minute {caught}, {with_signal.task_node_minutes / 60:.1f} TASK node-hours, "
        f"{len(with_signal.actions)} resizes; memory only p95 lag {memory_only.p95_lag_s():.0f} s, "
        f"max {max(memory_only.lag_s):.0f} s, {memory_only.task_node_minutes / 60:.1f} TASK node-hours"
    )
    assert with_signal.scale_in_while_behind == 0
    # the burst (4 000 rows/s = 8 nodes' worth) is met: behind for minutes, not for the whole burst
    assert caught is not None
    assert caught < 120
    assert with_signal.p95_lag_s() < memory_only.p95_lag_s()
    assert max(with_signal.lag_s) < 0.5 * max(memory_only.lag_s)
    # and it gives the nodes back after the burst (ends at most one node above where it started)
    assert with_signal.actions[-1][1] is Direction.IN
    assert with_signal.actions[-1][2] <= 3
