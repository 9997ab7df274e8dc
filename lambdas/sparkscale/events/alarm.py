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

Anything else raises BadEvent with one reason: not JSON, truncated, not an alarm, a composite alarm, an alarm
on another service's metric, no cluster id, an unmanaged cluster, an unknown state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final

from sparkscale import names
from sparkscale.errors import BadEvent
from sparkscale.events.envelope import Envelope, parse_envelope, quote


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
_CLUSTER_ID: Final = re.compile(r"^j-[A-Za-z0-9]{1,64}$")
_ARN_REGION: Final = re.compile(r"^arn:aws[a-z-]*:cloudwatch:([a-z0-9-]+):")
_MAX_EVENT_CHARS: Final = 256 * 1024 * 2  # SNS messages are at most 256 KiB; nested JSON escapes double it
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
    """The independent payloads of one Lambda invocation: each record of a Records batch, else the event."""
    if isinstance(event, Mapping) and isinstance(event.get("Records"), list) and event["Records"]:
        return list(event["Records"])
    return [event]


def parse_event(event: Any, *, managed_clusters: Collection[str] | None = None) -> AlarmTrigger:
    """Parse one payload (a dict, or JSON text/bytes). A Records batch must hold exactly one record here
    (use split_records for batches). `managed_clusters`: when given, other clusters' triggers are rejected."""
    obj = _load(event, "event")
    if isinstance(obj, Mapping) and "Records" in obj:
        records = obj["Records"]
        if not isinstance(records, list) or not records:
            raise BadEvent("Records is empty or not a list")
        if len(records) != 1:
            raise BadEvent(f"a batch of {len(records)} records: parse each record on its own")
        obj = records[0]
    trigger = _parse(obj)
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
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadEvent(f"{what} is not UTF-8 text") from None
    if isinstance(raw, str):
        if len(raw) > _MAX_EVENT_CHARS:
            raise BadEvent(f"{what} is too large ({len(raw)} characters)")
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            snippet = raw.strip()[:40].replace("\n", " ")
            raise BadEvent(f"{what} is not JSON ({exc.msg} at character {exc.pos}): {snippet!r}") from None
    return raw


def _parse(obj: Any) -> AlarmTrigger:
    if not isinstance(obj, Mapping):
        raise BadEvent(f"expected a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("Sns"), Mapping):  # a Lambda SNS record
        return _from_envelope(obj["Sns"], Source.LAMBDA_SNS)
    if obj.get("eventSource") == "aws:sqs" or ("body" in obj and "receiptHandle" in obj):
        envelope = _load(obj.get("body", ""), "SQS message body")
        if not isinstance(envelope, Mapping) or "Message" not in envelope:
            raise BadEvent("SQS message body is not an SNS notification envelope")
        return _from_envelope(envelope, Source.SQS_SNS)
    if obj.get("Type") == "Notification" and "Message" in obj:
        return _from_envelope(obj, Source.SNS_ENVELOPE)
    if "detail-type" in obj:
        return from_envelope(parse_envelope(obj))
    if "AlarmName" in obj and "NewStateValue" in obj:
        return _from_alarm_body(obj, message_id=None, source=Source.ALARM_BODY)
    keys = ", ".join(sorted(str(k) for k in obj)[:6]) or "none"
    raise BadEvent(f"not an SNS, EventBridge or CloudWatch alarm payload (keys: {keys})")


def _from_envelope(env: Mapping[str, Any], source: Source) -> AlarmTrigger:
    kind = env.get("Type", "Notification")
    if kind != "Notification":
        raise BadEvent(f"SNS message of type {kind!r} is not a Notification")
    message = env.get("Message")
    if not isinstance(message, str):
        raise BadEvent("SNS Message is missing or not a string")
    body = _load(message, "SNS Message")
    if not isinstance(body, Mapping) or "AlarmName" not in body or "NewStateValue" not in body:
        raise BadEvent("SNS Message is not a CloudWatch alarm notification (no AlarmName/NewStateValue)")
    mid = env.get("MessageId")
    return _from_alarm_body(body, message_id=str(mid) if mid else None, source=source)


def _from_alarm_body(body: Mapping[str, Any], *, message_id: str | None, source: Source) -> AlarmTrigger:
    name = _required_text(body.get("AlarmName"), "AlarmName")
    state = _state(body.get("NewStateValue"), name)
    trigger = body.get("Trigger")
    if not isinstance(trigger, Mapping):
        if "AlarmRule" in body:
            raise BadEvent(f"alarm {name!r} is a composite alarm: it names no metric or cluster")
        raise BadEvent(f"alarm {name!r} has no Trigger")
    if isinstance(trigger.get("Metrics"), list):
        metrics = [
            (
                (m.get("MetricStat") or {}).get("Metric") or {}
                if isinstance(m, Mapping) and isinstance(m.get("MetricStat"), Mapping)
                else {}
            )
            for m in trigger["Metrics"]
        ]
        candidates = [
            (str(m.get("Namespace", "")), str(m.get("MetricName", "")), m.get("Dimensions"))
            for m in metrics
            if m
        ]
    else:
        candidates = [
            (str(trigger.get("Namespace", "")), str(trigger.get("MetricName", "")), trigger.get("Dimensions"))
        ]
    namespace, metric, cluster = _pick(name, candidates)
    changed = body.get("StateChangeTime")
    arn = str(body.get("AlarmArn", ""))
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
        previous_state=str(body["OldStateValue"]) if body.get("OldStateValue") else None,
        region=region,
        changed_at=str(changed) if changed else None,
    )


def from_envelope(env: Envelope, managed_clusters: Collection[str] | None = None) -> AlarmTrigger:
    """A "CloudWatch Alarm State Change" EventBridge event (the events registry's entry for alarms)."""
    if env.detail_type != names.DETAIL_ALARM_STATE_CHANGE or env.source != names.EVENT_SOURCE_CLOUDWATCH:
        raise BadEvent(
            f"EventBridge event {quote(env.detail_type)!r} from {quote(env.source)!r} is not a CloudWatch "
            "alarm state change"
        )
    trigger = _from_eventbridge(env)
    _check_managed(trigger, managed_clusters)
    return trigger


def _from_eventbridge(env: Envelope) -> AlarmTrigger:
    detail = env.detail
    name = _required_text(detail.get("alarmName"), "detail.alarmName")
    st = _obj(detail.get("state"))
    state = _state(st.get("value"), name)
    config = _obj(detail.get("configuration"))
    if "alarmRule" in config:
        raise BadEvent(f"alarm {name!r} is a composite alarm: it names no metric or cluster")
    candidates = []
    for m in config.get("metrics") or []:
        metric = ((m.get("metricStat") or {}).get("metric") or {}) if isinstance(m, Mapping) else {}
        if metric:
            candidates.append(
                (str(metric.get("namespace", "")), str(metric.get("name", "")), metric.get("dimensions"))
            )
    if not candidates:
        raise BadEvent(f"alarm {name!r} has no metric in its configuration")
    namespace, metric_name, cluster = _pick(name, candidates)
    prev = _obj(detail.get("previousState"))
    return AlarmTrigger(
        cluster_id=cluster,
        state=state,
        alarm_name=name,
        metric_name=metric_name,
        namespace=namespace,
        message_id=env.event_id or f"alarm:{name}:{state.value}:{st.get('timestamp', '')}",
        source=Source.EVENTBRIDGE,
        previous_state=str(prev["value"]) if prev.get("value") else None,
        region=env.region or None,
        changed_at=str(st["timestamp"]) if st.get("timestamp") else None,
    )


def _obj(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


# --- pieces -------------------------------------------------------------------------------------------------
def _required_text(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise BadEvent(f"{what} is missing or empty")
    return v


def _state(v: Any, alarm: str) -> AlarmState:
    try:
        return AlarmState(str(v))
    except ValueError:
        raise BadEvent(f"alarm {alarm!r} has an unknown state {v!r}") from None


def dimensions(raw: Any) -> dict[str, str]:
    """{name: value} from [{"name","value"}] (any key case) or {name: value}."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    if isinstance(raw, list):
        for d in raw:
            if isinstance(d, Mapping):
                low = {str(k).lower(): v for k, v in d.items()}
                if "name" in low and "value" in low:
                    out[str(low["name"])] = str(low["value"])
    return out


def _job_flow(raw: Any) -> str | None:
    for k, v in dimensions(raw).items():
        if k.lower() == names.DIM_JOB_FLOW_ID.lower():
            return v
    return None


def _pick(alarm: str, candidates: list[tuple[str, str, Any]]) -> tuple[str, str, str]:
    """(namespace, metric name, cluster id) of the first metric that names a cluster (JobFlowId): sparkscale's
    namespaces first, then any other (a user's own alarm on a managed cluster's metric is a wake-up too)."""
    ours = [c for c in candidates if c[0] in OUR_NAMESPACES]
    for ns, metric, dims in ours + [c for c in candidates if c[0] not in OUR_NAMESPACES]:
        cid = _job_flow(dims)
        if cid is None:
            continue
        if not _CLUSTER_ID.match(cid):
            raise BadEvent(f"alarm {alarm!r}: JobFlowId {cid!r} is not an EMR cluster id", cluster_id=None)
        return ns, metric, cid
    if not ours:
        seen = ", ".join(f"{ns or '?'} {m or '?'}" for ns, m, _ in candidates) or "no metric"
        raise BadEvent(
            f"alarm {alarm!r} is on {seen}, not an EMR, Spark heap or YARN collector metric, and none of its "
            "metrics has a JobFlowId dimension"
        )
    raise BadEvent(f"alarm {alarm!r} has no JobFlowId dimension: no cluster to evaluate")


def _region(arn: str, display: Any) -> str | None:
    m = _ARN_REGION.match(arn)
    if m:
        return m.group(1)
    if isinstance(display, str) and display:
        return REGION_CODES.get(display.strip(), display.strip())
    return None
