"""JSON text inside an event (an SNS Message, an SQS body, EMR's stateChangeReason), loaded only when it is
small and shallow enough (pure).

`json.loads` recurses once per nesting level, so a Message of 100,000 `[` raises RecursionError, and a number
of more than 4,300 digits raises ValueError: neither is a JSONDecodeError. `load_json` checks the size, then
the depth with one linear scan, and turns every failure into a BadEvent with one reason.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from sparkscale.errors import BadEvent

MAX_JSON_DEPTH: Final = 20  # an alarm notification nests 7 deep (Trigger.Metrics[].MetricStat.Metric...)
_STRUCTURE: Final = re.compile(r'[\[\]{}"]')
# The rest of a JSON string after its opening quote, escapes included (the unrolled form: linear, even when
# the string is never closed).
_STRING_REST: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Does `text` nest arrays/objects deeper than `limit`? Linear in len(text) whatever the input: strings
    are skipped by one regex match each (brackets inside them do not count), and the scan stops as soon as
    the depth passes `limit`. An unclosed string ends the scan: json.loads then says where."""
    if text.count("[") + text.count("{") <= limit:  # the common case, at C speed
        return False
    depth, pos = 0, 0
    while (m := _STRUCTURE.search(text, pos)) is not None:
        pos = m.end()
        c = m.group()
        if c == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:
                return False
            pos = rest.end()
        elif c in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def load_json(text: str, *, what: str, max_chars: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value of JSON `text`, or BadEvent naming `what`: too large, nested too deeply, or not JSON."""
    if len(text) > max_chars:
        raise BadEvent(f"{what} is too large ({len(text)} characters, at most {max_chars})")
    if json_depth_exceeds(text, max_depth):
        raise BadEvent(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        snippet = text.strip()[:40].replace("\n", " ")
        raise BadEvent(f"{what} is not JSON ({exc.msg} at character {exc.pos}): {snippet!r}") from None
    except (ValueError, RecursionError) as exc:  # a number too long to convert; the depth check missed none
        raise BadEvent(f"{what} is not usable JSON ({type(exc).__name__})") from None
