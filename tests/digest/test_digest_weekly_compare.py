"""The weekly section's comparison against moto: audit records written by the real DynamoDB adapter, the
clusters' CloudWatch history written with PutMetricData, EMR clusters in moto, spot prices through a botocore
Stubber (moto answers 0.00001 for every type, which would make every figure $0.00; the Stubber checks each
request against the real EC2 model). The digest's figures are those `report_from_aws` (the report's code, the
CLI's too) gives on the same inputs, and a three-hour case's by hand; a cluster without history, a fleet, a
failing cluster and the time budget each give one line and never stop the others or the email."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from handlers import common
from handlers import digest as digest_handler
from moto import mock_aws
from sparkscale import names
from sparkscale.adapters import instance_data
from sparkscale.adapters.aws import AwsClients, aws_ports
from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.config import Config
from sparkscale.notices import _SKIP_TEXT, _comparison_line, _skipped_line
from sparkscale.policy.model import Decision, Direction, GroupTarget, Market, ScalerState
from sparkscale.policy.reasons import Reason, ReasonCode
from sparkscale.ports import Ports
from sparkscale.usecases import digest
from sparkscale.usecases.digest import (
    ComparisonUnavailable,
    DigestResult,
    SkipReason,
    WeekComparison,
    run_digest,
)
from sparkscale.usecases.shell import Outcome
from sparkscale_tools.replay import savings

from tests.scale.shell_support import (
    REGION,
    EmrCluster,
    FakeLambdaContext,
    Topic,
    clients,
    create_cluster,
    create_table,
    create_topic_with_queue,
    emf_documents,
    fake_aws_env,
    published,
)

# Monday 16 March 2026, 08:15 UTC: the digest of Sunday 15 March and the week Monday 9 to Sunday 15 March
SEND_AT = datetime(2026, 3, 16, 8, 15, tzinfo=UTC)
WEEK_START = datetime(2026, 3, 9, tzinfo=UTC)
WEEK_END = datetime(2026, 3, 16, tzinfo=UTC)
HISTORY_AT = datetime(2026, 3, 12, 9, tzinfo=UTC)  # Thursday: three hours of history from here
SPOT_USD = 0.20  # r5.2xlarge in the cluster's zone, all week (the stubbed price history)
CORE_MB = 2 * 32 * 1024 * 0.75  # 2 x r5.xlarge, 75 % to YARN: 48 GiB
NODE_MB = 64 * 1024 * 0.75  # one r5.2xlarge TASK node: 48 GiB


@dataclass
class Account:
    aws: AwsClients
    ports: Ports
    store: DynamoStateStore
    topic: Topic
    sqs: Any
    table: str
    stub: Stubber
    clusters: dict[str, EmrCluster]

    def decide(self, cid: str, at: datetime, current: int, target: int) -> None:
        group = self.clusters[cid].tasks["spot-r5"]
        d = Decision(
            cluster_id=cid,
            at=at,
            direction=Direction.OUT if target > current else Direction.IN,
            targets=(GroupTarget(group, "spot-r5", "r5.2xlarge", Market.SPOT, current, target, 0.25),),
            reasons=(Reason(ReasonCode.NEED, "test"),),
            dry_run=False,
        )
        self.store.save(cid, ScalerState(), d, at)

    def history(self, cid: str, *, decide: bool = True) -> None:
        """The report's hand-checked case (tests/report): hour 1 40 GiB of demand on the 48 GiB core; hour 2
        88 GiB (48 allocated + 10 pending 4 GiB containers), sparkscale asks for 4 nodes at its start and they
        give YARN 240 GiB ten minutes later; hour 3 20 GiB, the 4 nodes gone at its start."""
        data = []
        for k in range(36):
            at = HISTORY_AT + timedelta(minutes=5 * k)
            alloc, pending, total = 40 * 1024.0, 0.0, CORE_MB
            if 12 <= k < 24:
                alloc, pending = (48 * 1024.0, 10.0) if k < 14 else (88 * 1024.0, 0.0)
                total = CORE_MB if k < 14 else CORE_MB + 4 * NODE_MB
            elif k >= 24:
                alloc = 20 * 1024.0
            values = {
                names.EMR_MEMORY_ALLOCATED_MB: alloc,
                names.EMR_CONTAINER_PENDING: pending,
                names.EMR_CONTAINER_ALLOCATED: alloc / 4096.0,
                names.EMR_MEMORY_TOTAL_MB: total,
            }
            dims = [{"Name": names.DIM_JOB_FLOW_ID, "Value": cid}]
            data += [
                {"MetricName": m, "Dimensions": dims, "Timestamp": at, "Value": v} for m, v in values.items()
            ]
        for i in range(0, len(data), 500):
            self.aws.cloudwatch.put_metric_data(Namespace=names.EMR_NAMESPACE, MetricData=data[i : i + 500])
        if decide:
            self.decide(cid, HISTORY_AT + timedelta(hours=1), 0, 4)
            self.decide(cid, HISTORY_AT + timedelta(hours=2), 4, 0)

    def spot_prices(self, times: int = 1) -> None:
        """`times` DescribeSpotPriceHistory answers: SPOT_USD from before the week on, in every zone."""
        for _ in range(times):
            self.stub.add_response(
                "describe_spot_price_history",
                {
                    "SpotPriceHistory": [
                        {
                            "AvailabilityZone": az,
                            "InstanceType": "r5.2xlarge",
                            "ProductDescription": "Linux/UNIX",
                            "SpotPrice": f"{SPOT_USD:.6f}",
                            "Timestamp": WEEK_START - timedelta(days=1),
                        }
                        for az in ("us-east-1a", "us-east-1b", "us-east-1c")
                    ]
                },
            )

    def comparer(self, config: Config) -> savings.WeekComparer:
        return savings.WeekComparer(
            emr=self.aws.emr,
            cloudwatch=self.aws.cloudwatch,
            ec2=self.aws.ec2,
            config=config,
            clock=itertools.count().__next__,  # one second per look: no cut within a 600 s budget
        )

    def digest(self, config: Config, **kw: Any) -> DigestResult:
        return run_digest(
            ports=self.ports, audit=self.store, config=config, clusters=config.clusters, now=SEND_AT, **kw
        )

    def sent(self) -> list[dict[str, Any]]:
        return published(self.sqs, self.topic)


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    fake_aws_env(monkeypatch)
    with mock_aws():
        aws = clients()
        table = create_table(aws.dynamodb)
        sqs = boto3.client("sqs", region_name=REGION)
        topic = create_topic_with_queue(aws.sns, sqs)
        ec2 = boto3.client("ec2", region_name=REGION)
        aws = replace(aws, ec2=ec2)
        emr = {
            c.cluster_id: c
            for c in (
                create_cluster(aws.emr, tasks=(("spot-r5", "r5.2xlarge", "SPOT", 0),)) for _ in range(3)
            )
        }
        ports = aws_ports(clients=aws, config=Config(), table_name=table, topic_arn=topic.arn)
        assert isinstance(ports.state, DynamoStateStore)
        with Stubber(ec2) as stub:
            yield Account(aws, ports, ports.state, topic, sqs, table, stub, emr)
    common.set_runtime(None)


def _config(account: Account, *cids: str) -> Config:
    return Config(clusters=list(cids or account.clusters), digest_hour=8, digest_time_zone="UTC")


def _week(body: str) -> str:
    return body.split("The week 2026-03-09 to 2026-03-15")[1]


def test_the_weekly_digest_carries_the_report_figures(account: Account) -> None:
    cid, quiet, _ = sorted(account.clusters)
    account.history(cid)
    account.decide(quiet, HISTORY_AT, 0, 2)  # recorded, but no CloudWatch history
    account.spot_prices(times=2)  # the digest's comparison, then the report's below
    config = _config(account, cid, quiet)
    result = account.digest(config, compare_week=account.comparer(config), remaining_s=lambda: 600.0)
    assert result.outcome is Outcome.APPLIED
    (compared,) = result.compared
    assert [(s.cluster_id, s.reason) for s in result.not_compared] == [(quiet, SkipReason.NO_HISTORY)]
    [msg] = account.sent()
    assert msg["Subject"].startswith("sparkscale daily digest 2026-03-15 + weekly: 0 cluster(s)")
    assert len(msg["Subject"]) < 100
    assert msg["Subject"].isascii()

    # the same inputs through the report's code (what `sparkscale report` runs)
    records = account.store.audit_since(cid, WEEK_START, limit=10_000)
    report = savings.report_from_aws(
        emr=account.aws.emr,
        cloudwatch=account.aws.cloudwatch,
        ec2=account.aws.ec2,
        cluster_id=cid,
        records=records,
        start=WEEK_START,
        end=WEEK_END,
        config=config,
    )
    assert compared == savings.week_comparison(report)
    s = report.replay.scores
    emr = s["emr-custom-rules"]
    gap = emr.tau_u_pct - report.actual.tau_u_pct
    # by hand: 4 nodes for 1 h at $0.20; the oracle one node for hour 2; static peak that node for 3 hours
    assert (compared.cost_usd, compared.oracle_usd, compared.static_peak_usd) == pytest.approx(
        (4 * SPOT_USD, 1 * SPOT_USD, 3 * SPOT_USD)
    )
    assert compared.short_pct == pytest.approx(100 * 10 / 180)  # 10 of 180 minutes short
    assert compared.spot_history
    week = _week(msg["Message"])
    assert (
        "  Against EMR's rules (the 0.1 days with history): task nodes cost $0.80; EMR's default rules "
        f"would have cost about ${emr.cost_usd:,.2f} with {abs(gap):.1f} % "
        f"{'more' if gap >= 0 else 'less'} time short of memory ({emr.tau_u_pct:.1f} % vs 5.6 %); "
        "static peak $0.60; the oracle $0.20 (*)"
    ) in week
    assert (
        f"  Against EMR's rules: not compared (no CloudWatch history of its YARN memory over the week): run "
        f"sparkscale report --cluster {quiet} --days 7"
    ) in week
    assert week.count("(*)") == 2  # the one comparison and its footnote
    assert "priced at the week's mean spot price (EC2 price history" in week
    account.stub.assert_no_pending_responses()


def test_a_failing_cluster_does_not_stop_the_others(account: Account) -> None:
    first, second, third = sorted(account.clusters)
    for cid in (first, second, third):
        account.history(cid)
    account.spot_prices(times=2)
    config = _config(account)
    real = account.comparer(config)

    def compare(cid: str, *args: Any, **kw: Any) -> WeekComparison:
        if cid == first:
            raise RuntimeError("a bug in one cluster's comparison")
        return real(cid, *args, **kw)

    account.aws.emr.terminate_job_flows(JobFlowIds=[third])  # still described: compared as it ran
    result = account.digest(config, compare_week=compare, remaining_s=lambda: 600.0)
    assert result.outcome is Outcome.APPLIED
    assert [c.cluster_id for c in result.compared] == [second, third]
    assert [(s.cluster_id, s.reason) for s in result.not_compared] == [(first, SkipReason.FAILED)]
    [msg] = account.sent()
    week = _week(msg["Message"])
    assert f"run sparkscale report --cluster {first} --days 7" in week
    assert "not compared (the comparison failed)" in week
    assert week.count("task nodes cost $0.80;") == 2


def test_ec2_refusing_prices_is_the_on_demand_table_and_an_emr_error_a_failed_line(account: Account) -> None:
    cid = sorted(account.clusters)[0]
    account.history(cid)
    account.history("j-NOTINEMR1", decide=False)  # history, but EMR does not know the cluster
    account.stub.add_client_error(
        "describe_spot_price_history", service_error_code="UnauthorizedOperation", http_status_code=403
    )
    config = _config(account, cid)
    records = account.store.audit_since(cid, WEEK_START, limit=100)
    compared = account.comparer(config)(cid, records, WEEK_START, WEEK_END, budget_s=600.0)
    on_demand = instance_data.on_demand_usd_per_hour("r5.2xlarge")
    assert on_demand is not None
    assert not compared.spot_history
    assert compared.cost_usd == pytest.approx(4 * on_demand)
    assert "(on-demand prices: no spot price history)" in _comparison_line(compared)
    with pytest.raises(ComparisonUnavailable) as err:
        account.comparer(config)("j-NOTINEMR1", records, WEEK_START, WEEK_END, budget_s=600.0)
    assert err.value.reason is SkipReason.FAILED


def test_the_time_budget_cuts_cleanly(account: Account) -> None:
    first, second, third = sorted(account.clusters)
    for cid in (first, second, third):
        account.history(cid)
    account.spot_prices(times=2)
    config = _config(account)

    def left() -> float:  # the invocation's remaining seconds: 600, then 30 for the second, 25 for the third
        return (600.0, 30.0, 25.0)[min(len(seen), 2)]

    # the second cluster's replay runs past its 10 s (30 - 20 s kept for the send): cut in the replay
    ticks = {"n": 0.0}

    def clock() -> float:
        ticks["n"] += 1.0 if len(seen) < 2 else 5.0
        return ticks["n"]

    seen: list[str] = []
    real = savings.WeekComparer(
        emr=account.aws.emr,
        cloudwatch=account.aws.cloudwatch,
        ec2=account.aws.ec2,
        config=config,
        clock=clock,
    )

    def compare(cid: str, *args: Any, **kw: Any) -> WeekComparison:
        seen.append(cid)
        return real(cid, *args, **kw)

    result = account.digest(config, compare_week=compare, remaining_s=left)
    assert result.outcome is Outcome.APPLIED
    assert [c.cluster_id for c in result.compared] == [first]
    assert [(s.cluster_id, s.reason) for s in result.not_compared] == [
        (second, SkipReason.OUT_OF_TIME),  # started with 10 s, cut by the replay's progress check
        (third, SkipReason.OUT_OF_TIME),  # 5 s left after the reserve: not started
    ]
    assert seen == [first, second]
    assert "took longer than the 10 s left" in result.not_compared[0].detail
    [msg] = account.sent()
    week = _week(msg["Message"])
    assert week.count("not compared (no time left in this run of the digest)") == 2
    assert f"run sparkscale report --cluster {third} --days 7" in week


def test_a_fleet_cluster_is_refused_before_reading_its_fleets(account: Account) -> None:
    cid = sorted(account.clusters)[0]
    account.history(cid)

    class FleetEmr:
        """moto has no instance fleets: DescribeCluster says INSTANCE_FLEET, nothing else may be called."""

        def describe_cluster(self, **kw: Any) -> dict[str, Any]:
            raw = account.aws.emr.describe_cluster(**kw)
            raw["Cluster"]["InstanceCollectionType"] = "INSTANCE_FLEET"
            return raw

    comparer = savings.WeekComparer(
        emr=FleetEmr(),
        cloudwatch=account.aws.cloudwatch,
        ec2=account.aws.ec2,
        config=_config(account, cid),
        clock=itertools.count().__next__,
    )
    with pytest.raises(ComparisonUnavailable) as err:
        comparer(cid, [], WEEK_START, WEEK_END, budget_s=600.0)
    assert err.value.reason is SkipReason.FLEET
    line = digest.WeekSkipped(cid, err.value.reason, err.value.detail)
    assert _skipped_line(line) == (
        "  Against EMR's rules: not compared (it uses instance fleets, which the savings report does not "
        "replay)"
    )


def test_the_handler_compares_within_its_remaining_time_and_counts_the_rest(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    cid, quiet, _ = sorted(account.clusters)
    account.history(cid)
    account.decide(quiet, HISTORY_AT, 0, 2)
    account.spot_prices()
    config = _config(account, cid, quiet)
    common.set_runtime(
        common.Runtime(
            config=config,
            ports=account.ports,
            alarms=None,
            table_name=account.table,
            alarm_prefix="sparkscale",
            clients=account.aws,
            clock=lambda: SEND_AT,
        )
    )
    out = digest_handler.handler({"source": "aws.events"}, FakeLambdaContext(remaining_ms=840_000))
    assert out["outcome"] == "applied"
    assert (out["week_compared"], out["week_not_compared"]) == ([cid], {quiet: "no_history"})
    json.dumps(out)
    skipped = [d for d in emf_documents(capsys.readouterr().out) if names.M_WEEKLY_COMPARISONS_SKIPPED in d]
    assert [(d[names.DIM_CLUSTER_ID], d["reason"]) for d in skipped] == [(quiet, "no_history")]
    [msg] = account.sent()
    assert "task nodes cost $0.80;" in msg["Message"]


def test_functions_deployed_without_the_replay_engine_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A custom code_path holding only handlers/ and sparkscale/: the comparison is one line, not a crash."""
    monkeypatch.setitem(sys.modules, "sparkscale_tools.replay.savings", None)  # import raises ImportError
    rt = common.Runtime(config=Config(), ports=None, alarms=None, table_name="t", alarm_prefix="p")  # type: ignore[arg-type]
    lazy = digest_handler.LazyWeekComparer(rt)
    with pytest.raises(ComparisonUnavailable) as err:
        lazy("j-ANY", [], WEEK_START, WEEK_END, budget_s=600.0)
    assert err.value.reason is SkipReason.NOT_DEPLOYED
    assert "the digest function was deployed without the replay engine" in _skipped_line(
        digest.WeekSkipped("j-ANY", err.value.reason, err.value.detail)
    )


def test_every_reason_has_its_words() -> None:
    assert set(_SKIP_TEXT) == {str(r) for r in SkipReason}
