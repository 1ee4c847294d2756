"""The chaos runner's pieces that need no stack: the config files it writes, the gauges it
reads to know the run has drained, the care desk's choice of cases to resolve and the
command's options."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from casewire_common import events as ev
from casewire_dev import cli
from casewire_dev.chaos import faults, runner, workload
from casewire_dev.chaos.capture import Record
from casewire_dev.chaos.desk import CareDesk
from casewire_dev.chaos.fleet import Fleet
from casewire_router.domain.agents_file import parse_agents
from casewire_router.domain.rules import load_rules
from casewire_sla.domain.policies import parse_policy_set

ROOT = Path(__file__).resolve().parents[3]


def test_the_agents_file_covers_the_rules_teams_and_the_four_languages_with_small_capacities() -> (
    None
):
    teams = load_rules(str(ROOT / "config" / "rules.yaml")).teams
    agents = parse_agents(runner.agents_yaml(), teams=teams).agents
    assert {team for agent in agents for team in agent.teams} == set(teams)
    assert {language for agent in agents for language in agent.languages} == {
        "en",
        "ar",
        "el",
        "th",
    }
    assert max(agent.capacity for agent in agents) <= 4


def test_the_policy_file_gives_every_case_one_always_open_first_response_target() -> None:
    policies = parse_policy_set(runner.policies_yaml(20.0))
    [policy] = policies.policies
    assert policy.first_response == timedelta(seconds=20)
    assert policy.next_response == timedelta(hours=1)
    assert policy.resolution == timedelta(hours=1)
    assert policy.match.model_dump(exclude_none=True) == {}  # matches every case


def test_lag_and_backlog_are_summed_over_every_partition_and_group() -> None:
    text = (
        "# TYPE casewire_consumer_lag gauge\n"
        'casewire_consumer_lag{group="a",topic="t",partition="0"} 3.0\n'
        'casewire_consumer_lag{group="b",topic="t",partition="1"} 4.0\n'
        "# TYPE casewire_outbox_backlog gauge\n"
        'casewire_outbox_backlog{component="router"} 0.0\n'
    )
    assert runner.gauge_sum(text, "casewire_consumer_lag") == 7
    assert runner.gauge_sum(text, "casewire_outbox_backlog") == 0
    assert runner.gauge_sum(text, "casewire_missing") == 0


def _case_event(
    kind: str, case_id: str, assignee: str | None, answered: bool, status: str = "assigned"
) -> Record:
    """A case event as the router publishes it (binary CloudEvent), its snapshot cut short."""
    headers = {
        "ce_id": f"evt-{kind}-{case_id}".encode(),
        "ce_type": kind.encode(),
        "ce_source": b"casewire/router",
        "ce_time": b"2026-12-06T03:00:00Z",
        "ce_specversion": b"1.0",
        "content-type": b"application/json",
    }
    case = {
        "id": case_id,
        "assignee": assignee,
        "status": status,
        "first_response_at": "2026-12-06T03:00:00Z" if answered else None,
    }
    value = json.dumps({"case": case})
    return Record(
        topic="casewire.case-events.v1",
        partition=0,
        offset=0,
        key=case_id,
        headers=headers,
        value=value.encode(),
        timestamp=datetime.now(UTC),
    )


def test_the_desk_resolves_each_case_once_it_is_both_answered_and_held_by_an_agent() -> None:
    async def planned() -> list[str]:
        desk = CareDesk(Fleet({}, ROOT), "token", seed=1)
        records = [
            _case_event(ev.CASE_RESPONDED, "answered", "amal", answered=True),
            _case_event(ev.CASE_RESPONDED, "queued", None, answered=True, status="queued"),
            _case_event(ev.CASE_ASSIGNED, "unanswered", "omar", answered=False),
            _case_event(ev.CASE_RESPONDED, "closed", "sam", answered=True, status="resolved"),
        ]
        desk.see(records[:1])
        desk.see(records)
        desk.see([*records, _case_event(ev.CASE_ASSIGNED, "queued", "nok", answered=True)])
        return desk.pending

    assert asyncio.run(planned()) == ["answered", "queued"]


def test_the_chaos_command_takes_known_faults_only() -> None:
    parsed = cli._parser().parse_args(["chaos", "--faults", "kill-router, freeze-router"])
    assert parsed.faults == ("kill-router", "freeze-router")
    assert cli._parser().parse_args(["chaos", "--faults", ""]).faults == ()
    assert cli._parser().parse_args(["chaos"]).faults == faults.FAULT_NAMES
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["chaos", "--faults", "kill-everything"])


def test_a_post_is_not_given_up_for_the_time_it_waits_for_a_connection(
    monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    """The run behind its plan: thousands of posts queue for a connection. A post that waited
    longer than the give-up budget for its first try, and got a 503 then (a broker stall),
    is still retried until delivered."""
    texts = workload.read_texts(shared_data, ROOT)
    plan = workload.build_plan(
        workload.PlanOptions(messages=20, seed=3, first_response_seconds=20.0), texts
    )
    post = next(p for p in plan.posts if p.expected_rejection is None)
    monkeypatch.setattr(runner, "GIVE_UP_AFTER_SECONDS", 0.3)
    monkeypatch.setattr(runner, "RETRY_FIRST_PAUSE_SECONDS", 0.01)
    statuses = iter([503, 200])

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json={"reason": "unavailable"} if status == 503 else {})

    async def deliver_behind_a_queue() -> runner.Posting:
        poster = runner.Poster("http://ingest.invalid", connections=1, seed=1)
        await poster.close()
        poster._client = httpx.AsyncClient(
            base_url="http://ingest.invalid", transport=httpx.MockTransport(answer)
        )
        async with poster._slots:
            delivering = asyncio.create_task(poster._deliver(post))
            await asyncio.sleep(0.6)  # twice the budget
        await delivering
        await poster._client.aclose()
        return poster.result

    posting = asyncio.run(deliver_behind_a_queue())
    assert posting.undelivered == []
    assert posting.tries == 2
    assert posting.sent


def test_a_desk_refused_for_who_it_is_fails_the_run_other_refusals_do_not() -> None:
    desk = CareDesk(Fleet({}, ROOT), "token", seed=1)
    desk.resolved = 3
    desk.refusals.update({"409 conflict": 2})
    verdicts = {v.name: v for v in runner.desk_verdicts(desk)}
    assert verdicts["desk_resolutions"].value == 3
    assert verdicts["desk_caller_refusals"].ok is True

    desk.refusals.update({"401 unknown_key": 4, "403 forbidden": 1})
    refused = {v.name: v for v in runner.desk_verdicts(desk)}["desk_caller_refusals"]
    assert (refused.value, refused.ok) == (5, False)
    assert "401 unknown_key ×4" in refused.detail
