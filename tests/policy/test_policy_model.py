"""Cluster.derived: values computed from an immutable Cluster, kept with it and never part of its value."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

from model_builders import group
from sparkscale.policy.model import Cluster, ClusterState, Role


def _cluster(requested: int = 3) -> Cluster:
    return Cluster(
        "j-TEST",
        "test",
        ClusterState.RUNNING,
        (
            group("ig-core", name="core", instance_type="r5.2xlarge", requested=2, usd=0.5, role=Role.CORE),
            group("ig-a", name="a", instance_type="r6g.4xlarge", requested=requested, usd=0.3, running=1),
        ),
    )


def test_derived_computes_once_per_key_and_value() -> None:
    c = _cluster()
    calls: list[str] = []

    def running(cl: Cluster) -> int:
        calls.append("running")
        return sum(g.running for g in cl.task_groups)

    assert c.derived("running", running) == 1
    assert c.derived("running", running) == 1
    assert calls == ["running"]
    assert c.derived(("running", "again"), running) == 1  # another key: computed again
    assert calls == ["running", "running"]


def test_derived_values_are_not_part_of_equality_repr_or_copies() -> None:
    c, fresh = _cluster(), _cluster()
    c.derived("x", lambda cl: 42)
    assert c == fresh
    assert hash(c) == hash(fresh)
    assert repr(c) == repr(fresh)
    changed = replace(c, groups=(*c.groups[:1], replace(c.groups[1], requested=5)))
    # a new value starts with nothing derived: the hold targets follow its groups, not the old cluster's
    assert changed.derived("x", lambda cl: 7) == 7
    assert [t.target for t in changed.unchanged_targets] == [5]
    assert [t.target for t in c.unchanged_targets] == [3]
    assert changed.requested_usd_per_hour == 5 * 0.3
    for clone in (copy.deepcopy(c), pickle.loads(pickle.dumps(c))):
        assert clone == c
        # a copy has the same groups, so whatever it derives (or carries over) is the same
        assert clone.unchanged_targets == c.unchanged_targets
        assert clone.requested_usd_per_hour == c.requested_usd_per_hour
