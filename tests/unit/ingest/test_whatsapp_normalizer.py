"""WhatsApp Cloud API normalization.

Every payload in the shared `payloads/whatsapp/` folder has its expected outcome in EXPECTED
(the published messages field by field, what was acknowledged and not published, which
messages are rejected, or why the body is rejected); a test keeps that table in step with the
folder. Hand-written cases below it cover what the fixtures do not: batching, bad messages
beside good ones, scripts, bad envelopes.
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
from casewire_ingest.domain.platforms import whatsapp

from tests.unit.ingest.body_sweep import assert_every_odd_field_is_tolerated_or_rejected

RECEIVED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RESTFB_WAMID = "wamid.HBgNNDkxNTIwOTgzMzM5OBUCABIYHGDEHJVFHJEVCFHJEVBCMTkyODk1OEIyAA=="
RESTFB_BSUID_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
SHEENA = {"author_id": "US.13491208655302741918", "name": "Sheena Nelson"}


@dataclass(frozen=True)
class Outcome:
    messages: tuple[dict[str, Any], ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)
    rejected: str | None = None
    rejected_items: tuple[tuple[str, str], ...] = ()


def published(*messages: dict[str, Any], **ignored: int) -> Outcome:
    return Outcome(messages=messages, ignored=ignored)


def acknowledged(**ignored: int) -> Outcome:
    return Outcome(ignored=ignored)


def rejected(reason: str) -> Outcome:
    return Outcome(rejected=reason)


def rejected_message(reason: str) -> Outcome:
    """The body's only message cannot be read (ingest refuses such a body: nothing else is
    in it)."""
    return Outcome(rejected_items=(("entry[0].changes[0].value.messages[0]", reason),))


def at(instant: str) -> datetime:
    return datetime.fromisoformat(instant)


def message(
    *,
    account: str,
    conversation: str,
    author_id: str,
    platform_message_id: str,
    sent_at: str,
    text: str = "",
    name: str | None = None,
    handle: str | None = None,
    direction: str = "inbound",
    event: str = "message",
    in_reply_to: str | None = None,
    attachments: tuple[tuple[str, str | None], ...] = (),
) -> dict[str, Any]:
    """A canonical message as `observed` shows it: every field the contract defines."""
    return {
        "platform": "whatsapp",
        "channel": "dm",
        "visibility": "private",
        "direction": direction,
        "event": event,
        "account_id": account,
        "platform_message_id": platform_message_id,
        "conversation_id": conversation,
        "in_reply_to": in_reply_to,
        "author": {
            "id": author_id,
            "handle": handle,
            "name": name,
            "followers": None,
            "verified": None,
        },
        "text": text,
        "language": None,
        "attachments": list(attachments),
        "sent_at": at(sent_at),
    }


def status_reply(
    *, account: str, customer: str, platform_message_id: str, sent_at: str
) -> dict[str, Any]:
    """The business's outbound message that a status reveals: no text, the business as author,
    sent at the status's time, in the customer's conversation."""
    return message(
        account=account,
        conversation=f"whatsapp:{account}:{customer}",
        author_id=account,
        platform_message_id=platform_message_id,
        sent_at=sent_at,
        direction="outbound",
    )


PYWA_REPLY = {"account": "1122334455667", "customer": "972987654321"}
PYWA_WAMID = "wamid.xyzxyz"


def courier(**fields: Any) -> dict[str, Any]:
    """nyaruka/courier's fixtures: one business number, customer 5678 (Kerry Fisher)."""
    defaults: dict[str, Any] = {
        "account": "1234567890",
        "conversation": "whatsapp:1234567890:5678",
        "author_id": "5678",
        "name": "Kerry Fisher",
        "platform_message_id": "external_id",
        "sent_at": "2016-01-30T01:57:09Z",
    }
    return message(**(defaults | fields))


def pywa(**fields: Any) -> dict[str, Any]:
    """pywa's fixtures: business 1122334455667, customer 972987654321 (Test Name)."""
    defaults: dict[str, Any] = {
        "account": "1122334455667",
        "conversation": "whatsapp:1122334455667:972987654321",
        "author_id": "972987654321",
        "name": "Test Name",
        "platform_message_id": "wamid.xyzxyz",
    }
    return message(**(defaults | fields))


def restfb(**fields: Any) -> dict[str, Any]:
    """restfb's classic fixtures: business 10634295353625, customer 491234567890 (TestUser)."""
    defaults: dict[str, Any] = {
        "account": "10634295353625",
        "conversation": "whatsapp:10634295353625:491234567890",
        "author_id": "491234567890",
        "name": "TestUser",
        "platform_message_id": RESTFB_WAMID,
        "sent_at": "2022-05-22T21:01:53Z",
    }
    return message(**(defaults | fields))


def restfb_bsuid(**fields: Any) -> dict[str, Any]:
    """restfb's newer fixtures: business 106540352242922, customers by business-scoped id."""
    defaults: dict[str, Any] = {
        "account": "106540352242922",
        "platform_message_id": RESTFB_BSUID_WAMID,
        "sent_at": "2025-06-08T20:59:43Z",
    }
    return message(**(defaults | fields))


HELLO = courier(text="Hello World")
PHONE_CAPTION = "Check out my new phone!"
FLOW_ANSWERS = (
    "comment_text: Comment Text\ndelivery_rating: 4\npurchase_rating: 2\n"
    "recommend_radio: 0\ncs_rating: 0"
)

EXPECTED: dict[str, Outcome] = {
    # --- nyaruka/courier -------------------------------------------------------------------
    "courier_audio.json": published(courier(text=PHONE_CAPTION, attachments=(("audio", None),))),
    "courier_button.json": published(courier(text="No", in_reply_to="gBGGFmkiWVVPAgkgQkwi7IORac0")),
    "courier_button_reply.json": published(courier(text="Yes")),
    "courier_document.json": published(
        courier(text="80skaraokesonglistartist", attachments=(("file", None),))
    ),
    # The same wamid twice in one body: both are normalized; dropping the second is the
    # deduplication stage's job (and its metric's).
    "courier_duplicate.json": published(HELLO, HELLO),
    "courier_error_errors.json": acknowledged(error=1),
    # `unsupported` with errors: still a customer's message, flagged for a human to look at.
    "courier_error_msg.json": published(
        courier(text="Hello World", attachments=(("other", None),))
    ),
    "courier_error_status.json": acknowledged(status=1),  # failed: no reply
    "courier_group_message.json": published(
        courier(
            text="Hello World, group message",
            conversation="whatsapp:1234567890:group-555555555",
        )
    ),
    "courier_hello.json": published(HELLO),
    "courier_hello_bsuid_in_from.json": published(
        courier(
            text="Hello World",
            conversation="whatsapp:1234567890:US.1234",
            author_id="US.1234",
            handle="kfisher",
        )
    ),
    "courier_hello_from_bsuid.json": published(
        courier(
            text="Hello World",
            conversation="whatsapp:1234567890:US.1234",
            author_id="US.1234",
            handle="kfisher",
        )
    ),
    # Ids are opaque: an odd-looking user id (or `from`) is not a reason to lose a message.
    "courier_hello_invalid_user_id.json": published(courier(text="Hello World", handle="kfisher")),
    "courier_hello_user_id.json": published(courier(text="Hello World", handle="kfisher")),
    "courier_ignore_status.json": acknowledged(status=1),
    "courier_image.json": published(courier(text=PHONE_CAPTION, attachments=(("image", None),))),
    "courier_invalid_from.json": published(
        courier(text="Hello World", conversation="whatsapp:1234567890:bla", author_id="bla")
    ),
    # A status of unknown state is not read further, so it cannot make a body bad.
    "courier_invalid_status.json": acknowledged(status=1),
    "courier_invalid_timestamp.json": rejected_message("invalid_timestamp"),
    "courier_list_reply.json": published(courier(text="Yes")),
    "courier_location.json": published(
        courier(
            text="Main Street Beach\nMain Street Beach, Santa Cruz, CA",
            attachments=(("location", "geo:0.0,1.0"),),
        )
    ),
    "courier_nfm_reply.json": published(courier(text="first_name: Bob\nage: 32")),
    "courier_nfm_reply_non_object.json": published(courier(text="Sent")),
    "courier_no_from.json": rejected_message("missing_field"),
    # `sent` of a message sent from another tool: the business answered (no text to show).
    "courier_valid_status.json": published(
        status_reply(
            account="1234567890",
            customer="5678",
            platform_message_id="external_id",
            sent_at="2016-01-30T01:57:09Z",
        )
    ),
    "courier_video.json": published(courier(text=PHONE_CAPTION, attachments=(("video", None),))),
    "courier_voice.json": published(courier(attachments=(("audio", None),))),
    # --- david-lev/pywa --------------------------------------------------------------------
    "pywa_button__button.json": published(
        pywa(text="title", in_reply_to="wamid.xyzxyz", sent_at="2023-10-25T20:45:30Z")
    ),
    "pywa_button__quick_reply.json": published(
        pywa(
            text="title",
            platform_message_id="wamid.xsidjw",
            in_reply_to="wamid.xyzxyz==",
            sent_at="2023-10-25T21:23:47Z",
        )
    ),
    "pywa_button__quick_reply_without_context.json": published(
        pywa(text="title", platform_message_id="wamid.xsidjx", sent_at="2023-10-25T21:23:47Z")
    ),
    # The placeholders are pywa's; the contact (972987654321) is not the sender, so no name.
    "pywa_deleted__revoke.json": published(
        pywa(
            account="<BUSINESS_PHONE_NUMBER_ID>",
            conversation="whatsapp:<BUSINESS_PHONE_NUMBER_ID>:<WHATSAPP_USER_PHONE_NUMBER>",
            author_id="<WHATSAPP_USER_PHONE_NUMBER>",
            name=None,
            event="delete",
            platform_message_id="<ORIGINAL_WHATSAPP_MESSAGE_ID>",
            sent_at="2023-10-11T16:53:43Z",
        )
    ),
    "pywa_edited__image.json": published(
        pywa(
            account="106540352242922",
            conversation="whatsapp:106540352242922:16505551234",
            author_id="16505551234",
            name=None,
            event="edit",
            platform_message_id="wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
            text="Updated image caption",
            attachments=(("image", "https://media.example.com/updated-image.jpg"),),
            in_reply_to="M0",
            sent_at="2025-06-13T22:42:55Z",
        )
    ),
    "pywa_interactive_list__callback.json": published(
        pywa(
            text="title",
            platform_message_id="wamid.zyzxyz",
            in_reply_to="wamid.xyzxyz",
            sent_at="2023-10-25T20:48:25Z",
        )
    ),
    "pywa_interactive_list__description.json": published(
        pywa(
            text="title",
            platform_message_id="wamid.zyzxyz",
            in_reply_to="wamid.xyzxyz",
            sent_at="2023-10-25T20:48:25Z",
        )
    ),
    "pywa_interactive_nfm_reply__completion.json": published(
        pywa(
            text=FLOW_ANSWERS,
            platform_message_id="wamid.wegrchytvwcggt==",
            in_reply_to="wamid.gvwegfretge==",
            sent_at="2023-12-13T21:21:13Z",
        )
    ),
    "pywa_interactive_nfm_reply__without_flow_token.json": published(
        pywa(
            text=FLOW_ANSWERS,
            platform_message_id="wamid.wegrchytvwcggt==",
            in_reply_to="wamid.gvwegfretge==",
            sent_at="2023-12-13T21:21:13Z",
        )
    ),
    "pywa_message__animated_sticker.json": published(
        pywa(attachments=(("sticker", None),), sent_at="2023-10-11T17:03:05Z")
    ),
    "pywa_message__audio.json": published(
        pywa(attachments=(("audio", None),), sent_at="2023-10-11T16:58:29Z")
    ),
    "pywa_message__chosen_location.json": published(
        pywa(
            text="Facebook HQ\n1 Hacker Way, Menlo Park, CA 94025",
            attachments=(("location", "geo:37.4611978,-122.2164385"),),
            sent_at="2023-10-11T17:15:57Z",
        )
    ),
    "pywa_message__contacts.json": published(
        pywa(
            text=(
                "Chandler Bing: +1 555-555-5555\nMonica: +1 666-666-6666\n"
                "Rachel Green: +1 777-777-7777"
            ),
            sent_at="2023-10-11T17:17:01Z",
        )
    ),
    "pywa_message__current_location.json": published(
        pywa(attachments=(("location", "geo:12.25089,43.90539"),), sent_at="2023-10-11T17:15:57Z")
    ),
    "pywa_message__document.json": published(
        pywa(text="caption", attachments=(("file", None),), sent_at="2023-10-11T17:01:06Z")
    ),
    "pywa_message__forwarded.json": published(
        pywa(text="forwarded text", sent_at="2023-10-11T17:20:15Z")
    ),
    "pywa_message__forwarded_many_times.json": published(
        pywa(text="text forwarded many times", sent_at="2023-10-11T17:22:48Z")
    ),
    "pywa_message__image.json": published(
        pywa(attachments=(("image", None),), sent_at="2023-10-11T16:56:19Z")
    ),
    # An interactive message WhatsApp could not decode, with a value-level error beside it.
    "pywa_message__interactive_message_with_err.json": published(
        pywa(
            platform_message_id="wamid.wegrchytvwcggt=",
            in_reply_to="wamid.gvwegfretge==",
            attachments=(("other", None),),
            sent_at="2023-11-20T18:38:14Z",
        ),
        error=1,
    ),
    "pywa_message__media_with_url.json": published(
        pywa(
            attachments=(
                (
                    "image",
                    "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
                    "?mid=65463453&source=webhook&ext=487r9re&hash=heiwchueowbcew-dnedcw",
                ),
            ),
            sent_at="2023-10-11T16:56:19Z",
        )
    ),
    "pywa_message__order.json": published(
        pywa(
            text="3 × HAMBURGER @ 30 ILS\n2 × FRENCH_FRIES @ 35 ILS\n2 × SODA @ 10 ILS",
            sent_at="2023-10-11T17:17:48Z",
        )
    ),
    "pywa_message__reaction.json": acknowledged(reaction=1),
    # A click-to-WhatsApp ad: the customer's text is the message; the ad is context only.
    "pywa_message__referral.json": published(
        pywa(text="BODY", platform_message_id="wamid.ID", sent_at="2023-10-11T17:23:20Z")
    ),
    "pywa_message__reply.json": published(
        pywa(text="replied text", in_reply_to="wamid.xyzxyz==", sent_at="2023-10-11T17:19:06Z")
    ),
    "pywa_message__static_sticker.json": published(
        pywa(attachments=(("sticker", None),), sent_at="2023-10-11T17:02:40Z")
    ),
    "pywa_message__text.json": published(pywa(text="Body Text", sent_at="2023-10-11T16:53:43Z")),
    "pywa_message__unreaction_empty.json": acknowledged(reaction=1),
    "pywa_message__unreaction_no_emoji.json": acknowledged(reaction=1),
    "pywa_message__unsupported.json": published(
        pywa(attachments=(("other", None),), sent_at="2023-10-11T17:18:26Z")
    ),
    "pywa_message__unsupported_with_type.json": published(
        pywa(attachments=(("other", None),), sent_at="2023-10-11T17:18:26Z")
    ),
    "pywa_message__video.json": published(
        pywa(text="caption", attachments=(("video", None),), sent_at="2023-10-11T17:12:42Z")
    ),
    "pywa_message__voice.json": published(
        pywa(attachments=(("audio", None),), sent_at="2023-10-11T16:57:53Z")
    ),
    # Echoes: written by the business in the WhatsApp Business app. pywa's edit and delete
    # echoes carry the parties the other way round (`to` is the business's own number).
    "pywa_outgoing_echo__delete.json": published(
        pywa(
            direction="outbound",
            event="delete",
            author_id="1122334455667",
            name=None,
            platform_message_id="wamid.zzzzzz",
            sent_at="2023-10-11T17:22:48Z",
        )
    ),
    "pywa_outgoing_echo__edit.json": published(
        pywa(
            direction="outbound",
            event="edit",
            author_id="1122334455667",
            name=None,
            platform_message_id="wamid.zzzzzz",
            text="Text was edited",
            sent_at="2023-10-11T17:22:48Z",
        )
    ),
    "pywa_outgoing_echo__text.json": published(
        pywa(
            direction="outbound",
            conversation="whatsapp:1122334455667:<WHATSAPP_USER_PHONE_NUMBER>",
            author_id="1122334455667",
            name=None,
            platform_message_id="<WHATSAPP_MESSAGE_ID>",
            text="Test message",
            sent_at="2023-10-11T16:53:43Z",
        )
    ),
    "pywa_signed_raw_body_text.json": published(
        message(
            account="277321005464405",
            conversation="whatsapp:277321005464405:972544401243",
            author_id="972544401243",
            name="PyWa Tests",
            platform_message_id=(
                "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"
            ),
            text="Hey there! I am using PyWa.",
            sent_at="2024-10-29T19:58:23Z",
        )
    ),
    # Every status of a delivered message makes the same message (one id): the first one
    # published wins, deduplication drops the rest.
    "pywa_status__delivered.json": published(
        status_reply(**PYWA_REPLY, platform_message_id=PYWA_WAMID, sent_at="2023-10-25T20:49:05Z")
    ),
    "pywa_status__failed.json": acknowledged(status=1),
    # A status in a group threads with the group, as the group's messages do.
    "pywa_status__group.json": published(
        status_reply(
            account="<BUSINESS_PHONE_NUMBER_ID>",
            customer="group-fowefinoewcnw",
            platform_message_id="<WHATSAPP_MESSAGE_ID>",
            sent_at="2023-10-25T20:49:05Z",
        )
    ),
    "pywa_status__played.json": published(
        status_reply(**PYWA_REPLY, platform_message_id=PYWA_WAMID, sent_at="2023-07-15T00:20:58Z")
    ),
    "pywa_status__read.json": published(
        status_reply(**PYWA_REPLY, platform_message_id=PYWA_WAMID, sent_at="2023-07-15T00:20:58Z")
    ),
    "pywa_status__sent.json": published(
        status_reply(**PYWA_REPLY, platform_message_id=PYWA_WAMID, sent_at="2023-10-25T20:49:05Z")
    ),
    "pywa_status__with_tracker.json": published(
        status_reply(**PYWA_REPLY, platform_message_id=PYWA_WAMID, sent_at="2023-10-25T20:49:05Z")
    ),
    "pywa_system__identity_change.json": acknowledged(system=1),
    "pywa_system__phone_number_change.json": acknowledged(system=1),
    "pywa_user_marketing_preferences__resume.json": acknowledged(user_preferences=1),
    "pywa_user_marketing_preferences__signup.json": acknowledged(user_preferences=1),
    # --- restfb/restfb ---------------------------------------------------------------------
    "restfb_webhook-accountReviewUpdate.json": acknowledged(account_review_update=1),
    "restfb_webhook-accountUpdate-banned.json": acknowledged(account_update=1),
    "restfb_webhook-accountUpdate-verified.json": acknowledged(account_update=1),
    "restfb_webhook-businessUsernameUpdate-approved.json": acknowledged(business_username_update=1),
    "restfb_webhook-group-participants-update.json": acknowledged(group_participants_update=1),
    "restfb_webhook-incoming-message-ads.json": published(restfb(text="Test")),
    "restfb_webhook-incoming-message-audio.json": published(restfb(attachments=(("audio", None),))),
    "restfb_webhook-incoming-message-button.json": published(
        restfb(text="No", in_reply_to="wamid.ID")
    ),
    # No `from` at all: the only contact in the value is the sender.
    "restfb_webhook-incoming-message-contacts-request-bsuid.json": published(
        restfb_bsuid(
            conversation="whatsapp:106540352242922:US.13491208655302741918",
            handle="realsheenanelson",
            text="15551234567",
            **SHEENA,
        )
    ),
    # The sender (333333333333) is not the listed contact (222222222222): no name is guessed.
    "restfb_webhook-incoming-message-contacts.json": published(
        message(
            account="1111111111111111",
            conversation="whatsapp:1111111111111111:333333333333",
            author_id="333333333333",
            platform_message_id="wamid.randomwhatsappmessageid",
            text="j_doe",
            sent_at="2023-11-28T10:48:48Z",
        )
    ),
    "restfb_webhook-incoming-message-contacts2.json": published(
        message(
            account="REDACTED",
            conversation="whatsapp:REDACTED:REDACTED",
            author_id="REDACTED",
            name="REDACTED",
            platform_message_id="wamid.HBg...",
            text="REDACTED: +39 393 REDACTED\nREDACTED: +39 349 REDACTED",
            sent_at="2024-04-09T07:10:03Z",
        )
    ),
    "restfb_webhook-incoming-message-document.json": published(
        restfb(text="RESTFB ANNIVERSARY", attachments=(("file", None),))
    ),
    "restfb_webhook-incoming-message-emoji.json": acknowledged(reaction=1),
    "restfb_webhook-incoming-message-error.json": published(restfb(attachments=(("other", None),))),
    "restfb_webhook-incoming-message-image.json": published(
        restfb(text="Some awesome image", attachments=(("image", None),))
    ),
    "restfb_webhook-incoming-message-interactive-btn.json": published(restfb(text="button-text")),
    "restfb_webhook-incoming-message-interactive-list.json": published(
        restfb(text="list_reply_title")
    ),
    # The fixture itself holds a literal backslash-u sequence; it is kept, not decoded.
    "restfb_webhook-incoming-message-location.json": published(
        restfb(
            text="Saarbr\\u00fccken\nSaarbr\\u00fccken",
            attachments=(("location", "geo:49.234939575195,6.9993596076965"),),
        )
    ),
    # A marketing template (pricing category) is a campaign, not an answer to anyone.
    "restfb_webhook-incoming-message-status-bsuid.json": acknowledged(status=1),
    "restfb_webhook-incoming-message-status-errors.json": acknowledged(status=1),
    "restfb_webhook-incoming-message-status-group-bsuid.json": published(
        status_reply(
            account="106540352242922",
            customer="group-120363418770915618@g.us",
            platform_message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            sent_at="2025-06-15T23:29:33Z",
        )
    ),
    # Meta's sample with placeholders ("TIMESTAMP"): a `sent` status whose time cannot be
    # read is rejected with its place, to be replayed once understood.
    "restfb_webhook-incoming-message-status-ui.json": Outcome(
        rejected_items=(("entry[0].changes[0].value.statuses[0]", "invalid_timestamp"),)
    ),
    "restfb_webhook-incoming-message-sticker.json": published(
        restfb(attachments=(("sticker", None),))
    ),
    "restfb_webhook-incoming-message-system-bsuid.json": acknowledged(system=1),
    "restfb_webhook-incoming-message-system.json": acknowledged(system=1),
    "restfb_webhook-incoming-message-text-bsuid.json": published(
        restfb_bsuid(
            conversation="whatsapp:106540352242922:group-120363418770915618@g.us",
            handle="realsheenanelson",
            text="Does it come in another color?",
            **SHEENA,
        )
    ),
    "restfb_webhook-incoming-message-text.json": published(restfb(text="Test")),
    "restfb_webhook-incoming-message-unsupported.json": published(
        message(
            account="1111111111111111",
            conversation="whatsapp:1111111111111111:333333333333",
            author_id="333333333333",
            platform_message_id="wamid.randomwhatsappmessageid",
            attachments=(("other", None),),
            sent_at="2023-12-06T13:21:32Z",
        )
    ),
    "restfb_webhook-incoming-message-video.json": published(
        restfb(text="Video", attachments=(("video", None),))
    ),
    "restfb_webhook-messageTemplateStatusUpdate-approved.json": acknowledged(
        message_template_status_update=1
    ),
    "restfb_webhook-messageTemplateStatusUpdate-disabling.json": acknowledged(
        message_template_status_update=1
    ),
    "restfb_webhook-phoneNumberNameUpdate.json": acknowledged(phone_number_name_update=1),
    "restfb_webhook-phoneNumberQualityUpdate.json": acknowledged(phone_number_quality_update=1),
    "restfb_webhook-userIdUpdate.json": acknowledged(user_id_update=1),
}


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "payloads" / "whatsapp"


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


def assert_well_formed(msg: CanonicalMessage) -> None:
    assert msg.id == message_id("whatsapp", msg.platform_message_id)
    assert msg.sent_at.utcoffset() == timedelta(0)
    assert msg.received_at == RECEIVED_AT


def test_every_whatsapp_fixture_has_an_expected_outcome(folder: Path) -> None:
    assert sorted(path.name for path in folder.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_whatsapp_fixture(folder: Path, name: str) -> None:
    body = load(folder, name)
    expected = EXPECTED[name]
    if expected.rejected:
        with pytest.raises(NormalizationError) as error:
            whatsapp.normalize(body, RECEIVED_AT)
        assert error.value.reason == expected.rejected
        return
    result = whatsapp.normalize(body, RECEIVED_AT)
    assert [observed(msg) for msg in result.messages] == list(expected.messages)
    assert dict(result.ignored) == expected.ignored
    assert [(item.where, item.reason) for item in result.rejected] == list(expected.rejected_items)
    for msg in result.messages:
        assert_well_formed(msg)


# --- hand-written cases ---------------------------------------------------------------------


def with_text(body: dict[str, Any], text: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    changed["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = text
    return changed


@pytest.mark.parametrize(
    "text",
    [
        "\u200fطلبي لم يصل بعد، رقم الطلب ٤٥٦٧\u200f",  # Arabic with RLM marks and Arabic digits
        "พัสดุของฉันยังไม่มาถึงเลยค่ะ",  # Thai: no spaces between words
        "Η παραγγελία μου δεν έφτασε ακόμα!",  # Greek with tonos
        "👍🏻 order #12 &amp; <b>still</b> missing",  # skin-tone emoji; WhatsApp does not escape
    ],
)
def test_text_in_any_script_is_kept_exactly(folder: Path, text: str) -> None:
    body = with_text(load(folder, "pywa_message__text.json"), text)

    [msg] = whatsapp.normalize(body, RECEIVED_AT).messages

    assert msg.text == text


def test_every_entry_and_change_of_a_batched_body_is_read(folder: Path) -> None:
    text_change = load(folder, "pywa_message__text.json")["entry"][0]["changes"][0]
    status_change = load(folder, "pywa_status__read.json")["entry"][0]["changes"][0]
    echo_change = load(folder, "pywa_outgoing_echo__edit.json")["entry"][0]["changes"][0]
    account_change = load(folder, "restfb_webhook-accountUpdate-verified.json")["entry"][0][
        "changes"
    ][0]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [text_change, status_change]},
            {"id": "2", "changes": [echo_change, account_change]},
        ],
    }

    result = whatsapp.normalize(body, RECEIVED_AT)

    assert [(m.direction, m.event, m.text) for m in result.messages] == [
        ("inbound", "message", "Body Text"),
        ("outbound", "message", ""),  # the `read` status of the business's message
        ("outbound", "edit", "Text was edited"),
    ]
    assert len({m.conversation_id for m in result.messages}) == 1
    assert dict(result.ignored) == {"account_update": 1}


def test_customer_message_and_business_echo_share_one_conversation(folder: Path) -> None:
    inbound = whatsapp.normalize(load(folder, "pywa_message__text.json"), RECEIVED_AT)
    echo = load(folder, "pywa_outgoing_echo__text.json")
    echo_value = echo["entry"][0]["changes"][0]["value"]
    echo_value["message_echoes"][0]["to"] = "972987654321"

    outbound = whatsapp.normalize(echo, RECEIVED_AT)

    assert outbound.messages[0].conversation_id == inbound.messages[0].conversation_id
    assert outbound.messages[0].customer_id == "972987654321"


def test_an_echo_without_a_phone_number_falls_back_to_the_business_scoped_id(
    folder: Path,
) -> None:
    echo = load(folder, "pywa_outgoing_echo__text.json")
    del echo["entry"][0]["changes"][0]["value"]["message_echoes"][0]["to"]

    [msg] = whatsapp.normalize(echo, RECEIVED_AT).messages

    assert msg.conversation_id == "whatsapp:1122334455667:<BSUID>"


def test_a_message_of_an_unknown_type_is_flagged_for_a_human(folder: Path) -> None:
    body = load(folder, "pywa_message__text.json")
    new_kind = body["entry"][0]["changes"][0]["value"]["messages"][0]
    new_kind["type"] = "a_type_from_next_year"
    del new_kind["text"]

    [msg] = whatsapp.normalize(body, RECEIVED_AT).messages

    assert (msg.text, [a.type for a in msg.attachments]) == ("", ["other"])


def test_a_customer_opening_the_chat_is_acknowledged_not_a_message(folder: Path) -> None:
    body = load(folder, "pywa_message__text.json")
    opened = body["entry"][0]["changes"][0]["value"]["messages"][0]
    opened["type"] = "request_welcome"
    del opened["text"]

    result = whatsapp.normalize(body, RECEIVED_AT)

    assert (result.messages, dict(result.ignored)) == ([], {"request_welcome": 1})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"object": "page", "entry": []}, "unknown_object"),
        ({"object": "whatsapp_business_account"}, "missing_field"),
        ({"object": "whatsapp_business_account", "entry": []}, "missing_field"),
        ({"object": "whatsapp_business_account", "entry": [{"id": "1"}]}, "missing_field"),
        (
            {"object": "whatsapp_business_account", "entry": [{"changes": {"field": "messages"}}]},
            "invalid_field",
        ),
        (
            {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {}}]}]},
            "missing_field",
        ),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "messages", "value": {"messages": {}}}]}],
            },
            "invalid_field",
        ),
    ],
)
def test_a_broken_envelope_is_rejected_with_a_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalizationError) as error:
        whatsapp.normalize(body, RECEIVED_AT)

    assert error.value.reason == reason


def test_a_message_without_phone_number_id_is_rejected(folder: Path) -> None:
    body = load(folder, "courier_hello.json")
    del body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]

    with pytest.raises(NormalizationError) as error:
        whatsapp.normalize(body, RECEIVED_AT)

    assert error.value.reason == "missing_field"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timestamp": "1e20"}, "impossible_timestamp"),  # beyond year 9999
        ({"from": None}, "missing_field"),  # and two contacts: whose is it?
        ({"id": None}, "missing_field"),
        ({"type": "edit", "edit": {}}, "missing_field"),
    ],
    ids=["timestamp-beyond-9999", "no-sender", "no-id", "edit-without-original"],
)
def test_a_message_that_cannot_be_read_is_rejected_alone_with_its_place(
    folder: Path, change: dict[str, Any], reason: str
) -> None:
    body = load(folder, "courier_hello.json")
    value = body["entry"][0]["changes"][0]["value"]
    good = value["messages"][0]
    value["contacts"].append({"profile": {"name": "Someone Else"}, "wa_id": "9999"})
    value["messages"] = [good | {"id": "wamid.bad"} | change, good]

    result = whatsapp.normalize(body, RECEIVED_AT)

    assert [(msg.platform_message_id, msg.text) for msg in result.messages] == [
        ("external_id", "Hello World")
    ]
    where = "entry[0].changes[0].value.messages[0]"
    [rejection] = result.rejected
    assert (rejection.where, rejection.reason) == (where, reason)
    assert rejection.detail.startswith(where)


def test_a_bad_message_does_not_cost_the_messages_of_another_entry(folder: Path) -> None:
    bad = load(folder, "courier_invalid_timestamp.json")["entry"][0]
    body = load(folder, "courier_hello.json")
    body["entry"].insert(0, bad)

    result = whatsapp.normalize(body, RECEIVED_AT)

    assert [msg.text for msg in result.messages] == ["Hello World"]
    assert [(item.where, item.reason) for item in result.rejected] == [
        ("entry[0].changes[0].value.messages[0]", "invalid_timestamp")
    ]


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_field_made_odd_is_tolerated_or_rejected_with_a_reason(folder: Path, name: str) -> None:
    """Whatever one field holds, the result is messages or a NormalizationError (a 4xx with a
    reason), never another exception (a 5xx)."""
    assert_every_odd_field_is_tolerated_or_rejected(
        whatsapp.normalize, load(folder, name), RECEIVED_AT
    )
