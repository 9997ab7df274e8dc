"""Names shared with the handlers, the agent and the tests. One definition lives in `sparkscale.names`; infra
code imports it through here (`from sparkscale_cdk import names`) so the two can never drift apart."""

from __future__ import annotations

from sparkscale.names import *  # noqa: F403  (re-export: constants and alarm_name)
