"""Bot handover on the real broker and PostgreSQL.

The whole path for Meta's handover protocol: signed Messenger webhooks (built from Meta's
documented shapes: the `standby` and `messaging_handovers` references) into ingest, canonical
messages and thread-control records through `casewire.messages.v1` into the router, case
events into the SLA service: a bot-first conversation reaches a human with its transcript and a
first-response clock that started at the handover. Then, with records published straight to
the messages topic: delivery out of order, redelivery, and a WhatsApp bot account handed over
by the rules file's keyword.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import DecodedEvent
from casewire_common.messages import message_id
from casewire_common.pg import migrate
from casewire_common.thread_control import ThreadControl, thread_control_id
from casewire_dev.identity import LocalIdentity, bearer
from casewire_ingest.adapters.dedup import MIGRATIONS_PACKAGE as INGEST_MIGRATIONS
from casewire_ingest.adapters.dedup import SCHEMA as INGEST_SCHEMA
from casewire_ingest.main import create_app as create_ingest_app
from casewire_ingest.settings import IngestSettings
from casewire_router.adapters import repository
from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
from casewire_router.domain.assignment import AgentScope
from casewire_router.main import create_app as create_router_app
from casewire_router.settings import RouterSettings
from casewire_sla.adapters.store import MIGRATIONS as SLA_MIGRATIONS
from casewire_sla.adapters.store import SCHEMA as SLA_SCHEMA

from tests.integration.helpers import (
    SESSION_TIMEOUT_MS,
    EventReader,
    eventually,
    producer,
    running,
    topic_reader,
)
from tests.integration.router.test_threading_incidents import start_at_topic_ends
from tests.integration.sla.conftest import running_sla, sla_settings

CASEWIRE_APP = "990011223344556"
BOT_APP = "618371462290011"
APP_SECRET = "meta-app-secret-for-handover"
RULES = """
version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {any: [parcel, "شحنة", "αποστολή", "การจัดส่ง"]}
    then: {team: shipping, tags: [shipping]}
handoff:
  customer_says: [agent, human, "موظف", "άνθρωπο", "เจ้าหน้าที่"]
  bot_says: ["#handoff"]
"""
AGENTS = """
agents:
  - {id: amal, teams: [care, shipping], languages: [ar, el, en, th], capacity: 50, online: true}
"""
POLICIES = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: standard, match: {}, calendar: always, first_response: 1h, resolution: 24h}
"""


def router_settings(
    tmp_path: Path, database_url: str, bootstrap: str, unique: str, **handover: Any
) -> RouterSettings:
    rules, agents = tmp_path / "rules.yaml", tmp_path / "agents.yaml"
    rules.write_text(RULES, encoding="utf-8")
    agents.write_text(AGENTS, encoding="utf-8")
    return RouterSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        router_rules=rules,
        router_agents=agents,
        router_consumer_group=f"router-handover-{unique}",
        consumer_session_timeout_ms=SESSION_TIMEOUT_MS,
        router_handover_app_ids=[CASEWIRE_APP],
        **handover,
    )


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def meta_body(page: str, channel: str, *events: dict[str, Any]) -> bytes:
    entry = {"id": page, "time": ms(datetime.now(UTC)), channel: list(events)}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def customer_says(page: str, psid: str, mid: str, text: str, at: datetime) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page},
        "timestamp": ms(at),
        "message": {"mid": mid, "text": text},
    }


def page_echo(
    page: str, psid: str, mid: str, text: str, at: datetime, app_id: str
) -> dict[str, Any]:
    return {
        "sender": {"id": page},
        "recipient": {"id": psid},
        "timestamp": ms(at),
        "message": {"mid": mid, "text": text, "is_echo": True, "app_id": int(app_id)},
    }


async def post_meta(client: httpx.AsyncClient, raw: bytes) -> dict[str, Any]:
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = await client.post(
        "/v1/webhooks/meta", content=raw, headers={"x-hub-signature-256": signature}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def of_conversation(conversation: str) -> Any:
    def keep(event: DecodedEvent) -> bool:
        return bool(event.data.get("case", {}).get("conversation_id") == conversation)

    return keep


async def transcript_rows(pg: asyncpg.Connection, conversation: str) -> list[asyncpg.Record]:
    return list(
        await pg.fetch(
            "SELECT platform_message_id, case_id, bot_phase, standby, sending_app"
            f" FROM {SCHEMA}.messages"
            " WHERE conversation_id = $1 ORDER BY sent_at",
            conversation,
        )
    )


async def test_a_bot_first_messenger_conversation_reaches_a_human_with_its_transcript_and_clock(
    tmp_path: Path,
    database_url: str,
    kafka_bootstrap: str,
    unique: str,
    pg: asyncpg.Connection,
    identity: LocalIdentity,
) -> None:
    for schema, package in (
        (INGEST_SCHEMA, INGEST_MIGRATIONS),
        (SCHEMA, MIGRATIONS_PACKAGE),
        (SLA_SCHEMA, SLA_MIGRATIONS),
    ):
        await migrate(database_url, schema, package)
    page, psid = "1045698450", str(int(unique, 16))
    conversation = f"facebook:{page}:{psid}"
    settings = router_settings(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    ingest_app = create_ingest_app(
        IngestSettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            database_url=database_url,
            meta_apps=[{"app_secret": APP_SECRET, "verify_token": "unused"}],
        )
    )
    router_app = create_router_app(settings)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
    handed_over = started + timedelta(minutes=2)
    async with (
        running(ingest_app) as ingest,
        running(router_app) as router,
        running_sla(sla_settings(tmp_path, kafka_bootstrap, database_url, unique, POLICIES)),
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
        topic_reader(kafka_bootstrap, topics.SLA_ALERTS) as alerts_in,
    ):
        # The chatbot owns the thread: Casewire's app gets the conversation on standby.
        await post_meta(
            ingest,
            meta_body(
                page,
                "standby",
                customer_says(page, psid, f"m_{unique}_1", "Where is my parcel?", started),
                page_echo(
                    page,
                    psid,
                    f"m_{unique}_2",
                    "I'm the assistant. Your parcel left the warehouse.",
                    started + timedelta(seconds=10),
                    BOT_APP,
                ),
                customer_says(
                    page,
                    psid,
                    f"m_{unique}_3",
                    "I want to talk to a human",
                    started + timedelta(seconds=40),
                ),
            ),
        )
        rows = await eventually(
            lambda: transcript_rows(pg, conversation), lambda found: len(found) == 3
        )
        assert [(row["case_id"], row["bot_phase"]) for row in rows] == [(None, True)] * 3
        assert [(row["standby"], row["sending_app"]) for row in rows] == [
            (True, None),
            (True, BOT_APP),
            (True, None),
        ]
        assert (
            await pg.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.cases WHERE conversation_id = $1", conversation
            )
            == 0
        )

        # The bot passes the thread to Casewire (messaging_handovers, as Meta documents it).
        answer = await post_meta(
            ingest,
            meta_body(
                page,
                "messaging",
                {
                    "sender": {"id": psid},
                    "recipient": {"id": page},
                    "timestamp": ms(handed_over),
                    "pass_thread_control": {
                        "previous_owner_app_id": BOT_APP,
                        "new_owner_app_id": CASEWIRE_APP,
                        "metadata": "customer asked for a person",
                    },
                },
            ),
        )
        assert (answer["accepted"], answer["thread_controls"]) == (0, 1)
        reader = EventReader(events_in)
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_ASSIGNED for e in got),
            keep=of_conversation(conversation),
        )
        created = next(e for e in events if e.type == ev.CASE_CREATED)
        case = created.data["case"]
        assert datetime.fromisoformat(case["opened_at"]) == handed_over
        assert created.time == handed_over
        assert case["team"] == "shipping"  # routed on everything the customer told the bot
        assert "bot_handover" in case["tags"]
        assert case["first_response_at"] is None  # the bot's answer never counts
        assert created.data["message_id"] == message_id("facebook", f"m_{unique}_3")

        # The SLA service starts the first-response clock at the handover.
        async def clock_started() -> list[DecodedEvent]:
            batch = await alerts_in.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if record.key == case["id"].encode():
                        started_events.append(
                            ev.decode_event(record.headers, record.value or b"", record.key)
                        )
            return started_events

        started_events: list[DecodedEvent] = []
        alerts = await eventually(
            clock_started,
            lambda got: any(
                e.type == ev.SLA_CLOCK_STARTED and e.data["clock"] == "first_response" for e in got
            ),
        )
        first_response = next(
            e
            for e in alerts
            if e.type == ev.SLA_CLOCK_STARTED and e.data["clock"] == "first_response"
        )
        assert datetime.fromisoformat(first_response.data["started_at"]) == handed_over
        assert datetime.fromisoformat(first_response.data["due_at"]) == handed_over + timedelta(
            hours=1
        )

        # Meta redelivers a standby message sent before the pass: transcript, not a new case.
        await post_meta(
            ingest,
            meta_body(
                page,
                "standby",
                customer_says(
                    page, psid, f"m_{unique}_late", "order 5521", started + timedelta(seconds=50)
                ),
            ),
        )
        rows = await eventually(
            lambda: transcript_rows(pg, conversation),
            lambda found: len(found) == 4 and all(row["case_id"] for row in found),
        )
        assert {str(row["case_id"]) for row in rows} == {case["id"]}
        assert all(row["bot_phase"] for row in rows)

        # An agent answers from Casewire: the first response, which ends the clock.
        reply_at = handed_over + timedelta(minutes=1)
        await post_meta(
            ingest,
            meta_body(
                page,
                "messaging",
                page_echo(page, psid, f"m_{unique}_4", "Hi, Amal here.", reply_at, CASEWIRE_APP),
            ),
        )
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_RESPONDED for e in got),
            keep=of_conversation(conversation),
        )
        responded = [e for e in events if e.type == ev.CASE_RESPONDED]
        assert len(responded) == 1
        assert responded[0].data["message_id"] == message_id("facebook", f"m_{unique}_4")
        assert responded[0].data["first_response"] is True
        assert sum(e.type == ev.CASE_CREATED for e in events) == 1
        alerts = await eventually(
            clock_started,
            lambda got: any(e.type == ev.SLA_CLOCK_FULFILLED for e in got),
        )
        fulfilled = next(e for e in alerts if e.type == ev.SLA_CLOCK_FULFILLED)
        assert fulfilled.data["elapsed_seconds"] == 60.0

        # The case view lists the transcript, marked, before the agent's reply.
        view = await router.get(
            f"/v1/cases/{case['id']}", headers=bearer(identity.token("lena", ["admin"]))
        )
        assert view.status_code == 200, view.text
        listed = [(m["platform_message_id"], m["bot_phase"]) for m in view.json()["messages"]]
        assert listed == [
            (f"m_{unique}_1", True),
            (f"m_{unique}_2", True),
            (f"m_{unique}_3", True),
            (f"m_{unique}_late", True),
            (f"m_{unique}_4", False),
        ]
        metrics = (await router.get("/metrics")).text
        assert 'casewire_router_thread_controls_total{action="pass",outcome="human"} 1.0' in metrics


def canonical(
    conversation: str,
    platform: str,
    account: str,
    customer: str,
    pid: str,
    text: str,
    at: datetime,
    *,
    outbound: bool = False,
) -> bytes:
    return json.dumps(
        {
            "id": message_id(platform, pid),
            "platform": platform,
            "channel": "dm",
            "visibility": "private",
            "direction": "outbound" if outbound else "inbound",
            "event": "message",
            "account_id": account,
            "platform_message_id": pid,
            "conversation_id": conversation,
            "in_reply_to": None,
            "author": {"id": account if outbound else customer},
            "text": text,
            "language": None,
            "sent_at": at.isoformat(),
            "received_at": at.isoformat(),
        }
    ).encode()


async def send(
    kafka: AIOKafkaProducer, conversation: str, value: bytes, *headers: tuple[str, bytes]
) -> None:
    await kafka.send_and_wait(
        topics.MESSAGES, value, key=conversation.encode(), headers=list(headers)
    )


STANDBY = (topics.STANDBY_HEADER, b"true")
THREAD_CONTROL = (topics.RECORD_HEADER, b"thread_control")


async def test_a_pass_read_before_the_standby_messages_sent_before_it_opens_one_case_at_the_pass(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    page, psid = "2045698450", str(int(unique, 16))
    conversation = f"facebook:{page}:{psid}"
    settings = router_settings(tmp_path, database_url, kafka_bootstrap, unique)
    await start_at_topic_ends(settings)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    handed_over = sent + timedelta(minutes=1)
    control = (
        ThreadControl(
            id=thread_control_id(
                "facebook", conversation, "pass", str(ms(handed_over)), CASEWIRE_APP
            ),
            platform="facebook",
            action="pass",
            account_id=page,
            conversation_id=conversation,
            new_owner_app_id=CASEWIRE_APP,
            previous_owner_app_id=BOT_APP,
            sent_at=handed_over,
            received_at=handed_over,
        )
        .model_dump_json()
        .encode()
    )
    async with (
        running(create_router_app(settings)) as router,
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        # The pass arrives first (twice: a redelivery), then the conversation it ends.
        await send(kafka, conversation, control, THREAD_CONTROL)
        await send(kafka, conversation, control, THREAD_CONTROL)
        for n, (text, outbound) in enumerate(
            [("αποστολή;", False), ("Ρωτάω το σύστημα...", True), ("θέλω άνθρωπο", False)]
        ):
            await send(
                kafka,
                conversation,
                canonical(
                    conversation,
                    "facebook",
                    page,
                    psid,
                    f"m_{unique}_{n}",
                    text,
                    sent + timedelta(seconds=10 * n),
                    outbound=outbound,
                ),
                STANDBY,
            )
        reader = EventReader(events_in)
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_ASSIGNED for e in got),
            keep=of_conversation(conversation),
        )
        rows = await eventually(
            lambda: transcript_rows(pg, conversation),
            lambda found: len(found) == 3 and all(row["case_id"] for row in found),
        )
        await asyncio.sleep(1)  # a second case, if any, would come now
        events = await reader.read_until(
            lambda got: False, keep=of_conversation(conversation), timeout=1
        )
        metrics = (await router.get("/metrics")).text

    created = [e for e in events if e.type == ev.CASE_CREATED]
    assert len(created) == 1
    case = created[0].data["case"]
    assert datetime.fromisoformat(case["opened_at"]) == handed_over
    assert {str(row["case_id"]) for row in rows} == {case["id"]}
    assert all(row["bot_phase"] for row in rows)
    assert not any(e.type == ev.CASE_RESPONDED for e in events)  # the bot's echo is no reply
    assert await pg.fetchval(f"SELECT count(*) FROM {SCHEMA}.handovers") == 1
    assert "casewire_router_duplicates_total 1.0" in metrics


async def test_a_whatsapp_bot_account_hands_over_on_the_customers_keyword(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    number, customer = f"1065{int(unique, 16) % 10**8}", f"3069{int(unique, 16) % 10**8}"
    conversation = f"whatsapp:{number}:{customer}"
    settings = router_settings(
        tmp_path,
        database_url,
        kafka_bootstrap,
        unique,
        router_handover_bot_accounts=[f"whatsapp:{number}"],
    )
    await start_at_topic_ends(settings)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    asks_at = sent + timedelta(seconds=40)
    messages = [
        ("w1", "وين شحنة طلبي؟", sent, False),
        ("w2", "طلبك في الطريق، يصل غداً", sent + timedelta(seconds=5), True),  # the bot
        ("w3", "أريد التحدث مع موظف من فضلك", asks_at, False),
        ("w4", "مرحبا، أنا أمل من خدمة العملاء", asks_at + timedelta(seconds=30), True),
    ]
    async with (
        running(create_router_app(settings)),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        reader = EventReader(events_in)
        for pid, text, at, outbound in messages[:2]:
            await send(
                kafka,
                conversation,
                canonical(
                    conversation, "whatsapp", number, customer, pid, text, at, outbound=outbound
                ),
            )
        rows = await eventually(
            lambda: transcript_rows(pg, conversation), lambda found: len(found) == 2
        )
        assert [(row["case_id"], row["bot_phase"]) for row in rows] == [(None, True)] * 2
        for pid, text, at, outbound in messages[2:]:
            await send(
                kafka,
                conversation,
                canonical(
                    conversation, "whatsapp", number, customer, pid, text, at, outbound=outbound
                ),
            )
        events = await reader.read_until(
            lambda got: any(e.type == ev.CASE_RESPONDED for e in got),
            keep=of_conversation(conversation),
        )
        rows = await transcript_rows(pg, conversation)

    created = next(e for e in events if e.type == ev.CASE_CREATED)
    case = created.data["case"]
    assert datetime.fromisoformat(case["opened_at"]) == asks_at
    assert case["team"] == "shipping"
    assert "bot_handover" in case["tags"]
    responded = next(e for e in events if e.type == ev.CASE_RESPONDED)
    assert responded.data["message_id"] == message_id("whatsapp", "w4")
    assert responded.data["first_response"] is True
    assert datetime.fromisoformat(responded.data["case"]["first_response_at"]) == messages[3][2]
    assert [
        (row["platform_message_id"], str(row["case_id"]), row["bot_phase"]) for row in rows
    ] == [
        ("w1", case["id"], True),
        ("w2", case["id"], True),
        ("w3", case["id"], True),
        ("w4", case["id"], False),
    ]
    handover = await pg.fetchrow(
        f"SELECT owner, reason, source_id, case_id::text FROM {SCHEMA}.handovers"
        " WHERE conversation_id = $1",
        conversation,
    )
    assert dict(handover) == {
        "owner": "human",
        "reason": "customer_asked",
        "source_id": message_id("whatsapp", "w3"),
        "case_id": case["id"],
    }


async def test_an_x_bot_accounts_marker_hands_over_and_the_case_gets_an_agent(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    brand, customer = "2975699229", str(int(unique, 16))
    conversation = f"x:{brand}:{customer}"
    settings = router_settings(
        tmp_path,
        database_url,
        kafka_bootstrap,
        unique,
        router_handover_bot_accounts=[f"x:{brand}"],
    )
    await start_at_topic_ends(settings)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    marker_at = sent + timedelta(seconds=20)
    async with (
        running(create_router_app(settings)),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS) as events_in,
    ):
        await send(
            kafka,
            conversation,
            canonical(conversation, "x", brand, customer, f"{unique}-1", "ขอเปลี่ยนที่อยู่จัดส่ง", sent),
        )
        await eventually(lambda: transcript_rows(pg, conversation), lambda found: len(found) == 1)
        # Alone in its batch: the bot's marker, the only message of it, still gives the case
        # an agent.
        await send(
            kafka,
            conversation,
            canonical(
                conversation,
                "x",
                brand,
                customer,
                f"{unique}-2",
                "I'll pass you to my colleagues #handoff",
                marker_at,
                outbound=True,
            ),
        )
        events = await EventReader(events_in).read_until(
            lambda got: any(e.type == ev.CASE_ASSIGNED for e in got),
            keep=of_conversation(conversation),
        )

    assert [e.type for e in events] == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
    case = events[1].data["case"]
    assert datetime.fromisoformat(case["opened_at"]) == marker_at
    assert case["assignee"] == "amal"
    assert case["first_response_at"] is None  # the marker is the bot's, not a response


async def test_a_handover_locks_only_the_agents_of_the_teams_its_case_can_reach(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, unique: str, pg: asyncpg.Connection
) -> None:
    """Billing is Instagram's, so an X handover's case cannot go there: it opens and gets its
    agent while billing's agents are held; it waits while shipping's (a team its transcript
    may pick) are held, then goes on."""
    await migrate(database_url, SCHEMA, MIGRATIONS_PACKAGE)
    brand = "2975699229"
    settings = router_settings(
        tmp_path, database_url, kafka_bootstrap, unique, router_handover_bot_accounts=[f"x:{brand}"]
    )
    (tmp_path / "rules.yaml").write_text(
        """
version: 1
default_team: care
teams: [care, shipping, billing]
rules:
  - id: shipping
    when: {any: [parcel]}
    then: {team: shipping}
  - id: invoices
    when: {any: [invoice], platforms: [instagram]}
    then: {team: billing}
handoff:
  bot_says: ["#handoff"]
""",
        encoding="utf-8",
    )
    (tmp_path / "agents.yaml").write_text(
        """
agents:
  - {id: amal, teams: [care, shipping], languages: [en], capacity: 50, online: true}
  - {id: bea, teams: [billing], languages: [en], capacity: 50, online: true}
""",
        encoding="utf-8",
    )
    await start_at_topic_ends(settings)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    async with (
        running(create_router_app(settings)),
        producer(kafka_bootstrap) as kafka,
        topic_reader(kafka_bootstrap, topics.CASE_EVENTS, from_end=True) as events_in,
    ):
        reader = EventReader(events_in)

        async def hand_over(customer: str, held_team: str, waits: bool) -> dict[str, Any]:
            conversation = f"x:{brand}:{customer}"
            said = canonical(conversation, "x", brand, customer, f"{customer}-1", "parcel?", sent)
            await send(kafka, conversation, said)
            await eventually(
                lambda: transcript_rows(pg, conversation), lambda found: len(found) == 1
            )
            holder = await asyncpg.connect(database_url)
            try:
                held = holder.transaction()
                await held.start()
                locked = await repository.lock_agents(holder, AgentScope.of([held_team]))
                assert locked  # the team's agent is held from here on
                marker = canonical(
                    conversation,
                    "x",
                    brand,
                    customer,
                    f"{customer}-2",
                    "#handoff",
                    sent + timedelta(seconds=20),
                    outbound=True,
                )
                await send(kafka, conversation, marker)
                if waits:
                    holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
                    blocked = await eventually(
                        lambda: pg.fetchval(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE $1 = ANY(pg_blocking_pids(pid))",
                            holder_pid,
                        ),
                        lambda count: count > 0,
                    )
                    assert blocked == 1  # the handover's batch waits for the held agent
                    await held.rollback()
                events = await reader.read_until(
                    lambda got: any(e.type == ev.CASE_ASSIGNED for e in got),
                    keep=of_conversation(conversation),
                )
                assert [e.type for e in events] == [ev.CASE_CREATED, ev.CASE_ASSIGNED]
                case: dict[str, Any] = events[1].data["case"]
                return case
            finally:
                await holder.close()

        while_billing_held = await hand_over(f"{int(unique, 16)}1", "billing", waits=False)
        after_shipping_held = await hand_over(f"{int(unique, 16)}2", "shipping", waits=True)

    for case in (while_billing_held, after_shipping_held):
        assert (case["team"], case["assignee"]) == ("shipping", "amal")
