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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sparkscale.alarms import AlarmSpec, AlarmState


@dataclass
class MetricStream:
    """Datapoints of one namespace, in time order: `times[i]` (s) and `values[i]` (metric -> value)."""

    lag_s: float
    times: list[float] = field(default_factory=list)
    values: list[Mapping[str, float]] = field(default_factory=list)
    _visible: int = 0
    _visible_at: float = -math.inf

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


class AlarmEvaluator:
    """One alarm: `evaluate(now)` returns its state and whether it changed (a notification).

    Per-period values are kept incrementally as datapoints become visible (the hot loop evaluates every alarm
    every minute), and `AlarmSpec.state_for` runs only when the window's values changed."""

    def __init__(self, spec: AlarmSpec, stream: MetricStream) -> None:
        self.spec = spec
        self.stream = stream
        self.state: AlarmState = "INSUFFICIENT_DATA"
        self.transitions = 0
        self._key: tuple[int, int] | None = None
        self._last_window: tuple[float | None, ...] | None = None
        self._consumed = 0
        self._buckets: dict[int, list[Mapping[str, float]]] = {}
        self._values: dict[int, float | None] = {}
        if spec.is_math:
            assert spec.expression is not None
            self._queries = tuple((q.id, q.metric_name, q.statistic) for q in spec.metrics)
            self._expr: Callable[[Mapping[str, float]], float | None] | None = compile_expression(
                spec.expression, {q.id for q in spec.metrics}
            )
        else:
            assert spec.metric_name is not None
            assert spec.statistic is not None
            self._queries = (("m", spec.metric_name, spec.statistic),)
            self._expr = None

    def window(self, now_s: float) -> list[float | None]:
        """Per-period values of the evaluation window, oldest first (None = no datapoint)."""
        return list(self._window(now_s, self.stream.visible_count(now_s)))

    def _consume(self, visible: int) -> None:
        if visible == self._consumed:
            return
        period = self.spec.period_s
        times, values = self.stream.times, self.stream.values
        if visible < self._consumed:  # time went back: start over
            self._consumed, self._buckets, self._values = 0, {}, {}
        for i in range(self._consumed, visible):
            pidx = int(times[i] // period)
            self._buckets.setdefault(pidx, []).append(values[i])
            self._values.pop(pidx, None)
        self._consumed = visible
        if len(self._buckets) > 4 * self.spec.evaluation_periods + 8:
            keep = max(self._buckets) - 2 * self.spec.evaluation_periods - 2
            for old in [p for p in self._buckets if p < keep]:
                del self._buckets[old]
                self._values.pop(old, None)

    def _period_value(self, pidx: int) -> float | None:
        if pidx in self._values:
            return self._values[pidx]
        points = self._buckets.get(pidx)
        v = self._value(points) if points else None
        self._values[pidx] = v
        return v

    def _window(self, now_s: float, visible: int) -> tuple[float | None, ...]:
        self._consume(visible)
        end = int(now_s // self.spec.period_s)
        if end not in self._buckets:  # the current period's datapoint has not arrived yet: look one back
            end -= 1
        values, pv = self._values, self._period_value
        return tuple(
            [
                values[p] if p in values else pv(p)
                for p in range(end - self.spec.evaluation_periods + 1, end + 1)
            ]
        )

    def _value(self, points: list[Mapping[str, float]]) -> float | None:
        if len(points) == 1:  # one datapoint per period (the usual case): every statistic is the value
            p = points[0]
            one = {qid: (1.0 if stat == "SampleCount" else p[m]) for qid, m, stat in self._queries if m in p}
            if self._expr is None:
                return one.get("m")
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

    def evaluate(self, now_s: float) -> tuple[AlarmState, bool]:
        visible = self.stream.visible_count(now_s)
        key = (visible, int(now_s // self.spec.period_s))
        if key == self._key:
            return self.state, False
        self._key = key
        window = self._window(now_s, visible)
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
