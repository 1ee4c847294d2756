"""The keyword index must not change what the rules decide: compared, on random rule sets
and messages, with a straightforward evaluation of every rule in turn."""

from __future__ import annotations

import re
import unicodedata

from casewire_common.messages import CanonicalMessage
from casewire_router.domain.keywords import KeywordMatcher
from casewire_router.domain.rules import RuleOutcome, RuleSet, RulesFile, most_urgent
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.router.factories import message

WORDS = [
    "refund", "order", "late", "money back", "order status", "sue", "issue", "ship",
    "shipping", "αποστολή", "λογαριασμός", "λογαριασμοσ", "تأخير", "حالة الطلب", "الطلب",
    "ส่งของ", "การจัดส่ง", "ส่ง", "réclamation", "ｒｅｆｕｎｄ",
]  # fmt: skip
FILLERS = ["please", "ΤΙ ΓΙΝΕΤΑΙ", "ค่ะ", "!!", "ـــ", "123", "#A-7"]
TEAMS = ["care", "shipping", "billing"]
REGEXES = [r"\d{3}", r"(?i)REFUND", r"ORDER"]

keywords = st.lists(st.sampled_from(WORDS), max_size=3, unique=True)
conditions = st.fixed_dictionaries(
    {},
    optional={
        "any": keywords,
        "all": keywords,
        "none": keywords,
        "regex": st.sampled_from(REGEXES),
        "channels": st.lists(st.sampled_from(["dm", "mention", "reply"]), min_size=1),
        "min_followers": st.integers(0, 2000),
        "verified": st.booleans(),
    },
)
actions = st.fixed_dictionaries(
    {},
    optional={
        "team": st.sampled_from(TEAMS),
        "priority": st.sampled_from(["P1", "P2", "P3", "P4"]),
        "tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
        "reply_template": st.sampled_from(["t1", "t2"]),
        "assign_to": st.sampled_from(["amal", "nikos"]),
        "skip": st.booleans(),
    },
)
rule_sets = st.lists(
    st.fixed_dictionaries({"when": conditions, "then": actions, "stop": st.booleans()}),
    max_size=12,
)
texts = st.lists(st.sampled_from(WORDS + FILLERS), max_size=6).flatmap(
    lambda parts: st.sampled_from([" ", ""]).map(lambda separator: separator.join(parts))
)
messages = st.builds(
    lambda text, channel, followers, verified: message(
        text, channel=channel, followers=followers, verified=verified
    ),
    texts,
    st.sampled_from(["dm", "mention", "reply"]),
    st.none() | st.integers(0, 3000),
    st.none() | st.booleans(),
)


def reference(spec: RulesFile, msg: CanonicalMessage) -> RuleOutcome:
    """Every rule in file order, each keyword looked for on its own."""

    def has(keyword: str) -> bool:
        return bool(KeywordMatcher([keyword]).find(msg.text))

    outcome = RuleOutcome("", None, [], [], False, None, None)
    team = None
    for rule in spec.rules:
        when = rule.when
        holds = (
            (not when.any or any(has(k) for k in when.any))
            and all(has(k) for k in when.all)
            and not any(has(k) for k in when.none)
            and (
                when.regex is None
                or re.search(when.regex, unicodedata.normalize("NFKC", msg.text)) is not None
            )
            and (when.channels is None or msg.channel in when.channels)
            and (when.min_followers is None or (msg.author.followers or 0) >= when.min_followers)
            and (when.verified is None or bool(msg.author.verified) == when.verified)
        )
        if not holds:
            continue
        outcome.matched_rules.append(rule.id)
        team = team or rule.then.team
        outcome = RuleOutcome(
            team="",
            priority=most_urgent(outcome.priority, rule.then.priority),
            tags=list(dict.fromkeys(outcome.tags + rule.then.tags)),
            matched_rules=outcome.matched_rules,
            skip=outcome.skip or rule.then.skip,
            reply_template=outcome.reply_template or rule.then.reply_template,
            assign_to=outcome.assign_to or rule.then.assign_to,
        )
        if rule.stop:
            break
    return RuleOutcome(
        team=team or spec.default_team,
        priority=outcome.priority,
        tags=outcome.tags,
        matched_rules=outcome.matched_rules,
        skip=outcome.skip,
        reply_template=outcome.reply_template,
        assign_to=outcome.assign_to,
    )


@settings(max_examples=300, deadline=None)
@given(rule_sets, st.lists(messages, min_size=1, max_size=5))
def test_indexed_evaluation_equals_evaluating_every_rule(
    rules: list[dict[str, object]], batch: list[CanonicalMessage]
) -> None:
    spec = RulesFile.model_validate(
        {
            "version": 1,
            "default_team": "care",
            "teams": TEAMS,
            "rules": [{"id": f"r{index}", **rule} for index, rule in enumerate(rules)],
        }
    )
    rule_set = RuleSet(spec)
    for msg in batch:
        assert rule_set.evaluate(msg) == reference(spec, msg), msg.text


def test_only_rules_whose_keywords_were_found_are_candidates() -> None:
    rule_set = RuleSet(
        RulesFile.model_validate(
            {
                "version": 1,
                "default_team": "care",
                "teams": TEAMS,
                "rules": [
                    *({"id": f"k{i}", "when": {"any": [f"word{i}"]}} for i in range(1000)),
                    {"id": "all", "when": {"all": ["word7", "extra"]}},
                    {"id": "unkeyed", "when": {"channels": ["dm"], "none": ["word3"]}},
                ],
            }
        )
    )
    assert rule_set.candidates(set()) == [1001]
    assert rule_set.candidates({"word7", "word999"}) == [7, 999, 1000, 1001]
