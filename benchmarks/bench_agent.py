"""Heap agent cost at 50 executors x 200 lines every 10 s (1,000 StatsD lines/s) over loopback UDP.

The agent runs as its own process (`python -m sparkscale.agent`, boto3 → a moto server on 127.0.0.1,
publishing every 10 s: six times the production rate, so the publish cost is over- rather than
under-counted). This script sends the load, lets the agent warm up, then measures for ~30 s: CPU share =
the agent's CPU time (user+system, from /proc) / wall time, and its resident memory (VmRSS at the end,
VmHWM = peak). Targets: <= 2 % of one core, <= 50 MB. The lines are real Spark 4.3.0 executor lines
(tests/fixtures/spark_statsd_lines.txt), one datagram each, re-labelled per executor, plus a driver running
--streaming-queries Structured Streaming queries (real pyspark 4.3.0 lines,
tests/fixtures/spark_streaming_statsd_lines.txt, re-labelled per query), so the streaming batch is published
too.

    python benchmarks/bench_agent.py [--seconds 30] [--executors 50] [--lines 200] [--period-s 10]
                                     [--streaming-queries 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "spark_statsd_lines.txt"
STREAMING_FIXTURE = REPO / "tests" / "fixtures" / "spark_streaming_statsd_lines.txt"
CPU_TARGET_PCT = 2.0
RSS_TARGET_MB = 50.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PUBLISH = ("--interval-s", "10")


def executor_lines(executor: int, count: int) -> list[bytes]:
    """`count` real executor lines (executor 0 of the capture), re-labelled as executor `executor`."""
    raw = [line for line in FIXTURE.read_bytes().split(b"\n") if line and not line.startswith(b"#")]
    template = [line.split(b".", 2)[2] for line in raw if line.split(b".")[1] == b"0"]
    prefix = f"app-20260101000000-0042.{executor}.".encode()
    return [prefix + template[i % len(template)] for i in range(count)]


def streaming_driver_lines(queries: int) -> list[bytes]:
    """One period of a driver's Structured Streaming lines (6 gauges a query), for `queries` queries."""
    raw = STREAMING_FIXTURE.read_bytes().split(b"\n")
    one_period = [line for line in raw if b".driver.spark.streaming." in line][-6:]  # the capture's last
    return [
        line.replace(b"orders.enriched", f"orders.q{q}".encode())
        for q in range(queries)
        for line in one_period
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_load(port: int, bursts: list[list[bytes]], period_s: float, stop: threading.Event) -> int:
    """Each executor sends its burst once per period, the executors spread evenly over the period."""
    sent = 0
    step = period_s / len(bursts)
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        n = 0
        while not stop.is_set():
            due = start + n * step
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            for line in bursts[n % len(bursts)]:
                tx.sendto(line, ("127.0.0.1", port))
            sent += len(bursts[n % len(bursts)])
            n += 1
    return sent


@dataclass(frozen=True)
class Figures:
    cpu_s: float
    wall_s: float
    rss_mb: float
    hwm_mb: float
    sent: int
    final: dict[str, str]  # the agent's counters in its "stopped" line
    publishes: list[str]

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s


def run(args: argparse.Namespace) -> Figures:
    """Start moto and the agent, send the load, measure; returns the figures."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, moto_port = server.get_host_and_port()
    port = free_udp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=f"http://{host}:{moto_port}",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PYTHONPATH=str(REPO / "lambdas"),
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "sparkscale.agent", "--port", str(port), "--cluster-id", "j-BENCH", *PUBLISH],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    reader = threading.Thread(
        target=lambda: log.extend(line.rstrip() for line in agent.stdout or []), daemon=True
    )
    reader.start()
    stop = threading.Event()
    bursts = [executor_lines(i, args.lines) for i in range(args.executors)]
    if args.streaming_queries:
        bursts.append(streaming_driver_lines(args.streaming_queries))
    sent: dict[str, int] = {}
    sender = threading.Thread(
        target=lambda: sent.update(n=send_load(port, bursts, args.period_s, stop)), daemon=True
    )
    try:
        time.sleep(1.0)  # let the agent bind
        sender.start()
        time.sleep(args.warmup_s)
        cpu0, wall0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, wall1 = cpu_seconds(agent.pid), time.monotonic()
        memory = memory_mb(agent.pid)
        stop.set()
        sender.join(timeout=15)
        time.sleep(0.5)  # let the agent drain its socket
    finally:
        stop.set()
        agent.terminate()
        agent.wait(timeout=30)
        reader.join(timeout=5)
        server.stop()
    publishes = [line for line in log if line.startswith(("publish ", "streaming "))]
    stopped = next((line for line in log if line.startswith("stopped ")), "")
    return Figures(
        cpu_s=cpu1 - cpu0,
        wall_s=wall1 - wall0,
        rss_mb=memory["VmRSS"],
        hwm_mb=memory["VmHWM"],
        sent=sent.get("n", 0),
        final=dict(part.split("=", 1) for part in stopped.split() if "=" in part),
        publishes=publishes,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--executors", type=int, default=50)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--period-s", type=float, default=10.0)
    parser.add_argument("--streaming-queries", type=int, default=4)
    args = parser.parse_args()
    r = run(args)
    cpu_pct, rss, hwm, final, publishes = r.cpu_pct, r.rss_mb, r.hwm_mb, r.final, r.publishes
    rate = (args.executors * args.lines + 6 * args.streaming_queries) / args.period_s
    ok = cpu_pct <= CPU_TARGET_PCT and max(rss, hwm) <= RSS_TARGET_MB
    print(
        f"load: {args.executors} executors x {args.lines} lines and {args.streaming_queries} streaming"
        f" queries x 6 lines every {args.period_s:g} s = {rate:.0f} lines/s"
    )
    print(
        f"measured {r.wall_s:.1f} s after a {args.warmup_s:g} s warm-up; agent publishes every 10 s (boto3)"
    )
    print(f"agent CPU: {r.cpu_s:.2f} s = {cpu_pct:.2f} % of one core (target <= {CPU_TARGET_PCT:g} %)")
    print(f"agent memory: VmRSS {rss:.1f} MB, peak VmHWM {hwm:.1f} MB (target <= {RSS_TARGET_MB:g} MB)")
    print(
        f"datagrams sent {r.sent}, received {final.get('packets', '?')}, "
        f"dropped as bad {final.get('dropped', '?')}, streaming lines {final.get('streaming_lines', '?')}, "
        f"publishes {sum(p.startswith('publish ') for p in publishes)} heap, "
        f"{sum(p.startswith('streaming ') for p in publishes)} streaming"
    )
    for kind in ("publish ", "streaming "):
        last = [p for p in publishes if p.startswith(kind)]
        if last:
            print(f"last {kind.strip()}: {last[-1][:170]}")
    print("| benchmark | load | CPU (% of one core) | RSS / peak (MB) | target | result |")
    print("|---|---|---|---|---|---|")
    print(
        f"| bench_agent | {args.executors} exec x {args.lines} lines / {args.period_s:g} s"
        f" ({rate:.0f} lines/s) "
        f"| {cpu_pct:.2f} | {rss:.1f} / {hwm:.1f} | <= 2 %, <= 50 MB | {'PASS' if ok else 'FAIL'} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
