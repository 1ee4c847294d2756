"""The benchmark's workload: realistic canonical messages built from real TWCS texts, the rules
and agents the router runs with, and the case events those messages must produce.

Conversations follow the shape of social care traffic: a customer writes 2-4 times and the
brand answers each message. Texts are real tweets (customers' for inbound, brands' for
outbound) from `corpus/twcs/twcs_random5000_divya.csv`, read in place. Conversations are
interleaved, so a follow-up usually lands in a later batch than the message that opened its
case (as in real traffic, where replies come minutes or hours later).
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage, message_id
from casewire_ingest.domain.normalized import x_text

TWCS_SAMPLE = Path("corpus") / "twcs" / "twcs_random5000_divya.csv"

# Small but real: the teams, keywords and languages of a care desk for the brands in TWCS.
RULES_YAML = """\
version: 1
default_team: care
teams: [care, shipping, billing, accounts, incidents]
rules:
  - id: praise
    when:
      any: ["thank you", "thanks", "love it", "awesome", "great service", "شكرا", "ευχαριστώ",
            "ขอบคุณ", "gracias", "ありがとう"]
      none: ["not", "no", "never", "still", "but", "why", "help", "problem", "issue", "wrong",
             "can't", "cannot", "won't", "doesn't", "didn't", "refund", "order", "waiting"]
    then: {skip: true, tags: [praise]}
    stop: true
  - id: security
    when:
      any: ["hacked", "compromised", "unauthorized", "fraud", "scam", "stolen", "phishing",
            "اختراق", "احتيال", "απάτη", "โดนแฮก", "fraude"]
    then: {team: incidents, priority: P1, tags: [security]}
  - id: outage
    when:
      any: ["outage", "is down", "not working", "no service", "no signal", "crash", "crashing",
            "keeps crashing", "عطل", "δεν λειτουργεί", "ล่ม", "no funciona"]
    then: {team: incidents, priority: P2, tags: [outage]}
  - id: shipping
    when:
      any: ["order", "delivery", "delivered", "package", "parcel", "tracking", "shipping",
            "shipped", "courier", "حالة الطلب", "αποστολή", "การจัดส่ง", "pedido", "配達"]
    then: {team: shipping, priority: P3, tags: [shipping], reply_template: shipping-status}
  - id: billing
    when:
      any: ["refund", "charged", "charge", "bill", "billing", "payment", "subscription",
            "invoice", "fee", "money", "استرداد", "χρέωση", "คืนเงิน", "reembolso"]
    then: {team: billing, priority: P3, tags: [billing]}
  - id: accounts
    when:
      any: ["password", "log in", "login", "sign in", "account", "locked out", "verification",
            "two-factor", "2fa", "حساب", "λογαριασμό", "บัญชี", "cuenta"]
    then: {team: accounts, tags: [account]}
  - id: angry-public
    when: {any: ["worst", "terrible", "ridiculous", "unacceptable"], visibility: public}
    then: {priority: P2, tags: [escalation-risk]}
"""

AGENT_IDS = (
    ("amal", ["shipping", "care"], ["ar", "en"]),
    ("omar", ["incidents", "accounts"], ["ar", "en"]),
    ("nikos", ["care", "accounts"], ["el", "en"]),
    ("eleni", ["billing", "shipping"], ["el", "en"]),
    ("somchai", ["care", "billing"], ["th", "en"]),
    ("lucia", ["billing", "care", "incidents"], ["es", "en"]),
    ("kenji", ["care", "shipping", "incidents"], ["ja", "en"]),
    ("sam", ["care", "accounts", "billing"], ["en"]),
)


# The saved reply the shipping rule names (`reply_template`): the router refuses rules naming
# one its saved-replies file lacks.
SAVED_REPLIES_YAML = """\
replies:
  - id: shipping-status
    title: Shipping status
    teams: [shipping]
    tags: [shipping]
    text: {en: "Hi {customer_name}, your order is on its way."}
"""


def agents_file(agents: Iterable[tuple[str, Sequence[str], Sequence[str], int]]) -> str:
    """An agents file (`CASEWIRE_ROUTER_AGENTS`) of (id, teams, languages, capacity), every
    agent online."""
    lines = ["agents:"]
    for agent_id, teams, languages, capacity in agents:
        lines.append(
            f"  - {{id: {agent_id}, teams: [{', '.join(teams)}],"
            f" languages: [{', '.join(languages)}], capacity: {capacity}, online: true}}"
        )
    return "\n".join(lines) + "\n"


def roster_yaml(size: int, capacity: int, teams: Sequence[str]) -> str:
    """`size` agents spread over `teams` (every third on a second team too), in the four bench
    languages, everyone online."""
    languages = (["en"], ["en", "ar"], ["en", "el"], ["th", "en"])
    return agents_file(
        (
            f"agent{index:04d}",
            [teams[index % len(teams)]]
            + ([teams[(index + 2) % len(teams)]] if index % 3 == 0 else []),
            languages[index % len(languages)],
            capacity,
        )
        for index in range(size)
    )


def agents_yaml(capacity: int) -> str:
    """Everyone online with room for the whole run: every case that wants an agent gets one,
    so the expected events do not depend on which partition the router reads first."""
    return agents_file(
        (agent_id, teams, languages, capacity) for agent_id, teams, languages in AGENT_IDS
    )


@dataclass(frozen=True)
class Corpus:
    customer_texts: list[str]
    brand_texts: list[str]
    brands: list[str]  # one entry per brand tweet: choosing from it follows the corpus mix


def read_twcs_sample(shared_data: Path) -> Corpus:
    """Customer and brand texts of the TWCS random sample, read in place."""
    path = shared_data / TWCS_SAMPLE
    customer: list[str] = []
    brand: list[str] = []
    brands: list[str] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            text = x_text(row["text"]).strip()
            if not text:
                continue
            if row["inbound"].strip().lower() == "true":
                customer.append(text)
            else:
                brand.append(text)
                brands.append(row["author_id"])
    if not customer or not brand:
        raise RuntimeError(f"{path}: no customer or no brand tweets")
    return Corpus(customer_texts=customer, brand_texts=brand, brands=brands)


def guess_language(text: str) -> str:
    """The language by script (ingest detects it properly; this only needs to be plausible)."""
    for char in text:
        code = ord(char)
        if 0x0600 <= code <= 0x06FF:
            return "ar"
        if 0x0370 <= code <= 0x03FF:
            return "el"
        if 0x0E00 <= code <= 0x0E7F:
            return "th"
        if 0x3040 <= code <= 0x30FF or 0x4E00 <= code <= 0x9FFF:
            return "ja"
        if 0xAC00 <= code <= 0xD7AF:
            return "ko"
    return "en"


@dataclass(frozen=True)
class Record:
    """One Kafka record of the workload: key = conversation id, value = canonical JSON."""

    key: bytes
    value: bytes


@dataclass
class _Conversation:
    index: int
    brand: str
    customer: str
    channel: str
    followers: int
    verified: bool
    customer_turns: int
    clock: datetime
    sent: int = 0
    previous: str | None = None

    @property
    def length(self) -> int:
        return 2 * self.customer_turns

    @property
    def conversation_id(self) -> str:
        if self.channel == "dm":
            return f"x:{self.brand}:{self.customer}"
        return f"x:{self.brand}:{900_000_000_000_000_000 + self.index}:{self.customer}"


def build_workload(
    corpus: Corpus, messages: int, *, seed: int = 7, window: int = 1000
) -> tuple[list[Record], int]:
    """`messages` records and the number of conversations they belong to, interleaving up
    to `window` open conversations; the same seed gives the same bytes."""
    rng = random.Random(seed)
    base = datetime(2017, 10, 1, tzinfo=UTC)
    records: list[Record] = []
    started = 0
    active: list[_Conversation] = []
    next_tweet = 1_000_000_000_000_000_000

    def open_conversation() -> _Conversation:
        nonlocal started
        started += 1
        begin = base + timedelta(seconds=rng.randrange(0, 60 * 86400))
        return _Conversation(
            index=started,
            brand=rng.choice(corpus.brands),
            customer=str(100_000 + started),
            channel="dm" if rng.random() < 0.25 else "mention",
            followers=min(int(rng.lognormvariate(5.0, 2.0)), 5_000_000),
            verified=rng.random() < 0.01,
            customer_turns=rng.randint(2, 4),
            clock=begin,
        )

    while len(records) < messages:
        while len(active) < window:
            active.append(open_conversation())
        slot = rng.randrange(len(active))
        conversation = active[slot]
        next_tweet += rng.randint(1, 5000)
        tweet_id = str(next_tweet)
        inbound = conversation.sent % 2 == 0
        text = rng.choice(corpus.customer_texts if inbound else corpus.brand_texts)
        sent_at = conversation.clock
        author: dict[str, object]
        if inbound:
            author = {
                "id": conversation.customer,
                "handle": conversation.customer,
                "name": None,
                "followers": conversation.followers,
                "verified": conversation.verified,
            }
        else:
            author = {
                "id": conversation.brand,
                "handle": conversation.brand,
                "name": conversation.brand,
                "followers": 1_000_000,
                "verified": True,
            }
        body: dict[str, object] = {
            "id": message_id("x", tweet_id),
            "platform": "x",
            "channel": conversation.channel,
            "visibility": "private" if conversation.channel == "dm" else "public",
            "direction": "inbound" if inbound else "outbound",
            "event": "message",
            "account_id": conversation.brand,
            "platform_message_id": tweet_id,
            "conversation_id": conversation.conversation_id,
            "in_reply_to": conversation.previous,
            "author": author,
            "text": text,
            "language": guess_language(text),
            "attachments": [],
            "sent_at": sent_at.isoformat().replace("+00:00", "Z"),
            "received_at": (sent_at + timedelta(seconds=rng.randint(1, 5)))
            .isoformat()
            .replace("+00:00", "Z"),
        }
        records.append(
            Record(
                key=conversation.conversation_id.encode(),
                value=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            )
        )
        conversation.sent += 1
        conversation.previous = tweet_id
        conversation.clock = sent_at + timedelta(minutes=rng.randint(1, 90))
        if conversation.sent >= conversation.length:
            active[slot] = active[-1]
            active.pop()
    return records, len({record.key for record in records})


def predictable_counts(
    events: Iterable[tuple[str, str | None]], incident_cases: Set[str]
) -> Counter[str]:
    """(type, subject) events counted by type, without those whose number depends on how the
    messages fall into batches (here all in one, in the router in many): how often an open
    incident grows, and the priority changes of the cases it links (a follow-up may raise a
    case before its incident raises it to P1, or find it at P1 already)."""
    return Counter(
        kind
        for kind, subject in events
        if kind != ev.INCIDENT_UPDATED
        and not (kind == ev.CASE_PRIORITY_CHANGED and subject in incident_cases)
    )


@dataclass(frozen=True)
class Expectation:
    """What the router must produce for a workload (events as `predictable_counts`)."""

    cases: int
    events: Counter[str]

    @property
    def total_events(self) -> int:
        return sum(self.events.values())


def expected_outcome(records: list[Record], rules_path: Path, agents_path: Path) -> Expectation:
    """The cases and case events (incidents' too) of the workload, from the router's own
    pure domain.

    Valid as long as every case that wants an agent finds one with room (see `agents_yaml`)
    and each conversation's messages stay in order (same key, same partition).
    """
    from casewire_router.domain.agents_file import parse_agents
    from casewire_router.domain.assignment import AgentState
    from casewire_router.domain.batch import BatchState
    from casewire_router.domain.routing import case_router_for
    from casewire_router.domain.rules import load_rules

    router = case_router_for(load_rules(str(rules_path)))
    agents = {
        spec.id: AgentState(
            id=spec.id,
            teams=list(spec.teams),
            languages=list(spec.languages),
            capacity=spec.capacity,
            online=spec.online,
            load=0,
            last_assigned_at=None,
        )
        for spec in parse_agents(agents_path.read_text("utf-8")).agents
    }
    messages = [CanonicalMessage.model_validate_json(record.value) for record in records]
    outcome = router.route_batch(
        messages, BatchState(agents=agents), new_id=lambda: str(uuid.uuid4()), now=datetime.now(UTC)
    )
    incident_cases = {
        case_id for change in outcome.incidents for case_id in change.data.added_case_ids
    }
    counts = predictable_counts(
        [(event.type, event.case_id) for event in outcome.events]
        + [(change.event_type, change.data.incident_id) for change in outcome.incidents],
        incident_cases,
    )
    return Expectation(cases=counts[ev.CASE_CREATED], events=counts)
