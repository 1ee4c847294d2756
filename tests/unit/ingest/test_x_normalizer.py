"""X Account Activity API normalization.

Every payload in the shared `payloads/twitter/` folder has its expected outcome in EXPECTED;
a test keeps that table in step with the folder. Hand-written cases below it cover what the
fixtures do not: replies and thread roots, ids above 2^53, long tweets, scripts, languages,
bad events beside good ones.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from casewire_common.messages import CanonicalMessage, message_id
from casewire_ingest.domain.normalized import NormalizationError
from casewire_ingest.domain.platforms import x

from tests.unit.ingest.body_sweep import assert_every_odd_field_is_tolerated_or_rejected

RECEIVED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BRAND = "2975699229"  # @ScruffyMcG, the subscribed account in Zammad's captures
CUSTOMER = "1205290247124217856"  # @pennbrooke1


@dataclass(frozen=True)
class Outcome:
    messages: tuple[dict[str, Any], ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)
    rejected: str | None = None


def published(*messages: dict[str, Any]) -> Outcome:
    return Outcome(messages=messages)


def acknowledged(**ignored: int) -> Outcome:
    return Outcome(ignored=ignored)


def rejected(reason: str) -> Outcome:
    return Outcome(rejected=reason)


def at(instant: str) -> datetime:
    return datetime.fromisoformat(instant)


def user(user_id: str, handle: str, name: str, followers: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "handle": handle,
        "name": name,
        "followers": followers,
        "verified": False,
    }


def pennbrooke(followers: int) -> dict[str, Any]:
    return user(CUSTOMER, "pennbrooke1", "pennbrooke", followers)


def message(
    *,
    channel: str,
    account: str,
    conversation: str,
    author: dict[str, Any],
    platform_message_id: str,
    sent_at: str,
    text: str,
    direction: str = "inbound",
    in_reply_to: str | None = None,
    language: str | None = None,
    attachments: tuple[tuple[str, str | None], ...] = (),
) -> dict[str, Any]:
    """A canonical message as `observed` shows it: every field the contract defines."""
    return {
        "platform": "x",
        "channel": channel,
        "visibility": "private" if channel == "dm" else "public",
        "direction": direction,
        "event": "message",
        "account_id": account,
        "platform_message_id": platform_message_id,
        "conversation_id": conversation,
        "in_reply_to": in_reply_to,
        "author": author,
        "text": text,
        "language": language,
        "attachments": list(attachments),
        "sent_at": at(sent_at),
    }


EXTENDED_TEXT = (
    "@ScruffyMcG\n This is a test of Zammad's handling of extended tweets. When Twitter sends "
    "tweet data (as JSON) to webhook endpoints, tweets exceeding 140 characters are truncated "
    '(for backwards compatibility). The full tweet body is passed in an "extended_tweet" '
    "property."
)
ZAMMAD_OUTGOING_DM = message(
    channel="dm",
    direction="outbound",
    account="123",
    conversation="x:123:456",
    author=user("123", "zammadhq", "Zammad HQ", 426),
    platform_message_id="1062015437679050760",
    text="Hey! Hello!",
    sent_at="2018-11-12T16:13:06.292Z",
)
# The brand's own tweet mentioning @medenhofer (456): outbound, addressed to the mentioned user.
ZAMMAD_OWN_TWEET = message(
    channel="mention",
    direction="outbound",
    account="123",
    conversation="x:123:1063212927510081536:456",
    author=user("123", "zammadhq", "Zammad HQ", 427),
    platform_message_id="1063212927510081536",
    text="Hey @medenhofer !  #hello1234 https://t.co/f1kffFlwpN",
    attachments=(("image", "https://pbs.twimg.com/media/DsFKfJRWkAAFEbo.jpg"),),
    sent_at="2018-11-15T23:31:30.116Z",
)

EXPECTED: dict[str, Outcome] = {
    # courier strips for_user_id; without it the brand (and so direction and conversation) is
    # unknown. Their content is checked with for_user_id restored, below.
    "courier_attachment.json": rejected("missing_field"),
    "courier_helloMsg.json": rejected("missing_field"),
    "courier_invalidTwitterID.json": rejected("missing_field"),
    "zammad_direct_message_incoming.json": published(
        message(
            channel="dm",
            account=BRAND,
            conversation=f"x:{BRAND}:{CUSTOMER}",
            author=pennbrooke(followers=1),
            platform_message_id="1206724334791753732",
            text="Yes, you are!",
            sent_at="2019-12-16T23:54:35.925Z",
        )
    ),
    # The text keeps the t.co link; the GIF is a video attachment pointing at its MP4.
    "zammad_direct_message_incoming_with_media.json": published(
        message(
            channel="dm",
            account=BRAND,
            conversation=f"x:{BRAND}:{CUSTOMER}",
            author=pennbrooke(followers=0),
            platform_message_id="1209117907864571908",
            text=" https://t.co/amoKo1v19w",
            attachments=(
                (
                    "video",
                    "https://video.twimg.com/dm_gif/1209117874389843969/"
                    "Lgs2ZRqicjZjx6kFdwQcu2T5rmEq7br_m8QKHj-RybsPv0yeq5.mp4",
                ),
            ),
            sent_at="2019-12-23T14:25:48.216Z",
        )
    ),
    "zammad_direct_message_indicate_typing.json": acknowledged(typing=1),
    "zammad_direct_message_mark_read.json": acknowledged(read=1),
    "zammad_direct_message_outgoing.json": published(
        message(
            channel="dm",
            direction="outbound",
            account=BRAND,
            conversation=f"x:{BRAND}:{CUSTOMER}",
            author=user(BRAND, "ScruffyMcG", "Ryan Lue", 31),
            platform_message_id="1206724203514228741",
            text="I'm a banana!",
            sent_at="2019-12-16T23:54:04.626Z",
        )
    ),
    "zammad_favorited.json": acknowledged(favorite=1),
    "zammad_tweet_create_retweet.json": acknowledged(retweet=1),
    # Starts with @ScruffyMcG (in_reply_to_user_id) but answers no tweet: a mention, its own root.
    "zammad_tweet_create_user_mention.json": published(
        message(
            channel="mention",
            account=BRAND,
            conversation=f"x:{BRAND}:1205348660982083584:{CUSTOMER}",
            author=pennbrooke(followers=0),
            platform_message_id="1205348660982083584",
            text="@ScruffyMcG This is a test of Twitter API webhooks.",
            language="en",
            sent_at="2019-12-13T04:48:09.730Z",
        )
    ),
    "zammad_tweet_create_user_mention_extended.json": published(
        message(
            channel="mention",
            account=BRAND,
            conversation=f"x:{BRAND}:1209097192914313216:{CUSTOMER}",
            author=pennbrooke(followers=0),
            platform_message_id="1209097192914313216",
            text=EXTENDED_TEXT,
            language="en",
            sent_at="2019-12-23T13:03:29.387Z",
        )
    ),
    "zammad_webhook1_direct_message.json": published(ZAMMAD_OUTGOING_DM),
    "zammad_webhook1_direct_message__raw_signed_body.json": published(ZAMMAD_OUTGOING_DM),
    "zammad_webhook1_tweet.json": published(ZAMMAD_OWN_TWEET),
    "zammad_webhook1_tweet__raw_signed_body.json": published(ZAMMAD_OWN_TWEET),
}


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "payloads" / "twitter"


def load(folder: Path, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return body


def observed(msg: CanonicalMessage) -> dict[str, Any]:
    """The fields of a canonical message that EXPECTED states, in the same shape."""
    return {
        "platform": msg.platform,
        "channel": msg.channel,
        "visibility": msg.visibility,
        "direction": msg.direction,
        "event": msg.event,
        "account_id": msg.account_id,
        "platform_message_id": msg.platform_message_id,
        "conversation_id": msg.conversation_id,
        "in_reply_to": msg.in_reply_to,
        "author": msg.author.model_dump(),
        "text": msg.text,
        "language": msg.language,
        "attachments": [(item.type, item.url) for item in msg.attachments],
        "sent_at": msg.sent_at,
    }


def test_every_twitter_fixture_has_an_expected_outcome(folder: Path) -> None:
    assert sorted(path.name for path in folder.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_twitter_fixture(folder: Path, name: str) -> None:
    body = load(folder, name)
    expected = EXPECTED[name]
    if expected.rejected:
        with pytest.raises(NormalizationError) as error:
            x.normalize(body, RECEIVED_AT)
        assert error.value.reason == expected.rejected
        return
    result = x.normalize(body, RECEIVED_AT)
    assert [observed(msg) for msg in result.messages] == list(expected.messages)
    assert dict(result.ignored) == expected.ignored
    for msg in result.messages:
        assert msg.id == message_id("x", msg.platform_message_id)
        assert msg.sent_at.utcoffset() == timedelta(0)
        assert msg.received_at == RECEIVED_AT


# --- courier's DMs with for_user_id restored (the recipient, Resistbot, is the brand) --------


def courier_dm(folder: Path, name: str) -> dict[str, Any]:
    body = load(folder, name)
    body["for_user_id"] = "835740314006511618"
    return body


def test_dm_text_has_html_entities_unescaped(folder: Path) -> None:
    [msg] = x.normalize(courier_dm(folder, "courier_helloMsg.json"), RECEIVED_AT).messages

    assert observed(msg) == message(
        channel="dm",
        account="835740314006511618",
        conversation="x:835740314006511618:272953809",
        author={
            "id": "272953809",
            "handle": "nicpottier",
            "name": "Nicolas Pottier",
            "followers": None,
            "verified": None,
        },
        platform_message_id="958501034212564996",
        text="Hello World & good wishes.",
        sent_at="2018-01-31T00:43:49.301Z",
    )


def test_dm_photo_without_a_media_type_is_an_image(folder: Path) -> None:
    [msg] = x.normalize(courier_dm(folder, "courier_attachment.json"), RECEIVED_AT).messages

    assert (msg.text, observed(msg)["attachments"]) == (
        "Hello",
        [("image", "https://image.foo.com/image.jpg")],
    )


def test_a_user_id_that_is_not_an_x_id_is_rejected(folder: Path) -> None:
    result = x.normalize(courier_dm(folder, "courier_invalidTwitterID.json"), RECEIVED_AT)

    assert result.messages == []
    assert [(item.where, item.reason, item.detail) for item in result.rejected] == [
        (
            "direct_message_events[0]",
            "invalid_field",
            "direct_message_events[0].message_create.sender_id is not an X id",
        )
    ]


# --- tweets: threads, ids, text ---------------------------------------------------------------


def mention(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Zammad's captured mention body and its one tweet, ready to be changed."""
    body = load(folder, "zammad_tweet_create_user_mention.json")
    return body, body["tweet_create_events"][0]


def test_a_reply_threads_under_the_tweet_it_answers(folder: Path) -> None:
    body, tweet = mention(folder)
    tweet["in_reply_to_status_id"] = 1205340000000000000
    tweet["in_reply_to_status_id_str"] = "1205340000000000000"

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert (msg.channel, msg.visibility, msg.direction, msg.in_reply_to, msg.conversation_id) == (
        "reply",
        "public",
        "inbound",
        "1205340000000000000",
        f"x:{BRAND}:1205340000000000000:{CUSTOMER}",
    )


def test_the_brands_reply_lands_in_the_customers_conversation(folder: Path) -> None:
    body, tweet = mention(folder)
    [customer_tweet] = x.normalize(copy.deepcopy(body), RECEIVED_AT).messages
    brand_user = load(folder, "zammad_favorited.json")["favorite_events"][0]["user"]
    tweet |= {
        "id": 1205350000000000000,
        "id_str": "1205350000000000000",
        "text": "@pennbrooke1 Thanks, we are on it &amp; will DM you.",
        "in_reply_to_status_id_str": customer_tweet.platform_message_id,
        "in_reply_to_user_id_str": CUSTOMER,
        "user": brand_user,
    }

    [brand_reply] = x.normalize(body, RECEIVED_AT).messages

    assert brand_reply.direction == "outbound"
    assert brand_reply.author.handle == "ScruffyMcG"
    assert brand_reply.text == "@pennbrooke1 Thanks, we are on it & will DM you."
    assert brand_reply.in_reply_to == customer_tweet.platform_message_id
    assert brand_reply.conversation_id == customer_tweet.conversation_id


def test_a_brand_broadcast_addressing_nobody_is_its_own_conversation(folder: Path) -> None:
    body = load(folder, "zammad_webhook1_tweet.json")
    tweet = body["tweet_create_events"][0]
    tweet["text"] = "Maintenance tonight."
    tweet["entities"]["user_mentions"] = []

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert (msg.direction, msg.conversation_id) == ("outbound", "x:123:1063212927510081536:123")


def test_a_quote_tweet_is_a_message(folder: Path) -> None:
    body, tweet = mention(folder)
    retweet = load(folder, "zammad_tweet_create_retweet.json")["tweet_create_events"][0]
    tweet["is_quote_status"] = True
    tweet["quoted_status"] = retweet["retweeted_status"]
    tweet["text"] = "This is still broken for me"

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert (msg.channel, msg.text) == ("mention", "This is still broken for me")


def test_ids_above_2_53_come_from_the_string_fields_exactly(folder: Path) -> None:
    body, tweet = mention(folder)
    # Parsed from JSON text, as a webhook is: the numbers are exact Python ints here, but a
    # double would turn 9007199254740993 into ...992. The string fields are what count.
    tweet |= json.loads(
        '{"id": 9007199254740993, "id_str": "9007199254740993",'
        ' "in_reply_to_status_id": 9007199254740995,'
        ' "in_reply_to_status_id_str": "9007199254740995"}'
    )
    assert str(int(float(tweet["id"]))) == "9007199254740992"

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.platform_message_id == "9007199254740993"
    assert msg.in_reply_to == "9007199254740995"
    assert msg.id == message_id("x", "9007199254740993")


def test_the_numeric_id_is_never_used_in_place_of_id_str(folder: Path) -> None:
    body, tweet = mention(folder)
    del tweet["id_str"]

    result = x.normalize(body, RECEIVED_AT)

    assert result.messages == []
    assert [(item.where, item.reason) for item in result.rejected] == [
        ("tweet_create_events[0]", "missing_field")
    ]


def test_a_truncated_tweet_gets_its_full_text_and_media_from_extended_tweet(folder: Path) -> None:
    body, tweet = mention(folder)
    photo = load(folder, "zammad_webhook1_tweet.json")["tweet_create_events"][0]["entities"]
    full_text = "@ScruffyMcG " + "my order &lt;#4521&gt; never arrived &amp; nobody answers. " * 4
    tweet |= {
        "truncated": True,
        "text": full_text[:139] + "…",
        "extended_tweet": {"full_text": full_text, "extended_entities": photo},
    }

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.text == ("@ScruffyMcG " + "my order <#4521> never arrived & nobody answers. " * 4)
    assert observed(msg)["attachments"] == [
        ("image", "https://pbs.twimg.com/media/DsFKfJRWkAAFEbo.jpg")
    ]


@pytest.mark.parametrize(
    ("sent", "typed"),
    [
        ("AT&amp;T &lt;3 &gt;:(", "AT&T <3 >:("),
        ("I typed &amp;lt; literally", "I typed &lt; literally"),  # X escaped the `&`
        ("?id=5&amp;region=eu &copy; &quot;", "?id=5&region=eu &copy; &quot;"),  # X escapes no more
    ],
)
def test_text_is_unescaped_exactly_as_x_escapes_it(folder: Path, sent: str, typed: str) -> None:
    body, tweet = mention(folder)
    tweet |= {"text": sent, "truncated": False}
    tweet.pop("extended_tweet", None)
    tweet.pop("full_text", None)

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.text == typed


def test_full_text_is_preferred_to_the_short_text_of_an_untruncated_tweet(folder: Path) -> None:
    body, tweet = mention(folder)
    tweet["full_text"] = tweet["text"] + " (full)"

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.text.endswith(" (full)")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("\u200f@ScruffyMcG وين طلبي؟ صار لي أسبوع أنتظر\u200f", "ar"),
        ("@ScruffyMcG พัสดุของฉันยังไม่มาถึงเลยค่ะ", "th"),
        ("@ScruffyMcG Η παραγγελία μου δεν έφτασε ακόμα!", "el"),
    ],
)
def test_tweets_in_any_script_are_kept_exactly(folder: Path, text: str, lang: str) -> None:
    body, tweet = mention(folder)
    tweet |= {"text": text, "lang": lang}

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert (msg.text, msg.language) == (text, lang)


def test_dms_in_any_script_are_kept_exactly(folder: Path) -> None:
    body = load(folder, "zammad_direct_message_incoming.json")
    text = "مرحبا 👋🏽 Γεια σας สวัสดีครับ"
    body["direct_message_events"][0]["message_create"]["message_data"]["text"] = text

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.text == text


@pytest.mark.parametrize(
    ("lang", "language"),
    [
        ("en", "en"),
        ("und", None),
        ("in", "id"),
        ("iw", "he"),
        ("zh-cn", "zh"),
        ("fil", None),
        (None, None),
    ],
)
def test_x_language_codes_become_iso_639_1(folder: Path, lang: str | None, language: str) -> None:
    body, tweet = mention(folder)
    tweet["lang"] = lang

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.language == language


def test_created_at_is_used_when_timestamp_ms_is_absent(folder: Path) -> None:
    body, tweet = mention(folder)
    del tweet["timestamp_ms"]

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert msg.sent_at == at("2019-12-13T04:48:09Z")


# --- envelope ---------------------------------------------------------------------------------


def test_events_that_are_not_messages_are_counted_by_kind() -> None:
    body = {
        "for_user_id": BRAND,
        "follow_events": [{}, {}],
        "block_events": [{}],
        "direct_message_events": [{"type": "message_reaction"}],
        "brand_new_events": [{}],
    }

    result = x.normalize(body, RECEIVED_AT)

    assert result.messages == []
    assert dict(result.ignored) == {"follow": 2, "block": 1, "unknown": 2}


@pytest.mark.parametrize(
    ("author", "direction"), [("1205290247124217856", "inbound"), (BRAND, "outbound")]
)
def test_a_deleted_tweet_is_a_delete_of_the_original_by_its_id(author: str, direction: str) -> None:
    body = {
        "for_user_id": BRAND,
        "tweet_delete_events": [
            {
                "status": {"id": "1800000000000000001", "user_id": author},
                "timestamp_ms": "1772366400000",
            }
        ],
    }

    [msg] = x.normalize(body, RECEIVED_AT).messages

    assert (msg.event, msg.direction, msg.platform_message_id, msg.author.id, msg.text) == (
        "delete",
        direction,
        "1800000000000000001",
        author,
        "",
    )
    assert msg.id == message_id("x", "1800000000000000001")  # the original's id
    assert msg.delivery_key == f"{msg.id}:delete"
    assert msg.sent_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_tweet_delete_without_its_status_rejects_that_item_only() -> None:
    body = {"for_user_id": BRAND, "tweet_delete_events": [{"timestamp_ms": "1772366400000"}]}

    result = x.normalize(body, RECEIVED_AT)

    assert (result.messages, [r.reason for r in result.rejected]) == ([], ["missing_field"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"tweet_create_events": []}, "missing_field"),
        ({"for_user_id": BRAND, "users": {}}, "missing_field"),
        ({"for_user_id": "@ScruffyMcG", "tweet_create_events": []}, "invalid_field"),
        ({"for_user_id": BRAND, "tweet_create_events": {}}, "invalid_field"),
        ({"for_user_id": BRAND, "direct_message_events": {}}, "invalid_field"),
    ],
)
def test_a_broken_envelope_is_rejected_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalizationError) as error:
        x.normalize(body, RECEIVED_AT)

    assert error.value.reason == reason


# --- a bad event beside good ones -------------------------------------------------------------


def without_key(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in mapping.items() if name != key}


def test_bad_events_are_rejected_alone_with_their_place(folder: Path) -> None:
    """One body carries the events of many users: a bad one must not cost the good ones."""
    body, tweet = mention(folder)
    dm = courier_dm(folder, "courier_helloMsg.json")["direct_message_events"][0]
    body["tweet_create_events"] = [without_key(tweet, "id_str"), tweet]
    body["direct_message_events"] = [
        "not an event",
        dm,
        dm | {"id": "958501034212564997", "created_timestamp": "asdf"},
    ]

    result = x.normalize(body, RECEIVED_AT)

    assert [msg.platform_message_id for msg in result.messages] == [
        "1205348660982083584",
        "958501034212564996",
    ]
    assert [(item.where, item.reason) for item in result.rejected] == [
        ("tweet_create_events[0]", "missing_field"),
        ("direct_message_events[0]", "invalid_field"),
        ("direct_message_events[2]", "invalid_timestamp"),
    ]


def test_a_name_too_long_for_the_canonical_model_rejects_its_event_only(folder: Path) -> None:
    body = courier_dm(folder, "courier_helloMsg.json")
    good = body["direct_message_events"][0]
    long_name = {"id": "42", "name": "n" * 600, "screen_name": "long"}
    body["users"]["42"] = long_name
    create = good["message_create"] | {"sender_id": "42"}
    body["direct_message_events"] = [good | {"id": "1", "message_create": create}, good]

    result = x.normalize(body, RECEIVED_AT)

    assert [msg.platform_message_id for msg in result.messages] == ["958501034212564996"]
    [rejection] = result.rejected
    assert (rejection.where, rejection.reason) == ("direct_message_events[0]", "invalid_message")
    assert rejection.detail == (
        "direct_message_events[0]: name String should have at most 512 characters"
    )


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_field_made_odd_is_tolerated_or_rejected_with_a_reason(folder: Path, name: str) -> None:
    """Whatever one field holds, the result is messages or a NormalizationError (a 4xx with a
    reason), never another exception (a 5xx)."""
    assert_every_odd_field_is_tolerated_or_rejected(x.normalize, load(folder, name), RECEIVED_AT)
