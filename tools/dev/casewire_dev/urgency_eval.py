"""How well the router's urgency score finds the messages that need a P1/P2, on labelled data.

`casewire-dev urgency-eval` reads three labelled sets in place (under the shared data
folder, `intents/`), turns every row into a public X mention, runs the router's `assess`
and prints precision and recall of "P1 or P2" per set and overall, and a confusion table
of truth by priority. docs/urgency.md records the figures and why the truth is defined so.

**Which labelled items are truly P1/P2** (someone must act within the hour: a customer is
stranded, has lost property or money, or cannot use what they pay for):

- US airline tweets: negative tweets whose `negativereason` is Cancelled Flight, Late
  Flight, Lost Luggage, Damaged Luggage or Flight Booking Problems. Not urgent: neutral
  and positive tweets, and negative ones about Customer Service Issue, Bad Flight, Flight
  Attendant Complaints, longlines (grievances about what already happened) or Can't Tell.
  This copy of the data had "cancel", "late" and "book" replaced in the text by the label
  names ("Cancelled Flightled"): the replacement is undone so the text does not give its
  label away.
- TWCS (Ericsson-labelled inbound tweets to Amazon, Apple, Spotify): tweets labelled
  Refund, Order Cancellation, Billing/Payment, Account or Unresponsive/Freezing Device.
  Delivery (mostly "where is my parcel", routed P3 by rules), Bad Support and product
  topics are not urgent by themselves.
- Wisesight (Thai social media): `neg` is urgent; `neu`, `pos` and `q` (questions) are not.
  Its negatives are mostly opinions about products, so it measures the Thai vocabulary
  rather than urgency proper.

No row says who wrote it beyond an id, so authors have no follower count and are not
verified, and no context (earlier contacts, bursts) is given: the figures measure the
message's own signals.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from casewire_common.messages import Author, CanonicalMessage, message_id

from casewire_dev.paths import repo_root, shared_data

if TYPE_CHECKING:
    from casewire_router.domain.urgency import UrgencyModel

PRIORITIES = ("P1", "P2", "P3", "P4")
SWEEP = (30, 35, 40, 45, 50, 55, 60, 70)  # P2 thresholds shown for comparison
URGENT_AIRLINE_REASONS = frozenset(
    {
        "Cancelled Flight",
        "Late Flight",
        "Lost Luggage",
        "Damaged Luggage",
        "Flight Booking Problems",
    }
)
URGENT_TWCS_TOPICS = frozenset(
    {"Refund", "Order Cancellation", "Billing/Payment", "Account", "Unresponsive/Freezing Device"}
)
# The airline copy's preprocessing put label names where these words were.
AIRLINE_TEXT_REPAIRS = (
    ("Cancelled Flight", "cancel"),
    ("Late Flight", "late"),
    ("Flight Booking Problems", "book"),
)
TWCS_BRANDS = ("AmazonHelp", "AppleSupport", "SpotifyCares")
WISESIGHT_FILES = {"neg": True, "neu": False, "pos": False, "q": False}
UNDATED = datetime(2019, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LabelledItem:
    dataset: str
    key: str  # unique within the dataset
    text: str
    urgent: bool
    author_id: str
    language: str
    sent_at: datetime


@dataclass
class Tally:
    """How many items of each truth (urgent or not) got each score."""

    scores: Counter[tuple[bool, int]] = field(default_factory=Counter)

    def add(self, urgent: bool, score: int) -> None:
        self.scores[(urgent, score)] += 1

    def merge(self, other: Tally) -> None:
        self.scores.update(other.scores)

    def count(self, urgent: bool, priority: str) -> int:
        from casewire_router.domain.urgency import priority_for

        return sum(
            n
            for (truth, score), n in self.scores.items()
            if truth == urgent and priority_for(score) == priority
        )

    def total(self, urgent: bool | None = None) -> int:
        return sum(n for (truth, _), n in self.scores.items() if urgent in (None, truth))

    def _flagged(self, urgent: bool, threshold: int) -> int:
        return sum(
            n for (truth, score), n in self.scores.items() if truth == urgent and score >= threshold
        )

    def precision(self, threshold: int) -> float:
        """Of the items scored at least `threshold` (P2_MIN: given P1 or P2), the urgent share."""
        flagged = self._flagged(True, threshold) + self._flagged(False, threshold)
        return self._flagged(True, threshold) / flagged if flagged else 0.0

    def recall(self, threshold: int) -> float:
        """Of the urgent items, the share scored at least `threshold`."""
        urgent = self.total(True)
        return self._flagged(True, threshold) / urgent if urgent else 0.0

    def f1(self, threshold: int) -> float:
        precision, recall = self.precision(threshold), self.recall(threshold)
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        yield from csv.DictReader(file)


def airline_items(folder: Path) -> Iterator[LabelledItem]:
    seen: set[str] = set()
    for row in _rows(folder / "Tweets_ramlah0.csv"):
        if row["tweet_id"] in seen:  # the file repeats some tweets
            continue
        seen.add(row["tweet_id"])
        text = row["text"]
        for label_name, original in AIRLINE_TEXT_REPAIRS:
            text = text.replace(label_name, original)
        yield LabelledItem(
            dataset="airline",
            key=row["tweet_id"],
            text=text,
            urgent=row["airline_sentiment"] == "negative"
            and row["negativereason"] in URGENT_AIRLINE_REASONS,
            author_id=f"airline-{row['tweet_id']}",
            language="en",
            sent_at=datetime.strptime(row["tweet_created"], "%m/%d/%Y %H:%M").replace(tzinfo=UTC),
        )


def twcs_items(folder: Path) -> Iterator[LabelledItem]:
    for brand in TWCS_BRANDS:
        for row in _rows(folder / f"twcs-{brand}-200-inbound.csv"):
            yield LabelledItem(
                dataset="twcs",
                key=row["tweet_id"],
                text=row["text"],
                urgent=any(row.get(topic, "").strip() == "1" for topic in URGENT_TWCS_TOPICS),
                author_id=row["author_id"],
                language="en",
                sent_at=datetime.fromisoformat(row["created_at"]),
            )


def wisesight_items(folder: Path) -> Iterator[LabelledItem]:
    for label, urgent in WISESIGHT_FILES.items():
        with (folder / f"{label}.txt").open(encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                text = line.strip()
                if text:
                    yield LabelledItem(
                        dataset="wisesight",
                        key=f"{label}-{number}",
                        text=text,
                        urgent=urgent,
                        author_id=f"wisesight-{label}-{number}",
                        language="th",
                        sent_at=UNDATED,
                    )


def labelled_items(intents: Path) -> Iterator[LabelledItem]:
    yield from airline_items(intents / "twitter_us_airline_sentiment")
    yield from twcs_items(intents / "twcs_ericsson_labeled")
    yield from wisesight_items(intents / "wisesight_thai")


def to_message(item: LabelledItem) -> CanonicalMessage:
    """The item as a customer's public mention of the brand on X."""
    platform_message_id = f"{item.dataset}-{item.key}"
    return CanonicalMessage(
        id=message_id("x", platform_message_id),
        platform="x",
        channel="mention",
        visibility="public",
        direction="inbound",
        account_id="brand",
        platform_message_id=platform_message_id,
        conversation_id=f"x:brand:{platform_message_id}:{item.author_id}",
        author=Author(id=item.author_id),
        text=item.text,
        language=item.language,
        sent_at=item.sent_at,
        received_at=item.sent_at,
    )


def evaluate(items: Iterator[LabelledItem], model: UrgencyModel) -> dict[str, Tally]:
    """Tallies per dataset, plus "overall"."""
    from casewire_router.domain.urgency import assess

    tallies: dict[str, Tally] = {}
    for item in items:
        score = assess(model, to_message(item)).urgency.score
        tallies.setdefault(item.dataset, Tally()).add(item.urgent, score)
    overall = Tally()
    for tally in tallies.values():
        overall.merge(tally)
    tallies["overall"] = overall
    return tallies


def run(intents: Path) -> dict[str, Tally]:
    from casewire_router.domain.urgency import default_model

    return evaluate(labelled_items(intents), default_model())


def report(tallies: dict[str, Tally]) -> str:
    from casewire_router.domain.urgency import P2_MIN

    lines = [
        "P1/P2 detection (truth: see `casewire-dev urgency-eval --help`)",
        f"{'dataset':<10} {'items':>7} {'urgent':>7} {'precision':>9} {'recall':>7} {'F1':>6}",
    ]
    for name, tally in tallies.items():
        lines.append(
            f"{name:<10} {tally.total():>7} {tally.total(True):>7}"
            f" {tally.precision(P2_MIN):>9.3f} {tally.recall(P2_MIN):>7.3f}"
            f" {tally.f1(P2_MIN):>6.3f}"
        )
    lines += ["", "confusion (rows: truth; columns: priority given)"]
    lines.append(f"{'dataset':<10} {'truth':<10} " + " ".join(f"{p:>6}" for p in PRIORITIES))
    for name, tally in tallies.items():
        for urgent in (True, False):
            cells = " ".join(f"{tally.count(urgent, p):>6}" for p in PRIORITIES)
            lines.append(f"{name:<10} {'P1/P2' if urgent else 'P3/P4':<10} {cells}")
    lines += ["", f"if P2 started at another score (now {P2_MIN}): precision / recall"]
    lines.append(f"{'dataset':<10} " + " ".join(f"{t:>11}" for t in SWEEP))
    for name, tally in tallies.items():
        cells = " ".join(f"{tally.precision(t):>5.2f}/{tally.recall(t):<5.2f}" for t in SWEEP)
        lines.append(f"{name:<10} {cells}".rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="casewire-dev urgency-eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the shared data folder (default: CASEWIRE_SHARED_DATA or ../shared/data)",
    )
    args = parser.parse_args(argv)
    data = args.data if args.data is not None else shared_data(repo_root())
    intents = data / "intents"
    if not intents.is_dir():
        parser.error(f"no labelled data under {intents}")
    print(report(run(intents)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
