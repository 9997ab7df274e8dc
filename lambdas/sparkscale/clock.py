"""The one place that reads the wall clock. Handlers and the CLI call it at the edge and inject `now`."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
