"""A dependency-free progress bar on stderr for long replays."""

from __future__ import annotations

import sys
from typing import TextIO

from sparkscale_tools.replay.engine import ProgressFn


class ProgressBar:
    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width

    def for_policy(self, name: str) -> ProgressFn:
        last = [-1]

        def update(done: int, total: int) -> None:
            pct = 100 * done // max(total, 1)
            if pct == last[0]:
                return
            last[0] = pct
            filled = self._width * done // max(total, 1)
            bar = "#" * filled + "-" * (self._width - filled)
            self._stream.write(f"\r{name:<24} [{bar}] {pct:3d}% {done}/{total} steps")
            if done >= total:
                self._stream.write("\n")
            self._stream.flush()

        return update
