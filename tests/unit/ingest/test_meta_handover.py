"""Meta's handover protocol in ingest: `messaging_handovers` events become thread-control
records, `standby` messages are marked, echoes keep the app that sent them.

The bodies are built from Meta's documented shapes (the `messaging_handovers` and `standby`
webhook references: sender = the customer's PSID, recipient = the Page, `timestamp` in ms;
`pass_thread_control {previous_owner_app_id, new_owner_app_id, metadata}`, `take_thread_control
{previous_owner_app_id, new_owner_app_id, metadata}` (older pages: without `new_owner_app_id`),
`request_thread_control {requested_owner_app_id, metadata}`; an idle thread's previous owner is
null; echoes carry `app_id`; the Page inbox is app 263902037430900), not from the normalizer's
output. The shared fixtures (restfb, tock) are checked in test_meta_normalizer.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from casewire_common import topics
from casewire_common.kafka import KafkaRecord
from casewire_common.messages import message_id
from casewire_common.metrics import new_registry
from casewire_common.thread_control import PAGE_INBOX_APP_ID, ThreadControl
from casewire_ingest.adapters.memory import InMemoryDedupStore
from casewire_ingest.adapters.publisher import IngestMetrics, KafkaIngestPublisher
from casewire_ingest.domain.normalized import Normalized
from casewire_ingest.domain.platforms import meta, normalize
from casewire_ingest.webhook_service import Rejected, WebhookService

from tests.unit.ingest.fakes import RecordingPublisher

RECEIVED_AT = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)
PAGE = "104569845012345"
PSID = "6582312765432101"
BOT_APP = "618371462290011"  # the chatbot (the Primary Receiver)
CASEWIRE_APP = "990011223344556"
HANDED_OVER_MS = 1_772_445_600_000  # 2026-03-02T10:00:00Z
HANDED_OVER = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def page_body(*events: dict[str, Any], channel: str = "messaging", obj: str = "page") -> bytes:
    entry = {"id": PAGE, "time": HANDED_OVER_MS + 100, channel: list(events)}
    return json.dumps({"object": obj, "entry": [entry]}).encode()


def handover(kind: str, at_ms: int = HANDED_OVER_MS, **fields: Any) -> dict[str, Any]:
    return {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": at_ms,
        kind: fields,
    }


def customer_message(mid: str, text: str, at_ms: int) -> dict[str, Any]:
    return {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": at_ms,
        "message": {"mid": mid, "text": text},
    }


def echo(mid: str, text: str, at_ms: int, app_id: int | str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text, "is_echo": True}
    if app_id is not None:
        message["app_id"] = app_id
    return {
        "sender": {"id": PAGE},
        "recipient": {"id": PSID},
        "timestamp": at_ms,
        "message": message,
    }


def read(raw: bytes) -> Normalized:
    return normalize(json.loads(raw), RECEIVED_AT)


def test_a_pass_to_casewire_is_a_thread_control_record_in_the_customers_dm_conversation() -> None:
    body = page_body(
        handover(
            "pass_thread_control",
            previous_owner_app_id=BOT_APP,
            new_owner_app_id=CASEWIRE_APP,
            metadata="customer asked for a person",
        )
    )

    result = read(body)

    assert (result.messages, dict(result.ignored), result.rejected) == ([], {}, [])
    (control,) = result.thread_controls
    assert control.model_dump() == {
        "id": control.id,
        "platform": "facebook",
        "action": "pass",
        "account_id": PAGE,
        "conversation_id": f"facebook:{PAGE}:{PSID}",
        "new_owner_app_id": CASEWIRE_APP,
        "previous_owner_app_id": BOT_APP,
        "requested_owner_app_id": None,
        "metadata": "customer asked for a person",
        "sent_at": HANDED_OVER,
        "received_at": RECEIVED_AT,
    }
    # The same event redelivered is the same record; another handover is another one.
    assert read(body).thread_controls[0].id == control.id
    later = read(
        page_body(handover("pass_thread_control", HANDED_OVER_MS + 1, new_owner_app_id=BOT_APP))
    )
    assert later.thread_controls[0].id != control.id


def test_a_pass_from_an_idle_thread_to_the_page_inbox_has_no_previous_owner() -> None:
    body = page_body(
        handover(
            "pass_thread_control", previous_owner_app_id=None, new_owner_app_id=PAGE_INBOX_APP_ID
        )
    )

    (control,) = read(body).thread_controls

    assert (control.new_owner_app_id, control.previous_owner_app_id) == (PAGE_INBOX_APP_ID, None)
    assert control.metadata is None


@pytest.mark.parametrize(
    ("fields", "new_owner"),
    [
        ({"previous_owner_app_id": CASEWIRE_APP, "new_owner_app_id": BOT_APP}, BOT_APP),
        # The older reference: the app that lost control is told only who it was.
        ({"previous_owner_app_id": CASEWIRE_APP}, None),
        # Numbers where the reference shows `<new_app_id>` unquoted.
        ({"previous_owner_app_id": int(CASEWIRE_APP), "new_owner_app_id": int(BOT_APP)}, BOT_APP),
    ],
)
def test_a_take_says_who_lost_control_and_who_took_it_when_meta_says(
    fields: dict[str, Any], new_owner: str | None
) -> None:
    (control,) = read(page_body(handover("take_thread_control", **fields))).thread_controls

    assert control.action == "take"
    assert control.previous_owner_app_id == CASEWIRE_APP
    assert control.new_owner_app_id == new_owner


def test_a_request_names_the_app_asking_for_control() -> None:
    body = page_body(
        handover(
            "request_thread_control",
            requested_owner_app_id=PAGE_INBOX_APP_ID,
            metadata="Ένας συνάδελφος θέλει να απαντήσει",
        )
    )

    (control,) = read(body).thread_controls

    assert (control.action, control.requested_owner_app_id) == ("request", PAGE_INBOX_APP_ID)
    assert control.new_owner_app_id is None
    assert control.metadata == "Ένας συνάδελφος θέλει να απαντήσει"


def test_instagram_handovers_and_the_field_value_form_are_read_alike() -> None:
    instagram = page_body(
        handover("pass_thread_control", new_owner_app_id=CASEWIRE_APP), obj="instagram"
    )
    field_value = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": PAGE,
                    "time": HANDED_OVER_MS,
                    "changes": [
                        {
                            "field": "messaging_handovers",
                            "value": handover("pass_thread_control", new_owner_app_id=CASEWIRE_APP),
                        },
                        {
                            "field": "standby",
                            "value": customer_message("m_fv", "ยังอยู่ไหม", HANDED_OVER_MS - 1),
                        },
                    ],
                }
            ],
        }
    ).encode()

    (on_instagram,) = read(instagram).thread_controls
    assert (on_instagram.platform, on_instagram.conversation_id) == (
        "instagram",
        f"instagram:{PAGE}:{PSID}",
    )
    result = read(field_value)
    assert [c.new_owner_app_id for c in result.thread_controls] == [CASEWIRE_APP]
    assert [m.delivery_key for m in result.messages] == list(result.standby)


def test_standby_messages_are_marked_and_echoes_keep_the_app_that_sent_them() -> None:
    body = page_body(
        customer_message("m_1", "أريد التحدث إلى موظف", HANDED_OVER_MS - 60_000),
        echo("m_2", "Let me find you a person", HANDED_OVER_MS - 30_000, int(BOT_APP)),
        echo("m_3", "Hello from the inbox", HANDED_OVER_MS - 20_000, PAGE_INBOX_APP_ID),
        echo("m_4", "no app named", HANDED_OVER_MS - 10_000, None),
        # Meta sends standby postbacks without their payload: nothing to read.
        {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1, "postback": {}},
        channel="standby",
    )

    result = read(body)

    by_mid = {m.platform_message_id: m for m in result.messages}
    assert list(by_mid) == ["m_1", "m_2", "m_3", "m_4"]
    assert result.standby == {m.delivery_key for m in result.messages}
    assert {by_mid[mid].direction for mid in ("m_2", "m_3", "m_4")} == {"outbound"}
    assert result.sending_apps == {
        by_mid["m_2"].delivery_key: BOT_APP,
        by_mid["m_3"].delivery_key: PAGE_INBOX_APP_ID,
    }
    assert dict(result.ignored) == {"empty_postback": 1}


def test_messages_on_the_messaging_channel_are_not_marked_standby() -> None:
    result = read(page_body(customer_message("m_1", "hello", HANDED_OVER_MS)))

    assert len(result.messages) == 1
    assert result.standby == set()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (handover("pass_thread_control", metadata="no new owner"), "missing_field"),
        (handover("request_thread_control", metadata="no requester"), "missing_field"),
        (handover("pass_thread_control", new_owner_app_id="NEW_OWNER_APP_ID"), "invalid_id"),
        (
            {
                **handover("pass_thread_control", new_owner_app_id=BOT_APP),
                "sender": {"id": "<PSID>"},
            },
            "invalid_id",
        ),
        (
            {k: v for k, v in handover("take_thread_control").items() if k != "timestamp"},
            "missing_field",
        ),
        (handover("pass_thread_control", new_owner_app_id=["not", "an", "id"]), "invalid_field"),
    ],
)
def test_a_handover_that_cannot_be_read_costs_only_itself(
    event: dict[str, Any], reason: str
) -> None:
    good = customer_message("m_ok", "Where is my order?", HANDED_OVER_MS)

    result = read(page_body(event, good))

    assert [(item.where, item.reason) for item in result.rejected] == [
        ("entry[0].messaging[0]", reason)
    ]
    assert [m.platform_message_id for m in result.messages] == ["m_ok"]
    assert result.thread_controls == []


def test_long_metadata_is_cut_to_metas_limit() -> None:
    body = page_body(handover("pass_thread_control", new_owner_app_id=BOT_APP, metadata="x" * 5000))

    (control,) = read(body).thread_controls

    assert control.metadata == "x" * 1000


async def test_a_handover_time_in_the_future_is_clamped_like_a_message_time() -> None:
    metrics = IngestMetrics(new_registry())
    publisher = RecordingPublisher()
    ingest = WebhookService(
        publisher, InMemoryDedupStore(), lambda text: None, metrics, timeout_seconds=1
    )
    future_ms = int(RECEIVED_AT.timestamp() * 1000) + 3_600_000
    body = page_body(handover("pass_thread_control", future_ms, new_owner_app_id=CASEWIRE_APP))

    await ingest.accept(
        source="meta", raw=body, received_at=RECEIVED_AT, normalize=meta.normalize_page
    )

    (control,) = publisher.thread_controls
    assert control.sent_at == RECEIVED_AT


async def test_the_service_publishes_each_handover_once_and_checks_its_account() -> None:
    metrics = IngestMetrics(new_registry())
    publisher = RecordingPublisher()
    ingest = WebhookService(
        publisher, InMemoryDedupStore(), lambda text: None, metrics, timeout_seconds=1
    )
    body = page_body(
        customer_message("m_1", "human please", HANDED_OVER_MS - 1000),
        handover("pass_thread_control", new_owner_app_id=CASEWIRE_APP),
        channel="messaging",
    )

    first = await ingest.accept(
        source="meta", raw=body, received_at=RECEIVED_AT, normalize=meta.normalize_page
    )
    again = await ingest.accept(
        source="meta", raw=body, received_at=RECEIVED_AT, normalize=meta.normalize_page
    )

    assert len(first.thread_controls) == 1
    assert first.published == [message_id("facebook", "m_1")]
    assert (again.thread_controls, again.published, again.duplicates) == ([], [], 2)
    assert [c.id for c in publisher.thread_controls] == first.thread_controls
    with pytest.raises(Rejected) as refused:
        await ingest.accept(
            source="meta",
            raw=page_body(handover("pass_thread_control", new_owner_app_id=BOT_APP)),
            received_at=RECEIVED_AT,
            normalize=meta.normalize_page,
            accounts={"111"},
        )
    assert refused.value.reason == "unknown_account"


async def test_the_kafka_publisher_writes_the_handover_headers_in_the_conversations_key() -> None:
    written: list[KafkaRecord] = []

    async def send(records: Any) -> None:
        written.extend(records)

    metrics = IngestMetrics(new_registry())
    normalized = read(
        page_body(
            customer_message("m_1", "hi", HANDED_OVER_MS - 2000),
            echo("m_2", "bot here", HANDED_OVER_MS - 1000, BOT_APP),
            channel="standby",
        )
    )
    (control,) = read(
        page_body(handover("pass_thread_control", new_owner_app_id=CASEWIRE_APP))
    ).thread_controls

    await KafkaIngestPublisher(send, metrics).publish_messages(
        normalized.messages,
        standby=normalized.standby,
        sending_apps=normalized.sending_apps,
        thread_controls=[control],
    )

    assert {record.topic for record in written} == {topics.MESSAGES}
    assert {record.key for record in written} == {f"facebook:{PAGE}:{PSID}".encode()}
    headers = [dict(record.headers) for record in written]
    assert headers[0] == {"content-type": b"application/json", topics.STANDBY_HEADER: b"true"}
    assert headers[1][topics.APP_ID_HEADER] == BOT_APP.encode()
    assert headers[2] == {
        "content-type": b"application/json",
        topics.RECORD_HEADER: b"thread_control",
    }
    assert ThreadControl.model_validate_json(written[2].value) == control
    assert metrics.thread_controls.labels("facebook", "pass")._value.get() == 1
