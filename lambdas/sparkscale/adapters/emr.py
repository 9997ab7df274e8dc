"""EMR: read a cluster (DescribeCluster + ListInstanceGroups) and its TASK instances (ListInstances), resize
TASK groups (ModifyInstanceGroups, with ShrinkPolicy.InstanceResizePolicy when the caller chose instances).
A cluster with instance fleets is read and resized through emr_fleet.py (ListInstanceFleets,
ModifyInstanceFleet on the TASK fleet).

Clients are injected (boto3 EMR clients built with `aws.boto_config()`); every botocore error becomes a typed
error (aws_errors.translate). Memory and vCPU per node come from the bundled instance table
(instance_data.py); the node-hour price is the on-demand price from the same table, which a PriceSource
replaces with the spot price for SPOT groups (usecases.scale.run_once does that).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters import emr_fleet, instance_data
from sparkscale.adapters.aws_errors import translate
from sparkscale.adapters.emr_fleet import enum_or_default
from sparkscale.errors import ClusterGone, GroupBusy, RefusedChange
from sparkscale.policy.fleet import InstanceFleet, market_groups, split_market_group_id
from sparkscale.policy.model import (
    Cluster,
    ClusterState,
    GroupStatus,
    GroupTarget,
    InstanceGroup,
    Market,
    Role,
)
from sparkscale.policy.node_choice import ClusterInstance, InstanceShrink

log = logging.getLogger(__name__)

GONE_STATES: Final = frozenset({"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"})
# A group in one of these states accepts no ModifyInstanceGroups now (EMR rejects it, or it is mid-change).
# RESIZING is not one of them: EMR takes a new count while a resize is in progress and the new count overrides
# the previous request ("Interrupting a resize", EMR Management Guide), which the policy relies on
# (policy.constraints.RESIZABLE_STATUSES); the two sets must stay complementary for TASK groups.
BUSY_STATES: Final = frozenset(
    {
        GroupStatus.PROVISIONING,
        GroupStatus.BOOTSTRAPPING,
        GroupStatus.RECONFIGURING,
    }
)
_MAX_PAGES: Final = 50  # a guard against a paginator that never ends; a cluster has at most 50 groups
_MAX_INSTANCE_PAGES: Final = 200  # ListInstances pages hold 50 instances: 10,000 nodes
_LIVE_INSTANCE_STATES: Final = ("AWAITING_FULFILLMENT", "PROVISIONING", "BOOTSTRAPPING", "RUNNING")


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return None


def group_from_api(raw: Mapping[str, Any]) -> InstanceGroup:
    """One element of ListInstanceGroups' InstanceGroups (the same shape as DescribeCluster's) as a model."""
    itype = str(raw.get("InstanceType", ""))
    spec = instance_data.instance_spec(itype)
    if spec is None:
        log.warning("instance type %r is not in the bundled table: memory, vCPU and price taken as 0", itype)
    status = raw.get("Status", {}) or {}
    timeline = status.get("Timeline", {}) or {}
    return InstanceGroup(
        id=str(raw["Id"]),
        name=str(raw.get("Name") or raw["Id"]),
        role=enum_or_default(raw.get("InstanceGroupType"), Role, "instance group type", Role.TASK),
        market=enum_or_default(raw.get("Market", "ON_DEMAND"), Market, "market", Market.ON_DEMAND),
        instance_type=itype,
        memory_gib=spec.memory_gib if spec else 0.0,
        vcpu=spec.vcpu if spec else 0,
        requested=int(raw.get("RequestedInstanceCount", 0) or 0),
        running=int(raw.get("RunningInstanceCount", 0) or 0),
        status=enum_or_default(
            status.get("State", "RUNNING"), GroupStatus, "instance group state", GroupStatus.RUNNING
        ),
        usd_per_hour=spec.on_demand_usd_per_hour if spec else 0.0,
        # EMR gives no "entered this state at": only for a group still PROVISIONING is creation that moment
        status_since=_aware(timeline.get("CreationDateTime"))
        if status.get("State") == "PROVISIONING"
        else None,
    )


def _instance_from_api(raw: Mapping[str, Any]) -> ClusterInstance:
    """One element of ListInstances' Instances (an instance still awaiting fulfilment has no EC2 id yet)."""
    return ClusterInstance(
        instance_id=str(raw.get("Ec2InstanceId") or ""),
        group_id=str(raw.get("InstanceGroupId") or ""),
        state=str((raw.get("Status") or {}).get("State") or ""),
        private_dns=str(raw.get("PrivateDnsName") or ""),
        private_ip=str(raw.get("PrivateIpAddress") or ""),
    )


def shrink_policy(shrink: InstanceShrink) -> dict[str, Any]:
    """ModifyInstanceGroups' ShrinkPolicy for one group: InstanceResizePolicy with the chosen EC2 ids."""
    policy: dict[str, Any] = {}
    if shrink.protect:
        policy["InstancesToProtect"] = list(shrink.protect)
    if shrink.terminate:
        policy["InstancesToTerminate"] = list(shrink.terminate)
        if shrink.termination_timeout_s is not None:
            policy["InstanceTerminationTimeout"] = int(shrink.termination_timeout_s)
    return {"InstanceResizePolicy": policy}


class EmrClusterReader:
    """ports.ClusterReader over DescribeCluster + ListInstanceGroups (paginated), or ListInstanceFleets for a
    cluster with instance fleets (each fleet market as a group of one-unit nodes: policy/fleet.py)."""

    def __init__(self, emr: Any, *, fleet_unit_memory: str = "smallest") -> None:
        self._emr = emr
        self._unit_memory = fleet_unit_memory

    def read_cluster(self, cluster_id: str) -> Cluster:
        try:
            raw = self._emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "DescribeCluster") from exc
        status = raw.get("Status", {}) or {}
        state = str(status.get("State", ""))
        if state in GONE_STATES:
            why = (status.get("StateChangeReason") or {}).get("Message") or ""
            raise ClusterGone(f"cluster {cluster_id} is {state}" + (f": {why}" if why else ""), code=state)
        fleets: tuple[InstanceFleet, ...] = ()
        if raw.get("InstanceCollectionType") == "INSTANCE_FLEET":  # ListInstanceGroups fails on those
            fleets = emr_fleet.read_fleets(self._emr, cluster_id)
            groups = tuple(g for f in fleets for g in market_groups(f, unit_memory=self._unit_memory))
        else:
            groups = tuple(group_from_api(g) for g in self._list_groups(cluster_id))
        attrs = raw.get("Ec2InstanceAttributes") or {}
        return Cluster(
            id=str(raw.get("Id", cluster_id)),
            name=str(raw.get("Name", "")),
            state=enum_or_default(state, ClusterState, "cluster state", ClusterState.STARTING),
            groups=groups,
            availability_zone=attrs.get("Ec2AvailabilityZone") or None,
            fleets=fleets,
        )

    def list_groups(self, cluster_id: str) -> list[InstanceGroup]:
        """Every instance group of the cluster (ListInstanceGroups, all pages)."""
        return [group_from_api(g) for g in self._list_groups(cluster_id)]

    def _list_groups(self, cluster_id: str) -> Iterator[Mapping[str, Any]]:
        try:
            pages = self._emr.get_paginator("list_instance_groups").paginate(
                ClusterId=cluster_id, PaginationConfig={"MaxItems": _MAX_PAGES * 50}
            )
            for n, page in enumerate(pages):
                if n >= _MAX_PAGES:
                    break
                yield from page.get("InstanceGroups", [])
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ListInstanceGroups") from exc

    def list_instances(self, cluster_id: str) -> tuple[ClusterInstance, ...]:
        """ports.InstanceLister: the cluster's TASK instances that are not terminated (ListInstances, all
        pages), with the host names the ResourceManager knows them by (PrivateDnsName, PrivateIpAddress)."""
        out: list[ClusterInstance] = []
        try:
            pages = self._emr.get_paginator("list_instances").paginate(
                ClusterId=cluster_id,
                InstanceGroupTypes=["TASK"],
                InstanceStates=list(_LIVE_INSTANCE_STATES),
                PaginationConfig={"MaxItems": _MAX_INSTANCE_PAGES * 50},
            )
            for n, page in enumerate(pages):
                if n >= _MAX_INSTANCE_PAGES:
                    break
                out.extend(_instance_from_api(raw) for raw in page.get("Instances", []))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ListInstances") from exc
        return tuple(i for i in out if i.instance_id and i.group_id)


def _modify_config(change: GroupTarget, shrink: InstanceShrink | None) -> dict[str, Any]:
    config: dict[str, Any] = {"InstanceGroupId": change.group_id, "InstanceCount": int(change.target)}
    if shrink is not None and change.target < change.current and (shrink.protect or shrink.terminate):
        config["ShrinkPolicy"] = shrink_policy(shrink)
    return config


class EmrCapacityWriter:
    """ports.CapacityWriter: ModifyInstanceGroups on TASK groups only, all changes in one atomic call.

    Before calling EMR it lists the cluster's groups (one ListInstanceGroups) and refuses, with RefusedChange,
    any change to a group that is not a TASK group of this cluster, or a negative count; a group in a
    transitional state (RECONFIGURING, PROVISIONING, BOOTSTRAPPING) raises GroupBusy; a RESIZING one takes the
    new count. MASTER and CORE groups can therefore never be resized through this class, whatever the caller
    passes.
    """

    def __init__(self, emr: Any) -> None:
        self._emr = emr
        self._reader = EmrClusterReader(emr)
        self._lock = threading.Lock()
        self.calls = 0  # ModifyInstanceGroups calls made (for tests and logs)

    def resize(self, cluster_id: str, changes: Sequence[GroupTarget]) -> None:
        self.resize_shrinking(cluster_id, changes, {})

    def resize_shrinking(
        self, cluster_id: str, changes: Sequence[GroupTarget], shrinks: Mapping[str, InstanceShrink]
    ) -> None:
        """ports.ShrinkingCapacityWriter: `resize`, and a group that shrinks and has an InstanceShrink gets
        its ShrinkPolicy (the instances to protect and to terminate)."""
        wanted = [c for c in changes if c.changed]
        fleets = emr_fleet.fleet_changes(wanted)
        if fleets:  # a fleet cluster has no instance group: its changes are all fleet markets
            with self._lock:
                self.calls += 1
            emr_fleet.modify_task_fleet(self._emr, cluster_id, fleets)
            wanted = [c for c in wanted if split_market_group_id(c.group_id) is None]
        if not wanted:
            return
        groups = {g.id: g for g in self._reader.list_groups(cluster_id)}
        for c in wanted:
            g = groups.get(c.group_id)
            if g is None:
                raise RefusedChange(f"instance group {c.group_id} is not a group of cluster {cluster_id}")
            if g.role is not Role.TASK:
                raise RefusedChange(
                    f"refusing to resize {g.role.value} group {g.id}: only TASK groups change"
                )
            if c.target < 0:
                raise RefusedChange(f"refusing a negative count {c.target} for group {g.id}")
            if g.status in BUSY_STATES:
                raise GroupBusy(f"instance group {g.id} is {g.status.value}", code=g.status.value)
        request = [_modify_config(c, shrinks.get(c.group_id)) for c in wanted]
        try:
            with self._lock:
                self.calls += 1
            self._emr.modify_instance_groups(ClusterId=cluster_id, InstanceGroups=request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ModifyInstanceGroups") from exc
        log.info("ModifyInstanceGroups %s: %s", cluster_id, request)
