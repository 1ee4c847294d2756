"""Meta normalization: Messenger, Instagram and Page feed webhooks.

Every payload in the shared `payloads/{messenger,instagram,facebook_page}/` folders has its
expected outcome in meta_fixture_outcomes.OUTCOMES (every field of each published message,
what was acknowledged and not published, which items are rejected, or why the body is
rejected); a test keeps that table in step with the folders. Hand-written bodies below cover
what the fixtures do not: batching order, bad items beside good ones, big ids, scripts,
entities, replies, bad envelopes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from casewire_ingest.domain.normalized import NormalizationError, Normalized
from casewire_ingest.domain.platforms import meta

from tests.unit.ingest.meta_fixture_outcomes import FOLDERS, OUTCOMES, RECEIVED_AT

Normalizer = Callable[[dict[str, Any], datetime], Normalized]


def normalizer_for(name: str) -> Normalizer:
    return meta.normalize_instagram if name.startswith("instagram/") else meta.normalize_page


def test_every_meta_fixture_has_an_expected_outcome(shared_data: Path) -> None:
    on_disk = {
        f"{folder}/{path.name}"
        for folder in FOLDERS
        for path in (shared_data / "payloads" / folder).iterdir()
        if path.is_file()
    }
    assert on_disk == set(OUTCOMES)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_meta_fixture(shared_data: Path, name: str) -> None:
    body = json.loads((shared_data / "payloads" / name).read_text(encoding="utf-8"))
    expected = OUTCOMES[name]
    normalize = normalizer_for(name)
    if expected.rejected is not None:
        with pytest.raises(NormalizationError) as caught:
            normalize(body, RECEIVED_AT)
        assert caught.value.reason == expected.rejected
        return
    result = normalize(body, RECEIVED_AT)
    assert [message.model_dump() for message in result.messages] == list(expected.messages)
    assert dict(result.ignored) == expected.ignored
    assert [(item.where, item.reason) for item in result.rejected] == list(expected.rejected_items)
    by_key = {message.delivery_key: message.platform_message_id for message in result.messages}
    assert {by_key[key] for key in result.standby} == expected.standby
    assert {by_key[key]: app for key, app in result.sending_apps.items()} == expected.sending_apps
    assert result.thread_controls == []  # the fixtures' handover events name no real ids


# --- Hand-written bodies ----------------------------------------------------------------------

PAGE = "1000000000001"
CUSTOMER = "2000000000002"
SENT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def page_body(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": list(entries)}


def messaging_entry(*events: dict[str, Any], page: str = PAGE, **extra: Any) -> dict[str, Any]:
    return {"id": page, "time": SENT_MS, "messaging": list(events), **extra}


def customer_says(text: str, mid: str = "m_1", **message: Any) -> dict[str, Any]:
    return {
        "sender": {"id": CUSTOMER},
        "recipient": {"id": PAGE},
        "timestamp": SENT_MS,
        "message": {"mid": mid, "text": text, **message},
    }


def feed_entry(value: dict[str, Any], field: str = "feed") -> dict[str, Any]:
    return {"id": PAGE, "time": 1_767_225_600, "changes": [{"field": field, "value": value}]}


def visitor_comment(**value: Any) -> dict[str, Any]:
    return {
        "item": "comment",
        "verb": "add",
        "post_id": f"{PAGE}_300",
        "parent_id": f"{PAGE}_300",
        "comment_id": "300_400",
        "from": {"id": CUSTOMER, "name": "Nikos"},
        "created_time": 1_767_225_660,
        "message": "Where is my order?",
        **value,
    }


def test_every_entry_messaging_and_standby_item_is_read_in_order() -> None:
    body = page_body(
        messaging_entry(
            customer_says("first", mid="m_1"),
            {"sender": {"id": CUSTOMER}, "recipient": {"id": PAGE}, "read": {"watermark": 1}},
            customer_says("second", mid="m_2"),
            standby=[
                {
                    "sender": {"id": PAGE},
                    "recipient": {"id": CUSTOMER},
                    "timestamp": SENT_MS + 1000,
                    "message": {"mid": "m_3", "text": "agent reply", "is_echo": True},
                }
            ],
        ),
        feed_entry(visitor_comment()),
    )

    result = meta.normalize_page(body, RECEIVED_AT)

    assert [(m.platform_message_id, m.channel, m.direction) for m in result.messages] == [
        ("m_1", "dm", "inbound"),
        ("m_2", "dm", "inbound"),
        ("m_3", "dm", "outbound"),
        ("300_400", "comment", "inbound"),
    ]
    assert dict(result.ignored) == {"read": 1}
    # The customer's messages and the echo from the Page's inbox share one conversation.
    assert {m.conversation_id for m in result.messages[:3]} == {f"facebook:{PAGE}:{CUSTOMER}"}
    assert result.messages[2].author.id == PAGE
    assert result.messages[2].sent_at == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_ids_above_2_pow_53_sent_as_json_integers_stay_exact() -> None:
    raw = (
        '{"object": "page", "entry": [{"id": 9007199254740993, "time": 1767225600000,'
        ' "messaging": [{"sender": {"id": 12345678901234567890123},'
        ' "recipient": {"id": 9007199254740993}, "timestamp": 1767225600000,'
        ' "message": {"mid": "m_big", "text": "hi"}}]},'
        ' {"id": 9007199254740993, "time": 1767225600, "changes": [{"field": "ratings",'
        ' "value": {"item": "rating", "verb": "add", "open_graph_story_id": 9007199254740995,'
        ' "reviewer_id": 9007199254740997, "review_text": "Great"}}]}]}'
    )

    dm, review = meta.normalize_page(json.loads(raw), RECEIVED_AT).messages

    assert dm.account_id == "9007199254740993"
    assert dm.conversation_id == "facebook:9007199254740993:12345678901234567890123"
    assert review.platform_message_id == "9007199254740995"
    assert review.author.id == "9007199254740997"


def test_arabic_text_with_bidi_marks_is_kept_exactly() -> None:
    text = "\u200fطلبي رقم \u202a#4521\u202c لم يصل بعد!\u200f"

    (message,) = meta.normalize_page(
        page_body(messaging_entry(customer_says(text))), RECEIVED_AT
    ).messages
    assert message.text == text


TYPED = "see https://shop.example.com/track?id=5&region=eu&copy=1 AT&amp;T &lt;3"


@pytest.mark.parametrize(
    "body",
    [
        page_body(messaging_entry(customer_says(TYPED))),
        page_body(feed_entry(visitor_comment(message=TYPED))),
    ],
    ids=["dm", "comment"],
)
def test_text_is_kept_as_typed(body: dict[str, Any]) -> None:
    """Meta does not HTML-escape text: a pasted link's `&region=` (which an HTML unescape
    turns into `®ion=`) and a literal `&lt;3` stay exactly as the customer typed them."""
    (message,) = meta.normalize_page(body, RECEIVED_AT).messages
    assert message.text == TYPED


def test_a_visitor_reply_to_a_comment_is_a_reply_in_the_posts_thread() -> None:
    body = page_body(feed_entry(visitor_comment(parent_id="300_399")))

    (reply,) = meta.normalize_page(body, RECEIVED_AT).messages

    assert (reply.channel, reply.visibility, reply.direction) == ("reply", "public", "inbound")
    assert reply.in_reply_to == "300_399"
    assert reply.conversation_id == f"facebook:{PAGE}:{PAGE}_300:{CUSTOMER}"
    assert reply.author.model_dump() == {
        "id": CUSTOMER,
        "handle": None,
        "name": "Nikos",
        "followers": None,
        "verified": None,
    }
    assert reply.sent_at == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def test_the_pages_answer_to_a_comment_is_outbound_and_names_the_comment_it_answers() -> None:
    body = page_body(
        feed_entry(
            visitor_comment(
                parent_id="300_400",
                comment_id="300_401",
                **{"from": {"id": PAGE, "name": "Brand"}},
            )
        )
    )

    (answer,) = meta.normalize_page(body, RECEIVED_AT).messages

    assert (answer.channel, answer.direction, answer.author.id) == ("reply", "outbound", PAGE)
    assert answer.in_reply_to == "300_400"
    assert answer.conversation_id == f"facebook:{PAGE}:{PAGE}_300:{PAGE}"


def test_an_instagram_comment_by_the_account_itself_is_outbound() -> None:
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": "17841400000000001",
                "time": 1_767_225_600,
                "changes": [
                    {
                        "field": "comments",
                        "value": {
                            "id": "18000000000000002",
                            "text": "We have sent you a DM",
                            "from": {"id": "17841400000000001", "username": "brand"},
                            "media": {"id": "18000000000000001"},
                        },
                    }
                ],
            }
        ],
    }

    (message,) = meta.normalize_instagram(body, RECEIVED_AT).messages

    assert (message.channel, message.direction) == ("comment", "outbound")
    assert message.author.handle == "brand"
    assert message.in_reply_to == "18000000000000001"
    assert message.conversation_id == (
        "instagram:17841400000000001:18000000000000001:17841400000000001"
    )


def test_a_postback_with_a_mid_is_identified_by_it() -> None:
    event = {
        "sender": {"id": CUSTOMER},
        "recipient": {"id": PAGE},
        "timestamp": SENT_MS,
        "postback": {"mid": "m_postback", "title": "Talk to an agent", "payload": "AGENT"},
    }

    (message,) = meta.normalize_page(page_body(messaging_entry(event)), RECEIVED_AT).messages

    assert (message.platform_message_id, message.text) == ("m_postback", "Talk to an agent")


@pytest.mark.parametrize("instagram", [False, True], ids=["page", "instagram"])
def test_messaging_events_in_the_field_value_form_are_read_like_messaging_ones(
    instagram: bool,
) -> None:
    """Meta's App Dashboard test button (and some subscriptions) send messaging events as
    `changes[]` with `field: messages|messaging_postbacks|...`, the timestamp in seconds as
    a string."""
    seconds = str(SENT_MS // 1000)
    message = customer_says("hello via changes", mid="m_fv1") | {"timestamp": seconds}
    postback = {
        "sender": {"id": CUSTOMER},
        "recipient": {"id": PAGE},
        "timestamp": seconds,
        "postback": {"mid": "m_fv2", "title": "Get Started", "payload": "GS"},
    }
    reaction = {
        "sender": {"id": CUSTOMER},
        "recipient": {"id": PAGE},
        "timestamp": seconds,
        "reaction": {"mid": "m_fv1", "action": "react", "reaction": "love"},
    }
    entry = {
        "id": PAGE,
        "time": SENT_MS // 1000,
        "changes": [
            {"field": "messages", "value": message},
            {"field": "messaging_postbacks", "value": postback},
            {"field": "message_reactions", "value": reaction},
        ],
    }
    body = {"object": "instagram" if instagram else "page", "entry": [entry]}
    normalize = meta.normalize_instagram if instagram else meta.normalize_page

    result = normalize(body, RECEIVED_AT)

    platform = "instagram" if instagram else "facebook"
    sent_at = datetime(2026, 1, 1, tzinfo=UTC)
    assert [
        (m.platform_message_id, m.channel, m.direction, m.text, m.conversation_id, m.sent_at)
        for m in result.messages
    ] == [
        ("m_fv1", "dm", "inbound", "hello via changes", f"{platform}:{PAGE}:{CUSTOMER}", sent_at),
        ("m_fv2", "dm", "inbound", "Get Started", f"{platform}:{PAGE}:{CUSTOMER}", sent_at),
    ]
    assert dict(result.ignored) == {"reaction": 1}


def test_a_star_only_rating_is_acknowledged_not_published() -> None:
    value = {"item": "rating", "verb": "add", "open_graph_story_id": "77", "reviewer_id": "88"}

    result = meta.normalize_page(page_body(feed_entry(value, field="ratings")), RECEIVED_AT)

    assert (result.messages, dict(result.ignored)) == ([], {"rating_without_text": 1})


def test_odd_non_message_events_do_not_cost_the_message_beside_them() -> None:
    body = page_body(
        messaging_entry(
            {"sender": {"id": CUSTOMER}, "recipient": {"id": PAGE}, "timestamp": "asdf", "x": 1},
            {"recipient": {"id": PAGE}, "policy-enforcement": {"action": "block"}},
            customer_says("still here"),
        )
    )

    result = meta.normalize_page(body, RECEIVED_AT)

    assert [message.text for message in result.messages] == ["still here"]
    assert dict(result.ignored) == {"unknown": 1, "policy_enforcement": 1}


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in mapping.items() if name != key}


HELLO = customer_says("hello")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"object": "instagram", "entry": [messaging_entry(HELLO)]}, "wrong_object"),
        ({"object": "page"}, "no_entries"),
        ({"object": "page", "entry": {"id": PAGE}}, "invalid_field"),
        ({"object": "page", "entry": ["not an object"]}, "invalid_field"),
        (page_body(without(messaging_entry(HELLO), "id")), "missing_field"),
        (page_body(messaging_entry(HELLO, page="PAGE_ID")), "invalid_id"),
        (page_body({"id": PAGE, "messaging": {"message": {}}}), "invalid_field"),
    ],
    ids=[
        "instagram-body-to-page",
        "no-entry",
        "entry-not-a-list",
        "entry-not-an-object",
        "entry-without-id",
        "placeholder-page-id",
        "messaging-not-a-list",
    ],
)
def test_a_broken_envelope_is_rejected_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        meta.normalize_page(body, RECEIVED_AT)
    assert caught.value.reason == reason


def comment_change(**value: Any) -> dict[str, Any]:
    return {"field": "feed", "value": visitor_comment(**value)}


@pytest.mark.parametrize(
    ("key", "item", "reason"),
    [
        ("messaging", "not an event", "invalid_field"),
        ("messaging", without(HELLO, "sender"), "missing_field"),
        ("messaging", HELLO | {"sender": {"user_ref": "abc123"}}, "missing_field"),
        ("messaging", HELLO | {"recipient": {"user_ref": "x"}}, "missing_field"),
        ("messaging", HELLO | {"message": {"text": "no mid"}}, "missing_field"),
        ("messaging", HELLO | {"message": "hello"}, "invalid_field"),
        ("messaging", without(HELLO, "timestamp"), "missing_field"),
        ("messaging", HELLO | {"timestamp": "asdf"}, "invalid_timestamp"),
        ("messaging", HELLO | {"timestamp": -1459991487970}, "impossible_timestamp"),
        ("messaging", HELLO | {"timestamp": 10**20}, "impossible_timestamp"),
        ("standby", HELLO | {"sender": {"id": "me:you"}}, "invalid_id"),
        ("changes", comment_change(created_time="asdf"), "invalid_timestamp"),
        (
            "changes",
            {"field": "feed", "value": without(visitor_comment(), "post_id")},
            "missing_field",
        ),
        ("changes", comment_change(post_id="1:2"), "invalid_id"),
        ("changes", comment_change(**{"from": {"id": "me:you"}}), "invalid_id"),
        (
            "changes",
            comment_change(**{"from": {"id": CUSTOMER, "name": "n" * 600}}),
            "invalid_message",
        ),
    ],
    ids=[
        "event-not-an-object",
        "message-without-sender",
        "chat-plugin-guest",
        "message-without-recipient-id",
        "message-without-mid",
        "message-not-an-object",
        "message-without-timestamp",
        "unreadable-timestamp",
        "negative-timestamp",
        "timestamp-beyond-9999",
        "colon-in-standby-sender-id",
        "unreadable-created-time",
        "comment-without-post",
        "colon-in-post-id",
        "colon-in-author-id",
        "over-long-author-name",
    ],
)
def test_an_item_that_cannot_be_read_is_rejected_alone_with_its_place(
    key: str, item: Any, reason: str
) -> None:
    """Meta batches the events of many customers: a bad one must not cost the good one."""
    entry = messaging_entry(customer_says("my order is late", mid="m_good"))
    entry[key] = [*entry.get(key, []), item]
    where = f"entry[0].{key}[{len(entry[key]) - 1}]"

    result = meta.normalize_page(page_body(entry), RECEIVED_AT)

    assert [message.platform_message_id for message in result.messages] == ["m_good"]
    [rejection] = result.rejected
    assert (rejection.where, rejection.reason) == (where, reason)
    assert rejection.detail.startswith(where)


def test_a_chat_plugin_guest_beside_a_customer_costs_only_the_guests_message() -> None:
    """The reviewer's `m_guest_batch.json`: a guest has only `sender.user_ref`."""
    guest = customer_says("guest hi", mid="m_6") | {"sender": {"user_ref": "abc123"}}
    body = page_body(messaging_entry(customer_says("my order is late", mid="m_5"), guest))

    result = meta.normalize_page(body, RECEIVED_AT)

    assert [(m.platform_message_id, m.text) for m in result.messages] == [
        ("m_5", "my order is late")
    ]
    assert [(r.where, r.reason, r.detail) for r in result.rejected] == [
        (
            "entry[0].messaging[1]",
            "missing_field",
            "entry[0].messaging[1].sender.id is missing",
        )
    ]


def test_an_attachment_url_too_long_to_keep_is_dropped_and_the_message_kept() -> None:
    body = page_body(
        messaging_entry(
            HELLO
            | {
                "message": {
                    "mid": "m_1",
                    "attachments": [{"type": "image", "payload": {"url": "u" * 5000}}],
                }
            }
        )
    )
    [message] = meta.normalize_page(body, RECEIVED_AT).messages
    assert [(a.type, a.url) for a in message.attachments] == [("image", None)]


def test_a_page_body_is_not_an_instagram_body() -> None:
    with pytest.raises(NormalizationError) as caught:
        meta.normalize_instagram(page_body(messaging_entry(HELLO)), RECEIVED_AT)
    assert caught.value.reason == "wrong_object"


def test_an_instagram_comment_without_its_media_costs_only_itself() -> None:
    """The reviewer's `ig_batch_reject.json`: two comments, the second without `media`."""

    def comment(comment_id: str, author: str, text: str) -> dict[str, Any]:
        value = {"id": comment_id, "text": text, "from": {"id": author, "username": "cust"}}
        return {"field": "comments", "value": value}

    good = comment("18000000000000991", "5555", "my package never arrived")
    good["value"]["media"] = {"id": "18000000000000777"}
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": "17841400000000001",
                "time": 1_767_225_600,
                "changes": [good, comment("18000000000000992", "5556", "same here")],
            }
        ],
    }

    result = meta.normalize_instagram(body, RECEIVED_AT)

    assert [(m.platform_message_id, m.text) for m in result.messages] == [
        ("18000000000000991", "my package never arrived")
    ]
    assert [(r.where, r.reason, r.detail) for r in result.rejected] == [
        ("entry[0].changes[1]", "missing_field", "entry[0].changes[1].value.media is missing")
    ]
