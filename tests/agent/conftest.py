"""Shared helpers for the heap agent tests. No test here may reach a real AWS endpoint."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "spark_statsd_lines.txt"


def spark_lines() -> list[bytes]:
    """The captured datagrams (one per line), header comments dropped."""
    return [line for line in FIXTURE.read_bytes().split(b"\n") if line and not line.startswith(b"#")]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto_url(aws_env):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's backends are global to this process: start each test from an empty CloudWatch
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    yield url
    server.stop()


def agent_env(moto_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=moto_url,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PYTHONPATH=str(REPO / "lambdas"),
    )
    return env


class LineReader:
    """Collects a process's stdout lines on a thread, so a test can wait for one without blocking forever."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(
            target=lambda: [self.lines.put(line.rstrip("\n")) for line in stream], daemon=True
        ).start()

    def wait_for(self, predicate, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no matching line within {timeout_s}s; saw: {self.seen!r}")

    def rest(self, timeout_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=0.1))
            except queue.Empty:
                if not self.lines.qsize():
                    break
        return self.seen


def cloudwatch(moto_url: str):
    return boto3.client("cloudwatch", endpoint_url=moto_url, region_name="us-east-1")
