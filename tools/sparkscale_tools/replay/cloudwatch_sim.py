"""A simulated CloudWatch: datapoints that become visible after a publication lag, and alarms evaluated from
the stack's own `AlarmSpec`s (`sparkscale.alarms`), M out of N with their treat-missing-data rule.

Evaluation window (the one modelling choice here, see docs/replay.md): at evaluation time e, the window is the
`evaluation_periods` periods (aligned to multiples of `period_s`) ending with the period that contains e — or,
if that period has no visible datapoint yet (publication lag), ending with the period before it. This mirrors
CloudWatch not counting a lagging, not-yet-arrived datapoint as missing; a metric that stops arriving does
count as missing one period later.
"""

from __future__ import annotations

import ast
import math
import operator
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sparkscale.alarms import AlarmSpec, AlarmState

Query = tuple[str, str, str]  # (query id, metric name, statistic); a single-metric alarm's id is "m"
SeriesKey = tuple[int, tuple[Query, ...], str | None]  # (period s, queries, metric math expression)
MathFn = Callable[[Mapping[str, float | None]], float | None]  # compiled metric math over its inputs `v`
# metric math with RATE: over the inputs `v`, the previous datapoint's inputs `p` and the seconds between them
RateFn = Callable[[Mapping[str, float | None], Mapping[str, float | None] | None, float | None], float | None]
_COMPARISONS = (ast.Gt, ast.GtE, ast.Lt, ast.LtE)


@dataclass
class MetricStream:
    """Datapoints of one namespace, in time order: `times[i]` (s) and `values[i]` (metric -> value)."""

    lag_s: float
    times: list[float] = field(default_factory=list)
    values: list[Mapping[str, float]] = field(default_factory=list)
    _visible: int = 0
    _visible_at: float = -math.inf
    _series: dict[SeriesKey, PeriodSeries] = field(default_factory=dict, repr=False)
    _periods: dict[int, PeriodRows] = field(default_factory=dict, repr=False)

    def add(self, t_s: float, values: Mapping[str, float]) -> None:
        self.times.append(t_s)
        self.values.append(values)

    def visible_count(self, now_s: float) -> int:
        """How many datapoints are visible at `now_s` (time never goes back between calls that matter)."""
        if now_s < self._visible_at:
            self._visible = 0
        n = bisect_right(self.times, now_s - self.lag_s, self._visible)
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
            rows = self._periods.get(period_s)
            if rows is None:
                rows = self._periods[period_s] = PeriodRows(self, period_s)
            found = self._series[key] = PeriodSeries(rows, queries, expression)
        return found


def uses_rate(expression: str) -> bool:
    """The expression reads RATE(…): its value needs the previous datapoint's too (`compile_rate`)."""
    return "RATE(" in expression.upper()


def _compile(expression: str, inputs: Mapping[str, str], *, rate: bool = False) -> Any:
    """Metric math as a Python function of one mapping `v`, each query id read from it by the Python
    expression `inputs[id]`: its arithmetic raises TypeError on a missing input (None) and ZeroDivisionError
    on a division by zero. IF(condition, a, b) and the comparisons > >= < <= (1 or 0) are CloudWatch's.
    With `rate`, a function of (v, p, d): RATE(id) is (v[id] − p[id]) / d, the change per second since the
    previous datapoint's inputs `p`, `d` seconds earlier (none for the first datapoint: TypeError)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"unsupported metric math {expression!r}: {exc.msg}") from None

    def call(node: ast.Call) -> ast.expr:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name == "IF" and len(node.args) == 3 and not node.keywords:
            cond, yes, no = (checked(a) for a in node.args)
            return ast.IfExp(ast.Compare(cond, [ast.NotEq()], [ast.Constant(0.0)]), yes, no)
        arg = node.args[0] if len(node.args) == 1 else None
        if rate and name == "RATE" and isinstance(arg, ast.Name) and arg.id in inputs and not node.keywords:
            now = ast.parse(inputs[arg.id], mode="eval").body
            before = ast.parse(inputs[arg.id].replace("v.get(", "p.get(", 1), mode="eval").body
            return ast.BinOp(ast.BinOp(now, ast.Sub(), before), ast.Div(), ast.Name("d", ast.Load()))
        raise ValueError(f"unsupported metric math {expression!r}: {ast.dump(node)[:60]}")

    def checked(node: ast.AST) -> ast.expr:
        """`node` made of numbers, query ids, unary minus, + − × ÷, comparisons, IF and RATE only: nothing
        else can run."""
        if isinstance(node, ast.Call):
            return call(node)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], _COMPARISONS):
            test = ast.Compare(checked(node.left), [type(node.ops[0])()], [checked(node.comparators[0])])
            return ast.IfExp(test, ast.Constant(1.0), ast.Constant(0.0))
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)
        ):
            return ast.Constant(float(node.value))
        if isinstance(node, ast.Name) and node.id in inputs:
            return ast.parse(inputs[node.id], mode="eval").body
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return ast.UnaryOp(ast.USub(), checked(node.operand))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return ast.BinOp(checked(node.left), type(node.op)(), checked(node.right))
        raise ValueError(f"unsupported metric math {expression!r}: {ast.dump(node)[:60]}")

    params = [ast.arg("v"), ast.arg("p"), ast.arg("d")] if rate else [ast.arg("v")]
    args = ast.arguments(posonlyargs=[], args=params, kwonlyargs=[], kw_defaults=[], defaults=[])
    tree = ast.Expression(ast.Lambda(args, checked(tree.body)))
    code = compile(ast.fix_missing_locations(tree), "<metric math>", "eval")
    return eval(code, {"__builtins__": {}})  # noqa: S307 - checked: arithmetic only


def _get(key: str) -> str:
    return f"v.get({key!r})"


def _value_in_one(metric: str, statistic: str) -> str:
    """A statistic of `metric` over a period holding one datapoint `v`: its value, or 1 for SampleCount."""
    return f"(1.0 if {metric!r} in v else None)" if statistic == "SampleCount" else _get(metric)


def _finite(fn: MathFn, v: Mapping[str, float | None]) -> float | None:
    """A metric math value, or None where CloudWatch has none (an input missing, a division by zero, a
    non-finite result)."""
    try:
        x = fn(v)
    except (TypeError, ZeroDivisionError):
        return None
    return None if x is None or not math.isfinite(x) else x


def compile_expression(expression: str, ids: set[str]) -> Callable[..., float | None]:
    """Metric math with + − × ÷, parentheses, numbers, query ids, comparisons, IF and RATE; None where
    CloudWatch has no value (an input missing, division by zero, RATE of the first datapoint). Call it with
    the period's inputs, and for RATE the previous datapoint's inputs and the seconds since it."""
    rate = uses_rate(expression)
    fn = _compile(expression, {i: _get(i) for i in ids}, rate=rate)

    def run(
        inputs: Mapping[str, float],
        previous: Mapping[str, float] | None = None,
        seconds: float | None = None,
    ) -> float | None:
        try:
            value: float | None = fn(inputs, previous, seconds) if rate else fn(inputs)
        except (TypeError, ZeroDivisionError, AttributeError):
            return None
        return value

    return run


def _stat(rows: list[Mapping[str, float]], metric: str, statistic: str) -> float | None:
    """One statistic of `metric` over the datapoints of a period; None if none has it."""
    values = [r[metric] for r in rows if metric in r]
    if not values:
        return None
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "Sum":
        return sum(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Maximum":
        return max(values)
    return float(len(values))  # SampleCount


class PeriodRows:
    """The datapoints of one stream by period, taken in as they become visible, for every series of that
    period on the stream (`MetricStream.series`): one pass over each new datapoint computes the period's
    value of each series. The alarm evaluations read them every minute."""

    def __init__(self, stream: MetricStream, period_s: int) -> None:
        self.stream = stream
        self.period_s = period_s
        self.series: list[PeriodSeries] = []
        self.horizon = 1  # the longest window reading a series (periods): older periods are dropped
        self._consumed = 0
        # The latest period with a datapoint, and its datapoints: only it can get more (the stream is in time
        # order), the periods before keep their values only.
        self.open_period: int | None = None
        self._open_rows: list[Mapping[str, float]] = []

    def add(self, series: PeriodSeries) -> None:
        """One more series of this period: every visible datapoint is read again."""
        self.series.append(series)
        self._restart()

    def cover(self, periods: int) -> None:
        """Keep at least `periods` periods back (an alarm's window). Periods already dropped for a shorter
        window are read again from the stream."""
        if periods > self.horizon:
            self.horizon = periods
            self._restart()

    def _restart(self) -> None:
        for series in self.series:
            series.values.clear()
            if series.stateful:
                series._inputs.clear()
        self._consumed = 0
        self.open_period, self._open_rows = None, []

    def update(self, visible: int) -> None:
        """Take in the stream's first `visible` datapoints."""
        start = self._consumed
        if visible == start:
            return
        if visible == start + 1 and start:  # one more datapoint (the usual case: one a minute)
            self._consumed = visible
            row = self.stream.values[start]
            pidx = int(self.stream.times[start] // self.period_s)
            if pidx == self.open_period:
                self._open_rows.append(row)
            else:  # a new period: the one before was closed when it got its last datapoint
                self.open_period, self._open_rows = pidx, [row]
            self._close(pidx, self._open_rows)
            self._prune(pidx)
            return
        if visible < start:  # time went back: start over
            start = 0
            self._restart()
        self._consumed = visible
        period = self.period_s
        times, rows = self.stream.times, self.stream.values
        open_p, open_rows = self.open_period, self._open_rows
        for i in range(start, visible):
            pidx = int(times[i] // period)
            if pidx == open_p:
                open_rows.append(rows[i])
                continue
            if open_p is not None and i > start:  # the period before, complete, got datapoints here
                self._close(open_p, open_rows)
            open_p, open_rows = pidx, [rows[i]]
        assert open_p is not None
        self._close(open_p, open_rows)
        self.open_period, self._open_rows = open_p, open_rows
        self._prune(open_p)

    def _prune(self, open_p: int) -> None:
        """Drop the periods no window reaches any more (now in period `open_p` or later)."""
        # every series has a value for the same periods: one length check for all
        if len(self.series[0].values) > 4 * self.horizon + 8:
            keep = open_p - 2 * self.horizon - 2
            for series in self.series:
                values = series.values
                for old in [p for p in values if p < keep]:
                    del values[old]

    def _close(self, period: int, rows: list[Mapping[str, float]]) -> None:
        """Every series' value of `period` from its datapoints `rows`."""
        if len(rows) == 1:  # one datapoint per period (the usual case): every statistic is the value
            for series in self.series:
                series.values[period] = (
                    series.value_at(period, rows) if series.stateful else series.value_of_one(rows[0])
                )
        else:
            for series in self.series:
                series.values[period] = (
                    series.value_at(period, rows) if series.stateful else series.value_of_many(rows)
                )

    def last_period(self, end: int) -> int:
        """The last period of an evaluation window when now is in period `end`: that one, or if its datapoint
        has not arrived yet (publication lag), the one before. The same for every series of a stream."""
        return end if end == self.open_period else end - 1


class PeriodSeries:
    """The per-period values of one query (a metric and statistic, or metric math over several) on one stream,
    kept by the stream's `PeriodRows` of its period: the alarms sharing a query (heap-percent and
    heap-critical) share one computation per period."""

    def __init__(self, rows: PeriodRows, queries: tuple[Query, ...], expression: str | None) -> None:
        self.rows = rows
        self.stream = rows.stream
        self.period_s = rows.period_s
        self.values: dict[int, float | None] = {}  # period index -> value, every period with a datapoint
        self.value_of_one: Callable[[Mapping[str, float]], float | None]
        self.value_of_many: Callable[[list[Mapping[str, float]]], float | None]
        self.stateful = False  # metric math with RATE: value_at
        if expression is None:
            _, metric, stat = queries[0]
            if stat == "SampleCount":
                self.value_of_one = lambda row: 1.0 if metric in row else None
            else:
                self.value_of_one = lambda row: row.get(metric)
            self.value_of_many = lambda rows: _stat(rows, metric, stat)
        elif uses_rate(expression):  # the previous datapoint's inputs too: PeriodRows._close calls value_at
            self._stat_of = {qid: (metric, stat) for qid, metric, stat in queries}
            self._rate: RateFn = _compile(expression, {qid: _get(qid) for qid in self._stat_of}, rate=True)
            self._inputs: dict[int, dict[str, float | None]] = {}
            self.stateful = True
        else:
            stat_of = {qid: (metric, stat) for qid, metric, stat in queries}
            one = _compile(expression, {qid: _value_in_one(m, s) for qid, (m, s) in stat_of.items()})
            many = _compile(expression, {qid: _get(qid) for qid in stat_of})
            self.value_of_one = partial(_finite, one)
            self.value_of_many = lambda rows: _finite(
                many, {qid: _stat(rows, m, s) for qid, (m, s) in stat_of.items()}
            )
        rows.add(self)

    def value_at(self, period: int, rows: list[Mapping[str, float]]) -> float | None:
        """RATE metric math of `period` from its datapoints and the latest earlier period's inputs."""
        inputs = {qid: _stat(rows, m, s) for qid, (m, s) in self._stat_of.items()}
        kept = self._inputs
        kept[period] = inputs
        earlier = [p for p in kept if p < period]
        if len(kept) > 8 * self.rows.horizon + 16:  # older periods are never read again
            for old in sorted(earlier)[: len(earlier) // 2]:
                del kept[old]
            earlier = [p for p in kept if p < period]
        if not earlier:
            return None
        before = max(earlier)
        try:
            x = self._rate(inputs, kept[before], (period - before) * self.period_s)
        except (TypeError, ZeroDivisionError):
            return None
        return None if x is None or not math.isfinite(x) else x

    @property
    def horizon(self) -> int:
        return self.rows.horizon

    def cover(self, periods: int) -> None:
        """Keep at least `periods` periods back (an alarm's window)."""
        self.rows.cover(periods)

    def update(self, visible: int) -> None:
        """Take in the stream's first `visible` datapoints (for every series of the period)."""
        self.rows.update(visible)

    def last_period(self, end: int) -> int:
        return self.rows.last_period(end)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
StateFn = Callable[[tuple[float | None, ...]], AlarmState]


def state_function(spec: AlarmSpec) -> StateFn:
    """`spec.state_for` of a window of exactly `evaluation_periods` values (what AlarmEvaluator reads), as
    one closure over the spec's numbers: the same M out of N and missing-data rule without the method calls
    per value (the replay evaluates the heap and YARN alarms every simulated minute)."""
    periods, to_alarm, threshold = spec.evaluation_periods, spec.datapoints_to_alarm, spec.threshold
    breaches, isnan = _COMPARE[spec.comparison], math.isnan
    missing_breaches = spec.treat_missing_data == "breaching"
    all_missing: AlarmState = (
        "ALARM"
        if missing_breaches
        else "OK"
        if spec.treat_missing_data == "notBreaching"
        else "INSUFFICIENT_DATA"
    )
    if periods == 1:

        def one(window: tuple[float | None, ...]) -> AlarmState:
            v = window[0]
            if v is None or isnan(v):
                return all_missing
            return "ALARM" if to_alarm <= 1 and breaches(v, threshold) else "OK"

        return one

    def many(window: tuple[float | None, ...]) -> AlarmState:
        missing = breaching = 0
        for v in window:
            if v is None or isnan(v):
                missing += 1
            elif breaches(v, threshold):
                breaching += 1
        if missing == periods:
            return all_missing
        if missing_breaches:
            breaching += missing
        return "ALARM" if breaching >= to_alarm else "OK"

    return many


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
        self._back = spec.evaluation_periods - 1  # the window's first period, counted back from its last
        self._keep_on_missing = spec.treat_missing_data == "ignore"
        self._state_of = state_function(spec)
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
        return list(self._window(self.series.last_period(int(now_s // self.spec.period_s))))

    def _window(self, last: int) -> tuple[float | None, ...]:
        values = self.series.values
        if not self._back:
            return (values.get(last),)
        return tuple(map(values.get, range(last - self._back, last + 1)))

    def evaluate(self, now_s: float) -> tuple[AlarmState, bool]:
        visible = self.stream.visible_count(now_s)
        self.series.update(visible)
        end = int(now_s // self.spec.period_s)
        if visible == self._visible and end == self._end:
            return self.state, False
        self._visible, self._end = visible, end
        changed = self.assess(self.series.last_period(end))
        return self.state, changed

    def assess(self, last: int) -> bool:
        """Evaluate the window ending with period `last` (`PeriodSeries.last_period`), the series being up to
        date: whether the state changed. (`_window` inlined: the bank calls this for every alarm on the
        heap and YARN streams every minute.)"""
        get = self.series.values.get
        back = self._back
        if not back:
            window: tuple[float | None, ...] = (get(last),)
        elif back == 2:  # the three-period alarms (heap-critical, the silent-agent and silent-collector ones)
            window = (get(last - 2), get(last - 1), get(last))
        else:
            window = tuple(map(get, range(last - back, last + 1)))
        if window == self._last_window:
            return False
        self._last_window = window
        new = self._state_of(window)  # spec.state_for
        if new == self.state or (new == "INSUFFICIENT_DATA" and self._keep_on_missing):
            return False
        self.state = new
        self.transitions += 1
        return True


class AlarmBank:
    """Alarms evaluated together, as CloudWatch evaluates every alarm each minute: the alarms on one stream
    and period share one visibility check and one pass over the new datapoints (`PeriodRows`), and are
    skipped together until a datapoint becomes visible or their windows move on to the next period (nothing
    else changes a window). Its alarms are evaluated through the bank only."""

    def __init__(self, alarms: Sequence[AlarmEvaluator]) -> None:
        self.alarms = list(alarms)
        groups: dict[tuple[int, int], list[tuple[int, AlarmEvaluator]]] = {}
        for i, a in enumerate(self.alarms):
            groups.setdefault((id(a.stream), a.spec.period_s), []).append((i, a))
        self._groups = [_Group.of(members) for members in groups.values()]
        self.in_alarm = False  # whether any alarm is in ALARM

    def evaluate(self, now_s: float) -> list[tuple[AlarmEvaluator, AlarmState]]:
        """The alarms whose state changed at `now_s` and their new state, in the bank's order."""
        changed: list[tuple[int, AlarmEvaluator]] = []
        for g in self._groups:
            visible = g.visible_count(now_s)
            end = int(now_s // g.period_s)
            if visible == g.visible and end == g.end:
                continue
            rows = g.rows
            rows.update(visible)
            last = end if end == rows.open_period else end - 1  # rows.last_period(end)
            g.end = end
            if visible == g.visible and last == g.last:
                continue
            g.visible, g.last = visible, last
            for i, a in g.members:
                if a.assess(last):
                    changed.append((i, a))
        if not changed:
            return []
        changed.sort(key=lambda c: c[0])
        self.in_alarm = any(a.state == "ALARM" for a in self.alarms)
        return [(a, a.state) for _, a in changed]


@dataclass(slots=True)
class _Group:
    rows: PeriodRows  # of the members' stream and period
    members: list[tuple[int, AlarmEvaluator]]
    visible_count: Callable[[float], int]  # the stream's, and the period: read every minute
    period_s: int
    # the stream's visible datapoints, the period of now and the windows' last period at the last evaluation
    visible: int = -1
    end: int | None = None
    last: int | None = None

    @staticmethod
    def of(members: list[tuple[int, AlarmEvaluator]]) -> _Group:
        rows = members[0][1].series.rows
        return _Group(rows, members, rows.stream.visible_count, rows.period_s)
