"""A simulated CloudWatch: datapoints that become visible after a publication lag, and alarms evaluated from
the stack's own `AlarmSpec`s (`sparkscale.alarms`), M out of N with their treat-missing-data rule.

Evaluation window (the one modelling choice here, see the README): at evaluation time e, the window is the
`evaluation_periods` periods (aligned to multiples of `period_s`) ending with the period that contains e — or,
if that period has no visible datapoint yet (publication lag), ending with the period before it. This mirrors
CloudWatch not counting a lagging, not-yet-arrived datapoint as missing; a metric that stops arriving does
count as missing one period later.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sparkscale.alarms import AlarmSpec, AlarmState

Query = tuple[str, str, str]  # (query id, metric name, statistic); a single-metric alarm's id is "m"
SeriesKey = tuple[int, tuple[Query, ...], str | None]  # (period s, queries, metric math expression)


@dataclass
class MetricStream:
    """Datapoints of one namespace, in time order: `times[i]` (s) and `values[i]` (metric -> value)."""

    lag_s: float
    times: list[float] = field(default_factory=list)
    values: list[Mapping[str, float]] = field(default_factory=list)
    _visible: int = 0
    _visible_at: float = -math.inf
    _series: dict[SeriesKey, PeriodSeries] = field(default_factory=dict, repr=False)

    def add(self, t_s: float, values: Mapping[str, float]) -> None:
        self.times.append(t_s)
        self.values.append(values)

    def visible_count(self, now_s: float) -> int:
        """How many datapoints are visible at `now_s` (time never goes back between calls that matter)."""
        if now_s < self._visible_at:
            self._visible, self._visible_at = 0, -math.inf
        limit = now_s - self.lag_s
        n, times = self._visible, self.times
        while n < len(times) and times[n] <= limit:
            n += 1
        self._visible, self._visible_at = n, now_s
        return n

    def latest_visible(self, now_s: float) -> tuple[float, Mapping[str, float]] | None:
        n = self.visible_count(now_s)
        return (self.times[n - 1], self.values[n - 1]) if n else None

    def series(self, period_s: int, queries: tuple[Query, ...], expression: str | None) -> PeriodSeries:
        """The per-period values of one query on this stream, one object for every alarm that reads it."""
        key = (period_s, queries, expression)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = PeriodSeries(self, period_s, queries, expression)
        return found


_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def compile_expression(expression: str, ids: set[str]) -> Callable[[Mapping[str, float]], float | None]:
    """Metric math with + − × ÷, parentheses, numbers and query ids; None where CloudWatch has no value
    (an input missing, or division by zero)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"unsupported metric math {expression!r}: {exc.msg}") from None

    def build(node: ast.AST) -> Callable[[Mapping[str, float]], float | None]:
        if isinstance(node, ast.Expression):
            return build(node.body)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            c = float(node.value)
            return lambda _v: c
        if isinstance(node, ast.Name) and node.id in ids:
            key = node.id
            return lambda v: v.get(key)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = build(node.operand)

            def neg(v: Mapping[str, float]) -> float | None:
                x = inner(v)
                return None if x is None else -x

            return neg
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            fn, left, right = _BINOPS[type(node.op)], build(node.left), build(node.right)

            def binop(v: Mapping[str, float]) -> float | None:
                a, b = left(v), right(v)
                if a is None or b is None or (fn is operator.truediv and b == 0):
                    return None
                return fn(a, b)

            return binop
        raise ValueError(f"unsupported metric math {expression!r}: {ast.dump(node)[:60]}")

    return build(tree)


def _stat(values: list[float], statistic: str) -> float:
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "Sum":
        return sum(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Maximum":
        return max(values)
    return float(len(values))  # SampleCount


class PeriodSeries:
    """The per-period values of one query (a metric and statistic, or metric math over several) on one stream,
    kept incrementally as datapoints become visible: the alarm evaluations read them every minute, and the
    alarms sharing a query (heap-percent and heap-critical) share one computation per period."""

    def __init__(
        self, stream: MetricStream, period_s: int, queries: tuple[Query, ...], expression: str | None
    ) -> None:
        self.stream = stream
        self.period_s = period_s
        self.horizon = 1  # the longest window reading the series (periods): older ones are dropped
        self.values: dict[int, float | None] = {}  # period index -> value, every period with a datapoint
        self._points: dict[int, list[Mapping[str, float]]] = {}
        self._consumed = 0
        self._queries = queries
        self._expr = (
            None if expression is None else compile_expression(expression, {qid for qid, _, _ in queries})
        )

    def cover(self, periods: int) -> None:
        """Keep at least `periods` periods back (an alarm's window). Periods already dropped for a shorter
        window are read again from the stream."""
        if periods > self.horizon:
            self.horizon = periods
            self._consumed = 0
            self._points.clear()
            self.values.clear()

    def update(self, visible: int) -> None:
        """Take in the stream's first `visible` datapoints."""
        start = self._consumed
        if visible == start:
            return
        points, values = self._points, self.values
        if visible < start:  # time went back: start over
            start = 0
            points.clear()
            values.clear()
        self._consumed = visible
        period = self.period_s
        times, rows = self.stream.times, self.stream.values
        last = None  # the period being filled: its value is computed once its run of datapoints ends
        for i in range(start, visible):
            pidx = int(times[i] // period)
            bucket = points.get(pidx)
            if bucket is None:
                points[pidx] = [rows[i]]
            else:
                bucket.append(rows[i])
            if pidx != last:
                if last is not None:
                    values[last] = self._value(points[last])
                last = pidx
        assert last is not None
        values[last] = self._value(points[last])
        if len(points) > 4 * self.horizon + 8:
            keep = max(points) - 2 * self.horizon - 2
            for old in [p for p in points if p < keep]:
                del points[old]
                del values[old]

    def _value(self, points: list[Mapping[str, float]]) -> float | None:
        if len(points) == 1:  # one datapoint per period (the usual case): every statistic is the value
            p = points[0]
            if self._expr is None:
                _, metric, stat = self._queries[0]
                if metric not in p:
                    return None
                return 1.0 if stat == "SampleCount" else p[metric]
            one = {qid: (1.0 if stat == "SampleCount" else p[m]) for qid, m, stat in self._queries if m in p}
            v = self._expr(one)
            return None if v is None or not math.isfinite(v) else v
        inputs: dict[str, float] = {}
        for qid, metric, stat in self._queries:
            vals = [p[metric] for p in points if metric in p]
            if vals:
                inputs[qid] = _stat(vals, stat)
        if self._expr is None:
            return inputs.get("m")
        v = self._expr(inputs)
        return None if v is None or not math.isfinite(v) else v


class AlarmEvaluator:
    """One alarm: `evaluate(now)` returns its state and whether it changed (a notification).

    `AlarmSpec.state_for` runs only when the window's values changed: with a datapoint a minute and an
    evaluation a minute, most evaluations of the five-minute EMR alarms see the same window."""

    def __init__(self, spec: AlarmSpec, stream: MetricStream) -> None:
        self.spec = spec
        self.stream = stream
        self.state: AlarmState = "INSUFFICIENT_DATA"
        self.transitions = 0
        self._visible = -1  # the stream's visible datapoints and the period index at the last evaluation
        self._end: int | None = None
        self._last_window: tuple[float | None, ...] | None = None
        queries: tuple[Query, ...]
        if spec.is_math:
            assert spec.expression is not None
            queries = tuple((q.id, q.metric_name, q.statistic) for q in spec.metrics)
        else:
            assert spec.metric_name is not None
            assert spec.statistic is not None
            queries = (("m", spec.metric_name, spec.statistic),)
        self.series = stream.series(spec.period_s, queries, spec.expression)
        self.series.cover(spec.evaluation_periods)

    def window(self, now_s: float) -> list[float | None]:
        """Per-period values of the evaluation window, oldest first (None = no datapoint)."""
        self.series.update(self.stream.visible_count(now_s))
        return list(self._window(int(now_s // self.spec.period_s)))

    def _window(self, end: int) -> tuple[float | None, ...]:
        values = self.series.values
        if end not in values:  # the current period's datapoint has not arrived yet: look one back
            end -= 1
        n = self.spec.evaluation_periods
        if n == 1:
            return (values.get(end),)
        return tuple(map(values.get, range(end - n + 1, end + 1)))

    def evaluate(self, now_s: float) -> tuple[AlarmState, bool]:
        visible = self.stream.visible_count(now_s)
        self.series.update(visible)
        return self.evaluate_at(visible, int(now_s // self.spec.period_s))

    def evaluate_at(self, visible: int, end: int) -> tuple[AlarmState, bool]:
        """`evaluate`, the series holding the stream's `visible` datapoints; `end` indexes now's period."""
        if visible == self._visible and end == self._end:
            return self.state, False
        self._visible, self._end = visible, end
        window = self._window(end)
        if window == self._last_window:
            return self.state, False
        self._last_window = window
        new = self.spec.state_for(window)
        if new == "INSUFFICIENT_DATA" and self.spec.treat_missing_data == "ignore":
            new = self.state
        changed = new != self.state
        if changed:
            self.state = new
            self.transitions += 1
        return new, changed


class AlarmBank:
    """Alarms evaluated together, as CloudWatch evaluates every alarm each minute: the alarms on one stream
    and period share one visibility check, and are skipped together until a datapoint becomes visible or a
    new period starts (nothing else changes a window). Its alarms are evaluated through the bank only."""

    def __init__(self, alarms: Sequence[AlarmEvaluator]) -> None:
        self.alarms = list(alarms)
        groups: dict[tuple[int, int], list[tuple[int, AlarmEvaluator]]] = {}
        for i, a in enumerate(self.alarms):
            groups.setdefault((id(a.stream), a.spec.period_s), []).append((i, a))
        self._groups = [
            _Group(
                members[0][1].stream,
                members[0][1].spec.period_s,
                members,
                list({id(a.series): a.series for _, a in members}.values()),
            )
            for members in groups.values()
        ]
        self.in_alarm = False  # whether any alarm is in ALARM

    def evaluate(self, now_s: float) -> list[tuple[AlarmEvaluator, AlarmState]]:
        """The alarms whose state changed at `now_s` and their new state, in the bank's order."""
        changed: list[tuple[int, AlarmEvaluator, AlarmState]] = []
        for g in self._groups:
            visible = g.stream.visible_count(now_s)
            end = int(now_s // g.period_s)
            if visible == g.visible and end == g.end:
                continue
            if visible != g.visible:
                for series in g.series:
                    series.update(visible)
            g.visible, g.end = visible, end
            for i, a in g.members:
                state, ch = a.evaluate_at(visible, end)
                if ch:
                    changed.append((i, a, state))
        if not changed:
            return []
        changed.sort(key=lambda c: c[0])
        self.in_alarm = any(a.state == "ALARM" for a in self.alarms)
        return [(a, state) for _, a, state in changed]


@dataclass
class _Group:
    stream: MetricStream
    period_s: int
    members: list[tuple[int, AlarmEvaluator]]
    series: list[PeriodSeries]  # its members' (shared) series
    visible: int = -1
    end: int | None = None
