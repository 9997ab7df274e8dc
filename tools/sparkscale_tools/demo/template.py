"""The synthesized CloudFormation template, read as the demo needs it (pure: a dict in, values out).

Everything the demo creates in moto comes from here, not written again: the cluster's alarms (their
PutMetricAlarm parameters are the template's Properties, resolved), the DynamoDB table (key schema, billing
mode, TTL attribute), the two topics (the alarm topic is the one the alarm function subscribes to, the
operator topic the one in the functions' environment), the functions (handler, environment, timeout, memory)
and the reconcile schedule (the rule targeting the reconcile function). `substitute` replaces the template's
example cluster id by the moto cluster's id in every string (alarm names and dimensions, the config JSON in
the functions' environment).

Only the intrinsic functions the stack uses where the demo reads are resolved: Ref (resources, parameters,
pseudo parameters), Fn::GetAtt (what the caller provides), Fn::Join and Fn::Sub of pseudo parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast, get_args

from sparkscale import names
from sparkscale.alarms import AlarmMetric, AlarmSpec, Comparison, Statistic, TreatMissingData
from sparkscale.config import Config, ConfigError

ALARM_HANDLER: Final = "handlers.alarm.handler"
RECONCILE_HANDLER: Final = "handlers.reconcile.handler"
DISCOVERY_HANDLER: Final = "handlers.discovery.handler"  # only in a template with the `discovery` feature
EMR_EVENTS_HANDLER: Final = "handlers.emr_events.handler"  # with the `emr_events` feature (cdk.json: on)
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"  # moto's default account
PSEUDO: Final = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}
# AWS::CloudWatch::Alarm properties that are also PutMetricAlarm parameters (same names and shapes).
PUT_METRIC_ALARM_KEYS: Final = frozenset(
    {
        "AlarmName",
        "AlarmDescription",
        "ActionsEnabled",
        "OKActions",
        "AlarmActions",
        "InsufficientDataActions",
        "MetricName",
        "Namespace",
        "Statistic",
        "ExtendedStatistic",
        "Dimensions",
        "Period",
        "Unit",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "EvaluateLowSampleCountPercentile",
        "Metrics",
        "ThresholdMetricId",
    }
)
_RATE: Final = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_S: Final = {"minute": 60, "hour": 3600, "day": 86_400}
_SUB_VAR: Final = re.compile(r"\$\{([A-Za-z0-9:._-]+)\}")


class DemoError(ValueError):
    """The demo cannot run as asked (a template, trace or config it cannot use): one line for the user."""


@dataclass(frozen=True)
class FunctionDef:
    logical_id: str
    handler: str
    environment: Mapping[str, Any]  # as in the template (values may be Refs)
    timeout_s: int
    memory_mb: int


@dataclass(frozen=True)
class TableDef:
    logical_id: str
    key_schema: tuple[Mapping[str, str], ...]
    attribute_definitions: tuple[Mapping[str, str], ...]
    billing_mode: str
    ttl_attribute: str | None


@dataclass(frozen=True)
class StackTemplate:
    """What the demo reads from one synthesized stack template."""

    source: str
    stack_name: str
    doc: Mapping[str, Any]
    config: Config  # the alarm function's SPARKSCALE_CONFIG_JSON
    alarm_prefix: str
    functions: Mapping[str, FunctionDef]  # by handler
    table: TableDef
    alarm_topic: str  # logical ids
    operator_topic: str
    # what an operator's email address gets: topic logical id -> the subscription's FilterPolicy (None: all)
    email_topics: Mapping[str, Mapping[str, Any] | None]
    reconcile_rate_s: int
    reconcile_rule: str  # logical id of the schedule rule
    parameters: Mapping[str, str]  # parameter defaults

    @property
    def cluster_ids(self) -> tuple[str, ...]:
        return tuple(self.config.clusters)

    def alarms_of(self, cluster_id: str) -> list[Mapping[str, Any]]:
        """The Properties of every alarm of `cluster_id` (`<prefix>-<cluster>-<kind>`), in template order."""
        head = f"{self.alarm_prefix}-{cluster_id}-"
        return [
            r.get("Properties", {})
            for r in _resources(self.doc, "AWS::CloudWatch::Alarm").values()
            if str(r.get("Properties", {}).get("AlarmName", "")).startswith(head)
        ]

    def other_alarm_names(self, cluster_id: str) -> list[str]:
        """Alarms the demo does not create (the DLQ alarms, other clusters' alarms)."""
        head = f"{self.alarm_prefix}-{cluster_id}-"
        out = []
        for r in _resources(self.doc, "AWS::CloudWatch::Alarm").values():
            name = r.get("Properties", {}).get("AlarmName")
            if not str(name or "").startswith(head):
                out.append(str(name) if isinstance(name, str) else "(unnamed)")
        return out


# --- reading ------------------------------------------------------------------------------------------------
def find_template(path: str | Path) -> Path:
    """`path` is a template file, or a cloud assembly directory (cdk.out) holding exactly one stack."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise DemoError(f"--template {p}: no such file or directory (run `make synth` first)")
    manifest = p / "manifest.json"
    found: list[Path] = []
    if manifest.is_file():
        try:
            arts = json.loads(manifest.read_text(encoding="utf-8")).get("artifacts", {})
        except ValueError as exc:
            raise DemoError(f"{manifest}: not JSON: {exc}") from None
        for art in arts.values():
            if isinstance(art, dict) and art.get("type") == "aws:cloudformation:stack":
                tf = (art.get("properties") or {}).get("templateFile")
                if isinstance(tf, str):
                    found.append(p / tf)
    else:
        found = sorted(p.glob("*.template.json"))
    if len(found) != 1:
        what = ", ".join(f.name for f in found) or "none"
        raise DemoError(f"--template {p}: expected one stack template, found {what}; pass --template FILE")
    return found[0]


def read_template(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DemoError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DemoError(f"{p}: not a JSON template: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise DemoError(f"{p}: not a CloudFormation template (no Resources)")
    return doc


def substitute(value: Any, old: str, new: str) -> Any:
    """`value` with every occurrence of `old` in every string replaced by `new` (keys included)."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [substitute(v, old, new) for v in value]
    if isinstance(value, dict):
        return {substitute(k, old, new): substitute(v, old, new) for k, v in value.items()}
    return value


def _resources(doc: Mapping[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {
        k: v
        for k, v in (doc.get("Resources") or {}).items()
        if isinstance(v, dict) and v.get("Type") == rtype
    }


def _ref_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return str(value["Ref"])
    return None


def _getatt_id(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("Fn::GetAtt"), list) and value["Fn::GetAtt"]:
        return str(value["Fn::GetAtt"][0])
    return None


def rate_seconds(expression: str) -> int:
    m = _RATE.match(expression.strip())
    if not m:
        raise DemoError(
            f"reconcile schedule {expression!r}: the demo replays rate(N minutes|hours|days) only"
        )
    return int(m.group(1)) * _UNIT_S[m.group(2).rstrip("s")]


def _functions(doc: Mapping[str, Any], source: str) -> dict[str, FunctionDef]:
    functions: dict[str, FunctionDef] = {}
    for lid, res in _resources(doc, "AWS::Lambda::Function").items():
        props = res.get("Properties") or {}
        handler = props.get("Handler")
        if isinstance(handler, str):
            env = ((props.get("Environment") or {}).get("Variables")) or {}
            functions[handler] = FunctionDef(
                logical_id=lid,
                handler=handler,
                environment=dict(env),
                timeout_s=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
            )
    for needed in (ALARM_HANDLER, RECONCILE_HANDLER):
        if needed not in functions:
            raise DemoError(
                f"{source}: no Lambda function with handler {needed} (is this the sparkscale stack?)"
            )
    return functions


def _config(env: Mapping[str, Any], source: str) -> Config:
    raw_config = env.get(names.ENV_CONFIG_JSON)
    if not isinstance(raw_config, str):
        raise DemoError(f"{source}: the alarm function has no literal {names.ENV_CONFIG_JSON}")
    try:
        config = Config.from_json(raw_config, source=f"{source} {names.ENV_CONFIG_JSON}")
    except ConfigError as exc:
        raise DemoError(str(exc)) from None
    if not config.clusters:
        raise DemoError(f"{source}: the stack manages no cluster (context.sparkscale.clusters is empty)")
    return config


def _alarm_topic(doc: Mapping[str, Any], alarm_fn: str, source: str) -> str:
    """The topic whose lambda subscription invokes the alarm function."""
    for sub in _resources(doc, "AWS::SNS::Subscription").values():
        props = sub.get("Properties") or {}
        topic = _ref_id(props.get("TopicArn"))
        subscribes = props.get("Protocol") == "lambda" and _getatt_id(props.get("Endpoint")) == alarm_fn
        if subscribes and topic in _resources(doc, "AWS::SNS::Topic"):
            return str(topic)
    raise DemoError(f"{source}: no SNS topic subscribes the alarm function ({ALARM_HANDLER})")


def _email_topics(doc: Mapping[str, Any], operator_topic: str) -> dict[str, Mapping[str, Any] | None]:
    """The topics the template's email subscriptions listen to, each with its filter policy (the operator
    topic, unfiltered, when the template has no email subscription)."""
    topics = _resources(doc, "AWS::SNS::Topic")
    out: dict[str, Mapping[str, Any] | None] = {}
    for sub in _resources(doc, "AWS::SNS::Subscription").values():
        props = sub.get("Properties") or {}
        topic = _ref_id(props.get("TopicArn"))
        if props.get("Protocol") == "email" and topic in topics:
            policy = props.get("FilterPolicy")
            out[str(topic)] = policy if isinstance(policy, dict) else None
    return out or {operator_topic: None}


def _schedule(doc: Mapping[str, Any], reconcile_fn: str, source: str) -> tuple[int, str]:
    """(rate in seconds, rule logical id) of the schedule rule targeting the reconcile function (or another
    function: `schedule_of`)."""
    for lid, rule in _resources(doc, "AWS::Events::Rule").items():
        props = rule.get("Properties") or {}
        targets = [t for t in props.get("Targets") or [] if isinstance(t, dict)]
        expression = props.get("ScheduleExpression")
        if isinstance(expression, str) and any(_getatt_id(t.get("Arn")) == reconcile_fn for t in targets):
            return rate_seconds(expression), lid
    raise DemoError(f"{source}: no schedule rule targets the reconcile function ({RECONCILE_HANDLER})")


def schedule_of(tpl: StackTemplate, handler: str) -> tuple[int, str]:
    """(rate in seconds, rule logical id) of the schedule rule targeting the function with `handler`."""
    return _schedule(tpl.doc, tpl.functions[handler].logical_id, tpl.source)


def _table(doc: Mapping[str, Any], env: Mapping[str, Any], source: str) -> TableDef:
    table_id = _ref_id(env.get(names.ENV_TABLE_NAME))
    tables = _resources(doc, "AWS::DynamoDB::Table")
    if table_id is None or table_id not in tables:
        raise DemoError(f"{source}: {names.ENV_TABLE_NAME} does not Ref a DynamoDB table of the template")
    tprops = tables[table_id].get("Properties") or {}
    ttl = tprops.get("TimeToLiveSpecification") or {}
    table = TableDef(
        logical_id=table_id,
        key_schema=tuple(tprops.get("KeySchema") or ()),
        attribute_definitions=tuple(tprops.get("AttributeDefinitions") or ()),
        billing_mode=str(tprops.get("BillingMode", "PAY_PER_REQUEST")),
        ttl_attribute=str(ttl["AttributeName"]) if ttl.get("Enabled") and ttl.get("AttributeName") else None,
    )
    if not table.key_schema:
        raise DemoError(f"{source}: the state table has no KeySchema")
    return table


def parse(doc: Mapping[str, Any], *, source: str, stack_name: str) -> StackTemplate:
    """Find the functions, the table, the topics, the schedule and the config in a stack template."""
    functions = _functions(doc, source)
    alarm_fn = functions[ALARM_HANDLER]
    env = alarm_fn.environment
    config = _config(env, source)
    operator_topic = _ref_id(env.get(names.ENV_OPERATOR_TOPIC_ARN))
    if operator_topic is None or operator_topic not in _resources(doc, "AWS::SNS::Topic"):
        raise DemoError(f"{source}: {names.ENV_OPERATOR_TOPIC_ARN} does not Ref an SNS topic of the template")
    rate_s, rule_id = _schedule(doc, functions[RECONCILE_HANDLER].logical_id, source)
    params = {
        k: str(v["Default"])
        for k, v in (doc.get("Parameters") or {}).items()
        if isinstance(v, dict) and "Default" in v
    }
    prefix = env.get(names.ENV_ALARM_PREFIX)
    return StackTemplate(
        source=source,
        stack_name=stack_name,
        doc=doc,
        config=config,
        alarm_prefix=prefix if isinstance(prefix, str) else config.alarm_prefix,
        functions=functions,
        table=_table(doc, env, source),
        alarm_topic=_alarm_topic(doc, alarm_fn.logical_id, source),
        operator_topic=operator_topic,
        email_topics=_email_topics(doc, operator_topic),
        reconcile_rate_s=rate_s,
        reconcile_rule=rule_id,
        parameters=params,
    )


def load(path: str | Path) -> StackTemplate:
    """Read and parse the template at `path` (a file or a cdk.out directory)."""
    p = find_template(path)
    stack = p.name.removesuffix(".template.json").removesuffix(".json") or "Sparkscale"
    return parse(read_template(p), source=str(p), stack_name=stack)


def for_cluster(tpl: StackTemplate, cluster_id: str) -> StackTemplate:
    """The same template with its first managed cluster's id replaced by `cluster_id` everywhere."""
    doc = substitute(tpl.doc, tpl.cluster_ids[0], cluster_id)
    return parse(doc, source=tpl.source, stack_name=tpl.stack_name)


# --- resolving intrinsic functions ------------------------------------------------------------------------
class Resolver:
    """Ref / Fn::GetAtt / Fn::Join / Fn::Sub against the physical ids the demo created."""

    def __init__(
        self,
        *,
        refs: Mapping[str, str],
        attrs: Mapping[tuple[str, str], str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self._refs = dict(refs)
        self._attrs = dict(attrs or {})
        self._params = dict(parameters or {})

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        return {k: self(v) for k, v in value.items()}

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self._ref(str(arg))
        if key == "Fn::GetAtt":
            lid, attr = arg.split(".", 1) if isinstance(arg, str) else (str(arg[0]), str(arg[1]))
            if (lid, attr) not in self._attrs:
                raise DemoError(f"Fn::GetAtt {lid}.{attr}: not a resource the demo creates")
            return self._attrs[(lid, attr)]
        if key == "Fn::Join":
            sep, parts = arg
            return str(sep).join(str(self(p)) for p in parts)
        if key == "Fn::Sub" and isinstance(arg, str):
            return _SUB_VAR.sub(lambda m: str(self._ref(m.group(1))), arg)
        raise DemoError(f"{key}: an intrinsic function the demo does not resolve")

    def _ref(self, name: str) -> Any:
        if name in self._refs:
            return self._refs[name]
        if name in self._params:
            return self._params[name]
        if name in PSEUDO:
            return PSEUDO[name]
        raise DemoError(f"Ref {name}: not a resource the demo creates, nor a parameter with a default")


def put_metric_alarm_params(props: Mapping[str, Any], resolve: Resolver) -> dict[str, Any]:
    """PutMetricAlarm's parameters for one AWS::CloudWatch::Alarm's Properties (resolved)."""
    return {k: resolve(v) for k, v in props.items() if k in PUT_METRIC_ALARM_KEYS}


def _literal(value: Any, allowed: tuple[str, ...], what: str, name: str) -> str:
    if value not in allowed:
        raise DemoError(
            f"alarm {name}: {what} {value!r} is not one the demo evaluates ({', '.join(allowed)})"
        )
    return str(value)


def alarm_spec(params: Mapping[str, Any], *, prefix: str, cluster_id: str, to_operators: bool) -> AlarmSpec:
    """The template's alarm (PutMetricAlarm parameters, resolved) as an AlarmSpec, so that the demo evaluates
    it with `AlarmSpec.state_for` exactly as defined: metric(s), statistic(s), period, evaluation periods,
    datapoints to alarm, threshold, comparison and missing-data treatment."""
    name = str(params.get("AlarmName", ""))
    kind = name.removeprefix(f"{prefix}-{cluster_id}-")
    comparison = cast(
        Comparison, _literal(params.get("ComparisonOperator"), get_args(Comparison), "comparison", name)
    )
    missing = cast(
        TreatMissingData,
        _literal(
            params.get("TreatMissingData", "missing"), get_args(TreatMissingData), "TreatMissingData", name
        ),
    )
    evaluation = int(params.get("EvaluationPeriods", 1))
    common: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "cluster_id": cluster_id,
        "evaluation_periods": evaluation,
        "datapoints_to_alarm": int(params.get("DatapointsToAlarm", evaluation)),
        "threshold": float(params.get("Threshold", 0.0)),
        "comparison": comparison,
        "treat_missing_data": missing,
        "to_operators": to_operators,
        "description": str(params.get("AlarmDescription", "")),
    }
    metrics: Sequence[Mapping[str, Any]] = params.get("Metrics") or ()
    if metrics:
        exprs = [m for m in metrics if "Expression" in m and m.get("ReturnData", True)]
        stats = [m for m in metrics if "MetricStat" in m]
        if len(exprs) != 1 or not stats:
            raise DemoError(
                f"alarm {name}: metric math needs one returned expression over MetricStat queries"
            )
        first = stats[0]["MetricStat"]
        queries = tuple(
            AlarmMetric(
                str(m["Id"]),
                str(m["MetricStat"]["Metric"]["MetricName"]),
                cast(Statistic, _literal(m["MetricStat"]["Stat"], get_args(Statistic), "statistic", name)),
            )
            for m in stats
        )
        return AlarmSpec(
            namespace=str(first["Metric"]["Namespace"]),
            metric_name=None,
            statistic=None,
            period_s=int(first["Period"]),
            dimensions=_dims(first["Metric"].get("Dimensions")),
            metrics=queries,
            expression=str(exprs[0]["Expression"]),
            expression_id=str(exprs[0]["Id"]),
            **common,
        )
    statistic = cast(Statistic, _literal(params.get("Statistic"), get_args(Statistic), "statistic", name))
    return AlarmSpec(
        namespace=str(params["Namespace"]),
        metric_name=str(params["MetricName"]),
        statistic=statistic,
        period_s=int(params["Period"]),
        dimensions=_dims(params.get("Dimensions")),
        **common,
    )


def _dims(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(d["Name"]), str(d["Value"])) for d in raw or () if isinstance(d, Mapping))
