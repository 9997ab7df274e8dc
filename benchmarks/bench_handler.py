"""Handler benchmarks: cold import of handlers.alarm (fresh subprocess, median of 5; target <= 300 ms) and the
warm per-event overhead of the alarm handler excluding AWS round trips (in-memory ports and an in-memory
Idempotency persistence layer: parse + idempotency bookkeeping + lease + decide + record + notify + EMF).

    python benchmarks/bench_handler.py
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = ROOT / "lambdas"
sys.path[:0] = [str(LAMBDAS), str(ROOT)]

COLD_TARGET_MS = 300.0
COLD_RUNS = 5
WARM_EVENTS = 300

_IMPORT = (
    "import time; t = time.perf_counter(); import handlers.alarm; print((time.perf_counter() - t) * 1000.0)"
)


def cold_import_ms() -> tuple[list[float], list[float]]:
    """(import time inside the process, whole process wall time) per run, ms."""
    env = {**os.environ, "PYTHONPATH": str(LAMBDAS), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("AWS_ENDPOINT_URL", None)
    inside, wall = [], []
    for _ in range(COLD_RUNS):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT], capture_output=True, text=True, check=True, env=env, cwd=LAMBDAS
        )
        wall.append((time.perf_counter() - t0) * 1000.0)
        inside.append(float(out.stdout.strip()))
    return inside, wall


_SETUP = (
    "import os, time; import handlers.alarm as a; from handlers import common; t = time.perf_counter(); "
    "rt = common.build_runtime(os.environ); a._idempotent(rt); print((time.perf_counter() - t) * 1000.0)"
)


def first_invocation_setup_ms() -> list[float]:
    """What the first invocation adds before any AWS call: boto3, the adapters, 5 clients, Idempotency."""
    env = {
        **os.environ,
        "PYTHONPATH": str(LAMBDAS),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SPARKSCALE_TABLE_NAME": "bench",
        "SPARKSCALE_OPERATOR_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:bench",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    runs = []
    for _ in range(COLD_RUNS):
        out = subprocess.run(
            [sys.executable, "-c", _SETUP], capture_output=True, text=True, check=True, env=env, cwd=LAMBDAS
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return runs


def _memory_persistence() -> Any:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )

    class MemoryPersistence(BasePersistenceLayer):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.items: dict[str, Any] = {}

        def _get_record(self, idempotency_key: str) -> Any:
            try:
                return self.items[idempotency_key]
            except KeyError:
                raise IdempotencyItemNotFoundError from None

        def _put_record(self, data_record: Any) -> None:
            if data_record.idempotency_key in self.items:
                raise IdempotencyItemAlreadyExistsError
            self.items[data_record.idempotency_key] = data_record

        def _update_record(self, data_record: Any) -> None:
            self.items[data_record.idempotency_key] = data_record

        def _delete_record(self, data_record: Any) -> None:
            self.items.pop(data_record.idempotency_key, None)

    return MemoryPersistence()


def warm_event_us() -> dict[str, float]:
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Sparkscale")
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from handlers import alarm, common
    from sparkscale.config import Config
    from sparkscale.events import alarm as events
    from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
    from sparkscale.ports import Ports
    from sparkscale.usecases.scale import run_once

    from tests.scale.shell_support import (
        T0,
        FakeLambdaContext,
        alarm_body,
        cluster,
        group,
        pressure,
        sns_event_for,
    )

    cid = "j-BENCH0001"
    cfg = Config.from_mapping({"clusters": [cid], "max_task_nodes": 40, "group_max_nodes": 40})
    emr = FakeEmr(
        cluster(cid, group("ig-TASK1", requested=2), group("ig-TASK2", itype="m5.2xlarge", memory_gib=32))
    )
    store = InMemoryStateStore()
    ports = Ports(emr, FixedMetrics({cid: pressure(T0)}), emr, store, CollectingNotifier(), ledger=store)
    rt = common.Runtime(config=cfg, ports=ports, alarms=None, table_name="bench", alarm_prefix="sparkscale")
    idem_cfg = IdempotencyConfig(event_key_jmespath="message_id")
    fn = idempotent_function(
        data_keyword_argument="trigger", persistence_store=_memory_persistence(), config=idem_cfg
    )(alarm.evaluate)
    rt.cache["idempotent"] = (fn, idem_cfg)
    common.set_runtime(rt)
    body = alarm_body(cid)
    evs = [sns_event_for(body, f"m-{i}") for i in range(WARM_EVENTS)]
    ctx = FakeLambdaContext()
    sink = io.StringIO()
    timings: dict[str, list[float]] = {"handler": [], "parse": [], "run_once": []}
    with contextlib.redirect_stdout(sink):
        import logging

        logging.disable(logging.WARNING)  # the Logger's JSON lines are not what is measured
        alarm.handler(evs[0], ctx)  # warm up
        for ev in evs[1:]:
            t = time.perf_counter()
            alarm.handler(ev, ctx)
            timings["handler"].append(time.perf_counter() - t)
            t = time.perf_counter()
            events.parse_event(ev, managed_clusters=cfg.clusters)
            timings["parse"].append(time.perf_counter() - t)
            t = time.perf_counter()
            run_once(now=T0, cluster_id=cid, ports=ports, config=cfg, owner="bench")
            timings["run_once"].append(time.perf_counter() - t)
        logging.disable(logging.NOTSET)
    common.set_runtime(None)
    return {k: statistics.median(v) * 1e6 for k, v in timings.items()}


def main() -> int:
    inside, wall = cold_import_ms()
    med = statistics.median(inside)
    print(
        f"cold import of handlers.alarm (fresh process, median of {COLD_RUNS}): {med:.1f} ms "
        f"(runs: {', '.join(f'{x:.0f}' for x in inside)}; target <= {COLD_TARGET_MS:.0f} ms: "
        f"{'met' if med <= COLD_TARGET_MS else 'MISSED'})"
    )
    print(f"  whole interpreter start + import, wall: median {statistics.median(wall):.1f} ms")
    setup = first_invocation_setup_ms()
    print(
        f"first invocation setup (boto3, adapters, clients, Idempotency; no AWS call), "
        f"median of {COLD_RUNS}: "
        f"{statistics.median(setup):.1f} ms"
    )
    warm = warm_event_us()
    print(
        f"warm alarm handler per event, no AWS round trips (median of {WARM_EVENTS - 1}): "
        f"{warm['handler']:.0f} us"
    )
    print(
        f"  of which parse_event: {warm['parse']:.0f} us; "
        f"run_once with in-memory ports: {warm['run_once']:.0f} us"
    )
    print(
        json.dumps(
            {"cold_import_ms_median": round(med, 1), "warm_event_us_median": round(warm["handler"], 1)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
