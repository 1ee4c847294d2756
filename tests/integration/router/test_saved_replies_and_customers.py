"""Saved replies and customer context on the real stack: cases come from messages on Kafka; a
lead writes a saved reply through the API (audited on Kafka, stored in PostgreSQL), agents are
offered replies rendered in the case's language for its customer, a reply made with one is
counted (metric, report), and a customer's history is cut to the teams the caller sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_dev.identity import LocalIdentity, bearer
from casewire_router.adapters import report
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.saved_replies import FSI, PDI
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    metric_value,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends

pytestmark = pytest.mark.integration

# Only this test's messages carry its keywords (the topic is shared by the whole session).
RULES = """
version: 1
default_team: care
teams: [care, shipping, billing]
rules:
  - id: shipping
    when: {{any: ["parcel{unique}"]}}
    then: {{team: shipping, priority: P3, tags: [shipping], reply_template: shipping-policy}}
  - id: billing
    when: {{any: ["invoice{unique}"]}}
    then: {{team: billing, priority: P3, tags: [billing], reply_template: billing-contact}}
"""
SAVED_REPLIES = """
default_language: en
teams:
  shipping: {default_language: en}
replies:
  - id: shipping-policy
    title: Shipping
    teams: [shipping]
    tags: [shipping]
    text:
      en: "Hi {customer_name}, your parcel is on its way. – {agent_name}"
      ar: "مرحباً {customer_name}، طردك في الطريق. – {agent_name}"
      el: "Γεια σας {customer_name}, το δέμα σας είναι καθ' οδόν. – {agent_name}"
      th: "สวัสดีค่ะคุณ{customer_name} พัสดุของคุณกำลังจัดส่งค่ะ – {agent_name}"
  - id: billing-contact
    title: Billing
    teams: [billing]
    tags: [billing]
    text: {en: "Please DM us about case {case_id}."}
  - id: anything-else
    title: Anything else?
    text:
      en: "Anything else, {customer_name}?"
      ar: "هل من شيء آخر يا {customer_name}؟"
"""
LATE_PARCEL = {
    "title": "Late parcel",
    "text": {
        "en": "Sorry {customer_name}, your parcel is late; case {case_id}.",
        "ar": "نأسف يا {customer_name}، تأخر طردك؛ رقم الحالة {case_id}.",
    },
    "teams": ["shipping"],
    "tags": ["shipping"],
}


def settings_for(tmp_path: Path, database_url: str, bootstrap: str, unique: str) -> RouterSettings:
    (tmp_path / "rules.yaml").write_text(RULES.format(unique=unique), encoding="utf-8")
    (tmp_path / "saved-replies.yaml").write_text(SAVED_REPLIES, encoding="utf-8")
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        router_rules=tmp_path / "rules.yaml",
        router_saved_replies=tmp_path / "saved-replies.yaml",
        router_agents=None,  # agents come from the API here
        router_consumer_group=f"router-replies-test-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
    )


def inbound(
    *,
    platform: str = "x",
    account: str,
    customer: str,
    pid: str,
    text: str,
    language: str,
    sent_at: datetime,
    name: str | None = None,
) -> tuple[str, bytes]:
    """A customer's DM to a brand account: (conversation, record value)."""
    conversation = f"{platform}:{account}:{customer}"
    author: dict[str, Any] = {"id": customer, "handle": f"h{customer}", "followers": 12}
    if name is not None:
        author["name"] = name
    body = {
        "id": message_id(platform, pid),
        "platform": platform,
        "channel": "dm",
        "visibility": "private",
        "direction": "inbound",
        "event": "message",
        "account_id": account,
        "platform_message_id": pid,
        "conversation_id": conversation,
        "author": author,
        "text": text,
        "language": language,
        "attachments": [],
        "sent_at": sent_at.isoformat(),
        "received_at": sent_at.isoformat(),
    }
    return conversation, json.dumps(body).encode()


async def ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json()


async def refused(response: httpx.Response, code: int, error: str) -> str:
    assert response.status_code == code, response.text
    body = response.json()
    assert body["error"] == error
    return str(body["detail"])


def isolated(value: str) -> str:
    return f"{FSI}{value}{PDI}"


async def test_saved_replies_and_customer_context_through_the_api(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    identity: LocalIdentity,
    monkeypatch: pytest.MonkeyPatch,
    pg: asyncpg.Connection,
) -> None:
    crm = bearer(identity.service_token("crm", ["customers:read", "cases:read"]))
    cases_only = bearer(identity.service_token("bi", ["cases:read"]))
    monkeypatch.setenv(
        "CASEWIRE_ROUTER_SERVICE_TOKENS", identity.router_env()["CASEWIRE_ROUTER_SERVICE_TOKENS"]
    )
    admin = bearer(identity.token("root", ["admin"]))
    amal = bearer(identity.token("amal", ["agent"]))
    lee = bearer(identity.token("lee", ["lead"], teams=["shipping"]))
    bea = bearer(identity.token("bea", ["lead"], teams=["billing"]))
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    settings = settings_for(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    app = create_app(settings)
    customer, quiet = f"cust{unique}", f"quiet{unique}"
    now = datetime.now(UTC)
    async with (
        running(app) as client,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        for agent, teams in (("amal", ["shipping"]), ("bill", ["billing"])):
            body = {"teams": teams, "languages": ["ar", "en"], "capacity": 10, "online": True}
            await ok(await client.put(f"/v1/agents/{agent}", json=body, headers=admin), 201)

        # One customer: two DMs to brand A about a parcel (shipping, in Arabic, 10 minutes
        # apart), one to brand B about an invoice (billing), and one on Facebook (another
        # customer there, whatever the id). Another customer, nameless, writes in Greek.
        sent = [
            inbound(
                account=f"a{unique}",
                customer=customer,
                pid=f"{unique}-1",
                name="مريم",
                text=f"أين طردي parcel{unique}",
                language="ar",
                sent_at=now - timedelta(minutes=70),
            ),
            inbound(
                account=f"a{unique}",
                customer=customer,
                pid=f"{unique}-2",
                name="مريم",
                text=f"parcel{unique} ما زلت أنتظر",
                language="ar",
                sent_at=now - timedelta(minutes=60),
            ),
            inbound(
                account=f"b{unique}",
                customer=customer,
                pid=f"{unique}-3",
                name="Maryam",
                text=f"wrong invoice{unique}",
                language="en",
                sent_at=now - timedelta(minutes=10),
            ),
            inbound(
                platform="facebook",
                account=f"a{unique}",
                customer=customer,
                pid=f"{unique}-4",
                text=f"parcel{unique}?",
                language="en",
                sent_at=now - timedelta(minutes=5),
            ),
            inbound(
                account=f"a{unique}",
                customer=quiet,
                pid=f"{unique}-5",
                text=f"πού είναι το δέμα parcel{unique}",
                language="el",
                sent_at=now - timedelta(minutes=3),
            ),
        ]
        for conversation, body in sent:
            await kafka.send_and_wait(topics.MESSAGES, body, key=conversation.encode())
        conversations = {conversation for conversation, _ in sent}

        def created(events: list[DecodedEvent]) -> dict[str, str]:
            return {
                e.data["case"]["conversation_id"]: e.data["case"]["id"]
                for e in events
                if e.type == ev.CASE_CREATED
            }

        def mine(event: DecodedEvent) -> bool:
            case = event.data.get("case")
            return case is not None and case["conversation_id"] in conversations

        await reader.read_until(lambda events: len(created(events)) == 4, keep=mine)
        opened = created(reader.events)
        case_a = opened[f"x:a{unique}:{customer}"]
        case_b = opened[f"x:b{unique}:{customer}"]
        case_fb = opened[f"facebook:a{unique}:{customer}"]
        case_greek = opened[f"x:a{unique}:{quiet}"]

        # Writing saved replies: the shipping lead yes; an agent, another team's lead, no.
        written = await ok(
            await client.put("/v1/saved-replies/late-parcel", json=LATE_PARCEL, headers=lee), 201
        )
        assert written["created"] is True
        assert written["saved_reply"]["source"] == "api"
        assert written["saved_reply"]["updated_by"] == {"id": "lee", "role": "lead"}
        await refused(
            await client.put("/v1/saved-replies/late-parcel", json=LATE_PARCEL, headers=amal),
            403,
            "forbidden",
        )
        detail = await refused(
            await client.put(
                "/v1/saved-replies/shipping-policy",
                json={**LATE_PARCEL, "teams": ["billing"]},
                headers=bea,
            ),
            403,
            "forbidden",
        )
        assert "does not lead: shipping" in detail
        invalid = await client.put(
            "/v1/saved-replies/sneaky",
            json={**LATE_PARCEL, "text": {"en": "{customer_name.__class__}"}},
            headers=lee,
        )
        assert invalid.status_code == 422
        assert "unknown placeholder" in invalid.text
        row = await pg.fetchrow(
            f"SELECT content, updated_by_id FROM {SCHEMA}.saved_replies WHERE id = 'late-parcel'"
        )
        assert row is not None
        assert json.loads(row["content"])["text"] == LATE_PARCEL["text"]
        assert row["updated_by_id"] == "lee"
        audit = await reader.read_until(
            lambda events: any(e.type == ev.SAVED_REPLY_UPDATED for e in events),
            keep=lambda e: e.subject == "saved-reply:late-parcel",
            types=("casewire.saved_reply.",),
        )
        (change,) = [e for e in audit if e.type == ev.SAVED_REPLY_UPDATED]
        assert change.data["change"] == "created"
        assert change.data["actor"] == {"id": "lee", "role": "lead"}
        assert reader.records[-1].key == b"saved-reply:late-parcel"

        # Reading: an agent lists their team's replies and those for every team.
        listed = await ok(await client.get("/v1/saved-replies", headers=amal))
        assert [r["id"] for r in listed] == ["anything-else", "late-parcel", "shipping-policy"]
        await refused(
            await client.get("/v1/saved-replies/billing-contact", headers=amal), 403, "forbidden"
        )
        await refused(await client.get("/v1/saved-replies/nope", headers=admin), 404, "not_found")

        # The case view: Arabic suggestions rendered for Maryam and amal, the rule's first.
        view = await ok(await client.get(f"/v1/cases/{case_a}", headers=amal))
        assert view["case"]["assignee"] == "amal"
        suggested = view["suggested_replies"]
        assert [(s["saved_reply_id"], s["reason"], s["language"]) for s in suggested] == [
            ("shipping-policy", "rule", "ar"),
            ("late-parcel", "tags", "ar"),
            ("anything-else", "team", "ar"),
        ]
        assert suggested[0]["text"] == (
            f"مرحباً {isolated('مريم')}، طردك في الطريق. – {isolated('amal')}"
        )
        assert suggested[1]["text"] == (
            f"نأسف يا {isolated('مريم')}، تأخر طردك؛ رقم الحالة {isolated(case_a)}."
        )
        assert all(s["missing"] == [] and s["in_case_language"] for s in suggested)
        summary = view["customer"]
        assert (summary["id"], summary["platform"]) == (customer, "x")
        assert summary["profile"]["name"] == "مريم"
        # amal works shipping: brand B's billing case is not hers to see.
        assert (summary["total_cases"], summary["open_cases"]) == (1, 1)
        assert summary["repeat_contacts_in_window"] == 1
        assert summary["languages"] == ["ar"]

        # A nameless customer in Greek: the name stays visible; a reply with no Greek text
        # falls back to the team's default language.
        greek = await ok(await client.get(f"/v1/cases/{case_greek}", headers=amal))
        by_id = {s["saved_reply_id"]: s for s in greek["suggested_replies"]}
        assert by_id["shipping-policy"]["text"] == (
            "Γεια σας {customer_name}, το δέμα σας είναι καθ' οδόν. – amal"
        )
        assert by_id["shipping-policy"]["missing"] == ["customer_name"]
        assert (by_id["late-parcel"]["language"], by_id["late-parcel"]["in_case_language"]) == (
            "en",
            False,
        )
        # A service reading cases but not customers or saved replies sees neither.
        bare = await ok(await client.get(f"/v1/cases/{case_a}", headers=cases_only))
        assert (bare["suggested_replies"], bare["customer"]) == ([], None)

        # Replying with a saved reply counts its use; an unknown one is refused.
        await refused(
            await client.post(
                f"/v1/cases/{case_a}/replies",
                json={"text": "…", "saved_reply_id": "no-such-reply"},
                headers=amal,
            ),
            422,
            "invalid_request",
        )
        replied = await ok(
            await client.post(
                f"/v1/cases/{case_a}/replies",
                json={"text": suggested[0]["text"], "saved_reply_id": "shipping-policy"},
                headers=amal,
            ),
            201,
        )
        assert replied["first_response"] is True
        responded = await reader.read_until(
            lambda events: any(e.type == ev.CASE_RESPONDED for e in events),
            keep=lambda e: e.subject == case_a,
        )
        (answer,) = [e for e in responded if e.type == ev.CASE_RESPONDED]
        assert answer.data["saved_reply_id"] == "shipping-policy"
        assert answer.data["actor"] == {"id": "amal", "role": "agent"}
        metrics = (await client.get("/metrics")).text
        uses = "casewire_router_saved_reply_uses_total"
        assert (
            metric_value(metrics, uses, {"team": "shipping", "saved_reply": "shipping-policy"}) == 1
        )
        assert metric_value(metrics, uses, {"team": "shipping", "saved_reply": "late-parcel"}) == 0
        figures = await report.build_report(pg, by=("team",))
        (shipping,) = [row for row in figures.teams if row.name == "shipping"]
        assert shipping.top_saved_replies == [("shipping-policy", 1)]
        assert "shipping: shipping-policy (1)" in report.render_table(figures)

        # The customer: the admin sees both brands' cases on X (not Facebook's), newest first.
        whole = await ok(await client.get(f"/v1/customers/x/{customer}", headers=admin))
        assert [c["id"] for c in whole["cases"]] == [case_b, case_a]
        assert [c["team"] for c in whole["cases"]] == ["billing", "shipping"]
        assert all(c["outcome"] == "open" for c in whole["cases"])
        assert whole["cases"][1]["first_response_at"] is not None
        assert (whole["total_cases"], whole["open_cases"]) == (2, 2)
        assert whole["profile"] == {
            "handle": f"h{customer}",
            "name": "Maryam",
            "followers": 12,
            "verified": None,
        }
        contacts = whole["contacts"]
        assert contacts["messages"] == 3
        assert contacts["repeat_contacts"] == {
            "window_seconds": 86400.0,
            "in_window": 2,
            "total": 2,
        }
        assert whole["languages"] == ["ar", "en"]
        assert await ok(await client.get(f"/v1/customers/x/{customer}", headers=crm)) == whole
        # Each lead sees their team's part; a resolved case says so.
        await ok(await client.post(f"/v1/cases/{case_b}/resolve", headers=bea))
        billing_view = await ok(await client.get(f"/v1/customers/x/{customer}", headers=bea))
        assert [(c["id"], c["outcome"]) for c in billing_view["cases"]] == [(case_b, "resolved")]
        assert billing_view["contacts"]["messages"] == 1
        assert billing_view["profile"]["name"] == "Maryam"
        shipping_view = await ok(await client.get(f"/v1/customers/x/{customer}", headers=lee))
        assert [c["id"] for c in shipping_view["cases"]] == [case_a]
        assert shipping_view["contacts"]["repeat_contacts"]["total"] == 1
        facebook = await ok(await client.get(f"/v1/customers/facebook/{customer}", headers=admin))
        assert [c["id"] for c in facebook["cases"]] == [case_fb]
        # Known only to other teams, or not at all: the same 404.
        for token, path in (
            (bea, f"/v1/customers/x/{quiet}"),
            (admin, f"/v1/customers/x/nobody{unique}"),
        ):
            await refused(await client.get(path, headers=token), 404, "not_found")
        await refused(
            await client.get(f"/v1/customers/x/{customer}", headers=cases_only), 403, "forbidden"
        )
        assert (
            await client.get(f"/v1/customers/myspace/{customer}", headers=admin)
        ).status_code == 422
