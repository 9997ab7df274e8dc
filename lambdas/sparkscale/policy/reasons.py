"""Typed reasons: what a decision says, as a code a program can test and a sentence a person can read.

    Reason(code, text, values={name: number}, subject="")   str(reason) == reason.text

`text` is a str, or a zero-argument callable that makes it when first read (the estimate's needs: most
decisions' sentences are never read); `values` likewise, a mapping or a callable that makes it.

`code` says which rule spoke (ReasonCode), `values` holds the numbers the sentence states (GiB, seconds, node
counts, ...), `subject` what the reason is about when that is a name: the signal of a need, the group of a
node change, the limit that binds. A Decision's first reason is the one that drove its direction (for a hold:
why it holds); the sentences are for logs, notices and JSON (Decision.reason_texts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from types import MappingProxyType


class ReasonCode(StrEnum):
    # gates: what stops a decision before any sizing
    CLUSTER_INACTIVE = "cluster_inactive"  # not RUNNING or WAITING
    NO_TASK_GROUP = "no_task_group"
    METRICS_MISSING = "metrics_missing"  # no fresh capacity signal: hold
    COOLDOWN = "cooldown"  # subject: the cooldown_after_* setting that binds
    WAITING = "waiting"  # containers or applications wait: no scale-in
    OVER_TARGET = "over_target"  # subject: the signal over its target: no scale-in
    STABILIZATION = "stabilization"  # scale-in held, or limited, by the stabilization window
    # estimate: one per fresh signal (subject: the Signal)
    NEED = "need"
    # direction
    HEAP_PRESSURE = "heap_pressure"  # a pressed heap asks for one node more than what runs or is coming
    COVERED = "covered"  # a signal is over target, the capacity counted (values: in_flight_gib) covers it
    WITHIN_DEADBAND = "within_deadband"
    HEAP_ONLY = "heap_only"  # only the heap reports, under its target: it never scales in
    NODES_COMING = "nodes_coming"  # scale-in held: only nodes not yet running may go, none fits
    NO_NODE_FITS = "no_node_fits"  # scale-in held: no whole node fits in the surplus
    # scale-in held: a stream is behind or not caught up yet, although other signals want less (subject: the
    # streaming metric that says so; values: the streaming numbers, policy/streaming.py)
    STREAM_NOT_CAUGHT_UP = "stream_not_caught_up"
    # a stream caught up keeps the capacity that keeps up with its input (values: keep_up_ratio, floor_gib)
    STREAM_KEEP_UP_FLOOR = "stream_keep_up_floor"
    # forecast (forecast_mode act): sizing for the demand expected when new nodes would be usable
    FORECAST = "forecast"  # the forecast drives a scale-out, or keeps a scale-in above it
    BURST_ENDS_BEFORE_NODES = "burst_ends_before_nodes"  # a signal wants more, the forecast does not: hold
    # bursts (policy/burst.py): a small first step only, because the burst is younger than burst_confirm_s, or
    # because the cluster's earlier bursts that lasted as long ended before new nodes would be useful
    BURST_UNCONFIRMED = "burst_unconfirmed"
    BURST_ENDS_TOO_SOON = "burst_ends_too_soon"
    # a confirmed burst buys only pending_share_pct of the memory waiting (policy/pending_share.py)
    PENDING_SHARE = "pending_share"
    # idle
    IDLE = "idle"
    AT_MINIMUM = "at_minimum"
    # node changes (subject: the group id)
    ADD_NODES = "add_nodes"
    REMOVE_NODES = "remove_nodes"
    PLANNER = "planner"  # what the $/GiB-hour planner says (share relaxed, nothing to plan)
    ON_DEMAND_FALLBACK = "on_demand_fallback"
    SPOT_FALLBACK = "spot_fallback"
    LIMIT = "limit"  # part of a scale-out cannot be added (subject: the limit that binds)
    MOVE_BACK_BUY_SPOT = "move_back_buy_spot"  # back to spot, phase 1: SPOT memory first
    MOVE_BACK_RELEASE = "move_back_release"  # back to spot, phase 2: ON_DEMAND fallback nodes go
    BOUNDS = "bounds"  # a group's min/max or the TASK total's (subject: the group id or the setting)
    # notes on every decision
    IN_FLIGHT = "in_flight"  # requested nodes not yet running count as capacity
    SPOT_BLOCKED = "spot_blocked"  # a group the spot fallback blocks (subject: the group id)
    METRIC_IGNORED = "metric_ignored"  # a stale or invalid datapoint (subject: the signal)
    # the YARN collector has datapoints, none fresh: EMR's YARN metrics decide (subject: the source)
    YARN_COLLECTOR_STALE = "yarn_collector_stale"
    DRY_RUN = "dry_run"
    # the shell: EMR refused the resize
    NOT_APPLIED = "not_applied"
    # the use case: an operator paused the cluster (ports.PauseMark): decided and notified, not applied
    PAUSED = "paused"
    # safe scale-in (policy/node_choice.py): which instances a shrink keeps and removes (subject: group id)
    NODES_CHOSEN = "nodes_chosen"
    NODES_UNKNOWN = "nodes_unknown"  # no fresh node report: EMR chooses


NO_VALUES: Mapping[str, float] = MappingProxyType({})


class Reason:
    """One reason. Its sentence may be given as a zero-argument callable: built on first read (`text`,
    `str(reason)`, equality, hashing) and kept, so a decision nobody reads (a replay's) formats none of its
    sentences. Equality as a tuple of (code, text, values, subject); the hash of (code, text, subject)."""

    __slots__ = ("_make", "_make_values", "_text", "_values", "code", "subject")

    code: ReasonCode
    subject: str  # what it is about, when that is a name: a signal, a group id, a setting

    def __init__(
        self,
        code: ReasonCode,
        text: str | Callable[[], str],
        values: Mapping[str, float] | Callable[[], Mapping[str, float]] = NO_VALUES,
        subject: str = "",
    ) -> None:
        self.code = code
        self.subject = subject
        if callable(values):  # a mapping is not callable
            self._values: Mapping[str, float] | None = None
            self._make_values: Callable[[], Mapping[str, float]] | None = values
        else:
            self._values, self._make_values = values, None
        if isinstance(text, str):
            self._text: str | None = text
            self._make: Callable[[], str] | None = None
        else:
            self._text = None
            self._make = text

    @property
    def text(self) -> str:
        t = self._text
        if t is None:
            make = self._make
            assert make is not None
            t = self._text = make()
            self._make = None  # what it captured may go
        return t

    @property
    def values(self) -> Mapping[str, float]:
        """The numbers the sentence states, by name (made on first read when given as a callable)."""
        v = self._values
        if v is None:
            make = self._make_values
            assert make is not None
            v = self._values = make()
            self._make_values = None
        return v

    def __str__(self) -> str:
        return self.text

    def __iter__(self) -> Iterator[object]:  # unpacks like the NamedTuple it was
        return iter((self.code, self.text, self.values, self.subject))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reason):
            return NotImplemented
        return (
            self.code == other.code
            and self.subject == other.subject
            and self.text == other.text
            and self.values == other.values
        )

    def __hash__(self) -> int:  # `values` is a mapping: hash what identifies the reason
        return hash((self.code, self.text, self.subject))

    def __repr__(self) -> str:
        fields = f"code={self.code!r}, text={self.text!r}, values={self.values!r}, subject={self.subject!r}"
        return f"Reason({fields})"

    def __reduce__(self) -> tuple[type[Reason], tuple[ReasonCode, str, Mapping[str, float], str]]:
        return (Reason, (self.code, self.text, self.values, self.subject))


def texts(reasons: tuple[Reason, ...]) -> tuple[str, ...]:
    return tuple([r.text for r in reasons])


def gib(x: float) -> str:
    """A memory amount as every reason states it: whole GiB unless small."""
    return f"{x:.1f} GiB" if -10.0 < x < 10.0 and abs(x - round(x)) > 0.05 else f"{x:.0f} GiB"
