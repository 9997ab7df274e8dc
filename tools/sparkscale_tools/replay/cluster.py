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
from sparkscale.policy.fleet import (
    UNITS_TYPE,
    FleetInstanceType,
    market_group_id,
    unit_memory_gib,
    unit_usd_per_hour,
)
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
    # a market of an instance fleet (policy/fleet.py): then a "node" is one capacity unit
    fleet_id: str | None = None
    spot_timeout_s: float | None = None  # the fleet's SPOT market: EMR stops a resize's spot part after this
    fleet_types: tuple[FleetInstanceType, ...] = ()  # a fleet market: the fleet's instance types

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

    or, for a cluster with instance fleets, instead of "task_groups" (see `fleet_markets`):
     "task_fleet": {"id": "if-…", "name": "…" (optional), "spot_timeout_s": 600 (optional, 3600),
                    "instance_types": [{"instance_type": "r5.2xlarge", "weighted_capacity": 2,
                                        "spot_usd_per_hour": 0.17 (default: on-demand × share)}, …],
                    "interruption_rate_per_node_hour": 0.0, "shortfall_episodes_per_day": 0.0,
                    "shortfall_duration_s": 3600}
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
    fleet = raw.get("task_fleet")
    if not isinstance(core, dict):
        raise ClusterSpecError("needs a 'core' object {instance_type, nodes}")
    if fleet is not None and tasks is not None:
        raise ClusterSpecError("has both 'task_groups' and 'task_fleet': a cluster is one or the other")
    if fleet is None and (not isinstance(tasks, list) or not tasks):
        raise ClusterSpecError("needs a non-empty 'task_groups' list (or a 'task_fleet' object)")
    groups = [
        _from_entry(
            {"id": "ig-MASTER", "instance_type": "m5.xlarge", "market": "ON_DEMAND", "nodes": 1}, Role.MASTER
        ),
        _from_entry({"id": "ig-CORE", "market": "ON_DEMAND", **core}, Role.CORE),
    ]
    groups += fleet_markets(fleet) if fleet is not None else [_from_entry(t, Role.TASK) for t in tasks or ()]
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


_FLEET_KEYS = {
    "id",
    "name",
    "instance_types",
    "spot_timeout_s",
    "interruption_rate_per_node_hour",
    "shortfall_episodes_per_day",
    "shortfall_duration_s",
}
_FLEET_TYPE_KEYS = {"instance_type", "weighted_capacity", "spot_usd_per_hour", "memory_gib"}


def fleet_markets(e: Any) -> list[GroupSpec]:
    """A 'task_fleet' object as its two markets, each a group whose node is one capacity unit (as the policy
    sees a fleet, policy/fleet.py): memory per unit the smallest among the types (the default
    fleet_unit_memory; the simulation also delivers that much per unit), price per unit the dearest per unit
    among the types (spot: `spot_usd_per_hour`, default the on-demand price x the spot share, as for groups).
    The spot market's risk settings are the fleet's; `spot_timeout_s` (default 3600) is its
    SpotResizeSpecification timeout: units still waiting for spot capacity after it are no longer provisioned
    (EMR stops the resize's spot part) until the next ModifyInstanceFleet asks for them again."""
    if not isinstance(e, dict):
        raise ClusterSpecError("'task_fleet' must be an object")
    unknown = sorted(set(e) - _FLEET_KEYS)
    if unknown:
        raise ClusterSpecError(f"unknown key {unknown[0]!r} in 'task_fleet'")
    fid = str(e.get("id", "if-REPLAYTASK"))
    if not fid.startswith("if-"):
        raise ClusterSpecError(f"a fleet id starts with 'if-', got {fid!r}")
    raw_types = e.get("instance_types")
    if not isinstance(raw_types, list) or not raw_types:
        raise ClusterSpecError("'task_fleet' needs a non-empty 'instance_types' list")
    types, spot = [], {}
    for t in raw_types:
        ft, usd = _fleet_type(t)
        types.append(ft)
        spot[ft.instance_type] = usd
    memory = unit_memory_gib(tuple(types), "smallest")
    name = str(e.get("name", "task-fleet"))
    on_demand = {t.instance_type: t.on_demand_usd_per_hour for t in types}
    vcpu = max(1, min(t.vcpu // t.weighted_capacity for t in types))
    return [
        GroupSpec(
            id=market_group_id(fid, Market.SPOT),
            name=f"{name} spot units",
            role=Role.TASK,
            market=Market.SPOT,
            instance_type=UNITS_TYPE,
            memory_gib=memory,
            vcpu=vcpu,
            usd_per_hour=round(unit_usd_per_hour(tuple(types), spot), 6),
            interruption_rate_per_node_hour=_num(e, "interruption_rate_per_node_hour", 0.0, lo=0.0),
            shortfall_episodes_per_day=_num(e, "shortfall_episodes_per_day", 0.0, lo=0.0),
            shortfall_duration_s=_num(e, "shortfall_duration_s", 3600.0, lo=0.0),
            fleet_id=fid,
            spot_timeout_s=_num(e, "spot_timeout_s", 3600.0, lo=0.0),
            fleet_types=tuple(types),
        ),
        GroupSpec(
            id=market_group_id(fid, Market.ON_DEMAND),
            name=f"{name} on-demand units",
            role=Role.TASK,
            market=Market.ON_DEMAND,
            instance_type=UNITS_TYPE,
            memory_gib=memory,
            vcpu=vcpu,
            usd_per_hour=round(unit_usd_per_hour(tuple(types), on_demand), 6),
            fleet_id=fid,
            fleet_types=tuple(types),
        ),
    ]


def _fleet_type(t: Any) -> tuple[FleetInstanceType, float]:
    """One 'instance_types' entry: the type (memory and on-demand price from the bundled table unless given)
    and its spot price per instance-hour."""
    if not isinstance(t, dict) or not isinstance(t.get("instance_type"), str):
        raise ClusterSpecError("each 'task_fleet' instance type needs 'instance_type'")
    unknown = sorted(set(t) - _FLEET_TYPE_KEYS)
    if unknown:
        raise ClusterSpecError(f"unknown key {unknown[0]!r} in a 'task_fleet' instance type")
    itype = t["instance_type"]
    table = instance_data.instance_spec(itype)
    if table is None:
        raise ClusterSpecError(f"unknown instance type {itype!r} (not in the bundled instance table)")
    weight = int(_num(t, "weighted_capacity", 1, lo=1))
    share = SPOT_SHARE_OF_ON_DEMAND.get(itype, DEFAULT_SPOT_SHARE)
    spot = _num(t, "spot_usd_per_hour", round(table.on_demand_usd_per_hour * share, 5), lo=0.0)
    memory = _num(t, "memory_gib", table.memory_gib, lo=0.5)
    return FleetInstanceType(itype, weight, memory, table.vcpu, table.on_demand_usd_per_hour), spot
