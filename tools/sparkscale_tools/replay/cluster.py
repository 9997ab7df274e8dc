"""The simulated cluster's shape: its core group and the TASK groups the policies may resize, with prices and
the spot market's behaviour per group (interruption rate, capacity shortfalls).

The default (`default_cluster()`) is a typical memory-oriented Spark cluster: 2 × r5.2xlarge ON_DEMAND core
nodes and five TASK groups (four SPOT memory types, one ON_DEMAND fallback). SPOT prices are an *assumption*:
a fixed share of the bundled us-east-1 on-demand price (SPOT_SHARE_OF_ON_DEMAND), since no spot price history
ships with the project; override them with `--cluster FILE.json` (format in `load_cluster`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sparkscale.adapters import instance_data
from sparkscale.policy.model import Market, Role


class ClusterSpecError(ValueError):
    """A cluster file that cannot be simulated (one line)."""


@dataclass(frozen=True, slots=True)
class GroupSpec:
    id: str
    name: str
    role: Role
    market: Market
    instance_type: str
    memory_gib: float  # instance memory per node
    vcpu: int
    usd_per_hour: float  # one node-hour (spot price for SPOT)
    nodes: int = 0  # MASTER/CORE: the fixed count; TASK: ignored (the replay warm-starts from demand)
    interruption_rate_per_node_hour: float = 0.0  # SPOT only: Poisson rate of interruption warnings per node
    shortfall_episodes_per_day: float = 0.0  # SPOT only: Poisson rate of "no capacity" episodes
    shortfall_duration_s: float = 3600.0  # length of each episode: no new node launches in the group

    def usable_gib(self, usable_fraction: float) -> float:
        return self.memory_gib * usable_fraction


@dataclass(frozen=True)
class ClusterSpec:
    cluster_id: str
    name: str
    groups: tuple[GroupSpec, ...]
    availability_zone: str = "us-east-1a"
    notes: tuple[str, ...] = field(default=())

    @property
    def core(self) -> tuple[GroupSpec, ...]:
        return tuple(g for g in self.groups if g.role is Role.CORE)

    @property
    def task_groups(self) -> tuple[GroupSpec, ...]:
        return tuple(g for g in self.groups if g.role is Role.TASK)

    def core_gib(self, usable_fraction: float) -> float:
        return sum(g.nodes * g.usable_gib(usable_fraction) for g in self.core)

    def cheapest_task_group(self, usable_fraction: float, *, market: Market | None = None) -> GroupSpec:
        """The TASK group with the lowest USD per usable GiB-hour (ties: the first listed)."""
        groups = [g for g in self.task_groups if market is None or g.market is market]
        if not groups:
            raise ClusterSpecError(
                "the cluster has no TASK group" + (f" of market {market}" if market else "")
            )
        return min(groups, key=lambda g: g.usd_per_hour / g.usable_gib(usable_fraction))

    def with_spot_risk(
        self,
        *,
        interruption_rate_per_node_hour: float,
        shortfall_episodes_per_day: float,
        shortfall_duration_s: float,
        only_group: str | None = None,
    ) -> ClusterSpec:
        """The same cluster with the given interruption / shortfall model on its SPOT TASK groups (or one)."""
        groups = tuple(
            replace(
                g,
                interruption_rate_per_node_hour=interruption_rate_per_node_hour,
                shortfall_episodes_per_day=shortfall_episodes_per_day,
                shortfall_duration_s=shortfall_duration_s,
            )
            if g.role is Role.TASK and g.market is Market.SPOT and (only_group in (None, g.id, g.name))
            else g
            for g in self.groups
        )
        return replace(self, groups=groups)


# Assumed spot price as a share of the on-demand price (illustrative: real ones vary by type, AZ and time).
SPOT_SHARE_OF_ON_DEMAND: Mapping[str, float] = {
    "r6g.4xlarge": 0.35,
    "r7g.4xlarge": 0.36,
    "r5.4xlarge": 0.33,
    "r5.2xlarge": 0.34,
}
DEFAULT_SPOT_SHARE = 0.35


def _group(
    gid: str, name: str, role: Role, market: Market, itype: str, *, nodes: int = 0, usd: float | None = None
) -> GroupSpec:
    spec = instance_data.instance_spec(itype)
    if spec is None:
        raise ClusterSpecError(f"unknown instance type {itype!r} (not in the bundled instance table)")
    if usd is None:
        share = SPOT_SHARE_OF_ON_DEMAND.get(itype, DEFAULT_SPOT_SHARE) if market is Market.SPOT else 1.0
        usd = round(spec.on_demand_usd_per_hour * share, 5)
    return GroupSpec(gid, name, role, market, itype, spec.memory_gib, spec.vcpu, usd, nodes)


def default_cluster(cluster_id: str = "j-REPLAYSIM0001") -> ClusterSpec:
    return ClusterSpec(
        cluster_id=cluster_id,
        name="replay",
        groups=(
            _group("ig-MASTER", "master", Role.MASTER, Market.ON_DEMAND, "m5.xlarge", nodes=1),
            _group("ig-CORE", "core", Role.CORE, Market.ON_DEMAND, "r5.2xlarge", nodes=2),
            _group("ig-TASKR6G4X", "task-spot-r6g-4xl", Role.TASK, Market.SPOT, "r6g.4xlarge"),
            _group("ig-TASKR7G4X", "task-spot-r7g-4xl", Role.TASK, Market.SPOT, "r7g.4xlarge"),
            _group("ig-TASKR54X", "task-spot-r5-4xl", Role.TASK, Market.SPOT, "r5.4xlarge"),
            _group("ig-TASKR52X", "task-spot-r5-2xl", Role.TASK, Market.SPOT, "r5.2xlarge"),
            _group("ig-TASKODR54X", "task-od-r5-4xl", Role.TASK, Market.ON_DEMAND, "r5.4xlarge"),
        ),
        notes=(
            "SPOT prices assumed as a share of the bundled on-demand price: "
            + ", ".join(f"{t} {s:.0%}" for t, s in SPOT_SHARE_OF_ON_DEMAND.items()),
        ),
    )


def load_cluster(path: str | Path) -> ClusterSpec:
    """A cluster file (JSON):

    {"cluster_id": "j-…" (optional), "availability_zone": "us-east-1a" (optional),
     "core": {"instance_type": "r5.2xlarge", "nodes": 2, "usd_per_hour": 0.504 (optional)},
     "task_groups": [{"id": "ig-A", "name": "a" (optional), "instance_type": "r6g.4xlarge",
                      "market": "SPOT" | "ON_DEMAND", "usd_per_hour": 0.28 (default: on-demand × share),
                      "memory_gib": 128 (optional: the bundled table),
                      "interruption_rate_per_node_hour": 0.0, "shortfall_episodes_per_day": 0.0,
                      "shortfall_duration_s": 3600}, …]}
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClusterSpecError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ClusterSpecError(f"{p}: not JSON: {exc}") from None
    try:
        return cluster_from_mapping(raw)
    except ClusterSpecError as exc:
        raise ClusterSpecError(f"{p}: {exc}") from None


def cluster_from_mapping(raw: Any) -> ClusterSpec:
    if not isinstance(raw, dict):
        raise ClusterSpecError("must be a JSON object")
    core = raw.get("core")
    tasks = raw.get("task_groups")
    if not isinstance(core, dict):
        raise ClusterSpecError("needs a 'core' object {instance_type, nodes}")
    if not isinstance(tasks, list) or not tasks:
        raise ClusterSpecError("needs a non-empty 'task_groups' list")
    groups = [
        _from_entry(
            {"id": "ig-MASTER", "instance_type": "m5.xlarge", "market": "ON_DEMAND", "nodes": 1}, Role.MASTER
        ),
        _from_entry({"id": "ig-CORE", "market": "ON_DEMAND", **core}, Role.CORE),
    ]
    groups += [_from_entry(t, Role.TASK) for t in tasks]
    ids = [g.id for g in groups]
    if len(set(ids)) != len(ids):
        raise ClusterSpecError("group ids must be unique")
    return ClusterSpec(
        cluster_id=str(raw.get("cluster_id", "j-REPLAYSIM0001")),
        name=str(raw.get("name", "replay")),
        groups=tuple(groups),
        availability_zone=str(raw.get("availability_zone", "us-east-1a")),
    )


_ENTRY_KEYS = {
    "id",
    "name",
    "instance_type",
    "market",
    "usd_per_hour",
    "memory_gib",
    "vcpu",
    "nodes",
    "interruption_rate_per_node_hour",
    "shortfall_episodes_per_day",
    "shortfall_duration_s",
}


def _from_entry(e: Any, role: Role) -> GroupSpec:
    if not isinstance(e, dict):
        raise ClusterSpecError(f"a {role.value} group must be an object")
    unknown = sorted(set(e) - _ENTRY_KEYS)
    if unknown:
        raise ClusterSpecError(f"unknown key {unknown[0]!r} in a {role.value} group")
    itype = e.get("instance_type")
    if not isinstance(itype, str):
        raise ClusterSpecError(f"a {role.value} group needs 'instance_type'")
    try:
        market = Market(str(e.get("market", "SPOT")).upper())
    except ValueError:
        raise ClusterSpecError(f"market must be SPOT or ON_DEMAND, got {e.get('market')!r}") from None
    gid = str(e.get("id") or f"ig-{itype.replace('.', '').upper()}-{market.value}")
    table = instance_data.instance_spec(itype)
    memory = _num(e, "memory_gib", table.memory_gib if table else None, lo=0.5)
    usd_default = None
    if table is not None:
        share = SPOT_SHARE_OF_ON_DEMAND.get(itype, DEFAULT_SPOT_SHARE) if market is Market.SPOT else 1.0
        usd_default = round(table.on_demand_usd_per_hour * share, 5)
    usd = _num(e, "usd_per_hour", usd_default, lo=0.0)
    nodes = int(_num(e, "nodes", 0, lo=0))
    return GroupSpec(
        id=gid,
        name=str(e.get("name", gid)),
        role=role,
        market=market,
        instance_type=itype,
        memory_gib=memory,
        vcpu=int(_num(e, "vcpu", table.vcpu if table else 4, lo=1)),
        usd_per_hour=usd,
        nodes=nodes,
        interruption_rate_per_node_hour=_num(e, "interruption_rate_per_node_hour", 0.0, lo=0.0),
        shortfall_episodes_per_day=_num(e, "shortfall_episodes_per_day", 0.0, lo=0.0),
        shortfall_duration_s=_num(e, "shortfall_duration_s", 3600.0, lo=0.0),
    )


def _num(e: Mapping[str, Any], key: str, default: float | None, *, lo: float) -> float:
    v = e.get(key, default)
    if v is None:
        raise ClusterSpecError(f"{key!r} is needed for instance type {e.get('instance_type')!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
        raise ClusterSpecError(f"{key!r} must be a number >= {lo:g}, got {v!r}")
    return float(v)
