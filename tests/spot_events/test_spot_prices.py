"""SpotPriceSource against the real EC2 API model (botocore Stubber checks every request's shape)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from sparkscale.adapters import instance_data
from sparkscale.adapters.prices import PriceOrigin, SpotPriceSource
from sparkscale.policy.model import Cluster, ClusterState, GroupStatus, InstanceGroup, Market, Role

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
AZ = "us-east-1a"


def group(gid: str, role: Role, market: Market, itype: str) -> InstanceGroup:
    return InstanceGroup(
        id=gid,
        name=gid,
        role=role,
        market=market,
        instance_type=itype,
        memory_gib=0.0,
        vcpu=0,
        requested=1,
        running=1,
        status=GroupStatus.RUNNING,
        usd_per_hour=0.0,
    )


def cluster(*groups: InstanceGroup, az: str | None = AZ) -> Cluster:
    base = (
        group("ig-master", Role.MASTER, Market.ON_DEMAND, "m5.xlarge"),
        group("ig-core", Role.CORE, Market.ON_DEMAND, "m5.2xlarge"),
    )
    return Cluster(
        id="j-ABC", name="c", state=ClusterState.WAITING, groups=base + groups, availability_zone=az
    )


CLUSTER = cluster(
    group("ig-r5", Role.TASK, Market.SPOT, "r5.2xlarge"),
    group("ig-m5", Role.TASK, Market.SPOT, "m5.4xlarge"),
    group("ig-od", Role.TASK, Market.ON_DEMAND, "r5.xlarge"),
)


def item(itype: str, usd: str, at: datetime, az: str = AZ) -> dict[str, object]:
    return {
        "AvailabilityZone": az,
        "InstanceType": itype,
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": usd,
        "Timestamp": at,
    }


def expected(types: list[str], now: datetime, *, az: str | None = AZ, token: str | None = None) -> dict:
    params: dict[str, object] = {
        "InstanceTypes": types,
        "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": now,
        "EndTime": now,
        "MaxResults": 1000,
    }
    if az:
        params["AvailabilityZone"] = az
    if token:
        params["NextToken"] = token
    return params


@pytest.fixture
def ec2():
    client = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_spot_prices_latest_per_type_across_pages_and_on_demand_from_table(ec2):
    client, stub = ec2
    types = ["m5.4xlarge", "r5.2xlarge"]
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                item("r5.2xlarge", "0.150000", NOW - timedelta(hours=5)),
                item("m5.4xlarge", "0.310000", NOW - timedelta(hours=1)),
            ],
            "NextToken": "page-2",
        },
        expected(types, NOW),
    )
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                item("r5.2xlarge", "0.121300", NOW - timedelta(minutes=20)),  # the latest r5.2xlarge price
                item("m5.4xlarge", "0.400000", NOW - timedelta(hours=3)),  # older than page 1's: ignored
                item("c5.xlarge", "0.010000", NOW),  # a type nobody asked for: ignored
            ],
            "NextToken": "",
        },
        expected(types, NOW, token="page-2"),
    )
    source = SpotPriceSource(client, cache_s=300)

    quotes = source.quotes(CLUSTER, NOW)

    assert {g: (q.usd_per_hour, q.origin) for g, q in quotes.items()} == {
        "ig-r5": (0.1213, PriceOrigin.SPOT),
        "ig-m5": (0.31, PriceOrigin.SPOT),
        "ig-od": (0.252, PriceOrigin.ON_DEMAND),  # r5.xlarge us-east-1 on-demand, from the bundled table
    }
    assert "ig-core" not in quotes
    assert "ig-master" not in quotes
    assert source.calls == 1


def test_cache_is_reused_until_cache_s_has_passed_on_the_injected_clock(ec2):
    client, stub = ec2
    types = ["m5.4xlarge", "r5.2xlarge"]
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [item("r5.2xlarge", "0.12", NOW), item("m5.4xlarge", "0.30", NOW)]},
        expected(types, NOW),
    )
    later = NOW + timedelta(seconds=300)
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [item("r5.2xlarge", "0.20", later), item("m5.4xlarge", "0.35", later)]},
        expected(types, later),
    )
    source = SpotPriceSource(client, cache_s=300)

    first = source.usd_per_hour(CLUSTER, NOW)
    # 299 s later: still cached (a second request would find no queued stub response and fail)
    assert source.usd_per_hour(CLUSTER, NOW + timedelta(seconds=299)) == first
    assert source.calls == 1
    # 300 s later: expired, fetched again
    again = source.usd_per_hour(CLUSTER, later)
    assert source.calls == 2
    assert (first["ig-r5"], again["ig-r5"]) == (0.12, 0.20)
    assert (first["ig-m5"], again["ig-m5"]) == (0.30, 0.35)


def test_a_clock_that_goes_backwards_does_not_serve_a_future_entry(ec2):
    client, stub = ec2
    earlier = NOW - timedelta(seconds=10)
    for at in (NOW, earlier):
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [item("r5.2xlarge", "0.12", at), item("m5.4xlarge", "0.30", at)]},
            expected(["m5.4xlarge", "r5.2xlarge"], at),
        )
    source = SpotPriceSource(client, cache_s=300)
    source.usd_per_hour(CLUSTER, NOW)
    source.usd_per_hour(CLUSTER, earlier)
    assert source.calls == 2


def test_cache_key_is_the_zone_and_the_types(ec2):
    client, stub = ec2
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [item("r5.2xlarge", "0.12", NOW), item("m5.4xlarge", "0.30", NOW)]},
        expected(["m5.4xlarge", "r5.2xlarge"], NOW),
    )
    other = cluster(group("ig-r6", Role.TASK, Market.SPOT, "r6g.2xlarge"))
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [item("r6g.2xlarge", "0.09", NOW)]},
        expected(["r6g.2xlarge"], NOW),
    )
    moved = cluster(group("ig-r6", Role.TASK, Market.SPOT, "r6g.2xlarge"), az="us-east-1b")
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                item("r6g.2xlarge", "0.11", NOW, az="us-east-1b"),
                item("r6g.2xlarge", "0.99", NOW, az="us-east-1a"),  # another zone than asked: ignored
            ]
        },
        expected(["r6g.2xlarge"], NOW, az="us-east-1b"),
    )
    source = SpotPriceSource(client, cache_s=300)
    source.usd_per_hour(CLUSTER, NOW)
    assert source.usd_per_hour(other, NOW) == {"ig-r6": 0.09}
    assert source.usd_per_hour(moved, NOW) == {"ig-r6": 0.11}
    assert source.calls == 3


def test_cache_s_zero_always_asks(ec2):
    client, stub = ec2
    for _ in range(2):
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": [item("r5.2xlarge", "0.12", NOW), item("m5.4xlarge", "0.30", NOW)]},
            expected(["m5.4xlarge", "r5.2xlarge"], NOW),
        )
    source = SpotPriceSource(client, cache_s=0)
    source.usd_per_hour(CLUSTER, NOW)
    source.usd_per_hour(CLUSTER, NOW)
    assert source.calls == 2


def test_empty_history_falls_back_to_the_on_demand_table_per_type(ec2):
    client, stub = ec2
    stub.add_response(
        "describe_spot_price_history",
        # only m5.4xlarge has history; r5.2xlarge has none
        {"SpotPriceHistory": [item("m5.4xlarge", "0.30", NOW)]},
        expected(["m5.4xlarge", "r5.2xlarge"], NOW),
    )
    quotes = SpotPriceSource(client, cache_s=300).quotes(CLUSTER, NOW)
    assert quotes["ig-r5"].origin is PriceOrigin.ON_DEMAND_FALLBACK
    assert quotes["ig-r5"].usd_per_hour == instance_data.on_demand_usd_per_hour("r5.2xlarge") == 0.504
    assert quotes["ig-m5"].origin is PriceOrigin.SPOT


@pytest.mark.parametrize(
    ("code", "status"),
    [("UnauthorizedOperation", 403), ("RequestLimitExceeded", 503), ("InternalError", 500)],
)
def test_ec2_errors_fall_back_to_on_demand_and_are_not_cached(ec2, code, status):
    client, stub = ec2
    stub.add_client_error(
        "describe_spot_price_history",
        service_error_code=code,
        http_status_code=status,
        expected_params=expected(["m5.4xlarge", "r5.2xlarge"], NOW),
    )
    stub.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [item("r5.2xlarge", "0.12", NOW), item("m5.4xlarge", "0.30", NOW)]},
        expected(["m5.4xlarge", "r5.2xlarge"], NOW + timedelta(seconds=1)),
    )
    source = SpotPriceSource(client, cache_s=300)

    degraded = source.quotes(CLUSTER, NOW)
    assert {g: q.origin for g, q in degraded.items()} == {
        "ig-r5": PriceOrigin.ON_DEMAND_FALLBACK,
        "ig-m5": PriceOrigin.ON_DEMAND_FALLBACK,
        "ig-od": PriceOrigin.ON_DEMAND,
    }
    assert degraded["ig-m5"].usd_per_hour == 0.768  # m5.4xlarge on-demand
    # the failure was not cached: one second later it asks again and gets spot prices
    recovered = source.usd_per_hour(CLUSTER, NOW + timedelta(seconds=1))
    assert recovered == {"ig-r5": 0.12, "ig-m5": 0.30, "ig-od": 0.252}


def test_bad_price_strings_are_skipped(ec2):
    client, stub = ec2
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                item("r5.2xlarge", "0.11", NOW - timedelta(hours=1)),
                item("r5.2xlarge", "n/a", NOW),  # newer but unreadable: the older good price stays
                item("m5.4xlarge", "0", NOW),  # zero is not a price
                item("m5.4xlarge", "nan", NOW),
            ]
        },
        expected(["m5.4xlarge", "r5.2xlarge"], NOW),
    )
    quotes = SpotPriceSource(client, cache_s=300).quotes(CLUSTER, NOW)
    assert (quotes["ig-r5"].usd_per_hour, quotes["ig-r5"].origin) == (0.11, PriceOrigin.SPOT)
    assert quotes["ig-m5"].origin is PriceOrigin.ON_DEMAND_FALLBACK


def test_unknown_zone_queries_the_region_and_takes_the_dearest_zone(ec2):
    client, stub = ec2
    c = cluster(group("ig-r5", Role.TASK, Market.SPOT, "r5.2xlarge"), az=None)
    stub.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                item("r5.2xlarge", "0.10", NOW, az="us-east-1a"),
                item("r5.2xlarge", "0.14", NOW - timedelta(hours=2), az="us-east-1b"),
                item("r5.2xlarge", "0.13", NOW, az="us-east-1c"),
                item("r5.2xlarge", "0.20", NOW - timedelta(hours=9), az="us-east-1c"),  # superseded
            ]
        },
        expected(["r5.2xlarge"], NOW, az=None),
    )
    assert SpotPriceSource(client, cache_s=300).usd_per_hour(c, NOW) == {"ig-r5": 0.14}


def test_a_type_in_neither_source_is_left_out_and_no_spot_groups_means_no_call(ec2):
    client, _stub = ec2  # no responses queued: any EC2 call fails the test
    c = cluster(
        group("ig-od", Role.TASK, Market.ON_DEMAND, "r5.xlarge"),
        group("ig-odd", Role.TASK, Market.ON_DEMAND, "zz9.mega"),
    )
    source = SpotPriceSource(client, cache_s=300)
    assert source.usd_per_hour(c, NOW) == {"ig-od": 0.252}
    assert source.calls == 0


def test_bundled_table_keeps_the_summary_rows():
    # Rows copied from emr_instance_types_summary.csv (see instance_data.py's provenance)
    assert instance_data.instance_spec("r6g.2xlarge") == instance_data.InstanceSpec(
        "r6g.2xlarge", 8, 64.0, 0.4032, "arm64"
    )
    assert instance_data.memory_gib("m2.4xlarge") == 68.399
    assert instance_data.on_demand_usd_per_hour("cc2.8xlarge") == 2.0
    assert instance_data.instance_spec("zz9.mega") is None
    # every row is self-consistent
    for spec in instance_data.INSTANCE_TYPES.values():
        assert spec.vcpu > 0
        assert spec.memory_gib > 0
        assert spec.on_demand_usd_per_hour > 0
        assert spec.arch in ("amd64", "arm64")
