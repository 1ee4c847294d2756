"""The urgency vocabularies as data (urgency_vocabulary.yaml) and the rules file's
`vocabulary:` section, which adds words to them by signal and language."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from casewire_router.domain import urgency
from casewire_router.domain.keywords import fold
from casewire_router.domain.routing import case_router_for
from casewire_router.domain.rules import parse_rules
from casewire_router.domain.urgency import assess
from casewire_router.entrypoints.cli import main

from tests.unit.router.factories import message

HEAD = "version: 1\ndefault_team: care\nteams: [care]\nrules: []\n"
SHIPPED = Path(urgency.__file__).with_name(urgency.VOCABULARY_FILE)


def signals(rules_text: str, text: str) -> dict[str, str]:
    model = case_router_for(parse_rules(rules_text)).urgency
    assessment = assess(model, message(text, channel="dm"))
    return {signal.name: signal.detail or "" for signal in assessment.urgency.signals}


def test_shipped_vocabularies_are_read_from_the_packaged_file_by_language() -> None:
    document = yaml.safe_load(SHIPPED.read_text("utf-8"))
    assert set(document) == {"crisis", "negative", "hostile", "event", "failure", "time"}
    for entry in [
        *document["crisis"].values(),
        *(document[s] for s in urgency.SIGNAL_VOCABULARIES),
    ]:
        assert list(entry) == ["en", "ar", "el", "th", "es"]
    assert (
        tuple(word for words in document["failure"].values() for word in words)
        == urgency.FAILURE_WORDS
    )
    assert urgency.CRISIS_VOCABULARY["outage"][:2] == ("outage", "is down")
    assert "ระบบล่ม" in urgency.CRISIS_VOCABULARY["outage"]


def test_rules_file_vocabulary_adds_words_to_a_signal_in_any_language() -> None:
    rules = HEAD + "vocabulary:\n  failure: {de: [kaputt]}\n  time: {de: [seit gestern]}\n"
    assert "failure" not in signals(HEAD, "mein Router ist kaputt seit gestern")
    found = signals(rules, "mein Router ist kaputt seit gestern")
    assert found["failure"] == "kaputt"


def test_rules_file_vocabulary_adds_crisis_words_to_a_topic_or_a_new_one() -> None:
    rules = (
        HEAD
        + "vocabulary:\n  crisis:\n    outage: {de: [server ausgefallen]}\n"
        + "    recall: {en: [product recall]}\n"
    )
    model = case_router_for(parse_rules(rules)).urgency
    outage = assess(model, message("der Server ausgefallen, schon wieder", channel="dm"))
    assert outage.crisis_topics == {"outage"}
    recall = assess(model, message("is there a product recall?", channel="dm"))
    assert recall.crisis_topics == {"recall"}


def test_vocabulary_and_urgency_sections_add_up() -> None:
    rules = HEAD + "urgency: {negative: [meh]}\nvocabulary:\n  negative: {en: [blah]}\n"
    model = case_router_for(parse_rules(rules)).urgency
    for text in ("meh", "blah"):
        assert "negative_tone" in {
            s.name for s in assess(model, message(text, channel="dm")).urgency.signals
        }


def test_check_rules_lists_problems_of_the_vocabulary_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        HEAD + "vocabulary:\n  failure: {DE: [kaputt]}\n  anger: {en: [grr]}\n"
        "  time: {de: ['ـــ']}\n",
        "utf-8",
    )
    assert main(["check-rules", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "vocabulary.failure.DE" in err
    assert "vocabulary.anger" in err
    assert "folds to nothing" in err
    assert err.strip().endswith("3 problem(s)")


def test_without_a_vocabulary_section_the_shipped_model_is_unchanged() -> None:
    text = "my order is STILL not delivered since yesterday, this is a joke!!!"
    plain = case_router_for(parse_rules(HEAD)).urgency
    shipped = urgency.default_model()
    msg = message(text, channel="dm")
    assert assess(plain, msg, fold(text)) == assess(shipped, msg, fold(text))
