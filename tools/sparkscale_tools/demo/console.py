"""What a person watching the demo sees: a line per decision, the operator emails as they arrive on the
queue, alarm transitions, and a progress bar on stderr that the lines scroll past. ASCII only (any terminal).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TextIO

_VERB = {"scale_out": "SCALE OUT", "scale_in": "SCALE IN", "hold": "HOLD"}
REASON_CHARS = 220


def sim_time(at: datetime, epoch: datetime) -> str:
    """`HH:MM:SS` of the simulated day, with `+Nd` after the first day."""
    delta = at - epoch
    day = delta // timedelta(days=1)
    clock = (epoch + delta).strftime("%H:%M:%S")
    return clock if day == 0 else f"{clock}+{day}d"


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def decision_lines(decision: Mapping[str, Any], *, when: str, trigger: str, outcome: str) -> list[str]:
    """One decision (an audit record, records.decision_to_dict) as console lines."""
    direction = str(decision.get("direction", ""))
    verb = _VERB.get(direction, direction.upper())
    changes = [
        f"{t.get('group_name') or t.get('group_id')} {t.get('current')}->{t.get('target')}"
        for t in decision.get("targets", [])
        if t.get("current") != t.get("target")
    ]
    signal = decision.get("driving_signal")
    value = decision.get("driving_value")
    sig = f"{signal} = {value:,.2f}" if signal and isinstance(value, int | float) else str(signal or "-")
    status = "" if outcome == "applied" else f" [{outcome.upper().replace('_', ' ')}]"
    head = (
        f"{when}  {decision.get('cluster_id', '')}  {verb}{status}  {', '.join(changes) or '(no change)'}"
        f"  | {sig} | woken by {trigger}"
    )
    reasons: Sequence[str] = decision.get("reasons") or ()
    out = [head]
    if reasons:
        out.append(f"{'':10}why: {_short(str(reasons[0]), REASON_CHARS)}")
    return out


def email_lines(envelope: Mapping[str, Any], *, full: bool) -> list[str]:
    """One SNS envelope from the operator queue, as the email a subscriber would read: the subject, and the
    body when `full` (an alarm notification, whose body is CloudWatch's JSON: its state reason only)."""
    subject = str(envelope.get("Subject") or "(no subject)")
    body = str(envelope.get("Message", ""))
    out = [f"{'':10}email to operators: {subject!r}"]
    alarm = _alarm_json(body)
    if alarm is not None:
        out.append(f"{'':12}| {_short(str(alarm.get('NewStateReason', '')), REASON_CHARS)}")
    elif full:
        out += [f"{'':12}| {line}" for line in body.splitlines()]
    return out


def is_alarm_email(envelope: Mapping[str, Any]) -> bool:
    return _alarm_json(str(envelope.get("Message", ""))) is not None


def _alarm_json(body: str) -> dict[str, Any] | None:
    if not body.startswith("{"):
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "AlarmName" in doc else None


class Console:
    """Lines on `out`; a progress bar on `err` (only when `progress`), cleared before each line and redrawn
    after it."""

    # Not tqdm (which the replay's bar uses): this bar shares the terminal with the decision lines printed
    # between its updates and carries the demo's own label (simulated time, wall time); tqdm.write could
    # interleave them, but the lines go to `out` and the bar to `err`, which tqdm does not coordinate.

    def __init__(self, out: TextIO, err: TextIO, *, progress: bool, width: int = 30) -> None:
        self._out = out
        self._err = err
        self._progress = progress
        self._width = width
        self._bar = ""
        self._t0 = time.perf_counter()

    def line(self, text: str = "") -> None:
        self._clear()
        self._out.write(text + "\n")
        self._out.flush()
        self._draw()

    def lines(self, texts: Sequence[str]) -> None:
        for t in texts:
            self.line(t)

    def progress(self, done: int, total: int, *, label: str) -> None:
        if not self._progress:
            return
        filled = self._width * done // max(total, 1)
        pct = 100 * done // max(total, 1)
        wall = time.perf_counter() - self._t0
        self._bar = f"[{'#' * filled}{'-' * (self._width - filled)}] {pct:3d}%  {label}  wall {wall:4.0f} s"
        self._clear()
        self._draw()

    def finish(self) -> None:
        self._clear()
        self._bar = ""

    def _clear(self) -> None:
        if self._progress and self._bar:
            self._err.write("\r" + " " * (len(self._bar) + 2) + "\r")
            self._err.flush()

    def _draw(self) -> None:
        if self._progress and self._bar:
            self._err.write(self._bar)
            self._err.flush()
