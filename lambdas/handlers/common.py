"""What the alarm and reconcile handlers share: the lazily built Runtime (config, ports, clients) and the EMF
metrics of one evaluation. Nothing here runs at import: boto3, the adapters and Powertools Idempotency are
imported on the first invocation (cold import stays small), and the clients are then reused while warm."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sparkscale import names
from sparkscale.clock import utcnow
from sparkscale.config import Config
from sparkscale.config_io import from_environment
from sparkscale.errors import SparkscaleError
from sparkscale.events.envelope import Origin
from sparkscale.ports import AlarmReader, ClusterRegistry, Ports, Registration

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from sparkscale.usecases.fanout import EvaluationQueue
    from sparkscale.usecases.scale import RunResult

# Metrics keep one shared set per process: one EMF document at a time
METRICS_LOCK = threading.Lock()


@dataclass
class Runtime:
    """Everything a handler needs besides the event: built once per warm container."""

    config: Config
    ports: Ports
    alarms: AlarmReader | None
    table_name: str
    alarm_prefix: str
    dynamodb: Any = None  # the boto3 DynamoDB client (Powertools Idempotency shares it)
    clients: Any = None  # sparkscale.adapters.aws.AwsClients of a real deployment (emr, cloudwatch, ec2, ...)
    cache: dict[str, Any] = field(default_factory=dict)
    clock: Callable[[], datetime] = utcnow  # the wall clock; the demo injects its simulated one
    registry: ClusterRegistry | None = None  # clusters managed by tag (None: the static list only)
    evaluations: EvaluationQueue | None = None  # the reconcile fan-out's queue (None: evaluate in turn)


@dataclass(frozen=True)
class Managed:
    """The clusters one invocation manages: the static `clusters` setting plus the registry of clusters
    managed by tag, each with the settings it is evaluated with (its profile; dry run while paused)."""

    config: Config
    registrations: Mapping[str, Registration] = field(default_factory=dict)

    @property
    def clusters(self) -> list[str]:
        from sparkscale.usecases.discovery import managed_clusters  # noqa: PLC0415 - lazy: cold start

        return managed_clusters(self.config, self.registrations)

    def config_for(self, cluster_id: str) -> Config:
        from sparkscale.usecases.discovery import cluster_config  # noqa: PLC0415 - lazy: cold start

        if cluster_id in self.config.clusters:
            return self.config
        return cluster_config(self.config, self.registrations.get(cluster_id))

    def spot_config(self) -> Config:
        """The base settings with every managed cluster in `clusters`: where the spot use case's locator
        looks for an instance (the cluster it finds is then handled with `config_for`)."""
        return replace(self.config, clusters=self.clusters)


def managed(rt: Runtime) -> Managed:
    """The static list plus the registry, read once per invocation. Without the registry (an error), the
    static list alone: the next invocation reads it again."""
    if rt.registry is None:
        return Managed(rt.config)
    try:
        return Managed(rt.config, dict(rt.registry.registrations(rt.clock())))
    except SparkscaleError as exc:
        logging.getLogger(__name__).warning("registry unavailable (%s): the static clusters only", exc)
        return Managed(rt.config)


_runtime: Runtime | None = None
_clock: Callable[[], datetime] = utcnow


def set_runtime(rt: Runtime | None) -> None:
    """Tests, the demo and the benchmark inject a Runtime (None: rebuild from the environment next time)."""
    global _runtime  # noqa: PLW0603 - one per warm container, by design
    _runtime = rt


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """The clock every handler reads `now` from (None: the wall clock again), in the current Runtime and in
    any Runtime built later. The demo runs the real handlers on its simulated clock this way."""
    global _clock  # noqa: PLW0603 - one per process, like the Runtime
    _clock = clock or utcnow
    if _runtime is not None:
        _runtime.clock = _clock


def build_runtime(environ: Mapping[str, str]) -> Runtime:
    """The real Runtime from the Lambda environment (names.ENV_*). Imports boto3 and the adapters."""
    from sparkscale.adapters.aws import (  # noqa: PLC0415 - lazy: cold start
        alarm_reader,
        aws_ports,
        evaluation_queue,
        make_clients,
    )
    from sparkscale.adapters.discovery import DynamoClusterRegistry  # noqa: PLC0415

    config = from_environment(environ)
    table = environ.get(names.ENV_TABLE_NAME, "")
    topic = environ.get(names.ENV_OPERATOR_TOPIC_ARN, "")
    if not table or not topic:
        missing = [
            k for k, v in ((names.ENV_TABLE_NAME, table), (names.ENV_OPERATOR_TOPIC_ARN, topic)) if not v
        ]
        raise RuntimeError(f"environment variable(s) {', '.join(missing)} not set")
    clients = make_clients()
    queue_url = environ.get(names.ENV_EVALUATION_QUEUE_URL, "")
    return Runtime(
        config=config,
        ports=aws_ports(clients=clients, config=config, table_name=table, topic_arn=topic),
        alarms=alarm_reader(clients),
        table_name=table,
        alarm_prefix=environ.get(names.ENV_ALARM_PREFIX) or config.alarm_prefix,
        dynamodb=clients.dynamodb,
        clients=clients,
        clock=_clock,
        registry=DynamoClusterRegistry(clients.dynamodb, table),
        evaluations=evaluation_queue(queue_url) if queue_url else None,
    )


def runtime(logger: Logger | None = None) -> Runtime:
    global _runtime  # noqa: PLW0603
    if _runtime is None:
        _runtime = build_runtime(os.environ)
        if logger is not None:
            _route_library_logs(logger)
    return _runtime


def _route_library_logs(logger: Logger) -> None:
    """sparkscale's own stdlib loggers log through Powertools' JSON formatter (never botocore's)."""
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers  # noqa: PLC0415

    ours = {n for n in logging.root.manager.loggerDict if n.startswith("sparkscale")}
    if ours:
        copy_config_to_registered_loggers(source_logger=logger, include=ours)


_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):function:.+")


def origin_of(context: Any) -> Origin | None:
    """The account and region this function runs in, from the Lambda context's invoked_function_arn (None
    outside Lambda, where no context names them: the origin checks are then skipped)."""
    arn = getattr(context, "invoked_function_arn", None)
    m = _FUNCTION_ARN.fullmatch(arn) if isinstance(arn, str) else None
    return None if m is None else Origin(account=m["account"], region=m["region"])


def owner_of(context: Any) -> str:
    """The lease owner: this invocation's request id."""
    return str(getattr(context, "aws_request_id", "") or f"local-{os.getpid()}-{time.monotonic_ns()}")


def idempotent(
    rt: Runtime,
    fn: Callable[..., dict[str, Any]],
    *,
    cache_key: str,
    argument: str,
    key_jmespath: str,
    expires_after_s: int,
    context: Any = None,
) -> Callable[..., dict[str, Any]]:
    """`fn` wrapped by Powertools Idempotency on `argument` (keyed by `key_jmespath` in it), with its records
    in the state table; built once per warm container under `rt.cache[cache_key]` (where tests put their
    own). With a Lambda context, an in-progress record expires with the invocation (a timed-out one can be
    retried at once)."""
    if cache_key not in rt.cache:
        from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415 - lazy: cold start
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        store = DynamoDBPersistenceLayer(
            table_name=rt.table_name,
            key_attr=names.TABLE_PK,
            sort_key_attr=names.TABLE_SK,
            expiry_attr=names.TABLE_TTL_ATTR,
            boto3_client=rt.dynamodb,
        )
        cfg = IdempotencyConfig(event_key_jmespath=key_jmespath, expires_after_seconds=expires_after_s)
        wrapped = idempotent_function(data_keyword_argument=argument, persistence_store=store, config=cfg)(fn)
        rt.cache[cache_key] = (wrapped, cfg)
    wrapped, cfg = rt.cache[cache_key]
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        cfg.register_lambda_context(context)
    return wrapped  # type: ignore[no-any-return]


def timed(fn: Callable[[], RunResult]) -> tuple[RunResult, float]:
    t0 = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - t0) * 1000.0


def emit_result(metrics: Metrics, result: RunResult, latency_ms: float) -> None:
    """One EMF document for one evaluation: dimension ClusterId only."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415 - already imported by Metrics

    with METRICS_LOCK:
        metrics.add_dimension(name=names.DIM_CLUSTER_ID, value=result.cluster_id)
        metrics.add_metric(name=names.M_SCALING_ACTIONS, unit=MetricUnit.Count, value=result.scaling_actions)
        metrics.add_metric(name=names.M_DECISION_LATENCY_MS, unit=MetricUnit.Milliseconds, value=latency_ms)
        if result.desired_task_nodes is not None:
            metrics.add_metric(
                name=names.M_DESIRED_TASK_NODES, unit=MetricUnit.Count, value=result.desired_task_nodes
            )
        if result.running_task_nodes is not None:
            metrics.add_metric(
                name=names.M_RUNNING_TASK_NODES, unit=MetricUnit.Count, value=result.running_task_nodes
            )
        if result.failed or result.notify_failures:
            metrics.add_metric(
                name=names.M_FAILURES,
                unit=MetricUnit.Count,
                value=int(result.failed) + result.notify_failures,
            )
        if result.decision is not None and result.decision.at_max_under_pressure:
            metrics.add_metric(name=names.M_AT_MAX_UNDER_PRESSURE, unit=MetricUnit.Count, value=1)
        metrics.add_metadata(key="outcome", value=result.outcome)
        metrics.flush_metrics()


def emit_count(
    metrics: Metrics, name: str, cluster_id: str | None, *, count: int = 1, **metadata: str
) -> None:
    """A count (RejectedEvents, Failures: 1) for a cluster ("unknown" when the event named none)."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    with METRICS_LOCK:
        metrics.add_dimension(name=names.DIM_CLUSTER_ID, value=cluster_id or "unknown")
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
        for k, v in metadata.items():
            metrics.add_metadata(key=k, value=v)
        metrics.flush_metrics()


def result_to_dict(result: RunResult, latency_ms: float | None = None) -> dict[str, Any]:
    """The JSON-safe summary a handler returns (and Idempotency stores)."""
    d = result.decision
    out: dict[str, Any] = {
        "cluster_id": result.cluster_id,
        "outcome": str(result.outcome),
        "detail": result.detail,
        "direction": d.direction.value if d is not None else None,
        "targets": {t.group_id: [t.current, t.target] for t in d.targets} if d is not None else {},
        "desired_task_nodes": result.desired_task_nodes,
        "running_task_nodes": result.running_task_nodes,
        "notices_sent": result.notices_sent,
        "notify_failures": result.notify_failures,
    }
    if latency_ms is not None:
        out["latency_ms"] = round(latency_ms, 3)
    return out
