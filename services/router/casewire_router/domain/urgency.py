"""Urgency: a 0–100 score from explainable, weighted signals, mapped to P1–P4.

Every signal that fires is kept with its weight and a detail a care lead can read, so a
priority can always be explained. `assess` also tells the caller which crisis topics a
message is about (to group incidents) and whether it looks like trolling rather than an
unhappy customer; a likely troll is still routed, only its hostility is not counted.
See docs/urgency.md for the weights, the troll heuristic and the measured evaluation.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml
from casewire_common.events import Priority, Urgency, UrgencySignal
from casewire_common.messages import CanonicalMessage

from casewire_router.domain import sentiment as sentiment_model
from casewire_router.domain.keywords import TaggedKeywordMatcher, fold
from casewire_router.domain.sentiment import Sentiment, SentimentModel, classify

# Topics differ in how much they weigh: a danger to people outranks a billing mistake.
# A topic the rules file adds weighs W_CRISIS_DEFAULT.
CRISIS_TOPIC_WEIGHTS: Mapping[str, int] = MappingProxyType({
    "safety": 50, "security": 45, "outage": 45, "legal": 40, "disruption": 40, "billing": 35,
})  # fmt: skip
W_CRISIS_DEFAULT = 40
W_CRISIS_EXTRA_TOPIC = 5  # per further topic in the same message

# The shipped vocabularies, by signal and language (urgency_vocabulary.yaml), read once.
VOCABULARY_FILE = "urgency_vocabulary.yaml"
SIGNAL_VOCABULARIES = ("negative", "hostile", "event", "failure", "time")


def _words_by_language(entry: object, where: str) -> tuple[str, ...]:
    """One vocabulary's words, the languages' in turn (the file's order)."""
    if not isinstance(entry, dict) or not all(
        isinstance(words, list) and all(isinstance(word, str) for word in words)
        for words in entry.values()
    ):
        raise ValueError(f"{VOCABULARY_FILE}: {where}: expected lists of words by language")
    return tuple(word for words in entry.values() for word in words)


def _load_vocabularies() -> dict[str, Any]:
    text = resources.files("casewire_router.domain").joinpath(VOCABULARY_FILE).read_text("utf-8")
    document = yaml.safe_load(text)
    return {
        "crisis": MappingProxyType(
            {
                topic: _words_by_language(entry, f"crisis.{topic}")
                for topic, entry in document["crisis"].items()
            }
        ),
        **{name: _words_by_language(document[name], name) for name in SIGNAL_VOCABULARIES},
    }


_SHIPPED = _load_vocabularies()
# Crisis vocabulary by topic (what incidents group by), and the words of the other signals.
CRISIS_VOCABULARY: Mapping[str, tuple[str, ...]] = _SHIPPED["crisis"]
NEGATIVE_WORDS: tuple[str, ...] = _SHIPPED["negative"]
# Insults and profanity: negative tone; with no specifics and little said, a likely troll.
HOSTILE_WORDS: tuple[str, ...] = _SHIPPED["hostile"]
EVENT_WORDS: tuple[str, ...] = _SHIPPED["event"]  # what was done: neutral facts
FAILURE_WORDS: tuple[str, ...] = _SHIPPED["failure"]  # what went wrong for the customer
TIME_WORDS: tuple[str, ...] = _SHIPPED["time"]
_TIME_UNITS = (
    r"min|mins|minutes?|hours?|hrs?|days?|weeks?|months?"
    r"|ساعة|ساعات|دقيقة|دقائق|يوم|أيام|ايام|أسبوع|شهر"
    r"|λεπτά|ώρα|ώρες|μέρα|μέρες|ημέρες|εβδομάδα|μήνα|μήνες"
    r"|minutos?|horas?|d[ií]as?|semanas?|mes|meses"
)
_THAI_TIME_UNITS = "นาที|ชั่วโมง|ชม|วัน|อาทิตย์|สัปดาห์|เดือน"
_CURRENCY_NAMES = (
    r"usd|eur|gbp|dollars?|bucks|euros?|pounds?|pesos?|mxn|baht|thb|sar|aed|egp"
    r"|ευρώ|บาท|ريال|درهم|جنيه|دينار"
)

W_FAILURE = 25
W_NEGATIVE = 15
W_NEGATIVE_MILD = 5  # negative by the model alone, and not clearly (score above -0.5)
NEGATIVE_CLEAR_SCORE = -0.5
W_NEGATIVE_STRONG = 20  # two or more distinct negative or hostile terms, or a strong score
NEGATIVE_STRONG_SCORE = -0.6  # a sentiment score this low (or lower) is strongly negative
W_PUBLIC = 10
W_REACH_LARGE = 20
W_REACH_MEDIUM = 10
REACH_LARGE = 100_000
REACH_MEDIUM = 10_000
W_VERIFIED = 5
W_SHOUTING = 10
W_REPEAT_PER_CONTACT = 7
W_REPEAT_MAX = 21
W_BURST = 10
W_BURST_LARGE = 20
BURST_MIN = 3  # other recent messages on the same crisis topic
BURST_LARGE = 10
W_SPECIFICS = 5
W_SPECIFICS_SEVERAL = 10  # two or more kinds of specifics
TROLL_MAX_LETTERS = 80  # "little content": letters, mentions and links left out

P1_MIN = 70
P2_MIN = 40
P3_MIN = 25


# The vocabularies, by their tag in `UrgencyModel.vocabularies`.
CRISIS = "crisis"
NEGATIVE = "negative"
HOSTILE = "hostile"
FAILURE = "failure"
EVENT = "event"
TIME = "time"


@dataclass(frozen=True)
class UrgencyModel:
    """The vocabularies, built once into one automaton: one pass over a text finds the words
    of all of them, and costs the same however many words they hold."""

    vocabularies: TaggedKeywordMatcher  # tagged CRISIS, NEGATIVE, HOSTILE, FAILURE, EVENT, TIME
    crisis_topics: Mapping[str, frozenset[str]]  # folded crisis keyword → its topics
    topic_weights: Mapping[str, int]
    sentiment: SentimentModel  # the tone of a message, which the negative-tone signal reads


@dataclass(frozen=True)
class TextReading:
    """What the vocabularies found in a folded text, mentions and links left out: read once
    per message, for its crisis topics (incidents) and its urgency alike."""

    content: str  # the folded text without mentions and links
    found: Mapping[str, set[str]]  # words found, by vocabulary tag
    crisis_topics: frozenset[str]
    # The tone: the same reading for the case's sentiment and the negative-tone signal.
    sentiment: Sentiment

    def words(self, tag: str) -> set[str]:
        return self.found.get(tag, set())


@dataclass(frozen=True)
class UrgencyContext:
    """What the caller knows from its database about the message's surroundings."""

    recent_contacts: int = 0  # the same customer's earlier contacts within 24 h
    similar_recent: int = 0  # other recent messages on the same crisis topic (a burst)

    def __post_init__(self) -> None:
        if self.recent_contacts < 0 or self.similar_recent < 0:
            raise ValueError(f"counts must not be negative: {self}")


@dataclass(frozen=True)
class Assessment:
    """The urgency with its signals, what the caller needs to group incidents, and whether
    the author looks like a troll (the router tags the case; it never drops it)."""

    urgency: Urgency
    crisis_topics: frozenset[str]  # for grouping messages into incidents
    troll_likely: bool


def default_model(
    extra_crisis: Mapping[str, Sequence[str]] = MappingProxyType({}),
    extra_negative: Sequence[str] = (),
    extra_words: Mapping[str, Sequence[str]] = MappingProxyType({}),
) -> UrgencyModel:
    """The shipped vocabularies plus a rules file's: crisis words by topic (a new topic weighs
    W_CRISIS_DEFAULT), negative words, and the other signals' words by signal name
    (`negative`, `hostile`, `event`, `failure`, `time`)."""
    topics_of: dict[str, set[str]] = {}
    for vocabulary in (CRISIS_VOCABULARY, extra_crisis):
        for topic, words in vocabulary.items():
            if isinstance(words, str):
                raise TypeError(f"crisis words of {topic!r} must be a list, not a string")
            for word in words:
                folded = fold(word).strip()
                if folded:
                    topics_of.setdefault(folded, set()).add(topic)
    weights = {topic: W_CRISIS_DEFAULT for topic in extra_crisis}
    weights.update(CRISIS_TOPIC_WEIGHTS)
    if isinstance(extra_negative, str):
        raise TypeError("negative words must be a list, not a string")
    return UrgencyModel(
        vocabularies=TaggedKeywordMatcher(
            {
                CRISIS: topics_of,
                NEGATIVE: (*NEGATIVE_WORDS, *extra_negative, *extra_words.get(NEGATIVE, ())),
                HOSTILE: (*HOSTILE_WORDS, *extra_words.get(HOSTILE, ())),
                FAILURE: (*FAILURE_WORDS, *extra_words.get(FAILURE, ())),
                EVENT: (*EVENT_WORDS, *extra_words.get(EVENT, ())),
                TIME: (*TIME_WORDS, *extra_words.get(TIME, ())),
            }
        ),
        crisis_topics=MappingProxyType({word: frozenset(t) for word, t in topics_of.items()}),
        topic_weights=MappingProxyType(weights),
        sentiment=sentiment_model.default_model(),
    )


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_CAPITALS = string.ascii_uppercase.encode()
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Three or more exclamation marks (ASCII, full-width, Spanish inverted), possibly mixed with
# question marks (ASCII, full-width, Arabic): "!!!", "！！！", "?!?!", "؟!!".
_EXCLAMATION_RUN = re.compile(r"(?=[!！?？؟¡]*[!！¡])[!！?？؟¡]{3,}")


def _shouting(text: str) -> str | None:
    """Why the text shouts: mostly capitals (among letters that have a case), or a run of
    exclamation marks; None if it does not."""
    if _EXCLAMATION_RUN.search(text):
        return "exclamation marks"
    # ASCII letters are counted by deleting them (C speed); only the rest is looked at in turn.
    ascii_text = text.encode("ascii", "ignore")
    letters = len(ascii_text) - len(ascii_text.translate(None, _ASCII_LETTERS))
    capitals = len(ascii_text) - len(ascii_text.translate(None, _ASCII_CAPITALS))
    for char in _NON_ASCII.findall(text):
        if char.isalpha() and char.lower() != char.upper():
            letters += 1
            capitals += char.isupper()
    if letters >= 10 and capitals / letters >= 0.6:
        return "capitals"
    return None


def _folded_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern searched in folded text, itself folded (accents and hamza go) so that it
    is written naturally."""
    return re.compile(fold(pattern))


_MENTIONS_AND_LINKS = re.compile(r"@\w+|https?://\S+|www\.\S+")
_REFERENCE = _folded_pattern(
    r"#\s?\d{3,}"  # "#12345"
    r"|\b(?!5+\b)\d{5,}\b"  # order, tracking, phone numbers; not "55555" (Thai laughter)
    r"|\b\d{3,}(?:-\d{3,})+\b"  # "407-0490236-8049166"
    r"|\b(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{6,}\b"  # booking codes "k7xq2p", "1z999aa1"
)
_FLIGHT = _folded_pattern(
    r"\b(?:flight|flt|vuelo|πτήση|πτήσης|رحلة|رحلتي)\s*(?:no\.?|#)?\s*[a-z0-9]{0,2}\s?\d{1,4}\b"
    r"|\b[a-z]{2}\d{2,4}\b"  # "ua514", "aa100"
    r"|เที่ยวบิน\s*[a-z0-9]{0,2}\s?\d{1,4}"
)
# Every alternative of _TIME and _AMOUNT starts with a digit (or a currency sign): the
# leading lookahead only lets the search skip, at once, the positions where none can start.
_TIME = _folded_pattern(
    r"(?=\d)(?:"
    r"\b\d{1,2}:\d{2}\s?(?:am|pm)?\b"
    r"|\b\d{1,2}\s?(?:am|pm)\b"
    r"|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
    r"|\b\d{4}-\d{2}-\d{2}\b"
    r"|\d+\s?(?:" + _TIME_UNITS + r")(?!\w)"
    r"|\d+\s?(?:" + _THAI_TIME_UNITS + r")"  # Thai runs on without a space
    r")"
)
_AMOUNT = _folded_pattern(
    r"(?=[$€£¥฿₺₹\d])(?:"
    r"[$€£¥฿₺₹]\s?\d[\d.,]*"
    r"|\d[\d.,]*\s?[$€£฿]"
    r"|\b\d[\d.,]*\s?(?:" + _CURRENCY_NAMES + r")(?!\w)"
    r")"
)
_PRODUCT = _folded_pattern(
    r"\b(?:iphone|ipad|ios|macos|galaxy|pixel|kindle|echo|watch|series|model|version)"
    r"\s?\d[\w.]*"
    r"|\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{2,5}\b(?<!\d(?:st|nd|rd|th))(?<!\d(?:am|pm))"
)


_DIGIT = re.compile(r"\d")
_NUMBERED_SPECIFICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("reference", _REFERENCE),
    ("flight", _FLIGHT),
    ("time", _TIME),
    ("amount", _AMOUNT),
    ("product", _PRODUCT),
)


def _specifics(reading: TextReading) -> dict[str, list[str]]:
    """The concrete facts a message gives, by kind: an unhappy customer gives some, a troll
    rarely does."""
    folded = reading.content
    found: dict[str, list[str]] = {}
    # Every pattern needs a digit; most messages have none.
    patterns = _NUMBERED_SPECIFICS if _DIGIT.search(folded) else ()
    for kind, pattern in patterns:
        matches = [match.group().strip() for match in pattern.finditer(folded)]
        if matches:
            found[kind] = matches
    times = reading.words(TIME)
    if times:
        found.setdefault("time", []).extend(sorted(times))
    events = reading.words(EVENT)
    if events:
        found["event"] = sorted(events)
    return found


def _letters(text: str) -> int:
    return sum(1 for char in text if char.isalpha() or unicodedata.category(char) in {"Mn", "Mc"})


def read_text(model: UrgencyModel, folded: str, language: str | None = None) -> TextReading:
    """What the model's vocabularies find in a folded text, and its sentiment (`language`:
    the message's, if known); mentions and links are not read."""
    content = _MENTIONS_AND_LINKS.sub(" ", folded)
    found = model.vocabularies.find_folded(content)
    topics = frozenset(
        topic for word in found.get(CRISIS, ()) for topic in model.crisis_topics[word]
    )
    tone = classify(
        model.sentiment,
        content,
        language,
        negative_words=bool(NEGATIVE in found or HOSTILE in found),
    )
    return TextReading(content=content, found=found, crisis_topics=topics, sentiment=tone)


def crisis_topics(model: UrgencyModel, folded: str) -> frozenset[str]:
    """The crisis topics a folded text is about (what bursts and incidents group by);
    mentions and links are not read."""
    return read_text(model, folded).crisis_topics


def _crisis_weight(model: UrgencyModel, topics: frozenset[str]) -> int:
    weights = sorted((model.topic_weights.get(t, W_CRISIS_DEFAULT) for t in topics), reverse=True)
    return weights[0] + W_CRISIS_EXTRA_TOPIC * (len(weights) - 1)


def assess(
    model: UrgencyModel,
    message: CanonicalMessage,
    folded: str | None = None,
    context: UrgencyContext | None = None,
    reading: TextReading | None = None,
) -> Assessment:
    """Every signal that fired, with its weight; the score is their sum, kept within 0–100.
    `folded` is the message text already folded (see `keywords.fold`), if the caller has it,
    and `reading` that text read (`read_text`), if the caller has that too; `context` what
    the caller knows about the customer's and others' recent messages."""
    if reading is None:
        reading = read_text(
            model, fold(message.text) if folded is None else folded, message.language
        )
    context = context or UrgencyContext()
    content = reading.content
    signals: list[UrgencySignal] = []

    crisis_words = reading.words(CRISIS)
    topics = reading.crisis_topics
    if topics:
        words_of = {
            topic: sorted(w for w in crisis_words if topic in model.crisis_topics[w])
            for topic in sorted(topics)
        }
        detail = "; ".join(f"{topic}: {', '.join(words)}" for topic, words in words_of.items())
        signals.append(
            UrgencySignal(name="crisis", weight=_crisis_weight(model, topics), detail=detail)
        )

    # A crisis already says what went wrong: its failure words are not counted twice.
    failure = set() if topics else reading.words(FAILURE)
    if failure:
        signals.append(
            UrgencySignal(name="failure", weight=W_FAILURE, detail=", ".join(sorted(failure)))
        )

    # Negative tone is the message's sentiment (which the negative and hostile words make
    # negative whatever the model says): urgency and the case's sentiment never disagree.
    negative = reading.words(NEGATIVE)
    hostile = reading.words(HOSTILE)
    tone = reading.sentiment
    hostility = 0
    if tone.label == "negative":
        strong = len(negative) + len(hostile) >= 2 or tone.score <= NEGATIVE_STRONG_SCORE
        clear = negative or hostile or tone.score <= NEGATIVE_CLEAR_SCORE
        weight = W_NEGATIVE_STRONG if strong else W_NEGATIVE if clear else W_NEGATIVE_MILD
        parts = [f"sentiment {tone.score:+.2f}"]
        if negative:
            parts.append(", ".join(sorted(negative)))
        if hostile:
            parts.append(f"hostile: {', '.join(sorted(hostile))}")
        signals.append(UrgencySignal(name="negative_tone", weight=weight, detail="; ".join(parts)))
        hostility += weight

    shouting = _shouting(message.text)
    if shouting:
        signals.append(UrgencySignal(name="shouting", weight=W_SHOUTING, detail=shouting))
        hostility += W_SHOUTING

    if message.visibility == "public":
        signals.append(UrgencySignal(name="public", weight=W_PUBLIC, detail=message.channel))
    followers = message.author.followers or 0
    if followers >= REACH_LARGE:
        signals.append(
            UrgencySignal(name="reach", weight=W_REACH_LARGE, detail=f"{followers} followers")
        )
    elif followers >= REACH_MEDIUM:
        signals.append(
            UrgencySignal(name="reach", weight=W_REACH_MEDIUM, detail=f"{followers} followers")
        )
    if message.author.verified:
        signals.append(UrgencySignal(name="verified", weight=W_VERIFIED))

    if context.recent_contacts:
        signals.append(
            UrgencySignal(
                name="repeated_contact",
                weight=min(W_REPEAT_MAX, W_REPEAT_PER_CONTACT * context.recent_contacts),
                detail=f"{context.recent_contacts} earlier contacts in 24 h",
            )
        )
    if topics and context.similar_recent >= BURST_MIN:
        signals.append(
            UrgencySignal(
                name="burst",
                weight=W_BURST_LARGE if context.similar_recent >= BURST_LARGE else W_BURST,
                detail=f"{context.similar_recent} similar recent messages "
                f"({', '.join(sorted(topics))})",
            )
        )

    specifics = _specifics(reading)
    if specifics:
        signals.append(
            UrgencySignal(
                name="specifics",
                weight=W_SPECIFICS_SEVERAL if len(specifics) >= 2 else W_SPECIFICS,
                detail="; ".join(
                    f"{kind}: {', '.join(values)}" for kind, values in specifics.items()
                ),
            )
        )

    # Hostility with nothing concrete (no specifics, nothing that went wrong) and little
    # said: the author most likely wants a reaction, not help. Crises are never discounted.
    troll_likely = bool(
        hostile
        and not specifics
        and not failure
        and not topics
        and _letters(content) <= TROLL_MAX_LETTERS
    )
    if troll_likely:
        signals.append(
            UrgencySignal(
                name="troll_likely",
                weight=-hostility,
                detail="hostility without specifics: tone and shouting not counted",
            )
        )

    total = max(0, min(100, sum(signal.weight for signal in signals)))
    return Assessment(
        urgency=Urgency(score=total, signals=signals),
        crisis_topics=topics,
        troll_likely=troll_likely,
    )


def score(model: UrgencyModel, message: CanonicalMessage, folded: str | None = None) -> Urgency:
    """The urgency of a message judged on its own (no context): `assess(...).urgency`."""
    return assess(model, message, folded).urgency


def priority_for(score_value: int) -> Priority:
    if score_value >= P1_MIN:
        return "P1"
    if score_value >= P2_MIN:
        return "P2"
    if score_value >= P3_MIN:
        return "P3"
    return "P4"
