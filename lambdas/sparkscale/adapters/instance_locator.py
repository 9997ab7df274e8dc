"""Which EMR cluster and instance group an EC2 instance belongs to (for spot interruption events).

EMR tags every instance it launches with `aws:elasticmapreduce:job-flow-id` and
`aws:elasticmapreduce:instance-group-role`. EC2 DescribeInstances gives those tags; EMR ListInstances then
maps the instance to its instance group id, or, on a cluster with instance fleets, to its fleet market's group
id (policy/fleet.py: 'if-…/SPOT'), which the spot-events use case leaves to EMR (it replaces within the
fleet). When the tags are missing (the instance is already gone, the caller may not read tags, or a fake that
does not tag, such as moto 5.2), every managed cluster's ListInstances is searched instead: one paginated
call per managed cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters.aws_errors import translate
from sparkscale.errors import ClusterGone, InvalidRequest
from sparkscale.policy.fleet import market_group_id
from sparkscale.policy.model import Market
from sparkscale.ports import InstanceLocation, Lookup

log = logging.getLogger(__name__)

_TAG_PREFIX: Final = "aws:elasticmapreduce:"
TAG_JOB_FLOW_ID: Final = "aws:elasticmapreduce:job-flow-id"
TAG_GROUP_ROLE: Final = "aws:elasticmapreduce:instance-group-role"
_ROLES: Final = frozenset({"MASTER", "CORE", "TASK"})
_NOT_FOUND: Final = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


class EmrInstanceLocator:
    """ports.InstanceLocator over EC2 DescribeInstances (tags) and EMR ListInstances."""

    def __init__(self, *, ec2: Any, emr: Any) -> None:
        self._ec2 = ec2
        self._emr = emr

    def locate(self, instance_id: str, managed_clusters: Sequence[str]) -> Lookup:
        managed = list(dict.fromkeys(managed_clusters))
        if not managed:
            return Lookup(None, "no managed clusters are configured")
        tags = self._emr_tags(instance_id)
        cluster_id = tags.get(TAG_JOB_FLOW_ID)
        if cluster_id is not None:
            if cluster_id not in managed:
                return Lookup(None, f"{instance_id} belongs to {cluster_id}, which is not a managed cluster")
            role = tags.get(TAG_GROUP_ROLE)
            group_id = self._group_of(cluster_id, instance_id, role if role in _ROLES else None)
            if group_id is None and role in _ROLES:  # a fleet cluster's instance: no group type to filter on
                group_id = self._group_of(cluster_id, instance_id, None)
            if group_id is None:
                return Lookup(None, f"{instance_id} is tagged for {cluster_id} but EMR does not list it")
            return Lookup(InstanceLocation(cluster_id, group_id, instance_id))
        for candidate in managed:
            group_id = self._group_of(candidate, instance_id, None)
            if group_id is not None:
                return Lookup(InstanceLocation(candidate, group_id, instance_id))
        return Lookup(None, f"{instance_id} is not an instance of a managed cluster ({', '.join(managed)})")

    def _emr_tags(self, instance_id: str) -> Mapping[str, str]:
        """The instance's aws:elasticmapreduce:* tags; empty when unknown or unreadable (then we search)."""
        try:
            resp = self._ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                return {}
            err = translate(exc, "DescribeInstances")
            if isinstance(err, InvalidRequest):  # e.g. no ec2:DescribeInstances permission: search instead
                log.warning("%s; searching the managed clusters instead", err)
                return {}
            raise err from exc
        except BotoCoreError as exc:
            raise translate(exc, "DescribeInstances") from exc
        tags: dict[str, str] = {}
        for reservation in resp.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                if instance.get("InstanceId") != instance_id:
                    continue
                for tag in instance.get("Tags", []) or []:
                    key, value = tag.get("Key"), tag.get("Value")
                    if (
                        isinstance(key, str)
                        and key.startswith("aws:elasticmapreduce:")
                        and isinstance(value, str)
                    ):
                        tags[key] = value
        return tags

    def _group_of(self, cluster_id: str, instance_id: str, role: str | None) -> str | None:
        """The instance group id of `instance_id` in `cluster_id` (EMR ListInstances), or None."""
        request: dict[str, Any] = {"ClusterId": cluster_id}
        if role is not None:
            request["InstanceGroupTypes"] = [role]
        try:
            for page in self._emr.get_paginator("list_instances").paginate(**request):
                for instance in page.get("Instances", []):
                    if instance.get("Ec2InstanceId") == instance_id:
                        group_id = instance.get("InstanceGroupId")
                        if not group_id and instance.get("InstanceFleetId"):  # a fleet's: its market's group
                            market = Market.SPOT if instance.get("Market") == "SPOT" else Market.ON_DEMAND
                            return market_group_id(str(instance["InstanceFleetId"]), market)
                        return str(group_id) if group_id else None
        except ClientError as exc:
            err = translate(exc, "ListInstances")
            if isinstance(err, (InvalidRequest, ClusterGone)):  # e.g. a configured cluster EMR does not know
                log.warning("%s: %s", cluster_id, err)
                return None
            raise err from exc
        except BotoCoreError as exc:
            raise translate(exc, "ListInstances") from exc
        return None
