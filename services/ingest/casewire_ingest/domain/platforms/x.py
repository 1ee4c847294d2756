"""X Account Activity API webhooks to canonical messages.

A body names the subscribed brand account (`for_user_id`) and carries event arrays
(`tweet_create_events`, `direct_message_events`, ...) plus side maps (`users{}`, `apps{}`)
keyed by id string. A body without `for_user_id` is rejected: the brand decides the account,
the direction and the conversation key, and guessing it could file the brand's own DM as a
customer's. (X always sends it; courier's fixtures strip it.)

A problem inside one `tweet_create_events[]` or `direct_message_events[]` item rejects that
item only (`Normalized.rejected`, with its place); the body's other events are kept. A broken
envelope (no or bad `for_user_id`, no event array, an event array that is not a list) rejects
the whole body.

Ids always come from the string fields (`id_str`, DM `id`, `sender_id`...), never from the
numeric `id`, which exceeds 2^53 and breaks in any JSON reader that uses doubles. X ids are
decimal snowflakes; anything else is rejected as corrupt.

Tweets: a reply (`in_reply_to_status_id_str`) is channel `reply`, anything else that reaches
the brand (a mention, a quote of its tweet) is channel `mention`. The public conversation's
root is the replied-to tweet for a reply and the tweet itself otherwise: v1.1 payloads carry
only one hop of the thread, so that is as far as the payload tells. Quote tweets carry the
quoting customer's own words, so they are messages like any other tweet. Retweets repeat
someone else's words and ask nothing: they are acknowledged, not published.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from casewire_common.messages import Attachment, Author

from casewire_ingest.domain.normalized import (
    NormalizationError,
    Normalized,
    as_list,
    as_object,
    as_text,
    attachment,
    build_message,
    dm_conversation,
    id_string,
    public_conversation,
    require,
    require_list,
    require_object,
    x_text,
)
from casewire_ingest.domain.timestamps import to_utc

# Keys of a body that describe the events rather than being events.
_ENVELOPE_KEYS = frozenset({"for_user_id", "users", "apps", "user_has_blocked"})
# Events that are acknowledged, not published, by the kind they are counted under.
_IGNORED_EVENTS = {
    "favorite_events": "favorite",
    "direct_message_indicate_typing_events": "typing",
    "direct_message_mark_read_events": "read",
    "follow_events": "follow",
    "block_events": "block",
    "mute_events": "mute",
}
# X's retired codes for Indonesian, Hebrew and Yiddish, and the ISO 639-1 codes that replaced them.
_LEGACY_LANGUAGE_CODES = {"in": "id", "iw": "he", "ji": "yi"}
_ISO_639_1 = re.compile(r"[a-z]{2}")


def normalize(body: dict[str, Any], received_at: datetime) -> Normalized:
    """All canonical messages in one Account Activity body; NormalizationError if its envelope
    is bad."""
    if body.get("for_user_id") in (None, ""):
        raise NormalizationError(
            "missing_field", "for_user_id is missing: the brand's account cannot be known"
        )
    brand = _snowflake(body["for_user_id"], "for_user_id")
    users = as_object(body.get("users"))
    event_keys = [key for key in body if key not in _ENVELOPE_KEYS]
    if not event_keys:
        raise NormalizationError("missing_field", "the body has no event array")
    result = Normalized()
    for key in event_keys:
        events = body[key]
        if key == "tweet_create_events":
            for index, tweet in enumerate(require_list(events, key)):
                where = f"{key}[{index}]"
                with result.item(where):
                    _add_tweet(require_object(tweet, where), where, brand, received_at, result)
        elif key == "direct_message_events":
            for index, event in enumerate(require_list(events, key)):
                where = f"{key}[{index}]"
                with result.item(where):
                    _add_direct_message(
                        require_object(event, where), where, brand, users, received_at, result
                    )
        elif key == "tweet_delete_events":
            for index, event in enumerate(require_list(events, key)):
                where = f"{key}[{index}]"
                with result.item(where):
                    _add_tweet_delete(
                        require_object(event, where), where, brand, received_at, result
                    )
        else:
            result.ignored[_IGNORED_EVENTS.get(key, "unknown")] += (
                len(events) if isinstance(events, list) else 1
            )
    return result


def _add_tweet(
    tweet: dict[str, Any], where: str, brand: str, received_at: datetime, result: Normalized
) -> None:
    if tweet.get("retweeted_status") is not None:
        result.ignored["retweet"] += 1
        return
    tweet_id = _snowflake(require(tweet, "id_str", where), f"{where}.id_str")
    user = require_object(require(tweet, "user", where), f"{where}.user")
    author = _author(
        _snowflake(require(user, "id_str", f"{where}.user"), f"{where}.user.id_str"), user
    )
    replied_to = _optional_snowflake(
        tweet.get("in_reply_to_status_id_str"), f"{where}.in_reply_to_status_id_str"
    )
    outbound = author.id == brand
    customer = _addressee(tweet, brand, where) if outbound else author.id
    result.messages.append(
        build_message(
            platform="x",
            channel="reply" if replied_to else "mention",
            direction="outbound" if outbound else "inbound",
            account_id=brand,
            platform_message_id=tweet_id,
            conversation_id=public_conversation("x", brand, replied_to or tweet_id, customer),
            in_reply_to=replied_to,
            author=author,
            text=_tweet_text(tweet),
            language=_language(tweet.get("lang")),
            attachments=_tweet_media(tweet),
            sent_at=_tweet_time(tweet, where),
            received_at=received_at,
        )
    )


def _add_tweet_delete(
    event: dict[str, Any], where: str, brand: str, received_at: datetime, result: Normalized
) -> None:
    """A deleted tweet, as `event: delete` on its id (the router finds the original by it). X
    names only the tweet and its author, not the thread or whether it was a reply: the delete
    is keyed on the tweet itself and counted as a mention."""
    status = require_object(require(event, "status", where), f"{where}.status")
    tweet_id = _snowflake(require(status, "id", f"{where}.status"), f"{where}.status.id")
    author_id = _snowflake(require(status, "user_id", f"{where}.status"), f"{where}.status.user_id")
    result.messages.append(
        build_message(
            platform="x",
            channel="mention",
            direction="outbound" if author_id == brand else "inbound",
            event="delete",
            account_id=brand,
            platform_message_id=tweet_id,
            conversation_id=public_conversation("x", brand, tweet_id, author_id),
            author=Author(id=author_id),
            sent_at=_tweet_time(event, where),
            received_at=received_at,
        )
    )


def _add_direct_message(
    event: dict[str, Any],
    where: str,
    brand: str,
    users: dict[str, Any],
    received_at: datetime,
    result: Normalized,
) -> None:
    if event.get("type") != "message_create":  # the only DM event type that is a message
        result.ignored["unknown"] += 1
        return
    message_id = _snowflake(require(event, "id", where), f"{where}.id")
    create = require_object(require(event, "message_create", where), f"{where}.message_create")
    sender = _snowflake(
        require(create, "sender_id", f"{where}.message_create"), f"{where}.message_create.sender_id"
    )
    target = require(create, "target", f"{where}.message_create")
    recipient = _snowflake(
        require(target, "recipient_id", f"{where}.message_create.target"),
        f"{where}.message_create.target.recipient_id",
    )
    outbound = sender == brand
    data = as_object(create.get("message_data"))
    media = as_object(as_object(data.get("attachment")).get("media"))
    result.messages.append(
        build_message(
            platform="x",
            channel="dm",
            direction="outbound" if outbound else "inbound",
            account_id=brand,
            platform_message_id=message_id,
            conversation_id=dm_conversation("x", brand, recipient if outbound else sender),
            author=_author(sender, as_object(users.get(sender))),
            # The text keeps the t.co link of an attached medium: it is what the customer sent.
            text=x_text(data.get("text")),
            attachments=[_media_attachment(media)] if media else [],
            sent_at=to_utc(
                require(event, "created_timestamp", where), f"{where}.created_timestamp"
            ),
            received_at=received_at,
        )
    )


def _addressee(tweet: dict[str, Any], brand: str, where: str) -> str:
    """Whom the brand's own tweet is for: the author it replies to, else the first other user it
    mentions. A broadcast that addresses nobody keeps the brand as its own counterpart, so it
    gets a conversation no customer case will ever share."""
    replied_user = _optional_snowflake(
        tweet.get("in_reply_to_user_id_str"), f"{where}.in_reply_to_user_id_str"
    )
    if replied_user and replied_user != brand:
        return replied_user
    for mention in _user_mentions(tweet):
        mentioned = mention.get("id_str")
        if isinstance(mentioned, str) and mentioned.isdecimal() and mentioned != brand:
            return mentioned
    return brand


def _user_mentions(tweet: dict[str, Any]) -> list[dict[str, Any]]:
    source = _extended(tweet) or tweet
    mentions = as_object(source.get("entities")).get("user_mentions")
    return [m for m in mentions if isinstance(m, dict)] if isinstance(mentions, list) else []


def _tweet_text(tweet: dict[str, Any]) -> str:
    """The full text: `extended_tweet.full_text` for a truncated tweet, else `full_text` or
    `text`, with X's HTML entities (`&amp;`, `&lt;`, `&gt;`) unescaped."""
    extended = _extended(tweet)
    if extended and isinstance(extended.get("full_text"), str):
        return x_text(extended["full_text"])
    full_text = tweet.get("full_text")
    return x_text(full_text if isinstance(full_text, str) else tweet.get("text"))


def _tweet_media(tweet: dict[str, Any]) -> list[Attachment]:
    """Photos and videos, from the extended entities (all media) before the plain ones (the
    first only), in the extended tweet first when the tweet is truncated."""
    for holder in (_extended(tweet), tweet):
        for entities in ("extended_entities", "entities"):
            media = as_object(holder.get(entities)).get("media")
            if isinstance(media, list) and media:
                return [_media_attachment(item) for item in media if isinstance(item, dict)]
    return []


def _media_attachment(media: dict[str, Any]) -> Attachment:
    """A photo links to its image; a video or GIF to its best MP4, falling back to the
    preview image. DM media has no `type` when it is a photo (courier's fixture)."""
    kind = media.get("type") or "photo"
    url = media.get("media_url_https") or media.get("media_url")
    if kind in ("video", "animated_gif"):
        variants = [
            variant
            for variant in as_list(as_object(media.get("video_info")).get("variants"))
            if isinstance(variant, dict) and variant.get("content_type") == "video/mp4"
        ]
        if variants:
            best = max(variants, key=lambda variant: _int(variant.get("bitrate")) or 0)
            url = best.get("url") or url
    return attachment(kind, url)


def _tweet_time(tweet: dict[str, Any], where: str) -> datetime:
    """`timestamp_ms` (millisecond precision) when present, else the `created_at` date."""
    if tweet.get("timestamp_ms") not in (None, ""):
        return to_utc(tweet["timestamp_ms"], f"{where}.timestamp_ms")
    return to_utc(require(tweet, "created_at", where), f"{where}.created_at")


def _language(lang: Any) -> str | None:
    """X's BCP 47 `lang` as ISO 639-1; `und` (undetermined) and codes without a two-letter
    form (`fil`) are left for language detection."""
    if not isinstance(lang, str):
        return None
    primary = lang.split("-")[0].lower()
    primary = _LEGACY_LANGUAGE_CODES.get(primary, primary)
    return primary if _ISO_639_1.fullmatch(primary) else None


def _author(user_id: str, profile: dict[str, Any]) -> Author:
    """An X user: from a tweet's `user` or a DM's `users{}` entry (either may be sparse)."""
    return Author(
        id=user_id,
        handle=as_text(profile.get("screen_name")) or None,
        name=as_text(profile.get("name")) or None,
        followers=_int(profile.get("followers_count")),
        verified=profile.get("verified") if isinstance(profile.get("verified"), bool) else None,
    )


def _extended(tweet: dict[str, Any]) -> dict[str, Any]:
    """The `extended_tweet` of a truncated tweet, else {}."""
    return as_object(tweet.get("extended_tweet")) if tweet.get("truncated") is True else {}


def _snowflake(value: Any, where: str) -> str:
    text = id_string(value, where)
    if not (text.isascii() and text.isdecimal()):
        raise NormalizationError("invalid_field", f"{where} is not an X id")
    return text


def _optional_snowflake(value: Any, where: str) -> str | None:
    return None if value in (None, "") else _snowflake(value, where)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
