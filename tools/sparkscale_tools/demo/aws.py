"""The embedded AWS: a moto server on 127.0.0.1, fake credentials, and what the handlers need, created from
the synthesized template (plus the EMR cluster and the operator inbox queue).

Two overlays on moto's in-process state, both undone at the end, make moto behave like the AWS the replay
models (moto 5.2.5 has neither):
- EMR: moto reports RunningInstanceCount = RequestedInstanceCount and State RUNNING as soon as
  ModifyInstanceGroups returns. The demo's TASK groups show the model's running count and RESIZING while nodes
  are provisioning or decommissioning, so the handlers see nodes arrive after the provisioning delay.
- EC2 DescribeSpotPriceHistory: moto answers 0.00001 USD for every type; the demo answers the replay's
  assumed spot price of each SPOT group's type, so the policy buys memory by $/GiB-hour as it would on AWS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from sparkscale import names
from sparkscale.alarms import AlarmSpec
from sparkscale.policy.model import Market, Role

from sparkscale_tools.demo.template import (
    ACCOUNT_ID,
    ALARM_HANDLER,
    DISCOVERY_HANDLER,
    EMR_EVENTS_HANDLER,
    RECONCILE_HANDLER,
    REGION,
    DemoError,
    Resolver,
    StackTemplate,
    alarm_spec,
    put_metric_alarm_params,
)
from sparkscale_tools.replay.cluster import ClusterSpec

log = logging.getLogger(__name__)

FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,  # no profile, endpoint or credential from the user's files
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# Variables that could send a client anywhere but the moto server.
_REMOVE_PREFIXES: Final = ("AWS_ENDPOINT_URL_",)
_REMOVE: Final = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_ROLE_ARN")
OPERATOR_QUEUE: Final = "sparkscale-demo-operator-inbox"
NOTICES_QUEUE: Final = "sparkscale-demo-operator-topic"
ALARM_TAP_QUEUE: Final = "sparkscale-demo-alarm-deliveries"


# --- the server and the environment -------------------------------------------------------------------------
@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1 and a free port; yields its URL. Stopped (and its state reset) on
    exit, whatever the exit (error, Ctrl-C)."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - heavy, demo only

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # no access log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url
    finally:
        try:  # moto's backends live in this process: leave nothing behind for whoever runs next
            req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - 127.0.0.1
            urllib.request.urlopen(req, timeout=5).close()  # noqa: S310
        except OSError as exc:
            log.warning("could not reset the moto server: %s", exc)
        server.stop()
        werkzeug.setLevel(level)


@contextlib.contextmanager
def patched_environ(updates: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `updates` and the fake credentials, without anything that could point a client at a
    real endpoint or profile; restored on exit."""
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k in _REMOVE or k.startswith(_REMOVE_PREFIXES):
                del os.environ[k]
        os.environ.update(FAKE_CREDENTIALS)
        os.environ.update(updates)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class Clients:
    """The demo's own clients (the handlers build theirs from the environment)."""

    endpoint: str
    emr: Any
    cloudwatch: Any
    sns: Any
    sqs: Any
    dynamodb: Any


def clients(endpoint: str) -> Clients:
    import boto3  # noqa: PLC0415
    from sparkscale.adapters.aws import boto_config  # noqa: PLC0415

    s = boto3.session.Session(region_name=REGION)
    cfg = boto_config(attempts=3)

    def c(name: str) -> Any:
        return s.client(name, endpoint_url=endpoint, config=cfg)

    return Clients(endpoint, c("emr"), c("cloudwatch"), c("sns"), c("sqs"), c("dynamodb"))


def check_endpoints(endpoint: str, runtime_clients: Mapping[str, Any]) -> None:
    """Refuse to run if any handler client would talk to anything but the moto server."""
    for name, client in runtime_clients.items():
        url = getattr(getattr(client, "meta", None), "endpoint_url", None)
        if client is not None and url != endpoint:
            raise DemoError(
                f"the handlers' {name} client points at {url}, not the moto server: refusing to run"
            )


# --- resources from the template ------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoAlarm:
    spec: AlarmSpec
    params: Mapping[str, Any]  # PutMetricAlarm parameters, resolved (actions are topic ARNs)
    arn: str


@dataclass(frozen=True)
class Provisioned:
    table_name: str
    alarm_topic_arn: str
    operator_topic_arn: str
    operator_queue_url: str  # what an operator's email address gets (the template's email subscriptions)
    notices_queue_url: str  # every notice on the operator topic (a chat integration, unfiltered)
    email_topic_arns: frozenset[str]
    alarm_tap_queue_url: str
    alarms: tuple[DemoAlarm, ...]
    function_env: Mapping[str, Mapping[str, str]]  # handler -> Lambda environment, resolved
    skipped_alarms: tuple[str, ...] = field(default=())


def _queue_to_topics(c: Clients, queue: str, topics: Mapping[str, Mapping[str, Any] | None]) -> str:
    """An SQS queue subscribed to each topic ARN of `topics`, with that subscription's filter policy."""
    url = str(c.sqs.create_queue(QueueName=queue)["QueueUrl"])
    qarn = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for topic_arn, policy in topics.items():
        attributes = {"FilterPolicy": json.dumps(policy)} if policy else {}
        c.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=qarn, Attributes=attributes)
    return url


def provision(tpl: StackTemplate, c: Clients, cluster_id: str) -> Provisioned:
    """Create the table, the topics (with the operator inbox queue), the cluster's alarms and the functions'
    environment, as the template defines them. `tpl` already names `cluster_id` (template.for_cluster)."""
    stack = tpl.stack_name
    t = tpl.table
    table_name = f"{stack}-{t.logical_id}"
    c.dynamodb.create_table(
        TableName=table_name,
        KeySchema=list(t.key_schema),
        AttributeDefinitions=list(t.attribute_definitions),
        BillingMode=t.billing_mode,
    )
    if t.ttl_attribute:
        c.dynamodb.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": t.ttl_attribute}
        )
    arns: dict[str, str] = {}
    for lid in _resources_of(tpl, "AWS::SNS::Topic"):
        props = (tpl.doc["Resources"][lid].get("Properties")) or {}
        attrs = (
            {"DisplayName": str(props["DisplayName"])} if isinstance(props.get("DisplayName"), str) else {}
        )
        arns[lid] = str(c.sns.create_topic(Name=f"{stack}-{lid}", Attributes=attrs)["TopicArn"])
    operator_arn, alarm_arn = arns[tpl.operator_topic], arns[tpl.alarm_topic]
    # The inbox gets what an email address gets: each topic it is subscribed to, with the same filter policy
    # (moto applies SNS filter policies to SQS subscriptions)
    inbox = _queue_to_topics(c, OPERATOR_QUEUE, {arns[lid]: p for lid, p in tpl.email_topics.items()})
    notices = _queue_to_topics(c, NOTICES_QUEUE, {operator_arn: None})
    people = frozenset(arns[lid] for lid in tpl.email_topics)
    # Stands in for the alarm function's SNS subscription (moto delivers to Lambda only with Docker): the demo
    # hands what SNS delivered here to the alarm handler as a Lambda SNS event.
    tap = _queue_to_topics(c, ALARM_TAP_QUEUE, {alarm_arn: None})
    resolve = Resolver(refs={t.logical_id: table_name, **arns}, parameters=tpl.parameters)
    created: list[tuple[AlarmSpec, dict[str, Any]]] = []
    for props in tpl.alarms_of(cluster_id):
        params = put_metric_alarm_params(props, resolve)
        actions = {*params.get("AlarmActions", []), *params.get("OKActions", [])}
        spec = alarm_spec(
            params, prefix=tpl.alarm_prefix, cluster_id=cluster_id, to_operators=bool(people & actions)
        )
        c.cloudwatch.put_metric_alarm(**params)
        # CloudWatch starts every new alarm in INSUFFICIENT_DATA (moto starts it in OK).
        c.cloudwatch.set_alarm_state(
            AlarmName=spec.name,
            StateValue="INSUFFICIENT_DATA",
            StateReason="Unchecked: Initial alarm creation",
        )
        created.append((spec, params))
    if not created:
        raise DemoError(f"{tpl.source}: no alarm named {tpl.alarm_prefix}-{cluster_id}-* in the template")
    described = c.cloudwatch.describe_alarms(AlarmNames=[s.name for s, _ in created])["MetricAlarms"]
    arn_of = {a["AlarmName"]: a["AlarmArn"] for a in described}
    # Without the evaluation queue (nothing here consumes it) the reconcile handler evaluates in turn.
    env = {
        h: {
            k: str(resolve(v))
            for k, v in tpl.functions[h].environment.items()
            if k != names.ENV_EVALUATION_QUEUE_URL
        }
        for h in (ALARM_HANDLER, RECONCILE_HANDLER, DISCOVERY_HANDLER, EMR_EVENTS_HANDLER)
        if h in tpl.functions
    }
    return Provisioned(
        table_name=table_name,
        alarm_topic_arn=alarm_arn,
        operator_topic_arn=operator_arn,
        operator_queue_url=inbox,
        notices_queue_url=notices,
        email_topic_arns=people,
        alarm_tap_queue_url=tap,
        alarms=tuple(DemoAlarm(s, p, str(arn_of.get(s.name, ""))) for s, p in created),
        function_env=env,
        skipped_alarms=tuple(tpl.other_alarm_names(cluster_id)),
    )


def _resources_of(tpl: StackTemplate, kind: str) -> list[str]:
    return [lid for lid, r in (tpl.doc.get("Resources") or {}).items() if r.get("Type") == kind]


# --- the EMR cluster ------------------------------------------------------------------------------------
def create_cluster(
    emr: Any, spec: ClusterSpec, task_nodes: Mapping[str, int], tags: Mapping[str, str] | None = None
) -> ClusterSpec:
    """RunJobFlow with the spec's MASTER, CORE and TASK groups (TASK groups start at `task_nodes`, by spec
    group id) and `tags`. Returns the spec renamed to moto's cluster id and instance-group ids."""
    groups = []
    for g in spec.groups:
        count = g.nodes if g.role is not Role.TASK else int(task_nodes.get(g.id, 0))
        entry: dict[str, Any] = {
            "Name": g.name,
            "InstanceRole": g.role.value,
            "InstanceType": g.instance_type,
            "InstanceCount": count,
            "Market": g.market.value,
        }
        groups.append(entry)
    if len({g["Name"] for g in groups}) != len(groups):
        raise DemoError("the demo cluster's instance groups need distinct names")
    resp = emr.run_job_flow(
        Name=f"sparkscale-{spec.name}",
        ReleaseLabel="emr-7.5.0",
        Applications=[{"Name": "Spark"}, {"Name": "Hadoop"}],
        Instances={
            "InstanceGroups": groups,
            "KeepJobFlowAliveWhenNoSteps": True,
            "Placement": {"AvailabilityZone": spec.availability_zone},
        },
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        VisibleToAllUsers=True,
        **({"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}),
    )
    cid = str(resp["JobFlowId"])
    ids = {g["Name"]: str(g["Id"]) for g in emr.list_instance_groups(ClusterId=cid)["InstanceGroups"]}
    renamed = tuple(replace(g, id=ids[g.name]) for g in spec.groups)
    return replace(spec, cluster_id=cid, groups=renamed)


class EmrOverlay:
    """Shows the model's running node count and group state on moto's TASK instance groups (in process).
    `available` is False when moto's internals are not what this was written against; the demo then runs
    with moto's own counts (nodes appear at once) and says so."""

    def __init__(self, cluster_id: str, task_group_ids: list[str]) -> None:
        self._groups: dict[str, Any] = {}
        self._classes: dict[str, Any] = {}
        self.available = False
        try:
            from moto.emr.models import InstanceGroup, emr_backends  # noqa: PLC0415

            backend = emr_backends[ACCOUNT_ID][REGION]
            found = {g.id: g for g in backend.clusters[cluster_id].instance_groups}
            groups: dict[str, Any] = {gid: found[gid] for gid in task_group_ids}
        except (ImportError, KeyError, AttributeError) as exc:
            log.warning(
                "moto EMR internals not as expected (%s): no provisioning delay shown to handlers", exc
            )
            return

        class ModelledGroup(InstanceGroup):
            """moto's instance group whose running count is the model's."""

            model_running: int | None = None

            @property
            def running_instance_count(self) -> int:
                return int(self.num_instances if self.model_running is None else self.model_running)

            @property
            def instance_running_count(self) -> int:
                return self.running_instance_count

        for gid, g in groups.items():
            self._classes[gid] = g.__class__
            g.__class__ = ModelledGroup
        self._groups = groups
        self.available = True

    def show(self, group_id: str, *, running: int, state: str) -> None:
        g = self._groups.get(group_id)
        if g is not None:
            g.model_running = running
            g.state = state

    def close(self) -> None:
        for gid, g in self._groups.items():
            g.__class__ = self._classes[gid]
            with contextlib.suppress(AttributeError):
                del g.model_running
            g.state = "RUNNING"
        self._groups = {}


@contextlib.contextmanager
def spot_prices(prices: Mapping[str, float], since: datetime) -> Iterator[bool]:
    """moto's DescribeSpotPriceHistory answers `prices` (instance type -> USD per hour, in effect since
    `since`) while inside; yields False (and changes nothing) if moto's internals are not as expected."""
    try:
        from moto.core.responses import ActionResult  # noqa: PLC0415
        from moto.ec2.responses.spot_instances import SpotInstances  # noqa: PLC0415

        original = SpotInstances.__dict__["describe_spot_price_history"]
    except (ImportError, KeyError) as exc:
        log.warning("moto EC2 internals not as expected (%s): moto's fake spot prices apply", exc)
        yield False
        return
    stamp = since.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def describe_spot_price_history(self: Any) -> Any:
        types = self._get_param("InstanceTypes", []) or list(prices)
        zone = self._get_param("AvailabilityZone") or f"{REGION}a"
        history = [
            {
                "InstanceType": t,
                "ProductDescription": "Linux/UNIX",
                "SpotPrice": f"{prices[t]:.6f}",
                "AvailabilityZone": zone,
                "Timestamp": stamp,
            }
            for t in types
            if t in prices
        ]
        return ActionResult({"SpotPriceHistory": history})

    SpotInstances.describe_spot_price_history = describe_spot_price_history  # type: ignore[method-assign]
    try:
        yield True
    finally:
        SpotInstances.describe_spot_price_history = original  # type: ignore[method-assign]


def spot_price_table(spec: ClusterSpec) -> dict[str, float]:
    """Instance type -> the spec's spot price, for its SPOT TASK groups (the dearest if a type repeats)."""
    out: dict[str, float] = {}
    for g in spec.task_groups:
        if g.market is Market.SPOT:
            out[g.instance_type] = max(g.usd_per_hour, out.get(g.instance_type, 0.0))
    return out


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message on the queue now (SNS envelopes, parsed), deleted once read."""
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not msgs:
            return out
        for m in msgs:
            try:
                out.append(json.loads(m["Body"]))
            except ValueError:
                out.append({"Subject": "(not JSON)", "Message": m["Body"]})
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
        )
