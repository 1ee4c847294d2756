"""The chaos run's workload: a seeded plan of real, signed webhook bodies and when to post them.

Same seed, same options, same plan. Each post is one platform's webhook body as that platform
sends it (Meta: Messenger, Instagram, Page feed; WhatsApp Cloud API; X Account Activity; the
generic channel), with placeholders for its times: the runner fills them with the instant of
its first try, so `sent_at` is when the message was really sent and only lag and faults make
it late. Every planned message knows what the oracle needs of it (`PlannedMessage`).

What it holds, for the invariants the oracle checks:
- real corpus conversations (TWCS and IBM threads, `corpus.load_corpus`) as X reply chains:
  each hop answers the one before, so each has another conversation key;
- private threads on Messenger, Instagram, WhatsApp, X and the generic channel in English,
  Arabic, Greek and Thai (texts from `intents/`), some edited or deleted afterwards;
- Page feed posts answered by the Page's comment, which names no customer;
- one customer's public tweet and DM, which the router merges into one case;
- a crisis burst: many customers, the same outage words, within a minute;
- praise that needs no case, and deliberately bad input (bad or missing signatures,
  malformed JSON, an unknown object, a body with one unreadable item) whose refusal and dead
  letters the oracle must be able to explain;
- brand replies before, after and within seconds of the first-response deadline, or none.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from casewire_common.messages import CanonicalMessage, message_id

from casewire_dev import bench_workload, corpus
from casewire_dev.chaos.capture import SentMessage
from casewire_dev.webhooks import (
    DISPLAY_NUMBER,
    INSTAGRAM_ID,
    PAGE_ID,
    PHONE_NUMBER_ID,
    WABA_ID,
    integration_headers,
    meta_signature,
    x_signature,
)

Endpoint = Literal["meta", "whatsapp", "x", "generic"]
Signing = Literal["valid", "wrong_secret", "missing"]
Precision = Literal["ms", "s"]
Language = Literal["en", "ar", "el", "th"]
MessageEvent = Literal["message", "edit", "delete"]
FEED_EVENTS: dict[str, MessageEvent] = {"add": "message", "edited": "edit", "remove": "delete"}

ENDPOINT_PATHS: dict[Endpoint, str] = {
    "meta": "/v1/webhooks/meta",
    "whatsapp": "/v1/webhooks/whatsapp",
    "x": "/v1/webhooks/x",
    "generic": "/v1/messages",
}
# The secrets the runner configures ingest with (throw-away, for the run only).
META_APP_SECRET = "casewire-chaos-meta-app-secret"  # noqa: S105
META_VERIFY_TOKEN = "casewire-chaos-verify-token"  # noqa: S105
X_CONSUMER_SECRET = "casewire-chaos-x-consumer-secret"  # noqa: S105
WRONG_SECRET = "not-the-app-secret"  # noqa: S105
# The generic channel's caller (a web chat, say) and the key it signs bodies with.
INTEGRATION = "chaos-webchat"
INTEGRATION_SECRET = "casewire-chaos-integration-secret"  # noqa: S105

# The brand's other accounts (its Page, Instagram and WhatsApp ones are `webhooks`').
GENERIC_ACCOUNT = "web-chat"
X_BRAND_BASE = 2_244_994_945  # X user ids of the corpus brands count up from here

# Placeholders for the instant of a post's first try, replaced by `render`.
SENT_MS = "\x00sent-ms"  # epoch milliseconds, a JSON number
SENT_MS_TEXT = "\x00sent-ms-text"  # epoch milliseconds, a string (X)
SENT_S = "\x00sent-s"  # epoch seconds, a JSON number (Page feed)
SENT_S_TEXT = "\x00sent-s-text"  # epoch seconds, a string (WhatsApp)
SENT_ISO = "\x00sent-iso"  # RFC 3339 (generic channel)
SENT_X_DATE = "\x00sent-x-date"  # X's created_at: "Wed Oct 10 20:19:24 +0000 2018"

INTENTS = Path("intents")
ARABIC_FILES = (INTENTS / "arsas" / "ArSAS-test.txt",)
GREEK_FILE = INTENTS / "sentimp21_el" / "gr_extended_full.csv"
THAI_FILES = (INTENTS / "wisesight_thai" / "neg.txt", INTENTS / "wisesight_thai" / "q.txt")
RULES_FILE = Path("config") / "rules.yaml"
SAVED_REPLIES_FILE = Path("config") / "saved-replies.yaml"  # the replies the rules name
MAX_CORPUS_TURNS = 8  # of the few long corpus threads, enough to show the reply chain

# What a customer adds in each language so that a real but off-topic text asks for care.
CARE_REQUESTS: dict[Language, tuple[str, ...]] = {
    "en": ("where is my order?", "I was charged twice", "I can't log in to my account"),
    "ar": ("أين طلبي؟ حالة الطلب", "تم خصم المبلغ مرتين من الفاتورة", "لا أستطيع تسجيل الدخول"),
    "el": ("πού είναι η παραγγελία μου;", "χρεώθηκα δύο φορές", "δεν μπορώ να κάνω σύνδεση"),
    "th": ("คำสั่งซื้อของฉันอยู่ไหน", "ถูกหักเงินสองครั้ง", "เข้าสู่ระบบไม่ได้"),
}
PRAISE: dict[Language, tuple[str, ...]] = {
    "en": ("Thank you so much, great service!", "Love it, thanks!"),
    "ar": ("شكرا لكم",),
    "el": ("ευχαριστώ πολύ",),
    "th": ("ขอบคุณมาก",),
}
OUTAGE: dict[Language, tuple[str, ...]] = {
    "en": (
        "Is the app down for everyone? outage again",
        "your servers down again?? outage since this morning",
        "service down for everyone here, is down in the whole city",
    ),
    "ar": ("الخدمة متوقفة منذ الصباح، انقطاع كامل",),
    "el": ("η εφαρμογή είναι εκτός λειτουργίας, διακοπή λειτουργίας παντού",),
    "th": ("แอปล่มอีกแล้ว ระบบล่มทั้งวัน",),
}


@dataclass(frozen=True)
class PlannedMessage:
    """One canonical message a post will carry, as the oracle must know it."""

    platform: str
    platform_message_id: str
    direction: Literal["inbound", "outbound"]
    event: Literal["message", "edit", "delete"]
    thread: str
    in_reply_to: str | None = None
    author_id: str = ""
    language: str | None = None
    needs_case: bool = True

    @property
    def message_id(self) -> str:
        return message_id(self.platform, self.platform_message_id)

    def sent(self, sent_at: datetime, accepted_at: datetime, tries: int) -> SentMessage:
        return SentMessage(
            message_id=self.message_id,
            platform=self.platform,
            platform_message_id=self.platform_message_id,
            direction=self.direction,
            event=self.event,
            sent_at=sent_at,
            accepted_at=accepted_at,
            thread=self.thread,
            in_reply_to=self.in_reply_to,
            author_id=self.author_id,
            language=self.language,
            tries=tries,
            needs_case=self.needs_case,
        )


@dataclass(frozen=True)
class PlannedPost:
    """One HTTP POST to ingest: when (seconds after the run's start), where, what.

    `body` is the JSON document with time placeholders (`raw` replaces it for a body that is
    not JSON); `expected_rejection` is the reason code of a deliberately bad post."""

    at: float
    endpoint: Endpoint
    body: Mapping[str, Any]
    messages: tuple[PlannedMessage, ...] = ()
    precision: Precision = "ms"
    signing: Signing = "valid"
    raw: bytes | None = None
    expected_rejection: str | None = None


@dataclass(frozen=True)
class Rendered:
    path: str
    headers: dict[str, str]
    body: bytes
    sent_at: datetime  # as the platform states it (seconds or milliseconds)


@dataclass(frozen=True)
class PlanOptions:
    messages: int = 2000
    seed: int = 7
    first_response_seconds: float = 20.0
    messages_per_second: float = 50.0

    @property
    def duration(self) -> float:
        """Seconds over which threads open (their last replies come up to 1.7 targets later)."""
        return self.messages / self.messages_per_second


@dataclass(frozen=True)
class Texts:
    """What customers and brands write, by language (read once, filtered: no praise)."""

    customer: Mapping[Language, Sequence[str]]
    brand: Sequence[str]
    conversations: Sequence[corpus.Conversation]


@dataclass
class Plan:
    """The posts of a run, in posting order."""

    options: PlanOptions
    posts: list[PlannedPost] = field(default_factory=list)

    @property
    def messages(self) -> list[PlannedMessage]:
        return [message for post in self.posts for message in post.messages]

    def expected_rejections(self) -> dict[str, int]:
        """Deliberately bad posts by the reason code they must be refused (or dead-lettered)
        for."""
        counts: dict[str, int] = {}
        for post in self.posts:
            if post.expected_rejection is not None:
                counts[post.expected_rejection] = counts.get(post.expected_rejection, 0) + 1
        return counts


# --- Rendering and signing ---------------------------------------------------------------


def _x_date(instant: datetime) -> str:
    return instant.strftime("%a %b %d %H:%M:%S +0000 %Y")


def _fill(value: Any, times: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return times.get(value, value)
    if isinstance(value, dict):
        return {key: _fill(item, times) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, times) for item in value]
    return value


def render(post: PlannedPost, now: datetime) -> Rendered:
    """The bytes and headers of `post` sent at `now`, signed as its platform signs them."""
    milliseconds = int(now.timestamp() * 1000)
    seconds = milliseconds // 1000
    sent_at = datetime.fromtimestamp(
        seconds if post.precision == "s" else milliseconds / 1000, tz=UTC
    )
    times = {
        SENT_MS: milliseconds,
        SENT_MS_TEXT: str(milliseconds),
        SENT_S: seconds,
        SENT_S_TEXT: str(seconds),
        SENT_ISO: sent_at.isoformat(),
        SENT_X_DATE: _x_date(sent_at),
    }
    body = (
        post.raw
        if post.raw is not None
        else json.dumps(_fill(post.body, times), separators=(",", ":")).encode()
    )
    headers = {"content-type": "application/json"}
    if post.signing != "missing":
        secret = {"x": X_CONSUMER_SECRET, "generic": INTEGRATION_SECRET}.get(
            post.endpoint, META_APP_SECRET
        )
        if post.signing == "wrong_secret":
            secret = WRONG_SECRET
        if post.endpoint == "x":
            headers["x-twitter-webhooks-signature"] = x_signature(secret, body)
        elif post.endpoint == "generic":
            headers |= integration_headers(INTEGRATION, secret, body)
        else:
            headers["x-hub-signature-256"] = meta_signature(secret, body)
    return Rendered(ENDPOINT_PATHS[post.endpoint], headers, body, sent_at)


def ingest_settings() -> dict[str, str]:
    """The environment that makes ingest accept what `render` signs."""
    return {
        "CASEWIRE_META_APPS": json.dumps(
            [{"app_secret": META_APP_SECRET, "verify_token": META_VERIFY_TOKEN}]
        ),
        "CASEWIRE_X_APPS": json.dumps([{"name": "chaos", "consumer_secret": X_CONSUMER_SECRET}]),
        "CASEWIRE_INTEGRATIONS": json.dumps(
            [{"name": INTEGRATION, "secrets": [INTEGRATION_SECRET]}]
        ),
    }


# --- Texts -------------------------------------------------------------------------------


def _letters_in(text: str, low: int, high: int) -> int:
    return sum(1 for char in text if low <= ord(char) <= high)


def read_texts(shared: Path, root: Path) -> Texts:
    """Real texts in place: TWCS for English customers and brands, ArSAS (Arabic), the Greek
    sentiment tweets and Wisesight (Thai); anything the rules would skip as praise is left
    out (praise is planned on purpose, where the oracle knows it)."""
    sample = bench_workload.read_twcs_sample(shared)
    arabic = [
        line.split("\t", 1)[0].strip()
        for path in ARABIC_FILES
        for line in (shared / path).read_text("utf-8").splitlines()
    ]
    with (shared / GREEK_FILE).open(newline="", encoding="utf-8") as handle:
        greek = [row["full_text"].strip() for row in csv.DictReader(handle)]
    thai = [
        line.strip()
        for path in THAI_FILES
        for line in (shared / path).read_text("utf-8").splitlines()
    ]
    is_praise = _praise_detector(root / RULES_FILE)
    pools: dict[Language, list[str]] = {
        "en": sample.customer_texts,
        "ar": [t for t in arabic if _letters_in(t, 0x0600, 0x06FF) >= 10],
        "el": [t for t in greek if _letters_in(t, 0x0370, 0x03FF) >= 10],
        "th": [t for t in thai if _letters_in(t, 0x0E00, 0x0E7F) >= 4],
    }
    customer = {
        language: [text for text in texts[:3000] if text and not is_praise(text)]
        for language, texts in pools.items()
    }
    conversations = [
        conversation
        for conversation in corpus.load_corpus(shared / "corpus")
        if any(message.inbound for message in conversation.messages)
        and not any(is_praise(m.text) for m in conversation.messages if m.inbound)
    ]
    return Texts(customer=customer, brand=sample.brand_texts, conversations=conversations)


def _praise_detector(rules_path: Path) -> Callable[[str], bool]:
    """Whether the router's rules file skips a text as needing no reply."""
    from casewire_router.domain.rules import load_rules

    rules = load_rules(str(rules_path))

    def is_praise(text: str) -> bool:
        probe = CanonicalMessage(
            id=message_id("other", "probe"),
            platform="other",
            channel="dm",
            visibility="private",
            direction="inbound",
            account_id="probe",
            platform_message_id="probe",
            conversation_id="other:probe:probe",
            author={"id": "probe"},
            text=text,
            sent_at=datetime(2026, 1, 1, tzinfo=UTC),
            received_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        return rules.evaluate(probe).skip

    return is_praise


# --- The plan ----------------------------------------------------------------------------


class _Ids:
    """Deterministic platform ids, unique within a run."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next = 1_700_000_000_000_000_000 + rng.randrange(10**15)

    def snowflake(self) -> str:
        self._next += self._rng.randint(1, 1 << 20)
        return str(self._next)

    def digits(self, size: int) -> str:
        return str(self._rng.randrange(10 ** (size - 1), 10**size))

    def token(self, prefix: str) -> str:
        raw = self._rng.randbytes(18)
        return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class _Thread:
    """Posts of one customer conversation, as the planner adds them."""

    name: str
    language: Language
    posts: list[PlannedPost] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(post.messages) for post in self.posts)


class Planner:
    """Builds the posts of each kind of thread; `plan()` mixes them until N messages."""

    def __init__(self, options: PlanOptions, texts: Texts) -> None:
        self.options = options
        self.texts = texts
        self.rng = random.Random(options.seed)
        self.ids = _Ids(self.rng)
        self.threads = 0
        self.corpus_next = 0

    # The first brand reply, relative to the opening: none, early, seconds either side of
    # the deadline, or late.
    def reply_offset(self) -> float | None:
        target = self.options.first_response_seconds
        roll = self.rng.random()
        if roll < 0.15:
            return None
        if roll < 0.50:
            return self.rng.uniform(0.15, 0.7) * target
        if roll < 0.62:
            return target - self.rng.uniform(0.5, 3.0)
        if roll < 0.74:
            return target + self.rng.uniform(0.5, 3.0)
        return self.rng.uniform(1.2, 1.7) * target

    def language(self) -> Language:
        return self.rng.choices(("en", "ar", "el", "th"), (0.55, 0.15, 0.15, 0.15))[0]

    def customer_text(self, language: Language) -> str:
        text = self.rng.choice(self.texts.customer[language])
        if language != "en" or self.rng.random() < 0.3:
            text = f"{text} {self.rng.choice(CARE_REQUESTS[language])}"
        return text[:900]

    def brand_text(self) -> str:
        return self.rng.choice(self.texts.brand)[:900]

    def new_thread(self, kind: str, language: Language | None = None) -> _Thread:
        self.threads += 1
        return _Thread(f"{kind}-{self.threads}", language or self.language())

    def add_post(
        self,
        thread: _Thread,
        at: float,
        endpoint: Endpoint,
        body: Mapping[str, Any],
        *,
        platform: str,
        platform_message_id: str,
        author_id: str,
        outbound: bool = False,
        event: MessageEvent = "message",
        in_reply_to: str | None = None,
        needs_case: bool | None = None,
        precision: Precision = "ms",
    ) -> None:
        """Add a post of one message to `thread`. The customer writes in the thread's language
        and a new message of theirs needs a case; the brand's messages and deletes carry no
        language (`needs_case` overrides the rule)."""
        message = PlannedMessage(
            platform=platform,
            platform_message_id=platform_message_id,
            direction="outbound" if outbound else "inbound",
            event=event,
            thread=thread.name,
            in_reply_to=in_reply_to,
            author_id=author_id,
            language=None if outbound or event == "delete" else thread.language,
            needs_case=not outbound and event == "message" if needs_case is None else needs_case,
        )
        thread.posts.append(PlannedPost(at, endpoint, body, (message,), precision=precision))

    # --- X -------------------------------------------------------------------------------

    def _x_user(self, user_id: str, handle: str, followers: int) -> dict[str, Any]:
        return {
            "id": int(user_id),
            "id_str": user_id,
            "name": handle,
            "screen_name": handle,
            "followers_count": followers,
            "verified": False,
        }

    def x_tweet(
        self,
        thread: _Thread,
        at: float,
        *,
        brand: str,
        customer: str,
        text: str,
        outbound: bool = False,
        replied_to: str | None = None,
    ) -> str:
        """A tweet of the customer (or the brand's, `outbound`) mentioning the other."""
        tweet_id = self.ids.snowflake()
        author = brand if outbound else customer
        language = None if outbound else thread.language
        tweet: dict[str, Any] = {
            "created_at": SENT_X_DATE,
            "id": int(tweet_id),
            "id_str": tweet_id,
            "text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
            "timestamp_ms": SENT_MS_TEXT,
            "user": self._x_user(author, f"user{author[-6:]}", 120 if not outbound else 90000),
            "entities": {
                "user_mentions": [{"id_str": customer if outbound else brand, "indices": [0, 9]}]
            },
            "lang": language or "und",
        }
        if replied_to is not None:
            tweet["in_reply_to_status_id_str"] = replied_to
            tweet["in_reply_to_user_id_str"] = customer if outbound else brand
        body = {"for_user_id": brand, "tweet_create_events": [tweet]}
        self.add_post(
            thread,
            at,
            "x",
            body,
            platform="x",
            platform_message_id=tweet_id,
            author_id=author,
            outbound=outbound,
            in_reply_to=replied_to,
            needs_case=True,  # as planned so far: the oracle reads it of inbound messages only
        )
        return tweet_id

    def x_dm(
        self,
        thread: _Thread,
        at: float,
        *,
        brand: str,
        customer: str,
        text: str,
        outbound: bool = False,
    ) -> str:
        """A direct message of the customer to the brand (or the brand's, `outbound`)."""
        dm_id = self.ids.snowflake()
        sender, recipient = (brand, customer) if outbound else (customer, brand)
        event = {
            "type": "message_create",
            "id": dm_id,
            "created_timestamp": SENT_MS_TEXT,
            "message_create": {
                "target": {"recipient_id": recipient},
                "sender_id": sender,
                "message_data": {"text": text, "entities": {}},
            },
        }
        users = {
            party: {"id": party, "name": f"user{party[-6:]}", "screen_name": f"user{party[-6:]}"}
            for party in (sender, recipient)
        }
        body = {"for_user_id": brand, "direct_message_events": [event], "users": users}
        self.add_post(
            thread,
            at,
            "x",
            body,
            platform="x",
            platform_message_id=dm_id,
            author_id=sender,
            outbound=outbound,
            needs_case=True,  # as planned so far: the oracle reads it of inbound messages only
        )
        return dm_id

    def corpus_thread(self, start: float) -> _Thread:
        """A real corpus conversation as an X reply chain: every hop answers the one before."""
        conversations = self.texts.conversations
        conversation = conversations[self.corpus_next % len(conversations)]
        self.corpus_next += 1
        thread = self.new_thread("corpus", "en")
        brand = str(X_BRAND_BASE + _stable_number(conversation.brand) % 10**6)
        customer = self.ids.digits(10)
        messages = list(conversation.messages[:MAX_CORPUS_TURNS])
        while messages and not messages[0].inbound:
            messages.pop(0)
        reply = self.reply_offset()
        at, previous, answered = start, None, False
        for message in messages:
            if not message.inbound and not answered:
                if reply is None:
                    continue  # nobody answers this one: only the customer's tweets are sent
                at, answered = max(at + 0.5, start + reply), True
            previous = self.x_tweet(
                thread,
                at,
                brand=brand,
                customer=customer,
                text=message.text,
                outbound=not message.inbound,
                replied_to=previous,
            )
            at += self.rng.uniform(0.5, 2.5)
        if answered and not messages[-1].inbound and self.rng.random() < 0.6:
            # The customer answers the brand's reply, and the brand answers that at once: a
            # hop later, each under another conversation key, the reply possibly processed
            # before the message it answers (they land on different partitions).
            previous = self.x_tweet(
                thread,
                at,
                brand=brand,
                customer=customer,
                text=self.customer_text("en"),
                replied_to=previous,
            )
            if self.rng.random() < 0.7:
                self.x_tweet(
                    thread,
                    at + self.rng.uniform(0.3, 2.0),
                    brand=brand,
                    customer=customer,
                    text=self.brand_text(),
                    outbound=True,
                    replied_to=previous,
                )
        return thread

    def x_public_and_dm(self, start: float) -> _Thread:
        """One customer's public tweet and DM: the router merges them into one case."""
        thread = self.new_thread("x-merge")
        brand = str(X_BRAND_BASE)
        customer = self.ids.digits(10)
        self.x_tweet(
            thread, start, brand=brand, customer=customer, text=self.customer_text(thread.language)
        )
        self.x_dm(
            thread,
            start + self.rng.uniform(1.0, 5.0),
            brand=brand,
            customer=customer,
            text=self.customer_text(thread.language),
        )
        reply = self.reply_offset()
        if reply is not None:
            self.x_dm(
                thread,
                start + max(reply, 5.5),
                brand=brand,
                customer=customer,
                text=self.brand_text(),
                outbound=True,
            )
        return thread

    # --- Meta ----------------------------------------------------------------------------

    def meta_dm(
        self,
        thread: _Thread,
        at: float,
        *,
        platform: Literal["facebook", "instagram"],
        customer: str,
        text: str = "",
        outbound: bool = False,
        event: Literal["message", "edit", "delete"] = "message",
        mid: str | None = None,
    ) -> str:
        account = PAGE_ID if platform == "facebook" else INSTAGRAM_ID
        mid = mid or self.ids.token("m_")
        messaging: dict[str, Any] = {
            "sender": {"id": account if outbound else customer},
            "recipient": {"id": customer if outbound else account},
            "timestamp": SENT_MS,
        }
        if event == "edit":
            messaging["message_edit"] = {"mid": mid, "text": text, "num_edit": 1}
        elif event == "delete":
            messaging["message"] = {"mid": mid, "is_deleted": True}
        else:
            messaging["message"] = {"mid": mid, "text": text}
            if outbound:
                messaging["message"] |= {"is_echo": True, "app_id": 1517776481860111}
        body = {
            "object": "page" if platform == "facebook" else "instagram",
            "entry": [{"id": account, "time": SENT_MS, "messaging": [messaging]}],
        }
        self.add_post(
            thread,
            at,
            "meta",
            body,
            platform=platform,
            platform_message_id=mid,
            author_id=account if outbound else customer,
            outbound=outbound,
            event=event,
        )
        return mid

    def page_feed(
        self,
        thread: _Thread,
        at: float,
        *,
        author: str,
        post_id: str,
        comment_id: str | None,
        text: str,
        verb: Literal["add", "edited", "remove"] = "add",
    ) -> None:
        outbound = author == PAGE_ID
        value: dict[str, Any] = {
            "item": "comment" if comment_id else "post",
            "verb": verb,
            "post_id": post_id,
            "from": {"id": author, "name": "Brand" if outbound else f"Customer {author[-4:]}"},
            "message": text,
        }
        if verb == "add":
            value["created_time"] = SENT_S
        if comment_id:
            value |= {"comment_id": comment_id, "parent_id": post_id}
        body = {
            "object": "page",
            "entry": [
                {"id": PAGE_ID, "time": SENT_S, "changes": [{"field": "feed", "value": value}]}
            ],
        }
        self.add_post(
            thread,
            at,
            "meta",
            body,
            platform="facebook",
            platform_message_id=comment_id or post_id,
            author_id=author,
            outbound=outbound,
            event=FEED_EVENTS[verb],
            in_reply_to=post_id if comment_id else None,
            precision="s",
        )

    def meta_dm_thread(self, start: float, platform: Literal["facebook", "instagram"]) -> _Thread:
        thread = self.new_thread("messenger" if platform == "facebook" else "instagram")
        customer = self.ids.digits(16)
        self._dm_conversation(
            thread,
            start,
            send=lambda at, text: self.meta_dm(
                thread, at, platform=platform, customer=customer, text=text
            ),
            answer=lambda at, text: self.meta_dm(
                thread, at, platform=platform, customer=customer, text=text, outbound=True
            ),
            edit=lambda at, mid, text: self.meta_dm(
                thread, at, platform=platform, customer=customer, text=text, event="edit", mid=mid
            ),
            delete=lambda at, mid: self.meta_dm(
                thread, at, platform=platform, customer=customer, event="delete", mid=mid
            ),
        )
        return thread

    def page_thread(self, start: float) -> _Thread:
        """A customer's post on the Page, answered by the Page's comment under it."""
        thread = self.new_thread("page")
        customer = self.ids.digits(15)
        post_id = f"{PAGE_ID}_{self.ids.digits(15)}"
        self.page_feed(
            thread,
            start,
            author=customer,
            post_id=post_id,
            comment_id=None,
            text=self.customer_text(thread.language),
        )
        if self.rng.random() < 0.15:
            self.page_feed(
                thread,
                start + self.rng.uniform(1.5, 4.0),
                author=customer,
                post_id=post_id,
                comment_id=None,
                text=self.customer_text(thread.language),
                verb="edited",
            )
        reply = self.reply_offset()
        if reply is not None:
            self.page_feed(
                thread,
                start + reply,
                author=PAGE_ID,
                post_id=post_id,
                comment_id=f"{post_id.split('_')[1]}_{self.ids.digits(15)}",
                text=self.brand_text(),
            )
        return thread

    # --- WhatsApp ------------------------------------------------------------------------

    def whatsapp(
        self,
        thread: _Thread,
        at: float,
        *,
        customer: str,
        kind: Literal["message", "echo", "status", "edit", "revoke"],
        text: str = "",
        original: str | None = None,
    ) -> str:
        wamid = "wamid." + base64.b64encode(self.rng.randbytes(24)).decode()
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": DISPLAY_NUMBER,
                "phone_number_id": PHONE_NUMBER_ID,
            },
            "contacts": [{"profile": {"name": f"Customer {customer[-4:]}"}, "wa_id": customer}],
        }
        field_name = "messages"
        item: dict[str, Any] = {"from": customer, "id": wamid, "timestamp": SENT_S_TEXT}
        platform_message_id = wamid
        event: Literal["message", "edit", "delete"] = "message"
        if kind == "message":
            value["messages"] = [item | {"type": "text", "text": {"body": text}}]
        elif kind == "echo":
            field_name = "smb_message_echoes"
            echo = item | {"from": DISPLAY_NUMBER, "to": customer}
            value["message_echoes"] = [echo | {"type": "text", "text": {"body": text}}]
        elif kind == "status":
            # A reply sent through the Cloud API from another tool: only its status comes back.
            value["statuses"] = [
                {
                    "id": wamid,
                    "recipient_id": customer,
                    "status": "sent",
                    "timestamp": SENT_S_TEXT,
                    "conversation": {"id": self.ids.token("c"), "origin": {"type": "service"}},
                    "pricing": {"billable": False, "pricing_model": "PMP", "category": "service"},
                }
            ]
        elif kind == "edit":
            assert original is not None
            edit = {
                "original_message_id": original,
                "message": {"type": "text", "text": {"body": text}},
            }
            value["messages"] = [item | {"type": "edit", "edit": edit}]
            platform_message_id, event = original, "edit"
        else:
            assert original is not None
            value["messages"] = [
                item | {"type": "revoke", "revoke": {"original_message_id": original}}
            ]
            platform_message_id, event = original, "delete"
        outbound = kind in ("echo", "status")
        body = {
            "object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"field": field_name, "value": value}]}],
        }
        # Meta posts WhatsApp to the callback of the app: its own path or the shared one.
        endpoint: Endpoint = "whatsapp" if self.rng.random() < 0.7 else "meta"
        self.add_post(
            thread,
            at,
            endpoint,
            body,
            platform="whatsapp",
            platform_message_id=platform_message_id,
            author_id=PHONE_NUMBER_ID if outbound else customer,
            outbound=outbound,
            event=event,
            precision="s",
        )
        return wamid

    def whatsapp_thread(self, start: float) -> _Thread:
        thread = self.new_thread("whatsapp")
        customer = self.ids.digits(12)
        self._dm_conversation(
            thread,
            start,
            send=lambda at, text: self.whatsapp(
                thread, at, customer=customer, kind="message", text=text
            ),
            answer=lambda at, text: self.whatsapp(
                thread,
                at,
                customer=customer,
                kind="echo" if self.rng.random() < 0.75 else "status",
                text=text,
            ),
            edit=lambda at, mid, text: self.whatsapp(
                thread, at, customer=customer, kind="edit", text=text, original=mid
            ),
            delete=lambda at, mid: self.whatsapp(
                thread, at, customer=customer, kind="revoke", original=mid
            ),
        )
        return thread

    # --- Generic channel -----------------------------------------------------------------

    def generic(
        self,
        thread: _Thread,
        at: float,
        *,
        customer: str,
        text: str,
        outbound: bool = False,
        event: Literal["message", "edit"] = "message",
        pid: str | None = None,
    ) -> str:
        pid = pid or self.ids.token("chat-")
        body = {
            "platform": "other",
            "channel": "dm",
            "direction": "outbound" if outbound else "inbound",
            "event": event,
            "account_id": GENERIC_ACCOUNT,
            "platform_message_id": pid,
            "conversation_id": f"other:{GENERIC_ACCOUNT}:{customer}",
            "author": {"id": "agent-7" if outbound else customer},
            "text": text,
            "sent_at": SENT_ISO,
        }
        self.add_post(
            thread,
            at,
            "generic",
            body,
            platform="other",
            platform_message_id=pid,
            author_id="agent-7" if outbound else customer,
            outbound=outbound,
            event=event,
        )
        return pid

    def generic_thread(self, start: float) -> _Thread:
        thread = self.new_thread("web-chat")
        customer = self.ids.token("visitor-")
        self._dm_conversation(
            thread,
            start,
            send=lambda at, text: self.generic(thread, at, customer=customer, text=text),
            answer=lambda at, text: self.generic(
                thread, at, customer=customer, text=text, outbound=True
            ),
            edit=lambda at, pid, text: self.generic(
                thread, at, customer=customer, text=text, event="edit", pid=pid
            ),
            delete=None,
        )
        return thread

    def x_dm_thread(self, start: float) -> _Thread:
        thread = self.new_thread("x-dm")
        brand, customer = str(X_BRAND_BASE), self.ids.digits(10)
        self._dm_conversation(
            thread,
            start,
            send=lambda at, text: self.x_dm(thread, at, brand=brand, customer=customer, text=text),
            answer=lambda at, text: self.x_dm(
                thread, at, brand=brand, customer=customer, text=text, outbound=True
            ),
            edit=None,
            delete=None,
        )
        return thread

    def _dm_conversation(
        self,
        thread: _Thread,
        start: float,
        *,
        send: Callable[[float, str], str],
        answer: Callable[[float, str], str],
        edit: Callable[[float, str, str], str] | None,
        delete: Callable[[float, str], str] | None,
    ) -> None:
        """1-3 customer messages, the first brand reply at `reply_offset`, maybe a follow-up
        and a second reply; sometimes an edit or a delete of a customer message."""
        target = self.options.first_response_seconds
        at = start
        sent: list[tuple[float, str]] = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            sent.append((at, send(at, self.customer_text(thread.language))))
            at += self.rng.uniform(1.0, 0.3 * target)
        if edit is not None and self.rng.random() < 0.12:
            when, mid = self.rng.choice(sent)
            edit(max(at, when + 1.0), mid, self.customer_text(thread.language))
        if delete is not None and self.rng.random() < 0.06:
            when, mid = sent[-1]
            delete(max(at, when + 1.5), mid)
        reply = self.reply_offset()
        if reply is None:
            return
        at = max(at, start + reply)
        answer(at, self.brand_text())
        if self.rng.random() < 0.4:
            at += self.rng.uniform(2.0, 6.0)
            send(at, self.customer_text(thread.language))
            answer(at + self.rng.uniform(1.0, 5.0), self.brand_text())

    # --- Crisis, praise, bad input -------------------------------------------------------

    def crisis_customer(self, at: float) -> _Thread:
        """One customer of the burst: the same outage words, on X, WhatsApp or Messenger."""
        thread = self.new_thread("crisis")
        text = self.rng.choice(OUTAGE[thread.language])
        channel = self.rng.choice(("x", "whatsapp", "messenger"))
        reply = self.reply_offset() if self.rng.random() < 0.5 else None
        if channel == "x":
            brand, customer = str(X_BRAND_BASE), self.ids.digits(10)
            tweet = self.x_tweet(thread, at, brand=brand, customer=customer, text=text)
            if reply is not None:
                self.x_tweet(
                    thread,
                    at + reply,
                    brand=brand,
                    customer=customer,
                    text=self.brand_text(),
                    outbound=True,
                    replied_to=tweet,
                )
        elif channel == "whatsapp":
            customer = self.ids.digits(12)
            self.whatsapp(thread, at, customer=customer, kind="message", text=text)
            if reply is not None:
                self.whatsapp(
                    thread, at + reply, customer=customer, kind="echo", text=self.brand_text()
                )
        else:
            customer = self.ids.digits(16)
            self.meta_dm(thread, at, platform="facebook", customer=customer, text=text)
            if reply is not None:
                self.meta_dm(
                    thread,
                    at + reply,
                    platform="facebook",
                    customer=customer,
                    text=self.brand_text(),
                    outbound=True,
                )
        return thread

    def praise(self, at: float) -> _Thread:
        """A thank-you that opens nothing to do: closed as no_action, needs no case."""
        thread = self.new_thread("praise")
        customer = self.ids.digits(16)
        self.meta_dm(
            thread,
            at,
            platform="facebook",
            customer=customer,
            text=self.rng.choice(PRAISE[thread.language]),
        )
        post = thread.posts[-1]
        thread.posts[-1] = replace(
            post, messages=tuple(replace(m, needs_case=False) for m in post.messages)
        )
        return thread

    def bad_inputs(self, at: float) -> _Thread:
        """One of each deliberately bad input, a second apart."""
        thread = self.new_thread("bad-input")
        customer = self.ids.digits(16)
        good_mid = self.ids.token("m_")
        event = {
            "sender": {"id": customer},
            "recipient": {"id": PAGE_ID},
            "timestamp": SENT_MS,
            "message": {"mid": good_mid, "text": self.customer_text(thread.language)},
        }
        guest = {  # a chat-plugin guest: only a user_ref, no id to key a conversation on
            "sender": {"user_ref": "guest-" + self.ids.digits(8)},
            "recipient": {"id": PAGE_ID},
            "timestamp": SENT_MS,
            "message": {"mid": self.ids.token("m_"), "text": "hello?"},
        }
        batch = {
            "object": "page",
            "entry": [{"id": PAGE_ID, "time": SENT_MS, "messaging": [event, guest]}],
        }
        good = PlannedMessage(
            platform="facebook",
            platform_message_id=good_mid,
            direction="inbound",
            event="message",
            thread=thread.name,
            author_id=customer,
            language=thread.language,
        )
        unknown = {"object": "telegram", "entry": [{"id": "1", "time": SENT_MS}]}
        tweet = {"for_user_id": str(X_BRAND_BASE), "tweet_create_events": []}
        thread.posts += [
            PlannedPost(at, "meta", batch, (good,), expected_rejection="invalid_item"),
            PlannedPost(
                at + 1, "meta", batch, signing="wrong_secret", expected_rejection="bad_signature"
            ),
            PlannedPost(
                at + 2, "x", tweet, signing="missing", expected_rejection="missing_signature"
            ),
            PlannedPost(
                at + 3,
                "meta",
                {},
                raw=b'{"object": "page", "entry": [',
                expected_rejection="malformed_json",
            ),
            PlannedPost(at + 4, "meta", unknown, expected_rejection="unknown_object"),
            PlannedPost(
                at + 5,
                "generic",
                {"platform": "other", "text": "no fields"},
                expected_rejection="invalid_message",
            ),
            PlannedPost(
                at + 6,
                "generic",
                {"platform": "other", "text": "anyone may post?"},
                signing="missing",
                expected_rejection="missing_credentials",
            ),
        ]
        return thread

    # --- Mixing --------------------------------------------------------------------------

    def plan(self) -> Plan:
        """Threads of every kind at random starts over the run, until N messages."""
        options = self.options
        duration = options.duration
        kinds: list[tuple[Callable[[float], _Thread], float]] = [
            (self.corpus_thread, 0.30),
            (lambda at: self.meta_dm_thread(at, "facebook"), 0.14),
            (lambda at: self.meta_dm_thread(at, "instagram"), 0.08),
            (self.whatsapp_thread, 0.16),
            (self.x_dm_thread, 0.07),
            (self.generic_thread, 0.07),
            (self.page_thread, 0.08),
            (self.x_public_and_dm, 0.05),
            (self.praise, 0.05),
        ]
        threads: list[_Thread] = []
        burst_at = 0.4 * duration
        burst_window = min(45.0, 0.5 * duration)  # seconds, "within a minute"
        burst = max(10, options.messages // 200)
        for _ in range(burst):
            threads.append(self.crisis_customer(burst_at + self.rng.uniform(0.0, burst_window)))
        for index in range(max(1, options.messages // 2000)):
            threads.append(
                self.bad_inputs(duration * (0.1 + 0.8 * index / max(1, options.messages // 2000)))
            )
        planned = sum(thread.size for thread in threads)
        makers = [maker for maker, _ in kinds]
        weights = [weight for _, weight in kinds]
        while planned < options.messages:
            maker = self.rng.choices(makers, weights)[0]
            thread = maker(self.rng.uniform(0.0, duration))
            threads.append(thread)
            planned += thread.size
        posts = [post for thread in threads for post in thread.posts]
        posts.sort(key=lambda post: post.at)
        return Plan(options, posts)


def _stable_number(text: str) -> int:
    """A stable number for a name (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def build_plan(options: PlanOptions, texts: Texts) -> Plan:
    """The seeded plan: the same options and texts always give the same posts."""
    return Planner(options, texts).plan()


def iter_sent(
    post: PlannedPost, rendered: Rendered, accepted_at: datetime, tries: int
) -> Iterator[SentMessage]:
    for message in post.messages:
        yield message.sent(rendered.sent_at, accepted_at, tries)
