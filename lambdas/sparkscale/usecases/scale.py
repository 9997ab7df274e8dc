"""The scale use case. `run_once`: one evaluation of one cluster: lease -> read -> decide -> act -> record ->
notify -> release, on the shared Shell (usecases/shell.py).

Level-triggered: whatever woke it (an alarm, the reconcile schedule, the CLI, the replay), it re-reads the
cluster and every metric and decides from the current state, so duplicate, late or lost wake-ups can neither
scale twice nor stop the scaling. Time and every port are injected; the only I/O is through `ports`.

Expected AWS conditions never raise; they become the RunResult's outcome:

| condition | outcome | what happens |
|---|---|---|
| another invocation holds the lease | lease_held | nothing ("evaluation in progress") |
| cluster terminating/terminated/unknown | cluster_gone | notified once, then the cluster is no longer read |
| a TASK group is resizing / busy | group_busy | decision recorded as not applied; the next run retries |
| throttled after botocore's retries | throttled | recorded if a decision was made; the next run retries |
| invalid request (validation, not TASK, ...) | invalid | recorded; operators notified (at most hourly) |
| a dry-run action (or a paused cluster's) | dry_run | recorded and notified (at most hourly per proposal) |
| an applied action | applied | recorded and notified |
| no change | hold | recorded |

TransientAwsError (5xx, network, after retries) propagates so the Lambda fails and SNS retries (then the
DLQ); the Shell's lease is released on every path. An action is written ahead as an Intent before
ModifyInstanceGroups and finished after it (Shell.write_ahead / finish); after an ambiguous failure the
retry, or the next evaluation, settles it first (Shell.settle): applied -> recorded, notified and cooled down
then, once, and the result is `applied`; not applied -> dropped, and the evaluation decides afresh. The
decision is saved BEFORE any notice is sent, so an SNS failure never loses the record; a failed notice is
logged and counted (RunResult.notify_failures).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, cast

from sparkscale import notices
from sparkscale.config import Config
from sparkscale.errors import (
    ClusterGone,
    GroupBusy,
    InvalidRequest,
    SparkscaleError,
    Throttled,
    TransientAwsError,
)
from sparkscale.policy import Reason, ReasonCode, evaluate, next_state
from sparkscale.policy.forecast import DemandHistory, bucket_start, history_ranges, lead_time_s
from sparkscale.policy.model import (
    Cluster,
    Decision,
    DemandSample,
    Direction,
    GroupStatus,
    MetricsSnapshot,
    ScalerState,
)
from sparkscale.policy.node_choice import InstanceShrink
from sparkscale.ports import (
    INTENT_SCALE,
    DemandHistoryStore,
    Intent,
    MetricsSource,
    Notice,
    PauseMark,
    Ports,
    SizeObservation,
    SizeObservationStore,
    StreamingMetricsSource,
    supports,
)
from sparkscale.usecases.safe_scale_in import NO_SHRINKS, choose_nodes, resize
from sparkscale.usecases.shell import GONE_TTL_S, KEY_CLUSTER_GONE, Outcome, Shell

log = logging.getLogger(__name__)

KEY_AT_MAX: Final = "at_max"


@dataclass(frozen=True)
class RunResult:
    cluster_id: str
    outcome: str  # an Outcome value
    decision: Decision | None
    detail: str = ""  # one line: why (the error, "evaluation in progress", ...)
    running_task_nodes: int | None = None  # RunningInstanceCount summed over TASK groups, as read
    requested_task_nodes: int | None = None  # RequestedInstanceCount summed over TASK groups, as read
    notices_sent: int = 0
    notify_failures: int = 0

    @property
    def desired_task_nodes(self) -> int | None:
        """TASK nodes the decision asks for (its targets, applied or not); without a decision, as read."""
        if self.decision is None:
            return self.requested_task_nodes
        return sum(t.target for t in self.decision.targets)

    @property
    def scaling_actions(self) -> int:
        return 1 if self.outcome == Outcome.APPLIED else 0

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.INVALID, Outcome.FAILED, Outcome.THROTTLED)


def needs_evaluation(cluster: Cluster, config: Config) -> bool:
    """For the reconcile schedule: True when the TASK groups are above their minimum (the total above
    max(min_task_nodes, sum of the groups' min_nodes)), or below a minimum. Once per Cluster value and
    Config (Cluster.derived_for): the schedule asks before an evaluation and the record after it, of the
    same cluster read."""
    return cluster.derived_for("needs_evaluation", config, lambda c: _needs_evaluation(c, config))


def _needs_evaluation(cluster: Cluster, config: Config) -> bool:
    total = mins = 0
    below = False
    for g in cluster.task_groups:  # one pass: the schedule asks this of every cluster every few minutes
        least = config.bounds_for(g.id, g.name).min_nodes
        total += g.requested
        mins += least
        below = below or g.requested < least
    return below or total != max(config.min_task_nodes, mins)


def observe(cluster: Cluster, config: Config, now: datetime) -> SizeObservation:
    """What the reconcile schedule needs to know of the cluster until its next evaluation: whether its TASK
    groups are at their minimum (needs_evaluation says no) and whether a resize is in flight (a group not
    RUNNING, or its running nodes not yet what it requested)."""
    return SizeObservation(
        at_minimum=not needs_evaluation(cluster, config),
        resizing=cluster.derived("resizing", _resizing),
        observed_at=now,
    )


def _resizing(cluster: Cluster) -> bool:
    return any(g.status is not GroupStatus.RUNNING or g.running != g.requested for g in cluster.task_groups)


def _record_observation(shell: Shell, cluster: Cluster) -> None:
    """A skipped cluster's observation, for the schedule (a failure only logged: the record it had stays, and
    an old one makes the schedule evaluate the cluster again)."""
    if not supports(shell.ports.state, SizeObservationStore):
        return
    store = cast(SizeObservationStore, shell.ports.state)
    try:
        store.record_observation(shell.cluster_id, observe(cluster, shell.config, shell.now))
    except SparkscaleError as exc:
        log.warning("size of %s not recorded for the schedule: %s", shell.cluster_id, exc)


def _save(shell: Shell, state: ScalerState, decision: Decision, cluster: Cluster) -> None:
    """The state and the audit record, with what was seen of the groups if the store keeps it (one write)."""
    store = shell.ports.state
    if supports(store, SizeObservationStore):
        observed = observe(cluster, shell.config, shell.now)
        cast(SizeObservationStore, store).save_observed(
            shell.cluster_id, state, decision, shell.now, observed
        )
    else:
        store.save(shell.cluster_id, state, decision, shell.now)


def _gone_result(cluster_id: str) -> RunResult:
    return RunResult(
        cluster_id, Outcome.CLUSTER_GONE.value, None, detail="cluster is gone: no longer managed"
    )


def mark_gone(*, now: datetime, cluster_id: str, ports: Ports, config: Config, why: str) -> RunResult:
    """What run_once does on ClusterGone, for a caller that learnt it otherwise (the EMR "Cluster State
    Change" to TERMINATED): mark the cluster gone in the ledger, notify operators once, stop evaluating it."""
    shell = Shell(ports=ports, config=config, now=now, cluster_id=cluster_id)
    if shell.is_gone():
        return _gone_result(cluster_id)
    return _gone(shell, ClusterGone(why))


def run_once(*, now: datetime, cluster_id: str, ports: Ports, config: Config, owner: str) -> RunResult:
    """One evaluation of `cluster_id` at `now`. See the module docstring for outcomes and errors."""
    shell = Shell(ports=ports, config=config, now=now, cluster_id=cluster_id)
    if shell.is_gone():
        return _gone_result(cluster_id)
    return _run_under_lease(shell, owner)


def _run_under_lease(shell: Shell, owner: str) -> RunResult:
    """run_once after its gone check, on the caller's Shell (reconcile_once's too: one Shell and one gone
    check per invocation)."""
    cluster_id = shell.cluster_id
    with shell.lease(owner) as held:
        if not held:
            return RunResult(cluster_id, Outcome.LEASE_HELD.value, None, detail="evaluation in progress")
        try:
            return _evaluate(shell)
        except TransientAwsError as exc:
            _notify_failure(shell, what="evaluate the cluster", error=exc)
            raise


def reconcile_once(
    *, now: datetime, cluster_id: str, ports: Ports, config: Config, owner: str, in_alarm: bool
) -> RunResult:
    """The reconcile schedule's step for one cluster: run_once when it has an alarm in ALARM, a resize
    written ahead and not settled, or its TASK groups above (or below) their minimum (needs_evaluation);
    otherwise skip it after one cluster read."""
    shell = Shell(ports=ports, config=config, now=now, cluster_id=cluster_id)
    if shell.is_gone():
        return _gone_result(cluster_id)
    if not in_alarm and not shell.has_pending_intent():  # a pending intent is settled by run_once
        try:
            cluster = ports.clusters.read_cluster(cluster_id)
        except ClusterGone:
            pass  # run_once notifies it (once) and stops managing it
        except Throttled as exc:
            return RunResult(cluster_id, Outcome.THROTTLED.value, None, detail=str(exc))
        except InvalidRequest as exc:
            return RunResult(cluster_id, Outcome.INVALID.value, None, detail=str(exc))
        else:
            if not needs_evaluation(cluster, config):
                _record_observation(shell, cluster)
                running, requested = _task_nodes(cluster)
                return RunResult(
                    cluster_id,
                    Outcome.SKIPPED.value,
                    None,
                    detail="at its minimum and no alarm in ALARM",
                    running_task_nodes=running,
                    requested_task_nodes=requested,
                )
    return _run_under_lease(shell, owner)  # run_once, its gone check done above


def read_metrics(source: MetricsSource, cluster_id: str, now: datetime, config: Config) -> MetricsSnapshot:
    """The cluster's metrics: with streaming configured (Config.streaming) and a source that can, Spark's
    streaming metrics and its Kinesis streams' iterator age too, in the same one read; else only the
    others (a cluster without streaming pays for no streaming query)."""
    if config.streaming and supports(source, StreamingMetricsSource):
        return cast(StreamingMetricsSource, source).read_streaming_metrics(cluster_id, now, config.streams)
    return source.read_metrics(cluster_id, now)


def _evaluate(shell: Shell) -> RunResult:
    ports, cid, now, config = shell.ports, shell.cluster_id, shell.now, shell.config
    try:
        settled = shell.settle()  # a resize an ambiguous failure left pending: recorded or dropped first
        if settled is not None and settled.applied and settled.intent.kind == INTENT_SCALE:
            return _result(shell, Outcome.APPLIED, settled.intent.decision, None, detail=settled.detail)
        cluster = shell.priced(ports.clusters.read_cluster(cid))
        metrics = read_metrics(ports.metrics, cid, now, config)
    except ClusterGone as exc:
        return _gone(shell, exc)
    except Throttled as exc:
        log.warning("throttled reading %s: %s", cid, exc)
        return RunResult(cid, Outcome.THROTTLED.value, None, detail=str(exc))
    except InvalidRequest as exc:
        _notify_failure(shell, what="read the cluster", error=exc)
        return _result(shell, Outcome.INVALID, None, None, detail=str(exc))

    state = ports.state.load_state(cid)
    history = _demand_history(shell, state)
    decision, observed = evaluate(
        now=now, cluster=cluster, metrics=metrics, config=config, state=state, history=history
    )
    pause = ports.state.load_pause(cid)
    if pause is not None:
        decision = _paused(decision, pause)

    def state_after(effective: Decision) -> ScalerState:
        return next_state(
            previous=state,
            decision=effective,
            cluster=cluster,
            metrics=metrics,
            now=now,
            config=config,
            observed=observed,
        )

    intent, shrinks = None, NO_SHRINKS
    if decision.is_action and not (decision.dry_run or config.dry_run):
        decision, shrinks = choose_nodes(ports, cid, decision, config)  # safe scale-in: which nodes go
        intent = _scale_intent(shell, decision, cluster, state_after(decision))
    outcome, detail, recorded = _act(shell, decision, intent, shrinks)
    if intent is not None and outcome is not Outcome.APPLIED:
        shell.abandon(intent)  # refused for certain (an ambiguous failure raised and left the intent)
    if outcome is Outcome.CLUSTER_GONE:
        return _gone(shell, ClusterGone(detail))

    if intent is not None and outcome is Outcome.APPLIED:
        shell.finish(intent)  # state + audit, then the notice, once; raises (intent kept) when it fails
    else:
        # next_state counts a decision as applied when it is an action and not a dry run: one refused is not
        unchanged = decision.dry_run or decision.direction is Direction.HOLD
        new_state = state_after(decision if unchanged else replace(decision, direction=Direction.HOLD))
        _save(shell, new_state, recorded, cluster)  # record BEFORE notifying: SNS can fail
    if observed is not None and observed.demand is not None:
        _record_demand(shell, observed.demand)
    if log.isEnabledFor(logging.INFO):  # what log.info checks first: no `extra` built for a dropped record
        log.info(
            "decision",
            extra={
                "cluster_id": cid,
                "outcome": outcome.value,
                "direction": decision.direction.value,
                "targets": {t.group_id: [t.current, t.target] for t in decision.targets},
                "reasons": list(recorded.reason_texts),
            },
        )
    _notify_decision(shell, recorded, cluster, outcome=outcome, detail=detail)
    return _result(shell, outcome, recorded, cluster, detail=detail)


def _scale_intent(shell: Shell, decision: Decision, cluster: Cluster, state: ScalerState) -> Intent:
    """The decision written ahead of its resize: the targets, the audit record and the state (cooldown)
    to save once applied, and its notice."""
    return Intent(
        id=uuid.uuid4().hex,
        kind=INTENT_SCALE,
        at=shell.now,
        owner=shell.owner,
        changes=decision.changes,
        notice=_decision_notice(decision, cluster),
        decision=decision,
        state=state,
    )


def _demand_history(shell: Shell, state: ScalerState) -> DemandHistory | None:
    """The demand buckets the seasonal forecast reads (forecast_mode observe or act, with a store that keeps
    them); None otherwise, or when they cannot be read (the forecast is then the trend alone)."""
    if shell.config.forecast_mode == "off" or not supports(shell.ports.state, DemandHistoryStore):
        return None
    store = cast(DemandHistoryStore, shell.ports.state)
    try:
        return store.load_demand(shell.cluster_id, history_ranges(shell.now, lead_time_s(state)))
    except SparkscaleError as exc:
        log.warning("demand history of %s unreadable: %s", shell.cluster_id, exc)
        return None


def _record_demand(shell: Shell, demand: DemandSample) -> None:
    """The demand observed, into its 5-minute bucket's peak (a failure costs the seasonal forecast one sample,
    never the decision)."""
    if not supports(shell.ports.state, DemandHistoryStore):
        return
    store = cast(DemandHistoryStore, shell.ports.state)
    try:
        store.record_demand(shell.cluster_id, bucket_start(demand.at), demand.gib, shell.now)
    except SparkscaleError as exc:
        log.warning("demand history of %s not recorded: %s", shell.cluster_id, exc)


def _paused(decision: Decision, pause: PauseMark) -> Decision:
    """A paused cluster's decision: a dry run (recorded, notified, never applied); an action says why."""
    if not decision.is_action:
        return replace(decision, dry_run=True)
    text = notices.paused_text(pause)
    why = f"{text[0].upper()}{text[1:]}: decided and notified, not applied."
    return replace(decision, dry_run=True, reasons=(*decision.reasons, Reason(ReasonCode.PAUSED, why)))


def _act(
    shell: Shell, decision: Decision, intent: Intent | None, shrinks: Mapping[str, InstanceShrink]
) -> tuple[Outcome, str, Decision]:
    """Apply the decision unless it is a hold or a dry run, written ahead as `intent`. Returns the outcome, a
    one-line detail, and the decision as recorded (with a 'Not applied: ...' reason when EMR refused).
    TransientAwsError (ambiguous: the resize may have taken effect) propagates, the intent left pending."""
    if intent is None:
        return (Outcome.DRY_RUN, "dry run", decision) if decision.is_action else (Outcome.HOLD, "", decision)
    if not shell.write_ahead(intent):  # another evaluation's resize is pending: never two at once
        outcome, why = Outcome.GROUP_BUSY, "Not applied: another resize of the cluster is pending."
    else:
        outcome, why = _resize(shell, decision, shrinks)
        if outcome is Outcome.APPLIED or outcome is Outcome.CLUSTER_GONE:
            return outcome, why, decision
    return outcome, why, replace(decision, reasons=(*decision.reasons, Reason(ReasonCode.NOT_APPLIED, why)))


def _resize(shell: Shell, decision: Decision, shrinks: Mapping[str, InstanceShrink]) -> tuple[Outcome, str]:
    try:
        resize(shell.ports, shell.cluster_id, decision.changes, shrinks)
    except ClusterGone as exc:
        return Outcome.CLUSTER_GONE, str(exc)
    except GroupBusy as exc:
        return Outcome.GROUP_BUSY, f"Not applied: {exc} (held; the next evaluation retries)."
    except Throttled as exc:
        return Outcome.THROTTLED, f"Not applied: throttled by EMR after retries: {exc}."
    except InvalidRequest as exc:
        return Outcome.INVALID, f"Not applied: EMR rejected the request: {exc}."
    return Outcome.APPLIED, ""


def _gone(shell: Shell, exc: ClusterGone) -> RunResult:
    # the gone mark, for GONE_TTL_S, claimed strictly: never lost, and its notice never doubled
    first = shell.claim_strictly(KEY_CLUSTER_GONE, GONE_TTL_S)
    log.warning("cluster gone: %s", exc, extra={"cluster_id": shell.cluster_id})
    if first:
        shell.send(
            notices.cluster_gone_notice(
                shell.cluster_id,
                why=str(exc),
                now=shell.now,
                in_clusters_setting=shell.cluster_id in shell.config.clusters,
            )
        )
    return _result(shell, Outcome.CLUSTER_GONE, None, None, detail=str(exc))


def _notify_decision(
    shell: Shell, decision: Decision, cluster: Cluster, *, outcome: Outcome, detail: str
) -> None:
    # HOLD (most evaluations): only the at-max notice may go out; APPLIED: its notice went with the record
    if outcome in (Outcome.HOLD, Outcome.APPLIED):
        pass
    elif outcome is Outcome.DRY_RUN:
        proposal = ",".join(f"{t.group_id}:{t.current}>{t.target}" for t in decision.changes)
        shell.send_once_per_interval(f"dry_run:{proposal}", lambda: _decision_notice(decision, cluster))
    elif outcome is Outcome.INVALID:
        _notify_failure(shell, what="resize the TASK groups", error=InvalidRequest(detail))
    if decision.at_max_under_pressure:
        shell.send_once_per_interval(KEY_AT_MAX, lambda: notices.at_max_notice(decision))


def _decision_notice(decision: Decision, cluster: Cluster) -> Notice:
    running = sum(g.running for g in cluster.task_groups)
    return notices.decision_notice(decision, cluster, running=running)


def _notify_failure(shell: Shell, *, what: str, error: BaseException) -> None:
    shell.send_once_per_interval(
        f"failure:{type(error).__name__}",
        lambda: notices.failure_notice(shell.cluster_id, what=what, error=error, now=shell.now),
    )


def _result(
    shell: Shell, outcome: Outcome, decision: Decision | None, cluster: Cluster | None, *, detail: str
) -> RunResult:
    running, requested = _task_nodes(cluster) if cluster is not None else (None, None)
    return RunResult(
        shell.cluster_id,
        outcome.value,
        decision,
        detail=detail,
        running_task_nodes=running,
        requested_task_nodes=requested,
        notices_sent=shell.notices_sent,
        notify_failures=shell.notify_failures,
    )


def _task_nodes(cluster: Cluster) -> tuple[int, int]:
    """RunningInstanceCount and RequestedInstanceCount, each summed over the TASK groups (once per Cluster
    value: see Cluster.derived)."""
    return cluster.derived("task_nodes", _sum_task_nodes)


def _sum_task_nodes(cluster: Cluster) -> tuple[int, int]:
    running = requested = 0
    for g in cluster.task_groups:
        running += g.running
        requested += g.requested
    return running, requested
