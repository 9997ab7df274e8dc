"""The one configuration schema: defaults, units, meaning and validation of every setting.

Read from cdk.json context (the stack), a JSON file (the CLI) and the Lambda environment (the handlers, which
get the same JSON the stack validated). Validation happens once, in `Config.from_mapping`, and fails with a
`ConfigError` naming the field and why. Pure: no os.environ, no file access here (see config_io.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from functools import cached_property
from types import UnionType
from typing import Any, Final, Literal, Union, cast, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sparkscale import names

CONTEXT_KEY: Final = "sparkscale"  # cdk.json: {"context": {"sparkscale": {...}}}
FORECAST_MODES: Final = ("off", "observe", "act")
FORECAST_SEASONAL_RULES: Final = ("peak", "shift")
FLEET_UNIT_MEMORY_RULES: Final = ("smallest", "average")  # policy.fleet.UNIT_MEMORY_RULES
DIGEST_WEEKLY_DAYS: Final = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "never",
)


class ConfigError(ValueError):
    """A setting is wrong. `field` names it; the message says why."""

    def __init__(self, field_name: str, why: str, *, source: str = "config") -> None:
        self.field = field_name
        self.why = why
        super().__init__(f"{source}: invalid setting {field_name!r}: {why}")


def _f(
    default: Any,
    *,
    unit: str,
    doc: str,
    lo: float | None = None,
    hi: float | None = None,
    kind: str = "policy",
) -> Any:
    """A setting with an immutable default (number, bool, text, None) and its metadata."""
    return field(default=default, metadata=_meta(unit=unit, doc=doc, lo=lo, hi=hi, kind=kind))


def _meta(
    *, unit: str, doc: str, lo: float | None = None, hi: float | None = None, kind: str = "policy"
) -> dict[str, Any]:
    """Field metadata: unit, meaning, range and kind ("policy" or "deploy"); docs/configuration.md uses it."""
    return {"unit": unit, "doc": doc, "lo": lo, "hi": hi, "kind": kind}


@dataclass(frozen=True, slots=True)
class GroupBounds:
    min_nodes: int
    max_nodes: int


@dataclass(frozen=True)
class Config:
    """Every setting of sparkscale. Field metadata carries unit, meaning and range; the table in
    docs/configuration.md is built from it and a test keeps the two equal."""

    # --- targets: what "enough memory" means (target tracking) ---------------------------------------------
    yarn_memory_used_target_pct: float = _f(
        93.0,
        unit="%",
        lo=1,
        hi=100,
        doc="Target share of YARN memory allocated (100 - YARNMemoryAvailablePercentage), of the memory "
        "running or requested.",
    )
    heap_used_target_pct: float = _f(
        70.0,
        unit="%",
        lo=1,
        hi=100,
        doc="Target Spark executor JVM heap used, cluster-wide (sum used / sum max).",
    )
    total_load_target_per_node: float = _f(
        0.0,
        unit="transfers/node",
        lo=0,
        doc="Target EMR TotalLoad per core+task node; 0 ignores TotalLoad for capacity (it counts HDFS "
        "transfers and stays near 0 for Spark on S3).",
    )
    deadband_pct: float = _f(
        3.5,
        unit="% of target",
        lo=0,
        hi=50,
        doc="No change while every signal is within target ± this share.",
    )
    executor_memory_overhead_pct: float = _f(
        10.0,
        unit="% of heap",
        lo=0,
        hi=400,
        doc="YARN memory an executor container holds beyond its JVM heap (Spark's "
        "spark.executor.memoryOverheadFactor, 10 % by default): turns the heap agent's JvmHeapMax into the "
        "memory the executors hold, a fresher lower bound of YARN's allocated memory.",
    )
    usable_memory_fraction: float = _f(
        0.75, unit="fraction", lo=0.05, hi=1, doc="Share of an instance's memory that YARN can allocate."
    )
    default_container_memory_mb: int = _f(
        4096,
        unit="MiB",
        lo=128,
        doc="Size of one pending container when MemoryAllocatedMB / ContainerAllocated cannot give it.",
    )
    # --- bounds ---------------------------------------------------------------------------------------------
    min_task_nodes: int = _f(
        0, unit="nodes", lo=0, doc="Fewest TASK nodes in all SPOT/ON_DEMAND task groups."
    )
    max_task_nodes: int = _f(20, unit="nodes", lo=0, doc="Most TASK nodes in all task groups together.")
    group_min_nodes: int = _f(0, unit="nodes", lo=0, doc="Default fewest nodes per TASK group.")
    group_max_nodes: int = _f(20, unit="nodes", lo=0, doc="Default most nodes per TASK group.")
    group_bounds: dict[str, GroupBounds] = field(
        default_factory=dict,
        metadata=_meta(
            unit="{id or name: {min_nodes, max_nodes}}",
            doc="Per-group overrides of the defaults, keyed by instance-group id or name.",
        ),
    )
    max_scale_out_step_nodes: int = _f(10, unit="nodes", lo=1, doc="Most TASK nodes added by one decision.")
    max_scale_in_step_nodes: int = _f(10, unit="nodes", lo=1, doc="Most TASK nodes removed by one decision.")
    budget_usd_per_hour: float | None = _f(
        None, unit="USD/h", lo=0, doc="Cap on the TASK groups' cost per hour; null for none."
    )
    # --- stability ------------------------------------------------------------------------------------------
    cooldown_after_scale_out_s: int = _f(
        120, unit="s", lo=0, doc="No new action this long after a scale-out."
    )
    cooldown_after_scale_in_s: int = _f(
        120,
        unit="s",
        lo=0,
        doc="No further scale-in this long after a scale-in (a scale-out is still allowed).",
    )
    scale_in_stabilization_s: int = _f(
        600, unit="s", lo=0, doc="Scale in only to the highest recommendation of this trailing window."
    )
    burst_first_step_nodes: int = _f(
        1,
        unit="nodes",
        lo=0,
        doc="Most TASK nodes the first scale-out of a burst adds; the whole shortfall is bought once it has "
        "lasted burst_confirm_s and the cluster's earlier bursts do not say it ends too soon (see "
        "burst_useful_s). 0: off, every scale-out buys the whole shortfall.",
    )
    burst_confirm_s: int = _f(
        120,
        unit="s",
        lo=0,
        doc="How long a burst must last before its whole shortfall is bought (burst_first_step_nodes > 0).",
    )
    burst_useful_s: int = _f(
        720,
        unit="s",
        lo=0,
        doc="A confirmed burst's whole shortfall is not bought when the cluster's earlier bursts that lasted "
        "as long went on for a median of less than the lead time plus this (nodes bought now would be usable "
        "for less than this before it ends).",
    )
    pending_share_pct: float = _f(
        100.0,
        unit="%",
        lo=1,
        hi=100,
        doc="Of the YARN memory waiting beyond what the cluster had when a burst began, the share a "
        "confirmed burst's scale-out buys (burst_first_step_nodes > 0). 100: all of it, every waiting "
        "container starts at once; less: the rest waits and runs on the nodes bought, in turn (cheaper for "
        "a queue of work, slower for a job that needs all its executors at once).",
    )
    pending_whole_multiple: float = _f(
        0.0,
        unit="×",
        lo=0,
        doc="With pending_share_pct < 100: the memory waiting is bought whole up to this multiple of the "
        "capacity the burst began with, and pending_share_pct applies only beyond it (a wait that deep is "
        "a queue of work rather than one job's executors).",
    )
    burst_regrowth: bool = _f(
        True,
        unit="bool",
        doc="A burst held at its first step gets its first step again when its executors' heap is pressed "
        "(once per heap-pressure episode), and is a new burst on top, with a first step of its own, when its "
        "need grows beyond the deadband once its last step is the lead time + burst_useful_s old. false: it "
        "holds until memory runs out again or the burst ends.",
    )
    burst_buy_without_history: bool = _f(
        False,
        unit="bool",
        doc="With fewer than 4 of the cluster's own bursts to go by (a new cluster, or the first bursts "
        "after the state is lost): true buys a confirmed burst's whole shortfall; false takes the burst to "
        "go on for as long again as it has lasted (half of the bursts that have lasted a while do), so it "
        "is bought once it has lasted the lead time + burst_useful_s.",
    )
    heap_pressure_waits_for_nodes: bool = _f(
        True,
        unit="bool",
        doc="A pressed heap adds no node while the YARN collector shows memory pending and TASK nodes "
        "already requested are starting (they answer that shortfall); if it is still pressed once they run, "
        "the node is added then. false: it adds one at once, beyond the nodes coming.",
    )
    forecast_mode: str = _f(
        "off",
        unit="off \\| observe \\| act",
        doc="Forecast of the demand when nodes requested now would be usable (the measured request-to-usable "
        "delay plus the driving datapoint's age): off; observe (computed, recorded in the decision and the "
        "audit, never acted on); act (sizes for it, never scales in below it, buys nothing for a burst it "
        "forecasts to end before new nodes are usable).",
    )
    forecast_seasonal: str = _f(
        "peak",
        unit="peak \\| shift",
        doc="What the forecast reads from the same minutes one day (and one week) earlier, once that "
        "pattern has repeated over the last half hour: peak (that period's peak at the forecast time; the "
        "forecast is the larger of it and the recent trend); shift (the demand now plus that period's change "
        "from now to the forecast time, scaled by today's level against that period's; it replaces the "
        "trend).",
    )
    idle_after_s: int = _f(
        900,
        unit="s",
        lo=0,
        doc="Go to the minimum (in one step) when no application ran or waited for this long.",
    )
    emr_metric_max_age_s: int = _f(
        900,
        unit="s",
        lo=60,
        doc="An EMR metric older than this is ignored (EMR publishes every 300 s, late).",
    )
    heap_metric_max_age_s: int = _f(180, unit="s", lo=30, doc="A heap metric older than this is ignored.")
    yarn_metric_max_age_s: int = _f(
        150,
        unit="s",
        lo=60,
        doc="A metric of the agent's YARN collector (Sparkscale/Yarn: the ResourceManager polled every 10 s, "
        "published every 60 s) older than this is ignored, and EMR's 5-minute YARN metrics decide instead; "
        "also how long the collector may be silent before operators hear of it.",
    )
    node_report_max_age_s: int = _f(
        180,
        unit="s",
        lo=30,
        doc="Safe scale-in: the agent's YARN node report (written every 30 s) older than this is not used; a "
        "shrink then lets EMR choose the nodes that go, and its reason says so.",
    )
    scale_in_node_timeout_s: int | None = _f(
        None,
        unit="s",
        lo=0,
        doc="Safe scale-in: InstanceTerminationTimeout for the nodes sparkscale chooses to remove (how long "
        "YARN lets their containers finish); unset: EMR's decommissioning timeout.",
    )
    dry_run: bool = _f(False, unit="bool", doc="Decide, log and notify, but never resize.")
    # --- streaming (docs/streaming.md) ---------------------------------------------------------------------
    streams: list[str] = field(
        default_factory=list,
        metadata=_meta(
            unit="Kinesis stream names",
            doc="The Amazon Kinesis streams the cluster consumes: their GetRecords.IteratorAgeMilliseconds "
            "is read with the other metrics, an alarm wakes the scaler when it keeps rising, and the "
            "streaming signal is on. Per cluster also by its tag sparkscale:kinesis-streams=a,b.",
        ),
    )
    streaming_signal: bool = _f(
        False,
        unit="bool",
        doc="Read Spark's streaming metrics (Sparkscale/SparkStreaming) and scale on how far behind the "
        "streaming queries are; on by itself when `streams` names a stream.",
    )
    streaming_trigger_interval_s: float = _f(
        60.0,
        unit="s",
        lo=1,
        doc="The streaming queries' trigger (micro-batch) interval; Spark publishes no metric of it.",
    )
    streaming_latency_target_s: float = _f(
        0.0,
        unit="s",
        lo=0,
        doc="A batch latency or scheduling delay above this means the stream is behind; 0: the trigger "
        "interval (streaming_trigger_interval_s).",
    )
    streaming_rate_tolerance_pct: float = _f(
        10.0,
        unit="% of input rate",
        lo=0,
        hi=100,
        doc="Behind when the rows processed per second are below the rows arriving per second by more than "
        "this share.",
    )
    streaming_headroom_pct: float = _f(
        20.0,
        unit="% of the capacity that keeps up",
        lo=0,
        hi=400,
        doc="Spare capacity kept for a stream: scale-in never goes below the capacity running x input rate / "
        "processed rate x (1 + this share), and a stream behind asks for at most that much with the latency "
        "alone.",
    )
    streaming_iterator_age_rising_minutes: int = _f(
        5,
        unit="minutes",
        lo=2,
        hi=15,
        doc="Behind when the Kinesis iterator age (the most of the streams) has risen every minute for this "
        "many minutes; also the alarm's number of rising minutes (at most 15: the metrics are read 20 "
        "minutes back).",
    )
    streaming_caught_up_iterator_age_s: float = _f(
        60.0,
        unit="s",
        lo=0,
        doc="Caught up (scale-in allowed) only when the Kinesis iterator age is at most this, and the batch "
        "latency under its target.",
    )
    streaming_metric_max_age_s: int = _f(
        180,
        unit="s",
        lo=60,
        doc="A Spark streaming metric (the agent's, 60 s) or a Kinesis iterator age older than this is "
        "ignored.",
    )
    # --- spot market ----------------------------------------------------------------------------------------
    max_share_per_instance_type: float = _f(
        1.0,
        unit="fraction",
        lo=0.05,
        hi=1,
        doc="Most of the TASK memory one instance type may hold (diversification).",
    )
    node_premium_weight: float = _f(
        8.0,
        unit="×",
        lo=1,
        hi=100,
        doc="How many times the planner counts an instance type's premium over the cheapest USD per "
        "GiB-hour when it adds nodes: about how much longer a node bought now stays than the spare memory "
        "of a larger, cheaper node lasts. 1 buys the cheapest nodes per hour now (a small dear node for a "
        "small increment, which then stays); higher buys the cheaper memory and lets the next increment use "
        "its spare part (docs/how-it-decides.md).",
    )
    spot_fallback_timeout_s: int = _f(
        600,
        unit="s",
        lo=60,
        doc="A SPOT group whose requested nodes are not running after this gets no more.",
    )
    on_demand_fallback: bool = _f(
        True,
        unit="bool",
        doc="Use ON_DEMAND TASK groups when a SPOT group cannot deliver; capacity moves back to spot after.",
    )
    spot_price_cache_s: int = _f(300, unit="s", lo=0, doc="How long spot prices are reused.")
    fleet_unit_memory: str = _f(
        "smallest",
        unit="smallest \\| average",
        doc="Instance fleets: the memory of one capacity unit of the TASK fleet. smallest: the smallest "
        "memory per unit among its instance types (EMR's allocation strategy may deliver every unit from "
        "it); average: their total memory over their total weighted capacity (docs/instance-fleets.md).",
    )
    # --- alarms (the stack's thresholds; the handlers re-decide from the metrics) ---------------------------
    total_load_alarm_threshold: float = _f(
        100.0,
        unit="transfers",
        lo=0,
        doc="TotalLoad above this (300 s periods) wakes the scaler.",
    )
    container_pending_ratio_alarm_threshold: float = _f(
        0.5,
        unit="ratio",
        lo=0,
        doc="ContainerPendingRatio (pending / allocated) above this wakes the scaler.",
    )
    heap_used_alarm_bytes: int | None = _f(
        None,
        unit="bytes",
        lo=0,
        doc='Optional absolute heap alarm, e.g. 21474836480 for "JvmHeapUsed > 20 GB".',
    )
    heap_critical_pct: float = _f(
        90.0,
        unit="%",
        lo=1,
        hi=100,
        doc="Heap used above this is critical: the alarm also goes to operators.",
    )
    # --- deployment -----------------------------------------------------------------------------------------
    clusters: list[str] = field(
        default_factory=list,
        metadata=_meta(unit="EMR cluster ids", doc="Managed clusters (j-…).", kind="deploy"),
    )
    discovery_tag_key: str = _f(
        "sparkscale:managed",
        unit="text",
        doc="A cluster carrying this tag (with discovery_tag_value) is managed from its first minute to its "
        "termination, without redeploying (docs/clusters-by-tag.md).",
        kind="deploy",
    )
    discovery_tag_value: str = _f(
        "true", unit="text", doc="The value discovery_tag_key must have.", kind="deploy"
    )
    profiles: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata=_meta(
            unit="{name: {setting: value}}",
            doc="Named overrides of the policy settings, chosen per cluster by its tag "
            "sparkscale:profile=NAME.",
            kind="deploy",
        ),
    )
    operator_emails: list[str] = field(
        default_factory=list,
        metadata=_meta(
            unit="addresses",
            doc="Emailed the notices of `email_notice_kinds` and the alarms meant for people.",
            kind="deploy",
        ),
    )
    email_notice_kinds: list[str] = field(
        default_factory=lambda: list(names.NOTICE_KINDS_EMAILED_BY_DEFAULT),
        metadata=_meta(
            unit="notice kinds",
            doc="The notices emailed to operator_emails (an SNS filter policy on the notice's kind); every "
            "notice still goes to the operator topic for other subscribers. Kinds: "
            + ", ".join(names.NOTICE_KINDS)
            + ".",
            kind="deploy",
        ),
    )
    reconcile_rate_s: int = _f(
        120,
        unit="s",
        lo=60,
        doc=(
            "How often every managed cluster is re-evaluated (whole minutes); the alarms wake the scaler at "
            "once in between."
        ),
        kind="deploy",
    )
    alarm_prefix: str = _f("sparkscale", unit="text", doc="Prefix of every alarm name.", kind="deploy")
    digest_hour: int = _f(
        8,
        unit="hour",
        lo=0,
        hi=23,
        doc="The local hour (in digest_time_zone) the daily digest of the day before is emailed "
        "(feature flag `digest`).",
        kind="deploy",
    )
    digest_time_zone: str = _f(
        "UTC",
        unit="IANA time zone",
        doc="The time zone of digest_hour and of the digest's day (for example Europe/Paris).",
        kind="deploy",
    )
    digest_weekly_day: str = _f(
        "monday",
        unit="weekday \\| never",
        doc="The local weekday whose daily digest also sums up the seven days before it (TASK nodes, their "
        "cost, time at max, actions per cluster) and compares each cluster's week with EMR's default rules, "
        "static peak and the oracle (the savings report); never: no weekly section.",
        kind="deploy",
    )
    powertools_layer_version: str = _f(
        "latest",
        unit="text",
        doc="Powertools layer, resolved at deploy time from the public SSM parameter ('latest' or '3.37.0').",
        kind="deploy",
    )
    lease_ttl_s: int = _f(
        90,
        unit="s",
        lo=10,
        doc="Per-cluster evaluation lease; longer than a handler's timeout.",
        kind="deploy",
    )
    audit_ttl_days: int = _f(30, unit="days", lo=1, doc="Audit items expire after this.", kind="deploy")
    reserved_concurrency: int = _f(
        5, unit="invocations", lo=1, doc="Reserved concurrency of each scaler Lambda.", kind="deploy"
    )
    fanout_max_concurrency: int = _f(
        10,
        unit="invocations",
        lo=2,
        hi=1000,
        doc="Most evaluations of the reconcile schedule running at once (the evaluation queue's maximum "
        "concurrency; also the evaluating function's reserved concurrency).",
        kind="deploy",
    )
    api_share_pct: float = _f(
        50.0,
        unit="%",
        lo=1,
        hi=100,
        doc="Share of the account's per-API AWS rate limits the reconcile schedule plans to use; the rest "
        "is left to everything else in the account (docs/many-clusters.md).",
        kind="deploy",
    )
    at_minimum_recheck_s: int = _f(
        600,
        unit="s",
        lo=0,
        hi=86400,
        doc="How long the reconcile schedule trusts an evaluation that found a cluster's TASK groups at "
        "their minimum with no resize in flight: without an alarm in ALARM, such a cluster is not queued "
        "again until that record is this old (0: every managed cluster, every period; "
        "docs/many-clusters.md).",
        kind="deploy",
    )
    emr_read_rate_per_s: float = _f(
        1.0,
        unit="calls/s",
        lo=0.1,
        hi=1000,
        doc="The replenishment rate of the account's DescribeCluster and ListInstanceGroups quotas (AWS's "
        "default: 1 a second each); set it after raising them (docs/many-clusters.md).",
        kind="deploy",
    )

    # -------------------------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *, source: str = "config") -> Config:
        """Validate `raw` (missing keys take their defaults). Raises ConfigError naming the first bad
        field."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                unknown[0], f"unknown setting (known: {', '.join(sorted(known))})", source=source
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            values[f.name] = _coerce(f.name, raw[f.name], f.default, f.metadata, source)
        cfg = cls(**values)
        cfg._check_relations(source)
        for name in cfg.profiles:
            cfg.for_profile(name, source=source)
        return cfg

    @classmethod
    def from_json(cls, text: str, *, source: str = "config") -> Config:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError("<document>", f"not JSON: {exc}", source=source) from None
        if not isinstance(raw, dict):
            raise ConfigError("<document>", "must be a JSON object", source=source)
        return cls.from_mapping(raw, source=source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def bounds_for(self, group_id: str, group_name: str = "") -> GroupBounds:
        """Bounds of one TASK group: an override by id, then by name, else the defaults."""
        if self.group_bounds:
            for key in (group_id, group_name):
                if key and key in self.group_bounds:
                    return self.group_bounds[key]
        return self._default_bounds

    def for_profile(self, name: str | None, *, source: str = "config") -> Config:
        """These settings with profile `name`'s overrides (None or "": these settings). Raises ConfigError
        (field "profiles") for an unknown name or overrides that break a relation between settings."""
        if not name:
            return self
        overrides = self.profiles.get(name)
        if overrides is None:
            known = ", ".join(sorted(self.profiles)) or "none defined"
            raise ConfigError("profiles", f"unknown profile {name!r} (known: {known})", source=source)
        where = f"{source} profile {name!r}"
        values = {
            f.name: _coerce(f.name, overrides[f.name], f.default, f.metadata, where)
            for f in fields(self)
            if f.name in overrides
        }
        cfg = replace(self, **values)
        cfg._check_relations(where)
        return cfg

    @property
    def streaming(self) -> bool:
        """The streaming signal is on: its metrics are read and it may drive a decision."""
        return self.streaming_signal or bool(self.streams)

    @cached_property
    def _default_bounds(self) -> GroupBounds:
        return GroupBounds(self.group_min_nodes, self.group_max_nodes)

    def _check_forecast_seasonal(self, source: str) -> None:
        if self.forecast_seasonal not in FORECAST_SEASONAL_RULES:
            raise ConfigError(
                "forecast_seasonal",
                f"{self.forecast_seasonal!r} is not one of {', '.join(FORECAST_SEASONAL_RULES)}",
                source=source,
            )

    def _check_relations(self, source: str) -> None:
        if self.min_task_nodes > self.max_task_nodes:
            raise ConfigError(
                "min_task_nodes",
                f"{self.min_task_nodes} > max_task_nodes {self.max_task_nodes}",
                source=source,
            )
        if self.group_min_nodes > self.group_max_nodes:
            raise ConfigError(
                "group_min_nodes",
                f"{self.group_min_nodes} > group_max_nodes {self.group_max_nodes}",
                source=source,
            )
        if self.heap_critical_pct < self.heap_used_target_pct:
            raise ConfigError(
                "heap_critical_pct", f"below heap_used_target_pct {self.heap_used_target_pct}", source=source
            )
        if self.forecast_mode not in FORECAST_MODES:
            raise ConfigError(
                "forecast_mode",
                f"{self.forecast_mode!r} is not one of {', '.join(FORECAST_MODES)}",
                source=source,
            )
        self._check_forecast_seasonal(source)
        if self.fleet_unit_memory not in FLEET_UNIT_MEMORY_RULES:
            raise ConfigError(
                "fleet_unit_memory",
                f"{self.fleet_unit_memory!r} is not one of {', '.join(FLEET_UNIT_MEMORY_RULES)}",
                source=source,
            )
        for c in self.clusters:
            if not (c.startswith("j-") and len(c) > 2 and c[2:].isalnum()):
                raise ConfigError("clusters", f"{c!r} is not an EMR cluster id (j-XXXXXXXX)", source=source)
        self._check_streams(source)
        for k in self.email_notice_kinds:
            if k not in names.NOTICE_KINDS:
                raise ConfigError(
                    "email_notice_kinds",
                    f"{k!r} is not a notice kind ({', '.join(names.NOTICE_KINDS)})",
                    source=source,
                )
        for e in self.operator_emails:
            if "@" not in e or e.startswith("@") or e.endswith("@") or " " in e:
                raise ConfigError("operator_emails", f"{e!r} is not an email address", source=source)
        if not self.alarm_prefix or not all(ch.isalnum() or ch in "-_" for ch in self.alarm_prefix):
            raise ConfigError("alarm_prefix", "use letters, digits, '-' and '_' only", source=source)
        self._check_digest(source)

    def _check_streams(self, source: str) -> None:
        for stream in self.streams:
            why = stream_name_problem(stream)
            if why:
                raise ConfigError("streams", why, source=source)

    def _check_digest(self, source: str) -> None:
        if self.digest_weekly_day not in DIGEST_WEEKLY_DAYS:
            raise ConfigError(
                "digest_weekly_day",
                f"{self.digest_weekly_day!r} is not one of {', '.join(DIGEST_WEEKLY_DAYS)}",
                source=source,
            )
        if not _is_time_zone(self.digest_time_zone):
            raise ConfigError(
                "digest_time_zone", f"{self.digest_time_zone!r} is not an IANA time zone name", source=source
            )


_STREAM_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def stream_name_problem(name: str) -> str | None:
    """Why `name` is not a Kinesis stream name (1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'), or None."""
    if not 1 <= len(name) <= 128:
        return f"{name[:40]!r} is not a Kinesis stream name (1 to 128 characters)"
    bad = sorted(set(name) - _STREAM_NAME_CHARS)
    if bad:
        return f"{name!r} is not a Kinesis stream name (only a-z, A-Z, 0-9, '_', '.' and '-'; not {bad[0]!r})"
    return None


def _is_time_zone(name: str) -> bool:
    """True when zoneinfo knows `name` (an IANA time zone such as "Europe/Paris"). Where there is no time
    zone data at all (no system tz database, no `tzdata` package) only the default "UTC" is sure: any other
    name is let through, so that the settings every Lambda reads never fail for want of it (the digest then
    fails, alone, and says why); the stack is synthesized where the data is."""
    if name == "UTC":
        return True
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return bool(name) and not available_timezones()
    except ValueError:
        return False
    return True


def _coerce(name: str, value: Any, default: Any, meta: Mapping[str, Any], source: str) -> Any:
    def bad(why: str) -> ConfigError:
        return ConfigError(name, why, source=source)

    if name == "group_bounds":
        return _coerce_bounds(value, bad)
    if name == "profiles":
        return _coerce_profiles(value, bad)
    if name in ("clusters", "operator_emails", "email_notice_kinds", "streams"):
        return _coerce_strings(value, bad)
    if default is MISSING:  # pragma: no cover - every field has a default
        raise bad("no default")
    if isinstance(default, bool):
        return _coerce_bool(value, bad)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad(f"must be text, got {value!r}")
        return value
    integer = isinstance(default, int) or name == "heap_used_alarm_bytes"
    return _coerce_number(value, default, meta, integer=integer, bad=bad)


def _coerce_strings(value: Any, bad: Callable[[str], ConfigError]) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad("must be a list of strings")
    return list(value)


def _coerce_bool(value: Any, bad: Callable[[str], ConfigError]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad(f"must be true or false, got {value!r}")


def _coerce_number(
    value: Any, default: Any, meta: Mapping[str, Any], *, integer: bool, bad: Callable[[str], ConfigError]
) -> int | float | None:
    """int, float, or an optional number (default None)."""
    if value is None:
        if default is None:
            return None
        raise bad("must be a number, got null")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise bad("must be finite")
    if integer and number != int(number):
        raise bad(f"must be a whole number, got {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and number < lo:
        raise bad(f"must be >= {lo:g} {meta['unit']}, got {value!r}")
    if hi is not None and number > hi:
        raise bad(f"must be <= {hi:g} {meta['unit']}, got {value!r}")
    return int(number) if integer else number


def _coerce_profiles(value: Any, bad: Callable[[str], ConfigError]) -> dict[str, dict[str, Any]]:
    """{name: {policy setting: value}}: the shape and the keys here; the values in Config.for_profile."""
    if not isinstance(value, dict):
        raise bad("must be an object {profile name: {setting: value}}")
    policy = {f.name for f in fields(Config) if f.metadata.get("kind") == "policy"}
    out: dict[str, dict[str, Any]] = {}
    for name, overrides in value.items():
        if not isinstance(name, str) or not name or not all(ch.isalnum() or ch in "-_." for ch in name):
            raise bad(f"profile name {name!r}: use letters, digits, '-', '_' and '.' only")
        if not isinstance(overrides, dict):
            raise bad(f"profile {name!r} must be an object {{setting: value}}")
        for key in overrides:
            if key not in policy:
                why = "a deployment setting, the same for every cluster" if key in _FIELD_NAMES else "unknown"
                raise bad(f"profile {name!r}: {key!r} is {why}; a profile overrides policy settings only")
        out[name] = dict(overrides)
    return out


def _coerce_bounds(value: Any, bad: Callable[[str], ConfigError]) -> dict[str, GroupBounds]:
    if not isinstance(value, dict):
        raise bad("must be an object {group id or name: {min_nodes, max_nodes}}")
    out: dict[str, GroupBounds] = {}
    for key, b in value.items():
        if isinstance(b, GroupBounds):
            out[key] = b
            continue
        if not isinstance(b, dict) or set(b) - {"min_nodes", "max_nodes"}:
            raise bad(f"{key!r} must be {{min_nodes, max_nodes}}")
        lo, hi = b.get("min_nodes", 0), b.get("max_nodes")
        if hi is None:
            raise bad(f"{key!r} needs max_nodes")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in (lo, hi)):
            raise bad(f"{key!r}: min_nodes and max_nodes must be whole numbers >= 0")
        if lo > hi:
            raise bad(f"{key!r}: min_nodes {lo} > max_nodes {hi}")
        out[str(key)] = GroupBounds(int(lo), int(hi))
    return out


def config_table_markdown() -> str:
    """The configuration table of docs/configuration.md, from the schema itself."""
    rows = ["| setting | unit | default | meaning |", "|---|---|---|---|"]
    defaults = Config()
    for f in fields(Config):
        default = getattr(defaults, f.name)
        shown = json.dumps(asdict(defaults)[f.name]) if not isinstance(default, str) else default
        doc = cast(str, f.metadata["doc"]).replace("|", "\\|")
        rows.append(f"| `{f.name}` | {f.metadata['unit']} | `{shown}` | {doc} |")
    return "\n".join(rows)


FieldKind = Literal["policy", "deploy"]
_FIELD_NAMES: Final = frozenset(f.name for f in fields(Config))


def config_json_schema() -> dict[str, Any]:
    """The settings as a JSON Schema (draft 2020-12), from the same fields, metadata and defaults that
    `Config.from_mapping` validates with: types, units and meaning, ranges, defaults, no unknown keys.

    It describes the canonical JSON form (true/false, lists); `from_mapping` also takes the strings that
    `cdk synth -c key=value` passes ("true", "a,b"). Rules between settings (min <= max, ...) and the
    deployment rules stay in the code: `sparkscale config check` applies them all."""
    hints = get_type_hints(Config)
    defaults = Config()
    properties: dict[str, Any] = {}
    for f in fields(Config):
        schema = _type_schema(hints[f.name])
        if f.name == "forecast_mode":
            schema = {"enum": list(FORECAST_MODES)}
        elif f.name == "forecast_seasonal":
            schema = {"enum": list(FORECAST_SEASONAL_RULES)}
        elif f.name == "digest_weekly_day":
            schema = {"enum": list(DIGEST_WEEKLY_DAYS)}
        elif f.name == "group_bounds":  # _coerce_bounds: min_nodes defaults to 0
            whole = {"type": "integer", "minimum": 0}
            schema["additionalProperties"] = {
                "type": "object",
                "properties": {"min_nodes": whole, "max_nodes": whole},
                "required": ["max_nodes"],
                "additionalProperties": False,
            }
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if lo is not None:
            schema["minimum"] = lo
        if hi is not None:
            schema["maximum"] = hi
        unit = str(f.metadata.get("unit", "")).replace("\\|", "|")
        schema["description"] = f"{f.metadata.get('doc', '')} [{unit}]".strip()
        schema["default"] = asdict(defaults)[f.name]
        properties[f.name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sparkscale settings",
        "description": "The cdk.json context key 'sparkscale', or a settings file (--config FILE).",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


_JSON_TYPES: Final[dict[Any, str]] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type_schema(hint: Any) -> dict[str, Any]:  # noqa: PLR0911 - one return per kind of type
    """JSON Schema of a field's type: scalars, X | None, list[X], dict[str, X] and nested dataclasses."""
    origin, args = get_origin(hint), get_args(hint)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin in (UnionType, Union) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        schema = _type_schema(inner)
        if "type" in schema:
            return {**schema, "type": [schema["type"], "null"]}
        return {"anyOf": [schema, {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1]) if args else {}}
    if is_dataclass(hint):
        nested = get_type_hints(hint)
        required = [f.name for f in fields(hint) if f.default is MISSING and f.default_factory is MISSING]
        return {
            "type": "object",
            "properties": {f.name: _type_schema(nested[f.name]) for f in fields(hint)},
            "additionalProperties": False,
            **({"required": required} if required else {}),
        }
    return {}  # a type the schema cannot say more about: any value, Config.from_mapping still checks it
