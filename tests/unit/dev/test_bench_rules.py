"""The rules benchmark's inputs: valid rules files, and a naive engine that decides alike."""

from __future__ import annotations

from casewire_dev import bench_rules
from casewire_router.domain.rules import parse_rules

from tests.unit.router.factories import message

WORDS = ["order", "refund", "delivery", "password", "flight", "delayed", "crash", "gate"]
PAIRS = ["order late", "flight delayed", "gate agent", "refund please"] * 60


def test_the_few_rules_are_the_first_of_the_many() -> None:
    few = parse_rules(bench_rules.rules_yaml(10, WORDS * 200, PAIRS * 200, seed=3))
    many = parse_rules(bench_rules.rules_yaml(500, WORDS * 200, PAIRS * 200, seed=3))
    assert len(many.spec.rules) == 500
    assert many.spec.rules[:10] == few.spec.rules


def test_naive_regex_rules_decide_like_the_indexed_engine() -> None:
    text = bench_rules.rules_yaml(300, WORDS * 200, PAIRS * 200, seed=5)
    indexed = parse_rules(text)
    naive = bench_rules.NaiveRegexRules(indexed.spec, text)
    texts = [
        "my order is late, refund please",
        "Flight DELAYED again, the gate agent was rude",
        "password reset crash",
        "ما هي حالة الطلب؟ الشحن متأخر",
        "η παραγγελία μου και η αποστολή",
        "ยังไม่ได้รับพัสดุคำสั่งซื้อค่ะ",
        "nothing to see",
    ]
    outcomes = [(indexed.evaluate(message(t)), naive.evaluate(message(t))) for t in texts]
    assert all(mine == theirs for mine, theirs in outcomes)
    assert sum(bool(mine.matched_rules) for mine, _ in outcomes) >= 3
