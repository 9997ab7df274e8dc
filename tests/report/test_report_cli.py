"""`sparkscale report` against moto (mock_aws): audit records written by the real DynamoDB adapter, the
cluster's CloudWatch history written with PutMetricData by the test, an EMR cluster, moto's spot price
history. The report's numbers are checked against hand-computed ones on a three-hour case; the replayed
policies against the replay run on the same demand; the CLI's exit codes on bad input and on no data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from moto import mock_aws
from sparkscale import names
from sparkscale.adapters.aws import AwsClients
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.clock import utcnow
from sparkscale.policy.model import Decision, Direction, GroupTarget, Market, ScalerState
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale_tools.cli import main

from tests.scale.shell_support import EmrCluster, clients, create_cluster, create_table, fake_aws_env

TABLE = "sparkscale-state-REPORT"
CORE_MB = 2 * 32 * 1024 * 0.75  # 2 x r5.xlarge (32 GiB), 75 % to YARN: 48 GiB
NODE_MB = 64 * 1024 * 0.75  # one r5.2xlarge TASK node: 48 GiB
MOTO_SPOT_USD = 0.00001  # what moto's DescribeSpotPriceHistory answers for every type


@dataclass
class Account:
    aws: AwsClients
    emr: EmrCluster
    store: DynamoStateStore
    base: datetime  # the first datapoint: three hours of history from here

    @property
    def cid(self) -> str:
        return self.emr.cluster_id

    @property
    def group(self) -> str:
        return self.emr.tasks["spot-r5"]

    def decide(self, at: datetime, current: int, target: int) -> None:
        d = Decision(
            cluster_id=self.cid,
            at=at,
            direction=Direction.OUT if target > current else Direction.IN,
            targets=(GroupTarget(self.group, "spot-r5", "r5.2xlarge", Market.SPOT, current, target, 0.2),),
            reasons=(Reason(ReasonCode.NEED, "test"),),
            dry_run=False,
        )
        self.store.save(self.cid, ScalerState(), d, at)

    def put(self, at: datetime, *, alloc_mb: float, pending: float, total_mb: float) -> None:
        data = {
            names.EMR_MEMORY_ALLOCATED_MB: alloc_mb,
            names.EMR_CONTAINER_PENDING: pending,
            names.EMR_CONTAINER_ALLOCATED: alloc_mb / 4096.0,  # 4 GiB containers
            names.EMR_MEMORY_TOTAL_MB: total_mb,
        }
        self.aws.cloudwatch.put_metric_data(
            Namespace=names.EMR_NAMESPACE,
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": names.DIM_JOB_FLOW_ID, "Value": self.cid}],
                    "Timestamp": at,
                    "Value": value,
                }
                for metric, value in data.items()
            ],
        )


def _history(a: Account) -> None:
    """Hour 1: 40 GiB of demand on the core (48 GiB). Hour 2: 88 GiB (48 allocated + 10 pending 4 GiB
    containers); sparkscale asks for 4 nodes at its start and they give YARN 240 GiB ten minutes later.
    Hour 3: 20 GiB; the 4 nodes went at its start."""
    for k in range(36):
        at = a.base + timedelta(minutes=5 * k)
        if k < 12:
            a.put(at, alloc_mb=40 * 1024, pending=0, total_mb=CORE_MB)
        elif k < 24:
            total = CORE_MB if k < 14 else CORE_MB + 4 * NODE_MB
            alloc = 48 * 1024 if k < 14 else 88 * 1024
            a.put(at, alloc_mb=alloc, pending=10 if k < 14 else 0, total_mb=total)
        else:
            a.put(at, alloc_mb=20 * 1024, pending=0, total_mb=CORE_MB)
    a.decide(a.base + timedelta(hours=1), 0, 4)
    a.decide(a.base + timedelta(hours=2), 4, 0)


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    fake_aws_env(monkeypatch)
    with mock_aws():
        aws = clients()
        create_table(aws.dynamodb, TABLE)
        emr = create_cluster(aws.emr, tasks=(("spot-r5", "r5.2xlarge", "SPOT", 0),))
        now = utcnow()  # the CLI reads the last --days before its own clock
        five = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5)
        yield Account(aws, emr, DynamoStateStore(aws.dynamodb, TABLE), five - timedelta(hours=3, minutes=10))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_numbers_of_a_small_case_by_hand(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    _history(account)
    code, out, err = _cli(
        capsys, "report", "--cluster", account.cid, "--days", "1", "--table", TABLE, "--json"
    )
    assert (code, err) == (0, "")
    r = json.loads(out)
    assert (r["start"], r["step_s"]) == (account.base.isoformat(), 60)
    assert r["days"] == pytest.approx(3 / 24, abs=1e-4)
    s = r["sparkscale"]
    # 4 nodes for one hour, billed at moto's spot price
    assert (s["node_hours"], s["billed_node_hours"], s["peak_nodes"], s["records"]) == (4.0, 4.0, 4, 2)
    assert (s["scale_outs"], s["scale_ins"]) == (1, 1)
    assert s["groups"][0]["price_source"] == "period price"
    assert r["prices"][0]["source"].startswith("spot history, mean over the period")
    actual = r["policies"]["sparkscale (actual)"]
    assert actual["cost_usd"] == pytest.approx(4 * MOTO_SPOT_USD)
    # short of memory: the first 10 minutes of hour 2 (88 GiB wanted, 48 GiB there), 10 of 180 steps
    assert actual["tau_u_pct"] == pytest.approx(100 * 10 / 180)
    # memory short: 40 of 88 GiB missing for those 10 steps, averaged over 180
    assert actual["theta_u_pct"] == pytest.approx(100 * (40 / 88) * 10 / 180)
    assert actual["actions"] == 2
    # the oracle: one 48 GiB node for hour 2 only (88 - 48 core = 40 GiB); static peak: that node all along
    assert r["policies"]["oracle"]["cost_usd"] == pytest.approx(1 * MOTO_SPOT_USD)
    assert r["policies"]["static-peak"]["cost_usd"] == pytest.approx(3 * MOTO_SPOT_USD)
    assert actual["cost_ratio_vs_oracle"] == pytest.approx(4.0)
    assert set(r["policies"]) == {"sparkscale (actual)", "emr-custom-rules", "static-peak", "oracle"}
    assert r["headline"].startswith(
        "TASK nodes cost $0.00 (short of memory 5.6 % of the time); EMR's default"
    )


def test_the_replayed_policies_are_the_replay_on_the_same_demand(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparkscale.config import Config
    from sparkscale_tools.replay.model import SimParams
    from sparkscale_tools.replay.run import PolicySpec, run_replay
    from sparkscale_tools.replay.savings import REPORT_POLICIES, cluster_shape, period_prices, read_shape

    _history(account)
    code, out, _ = _cli(capsys, "report", "--cluster", account.cid, "--days", "1", "--table", TABLE, "--json")
    assert code == 0
    r = json.loads(out)
    cluster = read_shape(account.aws.emr, account.cid)
    shape = cluster_shape(
        cluster, period_prices(cluster, {"r5.2xlarge": MOTO_SPOT_USD}, availability_zone=None)
    )
    demand = [40.0] * 60 + [88.0] * 60 + [20.0] * 60
    replay = run_replay(
        demand,
        policies=[PolicySpec(n, n) for n in REPORT_POLICIES],
        config=Config(),
        cluster=shape,
        params=SimParams(),
    )
    for name in REPORT_POLICIES:
        got, want = r["policies"][name], replay.scores[name].to_dict()
        assert got["cost_usd"] == pytest.approx(want["cost_usd"])
        assert got["tau_u_pct"] == pytest.approx(want["tau_u_pct"])
    assert r["policies"]["emr-custom-rules"]["actions"] >= 1  # it did scale out for hour 2
    assert r["emr_rules"] == replay.emr_rules


def test_the_text_and_the_plot(account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _history(account)
    plot = tmp_path / "report.png"
    code, out, err = _cli(
        capsys, "report", "--cluster", account.cid, "--days", "1", "--table", TABLE, "--plot", str(plot)
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"sparkscale report for {account.cid}: ")
    assert (
        "TASK nodes cost $0.00 (short of memory 5.6 % of the time); EMR's default rules would have cost"
        in out
    )
    assert "4.0 node-hours, peak 4" in out
    assert "Assumptions:" in out
    assert "DescribeSpotPriceHistory" in out
    assert plot.stat().st_size > 10_000
    assert plot.read_bytes()[:4] == b"\x89PNG"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--cluster", "cluster-1"], "is not an EMR cluster id"),
        (["--days", "0"], "--days must be in (0, 63]"),
        (["--days", "nan"], "--days must be in (0, 63]"),
        (["--days", "90"], "--days must be in (0, 63]"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    account: Account, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code, out, err = _cli(capsys, "report", "--cluster", account.cid, "--table", TABLE, *argv)
    assert (code, out) == (2, "")
    assert _one_line(err).startswith("sparkscale report: ")
    assert says in _one_line(err)


def test_an_argument_error_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "--cluster", "j-ABC", "--days", "x"])
    assert exited.value.code == 2
    assert "invalid float value" in _one_line(capsys.readouterr().err)


def test_no_data_exits_2_with_one_line(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = ["report", "--cluster", account.cid, "--days", "1", "--table", TABLE]
    code, out, err = _cli(capsys, *base)  # no audit record
    assert (code, out) == (2, "")
    assert "no decision recorded for" in _one_line(err)
    account.decide(account.base + timedelta(hours=1), 0, 4)
    code, out, err = _cli(capsys, *base)  # records, but no CloudWatch history
    assert (code, out) == (2, "")
    assert f"no {names.EMR_MEMORY_ALLOCATED_MB} or {names.EMR_CONTAINER_PENDING} datapoints" in _one_line(err)
    code, _, err = _cli(capsys, "report", "--cluster", "j-UNKNOWN1", "--days", "1", "--table", TABLE)
    assert code == 2
    assert "no decision recorded for j-UNKNOWN1" in _one_line(err)
    code, _, err = _cli(capsys, *base, "--plot", str(tmp_path))  # a folder: checked before any AWS call
    assert code == 2
    assert "is a directory" in _one_line(err)
    code, _, err = _cli(capsys, "report", "--cluster", account.cid, "--stack", "Nope")
    assert code == 2
    assert "stack Nope" in _one_line(err)


def test_a_malformed_audit_item_is_one_line_not_a_traceback(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparkscale.adapters.dynamodb import AUDIT_PREFIX, cluster_pk

    _history(account)
    at = (account.base + timedelta(hours=1, minutes=30)).isoformat()
    account.aws.dynamodb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": cluster_pk(account.cid)},
            "sk": {"S": f"{AUDIT_PREFIX}{at}"},
            "decision": {"S": "{not json"},
        },
    )
    code, out, err = _cli(capsys, "report", "--cluster", account.cid, "--days", "1", "--table", TABLE)
    assert (code, out) == (2, "")
    assert "unreadable data: JSONDecodeError" in _one_line(err)
