"""The pure node chooser (policy/node_choice.py): which instances a shrink keeps and removes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sparkscale.policy.model import GroupTarget, Market
from sparkscale.policy.node_choice import (
    NO_CHOICE,
    ClusterInstance,
    InstanceShrink,
    NodeReport,
    YarnNode,
    choose_shrinks,
    host_keys,
)
from sparkscale.policy.reasons import ReasonCode

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
G = "ig-TASK1"


def _change(current: int, target: int, group: str = G) -> GroupTarget:
    return GroupTarget(group, "spot-r5", "r5.2xlarge", Market.SPOT, current, target, 0.2)


def _instance(n: int, group: str = G, state: str = "RUNNING") -> ClusterInstance:
    return ClusterInstance(f"i-{n:04d}", group, state, f"ip-10-0-0-{n}.ec2.internal", f"10.0.0.{n}")


def _node(n: int, containers: int, used_mb: float = 0.0, state: str = "RUNNING") -> YarnNode:
    return YarnNode(f"ip-10-0-0-{n}.ec2.internal", state, containers, used_mb)


def _report(*nodes: YarnNode, am: tuple[int, ...] = (), age_s: float = 30) -> NodeReport:
    hosts = frozenset(f"ip-10-0-0-{n}.ec2.internal" for n in am)
    return NodeReport(NOW - timedelta(seconds=age_s), tuple(nodes), hosts)


def _choose(changes, instances, report, **kw):
    return choose_shrinks(changes=changes, instances=instances, report=report, now=NOW, max_age_s=180, **kw)


def test_am_hosts_are_protected_and_the_idlest_nodes_go():
    """5 nodes, shrink by 2. Node 1 hosts an AM (4 containers); nodes 2..5 have 3, 0, 1, 0 containers, node 5
    using 512 MB, node 3 none: the order is 3 (0, 0 MB), 5 (0, 512 MB), 4 (1), 2 (3) -> remove 3 and 5."""
    instances = [_instance(n) for n in range(1, 6)]
    report = _report(_node(1, 4), _node(2, 3), _node(3, 0), _node(4, 1), _node(5, 0, 512), am=(1,))
    choice = _choose([_change(5, 3)], instances, report, termination_timeout_s=600)
    assert choice.shrinks == (InstanceShrink(G, ("i-0001",), ("i-0003", "i-0005"), 600),)
    (reason,) = choice.reasons
    assert reason.code is ReasonCode.NODES_CHOSEN
    assert reason.subject == G
    assert "keeps i-0001 (ip-10-0-0-1.ec2.internal) (application master)" in reason.text
    assert "removes i-0003 (ip-10-0-0-3.ec2.internal), 0 containers, i-0005" in reason.text
    assert reason.values == {"protected": 1.0, "terminated": 2.0, "remove": 2.0}


def test_unhealthy_and_lost_nodes_go_before_idle_ones_and_decommissioning_ones_are_never_chosen():
    instances = [_instance(n) for n in range(1, 5)]
    report = _report(
        _node(1, 0),
        _node(2, 5, state="UNHEALTHY"),
        _node(3, 0, state="DECOMMISSIONING"),
        _node(4, 9, state="LOST"),
    )
    (shrink,) = _choose([_change(4, 1)], instances, report).shrinks
    assert shrink.terminate == ("i-0002", "i-0004", "i-0001")  # broken first (by containers), then idle
    assert shrink.protect == ()


def test_without_a_report_or_with_a_stale_one_emr_chooses_and_the_reason_says_so():
    instances = [_instance(1), _instance(2)]
    for report, words in ((None, "No node report"), (_report(_node(1, 0), age_s=181), "181 s old")):
        choice = _choose([_change(2, 1)], instances, report)
        assert choice.shrinks == ()
        (reason,) = choice.reasons
        assert reason.code is ReasonCode.NODES_UNKNOWN
        assert words in reason.text
        assert reason.text.endswith("EMR chooses which nodes go.")


def test_a_report_from_the_future_beyond_the_max_age_is_stale_too():
    choice = _choose([_change(2, 1)], [_instance(1)], _report(_node(1, 0), age_s=-600))
    assert choice.shrinks == ()
    assert choice.reasons[0].code is ReasonCode.NODES_UNKNOWN


def test_no_shrink_no_choice_and_no_reason():
    assert _choose([_change(2, 3), _change(2, 2)], [_instance(1)], None).reasons == ()


def test_protection_is_capped_at_what_the_group_keeps():
    """3 nodes, all AM hosts, shrink to 1: at most 1 protected (EMR must remove 2), none chosen to go."""
    instances = [_instance(n) for n in range(1, 4)]
    report = _report(_node(1, 1), _node(2, 1), _node(3, 1), am=(1, 2, 3))
    (shrink,) = _choose([_change(3, 1)], instances, report).shrinks
    assert shrink.protect == ("i-0001",)
    assert shrink.terminate == ()
    reason = _choose([_change(3, 1)], instances, report).reasons[0]
    assert "cannot keep i-0002" in reason.text
    assert "EMR picks 2" in reason.text


def test_nodes_still_coming_are_not_replaced_by_running_ones():
    """Requested 5, 3 running (2 still provisioning), target 3: EMR drops the 2 not running; none chosen."""
    instances = [_instance(n) for n in range(1, 4)] + [_instance(9, state="PROVISIONING")]
    report = _report(_node(1, 0), _node(2, 0), _node(3, 0))
    choice = _choose([_change(5, 3)], instances, report)
    assert choice.shrinks == ()
    assert "EMR picks 2" in choice.reasons[0].text


def test_only_the_shrinking_groups_instances_and_only_instances_the_rm_knows():
    instances = [_instance(1), _instance(2, group="ig-OTHER"), _instance(3)]
    report = _report(_node(1, 2), _node(2, 0))  # node 3 not (yet) registered with YARN
    (shrink,) = _choose([_change(2, 1)], instances, report).shrinks
    assert shrink.terminate == ("i-0001",)


@pytest.mark.parametrize(
    ("rm_host", "am_host"),
    [
        ("ip-10-0-0-1.ec2.internal", "ip-10-0-0-1.ec2.internal"),
        ("IP-10-0-0-1.EC2.INTERNAL", "ip-10-0-0-1"),  # case, short name
        ("ip-10-0-0-1.corp.example.com", "10.0.0.1"),  # a custom domain; the AM by address
    ],
)
def test_hosts_match_instances_by_dns_name_first_label_or_address(rm_host, am_host):
    report = NodeReport(
        NOW,
        (YarnNode(rm_host, "RUNNING", 1, 0.0), YarnNode("ip-10-0-0-2", "RUNNING", 0, 0.0)),
        frozenset({am_host}),
    )
    (shrink,) = _choose([_change(2, 1)], [_instance(1), _instance(2)], report).shrinks
    assert shrink.protect == ("i-0001",)
    assert shrink.terminate == ("i-0002",)


def test_host_keys():
    assert host_keys("ip-10-0-0-1.ec2.internal") == {"ip-10-0-0-1.ec2.internal", "ip-10-0-0-1"}
    assert host_keys("10.0.0.1") == {"10.0.0.1", "ip-10-0-0-1"}
    assert host_keys(" ") == frozenset()


# --- invariants ---------------------------------------------------------------------------------------------
_STATES = ("RUNNING", "UNHEALTHY", "LOST", "DECOMMISSIONING", "NEW")


@settings(max_examples=200, deadline=None)
@given(
    nodes=st.lists(
        st.tuples(st.sampled_from(_STATES), st.integers(0, 20), st.booleans(), st.booleans(), st.booleans()),
        min_size=0,
        max_size=12,
    ),
    current=st.integers(0, 14),
    target=st.integers(0, 14),
)
def test_the_choice_never_removes_an_am_host_nor_more_than_asked(nodes, current, target):
    """Per node: (YARN state, containers, hosts an AM, known to the RM, instance RUNNING)."""
    instances, yarn, am = [], [], set()
    for n, (state, containers, hosts_am, known, running) in enumerate(nodes, start=1):
        instances.append(_instance(n, state="RUNNING" if running else "BOOTSTRAPPING"))
        if known:
            yarn.append(_node(n, containers, state=state))
        if hosts_am:
            am.add(n)
    choice = _choose([_change(current, target)], instances, _report(*yarn, am=tuple(am)))
    if current <= target:
        assert choice == NO_CHOICE
        return
    (reason,) = choice.reasons
    assert reason.code is ReasonCode.NODES_CHOSEN
    for shrink in choice.shrinks:
        ids = {i.instance_id for i in instances if i.state == "RUNNING"}
        assert set(shrink.protect) <= ids
        assert set(shrink.terminate) <= ids
        assert not set(shrink.protect) & set(shrink.terminate)
        assert len(shrink.protect) <= target
        assert len(shrink.terminate) <= current - target
        am_ids = {f"i-{n:04d}" for n in am}
        assert not set(shrink.terminate) & am_ids  # an AM host is never chosen to go
