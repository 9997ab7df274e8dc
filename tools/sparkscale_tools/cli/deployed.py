"""What `sparkscale status / history / pause / resume` read from a deployed stack, with injected boto3 clients
(configured for whatever endpoint boto3 is: AWS_REGION, AWS_ENDPOINT_URL; a moto server in the tests):

- the resource names, from the stack's CloudFormation outputs (`StateTableName`, `AlarmPrefix`);
- the states of a cluster's alarms (DescribeAlarms by the name prefix `<alarm prefix>-<cluster id>-`);
- one cluster's status: its groups (EMR), its alarms, its last decisions, cooldowns and pause (the state
  table, through the DynamoDB adapter);
- one audit record as a history row.

Nothing here decides or writes: the pause mark is written by the CLI through StateStore.save_pause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from sparkscale.adapters.aws_errors import translate
from sparkscale.config import Config
from sparkscale.errors import ClusterGone
from sparkscale.ports import ClusterReader, PauseMark

OUTPUT_TABLE: Final = "StateTableName"
OUTPUT_ALARM_PREFIX: Final = "AlarmPrefix"


class StackError(Exception):
    """The stack or one of its outputs cannot be read; the message says which and what to pass instead."""


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """OutputKey -> OutputValue of the stack (DescribeStacks)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name).get("Stacks", [])
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise StackError(f"stack {stack_name}: {message} (or pass --table)") from exc
    except BotoCoreError as exc:
        raise StackError(f"stack {stack_name}: {exc}") from exc
    if not stacks:
        raise StackError(f"stack {stack_name} not found (or pass --table)")
    return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs", []) or []}


@dataclass(frozen=True)
class AlarmState:
    name: str
    kind: str  # the name after `<prefix>-<cluster id>-`: yarn-pending-memory, idle, ...
    state: str  # OK, ALARM, INSUFFICIENT_DATA
    since: datetime | None
    reason: str


def alarm_states(cloudwatch: Any, prefix: str, cluster_id: str) -> list[AlarmState]:
    """The cluster's alarms (names `<prefix>-<cluster id>-<kind>`, names.alarm_name), by name."""
    head = f"{prefix}-{cluster_id}-"
    out: list[AlarmState] = []
    try:
        pages = cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=head, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
        for page in pages:
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                name = str(alarm.get("AlarmName", ""))
                if name.startswith(head):  # filtered again: moto does not apply every filter
                    out.append(
                        AlarmState(
                            name=name,
                            kind=name[len(head) :],
                            state=str(alarm.get("StateValue", "")),
                            since=alarm.get("StateUpdatedTimestamp"),
                            reason=str(alarm.get("StateReason", "")),
                        )
                    )
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "DescribeAlarms") from exc
    return sorted(out, key=lambda a: a.name)


@dataclass(frozen=True)
class GroupRow:
    id: str
    name: str
    role: str
    market: str
    instance_type: str
    requested: int
    running: int
    status: str


@dataclass(frozen=True)
class Cooldown:
    setting: str  # cooldown_after_scale_out_s or cooldown_after_scale_in_s
    last_at: datetime | None  # the last scale-out (scale-in) applied; None: none recorded
    cooldown_s: int

    @property
    def until(self) -> datetime | None:
        return None if self.last_at is None else self.last_at + timedelta(seconds=self.cooldown_s)

    def left_s(self, now: datetime) -> float:
        return 0.0 if self.until is None else max(0.0, (self.until - now).total_seconds())


@dataclass(frozen=True)
class ClusterStatus:
    cluster_id: str
    at: datetime
    cluster_state: str  # RUNNING, WAITING, ... or "gone: <why>"
    name: str
    groups: tuple[GroupRow, ...]
    alarms: tuple[AlarmState, ...]
    decisions: tuple[Mapping[str, Any], ...]  # the newest audit records, newest first
    cooldowns: tuple[Cooldown, ...]
    pause: PauseMark | None

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "cluster_id": self.cluster_id,
            "at": iso(self.at),
            "cluster_state": self.cluster_state,
            "name": self.name,
            "groups": [asdict(g) for g in self.groups],
            "alarms": [{**asdict(a), "since": iso(a.since)} for a in self.alarms],
            "decisions": [history_row(d) for d in self.decisions],
            "cooldowns": [
                {
                    "setting": c.setting,
                    "last_at": iso(c.last_at),
                    "cooldown_s": c.cooldown_s,
                    "until": iso(c.until),
                    "left_s": round(c.left_s(self.at), 1),
                }
                for c in self.cooldowns
            ],
            "paused": None
            if self.pause is None
            else {"at": iso(self.pause.at), "by": self.pause.by, "why": self.pause.why},
        }


def read_status(
    *,
    cluster_id: str,
    now: datetime,
    clusters: ClusterReader,
    store: Any,  # adapters.dynamodb.DynamoStateStore (load_state, load_pause, audit)
    cloudwatch: Any,
    alarm_prefix: str,
    config: Config,
    decisions: int = 5,
) -> ClusterStatus:
    """Everything `sparkscale status` shows, read once. A gone cluster still shows its record and alarms."""
    try:
        cluster = clusters.read_cluster(cluster_id)
        state_text, name = cluster.state.value, cluster.name
        groups = tuple(
            GroupRow(
                g.id,
                g.name,
                g.role.value,
                g.market.value,
                g.instance_type,
                g.requested,
                g.running,
                g.status.value,
            )
            for g in cluster.groups
        )
    except ClusterGone as exc:
        state_text, name, groups = f"gone: {exc}", "", ()
    state = store.load_state(cluster_id)
    return ClusterStatus(
        cluster_id=cluster_id,
        at=now,
        cluster_state=state_text,
        name=name,
        groups=groups,
        alarms=tuple(alarm_states(cloudwatch, alarm_prefix, cluster_id)),
        decisions=tuple(store.audit(cluster_id, limit=decisions)),
        cooldowns=(
            Cooldown(
                "cooldown_after_scale_out_s", state.last_scale_out_at, config.cooldown_after_scale_out_s
            ),
            Cooldown("cooldown_after_scale_in_s", state.last_scale_in_at, config.cooldown_after_scale_in_s),
        ),
        pause=store.load_pause(cluster_id),
    )


# --- one audit record as a history row ----------------------------------------------------------------------
def outcome_of(record: Mapping[str, Any]) -> str:
    """What became of a recorded decision: hold, applied, dry run, paused or not applied (EMR refused)."""
    codes = set(record.get("reason_codes") or ())
    if record.get("direction") == "hold" or not record.get("is_action", True):
        return "hold"
    if "paused" in codes:
        return "paused"
    if record.get("dry_run"):
        return "dry run"
    if "not_applied" in codes:
        return "not applied"
    return "applied"


def history_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `sparkscale history` shows of one audit record (records.decision_to_dict)."""
    targets: Sequence[Mapping[str, Any]] = record.get("targets") or ()
    reasons: Sequence[str] = record.get("reasons") or ()
    signal = record.get("driving_signal")
    value = record.get("driving_value")
    return {
        "at": record.get("at"),
        "direction": record.get("direction"),
        "outcome": outcome_of(record),
        "task_nodes_before": sum(int(t.get("current", 0)) for t in targets),
        "task_nodes_after": sum(int(t.get("target", 0)) for t in targets),
        "usd_per_hour_before": record.get("usd_per_hour_before"),
        "usd_per_hour_after": record.get("usd_per_hour_after"),
        "driving_signal": None
        if signal is None
        else (f"{signal}={value:g}" if value is not None else signal),
        "first_reason": reasons[0] if reasons else "",
    }
