"""Instance fleets as the policy sees them: a TASK fleet is an offer of capacity units in two markets.

An instance fleet has no instance count: it has a target and a provisioned number of capacity units per market
(TargetSpotCapacity / ProvisionedSpotCapacity, TargetOnDemandCapacity / ProvisionedOnDemandCapacity), and a
list of instance types, each worth WeightedCapacity units. EMR's allocation strategy chooses which types (and
so how many instances) make up the units; sparkscale decides only how many units each market should have.

So each market of a fleet is shown to the policy as an InstanceGroup whose "node" is one capacity unit
(`market_groups`): requested = the market's target units, running = its provisioned units, memory_gib = the
memory of one unit, usd_per_hour = the price of one unit-hour, fleet_id = the fleet's id. Every step of the
policy (estimate, planner, bounds, steps, cooldowns, stabilization, budget, spot fallback, move back) then
works on units exactly as it works on nodes, and the same settings count units (min_task_nodes,
max_task_nodes, the steps, the per-group bounds of a market's id `if-…/SPOT`).

Memory of one unit (`unit_memory_gib`), chosen by the setting fleet_unit_memory:
- "smallest" (the default): the smallest memory per unit among the fleet's instance types, since EMR may
  deliver every unit from that type: the estimate never counts memory that may not come;
- "average": the total memory of one instance of each type over their total weighted capacity (the average
  memory per unit weighted by units, as if each type delivered the same number of instances).

Price of one unit-hour (`unit_usd_per_hour`): the highest price per unit among the fleet's types in that
market (spot prices for SPOT, on-demand prices for ON_DEMAND), so that the budget holds whichever types EMR's
allocation strategy picks. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from sparkscale.config import FLEET_UNIT_MEMORY_RULES, Config
from sparkscale.policy.model import Cluster, GroupStatus, InstanceGroup, Market, Role

UNIT_MEMORY_RULES: Final = FLEET_UNIT_MEMORY_RULES
UNITS_TYPE: Final = "units"  # the instance_type of a fleet market's group: a unit is no one instance type
_SEP: Final = "/"


@dataclass(frozen=True, slots=True)
class FleetInstanceType:
    """One InstanceTypeSpecification of a fleet, with the instance's memory and on-demand price."""

    instance_type: str
    weighted_capacity: int  # units one instance of this type counts for (WeightedCapacity, >= 1)
    memory_gib: float  # memory of one instance
    vcpu: int
    on_demand_usd_per_hour: float  # one instance-hour

    @property
    def memory_per_unit_gib(self) -> float:
        return self.memory_gib / max(1, self.weighted_capacity)


@dataclass(frozen=True, slots=True)
class InstanceFleet:
    """One instance fleet as ListInstanceFleets describes it (units, not instances)."""

    id: str  # if-…
    name: str
    role: Role
    status: GroupStatus  # InstanceFleetState (PROVISIONING, BOOTSTRAPPING, RUNNING, RESIZING, SUSPENDED, ...)
    instance_types: tuple[FleetInstanceType, ...]
    target_on_demand: int
    target_spot: int
    provisioned_on_demand: int
    provisioned_spot: int
    spot_timeout_s: int | None = None  # ResizeSpecifications.SpotResizeSpecification.TimeoutDurationMinutes
    spot_allocation_strategy: str | None = (
        None  # ResizeSpecifications (or LaunchSpecifications) spot strategy
    )
    status_since: datetime | None = None

    def target(self, market: Market) -> int:
        return self.target_spot if market is Market.SPOT else self.target_on_demand

    def provisioned(self, market: Market) -> int:
        return self.provisioned_spot if market is Market.SPOT else self.provisioned_on_demand


def market_group_id(fleet_id: str, market: Market) -> str:
    """The id of a fleet market's group: 'if-1ABC/SPOT', 'if-1ABC/ON_DEMAND'."""
    return f"{fleet_id}{_SEP}{market.value}"


def split_market_group_id(group_id: str) -> tuple[str, Market] | None:
    """(fleet id, market) of a fleet market's group id, or None for an instance group's id."""
    fleet_id, sep, market = group_id.rpartition(_SEP)
    if not sep or not fleet_id:
        return None
    try:
        return fleet_id, Market(market)
    except ValueError:
        return None


def unit_memory_gib(types: tuple[FleetInstanceType, ...], rule: str = "smallest") -> float:
    """Memory of one capacity unit (see the module docstring); 0 for a fleet without a known type."""
    known = [t for t in types if t.memory_gib > 0]
    if not known:
        return 0.0
    if rule == "average":
        return sum(t.memory_gib for t in known) / sum(max(1, t.weighted_capacity) for t in known)
    return min(t.memory_per_unit_gib for t in known)


def unit_usd_per_hour(types: tuple[FleetInstanceType, ...], usd_per_instance: Mapping[str, float]) -> float:
    """The highest price per unit-hour among the types that have a price in `usd_per_instance` (0: none)."""
    rates = [
        usd_per_instance[t.instance_type] / max(1, t.weighted_capacity)
        for t in types
        if t.instance_type in usd_per_instance
    ]
    return max(rates, default=0.0)


def on_demand_usd_per_unit(fleet: InstanceFleet) -> float:
    """The on-demand price per unit-hour (the highest among the fleet's types)."""
    return unit_usd_per_hour(
        fleet.instance_types, {t.instance_type: t.on_demand_usd_per_hour for t in fleet.instance_types}
    )


def market_groups(fleet: InstanceFleet, *, unit_memory: str = "smallest") -> tuple[InstanceGroup, ...]:
    """The fleet's two markets as groups of one-unit nodes, SPOT first (prices: on-demand per unit, which a
    PriceSource replaces with the spot price for the SPOT market)."""
    memory = unit_memory_gib(fleet.instance_types, unit_memory)
    usd = on_demand_usd_per_unit(fleet)
    vcpu = min((t.vcpu // max(1, t.weighted_capacity) for t in fleet.instance_types), default=0)
    return tuple(
        InstanceGroup(
            id=market_group_id(fleet.id, market),
            name=f"{fleet.name or fleet.id} {'spot' if market is Market.SPOT else 'on-demand'} units",
            role=fleet.role,
            market=market,
            instance_type=UNITS_TYPE,
            memory_gib=memory,
            vcpu=vcpu,
            requested=fleet.target(market),
            running=fleet.provisioned(market),
            status=fleet.status,
            usd_per_hour=usd,
            status_since=fleet.status_since,
            fleet_id=fleet.id,
        )
        for market in (Market.SPOT, Market.ON_DEMAND)
    )


def noun(g: InstanceGroup, n: int = 2) -> str:
    """'node(s)' for an instance group, 'unit(s)' for a fleet market."""
    word = "unit" if g.fleet_id is not None else "node"
    return word if n == 1 else word + "s"


def policy_config(config: Config, cluster: Cluster) -> Config:
    """The settings `decide` applies to `cluster`: for a fleet cluster, no diversification share between
    instance types (EMR's allocation strategy picks the types within the fleet; both markets are one "type",
    units), else `config` itself."""
    if cluster.fleets and config.max_share_per_instance_type < 1.0:
        return replace(config, max_share_per_instance_type=1.0)
    return config
