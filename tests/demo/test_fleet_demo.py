"""`sparkscale demo --fleet` (issue 16, item 5): the demo's cluster is an instance-fleet cluster on moto,
which has no fleets: the overlay (demo/fleet.py) answers ListInstanceFleets and ModifyInstanceFleet, checked
against botocore's EMR model. The real handlers resize only the TASK fleet, with the cluster id, in capacity
units; when spot units do not come (the model withholds spot capacity, EMR's spot resize timeout ends the
resize and its "EMR Instance Fleet Resize" event goes to the EMR-events handler) they are bought on demand;
the summary's figures are those of the requests.

The scenario: 3.5 h of bursty-batch (seed 0) on the demo's fleet cluster, whose spot market is short of
capacity from 02:27 to 03:27 (the replay's shortfall model, seed 0), while the scaler scales out at 02:37."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sparkscale import events
from sparkscale.adapters.emr import EmrCapacityWriter, EmrClusterReader
from sparkscale.errors import GroupBusy, RefusedChange
from sparkscale.events.emr import EmrEventKind
from sparkscale.policy.model import GroupTarget, Market, Role
from sparkscale_tools.cli import main
from sparkscale_tools.demo import aws
from sparkscale_tools.demo import fleet as fl
from sparkscale_tools.demo import template as tp
from sparkscale_tools.demo.run import DemoOptions, DemoResult, default_cluster, run_demo, summary_text
from sparkscale_tools.replay import synthetic
from sparkscale_tools.replay.model import SimParams

from tests.infra.stack_testlib import synth

HOURS = 3.5
SPOT = "if-DEMOTASKFLEET/SPOT"
ON_DEMAND = "if-DEMOTASKFLEET/ON_DEMAND"


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk.out")
    synth(outdir=out)
    return out


@pytest.fixture(scope="module")
def demo(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str]:
    trace = synthetic.bursty_batch(days=HOURS / 24.0, peak_gib=800.0, seed=0)
    opts = DemoOptions(
        template=cdk_out,
        trace=trace,
        out_dir=tmp_path_factory.mktemp("demo-out"),
        cluster=default_cluster(fleet=True),
    )
    out = io.StringIO()
    result = run_demo(opts, out=out, err=io.StringIO())
    return result, out.getvalue()


# --- the overlay, on its own (a moto server, no demo) -------------------------------------------------------
def _target(group_id: str, market: Market, current: int, target: int) -> GroupTarget:
    return GroupTarget(group_id, "task-fleet", "units", market, current, target, 0.33)


def test_the_overlay_makes_a_fleet_cluster_for_the_real_adapters() -> None:
    spec = default_cluster(fleet=True)
    with aws.moto_server() as url, aws.patched_environ({"AWS_ENDPOINT_URL": url}):
        emr = aws.clients(url).emr
        spec = fl.create_fleet_cluster(emr, spec, {SPOT: 3})
        cid = spec.cluster_id
        with fl.fleet_overlay(spec, created=datetime(2026, 1, 5, tzinfo=UTC)) as overlay:
            assert overlay.available
            overlay.start({SPOT: 3})
            assert (
                emr.describe_cluster(ClusterId=cid)["Cluster"]["InstanceCollectionType"] == "INSTANCE_FLEET"
            )
            with pytest.raises(emr.exceptions.InvalidRequestException, match="ListInstanceFleets"):
                emr.list_instance_groups(ClusterId=cid)
            cluster = EmrClusterReader(emr).read_cluster(cid)
            task = {g.id: g for g in cluster.groups if g.role is Role.TASK}
            assert (task[SPOT].requested, task[SPOT].running, task[SPOT].memory_gib) == (3, 3, 128.0)
            assert [f.spot_timeout_s for f in cluster.fleets if f.role is Role.TASK] == [300]
            writer = EmrCapacityWriter(emr)
            writer.resize(cid, [_target(SPOT, Market.SPOT, 3, 5)])
            assert overlay.targets() == {SPOT: 5, ON_DEMAND: 0}
            (request,) = overlay.requests
            assert (request.cluster_id, request.fleet_id, request.role) == (cid, "if-DEMOTASKFLEET", "TASK")
            assert (request.spot, request.on_demand, request.fleet_state) == (5, 0, "RUNNING")
            overlay.show(SPOT, running=3, state="RESIZING")  # the model: 2 units still coming
            fleet = next(
                f
                for f in emr.list_instance_fleets(ClusterId=cid)["InstanceFleets"]
                if f["Id"] == "if-DEMOTASKFLEET"
            )
            assert (fleet["Status"]["State"], fleet["ProvisionedSpotCapacity"]) == ("RESIZING", 3)
            with pytest.raises(GroupBusy):  # the adapter sends nothing to a RESIZING fleet
                writer.resize(cid, [_target(SPOT, Market.SPOT, 5, 7)])
            with pytest.raises(RefusedChange):  # nor to the CORE fleet
                writer.resize(cid, [_target("if-DEMOCOREFLEET/ON_DEMAND", Market.ON_DEMAND, 2, 3)])
            with pytest.raises(emr.exceptions.InvalidRequestException):  # EMR refuses another cluster's fleet
                emr.modify_instance_fleet(
                    ClusterId=cid, InstanceFleet={"InstanceFleetId": "if-NOTOURS", "TargetSpotCapacity": 1}
                )
            assert len(overlay.requests) == 2
        # closed: moto's own EMR again
        assert "InstanceCollectionType" not in emr.describe_cluster(ClusterId=cid)["Cluster"]
        assert emr.list_instance_groups(ClusterId=cid)["InstanceGroups"] == []


def test_what_the_overlay_answers_is_checked_against_the_emr_api_model() -> None:
    good = {"InstanceFleets": [{"Id": "if-A", "Status": {"State": "RESIZING"}, "TargetSpotCapacity": 2}]}
    fl.check_output("ListInstanceFleets", good)
    with pytest.raises(tp.DemoError, match="WAITING"):  # a state the API does not have
        fl.check_output(
            "ListInstanceFleets", {"InstanceFleets": [{"Id": "if-A", "Status": {"State": "WAITING"}}]}
        )
    with pytest.raises(tp.DemoError, match="TargetSpotUnits"):  # a member it does not have
        fl.check_output("ListInstanceFleets", {"InstanceFleets": [{"Id": "if-A", "TargetSpotUnits": 2}]})
    with pytest.raises(tp.DemoError, match="ClusterId"):  # a request without the required cluster id
        fl.check_input("ModifyInstanceFleet", {"InstanceFleet": {"InstanceFleetId": "if-A"}})


def test_the_spot_timeout_event_the_demo_sends_is_one_the_events_handler_acts_on() -> None:
    at = datetime(2026, 1, 5, 2, 42, tzinfo=UTC)
    event = fl.spot_timeout_event(
        cluster_id="j-DEMOFLEET0001",
        cluster_name="sparkscale-demo-fleet",
        fleet_id="if-DEMOTASKFLEET",
        at=at,
        event_id="e-1",
        types=["r6g.4xlarge", "r5.4xlarge"],
    )
    parsed = events.parse_eventbridge(
        event, family=events.FAMILY_EMR, managed_clusters={"j-DEMOFLEET0001"}, now=at
    )
    assert parsed.kind is EmrEventKind.CAPACITY
    assert parsed.group_id == SPOT


# --- the run ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_handlers_resize_only_the_task_fleet_with_the_cluster_id_in_units(
    demo: tuple[DemoResult, str],
) -> None:
    result, printed = demo
    s, requests = result.stats, result.fleet_requests
    assert s.failures == []
    assert "rejected" not in s.outcomes
    assert result.scaled_out
    assert result.scaled_in_after_out
    assert requests
    assert s.modifications == len(requests) == result.record.actions
    assert {(r.cluster_id, r.fleet_id, r.role) for r in requests} == {
        (result.cluster_id, "if-DEMOTASKFLEET", "TASK")
    }
    assert all(r.fleet_state == "RUNNING" for r in requests)  # never queued behind a resize
    assert s.fixed_groups_changed == []
    # every request read back: the targets in units of each market, as the applied decisions say
    assert [(req[SPOT], req[ON_DEMAND]) for _, req in s.requested] == [
        (r.spot, r.on_demand) for r in requests
    ]
    applied = [d for d in s.decisions if d["outcome"] == "applied"]
    assert len(applied) == len(requests)
    for d, r in zip(applied, requests, strict=True):
        targets = {t["group_id"]: t["target"] for t in d["targets"]}
        assert targets.get(SPOT, r.spot) == r.spot
        assert targets.get(ON_DEMAND, r.on_demand) == r.on_demand
        assert {t["instance_type"] for t in d["targets"]} == {"units"}
    assert " units " in printed
    assert "TASK fleet if-DEMOTASKFLEET" in printed


@pytest.mark.slow
def test_spot_withheld_times_out_and_the_units_come_on_demand(demo: tuple[DemoResult, str]) -> None:
    result, printed = demo
    s, requests = result.stats, result.fleet_requests
    assert s.spot_timeouts, "the model withheld no spot capacity during a scale-out"
    assert result.record.counters.get("spot_timeouts") == len(s.spot_timeouts)
    assert {res for _, _, res in s.spot_timeouts} == {"fallback"}  # the EMR-events handler re-decided at once
    first_timeout = s.spot_timeouts[0][0]
    assert "EMR Instance Fleet Resize: if-DEMOTASKFLEET Spot Provisioning timeout" in printed
    after = [
        r
        for r in requests
        if r.at is not None and (r.at - SimParams().epoch).total_seconds() >= first_timeout
    ]
    assert any((r.on_demand or 0) > 0 for r in after)
    assert all((r.on_demand or 0) == 0 for r in requests if r not in after)


@pytest.mark.slow
def test_the_summary_counts_the_requests_in_units_and_gib(demo: tuple[DemoResult, str]) -> None:
    result, _ = demo
    text = result.files["summary"].read_text(encoding="utf-8")
    assert text == summary_text(
        result, trace_name=synthetic.bursty_batch(days=HOURS / 24, peak_gib=800.0, seed=0).name
    )
    requests = result.fleet_requests
    peak = max((r.spot or 0) + (r.on_demand or 0) for r in requests)
    most_od = max(r.on_demand or 0 for r in requests)
    assert result.max_requested == peak
    assert (
        f"{len(requests)} ModifyInstanceFleet calls ({len(requests)} on the TASK fleet, 0 on any other; "
        in text
    )
    assert f"{peak} at most ({peak * 128:,} GiB of instance memory at 128 GiB a unit)" in text
    assert f"on-demand target at most {most_od} unit{'s' if most_od != 1 else ''} (the fallback)" in text
    given_up = sum(u for _, u, _ in result.stats.spot_timeouts)
    assert (
        f"{len(result.stats.spot_timeouts)}, {given_up} spot unit{'s' if given_up != 1 else ''} given up on"
        in text
    )
    # compared with the replay's baselines on the same fleet cluster
    assert {"sparkscale (demo)", "sparkscale (replay)", "emr-custom-rules", "oracle"} <= set(
        result.replay.scores
    )


def test_fleet_with_a_group_cluster_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    groups = tmp_path / "groups.json"
    groups.write_text(
        '{"core": {"instance_type": "r5.2xlarge", "nodes": 2}, '
        '"task_groups": [{"id": "ig-A", "instance_type": "r5.4xlarge", "market": "SPOT"}]}',
        encoding="utf-8",
    )
    argv = [
        "demo",
        "--template",
        str(tmp_path),
        "--fleet",
        "--cluster",
        str(groups),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "task_fleet" in err[0]
