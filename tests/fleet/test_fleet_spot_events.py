"""A spot interruption warning for a node of the TASK fleet: located to the fleet's SPOT market (EMR
ListInstances through Stubber, with the AWS CLI's list-instances output2 shape), counted, and left to EMR,
which replaces the instance within the fleet's target units: sparkscale moves nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sparkscale.adapters.instance_locator import EmrInstanceLocator
from sparkscale.config import Config
from sparkscale.events.spot import SpotEvent, SpotEventKind
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.policy.fleet import FleetInstanceType, InstanceFleet, market_groups
from sparkscale.policy.model import Cluster, ClusterState, GroupStatus, Market, Role
from sparkscale.ports import InstanceLocation, Lookup, Ports
from sparkscale.usecases.shell import Outcome
from sparkscale.usecases.spot_events import handle_spot_event

from tests.scale.shell_support import T0, group

CID, FID, IID = "j-FLEET0001", "if-TASKFLEET0001", "i-0123456789abcdef0"


@pytest.fixture(autouse=True)
def _fake_credentials(aws_env: None) -> None:
    """The Stubber answers before any request is sent; no real credentials either way."""


def fleet_instance() -> dict[str, Any]:
    """An element of list-instances output2 (aws-cli examples), for a running spot node of the TASK fleet."""
    return {
        "Status": {
            "Timeline": {"ReadyDateTime": 1487810810.878, "CreationDateTime": 1487810588.367},
            "State": "RUNNING",
            "StateChangeReason": {"Message": ""},
        },
        "Ec2InstanceId": IID,
        "InstanceFleetId": FID,
        "EbsVolumes": [],
        "PublicDnsName": "ec2-xx-xxx-xxx-xxx.compute-1.amazonaws.com",
        "InstanceType": "r5.2xlarge",
        "PrivateDnsName": "ip-xx-xx-xxx-xx.ec2.internal",
        "Market": "SPOT",
        "PublicIpAddress": "10.0.0.1",
        "Id": "ci-xxxxx",
        "PrivateIpAddress": "10.47.191.80",
    }


def test_the_locator_finds_a_fleet_node_in_its_market() -> None:
    session = boto3.session.Session(region_name="us-east-1")
    ec2, emr = session.client("ec2"), session.client("emr")
    tags = [
        {"Key": "aws:elasticmapreduce:job-flow-id", "Value": CID},
        {"Key": "aws:elasticmapreduce:instance-group-role", "Value": "TASK"},
    ]
    with Stubber(ec2) as ec2_stub, Stubber(emr) as emr_stub:
        ec2_stub.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": [{"InstanceId": IID, "Tags": tags}]}]},
            {"InstanceIds": [IID]},
        )
        # filtered by group type first (what an instance group cluster answers), then unfiltered
        emr_stub.add_response(
            "list_instances", {"Instances": []}, {"ClusterId": CID, "InstanceGroupTypes": ["TASK"]}
        )
        emr_stub.add_response("list_instances", {"Instances": [fleet_instance()]}, {"ClusterId": CID})
        lookup = EmrInstanceLocator(ec2=ec2, emr=emr).locate(IID, [CID])
        emr_stub.assert_no_pending_responses()
    assert lookup.location == InstanceLocation(CID, f"{FID}/SPOT", IID)


class _Here:
    def locate(self, instance_id: str, managed_clusters: Any) -> Lookup:
        return Lookup(InstanceLocation(CID, f"{FID}/SPOT", instance_id))


def test_an_interrupted_fleet_node_is_left_to_emr_and_nothing_moves() -> None:
    types = (FleetInstanceType("r5.2xlarge", 2, 64.0, 8, 0.504),)
    task = InstanceFleet(FID, "Task", Role.TASK, GroupStatus.RUNNING, types, 2, 8, 2, 8)
    units = tuple(
        replace(g, usd_per_hour=0.06) if g.market is Market.SPOT else g for g in market_groups(task)
    )
    core = group("ig-CORE", role=Role.CORE, market=Market.ON_DEMAND, requested=2)
    emr = FakeEmr(Cluster(CID, "fleet", ClusterState.RUNNING, (core, *units), fleets=(task,)))
    store = InMemoryStateStore()
    ports = Ports(
        clusters=emr,
        metrics=FixedMetrics(),
        capacity=emr,
        state=store,
        notifier=CollectingNotifier(),
        ledger=store,
    )
    event = SpotEvent(SpotEventKind.INTERRUPTION, IID, T0, "us-east-1", "ev-1", "terminate")
    r = handle_spot_event(
        now=T0 + timedelta(seconds=5),
        event=event,
        ports=ports,
        locator=_Here(),
        config=Config.from_mapping({"clusters": [CID]}),
        owner="spot",
    )
    assert r.outcome is Outcome.LEFT_TO_EMR
    assert "instance fleet" in r.reason
    assert emr.resizes == []
