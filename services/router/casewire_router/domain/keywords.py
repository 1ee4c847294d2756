"""Unicode-aware keyword matching whose cost does not grow with the number of keywords.

Text and keywords are folded the same way: NFKC, case-folded, accents and Arabic
diacritics/tatweel removed. Keywords in scripts that separate words with spaces match
whole words only; keywords in scripts that do not (Thai, Lao, Khmer, Myanmar, Chinese,
Japanese) match anywhere. One Aho-Corasick automaton finds every keyword in one pass (of
several tagged keyword lists too: `TaggedKeywordMatcher`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

import ahocorasick

_TATWEEL = "\u0640"
_BIDI_CONTROLS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _keeps_marks(char: str) -> bool:
    """Indic and Southeast Asian vowel signs are letters of the word, not accents."""
    code = ord(char)
    return 0x0900 <= code <= 0x0DFF or 0x0E00 <= code <= 0x0EFF or 0x1000 <= code <= 0x109F


class _Ignored(dict[int, int | None]):
    """A `str.translate` table that drops what folding ignores (bidi controls, tatweel,
    accents), filled as characters are first seen: one C-speed pass per text. Its size is
    bounded: text made of every character there is must not grow it without end."""

    _LIMIT = 65_536

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        ignored = (
            char == _TATWEEL
            or char in _BIDI_CONTROLS
            or (unicodedata.category(char) == "Mn" and not _keeps_marks(char))
        )
        value = None if ignored else code
        if len(self) < self._LIMIT:
            self[code] = value
        return value


_IGNORED = _Ignored()


def fold(text: str) -> str:
    """The form in which keywords are compared: NFKC, case-folded, without accents."""
    if text.isascii():
        return text.lower()  # NFKC and NFD leave ASCII as it is; its case folding is lower()
    # Bidi controls are dropped with the accents: neither case folding nor decomposition
    # touches them, and NFC reorders the marks they separated as if they were never there.
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    return unicodedata.normalize("NFC", decomposed.translate(_IGNORED))


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
            self._automaton.add_word(folded, (folded, _whole_word(folded)))
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
        for end, (keyword, whole_word) in self._automaton.iter(folded):
            if keyword not in found and (not whole_word or _stands_alone(folded, keyword, end)):
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
            self._automaton.add_word(folded, (folded, _whole_word(folded), tuple(sorted(tags))))
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
        for end, (keyword, whole_word, tags) in self._automaton.iter(folded):
            if keyword in seen or (whole_word and not _stands_alone(folded, keyword, end)):
                continue
            seen.add(keyword)
            for tag in tags:
                found.setdefault(tag, set()).add(keyword)
        return found


def _whole_word(folded_keyword: str) -> bool:
    """Whether a keyword must match whole words: not if it has a script written unspaced."""
    return not any(_unspaced(char) for char in folded_keyword)


def _stands_alone(folded: str, keyword: str, end: int) -> bool:
    """Whether the keyword found ending at `end` is not part of a longer word."""
    start = end - len(keyword) + 1
    before = folded[start - 1] if start > 0 else " "
    after = folded[end + 1] if end + 1 < len(folded) else " "
    return not (
        (_is_word_char(before) and _is_word_char(keyword[0]))
        or (_is_word_char(after) and _is_word_char(keyword[-1]))
    )
