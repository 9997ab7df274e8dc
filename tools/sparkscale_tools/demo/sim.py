"""The replay's cluster model (replay.engine.World) driven by the real handlers over moto.

The World owns simulated time, demand, the node life cycle (provisioning delay, decommissioning) and billing,
and samples the cluster's EMR, heap and YARN collector metrics (replay.model). This controller connects it
to the embedded AWS, in simulated time:

- metrics: every datapoint the model makes visible (after its publication lag) is PutMetricData'd to moto
  CloudWatch with its simulated timestamp, before anything reads CloudWatch;
- alarms: every `alarm_eval_period_s` each of the template's alarms is evaluated from what GetMetricData
  returns from moto (its own metric, statistic and period; metric math evaluated on the returned inputs) with
  `AlarmSpec.state_for`; a state change is set in moto (SetAlarmState: DescribeAlarms sees it), the alarm's
  JSON message is published to the alarm's action topics as CloudWatch would, and what SNS delivered on the
  alarm topic is handed to the alarm handler as a Lambda SNS event `sns_lambda_latency_s` later;
- schedule: the reconcile handler runs every `reconcile_rate_s` (the template's rule) with a Scheduled Event;
- capacity: after every invocation ListInstanceGroups is read back from moto and the model follows the
  RequestedInstanceCount of each TASK group (nodes come up after the provisioning delay; the EMR overlay shows
  the model's running count and RESIZING state to the handlers); on a fleet cluster (demo/fleet.py)
  ListInstanceFleets is read back instead and the model follows the TASK fleet's target units per market
  after each ModifyInstanceFleet, and when the spot part of a resize times out (the model's spot timeout) the
  "EMR Instance Fleet Resize" event goes to the EMR-events handler, as EventBridge would deliver it;
- operators: when a handler sent notices, the operator queue (subscribed to the operator topic) is drained.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import ModuleType
from typing import Any, Final, Protocol, TextIO

from sparkscale import names
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.notices import subject_line
from sparkscale.policy.fleet import market_group_id
from sparkscale.policy.model import Direction, Market, Role

from sparkscale_tools.demo import console as con
from sparkscale_tools.demo.aws import Clients, DemoAlarm, Provisioned, drain
from sparkscale_tools.demo.fleet import FleetOverlay, spot_timeout_event
from sparkscale_tools.demo.template import (
    ACCOUNT_ID,
    ALARM_HANDLER,
    EMR_EVENTS_HANDLER,
    RECONCILE_HANDLER,
    REGION,
    StackTemplate,
)
from sparkscale_tools.replay.cloudwatch_sim import compile_expression
from sparkscale_tools.replay.engine import GroupRuntime, World

REGION_NAME: Final = "US East (N. Virginia)"  # how CloudWatch names us-east-1 in alarm messages
SHOWN_OUTCOMES: Final = frozenset({"applied", "dry_run", "group_busy", "throttled", "invalid"})
ACTIONS: Final = frozenset({Direction.OUT.value, Direction.IN.value})
_COMPARISON_TEXT: Final = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}


@dataclass
class FakeContext:
    """The LambdaContext attributes Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_s: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "demo"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_s * 1000  # simulated time stands still while a handler runs


@dataclass
class DemoStats:
    """What happened, for the summary and the test."""

    invocations: dict[str, int] = field(default_factory=dict)  # handler -> count
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    transitions: dict[str, int] = field(default_factory=dict)  # alarm kind -> state changes
    decisions: list[dict[str, Any]] = field(default_factory=list)  # audit records of shown decisions
    emails: list[dict[str, Any]] = field(default_factory=list)  # SNS envelopes an operator's address got
    notices: list[dict[str, Any]] = field(default_factory=list)  # every notice on the operator topic
    requested: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (t, group -> requested)
    modifications: int = 0  # requested-count changes seen in moto EMR (one per ModifyInstanceGroups/-Fleet)
    # a fleet cluster: each spot timeout of the TASK fleet (time s, units given up on, what the EMR-events
    # handler answered: its "result", or "failed")
    spot_timeouts: list[tuple[float, int, str]] = field(default_factory=list)
    fixed_groups_changed: list[str] = field(default_factory=list)  # MASTER/CORE changes (must stay empty)
    result_clusters: set[str] = field(default_factory=set)  # every cluster a handler's result named

    def bump(self, d: dict[str, int], key: str) -> None:
        d[key] = d.get(key, 0) + 1


class CapacityOverlay(Protocol):
    """Shows the model's running nodes (units) and state of a TASK group (fleet market) to the handlers."""

    def show(self, group_id: str, *, running: int, state: str) -> None: ...


class Scenario(Protocol):
    """More clusters beside the simulated one (demo/tagged.py): scheduled on the World at attach, and asked
    to publish their metrics whenever the controller publishes the World's."""

    def attach(self, world: World, controller: DemoController) -> None: ...

    def publish(self, t_s: float) -> None: ...

    def finish(self) -> None:
        """After the run (the World's last events done)."""


class DemoController:
    """replay.engine.Controller: schedules the alarm evaluations and the reconcile runs on the World."""

    name = "sparkscale (demo)"

    def __init__(
        self,
        *,
        tpl: StackTemplate,
        prov: Provisioned,
        clients: Clients,
        cluster_id: str,
        handlers: Mapping[str, ModuleType],
        set_runtime: Callable[[str], None],
        overlay: CapacityOverlay,
        console: con.Console,
        handler_log: TextIO,
        full_emails: int,
        scenario: Scenario | None = None,
        fleet: FleetOverlay | None = None,
    ) -> None:
        self._tpl = tpl
        self._prov = prov
        self._c = clients
        self._cid = cluster_id
        self._handlers = handlers
        self._set_runtime = set_runtime
        self._overlay = overlay
        self._console = console
        self._log = handler_log
        self._full_emails = full_emails
        self._scenario = scenario
        self._fleet = fleet  # a fleet cluster: ListInstanceFleets / ModifyInstanceFleet (it is `overlay` too)
        self._fleet_requests_seen = 0
        self._store = DynamoStateStore(clients.dynamodb, prov.table_name)
        self.stats = DemoStats()
        self._published = {names.EMR_NAMESPACE: 0, names.HEAP_NAMESPACE: 0, names.YARN_NAMESPACE: 0}
        self._state = {a.spec.name: "INSUFFICIENT_DATA" for a in prov.alarms}
        self._compile_alarms(prov.alarms)
        self._fixed: dict[str, int] = {}
        self._subscription = f"{prov.alarm_topic_arn}:{uuid.uuid4()}"
        self._shown = 0  # operator emails (not alarm notifications) printed so far

    def _compile_alarms(self, alarms: tuple[DemoAlarm, ...]) -> None:
        """The alarms evaluated every `alarm_eval_period_s`: their queries and metric-math expressions."""
        self._alarms = alarms
        self._queries, self._inputs = _alarm_queries(alarms)
        self._lookback_s = max(
            (a.spec.evaluation_periods + 2) * a.spec.period_s for a in alarms
        )  # enough periods for every window
        self._align_s = max(a.spec.period_s for a in alarms)
        self._exprs = {
            a.spec.name: compile_expression(a.spec.expression, {q.id for q in a.spec.metrics})
            for a in alarms
            if a.spec.expression is not None
        }

    def add_alarms(self, alarms: tuple[DemoAlarm, ...]) -> None:
        """Evaluate these alarms too from now on (alarms the discovery handler created)."""
        self._state.update({a.spec.name: "INSUFFICIENT_DATA" for a in alarms})
        self._compile_alarms(self._alarms + alarms)

    def remove_alarms(self, alarm_names: set[str]) -> None:
        """Stop evaluating these alarms (deleted)."""
        self._compile_alarms(tuple(a for a in self._alarms if a.spec.name not in alarm_names))

    # --- the World's Controller protocol --------------------------------------------------------------------
    def attach(self, world: World) -> None:
        self._w = world
        p = world.p
        world.every(
            p.reconcile_offset_s + p.schedule_latency_s, float(self._tpl.reconcile_rate_s), self._reconcile
        )
        world.every(p.alarm_eval_offset_s, p.alarm_eval_period_s, self._evaluate_alarms)
        if self._scenario is not None:
            self._scenario.attach(world, self)
        if self._fleet is not None:
            self._fleet.clock = self.now
            for f in self._c.emr.list_instance_fleets(ClusterId=self._cid)["InstanceFleets"]:
                if f["InstanceFleetType"] != Role.TASK.value:
                    self._fixed[str(f["Id"])] = _fleet_units(f)
            if EMR_EVENTS_HANDLER in self._tpl.functions:
                world.spot_timeout_hook = self._spot_timeout
        else:
            for g in self._c.emr.list_instance_groups(ClusterId=self._cid)["InstanceGroups"]:
                if g["InstanceGroupType"] != Role.TASK.value:
                    self._fixed[str(g["Id"])] = int(g["RequestedInstanceCount"])
        self._sync_overlay()

    def now(self) -> datetime:
        """The simulated clock (every handler Runtime's `clock` during the run)."""
        return self._w.dt(self._w.now_s)

    def when(self, t_s: float) -> str:
        return con.sim_time(self._w.dt(t_s), self._w.p.epoch)

    # --- CloudWatch -----------------------------------------------------------------------------------------
    def publish(self, t_s: float) -> None:
        """PutMetricData every datapoint the model has made visible by `t_s` (simulated timestamps)."""
        w = self._w
        dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": self._cid}]
        streams = (
            (names.EMR_NAMESPACE, w.emr),
            (names.HEAP_NAMESPACE, w.heap),
            (names.YARN_NAMESPACE, w.yarn),
        )
        for ns, stream in streams:
            n = stream.visible_count(t_s)
            data = [
                {"MetricName": m, "Dimensions": dims, "Timestamp": w.dt(stream.times[i]), "Value": float(v)}
                for i in range(self._published[ns], n)
                for m, v in stream.values[i].items()
                if math.isfinite(v)
            ]
            for k in range(0, len(data), 1000):
                self._c.cloudwatch.put_metric_data(Namespace=ns, MetricData=data[k : k + 1000])
            self._published[ns] = n
        if self._scenario is not None:
            self._scenario.publish(t_s)

    def _period_values(self, now: datetime) -> dict[str, dict[int, float | None]]:
        """Alarm name -> {period index: value} from ONE GetMetricData over every alarm's metrics."""
        epoch_s = int(now.timestamp())
        start_s = (epoch_s - self._lookback_s) // self._align_s * self._align_s
        resp = self._c.cloudwatch.get_metric_data(
            MetricDataQueries=self._queries,
            StartTime=datetime.fromtimestamp(start_s, UTC),
            EndTime=now + timedelta(seconds=1),
        )
        by_query: dict[str, dict[int, float]] = {}
        period_of = {q["Id"]: int(q["MetricStat"]["Period"]) for q in self._queries}
        for r in resp.get("MetricDataResults", []):
            qid = str(r["Id"])
            by_query[qid] = {
                int(ts.timestamp()) // period_of[qid]: float(v)
                for ts, v in zip(r.get("Timestamps", []), r.get("Values", []), strict=False)
            }
        out: dict[str, dict[int, float | None]] = {}
        for a in self._alarms:
            inputs = self._inputs[a.spec.name]  # metric id in the alarm -> query id
            if a.spec.expression is None:
                out[a.spec.name] = dict(by_query.get(inputs["m"], {}))
                continue
            expr = self._exprs[a.spec.name]
            periods = {p for qid in inputs.values() for p in by_query.get(qid, {})}
            values: dict[int, float | None] = {}
            before: tuple[int, dict[str, float]] | None = None  # for RATE: the previous datapoint's inputs
            for p in sorted(periods):
                got = {mid: by_query[qid][p] for mid, qid in inputs.items() if p in by_query.get(qid, {})}
                gap_s = None if before is None else (p - before[0]) * a.spec.period_s
                v = expr(got) if before is None else expr(got, before[1], gap_s)
                before = (p, got)
                if v is not None and math.isfinite(v):
                    values[p] = v
            out[a.spec.name] = values
        return out

    def _evaluate_alarms(self, t_s: float) -> None:
        self.publish(t_s)
        now = self._w.dt(t_s)
        values = self._period_values(now)
        for a in self._alarms:
            spec = a.spec
            series = values.get(spec.name, {})
            end = int(now.timestamp()) // spec.period_s
            if end not in series:  # the current period's datapoint has not arrived yet: look one back
                end -= 1
            window = [series.get(p) for p in range(end - spec.evaluation_periods + 1, end + 1)]
            old = self._state[spec.name]
            new: str = spec.state_for(window)
            if new == "INSUFFICIENT_DATA" and spec.treat_missing_data == "ignore":
                new = old
            if new != old:
                self._state[spec.name] = new
                periods = list(range(end - len(window) + 1, end + 1))
                self._transition(a, old=old, new=new, window=window, periods=periods, t_s=t_s)

    def _transition(
        self, a: DemoAlarm, *, old: str, new: str, window: list[float | None], periods: list[int], t_s: float
    ) -> None:
        spec = a.spec
        self.stats.bump(self.stats.transitions, spec.kind)
        reason = _reason(spec, old, new, window, periods)
        self._c.cloudwatch.set_alarm_state(
            AlarmName=spec.name,
            StateValue=new,
            StateReason=reason,
            StateReasonData=json.dumps(
                {"version": "1.0", "recentDatapoints": [v for v in window if v is not None]}
            ),
        )
        if old != "INSUFFICIENT_DATA" or new == "ALARM":
            shown = next((v for v in reversed(window) if v is not None), None)
            value = f"{shown:,.2f}" if shown is not None else "no data"
            who = "" if spec.cluster_id == self._cid else f"{spec.cluster_id} "  # a cluster managed by tag
            self._console.line(
                f"{self.when(t_s)}  alarm {who}{spec.kind}: {old} -> {new}  "
                f"({spec.metric_name or spec.expression} {value}; threshold {spec.threshold:g})"
            )
        key = {"ALARM": "AlarmActions", "OK": "OKActions"}.get(new, "InsufficientDataActions")
        if not a.params.get("ActionsEnabled", True):
            return
        message = alarm_message(a, old=old, new=new, reason=reason, at=self._w.dt(t_s))
        subject = subject_line(f'{new}: "{spec.name}" in {REGION_NAME}')
        for topic in a.params.get(key, []):
            self._c.sns.publish(TopicArn=topic, Subject=subject, Message=json.dumps(message))
            if topic in self._prov.email_topic_arns:
                self._emails()
        if self._prov.alarm_topic_arn in a.params.get(key, []):
            for envelope in drain(self._c.sqs, self._prov.alarm_tap_queue_url):
                event = lambda_sns_event(envelope, self._subscription)
                self._w.schedule(
                    t_s + self._w.p.sns_lambda_latency_s,
                    partial(self._deliver, event, f"alarm {spec.kind} {new}"),
                )

    # --- the handlers ---------------------------------------------------------------------------------------
    def _reconcile(self, t_s: float) -> None:
        at = self._w.dt(t_s)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [
                f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{self._tpl.stack_name}-{self._tpl.reconcile_rule}"
            ],
            "detail": {},
        }
        self._invoke(RECONCILE_HANDLER, event, t_s, "schedule")

    def _deliver(self, event: dict[str, Any], trigger: str, t_s: float) -> None:
        """SNS → the alarm function: one Lambda SNS event."""
        self._invoke(ALARM_HANDLER, event, t_s, trigger)

    def _invoke(self, handler: str, event: dict[str, Any], t_s: float, trigger: str) -> Any:
        """One invocation of a real handler (its response: None when it failed)."""
        self.publish(t_s)
        self._sync_overlay()
        fn = self._tpl.functions[handler]
        name = f"{self._tpl.stack_name}-{fn.logical_id}"
        ctx = FakeContext(
            function_name=name,
            memory_limit_in_mb=fn.memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            aws_request_id=str(uuid.uuid4()),
            timeout_s=fn.timeout_s,
        )
        self.stats.bump(self.stats.invocations, handler)
        self._set_runtime(handler)
        response: Any = None
        with contextlib.redirect_stdout(self._log):  # Powertools EMF metrics go to the handler log
            try:
                response = self._handlers[handler].handler(event, ctx)
            except Exception as exc:  # a failed invocation: Lambda would retry it; the demo records it
                msg = f"{self.when(t_s)}  {handler} failed: {type(exc).__name__}: {exc}"
                self.stats.failures.append(msg)
                self._console.line(msg)
        results = response.get("results", []) if isinstance(response, dict) else []
        if handler == EMR_EVENTS_HANDLER and isinstance(response, dict) and "outcome" in response:
            results = [response]  # the EMR-events handler: its one run's result at the top level
        notices = 0
        for r in results:
            outcome = str(r.get("outcome", "?"))
            self.stats.result_clusters.add(str(r.get("cluster_id")))
            self.stats.bump(self.stats.outcomes, outcome)
            notices += int(r.get("notices_sent") or 0)
            if outcome in SHOWN_OUTCOMES and r.get("direction") in ACTIONS:
                self._show_decision(r, t_s, trigger, outcome)
        self._read_back(t_s)
        if notices:
            self._emails()
        return response

    def invoke(self, handler: str, event: dict[str, Any], t_s: float, trigger: str) -> Any:
        """One invocation of a real handler, for a scenario (then the operator queues are drained)."""
        response = self._invoke(handler, event, t_s, trigger)
        self._emails()
        return response

    @property
    def console(self) -> con.Console:
        return self._console

    def _show_decision(self, result: Mapping[str, Any], t_s: float, trigger: str, outcome: str) -> None:
        audit = self._store.audit(str(result.get("cluster_id", self._cid)), limit=1)
        decision = (
            audit[0] if audit else {"cluster_id": result.get("cluster_id"), "direction": result["direction"]}
        )
        self.stats.decisions.append({**decision, "outcome": outcome, "trigger": trigger})
        self._console.lines(
            con.decision_lines(decision, when=self.when(t_s), trigger=trigger, outcome=outcome)
        )

    def _emails(self) -> None:
        self.stats.notices += drain(self._c.sqs, self._prov.notices_queue_url)
        for envelope in drain(self._c.sqs, self._prov.operator_queue_url):
            self.stats.emails.append(envelope)
            self._shown += 1 if not con.is_alarm_email(envelope) else 0
            self._console.lines(con.email_lines(envelope, full=self._shown <= self._full_emails))

    # --- EMR ------------------------------------------------------------------------------------------------
    def _read_back(self, t_s: float) -> None:
        """ListInstanceGroups from moto; the model follows each TASK group's RequestedInstanceCount."""
        if self._fleet is not None:
            self._read_back_fleet(t_s)
            return
        w = self._w
        groups = self._c.emr.list_instance_groups(ClusterId=self._cid)["InstanceGroups"]
        requested: dict[str, int] = {}
        scale_out = changed = False
        for g in groups:
            gid, n = str(g["Id"]), int(g["RequestedInstanceCount"])
            requested[gid] = n
            if gid in self._fixed:
                if n != self._fixed[gid]:
                    self.stats.fixed_groups_changed.append(f"{self.when(t_s)} {gid} {self._fixed[gid]}->{n}")
                continue
            rt = w.by_id.get(gid)
            if rt is not None and rt.requested != n:
                scale_out = scale_out or n > rt.requested
                changed = True
                w.set_requested(rt, n)
        if changed:
            w.record_request(scale_out=scale_out)
            self.stats.modifications += 1
            self.stats.requested.append((t_s, requested))
            self._sync_overlay()

    def _read_back_fleet(self, t_s: float) -> None:
        """ListInstanceFleets from moto after a ModifyInstanceFleet; the model follows the TASK fleet's target
        units of each market, and asks again for the spot units a timed-out resize gave up on (a new resize
        asks for its whole target)."""
        assert self._fleet is not None
        new = len(self._fleet.requests) - self._fleet_requests_seen
        if new <= 0:
            return
        self._fleet_requests_seen = len(self._fleet.requests)
        w = self._w
        requested: dict[str, int] = {}
        for f in self._c.emr.list_instance_fleets(ClusterId=self._cid)["InstanceFleets"]:
            fid = str(f["Id"])
            if f["InstanceFleetType"] != Role.TASK.value:
                requested[fid] = n = _fleet_units(f)
                if n != self._fixed.get(fid):
                    self.stats.fixed_groups_changed.append(
                        f"{self.when(t_s)} {fid} {self._fixed.get(fid)}->{n}"
                    )
                continue
            requested[market_group_id(fid, Market.SPOT)] = int(f.get("TargetSpotCapacity", 0))
            requested[market_group_id(fid, Market.ON_DEMAND)] = int(f.get("TargetOnDemandCapacity", 0))
        scale_out = False
        for gid, n in requested.items():
            rt = w.by_id.get(gid)
            if rt is not None and rt.requested != n:
                scale_out = scale_out or n > rt.requested
                w.set_requested(rt, n)
        for rt in w.task:
            if rt.spec.market is Market.SPOT:
                w.retry_missing(rt)
        w.record_request(scale_out=scale_out)
        self.stats.modifications += new
        self.stats.requested.append((t_s, requested))
        self._sync_overlay()

    def _spot_timeout(self, g: GroupRuntime, units: int, t_s: float) -> None:
        """The model's spot timeout of the TASK fleet: EMR's "EMR Instance Fleet Resize" event, delivered to
        the EMR-events handler by EventBridge (the SNS delivery latency stands in for EventBridge's)."""
        fid = g.spec.fleet_id or ""
        event = spot_timeout_event(
            cluster_id=self._cid,
            cluster_name=f"sparkscale-{self._w.cluster.name}",
            fleet_id=fid,
            at=self._w.dt(t_s),
            event_id=str(uuid.uuid4()),
            types=[t.instance_type for t in g.spec.fleet_types],
        )
        self._console.line(
            f"{self.when(t_s)}  EMR Instance Fleet Resize: {fid} Spot Provisioning timeout "
            f"({units} spot unit{'s' if units != 1 else ''} not provisioned) -> EMR-events handler"
        )
        self._w.schedule(t_s + self._w.p.sns_lambda_latency_s, partial(self._deliver_emr_event, event, units))

    def _deliver_emr_event(self, event: dict[str, Any], units: int, t_s: float) -> None:
        response = self._invoke(EMR_EVENTS_HANDLER, event, t_s, "EMR Instance Fleet Resize")
        result = str(response.get("result")) if isinstance(response, dict) else "failed"
        self.stats.spot_timeouts.append((t_s, units, result))

    def _sync_overlay(self) -> None:
        for g in self._w.task:
            self._overlay.show(g.spec.id, running=g.running, state=g.status.value)


# --- payloads -----------------------------------------------------------------------------------------------
def _fleet_units(f: Mapping[str, Any]) -> int:
    """A MASTER or CORE fleet's target units (both markets)."""
    return int(f.get("TargetOnDemandCapacity", 0)) + int(f.get("TargetSpotCapacity", 0))


def _alarm_queries(alarms: tuple[DemoAlarm, ...]) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The MetricDataQueries of every alarm's metrics (deduplicated), and per alarm: its metric id ("m" for a
    single-metric alarm, else the template's query ids) -> query id."""
    queries: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    inputs: dict[str, dict[str, str]] = {}

    def add(metric: Mapping[str, Any], period: int, stat: str) -> str:
        key = json.dumps([metric, period, stat], sort_keys=True)
        if key not in seen:
            seen[key] = f"q{len(seen)}"
            queries.append(
                {
                    "Id": seen[key],
                    "MetricStat": {"Metric": dict(metric), "Period": period, "Stat": stat},
                    "ReturnData": True,
                }
            )
        return seen[key]

    for a in alarms:
        p = a.params
        if a.spec.expression is None:
            metric = {
                "Namespace": p["Namespace"],
                "MetricName": p["MetricName"],
                "Dimensions": p.get("Dimensions", []),
            }
            inputs[a.spec.name] = {"m": add(metric, int(p["Period"]), str(p["Statistic"]))}
        else:
            inputs[a.spec.name] = {
                str(m["Id"]): add(
                    m["MetricStat"]["Metric"], int(m["MetricStat"]["Period"]), str(m["MetricStat"]["Stat"])
                )
                for m in p["Metrics"]
                if "MetricStat" in m
            }
    return queries, inputs


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _reason(spec: Any, old: str, new: str, window: list[float | None], periods: list[int]) -> str:
    """CloudWatch's NewStateReason wording."""
    points = [
        f"{v:g} ({datetime.fromtimestamp(p * spec.period_s, UTC).strftime('%d/%m/%y %H:%M:%S')})"
        for v, p in zip(window, periods, strict=True)
        if v is not None
    ]
    if not points:
        n = len(window)
        if new == "INSUFFICIENT_DATA":
            return f"Insufficient Data: {n} datapoints were unknown."
        treated = "Breaching" if spec.treat_missing_data == "breaching" else "NonBreaching"
        return (
            f"Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints "
            f"were treated as [{treated}]."
        )
    breaching = sum(1 for v in window if v is not None and spec.breaches(v))
    text = _COMPARISON_TEXT.get(spec.comparison, spec.comparison)
    negation = "" if new == "ALARM" else "not "
    shown = breaching if new == "ALARM" else len(points) - breaching
    return (
        f"Threshold Crossed: {shown} out of the last {len(window)} datapoints [{', '.join(points)}] was "
        f"{negation}{text} the threshold ({spec.threshold:g}) (minimum {spec.datapoints_to_alarm} datapoint"
        f"{'s' if spec.datapoints_to_alarm != 1 else ''} for {old} -> {new} transition)."
    )


def alarm_message(a: DemoAlarm, *, old: str, new: str, reason: str, at: datetime) -> dict[str, Any]:
    """The JSON CloudWatch publishes to an alarm's action topics (tests/fixtures/aws-samples/sns/*BODY*)."""
    p = a.params
    common = {
        "Period": int(p.get("Period") or a.spec.period_s),
        "EvaluationPeriods": int(p["EvaluationPeriods"]),
        "DatapointsToAlarm": int(p.get("DatapointsToAlarm", p["EvaluationPeriods"])),
        "ComparisonOperator": p["ComparisonOperator"],
        "Threshold": float(p["Threshold"]),
        "TreatMissingData": f"- TreatMissingData:                    {p.get('TreatMissingData', 'missing')}",
        "EvaluateLowSampleCountPercentile": "",
    }
    if a.spec.expression is None:
        trigger: dict[str, Any] = {
            "MetricName": p["MetricName"],
            "Namespace": p["Namespace"],
            "StatisticType": "Statistic",
            "Statistic": str(p["Statistic"]).upper(),
            "Unit": p.get("Unit"),
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in p.get("Dimensions", [])],
            **common,
        }
    else:
        metrics = []
        for m in p["Metrics"]:
            m2 = json.loads(json.dumps(m))
            if "MetricStat" in m2:
                dims = m2["MetricStat"]["Metric"].get("Dimensions", [])
                m2["MetricStat"]["Metric"]["Dimensions"] = [
                    {"value": d["Value"], "name": d["Name"]} for d in dims
                ]
            metrics.append(m2)
        trigger = {**common, "Metrics": metrics}
    return {
        "AlarmName": a.spec.name,
        "AlarmDescription": p.get("AlarmDescription"),
        "AWSAccountId": ACCOUNT_ID,
        "AlarmConfigurationUpdatedTimestamp": _stamp(at),
        "NewStateValue": new,
        "NewStateReason": reason,
        "StateChangeTime": _stamp(at),
        "Region": REGION_NAME,
        "AlarmArn": a.arn,
        "OldStateValue": old,
        "OKActions": list(p.get("OKActions", [])),
        "AlarmActions": list(p.get("AlarmActions", [])),
        "InsufficientDataActions": list(p.get("InsufficientDataActions", [])),
        "Trigger": trigger,
    }


def lambda_sns_event(envelope: Mapping[str, Any], subscription_arn: str) -> dict[str, Any]:
    """What Lambda receives for one SNS delivery (tests/fixtures/aws-samples/sns/emr-alarm-sns-*.json): the
    envelope SNS delivered, with Lambda's spelling of the certificate and unsubscribe URLs."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope["TopicArn"],
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope.get("Timestamp"),
                    "SignatureVersion": envelope.get("SignatureVersion"),
                    "Signature": envelope.get("Signature"),
                    "SigningCertUrl": envelope.get("SigningCertURL"),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL"),
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }
