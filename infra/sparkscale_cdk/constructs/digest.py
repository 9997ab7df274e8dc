"""The daily digest (feature `digest`): a Lambda on an hourly EventBridge schedule that emails the digest of
the day before in the local hour `digest_hour` of `digest_time_zone` (docs/email.md, "Daily digest"). Hourly,
not a cron at the hour: a cron expression is in UTC and a time zone's offset changes with daylight saving.

Sized for the weekly section, which replays each cluster's week (EMR's rules, static peak, the oracle) one
cluster at a time within the remaining time: 1,769 MB is one full vCPU (Lambda gives CPU in proportion to
memory; at the other functions' 256 MB a week's replay would take about 7 times longer), and 900 s, Lambda's
maximum, fits the comparisons of about 98 clusters (8.9 s each with their reads, measured by
benchmarks/bench_report.py; docs/savings-report.md). The other 167 runs a week return within a second or
so: the memory costs little."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from sparkscale_cdk.constructs.event_rule_function import EVENT_RETRY_ATTEMPTS, EventRuleFunction
from sparkscale_cdk.constructs.function import FunctionOptions

DIGEST_HANDLER: Final = "handlers.digest.handler"
DIGEST_TIMEOUT_S: Final = 900  # Lambda's maximum: the weekly comparisons run within it (usecases/digest.py)
DIGEST_MEMORY_MB: Final = 1769  # one full vCPU for the replay
DIGEST_CONCURRENCY: Final = 1  # one sender at a time (the ledger's mark keeps it to one a day in any case)
SCHEDULE_MAX_EVENT_AGE: Final = Duration.minutes(50)  # a tick older than that may miss its local hour


class DailyDigest(EventRuleFunction):
    schedule: events.Rule

    def __init__(self, scope: Construct, construct_id: str, *, options: FunctionOptions) -> None:
        super().__init__(
            scope,
            construct_id,
            handler=DIGEST_HANDLER,
            description="sparkscale: the daily digest email, from the audit records",
            options=replace(
                options,
                timeout_s=DIGEST_TIMEOUT_S,
                reserved_concurrency=DIGEST_CONCURRENCY,
                memory_mb=DIGEST_MEMORY_MB,
            ),
            max_event_age=SCHEDULE_MAX_EVENT_AGE,
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="sparkscale: every hour; the digest goes out in the configured local hour only",
            schedule=events.Schedule.rate(Duration.hours(1)),
            targets=[
                targets.LambdaFunction(
                    self.handler.function,
                    dead_letter_queue=self.rule_dlq,
                    retry_attempts=EVENT_RETRY_ATTEMPTS,
                    max_event_age=SCHEDULE_MAX_EVENT_AGE,
                )
            ],
        )
