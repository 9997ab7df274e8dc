"""`sparkscale report` on a week it has never seen, end to end, and how long it takes.

    python benchmarks/bench_report.py                # print the report and the timings
    python benchmarks/bench_report.py --write-docs   # also rewrite docs/savings-report.md's example

The week: the synthetic bursty-batch shape with a seed never used while tuning (UNTUNED_SEED), 1024 GiB at its
peak. sparkscale's decisions come from the replay's own sparkscale run on it (the real run_once through the
simulated adapters): its audit records are written to a moto DynamoDB table with the real adapter, and the
cluster's EMR metrics (MemoryAllocatedMB, ContainerPending, ContainerAllocated, MemoryTotalMB every 5 minutes,
from the simulated cluster's supply and the demand) are written to moto CloudWatch with PutMetricData. The CLI
then reads them back like any deployed stack. moto has no spot price history (every price is 0.00001), so
the example prices SPOT groups at the replay's assumed spot prices (replay/cluster.py), and says so.

Timing: the report's wall time, that of the replay of the three baselines alone, and that of the digest's
weekly comparison of the same cluster (replay/savings.py `WeekComparer`: the CloudWatch, EMR and EC2 reads
against moto, then the replay), from which the largest number of clusters the weekly digest compares within
its timeout follows (docs/savings-report.md, "In the weekly digest").
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import sys
import time
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for sub in ("lambdas", "tools", ""):
    if str(REPO / sub) not in sys.path:
        sys.path.insert(0, str(REPO / sub))

from sparkscale import names  # noqa: E402
from sparkscale.config import Config  # noqa: E402
from sparkscale.memory import InMemoryStateStore  # noqa: E402
from sparkscale.policy.model import ScalerState  # noqa: E402
from sparkscale.records import decision_from_dict  # noqa: E402
from sparkscale_tools.replay import policies as pol  # noqa: E402
from sparkscale_tools.replay import synthetic  # noqa: E402
from sparkscale_tools.replay.cluster import default_cluster  # noqa: E402
from sparkscale_tools.replay.engine import RunRecord, World  # noqa: E402
from sparkscale_tools.replay.model import SimParams  # noqa: E402

UNTUNED_SEED = 20261206  # never used while tuning any setting
DAYS = int(os.environ.get("BENCH_REPORT_DAYS", "7"))
PEAK_GIB = 1024.0
TABLE = "sparkscale-state-bench"
CONTAINER_MB = 4096.0
DOC_PAGE = REPO / "docs" / "savings-report.md"
BEGIN, END = "<!-- bench:report -->", "<!-- /bench:report -->"


class _AuditingController(pol.SparkscaleController):
    """The replay's sparkscale with its audit records kept (the replay itself keeps none)."""

    def attach(self, world: World) -> None:
        super().attach(world)
        self.state = InMemoryStateStore(keep_audit=True)
        self.ports = replace(self.ports, state=self.state)


def simulate(epoch: datetime) -> tuple[list[float], RunRecord, list[dict[str, Any]], Any]:
    trace = synthetic.bursty_batch(days=DAYS, peak_gib=PEAK_GIB, seed=UNTUNED_SEED)
    params = SimParams(epoch=epoch)
    demand = trace.resample(params.step_s)
    cluster = default_cluster("j-BENCHREPORT1")
    config = Config()
    controller = _AuditingController(pol.SPARKSCALE, config)
    record = RunRecord(pol.SPARKSCALE)
    world = World(
        demand_gib=demand,
        cluster=cluster,
        config=config,
        params=params,
        seed=UNTUNED_SEED,
        record=record,
        initial_task_nodes=pol.warm_start(demand[0], cluster=cluster, config=config),
    )
    world.run(controller)
    audit = controller.state.audit_since(cluster.cluster_id, epoch, limit=10**6)
    return demand, record, audit, cluster


def write_history(aws: Any, cid: str, epoch: datetime, demand: list[float], record: RunRecord) -> None:
    """EMR's 5-minute metrics of the simulated week, as PutMetricData, from demand and supply per step."""
    data: list[dict[str, Any]] = []
    for k in range(0, len(demand), names.EMR_PERIOD_S // 60):
        d, s = demand[k], record.supply_gib[k]
        alloc = min(d, s) * 1024.0
        values = {
            names.EMR_MEMORY_ALLOCATED_MB: alloc,
            names.EMR_CONTAINER_PENDING: float(math.ceil(max(0.0, d * 1024.0 - alloc) / CONTAINER_MB)),
            names.EMR_CONTAINER_ALLOCATED: float(math.ceil(alloc / CONTAINER_MB)),
            names.EMR_MEMORY_TOTAL_MB: s * 1024.0,
        }
        at = epoch + timedelta(seconds=60 * k)
        for metric, v in values.items():
            data.append(
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": names.DIM_JOB_FLOW_ID, "Value": cid}],
                    "Timestamp": at,
                    "Value": v,
                }
            )
    for i in range(0, len(data), 500):
        aws.cloudwatch.put_metric_data(Namespace=names.EMR_NAMESPACE, MetricData=data[i : i + 500])


def time_comparison(
    aws: Any, store: Any, cid: str, epoch: datetime, now: datetime
) -> tuple[Any, float, float]:
    """The digest's weekly comparison of the cluster (WeekComparer, reads from moto), on the audit records
    the digest would have read: the comparison, its wall time, and the part of it spent in build_report
    (the replay and the scores; the rest is the reads)."""
    import boto3
    from sparkscale_tools.replay import savings

    records = store.audit_since(cid, epoch, limit=10**6)
    comparer = savings.WeekComparer(
        emr=aws.emr,
        cloudwatch=aws.cloudwatch,
        ec2=boto3.client("ec2", region_name="us-east-1"),
        config=Config(),
        clock=time.monotonic,
    )
    build = savings.build_report
    spent = [0.0]

    def timed_build(**kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return build(**kw)
        finally:
            spent[0] += time.perf_counter() - t

    savings.build_report = timed_build
    try:
        t = time.perf_counter()
        comparison = comparer(cid, records, epoch, now, budget_s=math.inf)
        total = time.perf_counter() - t
    finally:
        savings.build_report = build
    return comparison, total, spent[0]


def run(write_docs: bool, plot: str | None = None) -> str:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    from moto import mock_aws
    from sparkscale.adapters import prices
    from sparkscale.adapters.dynamodb import DynamoStateStore
    from sparkscale.clock import utcnow
    from sparkscale.usecases.digest import COMPARE_RESERVE_S
    from sparkscale_cdk.constructs.digest import DIGEST_TIMEOUT_S
    from sparkscale_tools.cli import main
    from sparkscale_tools.replay.run import PolicySpec, run_replay
    from sparkscale_tools.replay.savings import REPORT_POLICIES

    from tests.scale.shell_support import clients, create_cluster, create_table

    now = utcnow()
    epoch = datetime.fromtimestamp(now.timestamp() // 300 * 300, tz=UTC) - timedelta(days=DAYS)
    t = time.perf_counter()
    demand, record, audit, sim_cluster = simulate(epoch)
    sim_s = time.perf_counter() - t
    assumed = {g.instance_type: g.usd_per_hour for g in sim_cluster.task_groups if g.market.value == "SPOT"}
    prices.mean_spot_prices = lambda ec2, **kw: {  # moto has no spot price history
        t: assumed[t] for t in kw["instance_types"] if t in assumed
    }
    with mock_aws():
        aws = clients()
        create_table(aws.dynamodb, TABLE)
        emr = create_cluster(
            aws.emr,
            tasks=tuple((g.name, g.instance_type, g.market.value, 0) for g in sim_cluster.task_groups),
            core_count=4,  # 4 x r5.xlarge: the 96 GiB of the replay's 2 x r5.2xlarge core
        )
        store = DynamoStateStore(aws.dynamodb, TABLE)
        for r in audit:  # the adapter's own items, put one by one: moto copies its table on each transaction
            d = decision_from_dict({**r, "cluster_id": emr.cluster_id})
            for item in store._state_and_audit(emr.cluster_id, ScalerState(), d, d.at):
                aws.dynamodb.put_item(**item["Put"])
        write_history(aws, emr.cluster_id, epoch, demand, record)
        out = io.StringIO()
        t = time.perf_counter()
        with redirect_stdout(out):
            code = main(
                ["report", "--cluster", emr.cluster_id, "--days", str(DAYS), "--table", TABLE]
                + (["--plot", plot] if plot else [])
            )
        report_s = time.perf_counter() - t
        comparison, compare_s, compare_replay_s = time_comparison(aws, store, emr.cluster_id, epoch, now)
    if code != 0:
        raise SystemExit(f"sparkscale report exited {code}")
    text = out.getvalue()
    text = text.replace(emr.cluster_id, "j-2AXXXXXXGAPLF")
    t = time.perf_counter()
    run_replay(
        demand,
        policies=[PolicySpec(n, n) for n in REPORT_POLICIES],
        config=Config(),
        cluster=sim_cluster,
        params=SimParams(epoch=epoch),
    )
    baselines_s = time.perf_counter() - t
    clusters = math.floor((DIGEST_TIMEOUT_S - COMPARE_RESERVE_S) / compare_s)
    print(
        f"digest comparison: ${comparison.cost_usd:,.2f} vs EMR's rules ${comparison.emr_rules_usd:,.2f} "
        f"(static peak ${comparison.static_peak_usd:,.2f}, oracle ${comparison.oracle_usd:,.2f}) in "
        f"{compare_s:.1f} s ({compare_replay_s:.1f} s of it the replay): {clusters} such clusters in the "
        f"digest's {DIGEST_TIMEOUT_S} s",
        file=sys.stderr,
    )
    timing = (
        f"the simulation's own bill for sparkscale's nodes: ${record.cost_usd:,.2f} (it also bills the "
        "minutes nodes take to start and drain); "
        f"{len(audit)} audit records, {len(demand)} one-minute steps; simulating the week "
        f"{sim_s:.1f} s, `sparkscale report` {report_s:.1f} s, of which the three baselines' replay "
        f"about {baselines_s:.1f} s; the weekly digest's comparison of this cluster (reads from moto and "
        f"replay) {compare_s:.1f} s, of which the replay and scores {compare_replay_s:.1f} s, so about "
        f"{clusters} such clusters within the digest's {DIGEST_TIMEOUT_S} s less {COMPARE_RESERVE_S:.0f} s "
        "kept for sending"
    )
    if write_docs:
        _write_docs(text, timing)
    return text + "\n" + timing + "\n"


def _write_docs(text: str, timing: str) -> None:
    page = DOC_PAGE.read_text(encoding="utf-8")
    lines = re.sub(
        r"\d{4}-\d\d-\d\d \d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d",
        "YYYY-MM-DD hh:mm to YYYY-MM-DD hh:mm",
        text,
    )
    block = (
        f"{BEGIN}\n```text\n{lines.rstrip()}\n```\n\n({timing}, on the machine that wrote this page.)\n{END}"
    )
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{DOC_PAGE}: no {BEGIN} ... {END} block")
    page = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _m: block, page, count=1, flags=re.S)
    DOC_PAGE.write_text(page, encoding="utf-8")


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", action="store_true", help="rewrite the example block of the docs page")
    ap.add_argument("--plot", metavar="FILE", help="also write the report's figure")
    args = ap.parse_args()
    write = args.write_docs or os.environ.get("SPARKSCALE_BENCH_WRITE_DOCS") == "1"
    print(run(write, args.plot))


if __name__ == "__main__":
    main_()
