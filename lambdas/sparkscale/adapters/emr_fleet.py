"""EMR instance fleets: read them (ListInstanceFleets), set the TASK fleet's targets (ModifyInstanceFleet).

A cluster is either instance groups or instance fleets (DescribeCluster's InstanceCollectionType);
ListInstanceGroups fails on a fleet cluster. EmrClusterReader calls `read_fleets` for a fleet cluster, and the
policy sees each fleet's markets as groups of one-unit nodes (policy/fleet.py). EmrCapacityWriter hands the
changes to fleet markets to `modify_task_fleet`.

What EMR does with a new target while a fleet is RESIZING: it does not replace the running resize; it
processes the resize operations of a fleet one after another, and the next starts when the current one
completes or its provisioning timeout expires ("Spot provisioning timeout - continuing resize", EMR
Management Guide, "Responding to Amazon EMR cluster instance fleet resize timeout events"). A target sent
then would only queue behind a resize whose outcome is not known yet, so a fleet that is RESIZING (or
PROVISIONING, BOOTSTRAPPING, RECONFIGURING) raises GroupBusy, as an instance group in a transitional state
does: the decision is recorded as not applied and the next evaluation decides again from what EMR delivered.
A SUSPENDED fleet ("a resize operation could not complete... instances can't be added or removed",
InstanceFleetStatus) raises GroupBusy too; the policy already gives it no new capacity.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters import instance_data
from sparkscale.adapters.aws_errors import translate
from sparkscale.errors import GroupBusy, RefusedChange
from sparkscale.policy.fleet import (
    FleetInstanceType,
    InstanceFleet,
    split_market_group_id,
)
from sparkscale.policy.model import GroupStatus, GroupTarget, Market, Role

log = logging.getLogger(__name__)

# A fleet in one of these states takes no new target now (see the module docstring).
FLEET_BUSY_STATES: Final = frozenset(
    {
        GroupStatus.PROVISIONING,
        GroupStatus.BOOTSTRAPPING,
        GroupStatus.RECONFIGURING,
        GroupStatus.RESIZING,
        GroupStatus.SUSPENDED,
    }
)
_MAX_PAGES: Final = 10  # a cluster has at most one MASTER, one CORE and one TASK fleet: one page


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def enum_or_default(value: Any, enum: type[Any], what: str, default: Any) -> Any:
    """EMR's value as `enum`, or `default` with a warning when EMR says something this code does not know
    (the instance-group reader in emr.py uses it too)."""
    try:
        return enum(str(value))
    except ValueError:
        log.warning("unknown EMR %s %r: treating it as %s", what, value, default.value)
        return default


def instance_type_from_api(raw: Mapping[str, Any]) -> FleetInstanceType:
    """One InstanceTypeSpecification, with the bundled table's memory, vCPU and on-demand price."""
    itype = str(raw.get("InstanceType", ""))
    spec = instance_data.instance_spec(itype)
    if spec is None:
        log.warning("instance type %r is not in the bundled table: memory, vCPU and price taken as 0", itype)
    return FleetInstanceType(
        instance_type=itype,
        weighted_capacity=max(1, _int(raw.get("WeightedCapacity", 1))),
        memory_gib=spec.memory_gib if spec else 0.0,
        vcpu=spec.vcpu if spec else 0,
        on_demand_usd_per_hour=spec.on_demand_usd_per_hour if spec else 0.0,
    )


def fleet_from_api(raw: Mapping[str, Any]) -> InstanceFleet:
    """One element of ListInstanceFleets' InstanceFleets as a model."""
    status = raw.get("Status", {}) or {}
    timeline = status.get("Timeline", {}) or {}
    resize = (raw.get("ResizeSpecifications") or {}).get("SpotResizeSpecification") or {}
    launch = (raw.get("LaunchSpecifications") or {}).get("SpotSpecification") or {}
    minutes = resize.get("TimeoutDurationMinutes")
    state = status.get("State", "RUNNING")
    return InstanceFleet(
        id=str(raw["Id"]),
        name=str(raw.get("Name") or raw["Id"]),
        role=enum_or_default(raw.get("InstanceFleetType"), Role, "instance fleet type", Role.TASK),
        status=enum_or_default(state, GroupStatus, "instance fleet state", GroupStatus.RUNNING),
        instance_types=tuple(instance_type_from_api(t) for t in raw.get("InstanceTypeSpecifications") or ()),
        target_on_demand=_int(raw.get("TargetOnDemandCapacity")),
        target_spot=_int(raw.get("TargetSpotCapacity")),
        provisioned_on_demand=_int(raw.get("ProvisionedOnDemandCapacity")),
        provisioned_spot=_int(raw.get("ProvisionedSpotCapacity")),
        spot_timeout_s=_int(minutes) * 60 if isinstance(minutes, int) else None,
        spot_allocation_strategy=resize.get("AllocationStrategy") or launch.get("AllocationStrategy") or None,
        # EMR gives no "entered this state at": only for a fleet still PROVISIONING is creation that moment
        status_since=_aware(timeline.get("CreationDateTime")) if state == "PROVISIONING" else None,
    )


def list_fleets(emr: Any, cluster_id: str) -> Iterator[Mapping[str, Any]]:
    """Every instance fleet of the cluster (ListInstanceFleets, all pages)."""
    try:
        pages = emr.get_paginator("list_instance_fleets").paginate(ClusterId=cluster_id)
        for n, page in enumerate(pages):
            if n >= _MAX_PAGES:
                break
            yield from page.get("InstanceFleets", [])
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "ListInstanceFleets") from exc


def read_fleets(emr: Any, cluster_id: str) -> tuple[InstanceFleet, ...]:
    return tuple(fleet_from_api(f) for f in list_fleets(emr, cluster_id))


def fleet_changes(changes: Sequence[GroupTarget]) -> dict[str, dict[Market, int]]:
    """fleet id -> {market: target units} of the changes to fleet markets (instance groups left out)."""
    out: dict[str, dict[Market, int]] = {}
    for c in changes:
        parsed = split_market_group_id(c.group_id)
        if parsed is not None:
            out.setdefault(parsed[0], {})[parsed[1]] = int(c.target)
    return out


def modify_task_fleet(emr: Any, cluster_id: str, wanted: Mapping[str, Mapping[Market, int]]) -> int:
    """ModifyInstanceFleet for each fleet in `wanted` (in practice the one TASK fleet), always with ClusterId
    and both targets (the unchanged market at its target as read). Lists the fleets first and refuses, with
    RefusedChange, a fleet that is not a TASK fleet of this cluster or a negative target; a busy fleet raises
    GroupBusy (see the module docstring). Returns the calls made."""
    if not wanted:
        return 0
    fleets = {f.id: f for f in read_fleets(emr, cluster_id)}
    requests = []
    for fid, targets in wanted.items():
        f = fleets.get(fid)
        if f is None:
            raise RefusedChange(f"instance fleet {fid} is not a fleet of cluster {cluster_id}")
        if f.role is not Role.TASK:
            raise RefusedChange(f"refusing to resize {f.role.value} fleet {fid}: only the TASK fleet changes")
        if any(t < 0 for t in targets.values()):
            raise RefusedChange(f"refusing a negative target {dict(targets)} for fleet {fid}")
        if f.status in FLEET_BUSY_STATES:
            raise GroupBusy(
                f"instance fleet {fid} is {f.status.value}"
                + (
                    ": EMR would queue a new target behind the resize in progress"
                    if f.status is GroupStatus.RESIZING
                    else ""
                ),
                code=f.status.value,
            )
        requests.append(
            {
                "InstanceFleetId": fid,
                "TargetOnDemandCapacity": int(targets.get(Market.ON_DEMAND, f.target_on_demand)),
                "TargetSpotCapacity": int(targets.get(Market.SPOT, f.target_spot)),
            }
        )
    for request in requests:
        try:
            emr.modify_instance_fleet(ClusterId=cluster_id, InstanceFleet=request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ModifyInstanceFleet") from exc
        log.info("ModifyInstanceFleet %s: %s", cluster_id, request)
    return len(requests)
