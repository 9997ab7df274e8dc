"""Gates: what stops or overrides a decision before, or instead of, any sizing.

- the cluster: only RUNNING or WAITING clusters with a TASK group are scaled (cluster_gate);
- the metrics: no fresh capacity signal holds, never scaling in on missing data (metrics_missing);
- idleness: no application for idle_after_s sends every changeable group to its minimum in one step (idle);
- scale-in vetoes: containers or applications waiting, or any signal over its target (scale_in_veto);
- cooldowns (constraints.cooldown_blocks) and the spot fallback's blocked groups (fallback.blocked_groups) are
  read by the steps that they stop.
"""

from __future__ import annotations

from sparkscale.policy.constraints import cooldown_blocks, remove_offers, total_requested
from sparkscale.policy.context import (
    UNCHANGED,
    Context,
    StepResult,
    alloc_reasons,
    apply,
    current,
)
from sparkscale.policy.model import Cluster
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.policy.removal import plan_removal

METRICS_MISSING = "Metrics missing"


def cluster_gate(cluster: Cluster) -> Reason | None:
    """CLUSTER_INACTIVE or NO_TASK_GROUP when this cluster is not scaled at all, else None."""
    if not cluster.state.is_active:
        text = f"Cluster {cluster.id} is {cluster.state.value}: only RUNNING or WAITING clusters are scaled."
        return Reason(ReasonCode.CLUSTER_INACTIVE, text, subject=cluster.state.value)
    if not cluster.task_groups:
        text = (
            f"Cluster {cluster.id} has no TASK instance group: nothing to scale (MASTER, CORE never change)."
        )
        return Reason(ReasonCode.NO_TASK_GROUP, text)
    return None


def metrics_missing() -> Reason:
    text = (
        f"{METRICS_MISSING}: no fresh YARN memory, pending container, executor heap or TotalLoad "
        "datapoint; holding (never scaling in on missing data)."
    )
    return Reason(ReasonCode.METRICS_MISSING, text)


def idle_for(ctx: Context, active: bool | None) -> float | None:
    """Seconds without any application (`active` is False), when that is at least idle_after_s; else None."""
    if active is not False or ctx.state.last_active_at is None:
        return None
    quiet = (ctx.now - ctx.state.last_active_at).total_seconds()
    return quiet if quiet >= ctx.config.idle_after_s else None


def idle(ctx: Context, quiet_s: float) -> StepResult:
    """Every changeable group to its minimum in one step (IDLE leads, unless a cooldown holds)."""
    cfg, cluster = ctx.config, ctx.cluster
    text = (
        f"Idle: no application ran or waited for {quiet_s:.0f} s (idle_after_s {cfg.idle_after_s} s): "
        f"going to the minimum (min_task_nodes {cfg.min_task_nodes}, each group's min_nodes) in one step."
    )
    head = Reason(ReasonCode.IDLE, text, {"quiet_s": quiet_s, "idle_after_s": cfg.idle_after_s})
    removal = plan_removal(
        memory_gib=ctx.cap.task_gib + 1.0,
        offers=remove_offers(cluster, blocked=ctx.blocked, config=cfg),
        max_nodes=max(0, total_requested(cluster) - cfg.min_task_nodes),
    )
    desired_gib = max(0.0, ctx.cap.task_gib - removal.memory_gib)
    desired_nodes = max(0, ctx.cap.task_nodes - removal.nodes)
    blocker = cooldown_blocks(ctx.state, now=ctx.now, config=cfg, scale_in=True)
    if blocker is not None and removal.nodes:
        return StepResult(UNCHANGED, [blocker, head], desired_nodes, desired_gib, bounds=False)
    if not removal.nodes:
        at_min = Reason(ReasonCode.AT_MINIMUM, "Every TASK group is already at its minimum.")
        return StepResult(UNCHANGED, [at_min, head], desired_nodes, desired_gib)
    targets = current(cluster)
    apply(targets, removal, sign=-1)
    return StepResult(
        targets, [head, *alloc_reasons(cluster, removal, removing=True)], desired_nodes, desired_gib
    )


def waiting(ctx: Context) -> Reason | None:
    """WAITING when containers or applications wait (no scale-in then), else None."""
    # signals.pending_now, read once by the estimate: the ResourceManager's counts when fresh, else EMR's
    pending, apps = ctx.est.container_pending, ctx.est.apps_pending
    if pending > 0 or apps > 0:
        text = f"{pending:.0f} containers and {apps:.0f} applications are waiting: no scale-in."
        return Reason(ReasonCode.WAITING, text, {"containers_pending": pending, "apps_pending": apps})
    return None


def scale_in_veto(ctx: Context) -> Reason | None:
    """Why no scale-in may happen now whatever the surplus: something waits, or a signal is over its
    target."""
    why = waiting(ctx)
    if why is None and ctx.est.over_target:
        over = ctx.est.over_target[0]
        text = f"{over.signal.value} is over its target: no scale-in."
        why = Reason(ReasonCode.OVER_TARGET, text, {"value": over.value, "ratio": over.ratio}, over.signal)
    return why
