"""The imperative shell of the agent: a UDP socket, a receive loop, a publish thread, a stop event.

The receive loop (the caller's thread) only parses and updates the table, so a slow or failing CloudWatch
call never stops it from draining the socket; the publish thread takes a snapshot on every interval boundary
of the wall clock (so each node sends exactly one batch per CloudWatch period, timestamped with the period's
start) and owns the Publisher. Both clocks are injected.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from sparkscale.agent.aggregate import HeapAggregator, HeapSnapshot, StreamingAggregator, StreamingSnapshot
from sparkscale.agent.publish import PublishAttempt, Publisher, metric_data, streaming_metric_data
from sparkscale.agent.statsd import MAX_PACKET_BYTES, Counters, HeapReading, parse_packet

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from sparkscale.agent.yarn import YarnLoop

RECV_BUFFER_BYTES = 65536  # larger than any UDP datagram, so an oversized one is seen whole and counted
DEFAULT_RCVBUF_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_PACKETS_PER_S = 50_000  # 50x Spark's load at 50 executors; above this, packets are dropped unread
_SO_RCVBUFFORCE = 33  # Linux; lets root exceed net.core.rmem_max


class HeapAgent:
    """Datagrams in, batches out; owns the counters, the JVM table and the streaming table. Thread-safe."""

    def __init__(
        self,
        *,
        cluster_id: str,
        silent_after_s: float,
        max_jvms: int = 4096,
        max_packets_per_s: int = DEFAULT_MAX_PACKETS_PER_S,
    ) -> None:
        self.cluster_id = cluster_id
        self.counters = Counters()
        self.table = HeapAggregator(silent_after_s=silent_after_s, counters=self.counters, max_jvms=max_jvms)
        self.streams = StreamingAggregator(silent_after_s=silent_after_s, counters=self.counters)
        self.max_packets_per_s = max_packets_per_s
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._window_packets = 0

    def on_datagram(self, data: bytes, now: float) -> None:
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._window_packets = 0
        self._window_packets += 1
        if self._window_packets > self.max_packets_per_s:
            with self._lock:
                self.counters.packets += 1
                self.counters.flood_dropped_packets += 1
            return
        with self._lock:
            for reading in parse_packet(data, self.counters):
                if isinstance(reading, HeapReading):
                    self.table.add(reading, now)
                else:
                    self.streams.add(reading, now)

    def on_oversized(self) -> None:
        with self._lock:
            self.counters.packets += 1
            self.counters.oversized_packets += 1

    def snapshot(self, now: float) -> HeapSnapshot:
        with self._lock:
            return self.table.snapshot(now)

    def batch(self, now: float, timestamp: float) -> tuple[HeapSnapshot, list[dict[str, object]]]:
        snap = self.snapshot(now)
        return snap, metric_data(snap, cluster_id=self.cluster_id, timestamp=timestamp)

    def streaming_batch(
        self, now: float, timestamp: float
    ) -> tuple[StreamingSnapshot, list[dict[str, object]]]:
        """The streaming datums of the interval: an empty list when no query reported."""
        with self._lock:
            snap = self.streams.snapshot(now)
        return snap, streaming_metric_data(snap, cluster_id=self.cluster_id, timestamp=timestamp)


def open_socket(bind: str, port: int, rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES) -> socket.socket:
    """A UDP socket with a receive buffer big enough for Spark's bursts (every JVM sends ~200-250 datagrams at
    once each period; the 208 KiB Linux default loses the end of each burst, where the jvm.* names sort)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, rcvbuf_bytes)
                break
            except OSError:
                continue
        sock.bind((bind, port))
    except OSError:
        sock.close()
        raise
    return sock


def drop_privileges(user: str) -> None:
    """After binding as root (to raise the buffer), run as `user`. A no-op when not root."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    import pwd  # noqa: PLC0415 - POSIX only

    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def align_down(epoch_s: float, interval_s: float) -> float:
    return (epoch_s // interval_s) * interval_s


def format_line(
    event: str, snap: HeapSnapshot | None, outcome: PublishAttempt, publisher: Publisher, counters: Counters
) -> str:
    parts = [event, "ok" if outcome.sent else ("failed" if outcome.error else "deferred")]
    if snap is not None:
        parts += [
            f"executors={snap.executor_jvms}",
            f"used_bytes={snap.executor_used_bytes:.0f}",
            f"max_bytes={snap.executor_max_bytes:.0f}",
            f"used_pct={snap.executor_used_pct:.1f}",
            f"max_jvm_pct={snap.executor_max_jvm_used_pct:.1f}",
            f"drivers={snap.driver_jvms}",
            f"driver_used_bytes={snap.driver_used_bytes:.0f}",
            f"driver_pct={snap.driver_used_pct:.1f}",
        ]
        if snap.allocation_drivers:
            parts += [
                f"executors_needed={snap.executors_needed:.0f}",
                f"executors_target={snap.executors_target:.0f}",
            ]
    parts += [
        f"datums={outcome.datums}",
        f"pending={publisher.pending_batches}",
        f"failures={publisher.consecutive_failures}",
        f"dropped_batches={publisher.dropped_batches}",
        f"packets={counters.packets}",
        f"heap_lines={counters.heap_lines}",
        f"malformed={counters.malformed_lines}",
        f"invalid={counters.invalid_values}",
        f"non_utf8={counters.non_utf8_packets}",
        f"oversized={counters.oversized_packets}",
        f"flood_dropped={counters.flood_dropped_packets}",
        f"dropped={counters.dropped}",
    ]
    if outcome.error:
        parts.append(f"error={outcome.error!r}")
    return " ".join(parts)


def format_streaming_line(
    event: str, snap: StreamingSnapshot | None, outcome: PublishAttempt, publisher: Publisher
) -> str:
    """One line per interval with streaming data (and per retry): what went to Sparkscale/SparkStreaming."""
    parts = [event, "ok" if outcome.sent else ("failed" if outcome.error else "deferred")]
    if snap is not None:
        parts += [f"queries={snap.queries}", f"dstream_apps={snap.dstream_apps}"]
        for key, value in (
            ("input_rows_per_s", snap.input_rows_per_s),
            ("processed_rows_per_s", snap.processed_rows_per_s),
            ("latency_ms", snap.batch_latency_ms),
            ("scheduling_delay_ms", snap.scheduling_delay_ms),
            ("waiting_batches", snap.waiting_batches),
        ):
            parts.append(f"{key}={'-' if value is None else format(value, '.2f')}")
    parts += [
        f"datums={outcome.datums}",
        f"pending={publisher.pending_batches}",
        f"failures={publisher.consecutive_failures}",
        f"dropped_batches={publisher.dropped_batches}",
    ]
    if outcome.error:
        parts.append(f"error={outcome.error!r}")
    return " ".join(parts)


def _publish_streaming(
    agent: HeapAgent, streaming: Publisher, now: float, bucket: float, log: Callable[[str], None]
) -> None:
    """Enqueue the interval's streaming batch, if any query reported, and send it (its own call: its own
    namespace) when the streaming publisher is not backing off."""
    snap, batch = agent.streaming_batch(now, timestamp=bucket)
    if batch:
        streaming.enqueue(batch)
    if streaming.due(now):
        log(format_streaming_line("streaming", snap, streaming.attempt(now), streaming))
    elif batch:
        log(format_streaming_line("streaming", snap, PublishAttempt(sent=False, datums=0), streaming))


def publish_loop(
    *,
    agent: HeapAgent,
    publisher: Publisher,
    interval_s: float,
    stop: threading.Event,
    wall_clock: Callable[[], float],
    monotonic: Callable[[], float],
    log: Callable[[str], None],
    streaming: Publisher | None = None,
) -> None:
    """Until `stop`: on each wall-clock boundary, enqueue a batch and send it; in between, retry when due.

    One batch per interval bucket: if the clock steps back within the bucket just sent, the bucket is not sent
    again (a Sum over nodes would count this node twice); a larger step back restarts the schedule.
    `streaming` (namespace Sparkscale/SparkStreaming) gets the streaming batch of the same bucket, only when a
    query reported; it has its own buffer and backoff, so a failure of one namespace never holds the other.
    """
    publishers = [publisher] if streaming is None else [publisher, streaming]
    next_boundary = align_down(wall_clock(), interval_s) + interval_s
    last_bucket: float | None = None
    while True:
        # the clock stepped back: do not wait for the old boundary
        if next_boundary - wall_clock() > interval_s:
            next_boundary = align_down(wall_clock(), interval_s) + interval_s
        wait_s = min(max(0.0, next_boundary - wall_clock()), interval_s)
        for each in publishers:
            if each.pending_batches:
                wait_s = min(wait_s, max(0.0, each.next_attempt_at - monotonic()))
        if stop.wait(wait_s):
            break
        now_wall, now = wall_clock(), monotonic()
        if now_wall >= next_boundary:
            bucket = align_down(now_wall, interval_s)
            next_boundary = bucket + interval_s
            if bucket == last_bucket:
                continue
            last_bucket = bucket
            snap, batch = agent.batch(now, timestamp=bucket)
            publisher.enqueue(batch)
            outcome = publisher.attempt(now) if publisher.due(now) else PublishAttempt(sent=False, datums=0)
            log(format_line("publish", snap, outcome, publisher, agent.counters))
            if streaming is not None:
                _publish_streaming(agent, streaming, now, bucket, log)
            continue
        if publisher.due(now):
            log(format_line("retry", None, publisher.attempt(now), publisher, agent.counters))
        if streaming is not None and streaming.due(now):
            log(format_streaming_line("streaming-retry", None, streaming.attempt(now), streaming))
    if publisher.pending_batches:  # one last try on the way out; never a new batch (its minute may be sent)
        log(format_line("final", None, publisher.attempt(monotonic()), publisher, agent.counters))
    if streaming is not None and streaming.pending_batches:
        log(format_streaming_line("streaming-final", None, streaming.attempt(monotonic()), streaming))


def receive_loop(
    *, sock: socket.socket, agent: HeapAgent, stop: threading.Event, monotonic: Callable[[], float]
) -> None:
    """Drain the socket into the agent until `stop` (checked at least every 0.5 s)."""
    buf = bytearray(RECV_BUFFER_BYTES)
    view = memoryview(buf)
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            size = sock.recv_into(buf)
        except socket.timeout:  # noqa: UP041 - not an alias of TimeoutError before Python 3.10
            continue
        except InterruptedError:
            continue
        except OSError:
            if stop.is_set():
                break
            raise
        if size > MAX_PACKET_BYTES:
            agent.on_oversized()
            continue
        agent.on_datagram(bytes(view[:size]), monotonic())


def serve(
    *,
    sock: socket.socket,
    agent: HeapAgent,
    publisher: Publisher,
    interval_s: float,
    stop: threading.Event,
    wall_clock: Callable[[], float],
    monotonic: Callable[[], float],
    log: Callable[[str], None] | None = None,
    yarn: YarnLoop | None = None,
    streaming: Publisher | None = None,
) -> None:
    """Run both loops (and the YARN loop, when given) until `stop` is set; returns after the final flush.

    The YARN loop runs on its own thread with its own publisher: it never stops or delays the heap loops, and
    a failure in it is logged by the loop itself rather than stopping the process."""
    emit = log or print
    failures: list[BaseException] = []

    def publish_or_stop(**kwargs: Any) -> None:
        try:
            publish_loop(**kwargs)
        except BaseException as exc:  # a bug here must stop the process, so systemd restarts it
            failures.append(exc)
            stop.set()

    thread = threading.Thread(
        target=publish_or_stop,
        name="heap-agent-publish",
        kwargs={
            "agent": agent,
            "publisher": publisher,
            "interval_s": interval_s,
            "stop": stop,
            "wall_clock": wall_clock,
            "monotonic": monotonic,
            "log": emit,
            "streaming": streaming,
        },
        daemon=True,
    )
    thread.start()
    yarn_thread = None
    if yarn is not None:
        yarn_thread = threading.Thread(target=yarn.run, args=(stop,), name="heap-agent-yarn", daemon=True)
        yarn_thread.start()
    try:
        receive_loop(sock=sock, agent=agent, stop=stop, monotonic=monotonic)
    finally:
        stop.set()
        thread.join(timeout=60)
        if thread.is_alive():  # pragma: no cover - a hung final call; the process exits anyway
            print("heap-agent: publish thread did not stop", file=sys.stderr)
        if yarn_thread is not None:
            yarn_thread.join(timeout=60)
            if yarn_thread.is_alive():  # pragma: no cover
                print("heap-agent: yarn thread did not stop", file=sys.stderr)
    if failures:
        raise RuntimeError(f"publish thread failed: {failures[0]!r}") from failures[0]
