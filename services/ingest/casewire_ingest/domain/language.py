"""Language of a message when the platform gives none: an ISO 639-1 code, or None.

The library was chosen by measurement on short real texts from the shared data
(`python -m casewire_dev.langeval` prints the table). CLD2 (`pycld2`) was the most accurate
candidate on real tweets and posts, above all on the shortest (<= 20 characters, once
cleaned: 96.3 % right; fastText 94.4 %, langid 93.9 %, Lingua 88.1 %), gave the fewest
wrong languages, and costs 7 µs and 3 MB per process where Lingua costs 200 µs and 400 MB.
Its known weak spot: short Spanish that could pass for English ("No funciona la app"), as
CLD2 leans to English when unsure; on Spanish messages we wrote it scores 83 %.

Before CLD2 runs, the text loses what is not language (URLs, @handles, the `#` of hashtags,
emoji, bidi marks), and a script that only one configured language uses decides alone.
None means "do not guess": no letters, too few, or no configured language covering enough
of the text. The router prefers no language to a wrong one (a case keeps the first
language it is given).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import pycld2  # type: ignore[import-untyped,unused-ignore]  # ships no type hints

# Ingest's default `CASEWIRE_LANGUAGES`.
DEFAULT_LANGUAGES: tuple[str, ...] = (
    "en", "es", "ar", "el", "th", "fr", "de", "pt", "it", "tr", "ru", "ja", "ko", "zh", "he",
    "hi", "id", "nl",
)  # fmt: skip
# Fewer letters than this carry no usable signal ("ok", "K", "LG"): None. Measured on
# texts of <= 20 characters: 3 (not 1) turns 0.5 of 1.1 % wrong answers into None, at the
# cost of 0.7 points of right ones.
DEFAULT_MIN_LETTERS = 3
# The answer must cover at least this share (%) of the text CLD2 scored; below it the text
# is mostly another, unconfigured language (measured: 30 keeps every right answer that 0
# gives, without the wrong ones).
DEFAULT_MIN_PERCENT = 30
# A script that only one configured language writes decides when it holds at least this
# share of the letters and SCRIPT_MIN_LETTERS of them, or most letters: Thai posts name
# Latin-script brands ("Primer ของ Revlon ไม่ดี"), while "¯\_(ツ)_/¯" or a band called
# "LOOΠΔ" leave an English post English.
DEFAULT_SCRIPT_SHARE = 0.2
SCRIPT_MIN_LETTERS = 3

_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|co|ly)/\S*", re.I)
_MENTION = re.compile(r"(?<![\w@])@\w+")
_ASCII_SYMBOLS = "#_$+<=>^`|~"  # read as spaces
_KEPT_CATEGORIES = frozenset("LMNPZ")
_MAX_CACHED_CHARACTERS = 50_000
_ASCII_NON_LETTERS = {code: None for code in range(128) if not chr(code).isalpha()}


class _WordCharacters(dict[int, int | None]):
    """A `str.translate` table that keeps the characters of words: ASCII symbols become
    spaces, and characters that are not a letter, mark, digit, punctuation or space go.
    Each code point's category is looked up once, then cached, up to a bound that the
    alphabets of real messages stay far below."""

    def __missing__(self, code: int) -> int | None:
        kept = code < 0x80 or unicodedata.category(chr(code))[0] in _KEPT_CATEGORIES
        value = code if kept else None
        if len(self) < _MAX_CACHED_CHARACTERS:
            self[code] = value
        return value


_WORD_CHARACTERS = _WordCharacters({ord(symbol): ord(" ") for symbol in _ASCII_SYMBOLS})
_LETTER = re.compile(r"[^\W\d_]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
# Letters of scripts that identify one language; base letters only, so that the Thai
# repetition mark `ๆ` after an English word or the Japanese `ー` prove nothing.
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("th", re.compile("[\u0e01-\u0e30\u0e32\u0e33\u0e40-\u0e45]")),
    ("el", re.compile("[\u0386-\u03ff\u1f00-\u1ffc]")),
    ("ko", re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e]")),
    ("ja", re.compile("[\u3041-\u3096\u30a1-\u30fa\u31f0-\u31ff\uff66-\uff6f\uff71-\uff9d]")),
)
# CLD2 codes that are not the language's ISO 639-1 code.
_CLD2_ALIASES = {"iw": "he", "in": "id", "jw": "jv", "zh-hant": "zh", "nb": "no", "nn": "no"}
_CLD2_CODES = frozenset(
    _CLD2_ALIASES.get(str(code).lower(), str(code).lower()) for _, code in pycld2.LANGUAGES
)


def clean_text(text: str) -> str:
    """The part of a message that is language: no URLs, @handles, emoji, `#` or bidi marks.

    Hashtag words stay (`#ServicioPésimo` is Spanish), `_` read as a space; every character
    that is not a letter, mark, digit, punctuation or space goes (emoji, symbols, ZWJ,
    variation selectors, bidi controls), so that only words reach the detector.
    """
    # Both patterns are costly to search on every message, and most messages have neither a
    # link (which needs "/" or "www.") nor a handle (which needs "@").
    if "/" in text or "www." in text.lower():
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _MENTION.sub(" ", text)
    return " ".join(text.translate(_WORD_CHARACTERS).split())


def _letters_and_script(
    text: str, languages: frozenset[str], share: float | None
) -> tuple[int, str | None]:
    """How many letters `text` has, and the configured language its script proves.

    Japanese needs kana (Han alone is shared with Chinese); Han letters then count towards
    it. With several such scripts, the one with the most letters decides.
    """
    if text.isascii():
        return len(text.translate(_ASCII_NON_LETTERS)), None
    letters = len(_LETTER.findall(text))
    if share is None or not letters:
        return letters, None
    best, best_count = None, 0
    for language, pattern in _SCRIPTS:
        if language in languages:
            count = len(pattern.findall(text))
            if language == "ja" and count:
                count += len(_HAN.findall(text))
            if count > best_count:
                best, best_count = language, count
    ratio = best_count / letters
    proven = ratio > 0.5 or (best_count >= SCRIPT_MIN_LETTERS and ratio >= share)
    return letters, best if proven else None


def script_language(
    text: str, languages: Iterable[str], share: float = DEFAULT_SCRIPT_SHARE
) -> str | None:
    """The configured language that `text`'s script alone proves, or None."""
    return _letters_and_script(text, frozenset(languages), share)[1]


class LanguageDetector:
    """Detects the language of one message; built once, then called for every message.

    `languages`: the ISO 639-1 codes it may answer (the brand's supported languages,
    `CASEWIRE_LANGUAGES`); an unknown code fails here, at start-up, not on a message.
    CLD2 keeps no state between calls, so one instance serves all requests and threads.
    `script_share=None` turns the script shortcuts off.
    """

    def __init__(
        self,
        languages: Iterable[str] = DEFAULT_LANGUAGES,
        *,
        min_letters: int = DEFAULT_MIN_LETTERS,
        min_percent: int = DEFAULT_MIN_PERCENT,
        script_share: float | None = DEFAULT_SCRIPT_SHARE,
    ) -> None:
        codes = sorted({code.strip().lower() for code in languages if code.strip()})
        if not codes:
            raise ValueError("no languages configured for language detection")
        unknown = [code for code in codes if len(code) != 2 or code not in _CLD2_CODES]
        if unknown:
            raise ValueError(f"language code(s) CLD2 cannot detect: {', '.join(unknown)}")
        self.languages: frozenset[str] = frozenset(codes)
        self.min_letters = min_letters
        self.min_percent = min_percent
        self.script_share = script_share

    def detect(self, text: str) -> str | None:
        """ISO 639-1 code of `text`'s language, or None when there is no reliable answer."""
        cleaned = clean_text(text)
        letters, certain = _letters_and_script(cleaned, self.languages, self.script_share)
        if certain:
            return certain
        if letters < self.min_letters:
            return None
        try:
            _, _, details = pycld2.detect(cleaned, isPlainText=True, bestEffort=True)
        except pycld2.error:  # invalid UTF-8; clean_text leaves none, kept as a safety net
            return None
        for _, cld2_code, percent, _ in details:
            code = str(cld2_code).lower()
            code = _CLD2_ALIASES.get(code, code)
            if code in self.languages:
                return code if int(percent) >= self.min_percent else None
        return None

    __call__ = detect


@lru_cache(maxsize=8)
def _shared(languages: tuple[str, ...]) -> LanguageDetector:
    return LanguageDetector(languages)


def detect_language(text: str, languages: Iterable[str] | None = None) -> str | None:
    """`LanguageDetector.detect` with one detector per language set, built once and reused."""
    key = DEFAULT_LANGUAGES if languages is None else tuple(sorted(set(languages)))
    return _shared(key).detect(text)
