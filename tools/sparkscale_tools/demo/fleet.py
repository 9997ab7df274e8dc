"""`sparkscale demo --fleet`: the demo's cluster as an instance-fleet cluster, on a moto that has no fleets.

moto 5.2.5 accepts RunJobFlow's `Instances.InstanceFleets` and ignores it, and implements neither
ListInstanceFleets nor ModifyInstanceFleet. `FleetOverlay` fills that in on the moto server's EMR responses
(in process, as aws.py's overlays do; undone by `close`), for the demo's cluster only:

- DescribeCluster reports `InstanceCollectionType: INSTANCE_FLEET`;
- ListInstanceGroups fails as EMR fails on a fleet cluster (InvalidRequestException,
  API_DOES_NOT_SUPPORT_INSTANCE_FLEET_CLUSTERS);
- ListInstanceFleets answers the MASTER, CORE and TASK fleets: the TASK fleet's instance types with their
  WeightedCapacity, its spot resize timeout, its target units (what ModifyInstanceFleet set) and its
  provisioned units and state (what the demo's model shows: units come after the provisioning delay, spot
  units may not come at all for a while);
- ModifyInstanceFleet records each request (cluster id, fleet, both targets, the fleet's state then) and sets
  the targets; the demo's model follows them.

Every response the overlay makes is checked against botocore's EMR service model (`check_output`: the
operation's output shape, with its enums) and every ModifyInstanceFleet request against the input shape, so
the overlay cannot drift from the real API. What is checked against what: docs/instance-fleets.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from sparkscale import names
from sparkscale.policy.fleet import market_group_id, split_market_group_id
from sparkscale.policy.model import Market, Role

from sparkscale_tools.demo.template import ACCOUNT_ID, REGION, DemoError
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec

log = logging.getLogger(__name__)

# The demo's fleet cluster (the replay's cluster format, `task_fleet`): a unit is 128 GiB of instance memory,
# as one node of the group demo's TASK types, so the default bounds (max_task_nodes 20) mean the same memory.
# Spot capacity is withheld now and then (the replay's shortfall model: Poisson episodes, reproducible with
# the seed): EMR's spot resize timeout (5 minutes, its minimum) then ends the resize without those units, and
# the scaler buys them on demand.
DEFAULT_FLEET_CLUSTER: Final[Mapping[str, Any]] = {
    "name": "demo-fleet",
    "core": {"instance_type": "r5.2xlarge", "nodes": 2},
    "task_fleet": {
        "id": "if-DEMOTASKFLEET",
        "name": "task-fleet",
        "spot_timeout_s": 300,
        "instance_types": [
            {"instance_type": "r6g.4xlarge", "weighted_capacity": 1},
            {"instance_type": "r5.4xlarge", "weighted_capacity": 1},
            {"instance_type": "r6g.8xlarge", "weighted_capacity": 2},
        ],
        "shortfall_episodes_per_day": 6.0,
        "shortfall_duration_s": 3600.0,
    },
}
# MASTER and CORE are fleets too on a fleet cluster (a cluster is groups or fleets, never both).
FIXED_FLEET_IDS: Final = {Role.MASTER: "if-DEMOMASTERFLT", Role.CORE: "if-DEMOCOREFLEET"}
FLEET_GROUPS_ERROR: Final = (
    "Instance fleets and instance groups are mutually exclusive. The EMR cluster specified in the request "
    "uses instance fleets. The ListInstanceGroups operation does not support clusters that use instance "
    "fleets. Use the ListInstanceFleets operation instead."
)  # EMR's message (turbot/steampipe-plugin-aws issue 1222 quotes it with its ErrorCode)
FLEET_GROUPS_ERROR_CODE: Final = "API_DOES_NOT_SUPPORT_INSTANCE_FLEET_CLUSTERS"
SPOT_TIMEOUT_SEVERITY: Final = "WARNING"


def is_fleet_cluster(spec: ClusterSpec) -> bool:
    return any(g.fleet_id is not None for g in spec.task_groups)


def task_fleet_id(spec: ClusterSpec) -> str:
    ids = {g.fleet_id for g in spec.task_groups if g.fleet_id is not None}
    if len(ids) != 1 or len(spec.task_groups) != 2:
        raise DemoError("a fleet cluster has one TASK fleet (its SPOT and ON_DEMAND markets)")
    return ids.pop() or ""


def with_fleet_ids(spec: ClusterSpec) -> ClusterSpec:
    """The spec with its MASTER and CORE groups named as fleets (FIXED_FLEET_IDS)."""
    groups = tuple(
        replace(g, id=FIXED_FLEET_IDS[g.role]) if g.role in FIXED_FLEET_IDS else g for g in spec.groups
    )
    return replace(spec, groups=groups)


def spot_price_table(spec: ClusterSpec) -> dict[str, float]:
    """Instance type -> spot USD per hour for the TASK fleet's types: the fleet's spot unit price × the
    type's WeightedCapacity. The scaler prices a spot unit at the dearest per unit among the types
    (adapters/prices.py), which is then the replay's spot unit price: the demo and the replay's baselines buy
    at the same price."""
    out: dict[str, float] = {}
    for g in spec.task_groups:
        if g.market is Market.SPOT and g.fleet_id is not None:
            for t in g.fleet_types:
                out[t.instance_type] = round(g.usd_per_hour * t.weighted_capacity, 6)
    return out


# --- the API model ----------------------------------------------------------------------------------------
def _emr_model() -> Any:
    import botocore.session  # noqa: PLC0415

    return botocore.session.get_session().get_service_model("emr")


def _enum_errors(shape: Any, value: Any, path: str) -> list[str]:
    """Enum values botocore's ParamValidator does not check."""
    out: list[str] = []
    kind = shape.type_name
    if kind == "string" and shape.enum and isinstance(value, str) and value not in shape.enum:
        out.append(f"{path}: {value!r} is not one of {shape.enum}")
    elif kind == "structure" and isinstance(value, Mapping):
        for k, v in value.items():
            if k in shape.members:
                out += _enum_errors(shape.members[k], v, f"{path}.{k}")
    elif kind == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            out += _enum_errors(shape.member, v, f"{path}[{i}]")
    return out


def _check(shape: Any, value: Mapping[str, Any], what: str) -> None:
    from botocore.validate import ParamValidator  # noqa: PLC0415

    report = ParamValidator().validate(value, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    errors += _enum_errors(shape, value, what)
    if errors:
        raise DemoError(f"the fleet overlay's {what} does not match the EMR API model: {'; '.join(errors)}")


def check_output(operation: str, value: Mapping[str, Any]) -> None:
    """Raise DemoError unless `value` is a valid `operation` response per botocore's EMR model."""
    _check(_emr_model().operation_model(operation).output_shape, value, f"{operation} response")


def check_input(operation: str, value: Mapping[str, Any]) -> None:
    """Raise DemoError unless `value` is a valid `operation` request per botocore's EMR model."""
    _check(_emr_model().operation_model(operation).input_shape, value, f"{operation} request")


# --- the cluster --------------------------------------------------------------------------------------------
def spot_timeout_minutes(spot: GroupSpec) -> int:
    """The spot market's timeout as SpotResizeSpecification.TimeoutDurationMinutes (EMR's minimum is 5)."""
    return max(5, round((spot.spot_timeout_s or 3600) / 60))


def _fleet_config(g: GroupSpec) -> dict[str, Any]:
    """RunJobFlow's InstanceFleetConfig of a MASTER or CORE group (on-demand units)."""
    return {
        "Name": g.name,
        "InstanceFleetType": g.role.value,
        "TargetOnDemandCapacity": g.nodes,
        "InstanceTypeConfigs": [{"InstanceType": g.instance_type, "WeightedCapacity": 1}],
    }


def create_fleet_cluster(emr: Any, spec: ClusterSpec, task_units: Mapping[str, int]) -> ClusterSpec:
    """RunJobFlow with Instances.InstanceFleets (MASTER, CORE and the TASK fleet, which starts at
    `task_units` by market group id). moto ignores the fleets; the overlay then shows them. Returns the spec
    renamed to moto's cluster id."""
    spec = with_fleet_ids(spec)
    fid = task_fleet_id(spec)
    spot = next(g for g in spec.task_groups if g.market is Market.SPOT)
    timeout_min = spot_timeout_minutes(spot)
    fleets = [_fleet_config(g) for g in spec.groups if g.role is not Role.TASK]
    fleets.append(
        {
            "Name": spot.name.removesuffix(" spot units"),
            "InstanceFleetType": "TASK",
            "TargetOnDemandCapacity": int(task_units.get(market_group_id(fid, Market.ON_DEMAND), 0)),
            "TargetSpotCapacity": int(task_units.get(market_group_id(fid, Market.SPOT), 0)),
            "InstanceTypeConfigs": [
                {"InstanceType": t.instance_type, "WeightedCapacity": t.weighted_capacity}
                for t in spot.fleet_types
            ],
            "ResizeSpecifications": {
                "SpotResizeSpecification": {
                    "TimeoutDurationMinutes": timeout_min,
                    "AllocationStrategy": "price-capacity-optimized",
                },
            },
        }
    )
    resp = emr.run_job_flow(
        Name=f"sparkscale-{spec.name}",
        ReleaseLabel="emr-7.5.0",
        Applications=[{"Name": "Spark"}, {"Name": "Hadoop"}],
        Instances={
            "InstanceFleets": fleets,
            "KeepJobFlowAliveWhenNoSteps": True,
            "Placement": {"AvailabilityZones": [spec.availability_zone]},
        },
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        VisibleToAllUsers=True,
    )
    return replace(spec, cluster_id=str(resp["JobFlowId"]))


@dataclass
class _Fleet:
    id: str
    name: str
    role: Role
    types: list[dict[str, Any]]
    target_on_demand: int
    target_spot: int = 0
    provisioned_on_demand: int = 0
    provisioned_spot: int = 0
    spot_timeout_min: int | None = None
    state: dict[Market, str] = field(default_factory=dict)  # market -> the model's group state

    @property
    def status(self) -> str:
        return "RESIZING" if "RESIZING" in self.state.values() else "RUNNING"


@dataclass(frozen=True)
class FleetRequest:
    """One ModifyInstanceFleet the moto server received."""

    at: datetime | None  # the demo's simulated time (None before the run)
    cluster_id: str | None
    fleet_id: str
    on_demand: int | None
    spot: int | None
    fleet_state: str  # the fleet's state when it came
    role: str  # the fleet's type ("" for an unknown fleet, which is refused)


class FleetOverlay:
    """ListInstanceFleets / ModifyInstanceFleet (and DescribeCluster's collection type, and
    ListInstanceGroups' failure) for the demo's fleet cluster on the moto server (see the module docstring).
    `show` is EmrOverlay's: the model's provisioned units and state of one market group. `available` is False
    when moto's internals are not what this was written against: then the demo cannot run a fleet cluster."""

    def __init__(self, spec: ClusterSpec, *, created: datetime) -> None:
        self.cluster_id = spec.cluster_id
        self.requests: list[FleetRequest] = []
        self.clock: Callable[[], datetime] | None = None
        self._created = created
        self._fleets: dict[str, _Fleet] = {}
        for g in spec.groups:
            if g.role is not Role.TASK:
                self._fleets[g.id] = _Fleet(
                    g.id,
                    g.name,
                    g.role,
                    [{"InstanceType": g.instance_type, "WeightedCapacity": 1}],
                    target_on_demand=g.nodes,
                    provisioned_on_demand=g.nodes,
                )
        fid = task_fleet_id(spec)
        spot = next(g for g in spec.task_groups if g.market is Market.SPOT)
        self.task_fleet_id = fid
        self._fleets[fid] = _Fleet(
            fid,
            spot.name.removesuffix(" spot units"),
            Role.TASK,
            [
                {"InstanceType": t.instance_type, "WeightedCapacity": t.weighted_capacity}
                for t in spot.fleet_types
            ],
            target_on_demand=0,
            spot_timeout_min=spot_timeout_minutes(spot),
        )
        self.available = False
        self._patched: dict[str, Any] = {}
        self._cluster: Any = None
        self._install()

    # --- what the model shows ---------------------------------------------------------------------------
    def start(self, units: Mapping[str, int]) -> None:
        """The TASK fleet's targets and provisioned units at the start (by market group id)."""
        f = self._fleets[self.task_fleet_id]
        f.target_on_demand = f.provisioned_on_demand = int(
            units.get(market_group_id(f.id, Market.ON_DEMAND), 0)
        )
        f.target_spot = f.provisioned_spot = int(units.get(market_group_id(f.id, Market.SPOT), 0))

    def show(self, group_id: str, *, running: int, state: str) -> None:
        parsed = split_market_group_id(group_id)
        f = self._fleets.get(parsed[0]) if parsed else None
        if parsed is None or f is None:
            return
        if parsed[1] is Market.SPOT:
            f.provisioned_spot = running
        else:
            f.provisioned_on_demand = running
        f.state[parsed[1]] = state

    def targets(self) -> dict[str, int]:
        """The TASK fleet's target units by market group id (what ModifyInstanceFleet set)."""
        f = self._fleets[self.task_fleet_id]
        return {
            market_group_id(f.id, Market.SPOT): f.target_spot,
            market_group_id(f.id, Market.ON_DEMAND): f.target_on_demand,
        }

    # --- the API ----------------------------------------------------------------------------------------
    def list_instance_fleets(self) -> dict[str, Any]:
        """ListInstanceFleets' response for the demo cluster (checked against the API model)."""
        out = []
        for f in self._fleets.values():
            item: dict[str, Any] = {
                "Id": f.id,
                "Name": f.name,
                "Status": {
                    "State": f.status,
                    "StateChangeReason": {"Message": ""},
                    "Timeline": {"CreationDateTime": self._created, "ReadyDateTime": self._created},
                },
                "InstanceFleetType": f.role.value,
                "TargetOnDemandCapacity": f.target_on_demand,
                "TargetSpotCapacity": f.target_spot,
                "ProvisionedOnDemandCapacity": f.provisioned_on_demand,
                "ProvisionedSpotCapacity": f.provisioned_spot,
                "InstanceTypeSpecifications": list(f.types),
            }
            if f.spot_timeout_min is not None:
                item["ResizeSpecifications"] = {
                    "SpotResizeSpecification": {
                        "TimeoutDurationMinutes": f.spot_timeout_min,
                        "AllocationStrategy": "price-capacity-optimized",
                    }
                }
            out.append(item)
        response = {"InstanceFleets": out}
        check_output("ListInstanceFleets", response)
        return response

    def modify_instance_fleet(self, request: Mapping[str, Any]) -> None:
        """Record one ModifyInstanceFleet and set the fleet's targets. Raises ValueError (an
        InvalidRequestException on the wire) for a fleet that is not one of the cluster's; EMR would queue a
        request for a RESIZING fleet behind the running resize (the scaler sends none then: the record keeps
        the state to show it)."""
        check_input("ModifyInstanceFleet", request)
        spec = request.get("InstanceFleet") or {}
        fid = str(spec.get("InstanceFleetId", ""))
        f = self._fleets.get(fid)
        od, spot = spec.get("TargetOnDemandCapacity"), spec.get("TargetSpotCapacity")
        self.requests.append(
            FleetRequest(
                at=self.clock() if self.clock is not None else None,
                cluster_id=request.get("ClusterId"),
                fleet_id=fid,
                on_demand=od,
                spot=spot,
                fleet_state=f.status if f else "",
                role=f.role.value if f else "",
            )
        )
        if f is None or request.get("ClusterId") != self.cluster_id:
            raise ValueError(f"Instance fleet {fid} is not a fleet of cluster {request.get('ClusterId')}")
        if od is not None:
            f.target_on_demand = int(od)
        if spot is not None:
            f.target_spot = int(spot)

    # --- moto ---------------------------------------------------------------------------------------------
    def _install(self) -> None:
        try:
            from moto.core.responses import ActionResult, EmptyResult  # noqa: PLC0415
            from moto.emr.exceptions import InvalidRequestException  # noqa: PLC0415
            from moto.emr.models import emr_backends  # noqa: PLC0415
            from moto.emr.responses import ElasticMapReduceResponse as Responses  # noqa: PLC0415

            cluster: Any = emr_backends[ACCOUNT_ID][REGION].clusters[self.cluster_id]
            original_groups = Responses.__dict__["list_instance_groups"]
        except (ImportError, KeyError, AttributeError) as exc:
            log.warning("moto EMR internals not as expected (%s): no fleet cluster", exc)
            return
        check_output(
            "DescribeCluster",
            {"Cluster": {"Id": self.cluster_id, "InstanceCollectionType": "INSTANCE_FLEET"}},
        )
        overlay = self

        class FleetClusterOnly(InvalidRequestException):
            """EMR's answer to ListInstanceGroups on a fleet cluster."""

            def __init__(self) -> None:
                super().__init__(FLEET_GROUPS_ERROR)
                self.error_code = FLEET_GROUPS_ERROR_CODE

        def ours(resp: Any) -> bool:
            return bool(resp._get_param("ClusterId") == overlay.cluster_id)

        def list_instance_groups(self: Any) -> Any:
            if ours(self):
                raise FleetClusterOnly()
            return original_groups(self)

        def list_instance_fleets(self: Any) -> Any:
            if not ours(self):
                raise InvalidRequestException(f"Cluster id '{self._get_param('ClusterId')}' is not valid.")
            return ActionResult(overlay.list_instance_fleets())

        def modify_instance_fleet(self: Any) -> Any:
            request = {k: v for k in ("ClusterId", "InstanceFleet") if (v := self._get_param(k)) is not None}
            try:
                overlay.modify_instance_fleet(_plain(request))
            except (ValueError, DemoError) as exc:
                raise InvalidRequestException(str(exc)) from None
            return EmptyResult()

        self._patched = {
            "list_instance_groups": original_groups,
            "list_instance_fleets": Responses.__dict__.get("list_instance_fleets"),
            "modify_instance_fleet": Responses.__dict__.get("modify_instance_fleet"),
        }
        Responses.list_instance_groups = list_instance_groups  # type: ignore[method-assign]
        Responses.list_instance_fleets = list_instance_fleets  # type: ignore[attr-defined]
        Responses.modify_instance_fleet = modify_instance_fleet  # type: ignore[attr-defined]
        cluster.instance_collection_type = "INSTANCE_FLEET"  # DescribeCluster's InstanceCollectionType
        self._cluster = cluster
        self._responses = Responses
        self.available = True

    def close(self) -> None:
        """Undo every patch (moto's own responses again)."""
        if not self.available:
            return
        for name, original in self._patched.items():
            if original is None:
                with contextlib.suppress(AttributeError):
                    delattr(self._responses, name)
            else:
                setattr(self._responses, name, original)
        with contextlib.suppress(AttributeError):
            del self._cluster.instance_collection_type
        self._patched = {}
        self.available = False


def _plain(value: Any) -> Any:
    """moto's parsed parameters (XFormedDict: snake_case keys, the request's own in `original_dict`) as plain
    dicts and lists with the API's member names."""
    if hasattr(value, "original_dict"):
        value = value.original_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@contextlib.contextmanager
def fleet_overlay(spec: ClusterSpec, *, created: datetime) -> Iterator[FleetOverlay]:
    overlay = FleetOverlay(spec, created=created)
    try:
        yield overlay
    finally:
        overlay.close()


# --- EMR's event ----------------------------------------------------------------------------------------
def spot_timeout_event(
    *, cluster_id: str, cluster_name: str, fleet_id: str, at: datetime, event_id: str, types: list[str]
) -> dict[str, Any]:
    """The "EMR Instance Fleet Resize" event EMR sends when a resize's spot part times out, in the shape of
    tests/fixtures/aws-samples/eventbridge/EMR_Instance_Fleet_Resize_spot_timeout.json (constructed: no real
    sample was found; the fields are those the EMR Management Guide's example Lambda reads)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": names.DETAIL_EMR_FLEET_RESIZE,
        "source": names.EVENT_SOURCE_EMR,
        "account": ACCOUNT_ID,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": {
            "severity": SPOT_TIMEOUT_SEVERITY,
            "clusterId": cluster_id,
            "instanceFleetId": fleet_id,
            "instanceFleetType": "TASK",
            "eventCode": names.EMR_FLEET_SPOT_TIMEOUT_CODE,
            "message": f"The resize of instance fleet {fleet_id} in Amazon EMR cluster {cluster_id} "
            f"({cluster_name}) stopped provisioning Spot capacity after the Spot resize timeout: Amazon EC2 "
            f"has insufficient Spot capacity for instance types [{', '.join(types)}].",
        },
    }
