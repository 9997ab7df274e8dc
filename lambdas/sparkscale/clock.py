"""The one place that reads the wall clock. Handlers and the CLI call it at the edge and inject `now`."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)  # noqa: UP017 - EMR nodes run Python 3.7+
