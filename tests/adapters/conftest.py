from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws
from sparkscale.adapters.aws import AwsClients

from tests.scale.shell_support import clients, fake_aws_env, moto_server


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_env(monkeypatch)


@pytest.fixture(params=["in-process", "http"])
def aws(request: pytest.FixtureRequest) -> Iterator[AwsClients]:
    """moto in process (mock_aws) and moto over real HTTP (ThreadedMotoServer on 127.0.0.1, a free port)."""
    if request.param == "in-process":
        with mock_aws():
            yield clients()
    else:
        with moto_server() as url:
            yield clients(url)
