"""No input can crash a handler (issue #18 items 4 and 6): 10,000 mutated copies of the real payloads per
handler (tests/fixtures/aws-samples, see its PROVENANCE.md; mutations in mutations.py) go through the real
handlers on the in-memory ports (sparkscale.memory) and a fixed clock.

For every example: no exception escapes the handler; every rejected record is one RejectedEvents metric and
one "rejected event: " log line; and an invocation whose records were all rejected resized nothing, sent no
notice and recorded nothing. The reconcile handler reads nothing from its event, so whatever the event, it
evaluates each managed cluster once and (on a cluster under no pressure) changes nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from handlers import alarm, common, emr_events, reconcile, spot_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sparkscale import names
from sparkscale.config import Config
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.ports import InstanceLocation, Lookup, Ports

from tests.robustness.mutations import mutate, random_ops, unpack
from tests.scale.shell_support import FakeLambdaContext, cluster, fixture, group, pressure

EXAMPLES = int(os.environ.get("SPARKSCALE_ROBUSTNESS_EXAMPLES", "10000"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same 10,000 examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
SEEDS = st.integers(min_value=0, max_value=2**64 - 1)
NOW = datetime(2026, 3, 2, 12, 1, tzinfo=UTC)  # the samples' time, 12:00:00Z, is 60 s before
CID = "j-2AXXXXXXGAPLF"  # the cluster the alarm samples name
SPOT_GROUP, OTHER_GROUP = "ig-SPOTR5", "ig-SPOTM5"
VICTIM = "i-1234567890abcdef0"  # the instance the spot samples name
HOME = "arn:aws:lambda:us-east-1:123456789012:function:sparkscale"


def _home_alarm(path: str) -> Any:
    """An alarm sample as this deployment's own: our cluster, account and region."""
    text = json.dumps(fixture(path))
    for theirs, ours in (
        ("231436140809", "123456789012"),
        ("eu-west-1", "us-east-1"),
        ("EU (Ireland)", "US East (N. Virginia)"),
    ):
        text = text.replace(theirs, ours)
    return json.loads(text)


def _emr_sample(path: str) -> Any:
    ev = fixture(path)
    ev["time"] = "2026-03-02T12:00:00Z"
    ev["detail"]["clusterId"] = CID
    if "instanceGroupId" in ev["detail"]:
        ev["detail"]["instanceGroupId"] = SPOT_GROUP
    return ev


ALARM_SAMPLES = [
    _home_alarm(p)
    for p in (
        "sns/emr-alarm-sns-single-metric.json",
        "sns/emr-alarm-sns-metric-math.json",
        "sns/emr-alarm-sqs-event.json",
        "sns/emr-alarm-sns-envelope.json",
        "sns/emr-alarm-message-body-single-metric.json",
        "sns/emr-alarm-message-body-metric-math.json",
        "eventbridge/emr-alarm-state-change-single-metric.json",
        "eventbridge/emr-alarm-state-change-metric-math.json",
        "sns/cloudwatch-alarm-sns-payload-multiple-metrics.json",
        "eventbridge/CloudWatch_Alarm_State_Change_composite_with_suppressor.json",
    )
]
SPOT_SAMPLES = [
    fixture("eventbridge/EC2_Spot_Instance_Interruption_Warning.json"),
    fixture("eventbridge/EC2_Instance_Rebalance_Recommendation.json"),
    fixture("eventbridge/EC2_Instance_State_change_Notification_pending.json"),
]
EMR_SAMPLES = [
    _emr_sample("eventbridge/EMR_Instance_Group_State_Change_stuck_insufficient_capacity.json"),
    _emr_sample("eventbridge/EMR_Instance_Group_State_Change_arrested.json"),
    _emr_sample("eventbridge/EMR_Instance_Group_State_Change_RUNNING.json"),
    _emr_sample("eventbridge/EMR_Cluster_State_Change_TERMINATED.json"),
    _emr_sample("eventbridge/EMR_Cluster_State_Change_STARTING.json"),
]
# An EventBridge schedule event as the reconcile rule sends it (the shape of the EventBridge user guide's
# "Scheduled Event" sample, as tools/sparkscale_tools/demo/sim.py builds it).
SCHEDULE_SAMPLES = [
    {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-03-02T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sparkscale-Reconcile"],
        "detail": {},
    }
]


class _Locator:
    """The spot samples' instance is a node of our SPOT TASK group; any other instance is not ours."""

    def locate(self, instance_id: str, managed_clusters: Any) -> Lookup:
        if instance_id == VICTIM:
            return Lookup(InstanceLocation(CID, SPOT_GROUP, instance_id))
        return Lookup(None, f"{instance_id} is not an instance of a managed cluster")


class _Rejections(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("rejected event: "):
            self.count += 1


@dataclass
class World:
    emr: FakeEmr
    store: InMemoryStateStore
    notifier: CollectingNotifier
    log: _Rejections

    def footprint(self) -> tuple[int, int, int, int, int]:
        """Everything an action leaves behind: resizes, notices, saves, claims, capacity errors."""
        errors = sum(len(s.capacity_errors) for s in self.store.states.values())
        return (
            len(self.emr.resizes),
            len(self.notifier.notices),
            self.store.saves,
            len(self.store.claims),
            errors,
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    cfg = Config.from_mapping({"clusters": [CID], "max_task_nodes": 40, "group_max_nodes": 40})
    emr = FakeEmr(
        cluster(
            CID,
            group(SPOT_GROUP, requested=3),
            group(OTHER_GROUP, itype="m5.4xlarge", requested=1, usd=0.2),
        )
    )
    store, notifier = InMemoryStateStore(), CollectingNotifier()
    ports = Ports(emr, FixedMetrics({CID: pressure(NOW)}), emr, store, notifier, ledger=store)
    rt = common.Runtime(config=cfg, ports=ports, alarms=None, table_name="t", alarm_prefix="sparkscale")
    rt.clock = lambda: NOW
    rt.cache["idempotent"] = (alarm.evaluate, IdempotencyConfig(event_key_jmespath="message_id"))
    rt.cache["spot_locator"] = _Locator()
    common.set_runtime(rt)
    log = _Rejections()
    service = logging.getLogger(names.SERVICE_NAME)
    service.addHandler(log)
    logging.disable(logging.NOTSET)
    with contextlib.redirect_stderr(io.StringIO()):
        yield World(emr, store, notifier, log)
    service.removeHandler(log)
    common.set_runtime(None)


def _check(
    world: World, handler: Callable[[Any, Any], Any], event: Any, results_of: Callable[[Any], list[Any]]
) -> None:
    before, logged = world.footprint(), world.log.count
    emf = io.StringIO()
    with contextlib.redirect_stdout(emf):
        out = handler(event, FakeLambdaContext(invoked_function_arn=HOME))  # raises: the property fails
    results = results_of(out)
    rejected = [r for r in results if r.get("outcome", r.get("result")) == "rejected"]
    assert all(isinstance(r.get("reason"), str) and r["reason"] for r in rejected), results
    assert emf.getvalue().count(f'"{names.M_REJECTED_EVENTS}":[1.0]') == len(rejected)
    assert world.log.count - logged == len(rejected)
    if rejected and len(rejected) == len(results):
        assert world.footprint() == before, (rejected, world.footprint(), before)


def _alarm_results(out: Any) -> list[Any]:
    return list(out["results"])


def _one(out: Any) -> list[Any]:
    return [out]


@PROPERTY
@given(base=st.sampled_from(ALARM_SAMPLES), seed=SEEDS)
def test_alarm_handler_never_raises(world: World, base: Any, seed: int) -> None:
    _check(world, alarm.handler, mutate(unpack(base), random_ops(seed)), _alarm_results)


@PROPERTY
@given(base=st.sampled_from(SPOT_SAMPLES), seed=SEEDS)
def test_spot_events_handler_never_raises(world: World, base: Any, seed: int) -> None:
    _check(world, spot_events.handler, mutate(unpack(base), random_ops(seed)), _one)


@PROPERTY
@given(base=st.sampled_from(EMR_SAMPLES), seed=SEEDS)
def test_emr_events_handler_never_raises(world: World, base: Any, seed: int) -> None:
    _check(world, emr_events.handler, mutate(unpack(base), random_ops(seed)), _one)


@PROPERTY
@given(base=st.sampled_from(SCHEDULE_SAMPLES), seed=SEEDS)
def test_reconcile_handler_never_raises_and_reads_nothing_from_its_event(
    world: World, base: Any, seed: int
) -> None:
    rt = common.runtime()
    steady = common.Runtime(  # no pressure: whatever the event says, nothing to do
        config=rt.config,
        ports=Ports(world.emr, FixedMetrics(), world.emr, world.store, world.notifier, ledger=world.store),
        alarms=None,
        table_name="t",
        alarm_prefix="sparkscale",
        clock=lambda: NOW,
    )
    common.set_runtime(steady)
    try:
        resizes = len(world.emr.resizes)
        with contextlib.redirect_stdout(io.StringIO()):
            out = reconcile.handler(
                mutate(unpack(base), random_ops(seed)), FakeLambdaContext(invoked_function_arn=HOME)
            )
        assert [r["cluster_id"] for r in out["results"]] == [CID]
        assert out["results"][0]["outcome"] != "failed", out
        assert len(world.emr.resizes) == resizes
    finally:
        common.set_runtime(rt)


def test_an_alarm_of_another_account_changes_nothing(world: World) -> None:
    text = json.dumps(ALARM_SAMPLES[0]).replace("123456789012", "999999999999")  # same alarm, their account
    before = world.footprint()
    emf = io.StringIO()
    with contextlib.redirect_stdout(emf):
        out = alarm.handler(json.loads(text), FakeLambdaContext(invoked_function_arn=HOME))
    [result] = out["results"]
    assert result["outcome"] == "rejected"
    assert (
        "is in account 999999999999 region us-east-1, not this deployment's 123456789012" in result["reason"]
    )
    assert world.footprint() == before
    assert emf.getvalue().count(f'"{names.M_REJECTED_EVENTS}":[1.0]') == 1
    with contextlib.redirect_stdout(io.StringIO()):  # the same alarm from our own account is acted on
        mine = alarm.handler(ALARM_SAMPLES[0], FakeLambdaContext(invoked_function_arn=HOME))
    assert mine["results"][0]["outcome"] != "rejected", mine
