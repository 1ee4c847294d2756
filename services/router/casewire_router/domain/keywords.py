"""Unicode-aware keyword matching whose cost does not grow with the number of keywords.

Text and keywords are folded the same way: NFKC, case-folded, accents and Arabic
diacritics/tatweel removed. Keywords in scripts that separate words with spaces match
whole words only; keywords in scripts that do not (Thai, Lao, Khmer, Myanmar, Chinese,
Japanese) match anywhere. One Aho-Corasick automaton finds every keyword in one pass.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

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
            whole_word = not any(_unspaced(char) for char in folded)
            self._automaton.add_word(folded, (folded, whole_word))
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
            if keyword in found:
                continue
            if whole_word:
                start = end - len(keyword) + 1
                before = folded[start - 1] if start > 0 else " "
                after = folded[end + 1] if end + 1 < len(folded) else " "
                if (_is_word_char(before) and _is_word_char(keyword[0])) or (
                    _is_word_char(after) and _is_word_char(keyword[-1])
                ):
                    continue
            found.add(keyword)
        return found
