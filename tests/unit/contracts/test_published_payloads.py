"""What the code really writes matches the committed contracts: each service writes exactly the
topics its AsyncAPI document says, with keys, headers and payloads valid under the documented
schemas, and CloudEvents types that the document lists for that payload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from aiokafka import ConsumerRecord
from casewire_common import events as ev
from casewire_common import topics
from casewire_common.events import decode_event
from casewire_common.kafka import DeadLetters, KafkaRecord
from casewire_dev.contracts import PAYLOADS, SERVICES
from casewire_dev.paths import repo_root
from casewire_ingest.adapters.memory import InMemoryDedupStore
from casewire_ingest.adapters.publisher import IngestMetrics, KafkaIngestPublisher
from casewire_ingest.domain.generic import normalize_generic
from casewire_ingest.domain.platforms import meta
from casewire_ingest.webhook_service import Rejected, WebhookService
from casewire_router.domain.batch import BatchState
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.rules import parse_rules
from casewire_router.domain.urgency import default_model
from casewire_router.message_service import event_records
from casewire_sla.adapters.alerts import alert_record
from casewire_sla.domain.clock_record import ClockRecord
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from tests.unit.router.factories import T0, message

CONTRACTS = repo_root() / "contracts"


@cache
def payload_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACTS / "schemas" / f"{name}.json").read_text())
    return schema


@cache
def asyncapi(service: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (CONTRACTS / "asyncapi" / f"{service}.yaml").read_text()
    )
    return document


def sent_topics(service: str) -> set[str]:
    document = asyncapi(service)
    channels = document["channels"]
    return {
        channels[unquote(operation["channel"]["$ref"].removeprefix("#/channels/"))]["address"]
        for operation in document["operations"].values()
        if operation["action"] == "send"
    }


def message_contract(service: str, name: str) -> dict[str, Any]:
    contract: dict[str, Any] = asyncapi(service)["components"]["messages"][name]
    return contract


def assert_valid(instance: Any, schema: dict[str, Any]) -> None:
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(instance)]
    assert errors == [], errors


def message_name(payload_name: str) -> str:
    (payload,) = [payload for payload in PAYLOADS if payload.name == payload_name]
    return payload.model.__name__


def event_types_of(payload_name: str) -> tuple[str, ...]:
    (payload,) = [payload for payload in PAYLOADS if payload.name == payload_name]
    return payload.event_types


def payload_for_event_type(event_type: str) -> str:
    (name,) = [payload.name for payload in PAYLOADS if event_type in payload.event_types]
    return name


@dataclass
class Published:
    topic: str
    key: bytes | None
    headers: dict[str, str]
    value: bytes


class RecordingBroker:
    """Stands in for FastStream's broker: remembers what would have been written."""

    def __init__(self) -> None:
        self.records: list[Published] = []

    async def publish(
        self,
        message: bytes,
        *,
        topic: str,
        key: bytes | None = None,
        headers: dict[str, str] | None = None,
        no_confirm: bool = False,
    ) -> Any:
        self.records.append(Published(topic, key, dict(headers or {}), message))
        if not no_confirm:
            return None
        written = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written

    async def send_records(self, records: Sequence[KafkaRecord]) -> None:
        """Stands in for `OrderedPublisher`: what ingest writes goes through it."""
        for record in records:
            headers = {name: value.decode() for name, value in record.headers}
            self.records.append(Published(record.topic, record.key, headers, record.value))


def received_topics(service: str) -> set[str]:
    document = asyncapi(service)
    return {
        document["channels"][unquote(operation["channel"]["$ref"].removeprefix("#/channels/"))][
            "address"
        ]
        for operation in document["operations"].values()
        if operation["action"] == "receive"
    }


def test_each_document_sends_to_the_declared_topics_and_the_dead_letters_of_what_it_reads() -> None:
    for service in SERVICES:
        dead_letters = {topics.dlq(topic) for topic in received_topics(service.name)}
        assert sent_topics(service.name) == set(service.publishes) | dead_letters
    assert received_topics("sla") == {topics.CASE_EVENTS}
    assert topics.MESSAGES in received_topics("router")


async def test_ingest_writes_raw_bodies_messages_and_dead_letters_as_documented() -> None:
    broker = RecordingBroker()
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    ingest = WebhookService(
        KafkaIngestPublisher(broker.send_records, metrics),
        InMemoryDedupStore(),
        lambda text: "en",
        metrics,
        timeout_seconds=1.0,
    )
    body = {
        "channel": "dm",
        "direction": "inbound",
        "account_id": "brand",
        "platform_message_id": "p-1",
        "conversation_id": "other:brand:cust-1",
        "author": {"id": "cust-1"},
        "text": "where is my order?",
        "sent_at": "2026-11-28T09:00:00Z",
    }
    received = datetime(2026, 11, 28, 9, 0, 1, tzinfo=UTC)
    await ingest.accept(
        source="generic",
        raw=json.dumps(body).encode(),
        received_at=received,
        normalize=normalize_generic,
    )
    with pytest.raises(Rejected):
        await ingest.accept(
            source="generic",
            raw=b'{"channel": "fax"}',
            received_at=received,
            normalize=normalize_generic,
        )

    by_topic = {record.topic: record for record in broker.records}
    assert set(by_topic) == sent_topics("ingest")

    raw = by_topic[topics.RAW]
    assert_valid(raw.headers, message_contract("ingest", "RawWebhookBody")["headers"])
    assert json.loads(raw.value) == body

    canonical = by_topic[topics.MESSAGES]
    assert_valid(json.loads(canonical.value), payload_schema("canonical-message"))
    assert_valid(canonical.headers, message_contract("ingest", "CanonicalMessage")["headers"])
    assert canonical.key == json.loads(canonical.value)["conversation_id"].encode()

    dead = by_topic[topics.dlq(topics.RAW)]
    assert_valid(dead.headers, message_contract("ingest", f"DeadLetter.{topics.RAW}")["headers"])
    assert dead.value == b'{"channel": "fax"}'
    reason = dead.headers[topics.DLQ_REASON_HEADER]
    labels = {"component": "ingest", "topic": topics.RAW, "reason": reason}
    assert registry.get_sample_value("casewire_dead_letters_total", labels) == 1


async def test_ingest_writes_handover_records_and_marked_messages_as_documented() -> None:
    """Meta's standby channel and handover protocol: a chatbot's echo read on standby and a
    pass of thread control, each valid under its documented message (told apart by the
    `casewire-record` header)."""
    broker = RecordingBroker()
    metrics = IngestMetrics(CollectorRegistry())
    ingest = WebhookService(
        KafkaIngestPublisher(broker.send_records, metrics),
        InMemoryDedupStore(),
        lambda text: "en",
        metrics,
        timeout_seconds=1.0,
    )
    page, customer = "104569845012345", "6582312765432101"
    body = {
        "object": "page",
        "entry": [
            {
                "id": page,
                "time": 1_772_445_600_100,
                "standby": [
                    {
                        "sender": {"id": page},
                        "recipient": {"id": customer},
                        "timestamp": 1_772_445_590_000,
                        "message": {
                            "mid": "m_1",
                            "text": "Bot here",
                            "is_echo": True,
                            "app_id": 618371462290011,
                        },
                    }
                ],
                "messaging": [
                    {
                        "sender": {"id": customer},
                        "recipient": {"id": page},
                        "timestamp": 1_772_445_600_000,
                        "pass_thread_control": {
                            "previous_owner_app_id": "618371462290011",
                            "new_owner_app_id": "990011223344556",
                            "metadata": "asked for a person",
                        },
                    }
                ],
            }
        ],
    }
    await ingest.accept(
        source="meta",
        raw=json.dumps(body).encode(),
        received_at=datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC),
        normalize=meta.normalize_page,
    )

    written = [record for record in broker.records if record.topic == topics.MESSAGES]
    assert len(written) == 2
    for record in written:
        thread_control = record.headers.get(topics.RECORD_HEADER) == "thread_control"
        name = "thread-control" if thread_control else "canonical-message"
        assert_valid(json.loads(record.value), payload_schema(name))
        assert_valid(record.headers, message_contract("ingest", message_name(name))["headers"])
        assert record.key == json.loads(record.value)["conversation_id"].encode()
    assert [record.headers.get(topics.STANDBY_HEADER) for record in written] == ["true", None]


async def test_router_case_and_incident_events_are_cloudevents_as_documented() -> None:
    router = CaseRouter(
        parse_rules("version: 1\ndefault_team: care\nteams: [care]\nrules: []\n"), default_model()
    )
    ids = iter(f"id-{n}" for n in range(100))
    # A burst of outage reports opens an incident; a brand reply answers the first case.
    burst = [
        message(
            "your app is down, outage everywhere!",
            pid=f"in-{n}",
            conversation=f"x:brand:root{n}:cust{n}",
            author=f"cust{n}",
            minutes=n,
        )
        for n in range(6)
    ]
    reply = message(
        "so sorry, we are on it",
        pid="out-1",
        direction="outbound",
        author="brand",
        conversation="x:brand:root0:cust0",
        minutes=7,
    )
    outcome = router.route_batch([*burst, reply], BatchState(), new_id=lambda: next(ids), now=T0)
    records = await event_records(outcome, T0)
    assert {topic for topic, _ in records} == {topics.CASE_EVENTS}
    assert topics.CASE_EVENTS in sent_topics("router")
    seen_types = set()
    for _, record in records:
        event = decode_event(record.headers, record.value, record.key.encode())
        seen_types.add(event.type)
        name = payload_for_event_type(event.type)
        assert_valid(event.data, payload_schema(name))
        contract = message_contract("router", message_name(name))
        assert_valid({k: v.decode() for k, v in record.headers.items()}, contract["headers"])
        subject = event.data["case"]["id"] if "case" in event.data else event.data["incident_id"]
        assert record.key == event.subject == subject
    assert {ev.CASE_CREATED, ev.CASE_RESPONDED, ev.INCIDENT_OPENED} <= seen_types


async def test_sla_alerts_of_every_documented_type_match_the_schema_and_headers() -> None:
    started = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    clock = ClockRecord(
        id=1,
        case_id="case-1",
        clock="first_response",
        policy_id="urgent",
        calendar_id="always",
        target_seconds=900,
        started_at=started,
        due_at=started + timedelta(seconds=900),
        team="care",
        priority="P1",
    )
    contract = message_contract("sla", "SlaAlertData")
    documented = contract["headers"]["properties"]["ce_type"]["enum"]
    assert documented == list(event_types_of("sla-alert-data"))
    for event_type in documented:
        topic, record = alert_record(clock, event_type, time=started, fraction=0.5)
        assert topic in sent_topics("sla")
        event = decode_event(record.headers, record.value, record.key.encode())
        assert_valid(event.data, payload_schema("sla-alert-data"))
        assert_valid({k: v.decode() for k, v in record.headers.items()}, contract["headers"])
        assert record.key == "case-1"


async def test_dead_letters_keep_the_record_and_carry_the_documented_reason_headers() -> None:
    broker = RecordingBroker()
    dead_letters = DeadLetters(broker, CollectorRegistry(), "router")  # type: ignore[arg-type]
    original = ConsumerRecord(
        topic=topics.MESSAGES,
        partition=3,
        offset=42,
        timestamp=0,
        timestamp_type=0,
        key=b"x:brand:cust",
        value=b"not json",
        checksum=None,
        serialized_key_size=12,
        serialized_value_size=8,
        headers=[("content-type", b"application/json")],
    )
    await dead_letters.send(original, "invalid_message", "Expecting value")
    (record,) = broker.records
    assert record.topic in sent_topics("router")
    assert_valid(
        record.headers, message_contract("router", f"DeadLetter.{topics.MESSAGES}")["headers"]
    )
    assert (record.key, record.value) == (original.key, original.value)
    assert record.headers[topics.DLQ_SOURCE_HEADER] == f"{topics.MESSAGES}/3/42"
