"""`sparkscale demo --tagged-cluster`: clusters managed by tag, part-way through the simulated day.

With the stack's `discovery` feature on, at `start_s` two more EMR clusters are started on moto (RunJobFlow):
one with the opt-in tag, one without. EMR's "EMR Cluster State Change" RUNNING event of each (EventBridge's
envelope) goes to the real discovery handler, which also runs on its sweep schedule all day. The tagged
cluster gets its alarms (read back with DescribeAlarms and evaluated like the template's), a simple demand
(the same trace from its beginning, from the cluster's start; its metrics published like the model's, from
its bootstrap on, every minute, without the model's publication lags, and its nodes usable as soon as moto
reports them, i.e. at once) and is scaled by the real
alarm and reconcile handlers. At `stop_s` it is terminated (TerminateJobFlows and the TERMINATED event) and
its alarms must be gone. The untagged cluster must end with no alarm, no registry item, its groups as created
and no handler result naming it.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from sparkscale import names
from sparkscale.adapters.discovery import DynamoClusterRegistry
from sparkscale.policy.model import Role

from sparkscale_tools.demo import aws
from sparkscale_tools.demo import template as tp
from sparkscale_tools.replay.cluster import ClusterSpec
from sparkscale_tools.replay.engine import World
from sparkscale_tools.replay.model import emr_signals, heap_signals, yarn_signals

if TYPE_CHECKING:
    from sparkscale_tools.demo.sim import DemoController

MINUTE_S: Final = 60
# The heap agent and the YARN collector start with the bootstrap action, before EMR reports RUNNING: the
# tagged cluster's metrics begin this long before its RUNNING event.
BOOTSTRAP_S: Final = 300


@dataclass
class TaggedStats:
    """What happened to the two extra clusters, for the console, the summary and the tests."""

    tagged_id: str = ""
    untagged_id: str = ""
    started_at: str = ""
    ended_at: str = ""
    discovery: list[tuple[str, str, str]] = field(default_factory=list)  # (when, cluster, action)
    sweeps: int = 0
    alarms_created: list[str] = field(default_factory=list)  # DescribeAlarms after the RUNNING event
    alarms_left: list[str] | None = None  # DescribeAlarms after the TERMINATED event
    requested: list[int] = field(
        default_factory=list
    )  # the tagged cluster's TASK nodes requested, per change
    untagged_alarms: list[str] = field(default_factory=list)
    untagged_changed: list[str] = field(default_factory=list)  # group changes (must stay empty)
    untagged_registered: bool = False

    @property
    def max_requested(self) -> int:
        return max(self.requested, default=0)


def state_change_event(cluster_id: str, name: str, state: str, at: str) -> dict[str, Any]:
    """EventBridge's "EMR Cluster State Change" envelope (EMR Management Guide, event types)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": names.DETAIL_EMR_CLUSTER_STATE_CHANGE,
        "source": names.EVENT_SOURCE_EMR,
        "account": tp.ACCOUNT_ID,
        "time": at,
        "region": tp.REGION,
        "resources": [],
        "detail": {
            "severity": "INFO",
            "stateChangeReason": "{}",
            "name": name,
            "clusterId": cluster_id,
            "state": state,
            "message": f"Amazon EMR cluster {cluster_id} ({name}) is {state.lower()}.",
        },
    }


class TaggedScenario:
    """sim.Scenario: the tagged and the untagged cluster, and the discovery handler's events and sweeps."""

    def __init__(
        self,
        *,
        tpl: tp.StackTemplate,
        prov: aws.Provisioned,
        clients: aws.Clients,
        spec: ClusterSpec,
        discovery_env: dict[str, str],
        start_s: float,
        stop_s: float,
    ) -> None:
        self._tpl, self._prov, self._c = tpl, prov, clients
        self._spec = spec
        self._env = discovery_env
        self._start_s, self._stop_s = start_s, stop_s
        self._live = False
        self._next_m = 0.0  # the next minute whose metrics are published
        self._untagged_groups: dict[str, int] = {}
        self.stats = TaggedStats()

    # --- sim.Scenario -------------------------------------------------------------------------------------
    def attach(self, world: World, controller: DemoController) -> None:
        self._w, self._ctl = world, controller
        rate_s, self._rule = tp.schedule_of(self._tpl, tp.DISCOVERY_HANDLER)
        p = world.p
        world.every(p.reconcile_offset_s + p.schedule_latency_s, float(rate_s), self._sweep)
        world.schedule(self._start_s, self._start)
        world.schedule(self._stop_s, self._stop)

    def publish(self, t_s: float) -> None:
        """PutMetricData the tagged cluster's minutes up to `t_s` (demand: the trace from its beginning, as
        from the cluster's start; during the bootstrap, the trace's first step)."""
        if not self._live:
            return
        supply = self._supply()
        w, cid = self._w, self.stats.tagged_id
        container = w.container_gib
        by_ns: dict[str, list[dict[str, Any]]] = {}
        while self._next_m <= t_s:
            m = self._next_m
            demand = w.demand_at(m - self._start_s)  # the trace again, from its beginning
            samples = (
                (names.EMR_NAMESPACE, emr_signals(demand, supply, container_gib=container, p=w.p)),
                (names.HEAP_NAMESPACE, heap_signals(demand, supply, container_gib=container, p=w.p)),
                (names.YARN_NAMESPACE, yarn_signals(demand, supply, supply, container_gib=container, p=w.p)),
            )
            for ns, sample in samples:
                by_ns.setdefault(ns, []).extend(_datapoints(sample.by_metric(), cid, w.dt(m)))
            self._next_m = m + MINUTE_S
        for ns, data in by_ns.items():
            for k in range(0, len(data), 1000):
                self._c.cloudwatch.put_metric_data(Namespace=ns, MetricData=data[k : k + 1000])

    def finish(self) -> None:
        """After the run: the untagged cluster's alarms, registry item and groups."""
        s = self.stats
        if not s.untagged_id:
            return
        s.untagged_alarms = self._alarm_names(s.untagged_id)
        regs = DynamoClusterRegistry(self._c.dynamodb, self._prov.table_name).registrations(self._w.dt(0))
        s.untagged_registered = s.untagged_id in regs
        for gid, n in self._groups(s.untagged_id).items():
            if n != self._untagged_groups.get(gid):
                s.untagged_changed.append(f"{gid} {self._untagged_groups.get(gid)}->{n}")

    # --- the day's events -----------------------------------------------------------------------------------
    def _start(self, t_s: float) -> None:
        cfg, s = self._tpl.config, self.stats
        tag = {cfg.discovery_tag_key: cfg.discovery_tag_value}
        emr = self._c.emr
        s.tagged_id = aws.create_cluster(emr, replace(self._spec, name="tagged"), {}, tags=tag).cluster_id
        untagged = aws.create_cluster(emr, replace(self._spec, name="untagged"), {}, tags={"team": "data"})
        s.untagged_id, s.started_at = untagged.cluster_id, self._ctl.when(t_s)
        self._untagged_groups = self._groups(s.untagged_id)
        self._line(
            t_s,
            f"EMR cluster {s.tagged_id} (RunJobFlow, tag {cfg.discovery_tag_key}={cfg.discovery_tag_value}) "
            f"and {s.untagged_id} (RunJobFlow, untagged) started; no redeploy",
        )
        for cid, name in ((s.tagged_id, "sparkscale-tagged"), (s.untagged_id, "sparkscale-untagged")):
            self._state_change(cid, name, "RUNNING", t_s)
        described = self._describe(s.tagged_id)
        s.alarms_created = [str(a["AlarmName"]) for a in described]
        self._line(t_s, f"DescribeAlarms {self._tpl.alarm_prefix}-{s.tagged_id}-*: {len(described)} alarms")
        self._ctl.add_alarms(tuple(self._demo_alarm(a) for a in described))
        self._next_m = math.ceil(t_s / MINUTE_S) * MINUTE_S - BOOTSTRAP_S
        self._live = True

    def _stop(self, t_s: float) -> None:
        s = self.stats
        if not s.tagged_id:
            return
        self._live = False
        self._c.emr.terminate_job_flows(JobFlowIds=[s.tagged_id])
        s.ended_at = self._ctl.when(t_s)
        self._line(t_s, f"EMR cluster {s.tagged_id} terminated (TerminateJobFlows)")
        self._state_change(s.tagged_id, "sparkscale-tagged", "TERMINATED", t_s)
        s.alarms_left = self._alarm_names(s.tagged_id)
        self._line(
            t_s, f"DescribeAlarms {self._tpl.alarm_prefix}-{s.tagged_id}-*: {len(s.alarms_left)} alarms left"
        )
        self._ctl.remove_alarms(set(s.alarms_created))

    def _state_change(self, cid: str, name: str, state: str, t_s: float) -> None:
        at = self._w.dt(t_s).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = self._discover(
            state_change_event(cid, name, state, at), t_s, f"EMR Cluster State Change {state}"
        )
        action = str((out or {}).get("action", "failed"))
        self.stats.discovery.append((self._ctl.when(t_s), cid, action))
        reason = str((out or {}).get("reason") or "")
        self._line(t_s, f"discovery: {cid} {state} -> {action}" + (f" ({reason})" if reason else ""))

    def _sweep(self, t_s: float) -> None:
        at = self._w.dt(t_s)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": names.DETAIL_SCHEDULED_EVENT,
            "source": names.EVENT_SOURCE_SCHEDULE,
            "account": tp.ACCOUNT_ID,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": tp.REGION,
            "resources": [
                f"arn:aws:events:{tp.REGION}:{tp.ACCOUNT_ID}:rule/{self._tpl.stack_name}-{self._rule}"
            ],
            "detail": {},
        }
        out = self._discover(event, t_s, "schedule") or {}
        self.stats.sweeps += 1
        for change in out.get("changes", []):
            self.stats.discovery.append(
                (self._ctl.when(t_s), str(change["cluster_id"]), str(change["action"]))
            )
            self._line(t_s, f"discovery sweep: {change['cluster_id']} -> {change['action']}")

    def _discover(self, event: dict[str, Any], t_s: float, trigger: str) -> dict[str, Any] | None:
        """The real discovery handler, in its own function's environment."""
        with aws.patched_environ({"AWS_ENDPOINT_URL": self._c.endpoint, **self._env}):
            out = self._ctl.invoke(tp.DISCOVERY_HANDLER, event, t_s, trigger)
        return out if isinstance(out, dict) else None

    # --- moto ---------------------------------------------------------------------------------------------
    def _supply(self) -> float:
        """Usable YARN memory of the tagged cluster: CORE plus the TASK nodes moto reports requested."""
        f = self._tpl.config.usable_memory_fraction
        by_name = {g.name: g for g in self._spec.groups}
        total, task = 0.0, 0
        for g in self._c.emr.list_instance_groups(ClusterId=self.stats.tagged_id)["InstanceGroups"]:
            spec = by_name.get(str(g["Name"]))
            n = int(g["RequestedInstanceCount"])
            if spec is None or spec.role is Role.MASTER:
                continue
            total += n * spec.usable_gib(f)
            task += n if spec.role is Role.TASK else 0
        if not self.stats.requested or self.stats.requested[-1] != task:
            self.stats.requested.append(task)
        return total

    def _groups(self, cid: str) -> dict[str, int]:
        groups = self._c.emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]
        return {str(g["Id"]): int(g["RequestedInstanceCount"]) for g in groups}

    def _describe(self, cid: str) -> list[dict[str, Any]]:
        head = f"{self._tpl.alarm_prefix}-{cid}-"
        pages = self._c.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=head)
        return [a for p in pages for a in p["MetricAlarms"] if str(a["AlarmName"]).startswith(head)]

    def _alarm_names(self, cid: str) -> list[str]:
        return [str(a["AlarmName"]) for a in self._describe(cid)]

    def _demo_alarm(self, described: dict[str, Any]) -> aws.DemoAlarm:
        """An alarm the discovery handler created, as the demo evaluates the template's (starting, as
        CloudWatch starts every new alarm, in INSUFFICIENT_DATA)."""
        params = {k: v for k, v in described.items() if k in tp.PUT_METRIC_ALARM_KEYS and v not in (None, [])}
        actions = {*params.get("AlarmActions", []), *params.get("OKActions", [])}
        spec = tp.alarm_spec(
            params,
            prefix=self._tpl.alarm_prefix,
            cluster_id=self.stats.tagged_id,
            to_operators=bool(self._prov.email_topic_arns & actions),
        )
        self._c.cloudwatch.set_alarm_state(
            AlarmName=spec.name,
            StateValue="INSUFFICIENT_DATA",
            StateReason="Unchecked: Initial alarm creation",
        )
        return aws.DemoAlarm(spec, params, str(described.get("AlarmArn", "")))

    def _line(self, t_s: float, text: str) -> None:
        self._ctl.console.line(f"{self._ctl.when(t_s)}  {text}")


def _datapoints(values: dict[str, float], cluster_id: str, at: Any) -> list[dict[str, Any]]:
    dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cluster_id}]
    return [
        {"MetricName": m, "Dimensions": dims, "Timestamp": at, "Value": float(v)}
        for m, v in values.items()
        if math.isfinite(v)
    ]


def summary_lines(s: TaggedStats) -> list[str]:
    """The scenario in the summary: a few plain lines."""
    if not s.tagged_id:
        return ["tagged cluster: not started (the run ended first)"]
    actions = ", ".join(f"{w} {a}" for w, c, a in s.discovery if c == s.tagged_id) or "none"
    left = "not terminated in the run" if s.alarms_left is None else f"{len(s.alarms_left)} alarms left"
    untouched = not (s.untagged_alarms or s.untagged_changed or s.untagged_registered)
    return [
        f"tagged cluster {s.tagged_id} (started {s.started_at}, no redeploy): discovery {actions}; "
        f"{len(s.alarms_created)} alarms created; TASK nodes requested at most {s.max_requested}; "
        f"terminated {s.ended_at or '-'}: {left}; {s.sweeps} discovery sweeps",
        f"untagged cluster {s.untagged_id}: {len(s.untagged_alarms)} alarms, "
        f"{'not registered' if not s.untagged_registered else 'REGISTERED'}, "
        f"groups {'unchanged' if not s.untagged_changed else 'CHANGED: ' + json.dumps(s.untagged_changed)}"
        f"{'' if untouched else ' (NOT untouched)'}",
    ]
