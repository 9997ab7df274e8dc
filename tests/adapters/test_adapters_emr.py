"""EMR adapters: moto (in process and over HTTP) for the happy paths; botocore Stubber, which checks every
request against the real EMR API model, for what moto cannot produce (fleets, resizing, errors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.emr import EmrCapacityWriter, EmrClusterReader
from sparkscale.errors import (
    ClusterGone,
    GroupBusy,
    InvalidRequest,
    RefusedChange,
    Throttled,
    TransientAwsError,
)
from sparkscale.policy.model import ClusterState, GroupStatus, GroupTarget, Market, Role
from sparkscale.policy.node_choice import ClusterInstance, InstanceShrink

from tests.scale.shell_support import REGION, create_cluster, group_counts


def _target(gid: str, current: int, target: int) -> GroupTarget:
    return GroupTarget(gid, gid, "r5.2xlarge", Market.SPOT, current, target, 0.15)


def test_reader_builds_the_model_from_describe_cluster_and_list_instance_groups(aws: AwsClients) -> None:
    c = create_cluster(
        aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 2), ("spot-m6g", "m6g.xlarge", "SPOT", 0)]
    )
    cluster = EmrClusterReader(aws.emr).read_cluster(c.cluster_id)
    assert cluster.id == c.cluster_id
    assert cluster.state is ClusterState.WAITING
    assert cluster.availability_zone == "us-east-1a"
    roles = {g.id: g.role for g in cluster.groups}
    assert roles[c.master] is Role.MASTER
    assert roles[c.core] is Role.CORE
    r5 = cluster.group(c.tasks["spot-r5"])
    assert r5 is not None
    # r5.2xlarge: 8 vCPU, 64 GiB, 0.504 USD/h on demand (the bundled table, from the shared CSV)
    assert (r5.market, r5.memory_gib, r5.vcpu, r5.usd_per_hour) == (Market.SPOT, 64.0, 8, 0.504)
    assert (r5.requested, r5.running, r5.status) == (2, 2, GroupStatus.RUNNING)
    m6g = cluster.group(c.tasks["spot-m6g"])
    assert m6g is not None
    assert (m6g.memory_gib, m6g.requested) == (16.0, 0)
    assert {g.id for g in cluster.task_groups} == set(c.tasks.values())


def test_reader_raises_cluster_gone_for_terminated_and_unknown_clusters(aws: AwsClients) -> None:
    c = create_cluster(aws.emr)
    aws.emr.terminate_job_flows(JobFlowIds=[c.cluster_id])
    reader = EmrClusterReader(aws.emr)
    with pytest.raises(ClusterGone, match="TERMINATED"):
        reader.read_cluster(c.cluster_id)
    with pytest.raises(ClusterGone, match="not valid"):
        reader.read_cluster("j-DOESNOTEXIST")


def test_writer_resizes_task_groups_only_and_never_master_or_core(aws: AwsClients) -> None:
    c = create_cluster(aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 1)])
    writer = EmrCapacityWriter(aws.emr)
    writer.resize(c.cluster_id, [_target(c.tasks["spot-r5"], 1, 4)])
    counts = group_counts(aws.emr, c.cluster_id)
    assert counts[c.tasks["spot-r5"]] == ("TASK", 4)
    for gid in (c.master, c.core):
        with pytest.raises(RefusedChange, match="only TASK groups"):
            writer.resize(c.cluster_id, [_target(gid, counts[gid][1], 9)])
    assert group_counts(aws.emr, c.cluster_id) == counts  # nothing changed
    assert writer.calls == 1  # the refused changes never reached ModifyInstanceGroups


def test_writer_refuses_an_unknown_group_before_calling_emr(aws: AwsClients) -> None:
    # moto raises KeyError / HTTP 500 for an unknown instance-group id; the writer checks the id itself
    c = create_cluster(aws.emr)
    writer = EmrCapacityWriter(aws.emr)
    with pytest.raises(RefusedChange, match="not a group of cluster"):
        writer.resize(c.cluster_id, [_target("ig-UNKNOWN", 1, 3)])
    assert writer.calls == 0
    with pytest.raises(RefusedChange, match="negative"):
        writer.resize(c.cluster_id, [_target(c.tasks["spot-r5"], 1, -1)])


def test_writer_with_no_change_makes_no_call(aws: AwsClients) -> None:
    c = create_cluster(aws.emr)
    writer = EmrCapacityWriter(aws.emr)
    writer.resize(c.cluster_id, [_target(c.tasks["spot-r5"], 1, 1)])
    assert writer.calls == 0


# --- Stubber: the real EMR API model, responses moto cannot give --------------------------------------------
def _emr() -> Any:
    return boto3.session.Session(region_name=REGION).client("emr")


def _group(gid: str, role: str, state: str = "RUNNING", count: int = 1) -> dict[str, object]:
    return {
        "Id": gid,
        "Name": gid.lower(),
        "Market": "SPOT" if role == "TASK" else "ON_DEMAND",
        "InstanceGroupType": role,
        "InstanceType": "r5.2xlarge",
        "RequestedInstanceCount": count,
        "RunningInstanceCount": count,
        "Status": {"State": state, "Timeline": {"CreationDateTime": datetime(2026, 3, 2, tzinfo=UTC)}},
    }


def test_reader_follows_list_instance_groups_pages() -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "describe_cluster",
            {"Cluster": {"Id": "j-PAGED", "Name": "paged", "Status": {"State": "RUNNING"}}},
            {"ClusterId": "j-PAGED"},
        )
        stub.add_response(
            "list_instance_groups",
            {"InstanceGroups": [_group("ig-M", "MASTER"), _group("ig-C", "CORE")], "Marker": "page-2"},
            {"ClusterId": "j-PAGED"},
        )
        stub.add_response(
            "list_instance_groups",
            {"InstanceGroups": [_group("ig-T", "TASK", "PROVISIONING", 3)]},
            {"ClusterId": "j-PAGED", "Marker": "page-2"},
        )
        cluster = EmrClusterReader(emr).read_cluster("j-PAGED")
        stub.assert_no_pending_responses()
    assert [g.id for g in cluster.groups] == ["ig-M", "ig-C", "ig-T"]
    t = cluster.group("ig-T")
    assert t is not None
    assert t.status is GroupStatus.PROVISIONING
    assert t.requested == 3
    assert t.status_since == datetime(2026, 3, 2, tzinfo=UTC)


def test_writer_holds_a_reconfiguring_group_without_calling_modify() -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instance_groups",
            {"InstanceGroups": [_group("ig-T", "TASK", "RECONFIGURING")]},
            {"ClusterId": "j-1"},
        )
        with pytest.raises(GroupBusy, match="RECONFIGURING"):
            EmrCapacityWriter(emr).resize("j-1", [_target("ig-T", 1, 3)])
        stub.assert_no_pending_responses()  # no ModifyInstanceGroups was queued or made


def test_writer_gives_a_resizing_group_a_new_count() -> None:
    # EMR lets a new count interrupt a resize in progress; the policy relies on it (RESIZABLE_STATUSES).
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instance_groups",
            {"InstanceGroups": [_group("ig-T", "TASK", "RESIZING")]},
            {"ClusterId": "j-1"},
        )
        stub.add_response(
            "modify_instance_groups",
            {},
            {"ClusterId": "j-1", "InstanceGroups": [{"InstanceGroupId": "ig-T", "InstanceCount": 3}]},
        )
        EmrCapacityWriter(emr).resize("j-1", [_target("ig-T", 1, 3)])
        stub.assert_no_pending_responses()


def test_busy_states_and_the_policys_resizable_states_do_not_overlap() -> None:
    from sparkscale.adapters.emr import BUSY_STATES
    from sparkscale.policy.constraints import RESIZABLE_STATUSES

    assert not BUSY_STATES & RESIZABLE_STATUSES


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        ("ThrottlingException", 400, "Rate exceeded", Throttled),
        ("InternalServerError", 500, "Internal error", TransientAwsError),
        ("ValidationException", 400, "Instance group id 'ig-T' is not valid.", InvalidRequest),
        ("ValidationException", 400, "The instance group ig-T is currently resizing.", GroupBusy),
        ("InvalidRequestException", 400, "Cluster j-1 is terminated and cannot be modified.", ClusterGone),
        ("ValidationException", 400, "An instance count of 5000 exceeds the quota.", InvalidRequest),
    ],
)
def test_modify_instance_groups_errors_become_typed_errors(
    code: str, status: int, message: str, expected: type[Exception]
) -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instance_groups", {"InstanceGroups": [_group("ig-T", "TASK")]}, {"ClusterId": "j-1"}
        )
        stub.add_client_error(
            "modify_instance_groups",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            expected_params={
                "ClusterId": "j-1",
                "InstanceGroups": [{"InstanceGroupId": "ig-T", "InstanceCount": 3}],
            },
        )
        with pytest.raises(expected) as info:
            EmrCapacityWriter(emr).resize("j-1", [_target("ig-T", 1, 3)])
    assert "ModifyInstanceGroups" in str(info.value)
    assert type(info.value) is expected


# --- safe scale-in: ListInstances and ModifyInstanceGroups' ShrinkPolicy, against the real API model --------
def _instance(ec2_id: str | None, group: str, state: str, n: int) -> dict[str, object]:
    raw: dict[str, object] = {
        "Id": f"ci-{n:04d}",
        "InstanceGroupId": group,
        "PrivateDnsName": f"ip-10-0-0-{n}.ec2.internal",
        "PrivateIpAddress": f"10.0.0.{n}",
        "Status": {"State": state},
        "InstanceType": "r5.2xlarge",
        "Market": "SPOT",
    }
    if ec2_id is not None:
        raw["Ec2InstanceId"] = ec2_id
    return raw


def test_list_instances_reads_every_page_of_task_instances_that_are_not_terminated() -> None:
    emr = _emr()
    query = {
        "ClusterId": "j-1",
        "InstanceGroupTypes": ["TASK"],
        "InstanceStates": ["AWAITING_FULFILLMENT", "PROVISIONING", "BOOTSTRAPPING", "RUNNING"],
    }
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instances",
            {"Instances": [_instance("i-1", "ig-T", "RUNNING", 1)], "Marker": "m2"},
            query,
        )
        stub.add_response(
            "list_instances",
            {"Instances": [_instance(None, "ig-T", "AWAITING_FULFILLMENT", 2)]},
            {**query, "Marker": "m2"},
        )
        instances = EmrClusterReader(emr).list_instances("j-1")
        stub.assert_no_pending_responses()
    assert instances == (
        ClusterInstance("i-1", "ig-T", "RUNNING", "ip-10-0-0-1.ec2.internal", "10.0.0.1"),
    )  # the spot request still awaiting fulfilment has no EC2 id: nothing to protect or terminate


def test_a_shrink_passes_the_chosen_instances_as_its_shrink_policy() -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instance_groups",
            {"InstanceGroups": [_group("ig-T", "TASK", count=5), _group("ig-U", "TASK", count=1)]},
            {"ClusterId": "j-1"},
        )
        stub.add_response(
            "modify_instance_groups",
            {},
            {
                "ClusterId": "j-1",
                "InstanceGroups": [
                    {
                        "InstanceGroupId": "ig-T",
                        "InstanceCount": 3,
                        "ShrinkPolicy": {
                            "InstanceResizePolicy": {
                                "InstancesToProtect": ["i-am"],
                                "InstancesToTerminate": ["i-idle1", "i-idle2"],
                                "InstanceTerminationTimeout": 600,
                            }
                        },
                    },
                    {"InstanceGroupId": "ig-U", "InstanceCount": 2},  # grows: no shrink policy
                ],
            },
        )
        EmrCapacityWriter(emr).resize_shrinking(
            "j-1",
            [_target("ig-T", 5, 3), _target("ig-U", 1, 2)],
            {
                "ig-T": InstanceShrink("ig-T", ("i-am",), ("i-idle1", "i-idle2"), 600),
                "ig-U": InstanceShrink("ig-U", ("i-x",), (), None),
            },
        )
        stub.assert_no_pending_responses()


def test_a_shrink_with_only_protection_has_no_termination_timeout() -> None:
    emr = _emr()
    with Stubber(emr) as stub:
        stub.add_response(
            "list_instance_groups",
            {"InstanceGroups": [_group("ig-T", "TASK", count=2)]},
            {"ClusterId": "j-1"},
        )
        stub.add_response(
            "modify_instance_groups",
            {},
            {
                "ClusterId": "j-1",
                "InstanceGroups": [
                    {
                        "InstanceGroupId": "ig-T",
                        "InstanceCount": 1,
                        "ShrinkPolicy": {"InstanceResizePolicy": {"InstancesToProtect": ["i-am"]}},
                    }
                ],
            },
        )
        EmrCapacityWriter(emr).resize_shrinking(
            "j-1", [_target("ig-T", 2, 1)], {"ig-T": InstanceShrink("ig-T", ("i-am",), (), 600)}
        )
        stub.assert_no_pending_responses()
