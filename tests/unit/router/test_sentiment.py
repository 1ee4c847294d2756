"""The sentiment of customer messages: the shipped model, its languages and edge cases, the
case's latest and worst sentiment, and urgency reading the same scorer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from casewire_common import events as ev
from casewire_router.domain.batch import BatchState
from casewire_router.domain.keywords import fold
from casewire_router.domain.routing import case_router_for
from casewire_router.domain.sentiment import (
    FORMAT,
    MAX_CHARS,
    NEUTRAL,
    Sentiment,
    default_model,
    features,
    guess_language,
    pack,
    read_model,
    unpack,
)
from casewire_router.domain.urgency import default_model as urgency_model
from casewire_router.domain.urgency import read_text, score

from tests.unit.router.factories import message
from tests.unit.router.test_threading import RULES, WINDOWS

MODEL = default_model()


def tone(text: str, language: str | None = None) -> Sentiment:
    return read_text(urgency_model(), fold(text), language).sentiment


@pytest.mark.parametrize(
    ("language", "text", "label"),
    [
        ("en", "@united worst airline ever, lost my bag and nobody answers", "negative"),
        ("en", "@united thank you so much, the crew was wonderful!", "positive"),
        ("ar", "خدمة سيئة جدا ولا أحد يرد، شيء مقرف", "negative"),
        ("ar", "شكرا جزيلا على الخدمة الرائعة ❤️", "positive"),
        ("el", "Απαράδεκτη εξυπηρέτηση, ντροπή σας", "negative"),
        ("el", "Συγχαρητήρια και ευχαριστώ πολύ για τη σημερινή συνάντηση", "positive"),
        ("th", "ห่วยมาก รอนานมาก ไม่ประทับใจเลย", "negative"),
        ("th", "อร่อยมากค่ะ ชอบมาก ประทับใจสุดๆ", "positive"),
        ("es", "Es una vergüenza, un servicio pésimo", "negative"),
        ("es", "Muchas gracias a todos, enhorabuena por el gran trabajo", "positive"),
    ],
)
def test_clear_messages_get_their_sentiment_in_each_language(
    language: str, text: str, label: str
) -> None:
    assert tone(text, language).label == label


def test_score_is_polarity_that_agrees_with_the_label() -> None:
    negative = tone("this is the worst service, I am furious", "en")
    positive = tone("thank you, great service, love it", "en")
    assert -1 <= negative.score < 0 < positive.score <= 1


@pytest.mark.parametrize("text", ["", "   ", "@united", "https://t.co/abc"])
def test_text_with_nothing_to_read_is_neutral(text: str) -> None:
    assert tone(text, "en") == NEUTRAL


def test_emoji_alone_carry_sentiment() -> None:
    assert tone("😡😡😡", "en").label == "negative"
    assert tone("❤️❤️", "th").score > 0


def test_negative_words_of_urgency_make_the_message_negative_whatever_the_model_says() -> None:
    # "pésimo" is in the negative vocabulary; the Spanish model learnt from politics alone.
    assert tone("el servicio es pésimo", "es").label == "negative"
    assert tone("el servicio es pésimo", "es").score < 0


def test_missing_language_is_guessed_from_the_script() -> None:
    assert guess_language(fold("สวัสดีครับ")) == "th"
    assert guess_language(fold("مرحبا")) == "ar"
    assert guess_language(fold("Καλημέρα")) == "el"
    assert guess_language(fold("¿dónde está mi pedido?")) == "es"
    assert guess_language(fold("where is my order")) == "en"
    assert tone("ห่วยมาก รอนานมาก ไม่ประทับใจเลย").label == "negative"
    # A language the model has no table for is read by its script.
    assert tone("ห่วยมาก รอนานมาก ไม่ประทับใจเลย", "fr").label == "negative"


def test_mixed_scripts_are_read_with_the_message_language() -> None:
    assert tone("แย่มาก the app is terrible ห่วย", "th").label == "negative"
    assert tone("شكرا جزيلا thank you so much ❤️", "ar").label == "positive"


def test_very_long_text_is_read_up_to_a_bound() -> None:
    long_text = "worst service ever, " * 5000
    started = time.perf_counter()
    assert tone(long_text, "en").label == "negative"
    assert len(features(fold(long_text))) <= 4 * MAX_CHARS
    assert time.perf_counter() - started < 5  # bounded, not a benchmark


def test_urgency_negative_tone_is_the_messages_sentiment() -> None:
    for text in (
        "worst airline ever, lost my bag",
        "thank you so much!",
        "what are your opening hours?",
        "ห่วยมาก รอนานมาก",
        "Απαράδεκτη εξυπηρέτηση",
    ):
        urgency = score(urgency_model(), message(text))
        fired = "negative_tone" in {signal.name for signal in urgency.signals}
        assert fired == (tone(text).label == "negative"), text


def test_case_carries_latest_and_worst_sentiment_of_its_customer_messages() -> None:
    state = BatchState()
    first = message("my order is late again, this is terrible service", pid="m1")
    second = message("ok thank you so much, great help!", pid="m2", minutes=1)
    outcome = case_router_for(RULES, WINDOWS).route_batch(
        [first, second], state, new_id=lambda: "case-1", now=first.sent_at
    )
    snapshots = [event.data.case for event in outcome.events if event.case_id == "case-1"]
    opened = next(e.data.case for e in outcome.events if e.type == ev.CASE_CREATED)
    assert opened.sentiment is not None
    assert opened.sentiment.label == "negative"
    last = snapshots[-1]
    assert last.sentiment is not None
    assert last.sentiment.label == "positive"
    assert last.worst_sentiment == opened.sentiment


def test_shipped_model_file_records_how_it_was_trained() -> None:
    assert set(MODEL.languages) == {"ar", "el", "en", "es", "th"}
    chosen = MODEL.trained["chosen"]
    assert set(chosen) == set(MODEL.languages)
    assert all(0 < language["dev_macro_f1"] <= 1 for language in chosen.values())


def test_recorded_evaluation_matches_a_reevaluation_of_the_shipped_model(
    shared_data: Path,
) -> None:
    """docs/sentiment.md holds the figures `casewire-dev sentiment` prints for this file."""
    from casewire_dev import sentiment as trainer

    items = trainer.load_items(shared_data / "intents")
    rows, _ = trainer.evaluate(MODEL, items, trainer.train_labels(items))
    table = trainer.report(rows, 0.0, MODEL).split("\n\nScoring cost")[0]
    doc = (Path(__file__).parents[3] / "docs" / "sentiment.md").read_text("utf-8")
    assert table in doc
    figures = {(row.language, row.dataset): row.figures for row in rows}
    for language in ("ar", "el", "en", "es", "th"):
        majority = figures[(language, "all")]["majority"]
        shipped = figures[(language, "all")]["shipped"]
        assert shipped[1] > majority[1] + 0.2, language  # macro-F1 well above the baseline


def test_packed_weights_sum_without_carrying_between_labels() -> None:
    triples = [(-32768, 0, 32767), (509, -415, -94), (-1, -1, 2), (32767, -32768, 0)]
    total = sum(pack(*triple) for triple in triples)
    assert unpack(total, len(triples)) == tuple(map(sum, zip(*triples, strict=True)))
    # The longest text has at most 4 * MAX_CHARS features, all of them extreme.
    hits = 4 * MAX_CHARS
    assert unpack(pack(-32768, 32767, -32768) * hits, hits) == (
        -32768 * hits,
        32767 * hits,
        -32768 * hits,
    )
    with pytest.raises(ValueError, match="out of range"):
        pack(0, 32768, 0)


def _model_lines(features_counted: int, rows: list[str]) -> list[str]:
    table = {"prior": [0, 0, 0], "temperature": 1.0, "features": 0}
    languages = {language: dict(table) for language in ("ar", "el", "en", "es", "th")}
    languages["en"]["features"] = features_counted
    return [json.dumps({"format": FORMAT, "languages": languages}), *rows]


def test_model_file_is_read_line_by_line_and_checked() -> None:
    model = read_model(_model_lines(2, ['["bad",90,-10,-80]', '["good",-70,0,70]']))
    assert model.languages["en"].weights["bad"] == pack(90, -10, -80)
    with pytest.raises(ValueError, match="cut short"):
        read_model(_model_lines(3, ['["bad",90,-10,-80]', '["good",-70,0,70]']))
    with pytest.raises(ValueError, match="more lines"):
        read_model(_model_lines(1, ['["bad",90,-10,-80]', '["good",-70,0,70]']))
    with pytest.raises(ValueError, match="repeats"):
        read_model(_model_lines(2, ['["bad",90,-10,-80]', '["bad",90,-10,-80]']))
    with pytest.raises(ValueError, match="format"):
        read_model(['{"format": 1, "languages": {}}'])


def test_training_split_is_deterministic_and_by_text() -> None:
    from casewire_dev.sentiment import split_of

    assert split_of(fold("Hello @united https://t.co/x")) == split_of(fold("hello @delta"))
    assert {split_of(str(n)) for n in range(200)} == {"train", "dev", "test"}
    assert json.dumps(split_of("x")) == json.dumps(split_of("x"))
