"""The period's spot prices for `sparkscale report` (adapters/prices.py): DescribeSpotPriceHistory checked
against the real EC2 API model with botocore's Stubber (moto's prices are a constant), and the time-weighted
mean worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from sparkscale.adapters.prices import mean_spot_prices, time_weighted_mean

START = datetime(2026, 3, 9, tzinfo=UTC)
END = START + timedelta(days=7)


def test_time_weighted_mean_by_hand() -> None:
    # 0.10 in effect since before the start, 0.40 from day 5 on: (0.10 x 5 + 0.40 x 2) / 7
    changes = [(START - timedelta(days=2), 0.10), (START + timedelta(days=5), 0.40)]
    assert time_weighted_mean(changes, START, END) == pytest.approx((0.5 + 0.8) / 7)
    # the history starts inside the period: only the covered part counts
    assert time_weighted_mean([(START + timedelta(days=6), 0.3)], START, END) == pytest.approx(0.3)
    assert time_weighted_mean([(END, 0.3)], START, END) is None
    assert time_weighted_mean([], START, END) is None


def _item(itype: str, az: str, at: datetime, usd: str) -> dict[str, object]:
    return {
        "AvailabilityZone": az,
        "InstanceType": itype,
        "ProductDescription": "Linux/UNIX",
        "SpotPrice": usd,
        "Timestamp": at,
    }


def test_mean_spot_prices_from_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    history = [
        _item("r5.2xlarge", "us-east-1a", START + timedelta(days=5), "0.400000"),
        _item("r5.2xlarge", "us-east-1a", START - timedelta(days=2), "0.100000"),
        _item("r5.2xlarge", "us-east-1b", START - timedelta(days=1), "0.900000"),  # another zone: ignored
        _item("r6g.4xlarge", "us-east-1a", START - timedelta(hours=1), "not a price"),  # malformed: ignored
    ]
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_spot_price_history",
            {"SpotPriceHistory": history},
            {
                "InstanceTypes": ["r5.2xlarge", "r6g.4xlarge"],
                "ProductDescriptions": ["Linux/UNIX"],
                "StartTime": START,
                "EndTime": END,
                "AvailabilityZone": "us-east-1a",
                "MaxResults": 1000,
            },
        )
        got = mean_spot_prices(
            ec2,
            instance_types=["r6g.4xlarge", "r5.2xlarge"],
            availability_zone="us-east-1a",
            start=START,
            end=END,
        )
        stub.assert_no_pending_responses()
    assert got == {"r5.2xlarge": pytest.approx((0.1 * 5 + 0.4 * 2) / 7)}


def test_without_a_zone_the_dearest_zone_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    history = [
        _item("r5.2xlarge", "us-east-1a", START - timedelta(days=2), "0.100000"),
        _item("r5.2xlarge", "us-east-1b", START - timedelta(days=1), "0.200000"),
    ]
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
        got = mean_spot_prices(
            ec2, instance_types=["r5.2xlarge"], availability_zone=None, start=START, end=END
        )
    assert got == {"r5.2xlarge": pytest.approx(0.2)}
    assert mean_spot_prices(ec2, instance_types=[], availability_zone=None, start=START, end=END) == {}
