"""Instance fleets through the EMR and EC2 adapters. moto implements no fleet call, so every request goes
through botocore's Stubber, which checks it against the real EMR / EC2 API model; the responses are the AWS
CLI's samples (tests/fixtures/aws-samples/emr-cli, see PROVENANCE.md) plus a TASK fleet in the same shape."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sparkscale.adapters.emr import EmrCapacityWriter, EmrClusterReader
from sparkscale.adapters.prices import PriceOrigin, SpotPriceSource
from sparkscale.errors import GroupBusy, RefusedChange
from sparkscale.policy.fleet import UNITS_TYPE, market_group_id
from sparkscale.policy.model import ClusterState, GroupStatus, GroupTarget, Market, Role

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "aws-samples" / "emr-cli"
CID = "j-xxxxx"  # the describe-cluster sample's id
TASK = "if-TASKFLEET0001"
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def task_fleet(state: str = "RUNNING", *, target_spot: int = 8, provisioned_spot: int = 8) -> dict[str, Any]:
    """A TASK fleet in the shape of list-instance-fleets' elements: r5.2xlarge (64 GiB) worth 2 units and
    r5.4xlarge (128 GiB) worth 4, with a 10-minute spot resize timeout."""
    return {
        "Id": TASK,
        "Name": "TASK",
        "InstanceFleetType": "TASK",
        "Status": {
            "State": state,
            "StateChangeReason": {"Message": ""},
            "Timeline": {"CreationDateTime": 1488758719.817, "ReadyDateTime": 1488759094.637},
        },
        "TargetOnDemandCapacity": 0,
        "TargetSpotCapacity": target_spot,
        "ProvisionedOnDemandCapacity": 0,
        "ProvisionedSpotCapacity": provisioned_spot,
        "InstanceTypeSpecifications": [
            {"InstanceType": "r5.2xlarge", "WeightedCapacity": 2, "BidPriceAsPercentageOfOnDemandPrice": 100},
            {"InstanceType": "r5.4xlarge", "WeightedCapacity": 4, "BidPriceAsPercentageOfOnDemandPrice": 100},
        ],
        "ResizeSpecifications": {
            "SpotResizeSpecification": {
                "TimeoutDurationMinutes": 10,
                "AllocationStrategy": "price-capacity-optimized",
            }
        },
    }


def describe_cluster() -> dict[str, Any]:
    """describe-cluster output2 as the DescribeCluster API returns it: the AWS CLI adds InstanceFleets and
    BootstrapActions from other calls (the Stubber, checking the real model, refuses them)."""
    out: dict[str, Any] = _json("describe-cluster-fleets.json")
    for key in ("InstanceFleets", "BootstrapActions"):
        out["Cluster"].pop(key)
    return out


def fleets_response(*task: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _json("list-instance-fleets.json")
    out["InstanceFleets"] += [copy.deepcopy(t) for t in task]
    return out


def _emr() -> Any:
    return boto3.session.Session(region_name="us-east-1").client("emr")


def _target(market: Market, current: int, target: int, fleet: str = TASK) -> GroupTarget:
    return GroupTarget(market_group_id(fleet, market), "task units", UNITS_TYPE, market, current, target, 0.1)


@pytest.fixture(autouse=True)
def _fake_credentials(aws_env: None) -> None:
    """No test here may sign with real credentials (the Stubber answers before any request is sent)."""


def test_reader_reads_a_fleet_cluster_as_unit_groups_per_market() -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response("describe_cluster", describe_cluster(), {"ClusterId": CID})
        stub.add_response("list_instance_fleets", fleets_response(task_fleet()), {"ClusterId": CID})
        cluster = EmrClusterReader(emr).read_cluster(CID)
        stub.assert_no_pending_responses()  # no ListInstanceGroups: it fails on a fleet cluster
    assert cluster.state is ClusterState.WAITING
    assert {f.id for f in cluster.fleets} == {"if-1ABC2DEFGHIJ3", "if-2ABC4DEFGHIJ4", TASK}
    task = {g.market: g for g in cluster.task_groups}
    spot, od = task[Market.SPOT], task[Market.ON_DEMAND]
    # smallest memory per unit: r5.2xlarge 64 GiB / 2 = 32, r5.4xlarge 128 GiB / 4 = 32 -> 32 GiB per unit
    assert (spot.id, spot.memory_gib, spot.requested, spot.running) == (f"{TASK}/SPOT", 32.0, 8, 8)
    assert (od.id, od.requested, od.running, od.status) == (f"{TASK}/ON_DEMAND", 0, 0, GroupStatus.RUNNING)
    # on-demand per unit, the dearest type: r5.2xlarge 0.504/2 = 0.252, r5.4xlarge 1.008/4 = 0.252
    assert spot.usd_per_hour == pytest.approx(0.252)
    assert spot.fleet_id == od.fleet_id == TASK
    # the CORE fleet of the sample: 6 spot + 2 on-demand units provisioned, of m3.xlarge, a legacy type that
    # is not in the bundled table (memory 0: logged, never counted)
    core = [g for g in cluster.groups if g.role is Role.CORE]
    seen = {(g.market, g.running, g.memory_gib) for g in core}
    assert seen == {(Market.SPOT, 6, 0.0), (Market.ON_DEMAND, 2, 0.0)}
    fleet = next(f for f in cluster.fleets if f.id == TASK)
    assert (fleet.spot_timeout_s, fleet.spot_allocation_strategy) == (600, "price-capacity-optimized")


def test_reader_average_unit_memory_is_total_memory_over_total_weight() -> None:
    raw = task_fleet()
    raw["InstanceTypeSpecifications"][1]["WeightedCapacity"] = 8  # r5.4xlarge: 16 GiB per unit now
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response("describe_cluster", describe_cluster(), {"ClusterId": CID})
        stub.add_response("list_instance_fleets", fleets_response(raw), {"ClusterId": CID})
        stub.add_response("describe_cluster", describe_cluster(), {"ClusterId": CID})
        stub.add_response("list_instance_fleets", fleets_response(raw), {"ClusterId": CID})
        smallest = EmrClusterReader(emr).read_cluster(CID)
        average = EmrClusterReader(emr, fleet_unit_memory="average").read_cluster(CID)
    assert smallest.task_groups[0].memory_gib == 16.0  # min(64/2, 128/8)
    assert average.task_groups[0].memory_gib == pytest.approx((64 + 128) / (2 + 8))  # 19.2


def test_writer_sets_both_targets_of_the_task_fleet_with_the_cluster_id() -> None:
    emr = _emr()
    writer = EmrCapacityWriter(emr)
    with Stubber(emr) as stub:
        stub.add_response("list_instance_fleets", fleets_response(task_fleet()), {"ClusterId": CID})
        stub.add_response(
            "modify_instance_fleet",
            {},
            {
                "ClusterId": CID,
                "InstanceFleet": {
                    "InstanceFleetId": TASK,
                    "TargetOnDemandCapacity": 0,  # unchanged: the target as read
                    "TargetSpotCapacity": 12,
                },
            },
        )
        writer.resize(CID, [_target(Market.SPOT, 8, 12), _target(Market.ON_DEMAND, 0, 0)])
        stub.assert_no_pending_responses()
    assert writer.calls == 1


def test_writer_moves_missing_spot_units_to_on_demand_in_one_call() -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instance_fleets",
            fleets_response(task_fleet(target_spot=12, provisioned_spot=8)),
            {"ClusterId": CID},
        )
        stub.add_response(
            "modify_instance_fleet",
            {},
            {
                "ClusterId": CID,
                "InstanceFleet": {
                    "InstanceFleetId": TASK,
                    "TargetOnDemandCapacity": 4,
                    "TargetSpotCapacity": 12,
                },
            },
        )
        EmrCapacityWriter(emr).resize(CID, [_target(Market.ON_DEMAND, 0, 4)])
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("state", ["RESIZING", "SUSPENDED", "PROVISIONING", "RECONFIGURING"])
def test_writer_holds_a_busy_fleet_without_calling_modify(state: str) -> None:
    # EMR processes a fleet's resizes one after another: a target sent while RESIZING would queue behind it
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response("list_instance_fleets", fleets_response(task_fleet(state)), {"ClusterId": CID})
        with pytest.raises(GroupBusy, match=state):
            EmrCapacityWriter(emr).resize(CID, [_target(Market.SPOT, 8, 12)])
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("target", "why"),
    [
        (_target(Market.SPOT, 6, 8, fleet="if-1ABC2DEFGHIJ3"), "CORE fleet"),
        (_target(Market.SPOT, 8, 12, fleet="if-NOTHERE"), "not a fleet of cluster"),
        (_target(Market.SPOT, 8, -1), "negative"),
    ],
)
def test_writer_refuses_core_unknown_fleets_and_negative_targets(target: GroupTarget, why: str) -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response("list_instance_fleets", fleets_response(task_fleet()), {"ClusterId": CID})
        with pytest.raises(RefusedChange, match=why):
            EmrCapacityWriter(emr).resize(CID, [target])
        stub.assert_no_pending_responses()


def test_spot_price_per_unit_is_the_dearest_type_per_unit() -> None:
    emr, ec2 = _emr(), boto3.session.Session(region_name="us-east-1").client("ec2")
    with Stubber(emr) as stub:
        stub.add_response("describe_cluster", describe_cluster(), {"ClusterId": CID})
        stub.add_response("list_instance_fleets", fleets_response(task_fleet()), {"ClusterId": CID})
        cluster = EmrClusterReader(emr).read_cluster(CID)
    history = {
        "SpotPriceHistory": [
            {
                "AvailabilityZone": "us-east-1a",
                "InstanceType": "r5.2xlarge",
                "ProductDescription": "Linux/UNIX",
                "SpotPrice": "0.120000",
                "Timestamp": NOW,
            },
            {
                "AvailabilityZone": "us-east-1a",
                "InstanceType": "r5.4xlarge",
                "ProductDescription": "Linux/UNIX",
                "SpotPrice": "0.280000",
                "Timestamp": NOW,
            },
        ]
    }
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_spot_price_history",
            history,
            {
                "InstanceTypes": ["r5.2xlarge", "r5.4xlarge"],
                "ProductDescriptions": ["Linux/UNIX"],
                "StartTime": NOW,
                "EndTime": NOW,
                "AvailabilityZone": "us-east-1a",
                "MaxResults": 1000,
            },
        )
        quotes = SpotPriceSource(ec2, cache_s=300).quotes(cluster, NOW)
    spot, od = quotes[f"{TASK}/SPOT"], quotes[f"{TASK}/ON_DEMAND"]
    # per unit: r5.2xlarge 0.12 / 2 = 0.06, r5.4xlarge 0.28 / 4 = 0.07 -> the dearest, 0.07
    assert spot.usd_per_hour == pytest.approx(0.07)
    assert spot.origin is PriceOrigin.SPOT
    assert od.usd_per_hour == pytest.approx(0.252)
    assert od.origin is PriceOrigin.ON_DEMAND
