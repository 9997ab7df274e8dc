from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from handlers import common
from moto import mock_aws
from sparkscale import clock, names
from sparkscale.adapters.aws import AwsClients

from tests.scale.shell_support import (
    REGION,
    EmrCluster,
    Topic,
    clients,
    create_cluster,
    create_table,
    create_topic_with_queue,
    fake_aws_env,
    moto_server,
    put_pressure,
)


@dataclass
class Deployment:
    """A moto 'account' with what the stack would deploy, and the Lambda environment pointing at it."""

    aws: AwsClients
    sqs: Any
    cluster: EmrCluster
    table: str
    topic: Topic
    monkeypatch: pytest.MonkeyPatch

    def configure(self, **settings: Any) -> None:
        """(Re)write SPARKSCALE_CONFIG_JSON and drop the cached Runtime."""
        # the burst rule off unless a test turns it on: these tests pin a whole shortfall bought at once
        cfg = {
            "clusters": [self.cluster.cluster_id],
            "max_task_nodes": 8,
            "group_max_nodes": 8,
            "burst_first_step_nodes": 0,
            **settings,
        }
        self.monkeypatch.setenv(names.ENV_CONFIG_JSON, json.dumps(cfg))
        common.set_runtime(None)

    def runtime(self) -> common.Runtime:
        rt = common.build_runtime(__import__("os").environ)
        common.set_runtime(rt)
        return rt


@pytest.fixture(params=["in-process"])
def deployment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    yield from _deploy(request.param, monkeypatch)


@pytest.fixture(params=["in-process", "http"])
def deployment_both(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    yield from _deploy(request.param, monkeypatch)


def _deploy(mode: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    fake_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sparkscale-alarm")
    monkeypatch.setenv(names.ENV_POWERTOOLS_SERVICE_NAME, "sparkscale")
    monkeypatch.setenv(names.ENV_POWERTOOLS_METRICS_NAMESPACE, names.SCALER_NAMESPACE)
    monkeypatch.setenv(names.ENV_ALARM_PREFIX, "sparkscale")
    monkeypatch.delenv(names.ENV_DRY_RUN, raising=False)
    if mode == "in-process":
        with mock_aws():
            yield _setup(clients(), None, monkeypatch)
    else:
        with moto_server() as url:
            monkeypatch.setenv("AWS_ENDPOINT_URL", url)  # the handler's own clients go to the server
            yield _setup(clients(url), url, monkeypatch)
    common.set_runtime(None)


def _setup(aws: AwsClients, url: str | None, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    sqs = boto3.session.Session(region_name=REGION).client("sqs", **({"endpoint_url": url} if url else {}))
    cluster = create_cluster(aws.emr, tasks=[("spot-r5", "r5.2xlarge", "SPOT", 2)])
    table = create_table(aws.dynamodb)
    topic = create_topic_with_queue(aws.sns, sqs)
    put_pressure(aws.cloudwatch, cluster.cluster_id, clock.utcnow())
    monkeypatch.setenv(names.ENV_TABLE_NAME, table)
    monkeypatch.setenv(names.ENV_OPERATOR_TOPIC_ARN, topic.arn)
    d = Deployment(aws, sqs, cluster, table, topic, monkeypatch)
    d.configure()
    return d
