import pytest
from casewire_common.events import Priority
from casewire_common.messages import Author, CanonicalMessage
from casewire_router.domain.rules import RulesError, RuleSet, RulesFile, parse_rules
from pydantic import ValidationError

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


def rules_with(body: str, teams: str = "[care, shipping, billing, incidents]") -> RuleSet:
    return parse_rules(f"version: 1\ndefault_team: care\nteams: {teams}\nrules:\n{body}")


def matched(rules: RuleSet, msg: CanonicalMessage) -> list[str]:
    return rules.evaluate(msg).matched_rules


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("réclamation", "UNE RECLAMATION urgente"),  # accents and case, both ways
        ("reclamacion", "Quiero hacer una Reclamación"),
        ("ταχυδρομείος", "ΤΑΧΥΔΡΟΜΕΊΟΣ ακόμα τίποτα"),  # tonos and capital sigma
        ("λογαριασμός", "ο λογαριασμοσ μου"),  # final sigma ς written as σ
        ("λογαριασμοσ", "κλειδώθηκε ο λογαριασμός"),  # and the other way round
        ("تأخير", "لدي تأخيـــرٌ في الطلب"),  # tatweel and harakat in the text
        ("شُكْرًا", "شكرا جزيلا"),  # harakat in the keyword
        ("refund", "ｒｅｆｕｎｄ please"),  # full-width Latin letters
        ("ＶＩＰ", "vip customer"),
        ("ส่งของ", "ยังไม่ได้รับส่งของเลยค่ะ"),  # Thai: inside unspaced text
        ("sue", "I will sue you"),
    ],
)
def test_keywords_match_across_scripts(keyword: str, text: str) -> None:
    rules = rules_with(
        f'  - id: k\n    when: {{any: ["{keyword}"]}}\n    then: {{team: billing}}\n'
    )
    assert rules.evaluate(message(text)).team == "billing"


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("sue", "I have an issue with my order"),  # whole words in spaced scripts
        ("sue", "the suede is torn"),
        ("ship", "shipping is late"),
        ("λογαριασμός", "λογαριασμούς"),
        ("الطلب", "الطلبات"),
        ("refund", "refunded"),
    ],
)
def test_keywords_in_spaced_scripts_do_not_match_inside_words(keyword: str, text: str) -> None:
    rules = rules_with(
        f'  - id: k\n    when: {{any: ["{keyword}"]}}\n    then: {{team: billing}}\n'
    )
    assert matched(rules, message(text)) == []


def test_any_all_and_none_conditions() -> None:
    rules = rules_with(
        "  - id: k\n"
        "    when: {any: [refund, money back], all: [order, late], none: [thanks, كلا]}\n"
        "    then: {tags: [k]}\n"
    )
    assert matched(rules, message("my order is late, refund it")) == ["k"]
    assert matched(rules, message("my ORDER is LATE, I want my money back")) == ["k"]
    assert matched(rules, message("my order is late")) == []  # no `any` keyword
    assert matched(rules, message("refund my order")) == []  # `all` incomplete
    assert matched(rules, message("order late, refund, thanks")) == []  # a `none` keyword
    assert matched(rules, message("order late, refund. كلا")) == []


def test_regex_searches_the_nfkc_text_case_sensitively_unless_asked() -> None:
    rules = rules_with(
        '  - id: exact\n    when: {regex: "ORDER-\\\\d+"}\n    then: {tags: [exact]}\n'
        '  - id: folded\n    when: {regex: "(?i)order-\\\\d+"}\n    then: {tags: [folded]}\n'
    )
    assert matched(rules, message("ＯＲＤＥＲ-１２３")) == ["exact", "folded"]  # NFKC: ASCII
    assert matched(rules, message("order-123")) == ["folded"]
    assert matched(rules, message("order 123")) == []


def test_platform_channel_visibility_and_language_conditions() -> None:
    rules = rules_with(
        "  - id: platform\n    when: {platforms: [whatsapp]}\n    then: {tags: [a]}\n"
        "  - id: channel\n    when: {channels: [dm, reply]}\n    then: {tags: [b]}\n"
        "  - id: public\n    when: {visibility: public}\n    then: {tags: [c]}\n"
        "  - id: private\n    when: {visibility: [private]}\n    then: {tags: [d]}\n"
        "  - id: language\n    when: {languages: [el, ar]}\n    then: {tags: [e]}\n"
    )
    assert matched(rules, message("x", platform="whatsapp", channel="dm")) == [
        "platform",
        "channel",
        "private",
    ]
    assert matched(rules, message("x", channel="mention", language="el")) == [
        "public",
        "language",
    ]
    assert matched(rules, message("x", channel="reply", language="en")) == ["channel", "public"]


def test_author_conditions_followers_verified_and_named_authors() -> None:
    rules = rules_with(
        "  - id: reach\n    when: {min_followers: 1000}\n    then: {tags: [reach]}\n"
        "  - id: verified\n    when: {verified: true}\n    then: {tags: [verified]}\n"
        "  - id: unverified\n    when: {verified: false}\n    then: {tags: [unverified]}\n"
        '  - id: vip\n    when: {authors: ["@BigCustomer", "u-42"]}\n    then: {tags: [vip]}\n'
    )
    assert matched(rules, message("x", followers=1000, verified=True)) == ["reach", "verified"]
    assert matched(rules, message("x", followers=999)) == ["unverified"]  # unknown: not verified
    assert matched(rules, message("x", author="u-42")) == ["unverified", "vip"]
    with_handle = message("x").model_copy(
        update={"author": Author(id="123", handle="@bigcustomer")}
    )
    assert matched(rules, with_handle) == ["unverified", "vip"]


def test_actions_and_precedence_in_file_order() -> None:
    rules = rules_with(
        "  - id: tagger\n    when: {any: [late]}\n    then: {tags: [late], priority: P4}\n"
        "  - id: first-team\n    when: {any: [order]}\n"
        "    then: {team: shipping, priority: P3, tags: [order, late],"
        " reply_template: shipping-policy, assign_to: amal}\n"
        "  - id: second-team\n    when: {any: [refund]}\n"
        "    then: {team: billing, priority: P2, tags: [billing],"
        " reply_template: billing-policy, assign_to: nikos}\n"
        "  - id: quiet\n    when: {any: [late]}\n    then: {priority: P4}\n"
    )
    outcome = rules.evaluate(message("late order, refund please"))
    assert outcome.matched_rules == ["tagger", "first-team", "second-team", "quiet"]
    assert outcome.team == "shipping"  # the first rule naming a team
    assert outcome.priority == "P2"  # the most urgent, wherever it comes
    assert outcome.tags == ["late", "order", "billing"]  # accumulated, each once
    assert outcome.reply_template == "shipping-policy"
    assert outcome.assign_to == "amal"
    assert outcome.skip is False
    nothing = rules.evaluate(message("hello"))
    assert (nothing.team, nothing.priority, nothing.tags, nothing.matched_rules) == (
        "care",
        None,
        [],
        [],
    )


def test_stop_ends_evaluation_but_keeps_what_came_before() -> None:
    rules = rules_with(
        "  - id: before\n    when: {any: [hello]}\n    then: {tags: [before], priority: P3}\n"
        "  - id: stopper\n    when: {any: [thanks]}\n    then: {skip: true}\n    stop: true\n"
        "  - id: after\n    when: {any: [hello]}\n    then: {team: billing, priority: P1}\n"
    )
    stopped = rules.evaluate(message("hello and thanks"))
    assert stopped.matched_rules == ["before", "stopper"]
    assert (stopped.team, stopped.priority, stopped.skip) == ("care", "P3", True)
    # A stop rule that does not match stops nothing.
    assert rules.evaluate(message("hello")).matched_rules == ["before", "after"]


def test_reach_is_every_team_a_text_may_decide_up_to_a_rule_that_needs_no_text() -> None:
    rules = rules_with(
        "  - id: parcel\n    when: {any: [parcel]}\n    then: {team: shipping}\n"
        "  - id: refund\n    when: {any: [refund], platforms: [facebook]}\n"
        "    then: {team: billing, assign_to: bea}\n"
        "  - id: greek\n    when: {languages: [el]}\n"
        "    then: {team: incidents, assign_to: nikos}\n"
        "  - id: vip\n    when: {authors: [u-42]}\n    then: {tags: [vip]}\n    stop: true\n"
        "  - id: late\n    when: {any: [late]}\n    then: {team: billing, assign_to: amal}\n"
    )
    # On X the refund rule never matches; any text may leave the team to the default.
    assert rules.reach(message("hi")) == ({"shipping", "billing", "care"}, {"amal"})
    assert rules.reach(message("hi", platform="facebook")) == (
        {"shipping", "billing", "care"},
        {"bea", "amal"},
    )
    # Greek decides team and agent unless the parcel rule came first: nothing after counts.
    assert rules.reach(message("hi", language="el")) == ({"shipping", "incidents"}, {"nikos"})
    # The VIP rule stops evaluation whatever the text: the late rule is never reached.
    assert rules.reach(message("hi", author="u-42")) == ({"shipping", "care"}, set())
    for text in ("parcel late", "late refund", "refund", "hello"):
        for sender in (message(text), message(text, platform="facebook", language="el")):
            outcome = rules.evaluate(sender)
            teams, agents = rules.reach(sender)
            assert outcome.team in teams
            assert outcome.assign_to is None or outcome.assign_to in agents


def test_rules_without_keywords_are_evaluated_in_file_order_among_keyword_rules() -> None:
    rules = rules_with(
        "  - id: k1\n    when: {any: [refund]}\n    then: {team: billing}\n"
        "  - id: everyone\n    then: {tags: [seen]}\n"
        "  - id: k2\n    when: {all: [refund, now]}\n    then: {team: shipping}\n"
        "  - id: dm\n    when: {channels: [dm]}\n    then: {team: incidents}\n"
    )
    assert matched(rules, message("refund now", channel="dm")) == ["k1", "everyone", "k2", "dm"]
    assert matched(rules, message("now then", channel="dm")) == ["everyone", "dm"]


EXTRAS = """
version: 2
default_team: care
teams: [care, incidents]
rules: []
urgency:
  crisis:
    outage: ["servers on fire"]
    safety: ["smoke"]
  negative: ["meh"]
escalation:
  - id: p1-breach
    when: {clocks: [first_response], priorities: [P1, P2], teams: [care]}
    then: {priority: P1, team: incidents, assign_to: lead-amal, tags: [escalated]}
  - id: any-warning
    when: {alerts: [warning]}
    then: {tags: [warned]}
  - id: any-breach
    then: {priority: P2}
"""


def test_urgency_vocabulary_extensions_are_exposed() -> None:
    rules = parse_rules(EXTRAS)
    assert rules.extra_crisis_words == {"outage": ["servers on fire"], "safety": ["smoke"]}
    assert rules.extra_negative_words == ["meh"]
    shipped = rules_with("  - id: a\n    then: {}\n")
    assert (shipped.extra_crisis_words, shipped.extra_negative_words) == ({}, [])


def test_escalation_for_is_the_first_match_and_alerts_default_to_breached() -> None:
    rules = parse_rules(EXTRAS)

    def chosen(alert: str, clock: str, team: str, priority: Priority) -> str | None:
        found = rules.escalation_for(alert, clock, team, priority)
        return None if found is None else found.id

    assert chosen("breached", "first_response", "care", "P2") == "p1-breach"
    p1 = rules.escalation_for("breached", "first_response", "care", "P1")
    assert p1 is not None
    assert (p1.then.priority, p1.then.team, p1.then.assign_to, p1.then.tags) == (
        "P1",
        "incidents",
        "lead-amal",
        ["escalated"],
    )
    assert chosen("breached", "resolution", "care", "P1") == "any-breach"  # other clock
    assert chosen("breached", "first_response", "care", "P3") == "any-breach"  # priority
    assert chosen("breached", "first_response", "incidents", "P1") == "any-breach"  # team
    assert chosen("warning", "first_response", "care", "P1") == "any-warning"
    assert (
        rules_with("  - id: a\n    then: {}\n").escalation_for(
            "breached", "resolution", "care", "P1"
        )
        is None
    )


def test_a_rules_spec_is_consistent_however_it_is_built() -> None:
    unknown_team = r"rules\.0\.then\.team: team 'nowhere' is not in teams"
    with pytest.raises(ValidationError, match=unknown_team):
        RulesFile.model_validate(
            {
                "version": 1,
                "default_team": "care",
                "teams": ["care"],
                "rules": [{"id": "a", "then": {"team": "nowhere"}}],
            }
        )
