"""`casewire-dev bench --only rules`: does the rules engine's cost grow with the number of rules?

`CaseRouter.decide` (rules and urgency, the whole decision) over real customer texts — the TWCS
sample, US airline tweets, Thai Wisesight posts — with 10 and with 10,000 keyword rules:

- `rules_10k_vs_10`: decisions/s with 10,000 rules ÷ decisions/s with 10 (goal ≥ 0.8);
- `naive_regex_10k_vs_10`: the same for the design the keyword index replaces, one compiled
  regex per rule and every rule tried in turn, measured in the same run.

Rule keywords are generated as a rules file would have them: English words and phrases of
the corpus and Arabic, Greek, Spanish and Thai phrases. The 10 rules are the first 10 of
the 10,000, written with everyday words (they match often); the other 9,990 with specific
phrases, as a large rules file is. No Kafka and no database: the engine alone.
"""

from __future__ import annotations

import csv
import gc
import itertools
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from casewire_common.events import Priority
from casewire_common.messages import Author, CanonicalMessage, message_id
from casewire_router.domain.keywords import fold
from casewire_router.domain.routing import CaseRouter, case_router_for
from casewire_router.domain.rules import (
    Rule,
    RuleOutcome,
    RuleSet,
    RulesFile,
    most_urgent,
    parse_rules,
)

from casewire_dev import bench_workload
from casewire_dev.results import BenchError, Results, metric, ratio

AIRLINE_TWEETS = Path("intents") / "twitter_us_airline_sentiment" / "Tweets_ramlah0.csv"
THAI_POSTS = Path("intents") / "wisesight_thai"
MANY, FEW = 10_000, 10
TEAMS = ["care", "shipping", "billing", "accounts", "incidents"]
SECONDS_PER_ROUND = 1.5
ROUNDS = 3
NAIVE_MESSAGES = 200  # every rule's regex for every message: a slice is enough to time it

# Phrases in the languages the care team answers in; rules combine them in pairs.
WORDS = {
    "ar": [
        "الطلب", "الشحن", "التوصيل", "الفاتورة", "استرداد", "الحساب", "كلمة المرور", "الدفع",
        "متأخر", "مشكلة", "خدمة", "العملاء", "الطرد", "تتبع", "اشتراك", "بطاقة", "رسوم",
        "إلغاء", "تغيير", "العنوان", "المنتج", "معطل", "تطبيق", "الموقع", "رسالة",
    ],
    "el": [
        "παραγγελία", "αποστολή", "παράδοση", "λογαριασμός", "χρέωση", "επιστροφή", "κωδικός",
        "πληρωμή", "καθυστέρηση", "πρόβλημα", "εξυπηρέτηση", "δέμα", "συνδρομή", "κάρτα",
        "ακύρωση", "αλλαγή", "διεύθυνση", "προϊόν", "εφαρμογή", "μήνυμα", "τιμολόγιο",
    ],
    "es": [
        "pedido", "envío", "entrega", "factura", "reembolso", "cuenta", "contraseña", "pago",
        "retraso", "problema", "servicio", "paquete", "seguimiento", "suscripción", "tarjeta",
        "cancelación", "cambio", "dirección", "producto", "aplicación", "mensaje", "cobro",
    ],
    "th": [
        "คำสั่งซื้อ", "จัดส่ง", "พัสดุ", "ใบแจ้งหนี้", "คืนเงิน", "บัญชี", "รหัสผ่าน",
        "ชำระเงิน", "ล่าช้า", "ปัญหา", "บริการ", "ติดตาม", "สมาชิก", "บัตร", "ยกเลิก",
        "เปลี่ยน", "ที่อยู่", "สินค้า", "แอป", "ข้อความ", "โปรโมชั่น", "ราคา", "เน็ต", "สัญญาณ",
    ],
}  # fmt: skip
_WORD = re.compile(r"[a-z][a-z']{2,}")
# Words too common to be anyone's keyword.
_STOPWORDS = frozenset(
    (
        "the", "and", "you", "your", "for", "that", "this", "with", "have", "are", "was", "but",
        "not", "can", "just", "get", "what", "from", "they", "been", "when", "will", "all",
        "there", "how", "its", "it's", "i'm", "don't", "out", "has", "why", "any", "about",
        "who", "would", "now", "had", "our", "one", "more", "some", "them", "their", "than",
        "then", "also", "very", "only",
    )
)  # fmt: skip


def customer_texts(data: Path) -> list[str]:
    """Real inbound texts: the TWCS sample, the airline tweets and Thai posts."""
    texts = list(bench_workload.read_twcs_sample(data).customer_texts)
    with (data / AIRLINE_TWEETS).open(newline="", encoding="utf-8") as handle:
        texts.extend(row["text"] for row in csv.DictReader(handle) if row["text"].strip())
    for name in ("neg.txt", "neu.txt", "q.txt"):
        lines = (data / THAI_POSTS / name).read_text("utf-8").splitlines()
        texts.extend(line for line in lines if len(line) >= 20)
    return texts


def corpus_phrases(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Words and two-word phrases of the English texts, most frequent first."""
    words: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    for text in texts:
        tokens = [t for t in _WORD.findall(text.lower()) if t not in _STOPWORDS]
        words.update(tokens)
        pairs.update(f"{a} {b}" for a, b in itertools.pairwise(tokens))
    return [w for w, _ in words.most_common()], [p for p, _ in pairs.most_common()]


def _keyword(rng: random.Random, core: bool, words: Sequence[str], pairs: Sequence[str]) -> str:
    """A core rule's keyword is an everyday word (it matches often); the others are what a
    large rules file is made of, specific phrases: rare phrases and words of the corpus, and
    two-word phrases in Arabic, Greek, Spanish and Thai."""
    draw = rng.random()
    language = rng.choice(sorted(WORDS))
    if core:
        if draw < 0.7:
            return rng.choice(words[:300])
        return rng.choice(WORDS[language])
    if draw < 0.5:
        return rng.choice(pairs[200 : 40 * MANY])
    if draw < 0.65:
        return rng.choice(words[1000:])
    first, second = rng.sample(WORDS[language], 2)
    return first + second if language == "th" else f"{first} {second}"


def rules_yaml(count: int, words: Sequence[str], pairs: Sequence[str], seed: int) -> str:
    """`count` keyword rules, the first FEW of them core rules; the same seed gives the same
    first rules whatever `count`."""
    rng = random.Random(seed)
    lines = ["version: 1", "default_team: care", f"teams: [{', '.join(TEAMS)}]", "rules:"]
    for index in range(count):
        core = index < FEW
        keywords = [_keyword(rng, core, words, pairs) for _ in range(rng.randint(1, 4))]
        lines.append(f"  - id: rule-{index}")
        lines.append(f"    when: {{any: [{', '.join(_quoted(k) for k in keywords)}]}}")
        team = f"team: {rng.choice(TEAMS)}, " if rng.random() < 0.5 else ""
        priority = rng.choice(["P2", "P3", "P4"])
        lines.append(f"    then: {{{team}priority: {priority}, tags: [t{index % 97}]}}")
    return "\n".join(lines) + "\n"


def _quoted(keyword: str) -> str:
    return '"' + keyword.replace("\\", "\\\\").replace('"', '\\"') + '"'


def canonical_messages(texts: Sequence[str]) -> list[CanonicalMessage]:
    sent = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    return [
        CanonicalMessage(
            id=message_id("x", f"bench-rules-{index}"),
            platform="x",
            channel="mention",
            visibility="public",
            direction="inbound",
            account_id="brand",
            platform_message_id=f"bench-rules-{index}",
            conversation_id=f"x:brand:{index}:cust{index}",
            author=Author(id=f"cust{index}", followers=index % 5000),
            text=text,
            language=bench_workload.guess_language(text),
            sent_at=sent,
            received_at=sent,
        )
        for index, text in enumerate(texts)
    ]


def _alternative(keyword: str) -> str:
    """A keyword as a regex that matches where `KeywordMatcher` does: whole words, except in
    Thai (unspaced)."""
    escaped = re.escape(keyword)
    if any(0x0E00 <= ord(char) <= 0x0E7F for char in keyword):
        return escaped
    before = r"(?<!\w)" if keyword[0].isalnum() else ""
    after = r"(?!\w)" if keyword[-1].isalnum() else ""
    return before + escaped + after


class NaiveRegexRules(RuleSet):
    """The design the index replaces: one compiled regex per rule over the folded text,
    every rule tried in turn, in file order. Knows only `any` rules (what the bench writes)."""

    def __init__(self, spec: RulesFile, source_text: str) -> None:
        super().__init__(spec, source_text)
        self._patterns: list[tuple[Rule, re.Pattern[str]]] = []
        for rule in spec.rules:
            then = rule.then
            if (
                set(rule.when.model_dump(exclude_defaults=True)) != {"any"}
                or rule.stop
                or then.skip
                or then.reply_template
                or then.assign_to
            ):
                raise BenchError(f"rule {rule.id}: the naive engine knows only `any` rules")
            keywords = sorted({fold(k).strip() for k in rule.when.any}, key=len, reverse=True)
            self._patterns.append((rule, re.compile("|".join(map(_alternative, keywords)))))

    def evaluate(self, message: CanonicalMessage, folded: str | None = None) -> RuleOutcome:
        folded = fold(message.text) if folded is None else folded
        team: str | None = None
        priority: Priority | None = None
        tags: list[str] = []
        matched: list[str] = []
        for rule, regex in self._patterns:
            if regex.search(folded) is None:
                continue
            matched.append(rule.id)
            team = team or rule.then.team
            priority = most_urgent(priority, rule.then.priority)
            tags.extend(tag for tag in rule.then.tags if tag not in tags)
        return RuleOutcome(team or self.default_team, priority, tags, matched, False, None, None)


def decisions_per_second(router: CaseRouter, messages: Sequence[CanonicalMessage]) -> float:
    """Decisions over the messages, again and again for about SECONDS_PER_ROUND."""
    decided = 0
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < SECONDS_PER_ROUND:
        for message in messages:
            router.decide(message)
        decided += len(messages)
        elapsed = time.perf_counter() - started
    return decided / elapsed


def best_of_rounds(measure: Callable[[], float]) -> float:
    """The best of a few rounds: on a shared machine, the least disturbed one."""
    return max(measure() for _ in range(ROUNDS))


def run(data: Path, seed: int) -> Results:
    print("rules: reading the corpora and generating 10,000 keyword rules ...", flush=True)
    texts = customer_texts(data)
    words, pairs = corpus_phrases(texts)
    rng = random.Random(seed)
    rng.shuffle(texts)
    messages = canonical_messages(texts[:6000])
    many_text, few_text = (rules_yaml(n, words, pairs, seed) for n in (MANY, FEW))
    started = time.perf_counter()
    many = parse_rules(many_text)
    parse_seconds = time.perf_counter() - started
    few = parse_rules(few_text)
    routers = {
        "indexed": (case_router_for(few), case_router_for(many)),
        "naive": (
            case_router_for(NaiveRegexRules(few.spec, few_text)),
            case_router_for(NaiveRegexRules(many.spec, many_text)),
        ),
    }
    naive_messages = messages[:NAIVE_MESSAGES]
    disagree = sum(
        routers["indexed"][1].rules.evaluate(m).matched_rules
        != routers["naive"][1].rules.evaluate(m).matched_rules
        for m in naive_messages
    )
    if disagree:
        raise BenchError(f"the naive and indexed engines disagree on {disagree} messages")
    matched = [
        sum(len(rules.evaluate(m).matched_rules) for m in messages) / len(messages)
        for rules in (few, many)
    ]
    print(
        f"rules: {many.keywords:,} keywords in {MANY:,} rules (parsed in {parse_seconds:.1f}s),"
        f" {len(messages):,} messages; rules matched per message: {matched[0]:.2f} of {FEW},"
        f" {matched[1]:.2f} of {MANY:,}",
        flush=True,
    )
    gc.collect()
    gc.freeze()
    rates: dict[str, float] = {}
    for design, (with_few, with_many) in routers.items():
        sample = messages if design == "indexed" else naive_messages
        print(f"rules: timing the {design} engine with {FEW} and {MANY:,} rules ...", flush=True)
        rates[f"{design}_few"] = best_of_rounds(partial(decisions_per_second, with_few, sample))
        rates[f"{design}_many"] = best_of_rounds(partial(decisions_per_second, with_many, sample))
    gc.unfreeze()
    return {
        "rules_decisions_per_s_10": metric(rates["indexed_few"], "msgs/s"),
        "rules_decisions_per_s_10k": metric(rates["indexed_many"], "msgs/s"),
        "rules_10k_vs_10": metric(ratio(rates["indexed_many"], rates["indexed_few"]), "ratio"),
        "naive_regex_decisions_per_s_10": metric(rates["naive_few"], "msgs/s"),
        "naive_regex_decisions_per_s_10k": metric(rates["naive_many"], "msgs/s"),
        "naive_regex_10k_vs_10": metric(ratio(rates["naive_many"], rates["naive_few"]), "ratio"),
        "rules_10k_keywords": metric(many.keywords, "count"),
    }
