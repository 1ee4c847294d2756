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
import io
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

SentimentLabel = Literal["negative", "neutral", "positive"]
LABELS: tuple[SentimentLabel, SentimentLabel, SentimentLabel] = ("negative", "neutral", "positive")
LANGUAGES = ("ar", "el", "en", "es", "th")
MODEL_FILE = "sentiment_model.json.gz"
# The file is JSON Lines, gzipped: a header object (`format`, `trained`, and per language its
# prior, temperature, chosen hyperparameters and number of features), then one line per
# feature, `[feature, negative, neutral, positive]`, language after language in the header's
# order. Read line by line, loading never holds a parsed document beside the tables.
FORMAT = 2
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
    """One language's Naive Bayes tables: per feature, its log-likelihoods per label (centred,
    in hundredths) packed into one int (`pack`), the label priors and the calibration
    temperature."""

    weights: Mapping[str, int]
    prior: tuple[float, float, float]
    temperature: float


@dataclass(frozen=True)
class SentimentModel:
    languages: Mapping[str, LanguageModel]
    trained: Mapping[str, Any]  # how it was trained and evaluated, as recorded by the trainer


# A feature's three weights in one int, a 32-bit field per label, each weight offset to be
# non-negative: one int per feature instead of a tuple of three, and a text's sums are one
# addition per feature, unpacked once (`unpack`). A field holds the sum of up to 65,536 hits
# (a text has at most 4 * MAX_CHARS features), so fields never carry into each other.
_FIELD = 32
_MASK = (1 << _FIELD) - 1
_OFFSET = 1 << 15  # weights are within [-32768, 32767]
_ROW = json.JSONDecoder()  # raw_decode: a third of json.loads's time per feature line


def pack(negative: int, neutral: int, positive: int) -> int:
    """The packed weights of one feature (each within [-32768, 32767])."""
    weights = (negative, neutral, positive)
    if not -_OFFSET <= min(weights) <= max(weights) < _OFFSET:
        raise ValueError(f"sentiment weights {weights} out of range")
    return (
        (negative + _OFFSET) | (neutral + _OFFSET) << _FIELD | (positive + _OFFSET) << (2 * _FIELD)
    )


def unpack(total: int, hits: int) -> tuple[int, int, int]:
    """The three weight sums of `hits` packed features added together."""
    offset = hits * _OFFSET
    return (
        (total & _MASK) - offset,
        (total >> _FIELD & _MASK) - offset,
        (total >> (2 * _FIELD)) - offset,
    )


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
    total = hits = 0
    for feature in features(folded):
        weight = weights.get(feature)
        if weight is not None:
            total += weight
            hits += 1
    if not hits and not negative_words:
        return NEUTRAL
    return _decide(chosen, unpack(total, hits), negative_words)


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


def read_model(lines: Iterable[str]) -> SentimentModel:
    """The model from the lines of its file (as the trainer writes it, `FORMAT`), read one
    line at a time: the header, then each language's features. Nothing but the tables is
    kept, and identical weights share one int."""
    rows = iter(lines)
    header = json.loads(next(rows, "null"))
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"not a sentiment model file of format {FORMAT}")
    shared: dict[tuple[int, int, int], int] = {}  # some 20,000 distinct weight triples
    languages = {}
    for language, table in header["languages"].items():
        weights: dict[str, int] = {}
        for row in itertools.islice(rows, int(table["features"])):
            feature, negative, neutral, positive = _ROW.raw_decode(row)[0]
            triple = (negative, neutral, positive)
            packed = shared.get(triple)
            if packed is None:
                packed = shared[triple] = pack(*triple)
            weights[feature] = packed
        if len(weights) != table["features"]:
            raise ValueError(f"the sentiment model's {language} table is cut short or repeats")
        prior = table["prior"]
        languages[language] = LanguageModel(
            weights=weights,
            prior=(float(prior[0]), float(prior[1]), float(prior[2])),
            temperature=float(table["temperature"]),
        )
    if next(rows, None) is not None:
        raise ValueError("the sentiment model has more lines than its header counts")
    missing = set(LANGUAGES) - set(languages)
    if missing:
        raise ValueError(f"the sentiment model has no table for {sorted(missing)}")
    return SentimentModel(
        languages=MappingProxyType(languages),
        trained=MappingProxyType(dict(header.get("trained", {}))),
    )


def read_model_file(data: bytes) -> SentimentModel:
    return read_model(io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(data)), "utf-8"))


@cache
def default_model() -> SentimentModel:
    """The model shipped with the router, loaded once per process, streamed from the
    compressed file (never the whole text in memory)."""
    with (
        resources.files("casewire_router.domain").joinpath(MODEL_FILE).open("rb") as file,
        gzip.GzipFile(fileobj=file) as unzipped,
        io.TextIOWrapper(unzipped, "utf-8") as text,
    ):
        return read_model(text)
