"""The replay's progress on stderr: one tqdm bar per policy (steps, rate, elapsed and remaining time)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from sparkscale_tools.replay.engine import ProgressFn


class ProgressBar:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr

    def for_policy(self, name: str) -> ProgressFn:
        from tqdm import tqdm  # noqa: PLC0415 - only a replay with a progress bar pays for it

        bar: list[Any] = []

        def update(done: int, total: int) -> None:
            if not bar:
                bar.append(tqdm(total=total, desc=f"{name:<24}", unit="step", file=self._stream, leave=True))
            bar[0].update(done - bar[0].n)
            if done >= total:
                bar[0].close()

        return update
