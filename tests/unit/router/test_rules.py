import pytest
from casewire_router.domain.rules import RulesError, parse_rules

from tests.unit.router.factories import message

RULES = """
version: 3
default_team: care
teams: [care, shipping, billing, incidents]
rules:
  - id: shipping
    when:
      any: ["order status", "shipping", "حالة الطلب", "αποστολή", "การจัดส่ง"]
      none: ["unsubscribe"]
      channels: [dm, mention]
    then: {team: shipping, priority: P3, tags: [shipping], reply_template: shipping-policy}
  - id: billing
    when: {any: ["refund", "charged"]}
    then: {team: billing, priority: P2, tags: [billing]}
  - id: vip
    when: {min_followers: 100000}
    then: {priority: P1, tags: [vip]}
  - id: praise
    when: {any: ["thank you", "شكرا", "ευχαριστώ", "ขอบคุณ"]}
    then: {skip: true, tags: [praise]}
    stop: true
  - id: after-stop
    when: {any: ["thank you"]}
    then: {tags: [never]}
  - id: regex
    when: {regex: "(?i)order\\\\s*#?\\\\d{6}"}
    then: {tags: [order-number]}
"""


def test_first_team_wins_tags_accumulate_and_most_urgent_priority_wins() -> None:
    rules = parse_rules(RULES)
    outcome = rules.evaluate(message("shipping was fine but I was charged twice", followers=5))
    assert outcome.matched_rules == ["shipping", "billing"]
    assert outcome.team == "shipping"
    assert outcome.priority == "P2"
    assert outcome.tags == ["shipping", "billing"]
    assert outcome.reply_template == "shipping-policy"


def test_stop_ends_evaluation_and_skip_is_reported() -> None:
    outcome = parse_rules(RULES).evaluate(message("Thank you so much!"))
    assert outcome.matched_rules == ["praise"]
    assert outcome.skip is True
    assert "never" not in outcome.tags


def test_none_condition_and_channel_condition_exclude() -> None:
    rules = parse_rules(RULES)
    assert rules.evaluate(message("shipping? unsubscribe me")).matched_rules == []
    assert rules.evaluate(message("shipping?", channel="comment")).matched_rules == []


def test_multilingual_keywords_route_to_the_same_team() -> None:
    rules = parse_rules(RULES)
    for text in ("ما هي حالة الطلب؟", "Πού είναι η ΑΠΟΣΤΟΛΗ μου;", "สอบถามการจัดส่งค่ะ"):
        assert rules.evaluate(message(text)).team == "shipping", text


def test_regex_searches_nfkc_text_and_min_followers_applies() -> None:
    rules = parse_rules(RULES)
    outcome = rules.evaluate(message("ORDER #123456 never came", followers=250_000))
    assert outcome.matched_rules == ["vip", "regex"]
    assert outcome.priority == "P1"
    assert outcome.team == "care"


def test_version_names_the_file_content() -> None:
    assert parse_rules(RULES).version.startswith("3:")
    assert parse_rules(RULES).version != parse_rules(RULES + "\n# edited\n").version


def test_invalid_rules_file_names_the_rule_and_field() -> None:
    bad = """
version: 1
default_team: care
teams: [care]
rules:
  - id: broken
    when: {any: "not-a-list", regex: "("}
    then: {team: nowhere, priority: P9}
"""
    with pytest.raises(RulesError) as raised:
        parse_rules(bad, "rules.yaml")
    text = "\n".join(raised.value.problems)
    assert "rule 'broken'" in text
    assert "when.any" in text
    assert "then.priority" in text
    assert "invalid regular expression" in text


def test_unknown_team_and_yaml_syntax_errors_are_reported_with_location() -> None:
    with pytest.raises(RulesError, match="team 'nowhere' is not in teams"):
        parse_rules(
            "version: 1\ndefault_team: care\nteams: [care]\n"
            "rules:\n  - id: a\n    then: {team: nowhere}\n"
        )
    with pytest.raises(RulesError, match=r"rules.yaml:3: not valid YAML"):
        parse_rules("version: 1\nteams: [care\n", "rules.yaml")
