"""The replay accepts a fleet cluster (`"task_fleet"` instead of `"task_groups"`) and scores it like any
other: the real run_once on the simulated fleet, which delivers units, holds a RESIZING fleet, and stops a
resize's spot part after the fleet's spot timeout."""

from __future__ import annotations

import pytest
from sparkscale.config import Config
from sparkscale.policy.model import Market
from sparkscale_tools.replay.cluster import ClusterSpecError, cluster_from_mapping
from sparkscale_tools.replay.model import SimParams
from sparkscale_tools.replay.run import PolicySpec, run_replay

FLEET = {
    "cluster_id": "j-FLEETREPLAY1",
    "core": {"instance_type": "r5.2xlarge", "nodes": 1},
    "task_fleet": {
        "id": "if-REPLAYTASK",
        "spot_timeout_s": 600,
        "instance_types": [
            {"instance_type": "r5.2xlarge", "weighted_capacity": 2, "spot_usd_per_hour": 0.16},
            {"instance_type": "r5.4xlarge", "weighted_capacity": 4, "spot_usd_per_hour": 0.36},
        ],
    },
}


def test_a_task_fleet_is_two_unit_markets() -> None:
    spec = cluster_from_mapping(FLEET)
    spot, od = spec.task_groups
    # 64 GiB / 2 = 128 GiB / 4 = 32 GiB per unit; spot per unit: max(0.16 / 2, 0.36 / 4) = 0.09;
    # on-demand per unit: max(0.504 / 2, 1.008 / 4) = 0.252
    assert (spot.id, spot.market, spot.memory_gib, spot.usd_per_hour) == (
        "if-REPLAYTASK/SPOT",
        Market.SPOT,
        32.0,
        0.09,
    )
    assert (od.id, od.market, od.usd_per_hour, od.fleet_id) == (
        "if-REPLAYTASK/ON_DEMAND",
        Market.ON_DEMAND,
        0.252,
        "if-REPLAYTASK",
    )
    assert spot.spot_timeout_s == 600.0


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"task_groups": [{"instance_type": "r5.2xlarge"}]}, "both"),
        ({"task_fleet": {"id": "ig-X", "instance_types": [{"instance_type": "r5.2xlarge"}]}}, "if-"),
        ({"task_fleet": {"instance_types": []}}, "instance_types"),
        ({"task_fleet": {"instance_types": [{"instance_type": "r5.2xlarge", "weight": 2}]}}, "weight"),
    ],
)
def test_a_bad_fleet_is_refused_with_one_line(change: dict[str, object], why: str) -> None:
    with pytest.raises(ClusterSpecError, match=why):
        cluster_from_mapping({**FLEET, **change})


def _replay(shortfalls: float) -> dict[str, object]:
    demand = [20.0] * 5 + [200.0] * 115  # 2 hours, 60 s steps
    fleet = {**FLEET["task_fleet"], "shortfall_episodes_per_day": shortfalls, "shortfall_duration_s": 1e9}  # type: ignore[dict-item]
    cluster = cluster_from_mapping({**FLEET, "task_fleet": fleet})
    config = Config.from_mapping({"max_task_nodes": 40})
    result = run_replay(
        demand,
        policies=[PolicySpec("sparkscale", "sparkscale", config)],
        config=config,
        cluster=cluster,
        params=SimParams(),
    )
    return {"run": result.runs["sparkscale"], "score": result.scores["sparkscale"]}


def test_the_replay_scales_a_fleet_in_units_spot_first() -> None:
    out = _replay(shortfalls=0.0)
    run, score = out["run"], out["score"]
    # supply grows in whole units of 24 GiB usable (32 x 0.75) on top of the 48 GiB core node
    assert all((s - 48.0) % 24.0 == 0 for s in run.supply_gib)  # type: ignore[attr-defined]
    assert max(run.supply_gib) >= 200.0  # type: ignore[attr-defined]
    assert score.tau_u_pct < 50  # type: ignore[attr-defined]
    assert run.counters.get("spot_timeouts", 0) == 0  # type: ignore[attr-defined]


def test_spot_that_never_comes_times_out_and_on_demand_units_serve_the_demand() -> None:
    out = _replay(shortfalls=1e6)  # the spot market is short of capacity for the whole run
    run = out["run"]
    assert run.counters["spot_timeouts"] >= 1  # type: ignore[attr-defined]
    assert run.counters.get("decisions_with_fallback", 0) > 0  # type: ignore[attr-defined]
    assert max(run.supply_gib) >= 200.0  # type: ignore[attr-defined]  # on-demand units came
