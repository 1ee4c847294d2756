"""Urgency: a 0–100 score from explainable, weighted signals, mapped to P1–P4."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from casewire_common.events import Priority, Urgency, UrgencySignal
from casewire_common.messages import CanonicalMessage

from casewire_router.domain.keywords import KeywordMatcher, fold

# Outage, safety, fraud and legal vocabulary, in every language Casewire supports.
CRISIS_WORDS = (
    # English
    "outage", "is down", "are down", "went down", "not working", "doesn't work", "crash",
    "crashed", "hacked", "fraud",
    "scam", "stolen", "unauthorized", "emergency", "caught fire", "injured", "injury", "danger",
    "unsafe", "lawsuit", "lawyer", "sue", "data breach", "leaked", "can't log in",
    "cannot log in", "locked out", "charged twice", "double charged",
    # Arabic
    "عطل", "لا يعمل", "توقف", "اختراق", "احتيال", "سرقة", "مسروق", "طوارئ", "خطر", "محامي",
    "مخترق",
    # Greek
    "βλάβη", "δεν λειτουργεί", "δεν δουλεύει", "απάτη", "κλοπή", "χάκαραν", "έκτακτη ανάγκη",
    "κίνδυνος", "δικηγόρο", "διακοπή",
    # Thai
    "ล่ม", "ใช้งานไม่ได้", "ใช้ไม่ได้", "โดนแฮก", "ถูกแฮก", "หลอกลวง", "โกง", "ขโมย", "ฉุกเฉิน",
    "อันตราย", "ฟ้องร้อง", "ทนาย",
    # Spanish
    "caído", "caida", "no funciona", "fraude", "estafa", "robo", "robado", "hackeado",
    "emergencia", "peligro", "abogado", "demanda",
)  # fmt: skip

NEGATIVE_WORDS = (
    "terrible", "worst", "awful", "horrible", "unacceptable", "angry", "furious", "ridiculous",
    "disgusting", "useless", "disappointed", "never again", "hate", "still waiting", "no answer",
    "سيء", "أسوأ", "غاضب", "مستاء", "غير مقبول",
    "απαράδεκτο", "χειρότερη", "θυμωμένος", "απογοητευμένος", "άθλιο",
    "แย่", "แย่มาก", "ผิดหวัง", "โมโห", "ห่วย",
    "terrible", "pésimo", "peor", "inaceptable", "enojado", "decepcionado", "vergüenza",
)  # fmt: skip

W_CRISIS = 45
W_NEGATIVE = 15
W_PUBLIC = 10
W_REACH_LARGE = 20
W_REACH_MEDIUM = 10
W_VERIFIED = 5
W_SHOUTING = 10


@dataclass(frozen=True)
class UrgencyModel:
    crisis: KeywordMatcher
    negative: KeywordMatcher


def default_model(extra_crisis_words: tuple[str, ...] = ()) -> UrgencyModel:
    return UrgencyModel(
        crisis=KeywordMatcher((*CRISIS_WORDS, *extra_crisis_words)),
        negative=KeywordMatcher(NEGATIVE_WORDS),
    )


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_CAPITALS = string.ascii_uppercase.encode()
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _shouting(text: str) -> bool:
    """Mostly capitals (among letters that have a case), or "!!!"."""
    if "!!!" in text:
        return True
    # ASCII letters are counted by deleting them (C speed); only the rest is looked at in turn.
    ascii_text = text.encode("ascii", "ignore")
    letters = len(ascii_text) - len(ascii_text.translate(None, _ASCII_LETTERS))
    capitals = len(ascii_text) - len(ascii_text.translate(None, _ASCII_CAPITALS))
    for char in _NON_ASCII.findall(text):
        if char.isalpha() and char.lower() != char.upper():
            letters += 1
            capitals += char.isupper()
    return letters >= 10 and capitals / letters >= 0.6


def score(model: UrgencyModel, message: CanonicalMessage, folded: str | None = None) -> Urgency:
    """Every signal that fired, with its weight; the score is their sum, capped at 100.
    `folded` is the message text already folded (see `keywords.fold`), if the caller has it."""
    if folded is None:
        folded = fold(message.text)
    signals: list[UrgencySignal] = []
    crisis = model.crisis.find_folded(folded)
    if crisis:
        signals.append(
            UrgencySignal(name="crisis", weight=W_CRISIS, detail=", ".join(sorted(crisis)))
        )
    negative = model.negative.find_folded(folded)
    if negative:
        signals.append(
            UrgencySignal(
                name="negative_tone", weight=W_NEGATIVE, detail=", ".join(sorted(negative))
            )
        )
    if message.visibility == "public":
        signals.append(UrgencySignal(name="public", weight=W_PUBLIC, detail=message.channel))
    followers = message.author.followers or 0
    if followers >= 100_000:
        signals.append(
            UrgencySignal(name="reach", weight=W_REACH_LARGE, detail=f"{followers} followers")
        )
    elif followers >= 10_000:
        signals.append(
            UrgencySignal(name="reach", weight=W_REACH_MEDIUM, detail=f"{followers} followers")
        )
    if message.author.verified:
        signals.append(UrgencySignal(name="verified", weight=W_VERIFIED))
    if _shouting(message.text):
        signals.append(UrgencySignal(name="shouting", weight=W_SHOUTING))
    total = min(100, sum(signal.weight for signal in signals))
    return Urgency(score=total, signals=signals)


def priority_for(score_value: int) -> Priority:
    if score_value >= 70:
        return "P1"
    if score_value >= 50:
        return "P2"
    if score_value >= 25:
        return "P3"
    return "P4"
