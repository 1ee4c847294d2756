"""Sentiment of a customer message: negative, neutral or positive, with a polarity score.

A multinomial Naive Bayes model per language (Arabic, Greek, Thai, English, Spanish) over
cheap features of the folded text: words, adjacent word pairs, the first four and last three
letters of longer words (Arabic and Greek inflect), and letter trigrams inside runs of Thai
(written without spaces). It was trained at build time from the labelled sets under the
shared data folder by `casewire-dev sentiment --train`, which writes `sentiment_model.json.gz`
next to this module and the evaluation behind it to docs/sentiment.md; nothing is downloaded
at run time.

`score` is P(positive) - P(negative) in [-1, 1] (probabilities calibrated on held-out data),
so a case's worst sentiment is simply its lowest score. The urgency's negative-tone signal
reads the same `Sentiment` (see `urgency.assess`): the two never disagree.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

SentimentLabel = Literal["negative", "neutral", "positive"]
LABELS: tuple[SentimentLabel, SentimentLabel, SentimentLabel] = ("negative", "neutral", "positive")
LANGUAGES = ("ar", "el", "en", "es", "th")
MODEL_FILE = "sentiment_model.json.gz"
MAX_CHARS = 1000  # a longer text is read up to here: its cost stays bounded
# The negative logit's lead over the others when the negative vocabulary fires: P(negative)
# is then at least e / (e + 2), about 0.58.
LEXICON_MARGIN = 1.0
_SCALE = 100  # weights are stored as integers, hundredths of a natural-log unit

_MENTIONS_AND_LINKS = re.compile(r"@\w+|https?://\S+|www\.\S+")
# Words (letters, digits, marks) and every other visible character on its own: emoji and
# punctuation ("!", "?", "😡") are features too.
_TOKENS = re.compile(r"\w+|[^\w\s]")
_THAI = re.compile(r"[\u0e00-\u0e7f]")


@dataclass(frozen=True)
class Sentiment:
    """What a message's tone reads as: the most likely label and the polarity score."""

    label: SentimentLabel
    score: float  # P(positive) - P(negative), in [-1, 1]

    def worse_than(self, other: Sentiment | None) -> bool:
        return other is None or self.score < other.score


NEUTRAL = Sentiment("neutral", 0.0)


@dataclass(frozen=True)
class LanguageModel:
    """One language's Naive Bayes tables: per feature, its log-likelihood per label (centred,
    in hundredths), the label priors and the calibration temperature."""

    weights: Mapping[str, tuple[int, int, int]]
    prior: tuple[float, float, float]
    temperature: float


@dataclass(frozen=True)
class SentimentModel:
    languages: Mapping[str, LanguageModel]
    trained: Mapping[str, Any]  # how it was trained and evaluated, as recorded by the trainer


def features(folded: str) -> list[str]:
    """The features of a folded text (`keywords.fold`), mentions and links left out: the
    trainer and `classify` use this one function, so training and serving never differ."""
    tokens = _TOKENS.findall(_MENTIONS_AND_LINKS.sub(" ", folded[:MAX_CHARS]))
    found = list(tokens)
    previous = ""
    for token in tokens:
        if previous:
            found.append(f"{previous} {token}")
        previous = token
        if len(token) < 5:
            continue
        if _THAI.match(token):
            found.extend(f"~{token[i : i + 3]}" for i in range(len(token) - 2))
        else:
            found.append(f"<{token[:4]}")
            found.append(f"{token[-3:]}>")
    return found


def guess_language(folded: str) -> str:
    """The model to read a text with when the message has no (supported) language: by its
    script; Latin text is English unless it has Spanish letters or punctuation."""
    for char in folded:
        code = ord(char)
        if 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F or 0xFB50 <= code <= 0xFEFF:
            return "ar"
        if 0x0370 <= code <= 0x03FF or 0x1F00 <= code <= 0x1FFF:
            return "el"
        if 0x0E00 <= code <= 0x0E7F:
            return "th"
    if any(char in folded for char in "ñ¿¡"):
        return "es"
    return "en"


def classify(
    model: SentimentModel, folded: str, language: str | None = None, negative_words: bool = False
) -> Sentiment:
    """The sentiment of a folded text in `language` (ISO 639-1; guessed from the script when
    missing or not one the model knows). `negative_words`: urgency's negative or hostile
    vocabulary (curated for complaints) found words in it, which makes it negative whatever
    the model says (measured: see docs/sentiment.md). A text with neither is neutral."""
    chosen = model.languages.get(language or "") or model.languages[guess_language(folded)]
    weights = chosen.weights
    negative = neutral = positive = 0
    hits = 0
    for feature in features(folded):
        weight = weights.get(feature)
        if weight is not None:
            negative += weight[0]
            neutral += weight[1]
            positive += weight[2]
            hits += 1
    if not hits and not negative_words:
        return NEUTRAL
    return _decide(chosen, (negative, neutral, positive), negative_words)


def _decide(chosen: LanguageModel, sums: Sequence[int], negative_words: bool) -> Sentiment:
    logits = [
        (prior + total / _SCALE) / chosen.temperature
        for prior, total in zip(chosen.prior, sums, strict=True)
    ]
    if negative_words:
        logits[0] = max(logits[0], max(logits[1], logits[2]) + LEXICON_MARGIN)
    top = max(logits)
    exps = [math.exp(logit - top) for logit in logits]
    total = sum(exps)
    best = logits.index(top)
    score = round((exps[2] - exps[0]) / total, 3)
    return Sentiment(LABELS[best], score + 0.0)  # + 0.0: never -0.0


def build_model(document: Mapping[str, Any]) -> SentimentModel:
    """The model from its JSON document (as the trainer writes it). Identical weight triples
    share one tuple: the tables hold a few hundred thousand features."""
    shared: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    languages = {}
    for language, table in document["languages"].items():
        weights = {}
        for feature, triple in table["weights"].items():
            key = (int(triple[0]), int(triple[1]), int(triple[2]))
            weights[feature] = shared.setdefault(key, key)
        prior = table["prior"]
        languages[language] = LanguageModel(
            weights=weights,
            prior=(float(prior[0]), float(prior[1]), float(prior[2])),
            temperature=float(table["temperature"]),
        )
    missing = set(LANGUAGES) - set(languages)
    if missing:
        raise ValueError(f"the sentiment model has no table for {sorted(missing)}")
    return SentimentModel(
        languages=MappingProxyType(languages),
        trained=MappingProxyType(dict(document.get("trained", {}))),
    )


def read_model_file(data: bytes) -> SentimentModel:
    return build_model(json.loads(gzip.decompress(data)))


@cache
def default_model() -> SentimentModel:
    """The model shipped with the router, loaded once per process."""
    data = resources.files("casewire_router.domain").joinpath(MODEL_FILE).read_bytes()
    return read_model_file(data)
