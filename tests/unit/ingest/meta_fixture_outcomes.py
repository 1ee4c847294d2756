"""What each shared Meta fixture (`payloads/{messenger,instagram,facebook_page}/`) must become.

One entry per file: the canonical messages it publishes (every field), the events it
acknowledges without publishing (by kind), the items it rejects (place and reason), or the
reason the whole body is rejected.
test_meta_normalizer.py checks that this table and the folders list the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from casewire_common.messages import message_id

RECEIVED_AT = datetime(2026, 6, 1, tzinfo=UTC)
FOLDERS = ("messenger", "instagram", "facebook_page")

COURIER_ACCOUNT = "1234567890"
COURIER_CUSTOMER = "5678"
COURIER_SENT = "2016-04-07T01:11:27.970Z"  # timestamp 1459991487970 (ms)
RESTFB_PAGE = "12345654332"
RESTFB_CUSTOMER = "987654321432"
RESTFB_MID = "mid.1457764197618:41d102a3e1ae206a38"
RESTFB_SENT = "2016-03-12T06:29:57.627Z"  # timestamp 1457764197627 (ms)
NLP_PAGE = "349489628480201"  # entry id; restfb anonymised the recipient differently
NLP_MID = "mid.$cAAFnKHM6z25j0QQm0ldn77eaCVEy"
NLP_SENT = "2017-08-01T21:41:12.530Z"  # timestamp 1501623672530 (ms)
PAGE = "1234567890321"  # the Page of restfb's feed fixtures


@dataclass(frozen=True)
class Outcome:
    messages: tuple[dict[str, Any], ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)
    rejected: str | None = None
    rejected_items: tuple[tuple[str, str], ...] = ()
    # By platform message id: the messages read on `standby`, and the app each echo names.
    standby: frozenset[str] = frozenset()
    sending_apps: dict[str, str] = field(default_factory=dict)


def marked(outcome: Outcome, *standby: str, **sending_apps: str) -> Outcome:
    """The outcome, with the messages read on `standby` and the apps that sent echoes (by
    platform message id)."""
    return Outcome(
        outcome.messages,
        outcome.ignored,
        outcome.rejected,
        outcome.rejected_items,
        frozenset(standby),
        sending_apps,
    )


def published(*messages: dict[str, Any], **ignored: int) -> Outcome:
    return Outcome(messages=messages, ignored=ignored)


def acknowledged(**ignored: int) -> Outcome:
    return Outcome(ignored=ignored)


def rejected(reason: str) -> Outcome:
    return Outcome(rejected=reason)


def rejected_item(where: str, reason: str) -> Outcome:
    """The body's only item cannot be read (ingest refuses such a body: nothing else is in it)."""
    return Outcome(rejected_items=((where, reason),))


def canonical(
    *,
    platform: str,
    channel: str,
    account: str,
    platform_message_id: str,
    conversation: str,
    author_id: str,
    sent_at: str,
    text: str = "",
    name: str | None = None,
    handle: str | None = None,
    direction: str = "inbound",
    event: str = "message",
    in_reply_to: str | None = None,
    attachments: tuple[tuple[str, str | None], ...] = (),
) -> dict[str, Any]:
    """Every field of a canonical message, as `model_dump()` gives it."""
    return {
        "id": message_id(platform, platform_message_id),
        "platform": platform,
        "channel": channel,
        "visibility": "private" if channel == "dm" else "public",
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
        "attachments": [{"type": kind, "url": url} for kind, url in attachments],
        "sent_at": datetime.fromisoformat(sent_at),
        "received_at": RECEIVED_AT,
    }


def dm(
    platform: str,
    *,
    account: str,
    customer: str,
    direction: str = "inbound",
    **fields: Any,
) -> dict[str, Any]:
    """A DM: keyed `platform:account:customer`, written by the customer or, outbound, the
    account."""
    return canonical(
        platform=platform,
        channel="dm",
        account=account,
        conversation=f"{platform}:{account}:{customer}",
        author_id=customer if direction == "inbound" else account,
        direction=direction,
        **fields,
    )


def courier_dm(platform: str, **fields: Any) -> dict[str, Any]:
    """nyaruka/courier's fixtures: account 1234567890, customer 5678, mid `external_id`."""
    defaults: dict[str, Any] = {"platform_message_id": "external_id", "sent_at": COURIER_SENT}
    return dm(platform, account=COURIER_ACCOUNT, customer=COURIER_CUSTOMER, **defaults | fields)


def messenger(**fields: Any) -> dict[str, Any]:
    """restfb's classic Messenger fixtures: Page 12345654332, customer 987654321432."""
    defaults: dict[str, Any] = {"platform_message_id": RESTFB_MID, "sent_at": RESTFB_SENT}
    return dm("facebook", account=RESTFB_PAGE, customer=RESTFB_CUSTOMER, **defaults | fields)


def nlp(text: str, **fields: Any) -> dict[str, Any]:
    """restfb's NLP fixtures: plain customer texts (the retired `nlp` block is not read)."""
    defaults: dict[str, Any] = {"platform_message_id": NLP_MID, "sent_at": NLP_SENT}
    return messenger(text=text, **defaults | fields)


def public(
    platform: str,
    *,
    account: str,
    root: str,
    customer: str,
    author: tuple[str, str | None],
    **fields: Any,
) -> dict[str, Any]:
    """A public item, keyed `platform:account:root:customer`."""
    author_id, name = author
    return canonical(
        platform=platform,
        account=account,
        conversation=f"{platform}:{account}:{root}:{customer}",
        author_id=author_id,
        name=name,
        **fields,
    )


def page_item(
    *, root: str, customer: str, author: tuple[str, str | None], **fields: Any
) -> dict[str, Any]:
    """An item on restfb's Page 1234567890321."""
    return public("facebook", account=PAGE, root=root, customer=customer, author=author, **fields)


def by_page(name: str) -> tuple[str, str]:
    """restfb's feed fixtures mostly have the Page itself as author: outbound, and keyed on
    the Page because Meta does not say whom it answered."""
    return (PAGE, name)


COURIER_HELLO = {"text": "Hello World"}
IMAGE = "https://www.example.org/test.jpg"
VIDEO = "https://www.example.org/test.mp4"
COMMENT_PHOTO = (
    "https://scontent-fra3-1.xx.fbcdn.net/v/t31.0-8/16715996_472849323104563_2289972788116415727_o"
    ".jpg?oh=7e0959913ff772d51e17b6d2bdebf44f&oe=593B77BB"
)
COMMENT_VIDEO = "https://example.fbcdn.net/video.mp4"
STATUS_PHOTOS = tuple(
    ("image", f"https://scontent-frt3-1.xx.fbcdn.net/exampleimage{n}.png") for n in (1, 2, 3)
)
POSTBACK = {"platform_message_id": "postback:5678:1459991487970", "text": "postback title"}
RESTFB_POSTBACK = {
    "platform_message_id": "postback:987654321432:1458692752478",
    "text": "USER_DEFINED_PAYLOAD",
    "sent_at": "2016-03-23T00:25:52.478Z",
}
TEMPLATE = {
    "platform_message_id": "mid.1458668856218:ed81099e15d3f4f233",
    "sent_at": "2016-03-23T00:25:52.478Z",
    "attachments": (("other", None),),
}
ATTACHMENT_MID = {
    "platform_message_id": "mid.1458696618141:b4ef9d19ec21086067",
    "sent_at": "2016-03-23T01:30:18.268Z",
}
ADDED_COMMENT = {
    "channel": "comment",
    "platform_message_id": "901097836652708_903438993085259",
    "in_reply_to": "1234567890321_901097836652708",
    "direction": "outbound",
    "text": "and the next one",
    "sent_at": "2015-12-03T09:30:03Z",
}
EDITED_COMMENT = ADDED_COMMENT | {
    "event": "edit",
    "platform_message_id": "900728623356296_900744590021366",
    "in_reply_to": "1234567890321_900728623356296",
    "text": "Let's see the Webhooks in action :D",
    "sent_at": "2015-11-26T16:35:37Z",
}
REVIEW = {
    "channel": "comment",
    "platform_message_id": "904801129604590",
    "text": "Ja ziemlich coole Sache",
    "sent_at": "2015-11-29T11:03:22Z",  # no created_time: the entry's time
}
REVIEWER = ("705955836155788", "Tester")


def added_comment(**fields: Any) -> dict[str, Any]:
    return page_item(
        root="1234567890321_901097836652708",
        customer=PAGE,
        author=by_page("Tester"),
        **ADDED_COMMENT | fields,
    )


def edited_comment(**fields: Any) -> dict[str, Any]:
    return page_item(
        root="1234567890321_900728623356296",
        customer=PAGE,
        author=by_page("Tester"),
        **EDITED_COMMENT | fields,
    )


def page_post(post_id: str, name: str, sent_at: str, **fields: Any) -> dict[str, Any]:
    """The Page's own post, status, photo, video or share."""
    return page_item(
        root=post_id,
        customer=PAGE,
        author=by_page(name),
        channel="mention",
        direction="outbound",
        platform_message_id=post_id,
        sent_at=sent_at,
        **fields,
    )


def review(author: tuple[str, str | None] = REVIEWER, **fields: Any) -> dict[str, Any]:
    """A review: a comment on the Page's ratings, rooted at the review itself."""
    return page_item(root="904801129604590", customer=REVIEWER[0], author=author, **REVIEW | fields)


MESSENGER: dict[str, Outcome] = {
    "courier_attachment.json": published(
        courier_dm("facebook", attachments=(("image", "https://image-url/foo.png"),))
    ),
    # Addressed to another recipient than the entry's Page: the entry says whose webhook it is.
    "courier_different_page.json": published(courier_dm("facebook", **COURIER_HELLO)),
    "courier_dlr.json": acknowledged(delivery=1),
    # The same mid in two entries: two messages with one id; dedup is downstream.
    "courier_duplicate_msg.json": published(
        courier_dm("facebook", **COURIER_HELLO), courier_dm("facebook", **COURIER_HELLO)
    ),
    # courier keeps the customer as sender of the echo; the Page is never the customer.
    "courier_echo.json": published(
        courier_dm("facebook", direction="outbound", platform_message_id="qT7ywaK")
    ),
    "courier_fallback.json": published(
        courier_dm("facebook", attachments=(("other", "My Documents/foo.doc"),))
    ),
    "courier_hello_msg.json": published(courier_dm("facebook", **COURIER_HELLO)),
    "courier_invalid_urn.json": rejected_item("entry[0].messaging[0]", "invalid_id"),  # "abc5678"
    "courier_location_attachment.json": published(
        courier_dm("facebook", attachments=(("location", "geo:1.2,-1.3"),))
    ),
    "courier_no_entries.json": rejected("no_entries"),
    "courier_no_messaging_entries.json": acknowledged(empty_entry=1),
    "courier_not_page.json": rejected("wrong_object"),
    "courier_notification_messages_optin.json": acknowledged(optin=1),
    "courier_postback.json": published(courier_dm("facebook", **POSTBACK)),
    "courier_postback_get_started.json": published(courier_dm("facebook", **POSTBACK)),
    "courier_postback_referral.json": published(courier_dm("facebook", **POSTBACK)),
    "courier_reel.json": published(
        courier_dm("facebook", attachments=(("other", "/reel/123451234512345/"),))
    ),
    "courier_referral.json": acknowledged(referral=1),
    "courier_referral_optin.json": acknowledged(optin=1),
    "courier_referral_optin_user_ref.json": acknowledged(optin=1),
    "courier_referral_seconds.json": acknowledged(referral=1),
    # The "like" thumb: a sticker, no text.
    "courier_thumbs_up.json": published(
        courier_dm("facebook", attachments=(("sticker", "https://scontent.xx.fbcdn.net/v/arst"),))
    ),
    "courier_unknown_messaging_entry.json": acknowledged(unknown=1),
    "restfb_messaging-accountlinking-linked.json": acknowledged(account_linking=1),
    "restfb_messaging-accountlinking-unlinked.json": acknowledged(account_linking=1),
    "restfb_messaging-airline-itinerary-template.json": published(messenger(**TEMPLATE)),
    "restfb_messaging-approles.json": acknowledged(app_roles=1),
    "restfb_messaging-button-template.json": published(messenger(**TEMPLATE)),
    "restfb_messaging-checkoutupdate-shipping.json": acknowledged(checkout_update=1),
    "restfb_messaging-delivery-basic.json": acknowledged(delivery=1),
    # An echo names the app that sent it (`app_id`): kept for the router (bot or person).
    "restfb_messaging-message-basic-echo.json": marked(
        published(messenger(direction="outbound", text="hello, world!")),
        **{RESTFB_MID: "1517776481860111"},
    ),
    "restfb_messaging-message-basic.json": published(messenger(text="hello, world!")),
    "restfb_messaging-message-edits.json": published(messenger(event="edit", text="hello, world!")),
    "restfb_messaging-message-fallback-attachment.json": published(
        messenger(**ATTACHMENT_MID, attachments=(("other", "https://www.messenger.com/"),))
    ),
    "restfb_messaging-message-isdeleted.json": published(
        messenger(event="delete", platform_message_id="message_id")
    ),
    "restfb_messaging-message-isunsupported.json": published(
        messenger(platform_message_id="message_id", attachments=(("other", None),))
    ),
    "restfb_messaging-message-location-attachment.json": published(
        messenger(**ATTACHMENT_MID, attachments=(("location", "geo:12.34,43.21"),))
    ),
    "restfb_messaging-message-media-attachment.json": published(
        messenger(**ATTACHMENT_MID, attachments=(("image", "IMAGE_URL"),))
    ),
    "restfb_messaging-message-nlp-1.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer="968155906638513",
            platform_message_id="mid.$cAAFnKHM6z25j0NnEyVdn5SGZ-6BD",
            text="bye, see you tomorrow at 4pm",
            sent_at="2017-08-01T20:54:54.921Z",
        )
    ),
    "restfb_messaging-message-nlp-2.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer="968155906638513",
            platform_message_id="mid.$cAAFnKHM6z25j0Nk5H1dn5P6whgpU",
            text="hi there",
            sent_at="2017-08-01T20:54:19.167Z",
        )
    ),
    "restfb_messaging-message-nlp-3.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer="968155906638513",
            platform_message_id="mid.$cAAFnKHM6z25j0O-zJVdn6pqZyS3S",
            text="hallo!",
            sent_at="2017-08-01T21:18:52.197Z",
        )
    ),
    "restfb_messaging-message-nlp-4.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer="968155906638513",
            platform_message_id="mid.$cAAFnKHM6z25j0PIg3ldn6zYeydjN",
            text="wie geht es dir heute?",
            sent_at="2017-08-01T21:21:31.358Z",
        )
    ),
    "restfb_messaging-message-nlp-5.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer="968155906638513",
            platform_message_id="mid.$cAAFnKHM6z25j0PS_wldn693MxNiW",
            text="Was gibt es morgen zu Essen?",
            sent_at="2017-08-01T21:24:23.106Z",
        )
    ),
    "restfb_messaging-message-nlp-6.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer="968155906638513",
            platform_message_id="mid.$cAAFnKHM6z25j0PvyNVdn7apzfH6O",
            text="How is the weather?",
            sent_at="2017-08-01T21:32:14.773Z",
        )
    ),
    "restfb_messaging-message-nlp-7.json": published(nlp("How is it going?")),
    "restfb_messaging-message-nlp-8.json": published(nlp("How is it going?")),
    "restfb_messaging-message-nlp-distance.json": published(nlp("Saabruecken is about 20km away")),
    "restfb_messaging-message-nlp-duration-2.json": published(
        nlp(
            "I think this takes 2 hours",
            platform_message_id="a6z41gZb04lWvf1Pa2iKsi67x9QLy11IvvcmREsiaAFDr",
            sent_at="2019-01-08T23:29:21.827Z",
        )
    ),
    "restfb_messaging-message-nlp-duration.json": published(
        nlp("I need 1 year, 2 months, 3 days, 4 hours, 5 minutes, 6 seconds and 7 milliseconds")
    ),
    "restfb_messaging-message-nlp-email-2.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer=RESTFB_CUSTOMER,
            platform_message_id="-DpM1dbY54v72W76CMcpFC67x9QLy11IvvcmRE",
            text="You can contact me at mail@example.org",
            sent_at="2019-01-08T23:31:07.208Z",
        )
    ),
    "restfb_messaging-message-nlp-email.json": published(
        nlp("please send me a message at test@emaple.org")
    ),
    "restfb_messaging-message-nlp-error.json": published(
        dm(
            "facebook",
            account="692521420913831",
            customer="1886939548028072",
            platform_message_id=(
                "t8Z18hGWisXFy90yYBRHwnOwRWDDf7jJyJdxFrmLryLNJTyS7eBGQOrzuKbVtlDqlYf7WgtMkgshUz"
                "wUfznHcg"
            ),
            text=(
                "For security reasons this isn't the actual text the chatbot application "
                "received. Nontheless I counted the chars and it had more than 1024 chars like "
                "the error states."
            ),
            sent_at="2019-01-03T16:16:46.372Z",
        )
    ),
    "restfb_messaging-message-nlp-location.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer=RESTFB_CUSTOMER,
            platform_message_id="OJNsdcNtKglZvaa3FlPKYy67x9QLy11Ivvc",
            text="Can we meet in Los Angeles?",
            sent_at="2019-01-08T23:26:35.572Z",
        )
    ),
    "restfb_messaging-message-nlp-money.json": published(nlp("This costs 4.56 EUR")),
    "restfb_messaging-message-nlp-phone.json": published(nlp("my phonenumber is 12345654321")),
    "restfb_messaging-message-nlp-quantity.json": published(nlp("3kg may work")),
    "restfb_messaging-message-nlp-temperature.json": published(nlp("it is 26°C in here")),
    "restfb_messaging-message-nlp-url-2.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer=RESTFB_CUSTOMER,
            platform_message_id="jHwnzSs3QupEbFatUOpnWy67x9QLy11IvvcmREs",
            text="Please go to http://www.google.com",
            sent_at="2019-01-08T23:28:06.203Z",
            attachments=(
                (
                    "other",
                    "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.google.com%2F&h=AT3eI4AnyB"
                    "Uqx71d6J827nix6lUarQc-8H-vQGU4u3XIOr0PMn_nqut3YOn5khrXai6DH8LeggfQiBNT9CiJ"
                    "TFTtC1-2mxZsi8XyzlWYZZk5uU-JuUIWWl9sCaYdvElkOWeZCT9PNTERrQk&s=1",
                ),
            ),
        )
    ),
    "restfb_messaging-message-nlp-url.json": published(
        dm(
            "facebook",
            account=NLP_PAGE,
            customer=RESTFB_CUSTOMER,
            platform_message_id="SRpovOEJmrwZL-rgr3dDqC67x9QLy11Ivvcm",
            text="https://restfb.com/documentation/#using-webhooks",
            sent_at="2019-01-08T23:28:42.890Z",
        )
    ),
    "restfb_messaging-message-nlp-volume.json": published(nlp("3 liter may work")),
    "restfb_messaging-message-prior.json": published(
        messenger(
            platform_message_id="mid.1457744567618:41d102a3e1ae206a38",
            text="Thanks for messaging me!",
        )
    ),
    # Documentation placeholders instead of Meta ids.
    "restfb_messaging-message-product-template-2.json": rejected("invalid_id"),  # "page id"
    "restfb_messaging-message-product-template.json": rejected_item(  # sender "<PSID>"
        "entry[0].messaging[0]", "invalid_id"
    ),
    "restfb_messaging-message-quickreply.json": published(
        dm(
            "facebook",
            account=PAGE,
            customer=RESTFB_CUSTOMER,
            platform_message_id="mid.1458696618141:b4ef9d19ec21086067",
            text="quick reply text",
            sent_at="2016-08-09T21:51:50.432Z",
        )
    ),
    "restfb_messaging-message-reply-1.json": published(
        messenger(
            text="hello, world!",
            in_reply_to="very_long_id_representing_the_original_message",
        )
    ),
    "restfb_messaging-message-reply-2.json": published(
        messenger(text="hello, world!", in_reply_to="STORY_ID")
    ),
    "restfb_messaging-message-sticker-thumbup.json": published(
        messenger(
            platform_message_id="mid.1487254148673:a082abc439",
            sent_at="2017-02-16T14:09:08.673Z",
            attachments=(
                (
                    "sticker",
                    "https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_369239266556155_759568595"
                    "_n.png?_nc_ad=z-m&oh=85e24066ebe64f04d457b242e22e7054&oe=5939B5DC",
                ),
            ),
        )
    ),
    "restfb_messaging-message-sticker.json": published(
        messenger(
            platform_message_id="mid.12345654332:226a70a704",
            sent_at="2016-10-11T21:05:00.918Z",
            attachments=(("sticker", "https://scontent.xx.fbcdn.net/sticker.png"),),
        )
    ),
    # entry.time 12341 is impossible, but an opt-in's times are never read.
    "restfb_messaging-optin-basic.json": acknowledged(optin=1),
    "restfb_messaging-optin-userref.json": acknowledged(optin=1),
    # restfb's handover fixtures keep Meta's placeholders (PAGE_ID, USER_ID, NEW_OWNER_APP_ID):
    # no customer to key the conversation on, as with any message naming one.
    "restfb_messaging-pass-thread-control.json": rejected_item(
        "entry[0].messaging[0]", "invalid_id"
    ),
    "restfb_messaging-payment.json": acknowledged(payment=1),
    "restfb_messaging-policy-callback-block.json": acknowledged(policy_enforcement=1),
    "restfb_messaging-policy-callback-unblock.json": acknowledged(policy_enforcement=1),
    "restfb_messaging-postback-basic.json": published(messenger(**RESTFB_POSTBACK)),
    # A chat-plugin guest has only sender.user_ref: no customer id to key the DM on.
    "restfb_messaging-postback-chat.json": rejected_item("entry[0].messaging[0]", "missing_field"),
    "restfb_messaging-postback-referral.json": published(messenger(**RESTFB_POSTBACK)),
    "restfb_messaging-reaction-1.json": acknowledged(reaction=1),
    "restfb_messaging-reaction-2.json": acknowledged(reaction=1),
    "restfb_messaging-read-basic.json": acknowledged(read=1),
    "restfb_messaging-referral-basic.json": acknowledged(referral=1),
    "restfb_messaging-request-thread-control.json": rejected_item(
        "entry[0].messaging[0]", "invalid_id"
    ),
    "restfb_messaging-take-thread-control.json": rejected_item(
        "entry[0].messaging[0]", "invalid_id"
    ),
    # The chatbot's echo on the standby channel: outbound, marked standby, its app named.
    "restfb_standby-message-basic-echo.json": marked(
        published(messenger(direction="outbound", text="hello, world!")),
        RESTFB_MID,
        **{RESTFB_MID: "1517776481860111"},
    ),
    "tock_standby_empty_postback.json": acknowledged(empty_postback=1),
}

INSTAGRAM: dict[str, Outcome] = {
    "courier_attachment.json": published(
        courier_dm("instagram", attachments=(("image", "https://image-url/foo.png"),))
    ),
    "courier_different_page.json": published(courier_dm("instagram", **COURIER_HELLO)),
    "courier_duplicate_msg.json": published(
        courier_dm("instagram", **COURIER_HELLO), courier_dm("instagram", **COURIER_HELLO)
    ),
    "courier_echo.json": published(
        courier_dm("instagram", direction="outbound", platform_message_id="qT7ywaK")
    ),
    "courier_hello_msg.json": published(courier_dm("instagram", **COURIER_HELLO)),
    "courier_icebreaker_get_started.json": published(
        courier_dm("instagram", **POSTBACK | {"text": "icebreaker question"})
    ),
    "courier_invalid_urn.json": rejected_item("entry[0].messaging[0]", "invalid_id"),
    "courier_like_heart.json": published(courier_dm("instagram", attachments=(("sticker", None),))),
    "courier_no_entries.json": rejected("no_entries"),
    "courier_no_messaging_entries.json": acknowledged(empty_entry=1),
    "courier_not_instagram.json": rejected("wrong_object"),
    "courier_story_mention.json": published(
        courier_dm("instagram", attachments=(("other", "https://story-url"),))
    ),
    "courier_unknown_messaging_entry.json": acknowledged(unknown=1),
    "courier_unsent_msg.json": published(
        courier_dm("instagram", event="delete", sent_at="2019-09-23T18:14:45.349Z")
    ),
    "restfb_messaging-attachment-unsupported.json": published(
        dm(
            "instagram",
            account="17841452691600098",
            customer="5614879045272581",
            platform_message_id=(
                "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDUyNjkxNjAwMDk4OjM0MDI4MjM2Njg0MTcx"
                "MDMwMDk0OTEyODUyNTYwOTEwODQ0ODU4MjozMDc2OTU4MTA5OTY0OTI5MzAzMjAwODc1MDUxMTE2MT"
                "M0NAZDZD"
            ),
            sent_at="2022-11-09T19:32:13.735Z",
            attachments=(
                (
                    "other",
                    "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=17997515821557846&sig"
                    "nature=AbyoRMtwJfAwfS_JCQkUSk4cdnDbIxMpTQXNWXt1D5Y9DEBSrgaz6PUk279coBxpvYHih"
                    "uOmA1dxxabr6j0XitFYd21z2PaGBG82_AH9WFAbok5IY3cDhSTWb8LRadklr0IOm8UP0O8RZnWI4"
                    "IiUfDuD19-CdVWih_byfkU5WUJTUGJi6PkuOA0rzdyG4O9fOPAshk8gx631mtlydnq63ILMPzyM8"
                    "sc",
                ),
            ),
        )
    ),
    "restfb_messaging-seen.json": acknowledged(read=1),
    "restfb_wh-comments-2021.json": published(
        public(
            "instagram",
            account="0",
            root="76543987",
            customer="1234536447",
            author=("1234536447", None),
            handle="testuser",
            channel="reply",
            platform_message_id="123456789",
            in_reply_to="987654321",
            text="This is an example.",
            sent_at="2018-02-23T15:21:47Z",  # the entry's time
        )
    ),
    # The legacy comment shape and the mentions field name no author.
    "restfb_wh-comments.json": acknowledged(comment_without_author=1),
    "restfb_wh-livecomments.json": acknowledged(comment_without_author=1),
    "restfb_wh-mentions.json": acknowledged(mention_without_author=1),
    "restfb_wh-story_insights.json": acknowledged(story_insights=1),
}

FACEBOOK_PAGE: dict[str, Outcome] = {
    "restfb_feed-album-add.json": acknowledged(feed_other=1),
    "restfb_feed-album-edited.json": acknowledged(feed_other=1),
    "restfb_feed-comment-add-211.json": published(added_comment()),
    "restfb_feed-comment-add-25.json": published(added_comment()),
    "restfb_feed-comment-add-with-photo.json": published(
        added_comment(attachments=(("image", COMMENT_PHOTO),))
    ),
    "restfb_feed-comment-add-with-video.json": published(
        added_comment(attachments=(("video", COMMENT_VIDEO),))
    ),
    "restfb_feed-comment-edited-25.json": published(edited_comment()),
    "restfb_feed-comment-edited-with-photo.json": published(
        edited_comment(attachments=(("image", COMMENT_PHOTO),))
    ),
    "restfb_feed-comment-edited-with-video.json": published(
        edited_comment(attachments=(("video", COMMENT_VIDEO),))
    ),
    "restfb_feed-comment-hide.json": acknowledged(moderation=1),
    "restfb_feed-comment-remove-25.json": published(
        page_item(
            root="1234567890321_905578656204626",
            customer=PAGE,
            author=by_page("John Doe"),
            channel="comment",
            direction="outbound",
            event="delete",
            platform_message_id="905578656204626_905579239537901",
            in_reply_to="1234567890321_905578656204626",
            sent_at="2016-01-06T19:06:22Z",  # no created_time: the entry's time
        )
    ),
    "restfb_feed-comment-unhide.json": acknowledged(moderation=1),
    "restfb_feed-event-add.json": acknowledged(feed_other=1),
    "restfb_feed-like-add-25.json": acknowledged(reaction=1),
    "restfb_feed-like-add-comment-25.json": acknowledged(reaction=1),
    "restfb_feed-like-add-page-25.json": acknowledged(reaction=1),
    "restfb_feed-like-remove-25.json": acknowledged(reaction=1),
    "restfb_feed-photo-add-25.json": published(
        page_post(
            "1234567890321_900767076685784",
            "Testers Paradise",
            "2015-11-26T16:36:36Z",
            attachments=(("image", IMAGE),),
        )
    ),
    "restfb_feed-photo-add-message.json": published(
        page_post(
            "1234567890321_900767076685784",
            "Testers Paradise",
            "2015-11-26T16:36:36Z",
            text="A new really great Photo",
            attachments=(("image", IMAGE),),
        )
    ),
    "restfb_feed-photo-edited-message.json": published(
        page_post(
            "1234567890321_901097836652708",
            "Tester",
            "2016-07-07T11:13:59Z",  # an edit: the entry's time, not created_time
            event="edit",
            text="Testing",
            attachments=(("image", IMAGE),),
        )
    ),
    "restfb_feed-photo-edited.json": published(
        page_post(
            "1234567890321_901097836652708",
            "Tester",
            "2016-07-07T11:13:59Z",  # an edit: the entry's time, not created_time
            event="edit",
            attachments=(("image", IMAGE),),
        )
    ),
    "restfb_feed-photo-hide-message.json": acknowledged(moderation=1),
    "restfb_feed-photo-hide.json": acknowledged(moderation=1),
    "restfb_feed-photo-remove-25.json": published(
        page_post("1234567890321_900767076685784", "Joe", "2015-11-26T16:37:59Z", event="delete")
    ),
    # A visitor's post on the Page: public, addressed to the brand, needs a human.
    "restfb_feed-post-add-25.json": published(
        page_item(
            root="1234567890321_7293787835232",
            customer="8423678347823",
            author=("8423678347823", "John Doe"),
            channel="mention",
            platform_message_id="1234567890321_7293787835232",
            text="Let's check this",
            sent_at="2016-02-05T21:17:00Z",  # no created_time: the entry's time
        )
    ),
    "restfb_feed-post-edit.json": published(
        page_item(
            root="1234567890321_7293787835232",
            customer="8423678347823",
            author=("8423678347823", "Joe"),
            channel="mention",
            event="edit",
            platform_message_id="1234567890321_7293787835232",
            text="Let's check this",
            sent_at="2016-07-07T11:20:09Z",
        )
    ),
    "restfb_feed-post-hide.json": acknowledged(moderation=1),
    "restfb_feed-post-remove-25.json": published(
        page_post(
            "1234567890321_901097836652708", "John Doe", "2016-01-06T16:49:46Z", event="delete"
        )
    ),
    "restfb_feed-post-unhide.json": acknowledged(moderation=1),
    "restfb_feed-reaction-add-comment.json": acknowledged(reaction=1),
    "restfb_feed-reaction-add-reply.json": acknowledged(reaction=1),
    "restfb_feed-reaction-add.json": acknowledged(reaction=1),
    "restfb_feed-reaction-edit.json": acknowledged(reaction=1),
    "restfb_feed-reaction-remove.json": acknowledged(reaction=1),
    "restfb_feed-share-add-25.json": published(
        page_post(
            "1234567890321_98735342324352",
            "Test Sender",
            "2016-04-08T10:37:23Z",
            text="Ein Link zu was ganz anderem: www.daserste.de",
            attachments=(("other", "http://www.google.com/"),),
        )
    ),
    "restfb_feed-share-hide.json": acknowledged(moderation=1),
    "restfb_feed-share-unhide.json": acknowledged(moderation=1),
    "restfb_feed-status-add-25.json": published(
        page_post(
            "1234567890321_930145403745849",
            "Tester",
            "2015-11-27T14:03:58Z",
            text="This is just a short test message",
        )
    ),
    "restfb_feed-status-add-photos.json": published(
        page_post(
            "1234567890321_930145403745849",
            "Tester",
            "2015-11-27T14:03:58Z",
            text="This is just a short test message",
            attachments=STATUS_PHOTOS,
        )
    ),
    "restfb_feed-status-edited-25.json": published(
        page_post(
            "1234567890321_949560725137650",
            "Tester",
            "2016-01-04T23:17:20Z",  # an edit: the entry's time, not created_time
            event="edit",
            text="This is an edited test message",
        )
    ),
    "restfb_feed-status-edited-photos.json": published(
        page_post(
            "1234567890321_949560725137650",
            "Tester",
            "2016-01-04T23:17:20Z",  # an edit: the entry's time, not created_time
            event="edit",
            text="This is an edited test message",
            attachments=STATUS_PHOTOS,
        )
    ),
    "restfb_feed-status-hide-25.json": acknowledged(moderation=1),
    "restfb_feed-status-unhide.json": acknowledged(moderation=1),
    # Page settings fields (parking, payment_options) in two entries.
    "restfb_feed-two-entries-25.json": acknowledged(unknown=2),
    "restfb_feed-video-add.json": published(
        page_post(
            "1234567890321_901097836652708",
            "Tester",
            "2019-02-08T11:58:02Z",
            text="Test video",
            attachments=(("video", VIDEO),),
        )
    ),
    "restfb_feed-video-block.json": acknowledged(moderation=1),
    "restfb_feed-video-edited.json": published(
        page_post(
            "1234567890321_901097836652708",
            "Tester",
            "2016-07-07T12:02:40Z",  # no created_time: the entry's time
            event="edit",
            text="Test video",
            attachments=(("video", VIDEO),),
        )
    ),
    "restfb_feed-video-hide.json": acknowledged(moderation=1),
    "restfb_feed-video-mute.json": acknowledged(moderation=1),
    "restfb_feed-video-remove-25.json": published(
        page_post("1234567890321_900767076685784", "Joe", "2015-11-26T16:37:59Z", event="delete")
    ),
    "restfb_feed-video-unblock.json": acknowledged(moderation=1),
    "restfb_leadgen.json": acknowledged(leadgen=1),
    # Without sender the mention cannot be keyed to a customer.
    "restfb_mention-comment-add.json": acknowledged(mention_without_author=1),
    "restfb_mention-post-add-real.json": acknowledged(mention_without_author=1),
    "restfb_mention-post-add.json": published(
        page_item(
            root="44444444_444444444",
            customer="44444444",
            author=("44444444", "Example Name"),
            channel="mention",
            platform_message_id="44444444_444444444",
            sent_at="2017-06-01T20:39:46Z",  # no created_time: the entry's time
        )
    ),
    "restfb_ratings-comment-add-25.json": published(
        page_item(
            root="100002241334695_904801129604590",
            customer=REVIEWER[0],
            author=REVIEWER,
            channel="comment",
            platform_message_id="904801129604590_904802532937783",
            in_reply_to="100002241334695_904801129604590",
            sent_at="2015-11-29T11:09:46Z",
        )
    ),
    "restfb_ratings-comment-edited-25.json": published(
        page_item(
            root="100002220109526_716630661754264",
            customer=PAGE,
            author=by_page("Tester"),
            channel="comment",
            direction="outbound",
            event="edit",
            platform_message_id="716630661754264_994838177266843",
            in_reply_to="100002220109526_716630661754264",
            sent_at="2016-01-06T19:21:39Z",
        )
    ),
    "restfb_ratings-comment-remove-25.json": published(
        page_item(
            root="100002220109526_716630661754264",
            customer="1234567890123",
            author=("1234567890123", "John Doe"),
            channel="comment",
            event="delete",
            platform_message_id="716630661754264_812745235476139",
            in_reply_to="100002220109526_716630661754264",
            sent_at="2016-01-06T19:09:31Z",
        )
    ),
    "restfb_ratings-like-add-25.json": acknowledged(reaction=1),
    "restfb_ratings-like-add-40.json": acknowledged(reaction=1),
    "restfb_ratings-like-remove-25.json": acknowledged(reaction=1),
    "restfb_ratings-like-remove-40.json": acknowledged(reaction=1),
    "restfb_ratings-rating-add-25.json": published(review()),
    "restfb_ratings-rating-add-31.json": published(review(sent_at="2018-09-19T15:05:12Z")),
    "restfb_ratings-rating-edit-25.json": published(review(event="edit")),
    "restfb_ratings-rating-remove-25.json": published(
        review(
            event="delete",
            author=(REVIEWER[0], None),
            text="",
            sent_at="2016-01-06T19:09:49Z",
        )
    ),
    "restfb_ratings-reaction-add.json": acknowledged(reaction=1),
    "restfb_ratings-reaction-edit.json": acknowledged(reaction=1),
    "restfb_ratings-reaction-remove.json": acknowledged(reaction=1),
    "restfb_unknown-change-value.json": acknowledged(unknown=1),
}

OUTCOMES: dict[str, Outcome] = {
    f"{folder}/{name}": outcome
    for folder, table in zip(FOLDERS, (MESSENGER, INSTAGRAM, FACEBOOK_PAGE), strict=True)
    for name, outcome in table.items()
}
