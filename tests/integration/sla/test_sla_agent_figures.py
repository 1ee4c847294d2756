"""Business time by agent on the real broker and PostgreSQL: a first reply observed in
`casewire_sla_agent_response_seconds` under the agent who owned the case, in the open time of
the contract's calendar, once although an additive policy's clock ended with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common.events import CASE_CREATED, CASE_RESPONDED, SLA_CLOCK_FULFILLED

from tests.integration.sla.conftest import case_on_running_sla, sla_settings
from tests.unit.sla.factories import case_event, snapshot

pytestmark = pytest.mark.integration

# The contract counts every hour but yesterday's (a holiday); `public-x` counts all of them.
POLICIES = """
version: 1
calendars:
  - {{id: always, always_open: true}}
  - {{id: no-yesterday, timezone: UTC, hours: {{mon-sun: ["00:00-24:00"]}},
     holidays: {{dates: ["{yesterday}"]}}}}
policies:
  - {{id: public-x, additive: true, match: {{platform: [x]}}, calendar: always,
     first_response: 30d}}
  - {{id: contract, match: {{}}, calendar: no-yesterday, first_response: 30d}}
"""
AGENTS = """
agents:
  - {{id: amal, teams: [team-{unique}], languages: [en], capacity: 5, online: true}}
  - {{id: nikos, teams: [team-{unique}], languages: [el], capacity: 5, online: true}}
"""


async def test_a_first_reply_counts_its_business_time_once_under_the_case_owner(
    tmp_path: Path, kafka_bootstrap: str, migrated_url: str, unique: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    yesterday = (now - timedelta(days=1)).date()
    opened, replied = now - timedelta(days=2), now - timedelta(minutes=1)
    team = f"team-{unique}"  # this test's series alone, whatever else is on the topic
    policies = POLICIES.format(yesterday=yesterday.isoformat())
    agents = tmp_path / "agents.yaml"
    agents.write_text(AGENTS.format(unique=unique), encoding="utf-8")
    settings = sla_settings(tmp_path, kafka_bootstrap, migrated_url, unique, policies)
    settings = settings.model_copy(update={"sla_agents": agents})

    async with case_on_running_sla(settings, f"case-agent-{unique}") as case:
        fields = {"team": team, "status": "assigned", "assignee": "amal"}
        created = snapshot(case.id, opened, **fields)
        await case.send(case_event(CASE_CREATED, created, time=opened))
        answered = snapshot(case.id, opened, first_response_at=replied, **fields)
        await case.send(case_event(CASE_RESPONDED, answered, first_response=True, time=replied))
        await case.read(lambda a: len(a.of_type(SLA_CLOCK_FULFILLED)) == 2)
        registry = case.sla.registry

    def agent_sample(suffix: str, agent: str) -> float | None:
        labels = {"clock": "first_response", "team": team, "agent": agent}
        return registry.get_sample_value(f"casewire_sla_agent_response_seconds_{suffix}", labels)

    calendar = (replied - opened).total_seconds()
    assert agent_sample("count", "amal") == 1  # the contract's clock; not public-x's too
    assert agent_sample("sum", "amal") == pytest.approx(calendar - 86400)  # yesterday closed
    assert agent_sample("count", "nikos") == 0  # on the roster: its series is there, at zero
    assert agent_sample("count", "other") is None
    business = {
        policy: registry.get_sample_value(
            "casewire_sla_response_seconds_sum",
            {
                "clock": "first_response",
                "time": "business",
                "policy": policy,
                "team": team,
                "priority": "P2",
                "platform": "x",
                "channel": "mention",
            },
        )
        for policy in ("contract", "public-x")
    }
    assert business == {"contract": calendar - 86400, "public-x": calendar}
