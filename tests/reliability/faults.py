"""A fault-injecting wrapper for the in-memory ports (tests/reliability).

`Faulty(inner, name, plan)` forwards every method of `inner` (so the optional-port isinstance checks,
IntentStore, CapacityErrorRecorder, DemandHistoryStore, see the same methods) and counts its calls as
"<name>.<method>". When the plan names the call (method and the n-th call of it), the call fails the way AWS
does:

| fault | what happens |
|---|---|
| THROTTLE | Throttled, before the call took effect (a 4xx after botocore's retries) |
| BEFORE_5XX | TransientAwsError, before the call took effect (the request never arrived) |
| AFTER_5XX | the call takes effect, then TransientAwsError (the answer was lost: a timeout, a 500) |
| CONFLICT | a conditional write loses its condition: the call returns False, nothing written |
| SNS_DOWN | the notifier raises (SNS outage) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sparkscale.errors import Throttled, TransientAwsError


class Fault(StrEnum):
    THROTTLE = "throttle"
    BEFORE_5XX = "5xx-before"
    AFTER_5XX = "5xx-after"
    CONFLICT = "conflict"
    SNS_DOWN = "sns-down"


# the conditional writes: what a conflict means for each (False: another writer won)
CONDITIONAL = frozenset({"state.acquire_lease", "state.put_intent", "state.record_intent", "ledger.claim"})


@dataclass
class Plan:
    """Which call fails how: `at` = ("state.record_intent", 1) fails the first record_intent."""

    at: tuple[str, int] | None = None
    fault: Fault | None = None
    calls: list[str] = field(default_factory=list)  # every call, in order
    fired: bool = False

    def count(self, call: str) -> int:
        self.calls.append(call)
        return self.calls.count(call)


class Faulty:
    def __init__(self, inner: Any, name: str, plan: Plan) -> None:
        self._inner, self._name, self._plan = inner, name, plan

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._inner, attr)
        if attr.startswith("_") or not callable(target):
            return target
        return self._wrap(f"{self._name}.{attr}", target)

    def _wrap(self, call: str, target: Callable[..., Any]) -> Callable[..., Any]:
        plan = self._plan

        def method(*args: Any, **kwargs: Any) -> Any:
            nth = plan.count(call)
            if plan.at != (call, nth) or plan.fault is None:
                return target(*args, **kwargs)
            plan.fired = True
            fault = plan.fault
            if fault is Fault.THROTTLE:
                raise Throttled(f"{call}: injected throttling", code="ThrottlingException")
            if fault in (Fault.BEFORE_5XX, Fault.SNS_DOWN):
                raise TransientAwsError(f"{call}: injected 5xx before the call", code="InternalError")
            if fault is Fault.CONFLICT:
                return False
            target(*args, **kwargs)
            raise TransientAwsError(f"{call}: injected 5xx after the call took effect", code="InternalError")

        return method


def applicable(call: str) -> tuple[Fault, ...]:
    """The faults a call can meet: SNS fails as itself; a conditional write can also lose its condition."""
    if call.startswith("notifier."):
        return (Fault.SNS_DOWN, Fault.AFTER_5XX)
    faults = (Fault.THROTTLE, Fault.BEFORE_5XX, Fault.AFTER_5XX)
    return (*faults, Fault.CONFLICT) if call in CONDITIONAL else faults
