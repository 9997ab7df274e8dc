"""`run_once`: one evaluation of one cluster. lease -> read -> decide -> act -> record -> notify -> release.

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
| a dry-run action | dry_run | recorded and notified (at most hourly per proposal) |
| an applied action | applied | recorded and notified |
| no change | hold | recorded |

TransientAwsError (5xx, network, after retries) propagates so the Lambda fails and SNS retries (then the
DLQ); the lease is released on every path (try/finally). The decision is saved BEFORE any notice is sent, so
an SNS failure never loses the record; a failed notice is logged and counted (RunResult.notify_failures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from sparkscale import notify
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
from sparkscale.policy.model import Cluster, Decision, Direction
from sparkscale.ports import Notice, Ports

log = logging.getLogger(__name__)

KEY_CLUSTER_GONE: Final = "cluster_gone"
KEY_AT_MAX: Final = "at_max"
REPEAT_NOTICE_S: Final = 3600  # at-max, dry-run and failure notices: at most once an hour per key


class Outcome(StrEnum):
    APPLIED = "applied"
    DRY_RUN = "dry_run"
    HOLD = "hold"
    LEASE_HELD = "lease_held"
    CLUSTER_GONE = "cluster_gone"
    GROUP_BUSY = "group_busy"
    THROTTLED = "throttled"
    INVALID = "invalid"
    FAILED = "failed"
    SKIPPED = "skipped"  # reconcile_once only: at the minimum and no alarm in ALARM


@dataclass(frozen=True)
class RunResult:
    cluster_id: str
    outcome: str  # an Outcome value
    decision: Decision | None
    # --- SHELL additions ------------------------------------------------------------------------------------
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


@dataclass
class _Notices:
    sent: int = 0
    failed: int = 0


def with_prices(cluster: Cluster, prices: Mapping[str, float] | None) -> Cluster:
    """The cluster with each TASK group's node-hour price replaced where `prices` has one."""
    if not prices:
        return cluster
    repriced = {}
    for g in cluster.task_groups:
        if g.id in prices:
            price, old = float(prices[g.id]), g.usd_per_hour
            # the same non-zero float keeps the group as it is; a zero (0.0 == -0.0), NaN (never equal) or
            # non-float price is replaced
            if not (type(old) is float and old == price and old != 0.0):
                repriced[g.id] = replace(g, usd_per_hour=price)
    if not repriced:
        return cluster  # the cluster as read (an equal value, and no rebuild on every evaluation)
    return replace(cluster, groups=tuple(repriced.get(g.id, g) for g in cluster.groups))


def needs_evaluation(cluster: Cluster, config: Config) -> bool:
    """For the reconcile schedule: True when the TASK groups are above their minimum (the total above
    max(min_task_nodes, sum of the groups' min_nodes)), or below a minimum."""
    total = mins = 0
    below = False
    for g in cluster.task_groups:  # one pass: the schedule asks this of every cluster every few minutes
        least = config.bounds_for(g.id, g.name).min_nodes
        total += g.requested
        mins += least
        below = below or g.requested < least
    return below or total != max(config.min_task_nodes, mins)


def _gone_already(ports: Ports, cluster_id: str, now: datetime) -> RunResult | None:
    if ports.ledger is not None and ports.ledger.claimed_at(cluster_id, KEY_CLUSTER_GONE, now) is not None:
        return RunResult(
            cluster_id, Outcome.CLUSTER_GONE.value, None, detail="cluster is gone: no longer managed"
        )
    return None


def is_gone(ports: Ports, cluster_id: str, now: datetime) -> bool:
    """True once a cluster was found (and notified) gone: it is no longer evaluated."""
    return _gone_already(ports, cluster_id, now) is not None


def mark_gone(*, now: datetime, cluster_id: str, ports: Ports, why: str) -> RunResult:
    """What run_once does on ClusterGone, for a caller that learnt it otherwise (the EMR "Cluster State
    Change" to TERMINATED): mark the cluster gone in the ledger, notify operators once, stop evaluating it."""
    gone = _gone_already(ports, cluster_id, now)
    if gone is not None:
        return gone
    return _gone(ports, cluster_id, ClusterGone(why), now, _Notices())


def acquire_lease_waiting(
    *,
    ports: Ports,
    cluster_id: str,
    owner: str,
    now: datetime,
    config: Config,
    attempts: int,
    wait_s: float,
    sleep: Callable[[float], None],
) -> bool:
    """The per-cluster lease, tried `attempts` times `wait_s` apart (event handlers that must not race the
    scaler wait briefly instead of giving up at once like run_once)."""
    for attempt in range(max(1, attempts)):
        if attempt:
            sleep(wait_s)
        if ports.state.acquire_lease(cluster_id, owner, now, config.lease_ttl_s):
            return True
    return False


def run_once(*, now: datetime, cluster_id: str, ports: Ports, config: Config, owner: str) -> RunResult:
    """One evaluation of `cluster_id` at `now`. See the module docstring for outcomes and errors."""
    gone = _gone_already(ports, cluster_id, now)
    if gone is not None:
        return gone
    if not ports.state.acquire_lease(cluster_id, owner, now, config.lease_ttl_s):
        log.info("evaluation in progress elsewhere", extra={"cluster_id": cluster_id})
        return RunResult(cluster_id, Outcome.LEASE_HELD.value, None, detail="evaluation in progress")
    notices = _Notices()
    try:
        return _evaluate(now=now, cluster_id=cluster_id, ports=ports, config=config, notices=notices)
    except TransientAwsError as exc:
        _notify_failure(ports, cluster_id, what="evaluate the cluster", error=exc, now=now, notices=notices)
        raise
    finally:
        try:
            ports.state.release_lease(cluster_id, owner)
        except SparkscaleError as exc:  # the lease expires by itself; never mask the real outcome
            log.warning("could not release the lease of %s: %s", cluster_id, exc)


def reconcile_once(
    *, now: datetime, cluster_id: str, ports: Ports, config: Config, owner: str, in_alarm: bool
) -> RunResult:
    """The reconcile schedule's step for one cluster: run_once when it has an alarm in ALARM or its TASK
    groups are above (or below) their minimum (needs_evaluation); otherwise skip it after one cluster read."""
    gone = _gone_already(ports, cluster_id, now)
    if gone is not None:
        return gone
    if not in_alarm:
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
                running, requested = _task_nodes(cluster)
                return RunResult(
                    cluster_id,
                    Outcome.SKIPPED.value,
                    None,
                    detail="at its minimum and no alarm in ALARM",
                    running_task_nodes=running,
                    requested_task_nodes=requested,
                )
    return run_once(now=now, cluster_id=cluster_id, ports=ports, config=config, owner=owner)


def _evaluate(
    *, now: datetime, cluster_id: str, ports: Ports, config: Config, notices: _Notices
) -> RunResult:
    try:
        cluster = ports.clusters.read_cluster(cluster_id)
        if ports.prices is not None:
            cluster = with_prices(cluster, _prices(ports, cluster, now))
        metrics = ports.metrics.read_metrics(cluster_id, now)
    except ClusterGone as exc:
        return _gone(ports, cluster_id, exc, now, notices)
    except Throttled as exc:
        log.warning("throttled reading %s: %s", cluster_id, exc)
        return RunResult(cluster_id, Outcome.THROTTLED.value, None, detail=str(exc))
    except InvalidRequest as exc:
        _notify_failure(ports, cluster_id, what="read the cluster", error=exc, now=now, notices=notices)
        return _result(cluster_id, Outcome.INVALID, None, None, detail=str(exc), notices=notices)

    state = ports.state.load_state(cluster_id)
    decision, observed = evaluate(now=now, cluster=cluster, metrics=metrics, config=config, state=state)
    outcome, detail, recorded = _act(ports, cluster_id, decision, config)
    if outcome is Outcome.CLUSTER_GONE:
        return _gone(ports, cluster_id, ClusterGone(detail), now, notices)

    # next_state counts a decision as applied when it is an action and not a dry run: one EMR refused is not
    applied = outcome is Outcome.APPLIED or decision.dry_run
    unchanged = applied or decision.direction is Direction.HOLD
    effective = decision if unchanged else replace(decision, direction=Direction.HOLD)
    new_state = next_state(
        previous=state,
        decision=effective,
        cluster=cluster,
        metrics=metrics,
        now=now,
        config=config,
        observed=observed,
    )
    ports.state.save(cluster_id, new_state, recorded, now)  # record BEFORE notifying: SNS can fail
    if log.isEnabledFor(logging.INFO):  # what log.info checks first: no `extra` built for a dropped record
        log.info(
            "decision",
            extra={
                "cluster_id": cluster_id,
                "outcome": outcome.value,
                "direction": decision.direction.value,
                "targets": {t.group_id: [t.current, t.target] for t in decision.targets},
                "reasons": list(recorded.reason_texts),
            },
        )
    _notify_decision(ports, recorded, cluster, outcome=outcome, detail=detail, now=now, notices=notices)
    return _result(cluster_id, outcome, recorded, cluster, detail=detail, notices=notices)


def _prices(ports: Ports, cluster: Cluster, now: datetime) -> Mapping[str, float] | None:
    if ports.prices is None:
        return None
    try:
        return ports.prices.usd_per_hour(cluster, now)
    except SparkscaleError as exc:  # a price is never a reason to fail a decision
        log.warning("prices unavailable for %s, using the on-demand table: %s", cluster.id, exc)
        return None


def _act(ports: Ports, cluster_id: str, decision: Decision, config: Config) -> tuple[Outcome, str, Decision]:
    """Apply the decision unless it is a hold or a dry run. Returns the outcome, a one-line detail, and the
    decision as recorded (with a 'Not applied: ...' reason when EMR refused)."""
    if not decision.is_action:
        return Outcome.HOLD, "", decision
    if decision.dry_run or config.dry_run:
        return Outcome.DRY_RUN, "dry run", decision
    try:
        ports.capacity.resize(cluster_id, decision.changes)
    except ClusterGone as exc:
        return Outcome.CLUSTER_GONE, str(exc), decision
    except GroupBusy as exc:
        outcome, why = Outcome.GROUP_BUSY, f"Not applied: {exc} (held; the next evaluation retries)."
    except Throttled as exc:
        outcome, why = Outcome.THROTTLED, f"Not applied: throttled by EMR after retries: {exc}."
    except InvalidRequest as exc:
        outcome, why = Outcome.INVALID, f"Not applied: EMR rejected the request: {exc}."
    else:
        return Outcome.APPLIED, "", decision
    return outcome, why, replace(decision, reasons=(*decision.reasons, Reason(ReasonCode.NOT_APPLIED, why)))


def _gone(ports: Ports, cluster_id: str, exc: ClusterGone, now: datetime, notices: _Notices) -> RunResult:
    first = True
    if ports.ledger is not None:
        try:
            first = ports.ledger.claim(cluster_id, KEY_CLUSTER_GONE, now, None)
        except SparkscaleError as err:
            log.warning("could not record that %s is gone: %s", cluster_id, err)
    log.warning("cluster gone: %s", exc, extra={"cluster_id": cluster_id})
    if first:
        _send(ports, notify.cluster_gone_notice(cluster_id, why=str(exc), now=now), notices)
    return _result(cluster_id, Outcome.CLUSTER_GONE, None, None, detail=str(exc), notices=notices)


def claim_notice(ports: Ports, cluster_id: str, key: str, now: datetime) -> bool:
    """May a repeatable notice under `key` go out now (at most once per REPEAT_NOTICE_S)?"""
    if ports.ledger is None:
        return True
    try:
        return ports.ledger.claim(cluster_id, key, now, REPEAT_NOTICE_S)
    except SparkscaleError as exc:
        log.warning("notice ledger unavailable (%s): sending anyway", exc)
        return True


def _notify_decision(
    ports: Ports,
    decision: Decision,
    cluster: Cluster,
    *,
    outcome: Outcome,
    detail: str,
    now: datetime,
    notices: _Notices,
) -> None:
    if outcome is Outcome.APPLIED:
        running = sum(g.running for g in cluster.task_groups)
        _send(ports, notify.decision_notice(decision, cluster, running=running), notices)
    elif outcome is Outcome.DRY_RUN:
        proposal = ",".join(f"{t.group_id}:{t.current}>{t.target}" for t in decision.changes)
        if claim_notice(ports, decision.cluster_id, f"dry_run:{proposal}", now):
            running = sum(g.running for g in cluster.task_groups)
            _send(ports, notify.decision_notice(decision, cluster, running=running), notices)
    elif outcome is Outcome.INVALID:
        err = InvalidRequest(detail)
        _notify_failure(
            ports, decision.cluster_id, what="resize the TASK groups", error=err, now=now, notices=notices
        )
    if decision.at_max_under_pressure and claim_notice(ports, decision.cluster_id, KEY_AT_MAX, now):
        _send(ports, notify.at_max_notice(decision), notices)


def _notify_failure(
    ports: Ports, cluster_id: str, *, what: str, error: BaseException, now: datetime, notices: _Notices
) -> None:
    if claim_notice(ports, cluster_id, f"failure:{type(error).__name__}", now):
        _send(ports, notify.failure_notice(cluster_id, what=what, error=error, now=now), notices)


def _send(ports: Ports, notice: Notice, notices: _Notices) -> None:
    try:
        ports.notifier.notify(notice)
    except Exception as exc:  # a notice never fails the evaluation: the record is already saved
        notices.failed += 1
        log.error("notice %s for %s not sent: %s", notice.kind, notice.cluster_id, exc)
    else:
        notices.sent += 1


def _result(
    cluster_id: str,
    outcome: Outcome,
    decision: Decision | None,
    cluster: Cluster | None,
    *,
    detail: str,
    notices: _Notices,
) -> RunResult:
    running, requested = _task_nodes(cluster) if cluster is not None else (None, None)
    return RunResult(
        cluster_id,
        outcome.value,
        decision,
        detail=detail,
        running_task_nodes=running,
        requested_task_nodes=requested,
        notices_sent=notices.sent,
        notify_failures=notices.failed,
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
