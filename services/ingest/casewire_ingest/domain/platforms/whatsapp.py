"""WhatsApp Cloud API webhooks (`object: whatsapp_business_account`) to canonical messages.

Every entry and every change is read: `field: messages` carries customer messages, statuses
and errors; `field: smb_message_echoes` carries what the business sent from the WhatsApp
Business app (coexistence), which is how the SLA clock learns a human answered. Every other
field (account, template, quality, user-preference, group-lifecycle updates...) is
acknowledged and counted under its field name.

Statuses report on the business's own outbound messages: for a reply an agent sent through
the Cloud API from another tool they are all Casewire can see, when Meta sends them to its app
(no echo, no text; docs/replies.md). The first status of an outbound message (`sent`;
`delivered`, `read` or `played` when `sent` did not come first) becomes one outbound message
with no text, sent at the status's timestamp, in the recipient's conversation; the later
statuses of the same wamid make the same canonical message, which deduplication drops.
`failed` is no reply, and neither is a template message (pricing category `marketing`,
`utility`, `authentication`, or an old `business_initiated` conversation): a campaign or a
shipping notice must not mark a case answered. A status whose state is unknown (courier's
`in_orbit`, `deleted`) is acknowledged and not read further.

Customer identity: the conversation is keyed on the customer's `from` (`to` for echoes) and,
when Meta withholds it, on the business-scoped user id (`from_user_id` / `to_user_id`).
`from` is what every message carries today and what echoes carry as `to`, so customer
messages and the business's answers land in the same conversation. Ids are opaque strings:
they are never parsed as phone numbers, because BSUIDs (`US.1234`) already arrive in `from`
and Meta may change the format again. The cost: a customer who later hides their number
behind a username moves to a new conversation key; threading them together needs an
identity map, which a stateless normalizer cannot keep.

A problem inside one message of `value.messages[]` / `value.message_echoes[]` rejects that
message only (`Normalized.rejected`, with its place); the body's other messages are kept. A
broken envelope (object, entry, change, value, metadata) rejects the whole body.

WhatsApp text is not HTML-escaped, so it is kept exactly as sent (no entity unescaping).
Ad referrals and forwarding flags have no canonical field: the message still counts, the
extra context is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from casewire_common.messages import Attachment, Author, MessageEvent

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
    require,
    require_list,
    require_object,
)
from casewire_ingest.domain.timestamps import to_utc

WHATSAPP_OBJECT = "whatsapp_business_account"
_MEDIA_TYPES = frozenset({"image", "video", "audio", "voice", "document", "sticker"})
# Acknowledged but not messages: a reaction is not something to answer, a system message
# (number or identity change) is written by WhatsApp, not by the customer, and
# `request_welcome` says a customer opened the chat for the first time, before writing anything.
_IGNORED_MESSAGE_TYPES = frozenset({"reaction", "system", "request_welcome"})
# The states of an outbound message that WhatsApp accepted (Meta's status webhook reference):
# each one says the business sent it.
_SENT_STATES = frozenset({"sent", "delivered", "read", "played"})
# Pricing categories (and, before per-message pricing, conversation origins) of template
# messages, which a business sends on its own: campaigns, notices, one-time codes.
_TEMPLATE_CATEGORIES = frozenset(
    {
        "marketing",
        "marketing_lite",
        "utility",
        "authentication",
        "authentication_international",
        "authentication-international",
        "business_initiated",
    }
)


@dataclass(frozen=True)
class _Batch:
    """What every message of one `changes[].value` shares."""

    account_id: str
    business_number: str  # digits of the business's display number, to recognise its side
    contacts: list[dict[str, Any]]
    received_at: datetime


def normalize(body: dict[str, Any], received_at: datetime) -> Normalized:
    """All canonical messages in one WhatsApp webhook body; NormalizationError if its envelope
    is bad."""
    if body.get("object") != WHATSAPP_OBJECT:
        raise NormalizationError("unknown_object", f"object is not {WHATSAPP_OBJECT!r}")
    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        raise NormalizationError("missing_field", "entry is missing or empty")
    result = Normalized()
    for entry_index, entry in enumerate(entries):
        where = f"entry[{entry_index}]"
        for change_index, change in enumerate(
            require_list(require(entry, "changes", where), f"{where}.changes")
        ):
            _normalize_change(change, f"{where}.changes[{change_index}]", received_at, result)
    return result


def _normalize_change(change: Any, where: str, received_at: datetime, result: Normalized) -> None:
    field = id_string(require(change, "field", where), f"{where}.field")
    if field not in ("messages", "smb_message_echoes"):
        result.ignored[field] += 1
        return
    value = require_object(require(change, "value", where), f"{where}.value")
    # Value-level errors report Meta-side failures: nothing for a human to answer.
    if errors := len(require_list(value.get("errors", []), f"{where}.value.errors")):
        result.ignored["error"] += errors
    outbound = field == "smb_message_echoes"
    key = "message_echoes" if outbound else "messages"
    messages = require_list(value.get(key, []), f"{where}.value.{key}")
    statuses = require_list(value.get("statuses", []), f"{where}.value.statuses")
    if not messages and not statuses:
        return
    metadata = require(value, "metadata", f"{where}.value")
    batch = _Batch(
        account_id=id_string(
            require(metadata, "phone_number_id", f"{where}.value.metadata"),
            f"{where}.value.metadata.phone_number_id",
        ),
        business_number=_digits(metadata.get("display_phone_number")),
        contacts=[
            c
            for c in require_list(value.get("contacts", []), f"{where}.value.contacts")
            if isinstance(c, dict)
        ],
        received_at=received_at,
    )
    for index, message in enumerate(messages):
        message_where = f"{where}.value.{key}[{index}]"
        with result.item(message_where):
            _add_message(
                require_object(message, message_where), message_where, batch, outbound, result
            )
    for index, status in enumerate(statuses):
        status_where = f"{where}.value.statuses[{index}]"
        with result.item(status_where):
            _add_status(require_object(status, status_where), status_where, batch, result)


def _add_status(status: dict[str, Any], where: str, batch: _Batch, result: Normalized) -> None:
    """The business's outbound message that a status reveals (see the module docstring)."""
    if (
        as_text(status.get("status")) not in _SENT_STATES
        or _category(status) in _TEMPLATE_CATEGORIES
    ):
        result.ignored["status"] += 1
        return
    result.messages.append(
        build_message(
            platform="whatsapp",
            channel="dm",
            direction="outbound",
            account_id=batch.account_id,
            platform_message_id=id_string(require(status, "id", where), f"{where}.id"),
            conversation_id=dm_conversation(
                "whatsapp", batch.account_id, _status_recipient(status, where)
            ),
            author=Author(id=batch.account_id),
            sent_at=to_utc(require(status, "timestamp", where), f"{where}.timestamp"),
            received_at=batch.received_at,
        )
    )


def _category(status: dict[str, Any]) -> str:
    """What the message was billed as: `pricing.category`, else the conversation's origin."""
    category = as_object(status.get("pricing")).get("category")
    if not isinstance(category, str):
        category = as_object(as_object(status.get("conversation")).get("origin")).get("type")
    return category.lower() if isinstance(category, str) else ""


def _status_recipient(status: dict[str, Any], where: str) -> str:
    """The conversation's customer part, keyed as for the customer's own messages: the phone
    number (`recipient_id`), else the business-scoped user id; a group's status threads with
    the group, as its messages do."""
    for key in ("recipient_id", "recipient_user_id"):
        if status.get(key) not in (None, ""):
            recipient = id_string(status[key], f"{where}.{key}")
            return f"group-{recipient}" if status.get("recipient_type") == "group" else recipient
    raise NormalizationError("missing_field", f"{where}.recipient_id is missing")


def _add_message(
    message: dict[str, Any], where: str, batch: _Batch, outbound: bool, result: Normalized
) -> None:
    kind = as_text(message.get("type"))
    if kind in _IGNORED_MESSAGE_TYPES:
        result.ignored[kind] += 1
        return
    event, platform_message_id, content = _event(message, where)
    customer = (
        _echo_recipient(message, batch, where) if outbound else _sender(message, batch, where)
    )
    # An echo's author is the business, named by its account: the echo's `from` is a display
    # number (formatted, or in pywa's fixtures the customer's), not a stable id.
    author = Author(id=batch.account_id) if outbound else _customer_author(customer, message, batch)
    text, attachments = _content(content) if content else ("", [])
    result.messages.append(
        build_message(
            platform="whatsapp",
            channel="dm",
            direction="outbound" if outbound else "inbound",
            event=event,
            account_id=batch.account_id,
            platform_message_id=platform_message_id,
            conversation_id=dm_conversation(
                "whatsapp", batch.account_id, _thread(message, customer)
            ),
            in_reply_to=_reply_target(content),
            author=author,
            text=text,
            attachments=attachments,
            sent_at=to_utc(require(message, "timestamp", where), f"{where}.timestamp"),
            received_at=batch.received_at,
        )
    )


def _event(message: dict[str, Any], where: str) -> tuple[MessageEvent, str, dict[str, Any]]:
    """The event, the platform id it applies to, and the part of the payload with the content.

    An edit or a revoke refers to the original message's id (DESIGN: edits and deletes point at
    the original); an edit carries the complete new content in `edit.message`."""
    kind = message.get("type")
    if kind == "edit":
        edit = require(message, "edit", where)
        original = require(edit, "original_message_id", f"{where}.edit")
        return (
            "edit",
            id_string(original, f"{where}.edit.original_message_id"),
            as_object(edit.get("message")),
        )
    if kind == "revoke":
        revoke = require(message, "revoke", where)
        original = require(revoke, "original_message_id", f"{where}.revoke")
        return "delete", id_string(original, f"{where}.revoke.original_message_id"), {}
    return "message", id_string(require(message, "id", where), f"{where}.id"), message


def _sender(message: dict[str, Any], batch: _Batch, where: str) -> str:
    """The customer who wrote an inbound message (see the module docstring for the key)."""
    for key in ("from", "from_user_id"):
        if message.get(key) not in (None, ""):
            return id_string(message[key], f"{where}.{key}")
    # Meta lists the senders of a value's messages in `contacts`; a message without `from`
    # (restfb's contact-request fixture) belongs to the only contact there is.
    if len(batch.contacts) == 1:
        only = _contact_id(batch.contacts[0])
        if only:
            return only
    # No sender at all (courier's no_from): there is no conversation to put it in.
    raise NormalizationError(
        "missing_field", f"{where}.from is missing and no contact identifies the sender"
    )


def _echo_recipient(echo: dict[str, Any], batch: _Batch, where: str) -> str:
    """The customer an echo was sent to: `to` (Meta's docs), else `to_user_id`.

    pywa's captured edit and revoke echoes carry the two parties the other way round, so the
    party whose number is the business's own is never taken for the customer."""
    recipient = echo.get("to")
    sender = echo.get("from")
    if batch.business_number and _digits(recipient) == batch.business_number and sender:
        return id_string(sender, f"{where}.from")
    for key in ("to", "to_user_id"):
        if echo.get(key) not in (None, ""):
            return id_string(echo[key], f"{where}.{key}")
    raise NormalizationError("missing_field", f"{where}.to is missing")


def _thread(message: dict[str, Any], customer: str) -> str:
    """The conversation's customer part. A group message threads with its group, not with the
    participant: the group is where the brand answers. The prefix keeps group ids (which can
    be plain digits) apart from customer ids."""
    group = message.get("group_id")
    return f"group-{group}" if isinstance(group, str) and group else customer


def _customer_author(customer: str, message: dict[str, Any], batch: _Batch) -> Author:
    """The customer, named from the `contacts[]` entry whose wa_id or user_id matches."""
    ids = {customer, as_text(message.get("from")), as_text(message.get("from_user_id"))} - {""}
    for contact in batch.contacts:
        if {as_text(contact.get("wa_id")), as_text(contact.get("user_id"))} & ids:
            profile = as_object(contact.get("profile"))
            return Author(
                id=customer,
                handle=as_text(profile.get("username")).lstrip("@") or None,
                name=as_text(profile.get("name")) or None,
            )
    return Author(id=customer)


def _contact_id(contact: dict[str, Any]) -> str:
    for key in ("wa_id", "user_id"):
        value = contact.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _reply_target(content: dict[str, Any]) -> str | None:
    """`context.id`: the message this one answers. A context that only says the message was
    forwarded has no id; forwarding itself has no place in the canonical message."""
    target = as_object(content.get("context")).get("id")
    return target if isinstance(target, str) and target else None


def _content(message: dict[str, Any]) -> tuple[str, list[Attachment]]:
    """Text and attachments of one message, by its `type`.

    A type this code does not know (`unsupported`, `unknown`, or one Meta added later) still
    came from a customer: it becomes a message with an `other` attachment so a human looks."""
    kind = as_text(message.get("type"))
    payload = as_object(message.get(kind))
    if kind == "text":
        return as_text(payload.get("body")), []
    if kind in _MEDIA_TYPES:
        return as_text(payload.get("caption")), [attachment(kind, payload.get("url"))]
    if kind == "location":
        return _location(payload)
    if kind == "contacts":
        return _shared_contacts(message.get("contacts")), []
    if kind == "order":
        return _order(payload), []
    if kind == "button":  # the legacy quick-reply button of a template
        return as_text(payload.get("text")), []
    if kind == "interactive":
        return _interactive(payload)
    return as_text(as_object(message.get("text")).get("body")), [attachment("other")]


def _interactive(interactive: dict[str, Any]) -> tuple[str, list[Attachment]]:
    """A button or list choice is the title the customer tapped; a Flow reply is its answers."""
    reply_kind = interactive.get("type")
    reply = as_object(interactive.get(reply_kind)) if isinstance(reply_kind, str) else {}
    if reply_kind in ("button_reply", "list_reply"):
        return as_text(reply.get("title")), []
    if reply_kind == "nfm_reply":
        return _flow_answers(reply), []
    return "", [attachment("other")]


def _flow_answers(reply: dict[str, Any]) -> str:
    """A Flow's answers as `question: answer` lines (`response_json` is a JSON *string*).

    When it is not a JSON object (courier's nfm_reply_non_object) the customer still replied:
    the reply's own `body` is kept rather than rejecting the message."""
    try:
        answers = json.loads(reply.get("response_json", ""))
    except (TypeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        answers = None
    if isinstance(answers, dict):
        lines = [
            f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
            for name, value in answers.items()
            if name != "flow_token"  # an opaque correlation token, not an answer
        ]
        if lines:
            return "\n".join(lines)
    return as_text(reply.get("body"))


def _location(location: dict[str, Any]) -> tuple[str, list[Attachment]]:
    """The place's name and address as text; the coordinates as a `geo:` URI (RFC 5870)."""
    latitude, longitude = location.get("latitude"), location.get("longitude")
    has_coordinates = all(
        isinstance(c, int | float) and not isinstance(c, bool) for c in (latitude, longitude)
    )
    text = "\n".join(
        part for part in (as_text(location.get("name")), as_text(location.get("address"))) if part
    )
    return text, [
        attachment("location", f"geo:{latitude},{longitude}" if has_coordinates else None)
    ]


def _shared_contacts(cards: Any) -> str:
    """Shared contact cards as `name: phones` lines, so an agent can read them."""
    lines = []
    for card in map(as_object, as_list(cards)):
        name = as_text(as_object(card.get("name")).get("formatted_name"))
        numbers = (as_text(as_object(phone).get("phone")) for phone in as_list(card.get("phones")))
        phones = ", ".join(number for number in numbers if number)
        lines.append(f"{name}: {phones}" if name and phones else name or phones)
    return "\n".join(line for line in lines if line)


def _order(order: dict[str, Any]) -> str:
    """The order's note and one `quantity × product @ price currency` line per item."""
    lines = [as_text(order.get("text"))]
    for item in map(as_object, as_list(order.get("product_items"))):
        lines.append(
            f"{item.get('quantity')} × {item.get('product_retailer_id')}"
            f" @ {item.get('item_price')} {item.get('currency')}"
        )
    return "\n".join(line for line in lines if line)


def _digits(value: Any) -> str:
    return "".join(ch for ch in value if ch.isdigit()) if isinstance(value, str) else ""
