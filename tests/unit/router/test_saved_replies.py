"""Saved replies: rendering in Arabic, Greek, Thai and English (missing values, bidi isolation,
no injection), the file and its problems with their lines, the rules they must fit, the API's
versions over the file's, and the suggestions offered on a case."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from casewire_common.events import ActorRef, RoutingDecision, Urgency
from casewire_router.domain.case import CaseState
from casewire_router.domain.rules import parse_rules
from casewire_router.domain.saved_replies import (
    FSI,
    PDI,
    SavedRepliesError,
    SavedRepliesFile,
    SavedReply,
    SavedReplyContent,
    StoredReply,
    TeamReplies,
    TemplateError,
    catalogue,
    parse_saved_replies,
    placeholder_values,
    render,
    rules_fit_replies,
    suggestions,
    unknown_team_warnings,
)
from pydantic import ValidationError

from tests.unit.router.case_factories import case as make_case

VALUES = {
    "customer_name": "Maria",
    "customer_handle": "@maria",
    "case_id": "5e0c-42",
    "agent_name": "amal",
    "team": "shipping",
    "platform": "X",
}


def isolated(value: str) -> str:
    return f"{FSI}{value}{PDI}"


# Rendering.


def test_english_is_filled_in_as_written() -> None:
    rendered = render("Hi {customer_name} ({customer_handle}), case {case_id}.", VALUES, "en")
    assert rendered.text == "Hi Maria (@maria), case 5e0c-42."
    assert rendered.missing == ()


def test_greek_is_filled_in_as_written() -> None:
    values = {**VALUES, "customer_name": "Νίκος"}
    rendered = render("Γεια σας {customer_name}, ο κωδικός σας είναι {case_id}.", values, "el")
    assert rendered.text == "Γεια σας Νίκος, ο κωδικός σας είναι 5e0c-42."


def test_thai_values_join_unspaced_text_without_anything_added() -> None:
    # Thai writes no spaces between words: the name follows คุณ directly, and the tone marks
    # and vowels around it stay where they are.
    template = "สวัสดีค่ะคุณ{customer_name}ขอบคุณที่ติดต่อเรานะคะ"
    rendered = render(template, {"customer_name": "สมชาย"}, "th")
    assert rendered.text == "สวัสดีค่ะคุณสมชายขอบคุณที่ติดต่อเรานะคะ"
    latin = render(template, {"customer_name": "Somchai"}, "th")
    assert latin.text == "สวัสดีค่ะคุณSomchaiขอบคุณที่ติดต่อเรานะคะ"


def test_arabic_isolates_every_value_so_latin_text_and_numbers_keep_their_place() -> None:
    rendered = render("مرحباً {customer_name}، رقمك المرجعي هو {case_id}.", VALUES, "ar")
    assert rendered.text == f"مرحباً {isolated('Maria')}، رقمك المرجعي هو {isolated('5e0c-42')}."
    arabic_name = render("مرحباً {customer_name}،", {"customer_name": "محمد"}, "ar")
    assert arabic_name.text == f"مرحباً {isolated('محمد')}،"


def test_an_arabic_name_in_an_english_text_is_isolated_and_a_latin_one_is_not() -> None:
    template = "Thanks {customer_name}, your case is {case_id}."
    assert render(template, {**VALUES, "customer_name": "محمد"}, "en").text == (
        f"Thanks {isolated('محمد')}, your case is 5e0c-42."
    )
    assert render(template, VALUES, "en").text == "Thanks Maria, your case is 5e0c-42."


def test_a_value_carrying_bidi_controls_is_contained() -> None:
    # A right-to-left override in a display name would flip the rest of the reply: inside an
    # isolate it ends with the value.
    spoof = "bob\u202etxt.exe"
    assert render("Hi {customer_name}!", {"customer_name": spoof}, "en").text == (
        f"Hi {isolated(spoof)}!"
    )


@pytest.mark.parametrize(
    ("language", "template", "expected"),
    [
        ("en", "Hi {customer_name}, I'm {agent_name}.", "Hi {customer_name}, I'm amal."),
        ("el", "Γεια σας {customer_name}!", "Γεια σας {customer_name}!"),
        ("th", "สวัสดีค่ะคุณ{customer_name}", "สวัสดีค่ะคุณ{customer_name}"),
        ("ar", "مرحباً {customer_name}", f"مرحباً {isolated('{customer_name}')}"),
    ],
)
def test_a_missing_value_leaves_its_placeholder_visible_and_listed(
    language: str, template: str, expected: str
) -> None:
    rendered = render(template, {**VALUES, "customer_name": None}, language)
    assert rendered.text == expected
    assert rendered.missing == ("customer_name",)


def test_an_empty_value_is_missing_and_each_missing_name_is_listed_once() -> None:
    rendered = render(
        "{customer_name} {customer_handle} {customer_name}", {"customer_name": ""}, "en"
    )
    assert rendered.text == "{customer_name} {customer_handle} {customer_name}"
    assert rendered.missing == ("customer_name", "customer_handle")


def test_braces_are_written_doubled_and_values_are_never_parsed_again() -> None:
    rendered = render(
        "{{case_id}} is literal; {customer_name}", {"customer_name": "{case_id}"}, "en"
    )
    assert rendered.text == "{case_id} is literal; {case_id}"
    assert rendered.missing == ()


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{customer_name.__class__}", "unknown placeholder {customer_name.__class__}"),
        ("{customer_name.__class__.__mro__}", "unknown placeholder"),
        ("{customer_name[0]}", "unknown placeholder {customer_name[0]}"),
        ("{0}", "unknown placeholder {0}"),
        ("{}", "unknown placeholder {}"),
        ("{password}", "unknown placeholder {password}"),
        ("{customer_name!r}", "takes no conversion or format"),
        ("{customer_name:>40}", "takes no conversion or format"),
        ("{customer_name:{case_id}}", "takes no conversion or format"),
        ("Hi { there", "write {{ or }} for a brace"),
        ("Hi } there", "write {{ or }} for a brace"),
    ],
)
def test_anything_but_a_known_placeholder_is_refused_and_never_evaluated(
    template: str, problem: str
) -> None:
    with pytest.raises(TemplateError, match=re.escape(problem)):
        render(template, VALUES, "en")
    with pytest.raises(ValidationError, match=re.escape("text.en")):
        SavedReplyContent(title="t", text={"en": template})


def test_placeholder_values_come_from_the_case_and_name_the_platform() -> None:
    case = make_case("c9", team="billing")
    values = placeholder_values(
        case, customer_name="Eleni", customer_handle=None, agent_name="amal"
    )
    assert values == {
        "customer_name": "Eleni",
        "customer_handle": None,
        "case_id": "c9",
        "agent_name": "amal",
        "team": "billing",
        "platform": "X",
    }
    case.platform = "other"  # a web chat has no name to show the customer
    assert (
        placeholder_values(case, customer_name=None, customer_handle=None, agent_name=None)[
            "platform"
        ]
        is None
    )


# The file.

FILE = """\
version: 1
default_language: en
teams:
  shipping: {default_language: ar}
replies:
  - id: shipping-policy
    title: Shipping
    teams: [shipping]
    tags: [shipping]
    text:
      en: "Hi {customer_name}, orders ship in 2 days."
      ar: "مرحباً {customer_name}، تُشحن الطلبات خلال يومين."
  - id: anything-else
    title: Anything else?
    text: {en: "Anything else, {customer_name}?", th: "มีอะไรให้ช่วยอีกไหมคะคุณ{customer_name}"}
"""


def test_a_valid_file_parses_with_its_team_languages() -> None:
    replies = parse_saved_replies(FILE, "s.yaml")
    assert [reply.id for reply in replies.replies] == ["shipping-policy", "anything-else"]
    assert replies.teams["shipping"].default_language == "ar"
    assert replies.replies[1].teams == []  # for every team


def test_problems_name_the_line_the_reply_and_the_field() -> None:
    text = (
        "replies:\n"
        "  - id: a\n"
        "    title: A\n"
        "    text: {en: 'Hi {customer_name.__class__}'}\n"
        "  - id: b\n"
        "    title: B\n"
        "    text: {EN: 'Hi'}\n"
        "  - {id: a, title: again, text: {en: hello}}\n"
    )
    with pytest.raises(SavedRepliesError) as caught:
        parse_saved_replies(text, "s.yaml")
    assert caught.value.problems == [
        "s.yaml:4: saved reply 'a': text.en: unknown placeholder {customer_name.__class__}: use"
        " {customer_name}, {customer_handle}, {case_id}, {agent_name}, {team}, {platform}"
        " (or {{ and }} for braces)",
        "s.yaml:7: saved reply 'b': text.EN.[key]: language 'EN' is not a lower-case ISO 639-1"
        " code such as 'en': write 'en'",
        "s.yaml:8: saved reply 'a': id: duplicate saved reply id 'a'",
    ]


RULES = """\
version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {any: [parcel]}
    then: {team: shipping, reply_template: shipping-policy}
  - id: refunds
    when: {any: [refund]}
    then: {reply_template: refund-policy}
"""


def test_a_rule_naming_no_saved_reply_is_a_problem_at_its_line() -> None:
    rules = parse_rules(RULES, "r.yaml")
    replies = parse_saved_replies(FILE, "s.yaml")
    problems = rules_fit_replies(
        rules.spec, replies, rules_source="r.yaml", replies_source="s.yaml", rules_text=RULES
    )
    assert problems == [
        "r.yaml:10: rule 'refunds': then.reply_template: no saved reply 'refund-policy' in s.yaml"
    ]
    # Without the rules' text (the saved-replies file reloaded), the rule still says where.
    assert rules_fit_replies(
        rules.spec, replies, rules_source="r.yaml", replies_source="s.yaml"
    ) == ["r.yaml: rule 'refunds': then.reply_template: no saved reply 'refund-policy' in s.yaml"]


def test_teams_the_rules_do_not_declare_are_warnings() -> None:
    replies = parse_saved_replies(FILE.replace("[shipping]", "[shiping]"), "s.yaml")
    assert unknown_team_warnings(replies, ["care", "shipping"]) == [
        (("replies", 0, "teams", 0), "team 'shiping' is not in the rules file's teams")
    ]


# The API's versions over the file's.


def stored(reply: SavedReply) -> StoredReply:
    return StoredReply(reply, ActorRef(id="lee", role="lead"), datetime(2026, 11, 1, tzinfo=UTC))


def test_an_api_version_is_in_force_over_the_files_and_api_only_replies_join() -> None:
    file = parse_saved_replies(FILE)
    override = SavedReply(id="shipping-policy", title="New", text={"en": "New text"})
    extra = SavedReply(id="apology", title="Sorry", text={"en": "Sorry!"}, teams=["care"])
    found = catalogue(file, [stored(override), stored(extra)])
    assert list(found.entries) == ["anything-else", "apology", "shipping-policy"]
    policy = found.entries["shipping-policy"]
    assert (policy.reply.title, policy.source, policy.overrides_file) == ("New", "api", True)
    assert policy.updated_by == ActorRef(id="lee", role="lead")
    assert (found.entries["apology"].source, found.entries["apology"].overrides_file) == (
        "api",
        False,
    )
    assert found.entries["anything-else"].source == "file"
    assert found.team_language("shipping") == "ar"
    assert found.team_language("care") == "en"  # the file's default


# Suggestions.


def a_case(
    *,
    team: str = "shipping",
    tags: list[str] | None = None,
    language: str | None = "en",
    template: str | None = None,
) -> CaseState:
    case = make_case("c1", team=team, language=language)
    case.tags = tags or []
    case.decision = RoutingDecision(
        rules_version="1",
        matched_rules=[],
        urgency=Urgency(score=0, signals=[]),
        team=team,
        priority="P3",
        tags=case.tags,
        skip=False,
        reply_template=template,
    )
    return case


def reply(reply_id: str, teams: list[str], tags: list[str], **text: str) -> SavedReply:
    return SavedReply(
        id=reply_id,
        title=reply_id,
        text=text or {"en": f"{reply_id} {{customer_name}}"},
        teams=teams,
        tags=tags,
    )


CATALOGUE = catalogue(
    SavedRepliesFile(
        replies=[
            reply("general", [], []),
            reply("care-only", ["care"], []),
            reply("late-parcel", ["shipping"], ["shipping", "late"]),
            reply("parcel", ["shipping"], ["shipping"]),
            reply("refund-policy", ["billing"], ["billing"]),
            reply("shipping-general", ["shipping"], []),
            reply("unrelated-tag", ["shipping"], ["vip"]),
        ]
    ),
    [],
)


def test_the_rules_reply_comes_first_then_shared_tags_then_the_teams_general_ones() -> None:
    case = a_case(tags=["shipping", "late"], template="refund-policy")
    offered = suggestions(CATALOGUE, case, {"customer_name": "Maria"})
    assert [(s.reply_id, s.reason) for s in offered] == [
        ("refund-policy", "rule"),  # named by the rule, even of another team
        ("late-parcel", "tags"),  # two tags shared
        ("parcel", "tags"),  # one
        ("general", "team"),  # for every team
        ("shipping-general", "team"),
    ]
    assert offered[1].text == "late-parcel Maria"
    assert offered[1].missing == ()


def test_suggestions_are_capped_and_each_reply_is_offered_once() -> None:
    case = a_case(tags=["shipping"], template="parcel")
    offered = suggestions(CATALOGUE, case, {}, limit=2)
    assert [s.reply_id for s in offered] == ["parcel", "late-parcel"]
    assert offered[0].missing == ("customer_name",)


def test_a_rule_naming_a_reply_that_no_longer_exists_offers_the_rest() -> None:
    offered = suggestions(CATALOGUE, a_case(template="gone"), {})
    assert [s.reply_id for s in offered] == ["general", "shipping-general"]


def test_the_case_language_first_then_the_teams_default_then_the_files() -> None:
    replies = catalogue(
        SavedRepliesFile(
            default_language="en",
            teams={"shipping": TeamReplies(default_language="ar")},
            replies=[
                reply("both", [], [], el="Γεια {customer_name}", ar="مرحباً {customer_name}"),
                reply("arabic", [], [], ar="شكراً {customer_name}"),
                reply("english", [], [], en="Thanks {customer_name}"),
                reply("thai", [], [], th="ขอบคุณค่ะคุณ{customer_name}"),
            ],
        ),
        [],
    )
    greek = suggestions(replies, a_case(language="el"), {"customer_name": "Νίκος"})
    assert [(s.reply_id, s.language, s.in_case_language, s.text) for s in greek] == [
        ("arabic", "ar", False, f"شكراً {isolated('Νίκος')}"),  # the team's language stands in
        ("both", "el", True, "Γεια Νίκος"),
        ("english", "en", False, "Thanks Νίκος"),  # the file's default
    ]  # "thai" has none of el, ar, en: not offered
    thai = suggestions(replies, a_case(language="th"), {"customer_name": "สมชาย"})
    assert [(s.reply_id, s.in_case_language) for s in thai] == [
        ("arabic", False),
        ("both", False),
        ("english", False),
        ("thai", True),
    ]
    unknown = suggestions(replies, a_case(language=None), {})
    assert [s.language for s in unknown] == ["ar", "ar", "en"]
