"""Train and evaluate the router's sentiment model on the labelled sets, read in place.

`casewire-dev sentiment` evaluates the shipped model (`casewire_router/domain/
sentiment_model.json.gz`) on the held-out test split and prints the table of
docs/sentiment.md; `--train` first trains it again from the shared data (deterministic:
the same data gives the same file, byte for byte) and writes the model and that table.

**Data** (under the shared data folder, `intents/`), every label mapped to negative /
neutral / positive:

- English: US airline tweets (`airline_sentiment`; the copy's "Cancelled Flightled"-style
  replacements undone, repeated tweet ids once).
- Thai: Wisesight `neg`, `neu`, `pos`; its questions (`q`) are neutral.
- Arabic: ASTD (`OBJ` and `NEUTRAL`, the "mixed" class, are neutral), ArSAS (`Mixed` is
  neutral) and ArSarcasm-v2 (`sentiment`).
- Greek and Spanish: SentiMP-21 (`final_label`) and politics_virality (`label`) tweets by
  members of parliament, -1/0/1; rows without a label (`x`, empty) are left out.

**Splits.** Every text goes to test (10%), dev (10%) or train (80%) by a hash of its folded
text without mentions and links: a tweet in two sets (ASTD and ArSarcasm-v2, SentiMP-21 and
politics_virality) is in the same split in both, so no set tests a model that saw its tweets.
Hyperparameters (smoothing, minimum feature count, how much the label priors count) are
chosen per language by macro-F1 on dev with a model trained on train; the temperature that
calibrates the score by log-loss on dev. The shipped model is then trained on train + dev with
those choices, and evaluated once on test. Test is never used to choose anything.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import math
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casewire_dev.paths import repo_root, shared_data

LABELS = ("negative", "neutral", "positive")
LANGUAGE_NAMES = {"ar": "Arabic", "el": "Greek", "en": "English", "es": "Spanish", "th": "Thai"}
SCALE = 100  # as casewire_router.domain.sentiment._SCALE
FORMAT = 2  # as casewire_router.domain.sentiment.FORMAT
ALPHAS = (0.1, 0.3, 1.0)
MIN_COUNTS = (2, 3)
PRIOR_WEIGHTS = (0.0, 0.5, 1.0)
TEMPERATURES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
MODEL_PATH = Path("services/router/casewire_router/domain/sentiment_model.json.gz")
DOC_PATH = Path("docs/sentiment.md")
AIRLINE_TEXT_REPAIRS = (
    ("Cancelled Flight", "cancel"),
    ("Late Flight", "late"),
    ("Flight Booking Problems", "book"),
)
_POLARITY = {"-1": "negative", "0": "neutral", "1": "positive"}
_MENTIONS_AND_LINKS = re.compile(r"@\w+|https?://\S+|www\.\S+")
csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class Item:
    dataset: str
    language: str
    text: str
    label: str
    split: str  # "train", "dev" or "test"


def _fold(text: str) -> str:
    from casewire_router.domain.keywords import fold

    return fold(text)


def split_of(folded: str) -> str:
    key = " ".join(_MENTIONS_AND_LINKS.sub(" ", folded).split())
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        yield from csv.DictReader(file)


def _tab_rows(path: Path) -> Iterator[tuple[str, str]]:
    with path.open(encoding="utf-8") as file:
        for line in file:
            text, _, label = line.rstrip("\r\n").rpartition("\t")
            if text.strip() and label:
                yield text, label.strip()


def raw_items(intents: Path) -> Iterator[tuple[str, str, str, str]]:
    """(dataset, language, text, label) for every labelled row."""
    seen: set[str] = set()
    for row in _csv_rows(intents / "twitter_us_airline_sentiment" / "Tweets_ramlah0.csv"):
        if row["tweet_id"] in seen:
            continue
        seen.add(row["tweet_id"])
        text = row["text"]
        for label_name, original in AIRLINE_TEXT_REPAIRS:
            text = text.replace(label_name, original)
        yield "airline", "en", text, row["airline_sentiment"]
    for name, label in (("neg", "negative"), ("neu", "neutral"), ("pos", "positive")):
        for text in (intents / "wisesight_thai" / f"{name}.txt").read_text("utf-8").splitlines():
            if text.strip():
                yield "wisesight", "th", text, label
    for text in (intents / "wisesight_thai" / "q.txt").read_text("utf-8").splitlines():
        if text.strip():
            yield "wisesight", "th", text, "neutral"
    astd = {"OBJ": "neutral", "NEUTRAL": "neutral", "NEG": "negative", "POS": "positive"}
    for text, label in _tab_rows(intents / "astd" / "Tweets.txt"):
        if label in astd:
            yield "astd", "ar", text, astd[label]
    arsas = {"Negative": "negative", "Neutral": "neutral", "Mixed": "neutral"}
    arsas["Positive"] = "positive"
    for name in ("ArSAS-train.txt", "ArSAS-test.txt"):
        for text, label in _tab_rows(intents / "arsas" / name):
            if label in arsas:
                yield "arsas", "ar", text, arsas[label]
    sarcasm = {"NEG": "negative", "NEU": "neutral", "POS": "positive"}
    for name in ("training_data.csv", "testing_data.csv"):
        for row in _csv_rows(intents / "arsarcasm_v2" / name):
            text = row["tweet"].strip('"')
            if row["sentiment"] in sarcasm and text.strip():
                yield "arsarcasm_v2", "ar", text, sarcasm[row["sentiment"]]
    parliament = (
        ("sentimp21_el", "el", "gr_extended_full.csv", "final_label"),
        ("politics_virality_el", "el", "gr_combined.csv", "label"),
        ("sentimp21_es", "es", "sp_extended_full.csv", "final_label"),
        ("politics_virality_es", "es", "es_combined.csv", "label"),
    )
    for dataset, language, name, column in parliament:
        for row in _csv_rows(intents / dataset / name):
            polarity = _POLARITY.get((row.get(column) or "").strip())
            if polarity is not None and row["full_text"].strip():
                yield dataset, language, row["full_text"], polarity


def load_items(intents: Path) -> list[Item]:
    items = []
    for dataset, language, text, label in raw_items(intents):
        items.append(Item(dataset, language, text, label, split_of(_fold(text))))
    return items


# --- training ---------------------------------------------------------------------------


@dataclass
class Counts:
    """Feature counts per label (the sufficient statistics of multinomial Naive Bayes)."""

    features: dict[str, list[int]]
    totals: list[int]
    documents: list[int]


def count(examples: Iterable[tuple[list[str], int]]) -> Counts:
    features: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    totals = [0, 0, 0]
    documents = [0, 0, 0]
    for found, label in examples:
        documents[label] += 1
        for feature, n in Counter(found).items():
            features[feature][label] += n
            totals[label] += n
    return Counts(dict(features), totals, documents)


def table(
    counts: Counts, alpha: float, min_count: int, prior_weight: float
) -> tuple[dict[str, tuple[int, int, int]], list[float]]:
    """Weights (centred log-likelihoods, in hundredths) and log priors."""
    kept = {f: c for f, c in counts.features.items() if sum(c) >= min_count}
    vocabulary = len(kept) + 1
    denominators = [math.log(counts.totals[k] + alpha * vocabulary) for k in range(3)]
    weights: dict[str, tuple[int, int, int]] = {}
    for feature, c in kept.items():
        logs = [math.log(c[k] + alpha) - denominators[k] for k in range(3)]
        mean = sum(logs) / 3
        triple = (
            round((logs[0] - mean) * SCALE),
            round((logs[1] - mean) * SCALE),
            round((logs[2] - mean) * SCALE),
        )
        if triple != (0, 0, 0):
            weights[feature] = triple
    documents = sum(counts.documents)
    prior = [prior_weight * math.log((counts.documents[k] + 1) / (documents + 3)) for k in range(3)]
    return weights, prior


def _sums(weights: Mapping[str, tuple[int, int, int]], found: Sequence[str]) -> tuple[int, ...]:
    a = b = c = 0
    for feature in found:
        w = weights.get(feature)
        if w is not None:
            a += w[0]
            b += w[1]
            c += w[2]
    return a, b, c


def _probabilities(sums: Sequence[int], prior: Sequence[float], temperature: float) -> list[float]:
    logits = [(p + s / SCALE) / temperature for p, s in zip(prior, sums, strict=True)]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [x / total for x in exps]


def scores_of(
    weights: Mapping[str, tuple[int, int, int]],
    prior: Sequence[float],
    examples: Sequence[tuple[list[str], int]],
) -> list[tuple[list[float], int]]:
    """Per example: its label logits (before temperature) and true label."""
    out = []
    for found, label in examples:
        sums = _sums(weights, found)
        out.append(([p + s / SCALE for p, s in zip(prior, sums, strict=True)], label))
    return out


def macro_f1(pairs: Sequence[tuple[int, int]]) -> float:
    """Macro-F1 over the three labels, from (predicted, true) pairs."""
    f1s = []
    for k in range(3):
        tp = sum(1 for p, t in pairs if p == k and t == k)
        fp = sum(1 for p, t in pairs if p == k and t != k)
        fn = sum(1 for p, t in pairs if p != k and t == k)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / 3


def accuracy(pairs: Sequence[tuple[int, int]]) -> float:
    return sum(1 for p, t in pairs if p == t) / len(pairs) if pairs else 0.0


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda k: values[k])


def _log_loss(logits: Sequence[tuple[list[float], int]], temperature: float) -> float:
    total = 0.0
    for row, label in logits:
        scaled = [x / temperature for x in row]
        top = max(scaled)
        log_total = top + math.log(sum(math.exp(x - top) for x in scaled))
        total += log_total - scaled[label]
    return total / len(logits)


@dataclass
class Choice:
    alpha: float
    min_count: int
    prior_weight: float
    temperature: float
    dev_macro_f1: float


def choose(train: Sequence[tuple[list[str], int]], dev: Sequence[tuple[list[str], int]]) -> Choice:
    counts = count(train)
    best: tuple[float, float, int, float] | None = None
    for alpha in ALPHAS:
        for min_count in MIN_COUNTS:
            weights, _ = table(counts, alpha, min_count, 1.0)
            for prior_weight in PRIOR_WEIGHTS:
                _, prior = table(Counts({}, counts.totals, counts.documents), 1, 1, prior_weight)
                logits = scores_of(weights, prior, dev)
                f1 = macro_f1([(_argmax(row), label) for row, label in logits])
                if best is None or f1 > best[0]:
                    best = (f1, alpha, min_count, prior_weight)
    assert best is not None
    f1, alpha, min_count, prior_weight = best
    weights, prior = table(counts, alpha, min_count, prior_weight)
    logits = scores_of(weights, prior, dev)
    temperature = min(TEMPERATURES, key=lambda t: _log_loss(logits, t))
    return Choice(alpha, min_count, prior_weight, temperature, round(f1, 4))


# --- evaluation -------------------------------------------------------------------------


@dataclass
class Row:
    language: str
    dataset: str  # a dataset, or "all" for the language
    items: int
    majority: str
    figures: dict[str, tuple[float, float]]  # method → (accuracy, macro-F1)


def _lexicon_label(found: Mapping[str, set[str]]) -> int:
    return 0 if found.get("negative") or found.get("hostile") else 1


def evaluate(
    model: Any, items: Sequence[Item], train_labels: Mapping[str, Counter[str]]
) -> tuple[list[Row], float]:
    """The test split's figures per language and dataset, and the scoring cost (µs/item)."""
    from casewire_router.domain.sentiment import classify
    from casewire_router.domain.urgency import default_model as urgency_model

    vocabularies = urgency_model().vocabularies
    test = [item for item in items if item.split == "test"]
    folded = [_fold(item.text) for item in test]
    lexicon = [_lexicon_label(vocabularies.find_folded(text)) for text in folded]
    started = time.perf_counter()
    alone = [
        LABELS.index(classify(model, text, item.language).label)
        for text, item in zip(folded, test, strict=True)
    ]
    cost = (time.perf_counter() - started) / max(1, len(test)) * 1e6
    shipped = [
        LABELS.index(classify(model, text, item.language, negative_words=guess == 0).label)
        for text, item, guess in zip(folded, test, lexicon, strict=True)
    ]
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(test):
        groups[(item.language, item.dataset)].append(index)
        groups[(item.language, "all")].append(index)
    rows = []
    for (language, dataset), indexes in sorted(groups.items()):
        majority = train_labels[language].most_common(1)[0][0]
        truth = [LABELS.index(test[i].label) for i in indexes]
        figures = {}
        for method, guesses in (
            ("majority", [LABELS.index(majority)] * len(indexes)),
            ("lexicon", [lexicon[i] for i in indexes]),
            ("model", [alone[i] for i in indexes]),
            ("shipped", [shipped[i] for i in indexes]),
        ):
            pairs = list(zip(guesses, truth, strict=True))
            figures[method] = (round(accuracy(pairs), 3), round(macro_f1(pairs), 3))
        rows.append(Row(language, dataset, len(indexes), majority, figures))
    return rows, cost


def train(items: Sequence[Item]) -> dict[str, Any]:
    """The model document: per language, hyperparameters chosen on dev, then trained on
    train + dev."""
    from casewire_router.domain.sentiment import features

    by_language: dict[str, dict[str, list[tuple[list[str], int]]]] = defaultdict(
        lambda: {"train": [], "dev": [], "test": []}
    )
    for item in items:
        by_language[item.language][item.split].append(
            (features(_fold(item.text)), LABELS.index(item.label))
        )
    languages: dict[str, Any] = {}
    for language in sorted(by_language):
        splits = by_language[language]
        choice = choose(splits["train"], splits["dev"])
        weights, prior = table(
            count([*splits["train"], *splits["dev"]]),
            choice.alpha,
            choice.min_count,
            choice.prior_weight,
        )
        languages[language] = {
            "prior": [round(p, 4) for p in prior],
            "temperature": choice.temperature,
            "chosen": {
                "alpha": choice.alpha,
                "min_count": choice.min_count,
                "prior_weight": choice.prior_weight,
                "dev_macro_f1": choice.dev_macro_f1,
                "train_items": len(splits["train"]) + len(splits["dev"]),
            },
            "weights": {feature: list(weights[feature]) for feature in sorted(weights)},
        }
    return {
        "format": FORMAT,
        "trained": {"method": "multinomial Naive Bayes, `casewire-dev sentiment --train`"},
        "languages": languages,
    }


def encode(document: Mapping[str, Any]) -> bytes:
    """The model file (`casewire_router.domain.sentiment.FORMAT`): a JSON header, then one
    JSON line per feature, language after language in the header's (sorted) order."""
    header = {key: value for key, value in document.items() if key != "languages"}
    header["format"] = FORMAT
    header["languages"] = {
        language: {
            **{key: value for key, value in table.items() if key != "weights"},
            "features": len(table["weights"]),
        }
        for language, table in document["languages"].items()
    }
    lines = [_json_line(header)]
    for language in sorted(document["languages"]):
        weights = document["languages"][language]["weights"]
        lines.extend(_json_line([feature, *weights[feature]]) for feature in sorted(weights))
    text = "".join(f"{line}\n" for line in lines)
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def train_labels(items: Sequence[Item]) -> dict[str, Counter[str]]:
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        if item.split != "test":
            labels[item.language][item.label] += 1
    return labels


def report(rows: Sequence[Row], cost: float, model: Any) -> str:
    lines = [
        "| language | test set | items | majority label | majority acc / macro-F1"
        " | lexicon acc / macro-F1 | model alone acc / macro-F1"
        " | **model + lexicon** (shipped) acc / macro-F1 |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for row in rows:
        name = LANGUAGE_NAMES[row.language]
        dataset = "**all**" if row.dataset == "all" else row.dataset
        cells = [
            f"{row.figures[m][0]:.3f} / {row.figures[m][1]:.3f}"
            for m in ("majority", "lexicon", "model", "shipped")
        ]
        cells[3] = f"**{cells[3]}**" if row.dataset == "all" else cells[3]
        lines.append(
            f"| {name} | {dataset} | {row.items} | {row.majority} | " + " | ".join(cells) + " |"
        )
    lines += ["", "| language | alpha | min count | prior weight | temperature | dev macro-F1 |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for language in sorted(model.trained.get("chosen", {})):
        chosen = model.trained["chosen"][language]
        lines.append(
            f"| {LANGUAGE_NAMES[language]} | {chosen['alpha']} | {chosen['min_count']} |"
            f" {chosen['prior_weight']} | {chosen['temperature']} | {chosen['dev_macro_f1']} |"
        )
    lines += ["", f"Scoring cost on this machine: {cost:.1f} µs per message (test split)."]
    return "\n".join(lines)


def _with_summary(document: dict[str, Any]) -> dict[str, Any]:
    """Copy each language's chosen hyperparameters into `trained` (read by the report)."""
    document["trained"]["chosen"] = {
        language: {**table["chosen"], "temperature": table["temperature"]}
        for language, table in document["languages"].items()
    }
    return document


def _replace_table(doc: Path, table_text: str) -> None:
    begin, end = "<!-- sentiment-table:begin -->", "<!-- sentiment-table:end -->"
    text = doc.read_text("utf-8")
    start, stop = text.index(begin) + len(begin), text.index(end)
    doc.write_text(f"{text[:start]}\n{table_text}\n{text[stop:]}", "utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="casewire-dev sentiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", action="store_true", help="train and write the model first")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the shared data folder (default: CASEWIRE_SHARED_DATA or ../shared/data)",
    )
    parser.add_argument(
        "--write-doc", action="store_true", help=f"put the table into {DOC_PATH} (with --train)"
    )
    args = parser.parse_args(argv)
    root = repo_root()
    data = args.data if args.data is not None else shared_data(root)
    intents = data / "intents"
    if not intents.is_dir():
        parser.error(f"no labelled data under {intents}")
    from casewire_router.domain.sentiment import read_model_file

    items = load_items(intents)
    if args.train:
        data = encode(_with_summary(train(items)))
        (root / MODEL_PATH).write_bytes(data)
        model = read_model_file(data)
        print(f"wrote {MODEL_PATH} ({(root / MODEL_PATH).stat().st_size:,} bytes)", file=sys.stderr)
    else:
        model = read_model_file((root / MODEL_PATH).read_bytes())
    rows, cost = evaluate(model, items, train_labels(items))
    text = report(rows, cost, model)
    print(text)
    if args.write_doc:
        _replace_table(root / DOC_PATH, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
