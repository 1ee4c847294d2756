"""Who may do what through the router's API, on the real stack: every role and scope against
every endpoint (the table below is written out by hand, not derived from domain.access), bad
tokens refused with 401, the actor on the events of what was done.

Allowed calls are chosen so that they fail after the permission check (a resolved case
resolved again, an unknown agent named) or change nothing: the table then runs in any order,
and "allowed" means any answer but 401/403. The few calls that do change something run last
and are checked for their events' actor.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.pg import migrate
from casewire_dev.identity import LocalIdentity, bearer
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.main import create_app
from fastapi import FastAPI

from tests.integration.helpers import EventReader, producer, running, topic_reader
from tests.integration.router.test_case_api import Cases, customer_message, ok, settings_for
from tests.integration.router.test_threading_incidents import start_at_topic_ends

pytestmark = pytest.mark.integration

AGENTS = {
    "amal": {"teams": ["shipping"], "languages": ["en"], "capacity": 2, "online": True},
    "nikos": {"teams": ["shipping"], "languages": ["el"], "capacity": 0, "online": True},
    "bea": {"teams": ["billing"], "languages": ["en"], "capacity": 1, "online": True},
}
PERSONS = ("amal", "nikos", "bea", "lead_ship", "lead_bill", "admin")
SERVICES = ("svc_read", "svc_write", "svc_agents", "svc_care")
EVERYONE = PERSONS + SERVICES
SHIP_READERS = {"amal", "nikos", "lead_ship", "admin", "svc_read", "svc_write"}
BILL_READERS = {"bea", "lead_bill", "admin", "svc_read", "svc_write"}


# Who may act on amal's shipping cases (her, the shipping lead, admins, the writing service),
# assign in shipping, claim there for themselves.
SHIP_OWNER = {"amal", "lead_ship", "admin", "svc_write"}
SHIP_ASSIGNERS = {"lead_ship", "admin", "svc_write"}
SHIP_CLAIMERS = {"amal", "nikos"} | SHIP_ASSIGNERS
AGENT_ADMINS = {"admin", "svc_agents"}
SHIP_REPLIERS = {"amal", "nikos", "lead_ship", "admin", "svc_care"}
REPLY_WRITERS = {"lead_ship", "admin", "svc_care"}
AUTHOR_NAMERS = {"amal", "svc_write"}  # only a service names a reply's author, or amal herself
# A saved reply of the shipping team, as it is in config/saved-replies.yaml: writing it again
# through the API changes nothing a reader sees.
SHIPPING_REPLY = {
    "title": "Shipping times",
    "text": {"en": "Hi {customer_name}, your order ships within 2 days.", "ar": "مرحباً"},
    "teams": ["shipping"],
    "tags": ["shipping"],
}
LEASE_RELEASERS = {"amal", "nikos", "lead_ship", "admin"}
CUSTOMER_READERS = {"amal", "nikos", "lead_ship", "admin", "svc_care"}


def table() -> list[tuple[str, str, str, dict[str, Any] | None, set[str]]]:
    """(name, method, path template, body, who may): {S1} is amal's open shipping case, {R1}
    her resolved one, {B1} bea's billing case, {C1} S1's customer."""
    s1, r1, b1 = "/v1/cases/{S1}", "/v1/cases/{R1}", "/v1/cases/{B1}"
    amal, bea = "/v1/agents/amal", "/v1/agents/bea"
    return [
        ("ship queue", "GET", "/v1/teams/shipping/queue", None, SHIP_READERS),
        ("billing queue", "GET", "/v1/teams/billing/queue", None, BILL_READERS),
        ("ship case", "GET", s1, None, SHIP_READERS),
        ("billing case", "GET", b1, None, BILL_READERS),
        # An owned case claimed again: 409 (or 404, 422) once allowed.
        ("claim", "POST", f"{s1}/claim", {}, SHIP_CLAIMERS),
        ("claim for another", "POST", f"{s1}/claim", {"agent_id": "bea"}, SHIP_ASSIGNERS),
        ("claim forced", "POST", f"{s1}/claim", {"force": True}, SHIP_ASSIGNERS),
        ("claim billing", "POST", f"{b1}/claim", {}, {"bea", "lead_bill", "admin", "svc_write"}),
        # To an unknown agent: 404 once allowed.
        ("reassign", "POST", f"{s1}/reassign", {"agent_id": "ghost"}, SHIP_ASSIGNERS),
        # A resolved case: 409 once allowed (only its owner, the team's lead and above).
        ("pending", "POST", f"{r1}/pending", None, SHIP_OWNER),
        ("resolve", "POST", f"{r1}/resolve", None, SHIP_OWNER),
        ("no-action", "POST", f"{r1}/no-action", None, SHIP_OWNER),
        ("reply", "POST", f"{r1}/replies", {"text": "hi"}, SHIP_OWNER),
        ("reply as", "POST", f"{r1}/replies", {"text": "hi", "agent_id": "amal"}, AUTHOR_NAMERS),
        # An open case: nothing to reopen, 409 once allowed.
        ("reopen", "POST", f"{s1}/reopen", None, SHIP_OWNER),
        ("list agents", "GET", "/v1/agents", None, set(PERSONS) | {"svc_agents"}),
        ("put agent", "PUT", "/v1/agents/amal", AGENTS["amal"], AGENT_ADMINS),
        ("presence", "PATCH", amal, {"online": True}, {"amal", "lead_ship"} | AGENT_ADMINS),
        ("capacity", "PATCH", amal, {"capacity": 2}, {"lead_ship"} | AGENT_ADMINS),
        ("bea's presence", "PATCH", bea, {"online": True}, {"bea", "lead_bill"} | AGENT_ADMINS),
        ("saved replies", "GET", "/v1/saved-replies", None, set(PERSONS) | {"svc_care"}),
        ("a shipping reply", "GET", "/v1/saved-replies/shipping-policy", None, SHIP_REPLIERS),
        ("write a reply", "PUT", "/v1/saved-replies/ship-times", SHIPPING_REPLY, REPLY_WRITERS),
        ("remove a reply", "DELETE", "/v1/saved-replies/ship-times", None, REPLY_WRITERS),
        # Someone who may not see any of the customer's cases is told there is no such customer.
        ("customer", "GET", "/v1/customers/x/{C1}", None, CUSTOMER_READERS),
        # A person's own work (leads and admins need not be on the roster); streams end fast here.
        ("my cases", "GET", "/v1/me/cases", None, set(PERSONS)),
        ("my queue", "GET", "/v1/me/queue", None, set(PERSONS)),
        ("my stream", "GET", "/v1/me/stream", None, set(PERSONS)),
        # A resolved case takes no lease (409 once allowed); releasing none is a no-op (204).
        ("take a lease", "POST", f"{r1}/reply-lease", None, {"amal", "lead_ship", "admin"}),
        ("release a lease", "DELETE", f"{r1}/reply-lease", None, LEASE_RELEASERS),
    ]  # fmt: skip


async def test_every_role_and_scope_against_every_endpoint(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = {
        "amal": identity.token("amal", ["agent"]),
        "nikos": identity.token("nikos", ["agent"]),
        "bea": identity.token("bea", ["agent"]),
        "lead_ship": identity.token("lee", ["agent", "lead"], teams=["shipping"]),
        "lead_bill": identity.token("lou", ["lead"], teams=["billing"]),
        "admin": identity.token("root", ["admin"]),
        "svc_read": identity.service_token("bi", ["cases:read"]),
        "svc_write": identity.service_token("crm", ["cases:read", "cases:write"]),
        "svc_agents": identity.service_token("hr", ["agents:read", "agents:write"]),
        "svc_care": identity.service_token(
            "desk", ["saved-replies:read", "saved-replies:write", "customers:read"]
        ),
    }
    for name, value in identity.router_env().items():  # now with the service tokens
        monkeypatch.setenv(name, value)
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings.model_copy(update={"router_stream_max_seconds": 0.2}))
    now = datetime.now(UTC)
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as agents_in,
    ):
        admin = bearer(tokens["admin"])
        for agent_id, agent in AGENTS.items():
            await ok(await client.put(f"/v1/agents/{agent_id}", json=agent, headers=admin), 201)
        cases = Cases(EventReader(events_in), unique)
        for name, text in (("s1", "parcel"), ("r1", "parcel"), ("b1", "invoice")):
            conversation = cases.conversation(name)
            body = customer_message(conversation, f"{unique}-{name}", f"{text}{unique}", now)
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
        s1, r1, b1 = await cases.opened("s1", "r1", "b1")
        as_amal = bearer(tokens["amal"])
        assert (await ok(await client.get(f"/v1/cases/{r1}", headers=as_amal)))["case"][
            "assignee"
        ] == "amal"
        await ok(await client.post(f"/v1/cases/{r1}/resolve", headers=as_amal))
        ids = {"S1": s1, "R1": r1, "B1": b1, "C1": f"cust{unique}s1"}

        # Who may call what: the rest is 403 with {"error", "detail"}.
        wrong = []
        for name, method, template, body, allowed in table():
            # Refusals first: they change nothing, so every one sees the state the row set up.
            for caller in sorted(EVERYONE, key=lambda caller: caller in allowed):
                response = await client.request(
                    method,
                    template.format(**ids),
                    json=body,
                    headers=bearer(tokens[caller]),
                )
                refused = response.status_code == 403 or (
                    name == "customer" and response.status_code == 404
                )
                if refused == (caller in allowed) or response.status_code in (401, 500):
                    wrong.append((name, caller, response.status_code, response.text[:120]))
                if refused:
                    assert set(response.json()) == {"error", "detail"}
        assert wrong == []

        # A token of someone not on the roster, as an agent.
        stranger = await client.get(
            "/v1/teams/shipping/queue", headers=bearer(identity.token("eve", ["agent"]))
        )
        assert (stranger.status_code, stranger.json()["error"]) == (403, "not_on_roster")

        # Agents see only themselves, leads their teams' agents.
        listed = await ok(await client.get("/v1/agents", headers=bearer(tokens["lead_bill"])))
        assert [agent["id"] for agent in listed] == ["bea"]
        listed = await ok(await client.get("/v1/agents", headers=as_amal))
        assert [agent["id"] for agent in listed] == ["amal"]

        # What was done carries who did it.
        lead = bearer(tokens["lead_ship"])
        await ok(await client.patch("/v1/agents/nikos", json={"capacity": 1}, headers=lead))
        moved = await client.post(
            f"/v1/cases/{s1}/reassign", json={"agent_id": "nikos"}, headers=lead
        )
        assert moved.status_code == 200, moved.text
        events = await cases.events_of("s1", 3)
        assigned = [e for e in events if e.type == ev.CASE_ASSIGNED]
        assert assigned[0].data["actor"] is None  # routing chose amal
        assert assigned[-1].data["actor"] == {"id": "lee", "role": "lead"}
        resolved = [e for e in await cases.events_of("r1", 3) if e.type == ev.CASE_STATUS_CHANGED]
        assert resolved[-1].data["actor"] == {"id": "amal", "role": "agent"}

        kim = f"kim{unique}"
        kim_profile = {"teams": ["shipping"], "languages": ["th"], "capacity": 1, "online": False}
        await ok(await client.put(f"/v1/agents/{kim}", json=kim_profile, headers=admin), 201)
        await ok(await client.patch(f"/v1/agents/{kim}", json={"capacity": 3}, headers=lead))
        changes = await EventReader(agents_in).read_until(
            lambda events: len(events) >= 2,
            keep=lambda event: event.subject == f"agent:{kim}",
            types=(ev.AGENT_UPDATED,),
        )
        assert [(e.data["created"], e.data["capacity"], e.data["actor"]) for e in changes] == [
            (True, 1, {"id": "root", "role": "admin"}),
            (False, 3, {"id": "lee", "role": "lead"}),
        ]


async def test_bad_tokens_get_401_without_touching_kafka_or_postgresql(
    tmp_path: Path, identity: LocalIdentity
) -> None:
    # No lifespan: a refusal is decided from the token alone, before any I/O.
    app = create_app(settings_for(tmp_path, "postgresql://unused/none", "unused:9092", "x"))
    foreign = LocalIdentity(tmp_path / "foreign" / "jwks.json")
    async with asgi_client(app) as client:
        cases: list[tuple[dict[str, str], str]] = [
            ({}, "missing_token"),
            ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "missing_token"),
            (bearer("not-a-jwt"), "malformed_token"),
            (bearer(identity.token("root", ["admin"], exp=int(time.time()) - 3600)), "expired_token"),  # noqa: E501
            (bearer(identity.token("root", ["admin"], aud="elsewhere")), "invalid_token"),
            (bearer(identity.token("root", ["admin"], iss="https://evil/")), "invalid_token"),
            (bearer(foreign.token("root", ["admin"])), "unknown_key"),
        ]  # fmt: skip
        for headers, code in cases:
            response = await client.get("/v1/agents", headers=headers)
            assert response.status_code == 401, (code, response.text)
            assert response.json()["error"] == code
            assert response.headers["www-authenticate"].startswith("Bearer")
        viewer = await client.get("/v1/agents", headers=bearer(identity.token("v", ["viewer"])))
        assert (viewer.status_code, viewer.json()["error"]) == (403, "no_role")


async def test_without_an_identity_provider_or_service_tokens_the_api_is_off(
    tmp_path: Path,
) -> None:
    app = create_app(settings_for(tmp_path, "postgresql://unused/none", "unused:9092", "x"))
    async with asgi_client(app) as client:
        off = await client.get("/v1/agents", headers=bearer("anything"))
        assert (off.status_code, off.json()["error"]) == (503, "api_off")
        assert (await client.get("/healthz")).status_code == 200  # operations stay open


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    """A client without the app's lifespan (no broker, no database)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
