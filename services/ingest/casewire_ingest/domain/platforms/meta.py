"""Meta webhooks: Messenger and Page feed (`object: page`), Instagram (`object: instagram`).

One body holds several `entry[]` items, each with `messaging[]`, `standby[]` (handover: another
app owns the thread, but the customer still wrote to the brand) and/or `changes[]`. Every item
becomes a canonical message or is counted in `Normalized.ignored` by kind; nothing is skipped
unseen. The same `mid` twice in one body gives two messages with the same id: dedup happens
later, in one place.

Decisions, and why:

- Account and customer. `entry.id` is the subscribed Page / Instagram account: that is how
  Meta addresses the webhook, so it is the `account_id`. The customer is the sender of an
  inbound event and the recipient of an echo (`is_echo` → outbound). Some libraries' echo
  fixtures keep the customer as sender; whichever party is the account is never the
  customer. A recipient that differs from `entry.id` (courier's `different_page`) is not a
  reason to drop a customer's message: the entry says whose webhook it is.
- Ids that end up in a conversation key (account, customer, root post) must be Meta ids:
  digits, or digits joined by `_` for posts. Anything else (courier's `invalid_urn`
  `abc5678`, documentation placeholders like `<PSID>`) is rejected as `invalid_id`: it
  cannot come from Meta and could break the `:`-separated key.
- Postbacks (a tapped button, an Instagram icebreaker) are what the customer chose to say:
  a message whose text is the button title, or the payload when there is no title. Its id is
  the postback `mid` (Meta sends one since v11) or else `postback:<customer>:<timestamp>`,
  stable across redelivery. A postback with neither title nor payload (standby postbacks
  arrive empty) has nothing to read: ignored as `empty_postback`.
- Quick replies are ordinary messages (their text is the chosen option). `is_unsupported`
  is a message with one `other` attachment: the customer did send something, readable
  only in Meta's own inbox. Stickers (including the "like" thumb and Instagram's
  `like_heart`) are `sticker` attachments with empty text; reels, shares, story mentions,
  templates and fallbacks are `other`; a location without a URL gets a `geo:` URI.
- A message event without sender or recipient id is rejected (`missing_field`); that
  includes chat-plugin guests who only have `sender.user_ref`. Referrals, opt-ins, account
  linking, app roles, policy enforcement, payments, reactions, reads and deliveries are
  acknowledged and counted under their own key; any other event is counted as `unknown`.
  Their timestamps are not read, so a receipt with an odd time does not cost the messages
  beside it.
- Handover protocol (docs/handover.md). `pass_thread_control`, `take_thread_control` and
  `request_thread_control` (`messaging_handovers`) become thread-control records
  (`casewire_common.thread_control`) in the customer's DM conversation, at the event's
  `timestamp`: the router opens no case while a chatbot owns a conversation, and opens it
  when the chatbot hands it to people. A pass names its `new_owner_app_id`, a request its
  `requested_owner_app_id` (else `missing_field`); app ids are Meta ids (else `invalid_id`),
  an absent or null previous owner is an idle thread. Messages read from `standby[]` (another
  app owns the thread) are marked (`Normalized.standby`), and an echo's `app_id` (which app
  sent it: Casewire, the Page inbox or the chatbot) is kept (`Normalized.sending_apps`); both
  travel as record headers, the canonical message being a closed schema.
- Page feed: comments are `comment` (a reply to a comment is `reply`, `in_reply_to` the
  parent); posts, statuses, photos, videos and shares on the Page are `mention` (public,
  addressed to the brand). Mentions of the Page elsewhere are `mention`. A review with text
  is a `comment` on the Page's ratings, rooted at the review; a star-only rating is
  ignored as `rating_without_text`. `add` / `edited` / `remove` → message / edit / delete;
  hide, unhide, block, mute → `moderation`; likes and reactions → `reaction`; albums,
  events and other items → `feed_other`; leadgen → `leadgen`; other fields → `unknown`.
- Whatever the Page (or the Instagram account) writes in public is outbound: that is how
  the SLA learns the brand answered. Meta does not say whom the brand answered, so such a
  message's conversation uses the account id as customer; `in_reply_to` names the parent
  for threading.
- Public items with no author id (Instagram `mentions` carry only ids; Page feed and
  legacy Instagram comments omit `from` without the user-content permission) cannot be
  keyed to a customer: counted as `<channel>_without_author`, never invented. The raw
  body stays on `casewire.raw.v1` for replay once an author lookup exists.
- Empty or missing `entry` → `no_entries` (Meta never sends it); an entry with no events →
  acknowledged as `empty_entry`; a wrong `object` → `wrong_object`. These, and an entry
  without a usable id, reject the whole body. A problem inside one `messaging[]`,
  `standby[]` or `changes[]` item rejects that item only (`Normalized.rejected`, with its
  place): Meta batches events of many customers, and a guest's event must not cost the
  messages beside it.
- Timestamps: messaging `timestamp` in ms; feed `created_time`, or else `entry.time`, in
  seconds (`to_utc` tells them apart by magnitude). Feed edits and deletes take
  `entry.time`: the moment of the change, which dedup needs to tell edits apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from casewire_common.messages import (
    Attachment,
    Author,
    CanonicalMessage,
    Channel,
    Direction,
    MessageEvent,
)
from casewire_common.thread_control import (
    MAX_METADATA_LENGTH,
    ThreadControl,
    ThreadControlAction,
    thread_control_id,
)

from casewire_ingest.domain.normalized import (
    NormalizationError,
    Normalized,
    as_list,
    as_object,
    attachment,
    build_message,
    dm_conversation,
    id_string,
    plain_text,
    public_conversation,
    require,
    require_list,
    require_object,
)
from casewire_ingest.domain.timestamps import to_utc

MetaPlatform = Literal["facebook", "instagram"]

# A canonical message, a thread-control event, or the kind of an acknowledged event that is
# neither.
Outcome: TypeAlias = CanonicalMessage | ThreadControl | str

_META_ID = re.compile(r"[0-9]+(?:_[0-9]+)*")

_ACKNOWLEDGED_MESSAGING_KEYS = (
    "reaction",
    "read",
    "delivery",
    "referral",
    "optin",
    "account_linking",
    "app_roles",
    "policy-enforcement",
    "payment",
    "checkout_update",
)
# The same messaging events in Meta's "field/value" form (`changes[]` with one of these fields,
# the event in `value`, its timestamp often a string of seconds), as the App Dashboard's test
# button and some subscriptions send them.
_MESSAGING_FIELDS = frozenset(
    {
        "messages",
        "messaging_postbacks",
        "message_echoes",
        "message_edits",
        "message_reactions",
        "message_reads",
        "message_deliveries",
        "messaging_seen",
        "messaging_optins",
        "messaging_referrals",
        "messaging_handovers",
        "messaging_account_linking",
        "standby",
    }
)
_HANDOVER_ACTIONS: dict[str, ThreadControlAction] = {
    "pass_thread_control": "pass",
    "take_thread_control": "take",
    "request_thread_control": "request",
}
_EVENT_BY_VERB: dict[str, MessageEvent] = {
    "add": "message",
    "edited": "edit",
    "edit": "edit",
    "remove": "delete",
}
_MODERATION_VERBS = frozenset({"hide", "unhide", "block", "unblock", "mute", "unmute"})
_REACTION_ITEMS = frozenset({"like", "reaction"})
_POST_ITEMS = frozenset({"post", "status", "photo", "video", "share"})


def normalize_page(body: dict[str, Any], received_at: datetime) -> Normalized:
    """Messenger DMs and Page feed changes."""
    return _normalize(body, received_at, "page", "facebook", _page_change)


def normalize_instagram(body: dict[str, Any], received_at: datetime) -> Normalized:
    """Instagram Direct, comments and mentions."""
    return _normalize(body, received_at, "instagram", "instagram", _instagram_change)


@dataclass(frozen=True)
class _Entry:
    """One `entry[]` item: whose webhook it is, where it sits in the body, and the body's
    outcome (where a message's marks, standby and sending app, are kept)."""

    platform: MetaPlatform
    account_id: str
    fields: dict[str, Any]
    where: str
    received_at: datetime
    result: Normalized

    def instant(self, value: Any, where: str) -> datetime:
        return to_utc(value, where)

    def time(self) -> datetime:
        return self.instant(require(self.fields, "time", self.where), f"{self.where}.time")


ItemReader: TypeAlias = Callable[[_Entry, dict[str, Any], str], Outcome]


def _normalize(
    body: dict[str, Any],
    received_at: datetime,
    expected_object: str,
    platform: MetaPlatform,
    read_change: ItemReader,
) -> Normalized:
    found = body.get("object") if isinstance(body, dict) else None
    if found != expected_object:
        raise NormalizationError(
            "wrong_object", f"object is {found!r}, expected {expected_object!r}"
        )
    entries = body.get("entry")
    if not entries:
        raise NormalizationError("no_entries", "the body has no entry")
    result = Normalized()
    for index, fields in enumerate(require_list(entries, "entry")):
        entry = _read_entry(platform, fields, f"entry[{index}]", received_at, result)
        readers = (
            ("messaging", _messaging_event),
            ("standby", _standby_event),
            ("changes", read_change),
        )
        present = [(key, reader) for key, reader in readers if key in entry.fields]
        if not present:
            result.ignored["empty_entry"] += 1
        for key, reader in present:
            for position, item in enumerate(
                require_list(entry.fields[key], f"{entry.where}.{key}")
            ):
                where = f"{entry.where}.{key}[{position}]"
                with result.item(where):
                    outcome = reader(entry, require_object(item, where), where)
                    if isinstance(outcome, str):
                        result.ignored[outcome] += 1
                    elif isinstance(outcome, ThreadControl):
                        result.thread_controls.append(outcome)
                    else:
                        result.messages.append(outcome)
    return result


def _read_entry(
    platform: MetaPlatform, fields: Any, where: str, received_at: datetime, result: Normalized
) -> _Entry:
    fields = require_object(fields, where)
    account_id = _meta_id(require(fields, "id", where), f"{where}.id")
    return _Entry(platform, account_id, fields, where, received_at, result)


# --- Messenger and Instagram Direct -------------------------------------------------------


def _messaging_event(
    entry: _Entry, event: dict[str, Any], where: str, *, standby: bool = False
) -> Outcome:
    outcome: Outcome
    if "message" in event:
        outcome = _message(entry, event, where)
    elif "message_edit" in event:
        outcome = _message_edit(entry, event, where)
    elif "postback" in event:
        outcome = _postback(entry, event, where)
    else:
        return _other_event(entry, event, where)
    if standby and isinstance(outcome, CanonicalMessage):
        entry.result.standby.add(outcome.delivery_key)
    return outcome


def _standby_event(entry: _Entry, event: dict[str, Any], where: str) -> Outcome:
    """An event on the `standby` channel: another app owns the thread."""
    return _messaging_event(entry, event, where, standby=True)


def _other_event(entry: _Entry, event: dict[str, Any], where: str) -> Outcome:
    for key, action in _HANDOVER_ACTIONS.items():
        if key in event:
            return _thread_control(entry, event, where, key, action)
    for key in _ACKNOWLEDGED_MESSAGING_KEYS:
        if key in event:
            return key.replace("-", "_")
    return "unknown"


def _thread_control(
    entry: _Entry, event: dict[str, Any], where: str, key: str, action: ThreadControlAction
) -> ThreadControl:
    """A handover event, in the DM conversation of the customer it is about."""
    control = require_object(event[key], f"{where}.{key}")
    customer_id, _ = _dm_parties(entry, event, where, is_echo=False)
    timestamp = require(event, "timestamp", where)
    named = {"pass": "new_owner_app_id", "request": "requested_owner_app_id"}.get(action)
    if named is not None:
        require(control, named, f"{where}.{key}")
    apps = {
        name: _app_id(control.get(name), f"{where}.{key}.{name}")
        for name in ("new_owner_app_id", "previous_owner_app_id", "requested_owner_app_id")
    }
    conversation = dm_conversation(entry.platform, entry.account_id, customer_id)
    metadata = plain_text(control.get("metadata"))[:MAX_METADATA_LENGTH]
    # A field the model refuses rejects this item (`Normalized.item`), not the body.
    return ThreadControl(
        id=thread_control_id(
            entry.platform,
            conversation,
            action,
            id_string(timestamp, f"{where}.timestamp"),
            apps["requested_owner_app_id" if action == "request" else "new_owner_app_id"],
        ),
        platform=entry.platform,
        action=action,
        account_id=entry.account_id,
        conversation_id=conversation,
        metadata=metadata or None,
        sent_at=entry.instant(timestamp, f"{where}.timestamp"),
        received_at=entry.received_at,
        **apps,
    )


def _app_id(value: Any, where: str) -> str | None:
    """A Meta app id, or None when absent (a null previous owner: the thread was idle)."""
    if value is None or value == "":
        return None
    return _meta_id(value, where)


def _message(entry: _Entry, event: dict[str, Any], where: str) -> CanonicalMessage:
    message = require_object(event["message"], f"{where}.message")
    mid = id_string(require(message, "mid", f"{where}.message"), f"{where}.message.mid")
    is_echo = message.get("is_echo") is True
    customer_id, direction = _dm_parties(entry, event, where, is_echo=is_echo)
    if message.get("is_deleted") is True:
        return _dm(entry, event, where, mid, customer_id, direction, event_kind="delete")
    attachments = [_dm_attachment(item) for item in as_list(message.get("attachments"))]
    if message.get("is_unsupported") is True:
        attachments.append(Attachment(type="other"))
    dm = _dm(
        entry,
        event,
        where,
        mid,
        customer_id,
        direction,
        text=plain_text(message.get("text")),
        attachments=attachments,
        in_reply_to=_replied_to(message.get("reply_to"), f"{where}.message.reply_to"),
    )
    app_id = _sending_app(message.get("app_id")) if is_echo else None
    if app_id is not None:
        entry.result.sending_apps[dm.delivery_key] = app_id
    return dm


def _sending_app(value: Any) -> str | None:
    """The app an echo names as its sender, if it names one Meta could have given: who sent
    it is a hint for the router (bot or person), never a reason to refuse the message."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if _META_ID.fullmatch(text) else None


def _message_edit(entry: _Entry, event: dict[str, Any], where: str) -> CanonicalMessage:
    edit = require_object(event["message_edit"], f"{where}.message_edit")
    mid = id_string(require(edit, "mid", f"{where}.message_edit"), f"{where}.message_edit.mid")
    customer_id, direction = _dm_parties(entry, event, where, is_echo=False)
    return _dm(
        entry,
        event,
        where,
        mid,
        customer_id,
        direction,
        event_kind="edit",
        text=plain_text(edit.get("text")),
    )


def _postback(entry: _Entry, event: dict[str, Any], where: str) -> Outcome:
    postback = require_object(event["postback"], f"{where}.postback")
    text = plain_text(postback.get("title")) or plain_text(postback.get("payload"))
    if not text:
        return "empty_postback"
    customer_id, direction = _dm_parties(entry, event, where, is_echo=False)
    if postback.get("mid") is not None:
        mid = id_string(postback["mid"], f"{where}.postback.mid")
    else:
        sent = id_string(require(event, "timestamp", where), f"{where}.timestamp")
        mid = f"postback:{customer_id}:{sent}"
    return _dm(entry, event, where, mid, customer_id, direction, text=text)


def _dm_parties(
    entry: _Entry, event: dict[str, Any], where: str, *, is_echo: bool
) -> tuple[str, Direction]:
    """The customer's id and the direction: the account's own messages are outbound."""
    sender_id = _party_id(event, "sender", where)
    recipient_id = _party_id(event, "recipient", where)
    outbound = is_echo or sender_id == entry.account_id
    customer_id = recipient_id if outbound else sender_id
    if customer_id == entry.account_id:
        customer_id = sender_id if outbound else recipient_id
    return customer_id, "outbound" if outbound else "inbound"


def _party_id(event: dict[str, Any], role: str, where: str) -> str:
    party = require(event, role, where)
    return _meta_id(require(party, "id", f"{where}.{role}"), f"{where}.{role}.id")


def _dm(
    entry: _Entry,
    event: dict[str, Any],
    where: str,
    mid: str,
    customer_id: str,
    direction: Direction,
    *,
    event_kind: MessageEvent = "message",
    text: str = "",
    attachments: list[Attachment] | None = None,
    in_reply_to: str | None = None,
) -> CanonicalMessage:
    author_id = customer_id if direction == "inbound" else entry.account_id
    return build_message(
        platform=entry.platform,
        channel="dm",
        direction=direction,
        account_id=entry.account_id,
        platform_message_id=mid,
        conversation_id=dm_conversation(entry.platform, entry.account_id, customer_id),
        author=Author(id=author_id),
        sent_at=entry.instant(require(event, "timestamp", where), f"{where}.timestamp"),
        received_at=entry.received_at,
        text=text,
        event=event_kind,
        in_reply_to=in_reply_to,
        attachments=attachments,
    )


def _dm_attachment(item: Any) -> Attachment:
    if not isinstance(item, dict):
        return attachment(None)
    payload = as_object(item.get("payload"))
    kind = item.get("type")
    url = payload.get("url") or item.get("url")
    if kind == "location" and not url:
        url = _geo_uri(payload.get("coordinates"))
    if kind == "like_heart" or payload.get("sticker_id") is not None:
        kind = "sticker"
    return attachment(kind, url)


def _geo_uri(coordinates: Any) -> str | None:
    """RFC 5870 `geo:lat,long`, so an agent can open a shared location."""
    if not isinstance(coordinates, dict):
        return None
    latitude, longitude = coordinates.get("lat"), coordinates.get("long")
    if not all(_is_number(value) for value in (latitude, longitude)):
        return None
    return f"geo:{latitude},{longitude}"


def _replied_to(reply_to: Any, where: str) -> str | None:
    """The message (`reply_to.mid`) or Instagram story (`reply_to.story.id`) answered."""
    if not isinstance(reply_to, dict):
        return None
    if reply_to.get("mid") is not None:
        return id_string(reply_to["mid"], f"{where}.mid")
    story = reply_to.get("story")
    if isinstance(story, dict) and story.get("id") is not None:
        return id_string(story["id"], f"{where}.story.id")
    return None


# --- Page feed, mentions and ratings ---------------------------------------------------------


def _messaging_change(entry: _Entry, change: dict[str, Any], where: str) -> Outcome:
    """A messaging event in the field/value form: read as if it came in `messaging[]` (or in
    `standby[]`, for the `standby` field)."""
    value = require_object(require(change, "value", where), f"{where}.value")
    return _messaging_event(
        entry, value, f"{where}.value", standby=change.get("field") == "standby"
    )


def _page_change(entry: _Entry, change: dict[str, Any], where: str) -> Outcome:
    field = change.get("field")
    if field in _MESSAGING_FIELDS:
        return _messaging_change(entry, change, where)
    if field not in ("feed", "mention", "ratings"):
        return "leadgen" if field == "leadgen" else "unknown"
    value = require_object(require(change, "value", where), f"{where}.value")
    where = f"{where}.value"
    item, verb = value.get("item"), value.get("verb")
    if item in _REACTION_ITEMS:
        return "reaction"
    if verb in _MODERATION_VERBS:
        return "moderation"
    event = _EVENT_BY_VERB.get(verb) if isinstance(verb, str) else None
    if event is None:
        return "unknown"
    if item == "comment":
        return _page_comment(entry, value, where, event, mentioned=field == "mention")
    if item == "rating":
        return _review(entry, value, where, event)
    if item in _POST_ITEMS:
        return _page_post(entry, value, where, event)
    return "feed_other"


def _page_comment(
    entry: _Entry, value: dict[str, Any], where: str, event: MessageEvent, *, mentioned: bool
) -> Outcome:
    post_id = _meta_id(require(value, "post_id", where), f"{where}.post_id")
    parent_id = id_string(value.get("parent_id") or post_id, f"{where}.parent_id")
    channel: Channel = "comment" if parent_id == post_id else "reply"
    if mentioned:
        channel = "mention"
    author = _page_author(value, where)
    if author is None:
        return f"{channel}_without_author"
    attachments = [attachment(kind, value[kind]) for kind in ("photo", "video") if value.get(kind)]
    return _public(
        entry,
        channel=channel,
        event=event,
        platform_message_id=id_string(require(value, "comment_id", where), f"{where}.comment_id"),
        root_id=post_id,
        in_reply_to=parent_id,
        author=author,
        text=plain_text(value.get("message")),
        attachments=attachments,
        sent_at=_changed_at(entry, value, where, event),
    )


def _page_post(entry: _Entry, value: dict[str, Any], where: str, event: MessageEvent) -> Outcome:
    author = _page_author(value, where)
    if author is None:
        return "mention_without_author"
    post_id = _meta_id(require(value, "post_id", where), f"{where}.post_id")
    attachments = [attachment("photo", url) for url in as_list(value.get("photos"))]
    if value.get("link"):
        attachments.append(attachment(value["item"], value["link"]))
    return _public(
        entry,
        channel="mention",
        event=event,
        platform_message_id=post_id,
        root_id=post_id,
        in_reply_to=None,
        author=author,
        text=plain_text(value.get("message")),
        attachments=attachments,
        sent_at=_changed_at(entry, value, where, event),
    )


def _review(entry: _Entry, value: dict[str, Any], where: str, event: MessageEvent) -> Outcome:
    text = plain_text(value.get("review_text"))
    if event != "delete" and not text:
        return "rating_without_text"
    author = _author(
        value.get("reviewer_id"), f"{where}.reviewer_id", name=value.get("reviewer_name")
    )
    if author is None:
        return "comment_without_author"
    review_id = _meta_id(
        require(value, "open_graph_story_id", where), f"{where}.open_graph_story_id"
    )
    return _public(
        entry,
        channel="comment",
        event=event,
        platform_message_id=review_id,
        root_id=review_id,
        in_reply_to=None,
        author=author,
        text=text,
        attachments=[],
        sent_at=_changed_at(entry, value, where, event),
    )


def _page_author(value: dict[str, Any], where: str) -> Author | None:
    """`from {id, name}` in newer payloads, `sender_id` / `sender_name` in older ones."""
    sender = as_object(value.get("from"))
    if "id" in sender:
        return _author(sender["id"], f"{where}.from.id", name=sender.get("name"))
    return _author(value.get("sender_id"), f"{where}.sender_id", name=value.get("sender_name"))


# --- Instagram comments and mentions ---------------------------------------------------------


def _instagram_change(entry: _Entry, change: dict[str, Any], where: str) -> Outcome:
    field = change.get("field")
    if field in _MESSAGING_FIELDS:
        return _messaging_change(entry, change, where)
    if field in ("comments", "live_comments"):
        value = require_object(require(change, "value", where), f"{where}.value")
        return _instagram_comment(entry, value, f"{where}.value")
    if field == "mentions":
        # Meta sends only comment_id / media_id: the author needs a Graph API lookup.
        return "mention_without_author"
    if field == "story_insights":
        return "story_insights"
    return "unknown"


def _instagram_comment(entry: _Entry, value: dict[str, Any], where: str) -> Outcome:
    parent = value.get("parent_id")
    channel: Channel = "comment" if parent is None else "reply"
    sender = as_object(value.get("from"))
    author = _author(sender.get("id"), f"{where}.from.id", handle=sender.get("username"))
    if author is None:
        return f"{channel}_without_author"
    media = require(value, "media", where)
    media_id = _meta_id(require(media, "id", f"{where}.media"), f"{where}.media.id")
    return _public(
        entry,
        channel=channel,
        event="message",
        platform_message_id=id_string(require(value, "id", where), f"{where}.id"),
        root_id=media_id,
        in_reply_to=media_id if parent is None else id_string(parent, f"{where}.parent_id"),
        author=author,
        text=plain_text(value.get("text")),
        attachments=[],
        sent_at=_changed_at(entry, value, where, "message"),
    )


# --- Shared pieces ----------------------------------------------------------------------------


def _public(
    entry: _Entry,
    *,
    channel: Channel,
    event: MessageEvent,
    platform_message_id: str,
    root_id: str,
    in_reply_to: str | None,
    author: Author,
    text: str,
    attachments: list[Attachment],
    sent_at: datetime,
) -> CanonicalMessage:
    outbound = author.id == entry.account_id
    customer_id = entry.account_id if outbound else author.id
    return build_message(
        platform=entry.platform,
        channel=channel,
        direction="outbound" if outbound else "inbound",
        account_id=entry.account_id,
        platform_message_id=platform_message_id,
        conversation_id=public_conversation(entry.platform, entry.account_id, root_id, customer_id),
        author=author,
        sent_at=sent_at,
        received_at=entry.received_at,
        text=text,
        event=event,
        in_reply_to=in_reply_to,
        attachments=attachments,
    )


def _author(author_id: Any, where: str, *, name: Any = None, handle: Any = None) -> Author | None:
    """The author the payload names, or None when it names none."""
    if author_id is None or author_id == "":
        return None
    return Author(
        id=_meta_id(author_id, where),
        name=name if isinstance(name, str) and name else None,
        handle=handle if isinstance(handle, str) and handle else None,
    )


def _changed_at(entry: _Entry, value: dict[str, Any], where: str, event: MessageEvent) -> datetime:
    """When the author wrote it. A new item's `created_time` (epoch s); for an edit or a
    delete, the entry's `time`: an edited item's `created_time` can be the original's, and
    dedup tells two edits apart by this instant."""
    created = value.get("created_time")
    if created is not None and (event == "message" or entry.fields.get("time") is None):
        return entry.instant(created, f"{where}.created_time")
    return entry.time()


def _meta_id(value: Any, where: str) -> str:
    """An id that goes into a conversation key: Meta's are digits (posts: `page_post`)."""
    text = id_string(value, where)
    if not _META_ID.fullmatch(text):
        raise NormalizationError("invalid_id", f"{where} = {text!r} is not a Meta id")
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
