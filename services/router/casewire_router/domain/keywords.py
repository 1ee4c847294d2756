"""Unicode-aware keyword matching whose cost does not grow with the number of keywords.

Text and keywords are folded the same way: NFKC, case-folded, accents and Arabic
diacritics/tatweel removed, invisible format characters (zero-width spaces and joiners, soft
hyphens, bidi controls) dropped, typographic apostrophes (’ ‘ ʼ) read as `'`, and the Thai
`เเ` typed for `แ` read as `แ`. Keywords in scripts that separate words with spaces match
whole words only (a neighbouring letter of an unspaced script does not make them part of a
longer word: "ในshopeeแล้ว" holds "shopee"); keywords in scripts that do not (Thai, Lao,
Khmer, Myanmar, Chinese, Japanese) match anywhere, except that a Thai keyword does not
match in the middle of a syllable (after a leading vowel: "ล่ม" is not found in "เล่ม").
One Aho-Corasick automaton finds every keyword in one pass (of several tagged keyword lists
too: `TaggedKeywordMatcher`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping

import ahocorasick

_TATWEEL = "\u0640"
# Typed for an apostrophe by phone keyboards and word processors ("isn’t working").
_APOSTROPHES = "\u2019\u2018\u02bc\u2032"
# Thai vowels written before the consonant they follow: a syllable never starts after one.
_THAI_LEADING_VOWELS = "\u0e40\u0e41\u0e42\u0e43\u0e44"
_THAI_SARA_E_TWICE, _THAI_SARA_AE = "\u0e40\u0e40", "\u0e41"


def _keeps_marks(char: str) -> bool:
    """Indic and Southeast Asian vowel signs are letters of the word, not accents."""
    code = ord(char)
    return 0x0900 <= code <= 0x0DFF or 0x0E00 <= code <= 0x0EFF or 0x1000 <= code <= 0x109F


class _Ignored(dict[int, int | None]):
    """A `str.translate` table that drops what folding ignores (invisible format characters,
    tatweel, accents) and reads typographic apostrophes as `'`, filled as characters are first
    seen: one C-speed pass per text. Its size is bounded: text made of every character there
    is must not grow it without end."""

    _LIMIT = 65_536

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        category = unicodedata.category(char)
        ignored = (
            char == _TATWEEL
            or category == "Cf"  # zero-width space/joiners, soft hyphen, bidi controls, BOM
            or (category == "Mn" and not _keeps_marks(char))
        )
        value = ord("'") if char in _APOSTROPHES else None if ignored else code
        if len(self) < self._LIMIT:
            self[code] = value
        return value


_IGNORED = _Ignored()


def fold(text: str) -> str:
    """The form in which keywords are compared (see the module's docstring)."""
    if text.isascii():
        return text.lower()  # NFKC and NFD leave ASCII as it is; its case folding is lower()
    # Format characters are dropped with the accents: neither case folding nor decomposition
    # touches them, and NFC reorders the marks they separated as if they were never there.
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    folded = unicodedata.normalize("NFC", decomposed.translate(_IGNORED))
    if _THAI_SARA_E_TWICE in folded:
        folded = folded.replace(_THAI_SARA_E_TWICE, _THAI_SARA_AE)
    return folded


def _unspaced(char: str) -> bool:
    code = ord(char)
    return (
        0x0E00 <= code <= 0x0EFF  # Thai, Lao
        or 0x1000 <= code <= 0x109F  # Myanmar
        or 0x1780 <= code <= 0x17FF  # Khmer
        or 0x3040 <= code <= 0x30FF  # Hiragana, Katakana
        or 0x3400 <= code <= 0x9FFF  # CJK
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
    )


def _is_word_char(char: str) -> bool:
    return char.isalnum() or unicodedata.category(char) in {"Mn", "Mc"} or char == "_"


class KeywordMatcher:
    """Finds which of a fixed set of keywords occur in a text."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self._automaton = ahocorasick.Automaton()
        self.keywords: set[str] = set()
        for keyword in keywords:
            folded = fold(keyword).strip()
            if not folded or folded in self.keywords:
                continue
            self.keywords.add(folded)
            self._automaton.add_word(folded, (folded, _boundary_check(folded)))
        if self.keywords:
            self._automaton.make_automaton()

    def find(self, text: str) -> set[str]:
        """The folded keywords that occur in `text`."""
        return self.find_folded(fold(text))

    def find_folded(self, folded: str) -> set[str]:
        """The keywords that occur in a text already folded with `fold`: several matchers
        can share one folding of the same text."""
        if not self.keywords:
            return set()
        found: set[str] = set()
        for end, (keyword, fits) in self._automaton.iter(folded):
            if keyword not in found and (fits is None or fits(folded, keyword, end)):
                found.add(keyword)
        return found


class TaggedKeywordMatcher:
    """Several keyword lists, each under a tag, searched in one pass over the text: a keyword
    in several lists is found for each of their tags. What it finds under a tag is exactly
    what a `KeywordMatcher` of that tag's list would find."""

    def __init__(self, keywords_by_tag: Mapping[str, Iterable[str]]) -> None:
        tags_of: dict[str, set[str]] = {}
        for tag, keywords in keywords_by_tag.items():
            for keyword in keywords:
                folded = fold(keyword).strip()
                if folded:
                    tags_of.setdefault(folded, set()).add(tag)
        self.tags = frozenset(keywords_by_tag)
        self._automaton = ahocorasick.Automaton()
        for folded, tags in tags_of.items():
            self._automaton.add_word(folded, (folded, _boundary_check(folded), tuple(sorted(tags))))
        if tags_of:
            self._automaton.make_automaton()
        self._empty = not tags_of

    def find_folded(self, folded: str) -> dict[str, set[str]]:
        """The keywords that occur in a text already folded with `fold`, by tag (a tag with
        none found is absent)."""
        found: dict[str, set[str]] = {}
        if self._empty:
            return found
        seen: set[str] = set()
        for end, (keyword, fits, tags) in self._automaton.iter(folded):
            if keyword in seen or (fits is not None and not fits(folded, keyword, end)):
                continue
            seen.add(keyword)
            for tag in tags:
                found.setdefault(tag, set()).add(keyword)
        return found


# Whether the keyword found ending at an index of a folded text is where it may be found.
BoundaryCheck = Callable[[str, str, int], bool]


def _boundary_check(folded_keyword: str) -> BoundaryCheck | None:
    """How a keyword must sit in the text: whole words for scripts written with spaces,
    whole Thai syllables for Thai, anywhere (None) for the other unspaced scripts."""
    if not any(_unspaced(char) for char in folded_keyword):
        return _stands_alone
    if _THAI_CONSONANTS_START <= folded_keyword[0] <= _THAI_CONSONANTS_END:
        return _starts_a_thai_syllable
    return None


_THAI_CONSONANTS_START, _THAI_CONSONANTS_END = "\u0e01", "\u0e2e"


def _glues(char: str) -> bool:
    """Whether `char` next to a spaced-script keyword makes it part of a longer word (a
    letter of an unspaced script does not: Thai writes "ในshopeeแล้ว" without spaces)."""
    return _is_word_char(char) and not _unspaced(char)


def _stands_alone(folded: str, keyword: str, end: int) -> bool:
    """Whether the keyword found ending at `end` is not part of a longer word."""
    start = end - len(keyword) + 1
    before = folded[start - 1] if start > 0 else " "
    after = folded[end + 1] if end + 1 < len(folded) else " "
    return not (
        (_glues(before) and _is_word_char(keyword[0]))
        or (_glues(after) and _is_word_char(keyword[-1]))
    )


def _starts_a_thai_syllable(folded: str, keyword: str, end: int) -> bool:
    """Whether a Thai keyword that begins with a consonant is not found right after a leading
    vowel, which belongs to that consonant: "ล่ม" (down) is not in "เล่ม" (a volume)."""
    start = end - len(keyword) + 1
    return start == 0 or folded[start - 1] not in _THAI_LEADING_VOWELS
