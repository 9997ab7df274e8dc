"""Mutated copies of real payloads, from one seed: the attacker of issue #18 item 6.

A payload is unpacked first: JSON text inside it (an SNS Message, an SQS body, EMR's stateChangeReason)
becomes an `Embedded` tree, so mutations reach inside it too, and is packed back into text afterwards. Each
example applies one to three mutations, each at a node picked among all nodes of the tree:

- `type`: the node becomes a value of another type (None, bool, int, float, text, list, object);
- `delete` / `extra`: a key or item goes, or an unexpected one comes;
- `deep`: the node becomes a list or object nested up to 5,000 levels (as data, or as JSON text);
- `big`: the node becomes a string of up to 300,000 characters built from a hostile pattern ("was arrested
  at ", an unterminated JSON string, brackets, non-ASCII digits, ...);
- `string`: a string is truncated, upper-cased, padded, given a newline or emptied;
- `date`: the node (preferably a time field) becomes an edge date: year 1 at +14:00, year 9999 at -14:00,
  naive, 1970, far future, not a date;
- `number`: the node becomes an edge number (2**63, a 5,000-digit int, 1e308, -1, True);
- `records`: a Records list is repeated (batches of up to 4,000 records).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Op = tuple[str, int, int, Any]  # (operation, where, which variant, value)
OPS = ("type", "delete", "extra", "deep", "big", "string", "date", "number", "records")
TIME_KEYS = frozenset({"time", "StateChangeTime", "timestamp", "Timestamp"})
DATES = (
    "0001-01-01T00:00:00+14:00",  # OverflowError when converted to UTC (the issue's)
    "9999-12-31T23:59:59-14:00",
    "2026-03-02T12:00:00",  # naive
    "1970-01-01T00:00:00Z",
    "2999-01-01T00:00:00Z",
    "2026-03-02T11:00:00Z",  # an hour old
    "2026-03-02T12:05:00Z",  # four minutes ahead
    "2026-02-30T12:00:00Z",
    "2026-03-02T12:00:00+25:00",
    "yyyy-mm-ddThh:mm:ssZ",
    "",
    "2026-03-02T12:00:00.123456789Z",
)
NUMBERS: tuple[Any, ...] = (0, -1, 2**63, 10**5000, 1e308, -0.0, True, False, 4.5)
PATTERNS = (
    "was arrested at ",
    "is stuck for the following reason: ",
    "for the following reason: ",
    "insufficient ",
    '"\\',
    "[",
    "{",
    '{"a":',
    "a",
    " ",
    "²",
    "\u00e9\n",
)
BIG_SIZES = (1, 100, 5_000, 300_000)
DEEP_SIZES = (30, 1_100, 5_000)  # past the recursion limit (1,000), cheap to build

# What a `type` or `extra` mutation puts in: every JSON type, and strings the parsers look for.
VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**63,
    1.5,
    float("inf"),
    "",
    " ",
    "x",
    "ALARM",
    "OK",
    "TASK",
    "SPOT",
    "SUSPENDED",
    "TERMINATED",
    "Notification",
    "aws:sqs",
    "j-2AXXXXXXGAPLF",
    "j-2AXXXXXXGAPLF\n",
    "i-1234567890abcdef0",
    "ig-SPOTR5",
    "AWS/ElasticMapReduce",
    "JobFlowId",
    "arn:aws:cloudwatch:us-east-1:999999999999:alarm:x",
    "\u0000\ud7ff\uffff",
    [],
    [None],
    ["a", 1],
    {},
    {"a": 1},
    {"Metric": "x"},
    {"name": "JobFlowId", "value": 5},
    {"metricStat": {"metric": []}},
)


@dataclass
class Embedded:
    """JSON text inside the payload, mutated as a tree and sent as text."""

    value: Any


@dataclass
class Raw:
    """A value placed as is (deep or big): never walked nor re-encoded."""

    value: Any


def unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: unpack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack(v) for v in obj]
    if isinstance(obj, str) and obj[:1] in ("{", "["):
        try:
            return Embedded(unpack(json.loads(obj)))
        except ValueError:
            return obj
    return obj


def pack(obj: Any) -> Any:  # noqa: PLR0911 - one return per kind of node
    if isinstance(obj, Raw):
        return obj.value
    if isinstance(obj, Embedded):
        inner = pack(obj.value)
        if isinstance(inner, str):  # a deep or big text stays text
            return inner
        try:
            return json.dumps(inner)
        except (RecursionError, ValueError):  # too deep for the encoder, or an int too long: as deep text
            return "[" * DEEP_SIZES[-1] + "]" * DEEP_SIZES[-1]
    if isinstance(obj, dict):
        return {k: pack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [pack(v) for v in obj]
    return obj


Slot = tuple[Any, Any]  # (container, key or index); the root is ([root], 0)


def slots(root_box: list[Any]) -> list[Slot]:
    out: list[Slot] = [(root_box, 0)]
    stack: list[Any] = [root_box[0]]
    while stack:
        node = stack.pop()
        if isinstance(node, Embedded):
            out.append((node, "value"))
            stack.append(node.value)
        elif isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append(v)
    return out


def _get(slot: Slot) -> Any:
    c, k = slot
    return c.value if isinstance(c, Embedded) else c[k]


def _set(slot: Slot, v: Any) -> None:
    c, k = slot
    if isinstance(c, Embedded):
        c.value = v
    else:
        c[k] = v


def _deep(depth: int, kind: int) -> Any:
    if kind == 0:  # as data
        node: Any = []
        for _ in range(depth):
            node = [node]
        return Raw(node)
    if kind == 1:
        node = {}
        for _ in range(depth):
            node = {"Message": node}
        return Raw(node)
    opener, closer = ("[", "]") if kind == 2 else ('{"a":', "}")  # as JSON text
    return Raw(opener * depth + ("1" if kind == 3 else "") + closer * depth)


def _string(s: str, n: int, extra: Any) -> str:
    variants: tuple[Callable[[], str], ...] = (
        lambda: s[: n % (len(s) + 1)],
        s.upper,
        lambda: s + "\n",
        lambda: f"  {s}  ",
        lambda: "",
        lambda: s + str(extra)[:20],
    )
    return variants[n % len(variants)]()


def mutate(payload: Any, ops: list[Op]) -> Any:  # noqa: PLR0912 - one branch per op
    """`payload` (a fresh unpacked copy) with `ops` applied, packed back into what a Lambda receives."""
    box = [payload]
    repeat = 0
    for op, where, n, value in ops:
        all_slots = slots(box)
        slot = all_slots[where % len(all_slots)]
        if op == "date":
            timed = [s for s in all_slots if isinstance(s[1], str) and s[1] in TIME_KEYS]
            slot = timed[where % len(timed)] if timed else slot
            _set(slot, DATES[n % len(DATES)])
        elif op == "type":
            _set(slot, value)
        elif op == "delete":
            c, k = slot
            if isinstance(c, dict) or (isinstance(c, list) and c is not box):
                del c[k]
            else:
                _set(slot, None)
        elif op == "extra":
            node = _get(slot)
            if isinstance(node, dict):
                node[str(value)[:10] or "x"] = value
            elif isinstance(node, list):
                node.append(value)
            else:
                _set(slot, [node, value])
        elif op == "deep":
            _set(slot, _deep(DEEP_SIZES[n % len(DEEP_SIZES)], (n // 3) % 4))
        elif op == "big":
            pattern = PATTERNS[n % len(PATTERNS)]
            size = BIG_SIZES[(n // len(PATTERNS)) % len(BIG_SIZES)]
            _set(slot, Raw(pattern * max(1, size // len(pattern))))
        elif op == "string":
            node = _get(slot)
            _set(slot, _string(node, n, value) if isinstance(node, str) else str(value)[:20])
        elif op == "number":
            _set(slot, NUMBERS[n % len(NUMBERS)])
        elif op == "records":
            repeat = (2, 3, 10, 11, 4_000)[n % 5]
    packed = pack(box[0])
    if repeat and isinstance(packed, dict) and isinstance(packed.get("Records"), list):
        packed["Records"] = packed["Records"] * repeat  # the same record again: no copy, so cheap
    return packed


def random_ops(seed: int) -> list[Op]:
    """One to three mutations from one seed: hypothesis draws only the seed (and the sample), which keeps an
    example cheap enough for 10,000 per handler; a failure names its seed, and the seed replays it."""
    rng = random.Random(seed)
    ops: list[Op] = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.25:
            value: Any = "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 12)))
        else:
            value = copy.deepcopy(rng.choice(VALUES))
        ops.append((rng.choice(OPS), rng.randint(0, 2**16), rng.randint(0, 2**16), value))
    return ops
