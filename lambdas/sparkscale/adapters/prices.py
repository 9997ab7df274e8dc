"""PriceSource: what one node-hour of each TASK group costs, in USD.

SPOT groups: the current spot price of the group's instance type in the cluster's availability zone, from
EC2 DescribeSpotPriceHistory (StartTime = EndTime = now returns the price in effect at `now`: the last change
before it). ON_DEMAND groups, and SPOT groups whose spot price is unavailable (no history, an error, missing
IAM permission): the bundled on-demand table (instance_data.py). Spot prices are cached per (availability
zone, instance types) for `cache_s` seconds of the injected clock; a failed lookup is not cached.

A market of an instance fleet is priced per capacity unit: the highest price per unit among the fleet's
instance types (spot prices for the SPOT market), as policy/fleet.py documents.

A price is never a reason to fail a scaling decision: every EC2 error degrades to the on-demand table and is
logged. A group whose type is in neither source is left out of the result (the caller keeps what it has).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from sparkscale.adapters import instance_data
from sparkscale.policy.fleet import UNITS_TYPE, InstanceFleet, unit_usd_per_hour
from sparkscale.policy.model import Cluster, Market

log = logging.getLogger(__name__)

LINUX_UNIX: Final = "Linux/UNIX"
_PAGE_SIZE: Final = 1000  # DescribeSpotPriceHistory MaxResults: 5..1000
_MAX_PAGES: Final = 20  # a guard against a paginator that never ends; a few types in one AZ need one page


class PriceOrigin(StrEnum):
    SPOT = "spot"  # DescribeSpotPriceHistory
    ON_DEMAND = "on_demand"  # the bundled table, for an ON_DEMAND group
    ON_DEMAND_FALLBACK = "on_demand_fallback"  # the bundled table, for a SPOT group without a spot price


@dataclass(frozen=True, slots=True)
class Quote:
    group_id: str
    instance_type: str
    usd_per_hour: float
    origin: PriceOrigin


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    fetched_at: datetime
    prices: Mapping[str, float]  # instance type -> USD per hour


class SpotPriceSource:
    """ports.PriceSource over EC2 DescribeSpotPriceHistory with the on-demand table as fallback."""

    def __init__(
        self,
        ec2: Any,
        *,
        cache_s: int,
        product_description: str = LINUX_UNIX,
        on_demand: Callable[[str], float | None] = instance_data.on_demand_usd_per_hour,
    ) -> None:
        self._ec2 = ec2
        self._cache_s = cache_s
        self._product = product_description
        self._on_demand = on_demand
        self._cache: dict[tuple[str | None, frozenset[str]], _CacheEntry] = {}
        self.calls = 0  # DescribeSpotPriceHistory lookups made (one per cache miss), for tests and logs

    # --- ports.PriceSource ---------------------------------------------------------------------------------
    def usd_per_hour(self, cluster: Cluster, now: datetime) -> Mapping[str, float]:
        return {q.group_id: q.usd_per_hour for q in self.quotes(cluster, now).values()}

    # --- the same with where each price came from -----------------------------------------------------------
    def quotes(self, cluster: Cluster, now: datetime) -> dict[str, Quote]:
        groups = cluster.task_groups
        fleets = {f.id: f for f in cluster.fleets}
        spot_types = frozenset(
            t
            for g in groups
            if g.market is Market.SPOT
            for t in (_fleet_types(fleets, g.fleet_id) if g.fleet_id else (g.instance_type,))
        )
        spot = self._spot_prices(cluster.availability_zone, spot_types, now) if spot_types else {}
        out: dict[str, Quote] = {}
        for g in groups:
            if g.fleet_id is not None:
                fleet = fleets.get(g.fleet_id)
                quote = None if fleet is None else self._fleet_quote(g.id, fleet, g.market, spot)
            else:
                quote = self._quote(g.id, g.instance_type, g.market, spot)
            if quote is None:
                log.warning(
                    "no price for %s (%s, %s): not in the spot history or the table",
                    g.id,
                    g.instance_type,
                    g.market,
                )
                continue
            out[g.id] = quote
        return out

    def _quote(self, group_id: str, itype: str, market: Market, spot: Mapping[str, float]) -> Quote | None:
        if market is Market.SPOT and itype in spot:
            return Quote(group_id, itype, spot[itype], PriceOrigin.SPOT)
        usd = self._on_demand(itype)
        if usd is None:
            return None
        origin = PriceOrigin.ON_DEMAND if market is Market.ON_DEMAND else PriceOrigin.ON_DEMAND_FALLBACK
        return Quote(group_id, itype, usd, origin)

    def _fleet_quote(
        self, group_id: str, fleet: InstanceFleet, market: Market, spot: Mapping[str, float]
    ) -> Quote | None:
        """A fleet market's price per unit-hour: the highest per unit among its types (policy/fleet.py); a
        type without a spot price counts at its on-demand price, and the quote then says so."""
        per_instance: dict[str, float] = {}
        fell_back = False
        for t in fleet.instance_types:
            if market is Market.SPOT and t.instance_type in spot:
                per_instance[t.instance_type] = spot[t.instance_type]
                continue
            usd = self._on_demand(t.instance_type)
            if usd is not None:
                per_instance[t.instance_type] = usd
                fell_back = fell_back or market is Market.SPOT
        if not per_instance:
            return None
        if market is Market.ON_DEMAND:
            origin = PriceOrigin.ON_DEMAND
        else:
            origin = PriceOrigin.ON_DEMAND_FALLBACK if fell_back else PriceOrigin.SPOT
        return Quote(group_id, UNITS_TYPE, unit_usd_per_hour(fleet.instance_types, per_instance), origin)

    def _spot_prices(self, az: str | None, types: frozenset[str], now: datetime) -> Mapping[str, float]:
        key = (az, types)
        entry = self._cache.get(key)
        if entry is not None and 0 <= (now - entry.fetched_at).total_seconds() < self._cache_s:
            return entry.prices
        try:
            prices = self._fetch(az, types, now)
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            log.warning(
                "DescribeSpotPriceHistory failed (%s %s): on-demand prices instead",
                code or type(exc).__name__,
                exc,
            )
            return {}
        if not prices:
            log.warning("no spot price history for %s in %s: on-demand prices instead", sorted(types), az)
        self._cache[key] = _CacheEntry(now, prices)
        return prices

    def _fetch(self, az: str | None, types: frozenset[str], now: datetime) -> dict[str, float]:
        """Latest price per instance type (and, without an AZ, the highest over the region's AZs)."""
        self.calls += 1
        latest: dict[tuple[str, str], tuple[datetime, float]] = {}
        history = _spot_history(
            self._ec2, types, product=self._product, az=az, start=now, end=now, max_pages=_MAX_PAGES
        )
        for itype, item_az, at, usd in history:
            seen = latest.get((itype, item_az))
            if seen is None or at > seen[0]:
                latest[(itype, item_az)] = (at, usd)
        prices: dict[str, float] = {}
        for (itype, _az), (_at, usd) in latest.items():
            # One AZ: one entry per type. No AZ known: the dearest AZ, since nodes may land in any of them.
            prices[itype] = max(usd, prices.get(itype, 0.0))
        return prices


def _spot_history(
    ec2: Any,
    types: frozenset[str],
    *,
    product: str,
    az: str | None,
    start: datetime,
    end: datetime,
    max_pages: int,
) -> Iterator[tuple[str, str, datetime, float]]:
    """(type, zone, time, USD/h) of every readable price change DescribeSpotPriceHistory returns for `types`
    over [start, end], in `az` when given; at most `max_pages` pages (logged when cut)."""
    request: dict[str, Any] = {
        "InstanceTypes": sorted(types),
        "ProductDescriptions": [product],
        "StartTime": start,
        "EndTime": end,
        "PaginationConfig": {"PageSize": _PAGE_SIZE},
    }
    if az:
        request["AvailabilityZone"] = az
    pages = ec2.get_paginator("describe_spot_price_history").paginate(**request)
    for n, page in enumerate(pages):
        if n >= max_pages:
            log.warning("DescribeSpotPriceHistory: stopped after %d pages", max_pages)
            return
        for item in page.get("SpotPriceHistory", []):
            parsed = _parse_item(item, types)
            if parsed is None:
                continue
            if az and parsed[1] and parsed[1] != az:
                continue  # asked for one zone; a fake (moto) may answer with all of them
            yield parsed


# --- a period's prices (sparkscale report) ---------------------------------------------------------------
def time_weighted_mean(
    changes: Sequence[tuple[datetime, float]], start: datetime, end: datetime
) -> float | None:
    """The mean over [start, end) of a price that changes at the given times and holds until the next change
    (DescribeSpotPriceHistory's form: it also returns the last change before `start`). The part of the period
    before the first change is not covered and not counted; None when no change covers any of it."""
    ordered = sorted(changes)
    total = covered = 0.0
    for i, (at, usd) in enumerate(ordered):
        until = ordered[i + 1][0] if i + 1 < len(ordered) else end
        lo, hi = max(at, start), min(until, end)
        span = (hi - lo).total_seconds()
        if span > 0:
            total, covered = total + usd * span, covered + span
    return total / covered if covered > 0 else None


def mean_spot_prices(
    ec2: Any,
    *,
    instance_types: Sequence[str],
    availability_zone: str | None,
    start: datetime,
    end: datetime,
    product_description: str = LINUX_UNIX,
) -> dict[str, float]:
    """The time-weighted mean spot price of each instance type over [start, end), from
    DescribeSpotPriceHistory (90 days of history at most), in the availability zone, or without one the
    dearest zone's mean. Types without history are left out. ClientError / BotoCoreError propagate: the
    caller says what it uses instead."""
    types = frozenset(instance_types)
    if not types:
        return {}
    changes: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    # a week of a few types is a page or two
    history = _spot_history(
        ec2,
        types,
        product=product_description,
        az=availability_zone,
        start=start,
        end=end,
        max_pages=_MAX_PAGES * 10,
    )
    for itype, item_az, at, usd in history:
        changes.setdefault((itype, item_az), []).append((at, usd))
    out: dict[str, float] = {}
    for (itype, _az), points in changes.items():
        mean = time_weighted_mean(points, start, end)
        if mean is not None:
            out[itype] = max(mean, out.get(itype, 0.0))
    return out


def _fleet_types(fleets: Mapping[str, InstanceFleet], fleet_id: str) -> tuple[str, ...]:
    fleet = fleets.get(fleet_id)
    return () if fleet is None else tuple(t.instance_type for t in fleet.instance_types)


def _parse_item(item: Mapping[str, Any], types: frozenset[str]) -> tuple[str, str, datetime, float] | None:
    itype, az, at = item.get("InstanceType"), item.get("AvailabilityZone", ""), item.get("Timestamp")
    raw: Any = item.get("SpotPrice")
    if itype not in types or not isinstance(at, datetime):
        return None
    try:
        usd = float(raw)  # a string in the API ("0.123400")
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(usd) and usd > 0):
        return None
    return str(itype), str(az), at, usd


def spot_price_source(*, cache_s: int, region_name: str | None = None) -> SpotPriceSource:
    """A SpotPriceSource over a default boto3 EC2 client (the handler's wiring)."""
    import boto3  # noqa: PLC0415 - only the wiring needs it

    return SpotPriceSource(boto3.client("ec2", region_name=region_name), cache_s=cache_s)
