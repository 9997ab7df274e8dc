"""run_once with safe scale-in: a shrink protects the AM hosts and removes the idlest nodes when the ports
have a node report, the instances and a writer that takes the choice; it shrinks as before (and says why)
without a fresh report; ports without those capabilities (the replay's) change nothing at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sparkscale.config import Config
from sparkscale.errors import TransientAwsError
from sparkscale.memory import FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.policy.model import Direction, GroupTarget, MetricsSnapshot, Sample, Signal
from sparkscale.policy.node_choice import ClusterInstance, InstanceShrink, NodeReport, YarnNode
from sparkscale.policy.reasons import ReasonCode
from sparkscale.usecases.shell import Outcome

from tests.scale.shell_support import T0
from tests.scale.test_scale_run_once import CFG, CID, World

G = "ig-TASK1"


def quiet(now: Any, *, task_nodes: int = 4) -> MetricsSnapshot:
    """YARN 20 % used of CORE 48 GiB + 4 x 48 GiB: the policy removes 3 of the 4 TASK nodes."""
    total = (48.0 + 48.0 * task_nodes) * 1024.0
    alloc = 0.2 * total
    vals = {
        Signal.MEMORY_TOTAL_MB: total,
        Signal.MEMORY_ALLOCATED_MB: alloc,
        Signal.MEMORY_AVAILABLE_MB: total - alloc,
        Signal.YARN_MEMORY_AVAILABLE_PCT: 80.0,
        Signal.CONTAINER_PENDING: 0.0,
        Signal.APPS_RUNNING: 1.0,
        Signal.APPS_PENDING: 0.0,
    }
    return MetricsSnapshot({s: Sample(v, now - timedelta(seconds=120)) for s, v in vals.items()})


class ChoosingEmr(FakeEmr):
    """FakeEmr that lists instances (ports.InstanceLister) and takes a choice (ShrinkingCapacityWriter)."""

    def __init__(self, *args: Any, instances: Sequence[ClusterInstance] = ()) -> None:
        super().__init__(*args)
        self.instances = tuple(instances)
        self.shrinks: list[Mapping[str, InstanceShrink]] = []
        self.list_error: Exception | None = None

    def list_instances(self, cluster_id: str) -> tuple[ClusterInstance, ...]:
        if self.list_error is not None:
            raise self.list_error
        return self.instances

    def resize_shrinking(
        self, cluster_id: str, changes: Sequence[GroupTarget], shrinks: Mapping[str, InstanceShrink]
    ) -> None:
        self.shrinks.append(dict(shrinks))
        self.resize(cluster_id, changes)


class ReportingStore(InMemoryStateStore):
    """InMemoryStateStore with the agent's node report (ports.NodeReportSource)."""

    def __init__(self, report: NodeReport | None) -> None:
        super().__init__()
        self.report = report

    def load_node_report(self, cluster_id: str) -> NodeReport | None:
        return self.report


def _instance(n: int) -> ClusterInstance:
    return ClusterInstance(f"i-{n}", G, "RUNNING", f"ip-10-0-0-{n}.ec2.internal", f"10.0.0.{n}")


def _world(report: NodeReport | None) -> World:
    w = World(task_requested=4)
    emr = ChoosingEmr(*w.emr.clusters.values(), instances=[_instance(n) for n in range(1, 5)])
    emr.deliver(CID)
    w.emr = emr
    w.metrics = FixedMetrics({CID: quiet(T0)})
    w.store = ReportingStore(report)
    return w


def _report(age_s: float = 20) -> NodeReport:
    nodes = tuple(
        YarnNode(f"ip-10-0-0-{n}.ec2.internal", "RUNNING", containers, 1024.0 * containers)
        for n, containers in ((1, 2), (2, 0), (3, 5), (4, 1))
    )
    return NodeReport(T0 - timedelta(seconds=age_s), nodes, frozenset({"ip-10-0-0-3.ec2.internal"}))


CONFIG = replace(CFG, scale_in_node_timeout_s=900)


def test_a_shrink_keeps_the_am_host_and_removes_the_idlest_nodes() -> None:
    """4 nodes to 1: node 3 hosts the AM (protected); the others by containers: 2 (0), 4 (1), 1 (2)."""
    w = _world(_report())
    result = w.run(config=CONFIG)
    assert result.outcome == Outcome.APPLIED
    assert result.decision.direction is Direction.IN
    assert w.emr.shrinks == [{G: InstanceShrink(G, ("i-3",), ("i-2", "i-4", "i-1"), 900)}]
    chosen = [r for r in result.decision.reasons if r.code is ReasonCode.NODES_CHOSEN]
    assert len(chosen) == 1
    assert "keeps i-3 (ip-10-0-0-3.ec2.internal) (application master)" in chosen[0].text
    assert "removes i-2 (ip-10-0-0-2.ec2.internal), 0 containers" in chosen[0].text
    # the recorded decision (the audit, the notice) carries the choice
    assert w.store.last_decision is not None
    assert w.store.last_decision.reason_codes[-1] is ReasonCode.NODES_CHOSEN


def test_a_stale_report_shrinks_as_before_and_the_reason_says_so() -> None:
    w = _world(_report(age_s=CONFIG.node_report_max_age_s + 1))
    result = w.run(config=CONFIG)
    assert result.outcome == Outcome.APPLIED
    assert w.emr.shrinks == []  # a plain resize: EMR chooses
    assert [t.target for _, changes in w.emr.resizes for t in changes] == [1]
    assert result.decision.reasons[-1].code is ReasonCode.NODES_UNKNOWN
    assert "EMR chooses which nodes go" in result.decision.reasons[-1].text


def test_an_unreadable_instance_list_never_fails_the_shrink() -> None:
    w = _world(_report())
    w.emr.list_error = TransientAwsError("ListInstances: 500", operation="ListInstances")
    result = w.run(config=CONFIG)
    assert result.outcome == Outcome.APPLIED
    assert w.emr.shrinks == []
    assert "could not be read" in result.decision.reasons[-1].text


def test_ports_without_node_data_change_nothing() -> None:
    """The replay's and the in-memory ports: no read, no extra reason, the resize as before."""
    plain = World(task_requested=4)
    plain.emr.deliver(CID)
    plain.metrics = FixedMetrics({CID: quiet(T0)})
    result = plain.run(config=CONFIG)
    assert result.outcome == Outcome.APPLIED
    assert not {ReasonCode.NODES_CHOSEN, ReasonCode.NODES_UNKNOWN} & set(result.decision.reason_codes)


def test_a_scale_out_reads_no_node_data() -> None:
    w = _world(None)
    w.metrics = FixedMetrics({CID: quiet(T0)})
    w.store.report = None
    w.emr.list_error = AssertionError("a scale-out must not list instances")
    config: Config = replace(CONFIG, min_task_nodes=6, group_min_nodes=6)
    result = w.run(config=config)
    assert result.decision.direction is Direction.OUT
    assert ReasonCode.NODES_UNKNOWN not in result.decision.reason_codes


def test_without_a_report_the_instances_are_not_even_listed() -> None:
    w = _world(None)
    w.emr.list_error = AssertionError("no report: nothing to map, no ListInstances")
    result = w.run(config=CONFIG)
    assert result.outcome == Outcome.APPLIED
    assert w.emr.shrinks == []
    assert result.decision.reasons[-1].text == "No node report from the agent. EMR chooses which nodes go."
