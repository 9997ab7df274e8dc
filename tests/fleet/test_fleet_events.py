"""The "EMR Instance Fleet Resize" event with a spot provisioning timeout: parsed through the registry into a
capacity event about the TASK fleet's SPOT market, recorded, and the missing spot units become on-demand
units at once (the emr_events use case, unchanged, on in-memory ports)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sparkscale import events, notices
from sparkscale.config import Config
from sparkscale.errors import BadEvent
from sparkscale.events.emr import EmrEventKind
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.policy.fleet import FleetInstanceType, InstanceFleet, market_groups
from sparkscale.policy.model import Cluster, ClusterState, GroupStatus, Market, Role
from sparkscale.ports import Ports
from sparkscale.usecases.emr_events import handle_emr_event
from sparkscale.usecases.shell import Outcome

from tests.scale.shell_support import T0, group, pressure

FIXTURE = (
    Path(__file__).parents[1]
    / "fixtures"
    / "aws-samples"
    / "eventbridge"
    / "EMR_Instance_Fleet_Resize_spot_timeout.json"
)
CID, FID = "j-123456789ABCD", "if-TASKFLEET0001"
SPOT, OD = f"{FID}/SPOT", f"{FID}/ON_DEMAND"


def event(**detail: Any) -> dict[str, Any]:
    ev: dict[str, Any] = json.loads(FIXTURE.read_text())
    ev["time"] = T0.isoformat()
    ev["detail"].update(detail)
    return ev


def parse(raw: dict[str, Any]) -> Any:
    return events.parse_eventbridge(raw, family=events.FAMILY_EMR, managed_clusters=[CID])


def test_a_spot_timeout_is_a_capacity_event_about_the_fleets_spot_market() -> None:
    e = parse(event())
    assert (e.kind, e.cluster_id, e.group_id) == (EmrEventKind.CAPACITY, CID, SPOT)
    assert e.reason == "Spot Provisioning timeout"
    assert e.at == T0
    # "continuing resize": another resize of the fleet starts next, spot still did not come
    assert parse(event(eventCode="Spot provisioning timeout - continuing resize")).group_id == SPOT


@pytest.mark.parametrize(
    ("detail", "why"),
    [
        ({"eventCode": "On-Demand Provisioning timeout"}, "not a spot provisioning timeout"),
        ({"instanceFleetType": "CORE"}, "CORE fleet"),
        ({"clusterId": "j-OTHER"}, "not managed"),
        ({"instanceFleetId": "ig-NOTAFLEET"}, "bad instanceFleetId"),
    ],
)
def test_anything_else_is_rejected_with_one_reason(detail: dict[str, Any], why: str) -> None:
    with pytest.raises(BadEvent, match=why):
        parse(event(**detail))


def fleet_cluster(spot: tuple[int, int]) -> Cluster:
    types = (FleetInstanceType("r5.2xlarge", 2, 64.0, 8, 0.504),)
    task = InstanceFleet(FID, "Task", Role.TASK, GroupStatus.RUNNING, types, 0, spot[0], 0, spot[1])
    units = tuple(
        replace(g, usd_per_hour=0.06) if g.market is Market.SPOT else g for g in market_groups(task)
    )
    core = group("ig-CORE", role=Role.CORE, market=Market.ON_DEMAND, requested=2)
    return Cluster(CID, "fleet", ClusterState.RUNNING, (core, *units), fleets=(task,))


def test_the_missing_spot_units_become_on_demand_units_at_once() -> None:
    emr = FakeEmr(fleet_cluster(spot=(10, 6)))  # 4 spot units missing; EMR gave up (RUNNING again)
    store, notifier = InMemoryStateStore(), CollectingNotifier()
    ports = Ports(
        clusters=emr,
        metrics=FixedMetrics({CID: pressure(T0)}),
        capacity=emr,
        state=store,
        notifier=notifier,
        ledger=store,
    )
    r = handle_emr_event(
        now=T0 + timedelta(seconds=5),
        event=parse(event()),
        ports=ports,
        config=Config.from_mapping({"clusters": [CID]}),
        owner="emr-events",
    )
    assert r.outcome is Outcome.FALLBACK
    assert r.new_error
    assert store.load_state(CID).capacity_errors == {SPOT: T0}
    run = r.run
    assert run is not None
    assert run.decision is not None
    assert run.outcome == Outcome.APPLIED
    after = {t.group_id: t.target for t in run.decision.targets}
    assert after[SPOT] == 10  # kept: no new spot units while spot does not come
    # the 4 missing units no longer count: what the estimate still needs goes to on-demand units
    assert after[OD] > 0
    assert run.decision.fallback_groups == (SPOT,)
    (notice,) = [n for n in notifier.notices if n.kind == notices.KIND_FALLBACK]
    assert f"spot fallback: {SPOT}" in notice.subject
    assert "until it runs all its requested units" in notice.body
    assert "/unit-hour" in notice.body
