from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.handlers.conftest import Deployment, _deploy


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    yield from _deploy("in-process", monkeypatch)
