"""Alarm events: every payload shape the alarm handler accepts, parsed at the edge into one typed
AlarmTrigger (pure).

Accepted:
- Lambda SNS events: {"Records": [{"EventSource": "aws:sns", "Sns": {... "Message": "<alarm JSON>"}}]}
  (records say `SigningCertUrl`);
- SQS events whose bodies are SNS envelopes, and bare SNS notification envelopes
  {"Type": "Notification", "MessageId", "Message", ...} (these say `SigningCertURL`);
- bare CloudWatch alarm message bodies {"AlarmName", "NewStateValue", "Trigger", ...};
- EventBridge "CloudWatch Alarm State Change" events (detail.configuration.metrics[]);
single-metric alarms (Trigger.MetricName/Namespace/Dimensions) and metric-math alarms (Trigger.Metrics[] /
configuration.metrics[]: the first metric inside that belongs to an EMR cluster). `Dimensions` may be a list
of {"value","name"} (any key case) or EventBridge's {name: value}; the dimension may be spelled JobFlowId or
JobFlowID; `Region` may be a display name ("US East (N. Virginia)"); `Statistic` may be upper case.

Anything else raises BadEvent with one reason: not JSON, too large or nested too deeply, truncated, a value of
the wrong type at any level, not an alarm, a composite alarm, an alarm on another service's metric, no
cluster id, an unmanaged cluster, an unknown state, and (given the deployment's `Origin`) an alarm of another
account or region. Nothing else escapes: the parser is total.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from itertools import islice
from typing import Any, Final

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events.envelope import MAX_ID_CHARS, Envelope, Origin, parse_envelope, quote
from sparkscale.events.jsontext import load_json


class AlarmState(StrEnum):
    ALARM = "ALARM"
    OK = "OK"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Source(StrEnum):
    LAMBDA_SNS = "lambda-sns"
    SQS_SNS = "sqs-sns"
    SNS_ENVELOPE = "sns-envelope"
    ALARM_BODY = "alarm-body"
    EVENTBRIDGE = "eventbridge"


OUR_NAMESPACES: Final = frozenset({names.EMR_NAMESPACE, names.HEAP_NAMESPACE, names.YARN_NAMESPACE})
_CLUSTER_ID: Final = re.compile(r"j-[A-Za-z0-9]{1,64}")  # fullmatch: "$" would let a final newline in
_ARN_REGION: Final = re.compile(r"^arn:aws[a-z-]*:cloudwatch:([a-z0-9-]+):")
_ALARM_ARN: Final = re.compile(
    r"arn:aws[a-z-]{0,16}:cloudwatch:(?P<region>[a-z0-9-]{1,32}):(?P<account>[0-9]{12}):alarm:.+"
)
_REGION_CODE: Final = re.compile(r"[a-z]{2}(?:-[a-z]{1,16}){1,3}-[0-9]{1,2}")
_MAX_EVENT_CHARS: Final = 256 * 1024 * 2  # SNS messages are at most 256 KiB; nested JSON escapes double it
MAX_NAME_CHARS: Final = 255  # CloudWatch's limit for alarm names, namespaces and metric names
MAX_TIME_CHARS: Final = 64
MAX_RECORDS: Final = 10  # SNS delivers one record per invocation, SQS at most 10 by default
# CloudWatch alarm notifications carry the region's display name; the commercial regions.
REGION_CODES: Final = {
    "US East (N. Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
    "Africa (Cape Town)": "af-south-1",
    "Asia Pacific (Hong Kong)": "ap-east-1",
    "Asia Pacific (Hyderabad)": "ap-south-2",
    "Asia Pacific (Jakarta)": "ap-southeast-3",
    "Asia Pacific (Melbourne)": "ap-southeast-4",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "Asia Pacific (Osaka)": "ap-northeast-3",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Canada (Central)": "ca-central-1",
    "Europe (Frankfurt)": "eu-central-1",
    "EU (Frankfurt)": "eu-central-1",
    "Europe (Ireland)": "eu-west-1",
    "EU (Ireland)": "eu-west-1",
    "Europe (London)": "eu-west-2",
    "EU (London)": "eu-west-2",
    "Europe (Milan)": "eu-south-1",
    "Europe (Paris)": "eu-west-3",
    "EU (Paris)": "eu-west-3",
    "Europe (Spain)": "eu-south-2",
    "Europe (Stockholm)": "eu-north-1",
    "EU (Stockholm)": "eu-north-1",
    "Europe (Zurich)": "eu-central-2",
    "Middle East (Bahrain)": "me-south-1",
    "Middle East (UAE)": "me-central-1",
    "South America (Sao Paulo)": "sa-east-1",
    "South America (São Paulo)": "sa-east-1",
}


@dataclass(frozen=True, slots=True)
class AlarmTrigger:
    """One alarm state change that names a cluster: a wake-up call for usecases.scale.run_once."""

    cluster_id: str
    state: AlarmState
    alarm_name: str
    metric_name: str  # for metric-math alarms, the metric inside
    namespace: str
    message_id: str  # SNS MessageId / EventBridge id; for a bare alarm body: alarm + state + time
    source: Source
    previous_state: str | None = None
    region: str | None = None  # region code (from the ARN, the event or the display name)
    changed_at: str | None = None  # StateChangeTime / state.timestamp, as given

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        d["source"] = self.source.value
        return d


# --- entry points -------------------------------------------------------------------------------------------
def split_records(event: Any) -> list[Any]:
    """The independent payloads of one Lambda invocation: each record of a Records batch of at most
    MAX_RECORDS, else the event (which parse_event then rejects once, as a batch too large)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list) and 0 < len(records) <= MAX_RECORDS:
        return list(records)
    return [event]


def parse_event(
    event: Any, *, managed_clusters: Collection[str] | None = None, origin: Origin | None = None
) -> AlarmTrigger:
    """Parse one payload (a dict, or JSON text/bytes). A Records batch must hold exactly one record here
    (use split_records for batches). `managed_clusters`: when given, other clusters' triggers are rejected;
    `origin`: when given, an alarm whose ARN (or EventBridge account/region) names another is rejected."""
    obj = _load(event, "event")
    if isinstance(obj, Mapping) and "Records" in obj:
        records = obj["Records"]
        if not isinstance(records, list) or not records:
            raise BadEvent("Records is empty or not a list")
        if len(records) != 1:
            raise BadEvent(f"a batch of {len(records)} records: parse each record on its own")
        obj = records[0]
    trigger = _parse(obj, origin)
    _check_managed(trigger, managed_clusters)
    return trigger


def _check_managed(trigger: AlarmTrigger, managed_clusters: Collection[str] | None) -> None:
    if managed_clusters is not None and trigger.cluster_id not in managed_clusters:
        raise BadEvent(
            f"cluster {trigger.cluster_id} (alarm {trigger.alarm_name!r}) is not managed by this deployment",
            cluster_id=trigger.cluster_id,
        )


# --- shapes -------------------------------------------------------------------------------------------------
def _load(raw: Any, what: str) -> Any:
    if isinstance(raw, bytes | bytearray):
        if len(raw) > _MAX_EVENT_CHARS:
            raise BadEvent(f"{what} is too large ({len(raw)} bytes)")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadEvent(f"{what} is not UTF-8 text") from None
    if isinstance(raw, str):
        return load_json(raw, what=what, max_chars=_MAX_EVENT_CHARS)
    return raw


def _parse(obj: Any, origin: Origin | None = None) -> AlarmTrigger:
    if not isinstance(obj, Mapping):
        raise BadEvent(f"expected a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("Sns"), Mapping):  # a Lambda SNS record
        return _from_envelope(obj["Sns"], Source.LAMBDA_SNS, origin)
    if obj.get("eventSource") == "aws:sqs" or ("body" in obj and "receiptHandle" in obj):
        envelope = _load(obj.get("body", ""), "SQS message body")
        if not isinstance(envelope, Mapping) or "Message" not in envelope:
            raise BadEvent("SQS message body is not an SNS notification envelope")
        return _from_envelope(envelope, Source.SQS_SNS, origin)
    if obj.get("Type") == "Notification" and "Message" in obj:
        return _from_envelope(obj, Source.SNS_ENVELOPE, origin)
    if "detail-type" in obj:
        return from_envelope(parse_envelope(obj), origin=origin)
    if "AlarmName" in obj and "NewStateValue" in obj:
        return _from_alarm_body(obj, message_id=None, source=Source.ALARM_BODY, origin=origin)
    keys = ", ".join(sorted(quote(k) for k in islice(obj, 100))[:6]) or "none"
    raise BadEvent(f"not an SNS, EventBridge or CloudWatch alarm payload (keys: {keys})")


def _from_envelope(env: Mapping[str, Any], source: Source, origin: Origin | None) -> AlarmTrigger:
    kind = env.get("Type", "Notification")
    if kind != "Notification":
        raise BadEvent(f"SNS message of type {quote(kind)!r} is not a Notification")
    message = env.get("Message")
    if not isinstance(message, str):
        raise BadEvent("SNS Message is missing or not a string")
    body = _load(message, "SNS Message")
    if not isinstance(body, Mapping) or "AlarmName" not in body or "NewStateValue" not in body:
        raise BadEvent("SNS Message is not a CloudWatch alarm notification (no AlarmName/NewStateValue)")
    mid = env.get("MessageId")
    if mid is not None and (not isinstance(mid, str) or len(mid) > MAX_ID_CHARS):
        raise BadEvent(f"SNS MessageId {quote(mid)!r} is not a message id")
    return _from_alarm_body(body, message_id=mid or None, source=source, origin=origin)


def _from_alarm_body(
    body: Mapping[str, Any], *, message_id: str | None, source: Source, origin: Origin | None
) -> AlarmTrigger:
    name = _alarm_name(body.get("AlarmName"), "AlarmName")
    state = _state(body.get("NewStateValue"), name)
    arn = _text_or_none(body.get("AlarmArn"), 2 * MAX_NAME_CHARS) or ""
    _check_arn(name, arn, origin)
    trigger = body.get("Trigger")
    if not isinstance(trigger, Mapping):
        if "AlarmRule" in body:
            raise BadEvent(f"alarm {name!r} is a composite alarm: it names no metric or cluster")
        raise BadEvent(f"alarm {name!r} has no Trigger")
    if isinstance(trigger.get("Metrics"), list):  # metric math: Metrics[].MetricStat.Metric
        metrics = [_obj(_obj(_obj(m).get("MetricStat")).get("Metric")) for m in trigger["Metrics"]]
        candidates = [_candidate(m, "Namespace", "MetricName", "Dimensions") for m in metrics if m]
    else:
        candidates = [_candidate(trigger, "Namespace", "MetricName", "Dimensions")]
    namespace, metric, cluster = _pick(name, candidates)
    changed = _text_or_none(body.get("StateChangeTime"), MAX_TIME_CHARS)
    region = _region(arn, body.get("Region"))
    mid = message_id or f"alarm:{arn or name}:{state.value}:{changed or ''}"
    return AlarmTrigger(
        cluster_id=cluster,
        state=state,
        alarm_name=name,
        metric_name=metric,
        namespace=namespace,
        message_id=mid,
        source=source,
        previous_state=_previous(body.get("OldStateValue")),
        region=region,
        changed_at=changed,
    )


def from_envelope(
    env: Envelope, managed_clusters: Collection[str] | None = None, *, origin: Origin | None = None
) -> AlarmTrigger:
    """A "CloudWatch Alarm State Change" EventBridge event (the events registry's entry for alarms)."""
    if env.detail_type != names.DETAIL_ALARM_STATE_CHANGE or env.source != names.EVENT_SOURCE_CLOUDWATCH:
        raise BadEvent(
            f"EventBridge event {quote(env.detail_type)!r} from {quote(env.source)!r} is not a CloudWatch "
            "alarm state change"
        )
    trigger = _from_eventbridge(env, origin)
    _check_managed(trigger, managed_clusters)
    return trigger


def _from_eventbridge(env: Envelope, origin: Origin | None) -> AlarmTrigger:
    detail = env.detail
    name = _alarm_name(detail.get("alarmName"), "detail.alarmName")
    st = _obj(detail.get("state"))
    state = _state(st.get("value"), name)
    if origin is not None and (env.account, env.region) != (origin.account, origin.region):
        raise BadEvent(
            f"alarm {name!r} is in account {quote(env.account) or '?'} region {quote(env.region) or '?'}, "
            f"not this deployment's {origin.account} {origin.region}"
        )
    config = _obj(detail.get("configuration"))
    if "alarmRule" in config:
        raise BadEvent(f"alarm {name!r} is a composite alarm: it names no metric or cluster")
    metrics = config.get("metrics")
    candidates = [
        _candidate(metric, "namespace", "name", "dimensions")
        for metric in (_obj(_obj(_obj(m).get("metricStat")).get("metric")) for m in _list(metrics))
        if metric
    ]
    if not candidates:
        raise BadEvent(f"alarm {name!r} has no metric in its configuration")
    namespace, metric_name, cluster = _pick(name, candidates)
    stamp = _text_or_none(st.get("timestamp"), MAX_TIME_CHARS)
    return AlarmTrigger(
        cluster_id=cluster,
        state=state,
        alarm_name=name,
        metric_name=metric_name,
        namespace=namespace,
        message_id=env.event_id or f"alarm:{name}:{state.value}:{stamp or ''}",
        source=Source.EVENTBRIDGE,
        previous_state=_previous(_obj(detail.get("previousState")).get("value")),
        region=env.region or None,
        changed_at=stamp,
    )


def _obj(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


# --- pieces -------------------------------------------------------------------------------------------------
def _check_arn(name: str, arn: str, origin: Origin | None) -> None:
    """With the deployment's origin, the alarm's ARN must name the same account and region."""
    if origin is None:
        return
    m = _ALARM_ARN.fullmatch(arn)
    if m is None:
        raise BadEvent(f"alarm {name!r} has no CloudWatch alarm ARN ({quote(arn) or 'none'}): whose is it?")
    if (m["account"], m["region"]) != (origin.account, origin.region):
        raise BadEvent(
            f"alarm {name!r} is in account {m['account']} region {m['region']}, not this deployment's "
            f"{origin.account} {origin.region}"
        )


def _alarm_name(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise BadEvent(f"{what} is missing or empty")
    if len(v) > MAX_NAME_CHARS:
        raise BadEvent(f"{what} of {len(v)} characters is not an alarm name (at most {MAX_NAME_CHARS})")
    return v


def _text_or_none(v: Any, max_chars: int) -> str | None:
    """A string field kept as given when it is a non-empty string of at most `max_chars`, else None."""
    return v if isinstance(v, str) and v and len(v) <= max_chars else None


def _previous(v: Any) -> str | None:
    return v if isinstance(v, str) and v in AlarmState.__members__ else None


def _candidate(metric: Mapping[str, Any], ns_key: str, name_key: str, dims_key: str) -> tuple[str, str, Any]:
    """(namespace, metric name, raw dimensions) of one metric; a name that is not a string of at most
    MAX_NAME_CHARS counts as none."""
    return (
        _text_or_none(metric.get(ns_key), MAX_NAME_CHARS) or "",
        _text_or_none(metric.get(name_key), MAX_NAME_CHARS) or "",
        metric.get(dims_key),
    )


def _state(v: Any, alarm: str) -> AlarmState:
    if isinstance(v, str) and v in AlarmState.__members__:
        return AlarmState(v)
    raise BadEvent(f"alarm {alarm!r} has an unknown state {quote(v)!r}")


def dimensions(raw: Any) -> dict[str, str]:
    """{name: value} from [{"name","value"}] (any key case) or {name: value}; only string names and values."""
    if isinstance(raw, Mapping):
        return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
    out: dict[str, str] = {}
    for d in _list(raw):
        if isinstance(d, Mapping):
            low = {k.lower(): v for k, v in d.items() if isinstance(k, str)}
            name, value = low.get("name"), low.get("value")
            if isinstance(name, str) and isinstance(value, str):
                out[name] = value
    return out


def _job_flow(raw: Any) -> str | None:
    for k, v in dimensions(raw).items():
        if k.lower() == names.DIM_JOB_FLOW_ID.lower():
            return v
    return None


_KINESIS_AGE: Final = (names.KINESIS_NAMESPACE, names.KINESIS_ITERATOR_AGE)
# `<prefix>-<cluster id>-kinesis-age-rising-<stream>` (alarms.kinesis_alarm_specs)
_KINESIS_ALARM: Final = re.compile(r"-(j-[A-Za-z0-9]{1,64})-" + re.escape(names.ALARM_KIND_KINESIS_AGE) + "-")


def _pick(alarm: str, candidates: list[tuple[str, str, Any]]) -> tuple[str, str, str]:
    """(namespace, metric name, cluster id) of the first metric that names a cluster (JobFlowId): sparkscale's
    namespaces first, then any other (a user's own alarm on a managed cluster's metric is a wake-up too)."""
    ours = [c for c in candidates if c[0] in OUR_NAMESPACES]
    for ns, metric, dims in ours + [c for c in candidates if c[0] not in OUR_NAMESPACES]:
        cid = _job_flow(dims)
        if cid is None:
            continue
        if not _CLUSTER_ID.fullmatch(cid):
            raise BadEvent(f"alarm {alarm!r}: JobFlowId {quote(cid)!r} is not an EMR cluster id")
        return ns, metric, cid
    kinesis = next((c for c in candidates if c[:2] == _KINESIS_AGE), None)
    if kinesis is not None:  # a stream's metric names no cluster: the alarm's name does (alarms.py)
        m = _KINESIS_ALARM.search(alarm)
        if m is None:
            raise BadEvent(f"alarm {alarm!r} on a Kinesis iterator age names no cluster")
        return kinesis[0], kinesis[1], m.group(1)
    if not ours:
        seen = ", ".join(f"{ns or '?'} {m or '?'}" for ns, m, _ in candidates[:3]) or "no metric"
        more = f" and {len(candidates) - 3} more" if len(candidates) > 3 else ""
        raise BadEvent(
            f"alarm {alarm!r} is on {quote(seen)}{more}, not an EMR, Spark heap or YARN collector metric, "
            "and none of its metrics has a JobFlowId dimension"
        )
    raise BadEvent(f"alarm {alarm!r} has no JobFlowId dimension: no cluster to evaluate")


def _region(arn: str, display: Any) -> str | None:
    """The region code from the ARN, else from the display name (a code as such), else None."""
    m = _ARN_REGION.match(arn)
    if m:
        return m.group(1)
    if isinstance(display, str) and display:
        code = REGION_CODES.get(display.strip(), display.strip())
        return code if _REGION_CODE.fullmatch(code) else None
    return None
