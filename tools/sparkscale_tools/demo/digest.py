"""The daily digest the demo's stack would email for the demo's day (docs/demo.md, docs/email.md): the real
digest use case (usecases/digest.py) run on the demo's audit records, read from the moto table through the
real DynamoDB adapter, at the digest hour of the day after. The notice is kept, not published: the demo's
email counts stay those of the run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from sparkscale.adapters.dynamodb import DynamoStateStore
from sparkscale.config import Config
from sparkscale.memory import CollectingNotifier, FakeEmr, FixedMetrics, InMemoryStateStore
from sparkscale.ports import Notice, Ports
from sparkscale.usecases.digest import run_digest, zone

CONSOLE_LINES = 14  # the body lines printed on the console; the whole email goes to the digest file
EXPLAINED = "Costs are estimates"  # the email's paragraph on its method: docs/email.md has it


def demo_day(
    store: DynamoStateStore, cluster_ids: Sequence[str], since: datetime, config: Config
) -> date | None:
    """The local day (digest_time_zone) of the demo's first audit record, None without any."""
    firsts = [
        datetime.fromisoformat(str(r["at"]))
        for cid in cluster_ids
        for r in store.audit_since(cid, since, limit=100_000)[-1:]
    ]
    return min(firsts).astimezone(zone(config.digest_time_zone)).date() if firsts else None


def digest_notice(
    dynamodb: Any, table: str, config: Config, cluster_ids: Sequence[str], since: datetime
) -> Notice | None:
    """The digest the stack would send for the demo's day, or None when the day recorded nothing."""
    store = DynamoStateStore(dynamodb, table)
    day = demo_day(store, cluster_ids, since, config)
    if day is None:
        return None
    send_at = datetime.combine(
        day + timedelta(days=1), time(config.digest_hour), tzinfo=zone(config.digest_time_zone)
    )
    notifier = CollectingNotifier()
    memory = InMemoryStateStore()  # the once-a-day mark: not written to the demo's table
    ports = Ports(
        clusters=FakeEmr(),
        metrics=FixedMetrics(),
        capacity=FakeEmr(),
        state=memory,
        notifier=notifier,
        ledger=memory,
    )
    run_digest(ports=ports, audit=store, config=config, clusters=cluster_ids, now=send_at)
    return notifier.notices[0] if notifier.notices else None


def console_lines(notice: Notice | None) -> list[str]:
    """The digest, short: its subject and the first lines of its body (the file has it all)."""
    if notice is None:
        return ["daily digest: nothing recorded, nothing would be sent"]
    body = [line for line in notice.body.splitlines() if line.strip() and not line.startswith(EXPLAINED)]
    more = len(body) - CONSOLE_LINES
    return [
        f"daily digest the operators would get the next morning: {notice.subject!r}",
        *(f"  {line}" for line in body[:CONSOLE_LINES]),
        *([f"  ... ({more} more lines in the digest file)"] if more > 0 else []),
    ]
