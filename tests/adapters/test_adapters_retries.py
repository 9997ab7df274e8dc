"""boto_config(attempts=N) makes exactly N calls to AWS for a request that keeps failing, the first included.

botocore's Config spells this two ways: `max_attempts` counts the retries (botocore adds one, so the old
`max_attempts=4` made 5 calls) and `total_max_attempts` counts every call. A counting endpoint on 127.0.0.1
answers every request with a throttling error, so the real retry loop (standard and adaptive mode) runs over
real HTTP; its backoff sleeps are skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError
from sparkscale.adapters.aws import ATTEMPTS, boto_config
from sparkscale.adapters.emr import EmrClusterReader
from sparkscale.errors import Throttled

THROTTLED = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'  # EMR's JSON protocol error shape


class _Counter(BaseHTTPRequestHandler):
    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with _Counter.lock:
            _Counter.calls += 1
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(THROTTLED)))
        self.end_headers()
        self.wfile.write(THROTTLED)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _s: None)  # the backoff, not the count
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Counter.calls = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _emr(url: str, **kw: object) -> object:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return session.client("emr", endpoint_url=url, config=boto_config(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
@pytest.mark.parametrize("attempts", [1, 2, ATTEMPTS])
def test_attempts_is_the_number_of_calls_the_first_included(endpoint: str, mode: str, attempts: int) -> None:
    emr = _emr(endpoint, mode=mode, attempts=attempts)
    with pytest.raises(ClientError) as err:
        emr.describe_cluster(ClusterId="j-ABC")  # type: ignore[attr-defined]
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert _Counter.calls == attempts
    assert err.value.response["ResponseMetadata"]["RetryAttempts"] == attempts - 1


def test_the_default_makes_four_calls_then_the_adapter_says_throttled(endpoint: str) -> None:
    reader = EmrClusterReader(_emr(endpoint))
    with pytest.raises(Throttled):
        reader.read_cluster("j-ABC")
    assert _Counter.calls == ATTEMPTS == 4


def test_zero_attempts_is_refused_rather_than_read_as_no_retry() -> None:
    with pytest.raises(ValueError, match="counts the first call too"):
        boto_config(attempts=0)
