"""EmrInstanceLocator: the tag path against the real EC2/EMR API models (Stubber), the search path against
moto (moto 5.2.5 launches EC2 instances for an EMR cluster's instance groups but does not tag them)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from sparkscale.adapters.instance_locator import EmrInstanceLocator
from sparkscale.errors import Throttled, TransientAwsError
from sparkscale.ports import InstanceLocation

IID = "i-0123456789abcdef0"


def clients():
    kw = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client("ec2", **kw), boto3.client("emr", **kw)


def tagged(cluster_id: str, role: str) -> dict:
    return {
        "Reservations": [
            {
                "Instances": [
                    {
                        "InstanceId": IID,
                        "Tags": [
                            {"Key": "Name", "Value": "x"},
                            {"Key": "aws:elasticmapreduce:job-flow-id", "Value": cluster_id},
                            {"Key": "aws:elasticmapreduce:instance-group-role", "Value": role},
                        ],
                    }
                ]
            }
        ]
    }


@pytest.fixture
def stubbed():
    ec2, emr = clients()
    with Stubber(ec2) as s_ec2, Stubber(emr) as s_emr:
        yield EmrInstanceLocator(ec2=ec2, emr=emr), s_ec2, s_emr
        s_ec2.assert_no_pending_responses()
        s_emr.assert_no_pending_responses()


def test_tags_name_the_cluster_and_list_instances_the_group(stubbed):
    locator, s_ec2, s_emr = stubbed
    s_ec2.add_response("describe_instances", tagged("j-MANAGED", "TASK"), {"InstanceIds": [IID]})
    s_emr.add_response(
        "list_instances",
        {
            "Instances": [{"Ec2InstanceId": "i-0aaaaaaaaaaaaaaaa", "InstanceGroupId": "ig-OTHER"}],
            "Marker": "m2",
        },
        {"ClusterId": "j-MANAGED", "InstanceGroupTypes": ["TASK"]},
    )
    s_emr.add_response(
        "list_instances",
        {"Instances": [{"Ec2InstanceId": IID, "InstanceGroupId": "ig-SPOT1"}]},
        {"ClusterId": "j-MANAGED", "InstanceGroupTypes": ["TASK"], "Marker": "m2"},
    )
    lookup = locator.locate(IID, ["j-MANAGED", "j-SECOND"])
    assert lookup.location == InstanceLocation("j-MANAGED", "ig-SPOT1", IID)


def test_tagged_for_an_unmanaged_cluster_is_ignored_without_asking_emr(stubbed):
    locator, s_ec2, _ = stubbed
    s_ec2.add_response("describe_instances", tagged("j-SOMEONEELSE", "TASK"), {"InstanceIds": [IID]})
    lookup = locator.locate(IID, ["j-MANAGED"])
    assert lookup.location is None
    assert lookup.reason == f"{IID} belongs to j-SOMEONEELSE, which is not a managed cluster"


@pytest.mark.parametrize("code", ["InvalidInstanceID.NotFound", "UnauthorizedOperation"])
def test_without_tags_every_managed_cluster_is_searched(stubbed, code):
    locator, s_ec2, s_emr = stubbed
    s_ec2.add_client_error("describe_instances", service_error_code=code, http_status_code=400)
    s_emr.add_client_error(  # a configured cluster EMR does not know: skipped
        "list_instances",
        service_error_code="InvalidRequestException",
        http_status_code=400,
        expected_params={"ClusterId": "j-GONE"},
    )
    s_emr.add_response("list_instances", {"Instances": []}, {"ClusterId": "j-ONE"})
    s_emr.add_response(
        "list_instances",
        {"Instances": [{"Ec2InstanceId": IID, "InstanceGroupId": "ig-T"}]},
        {"ClusterId": "j-TWO"},
    )
    assert locator.locate(IID, ["j-GONE", "j-ONE", "j-TWO"]).location == InstanceLocation(
        "j-TWO", "ig-T", IID
    )


def test_throttling_and_server_errors_are_typed(stubbed):
    locator, s_ec2, s_emr = stubbed
    s_ec2.add_client_error(
        "describe_instances", service_error_code="RequestLimitExceeded", http_status_code=503
    )
    with pytest.raises(Throttled):
        locator.locate(IID, ["j-ONE"])
    s_ec2.add_response("describe_instances", {"Reservations": []}, {"InstanceIds": [IID]})
    s_emr.add_client_error("list_instances", service_error_code="InternalServerError", http_status_code=500)
    with pytest.raises(TransientAwsError):
        locator.locate(IID, ["j-ONE"])


def test_no_managed_clusters_means_no_calls(stubbed):
    locator, _, _ = stubbed
    assert locator.locate(IID, []).reason == "no managed clusters are configured"


@mock_aws
def test_moto_instances_are_found_by_searching_the_managed_clusters():
    ec2, emr = clients()
    groups = [
        {"Name": "m", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
        {"Name": "c", "InstanceRole": "CORE", "InstanceType": "m5.2xlarge", "InstanceCount": 1},
        {
            "Name": "t",
            "InstanceRole": "TASK",
            "InstanceType": "r5.2xlarge",
            "InstanceCount": 2,
            "Market": "SPOT",
        },
    ]
    ids = [
        emr.run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.5.0",
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
            Instances={"KeepJobFlowAliveWhenNoSteps": True, "InstanceGroups": groups},
        )["JobFlowId"]
        for name in ("managed", "other")
    ]
    managed, other = ids
    task = next(
        g["Id"] for g in emr.list_instance_groups(ClusterId=managed)["InstanceGroups"] if g["Name"] == "t"
    )
    mine = emr.list_instances(ClusterId=managed, InstanceGroupId=task)["Instances"][0]["Ec2InstanceId"]
    theirs = emr.list_instances(ClusterId=other)["Instances"][0]["Ec2InstanceId"]
    # what moto does: a real EC2 instance, without EMR's tags
    described = ec2.describe_instances(InstanceIds=[mine])["Reservations"][0]["Instances"][0]
    assert not any(t["Key"].startswith("aws:elasticmapreduce:") for t in described.get("Tags", []))

    locator = EmrInstanceLocator(ec2=ec2, emr=emr)
    assert locator.locate(mine, [managed]).location == InstanceLocation(managed, task, mine)
    unmanaged = locator.locate(theirs, [managed])
    assert unmanaged.location is None
    assert "not an instance of a managed cluster" in unmanaged.reason
    assert locator.locate("i-0123456789abcdef0", [managed]).location is None  # not an instance at all
