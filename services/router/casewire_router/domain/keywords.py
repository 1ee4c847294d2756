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
_BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)


def _keeps_marks(char: str) -> bool:
    """Indic and Southeast Asian vowel signs are letters of the word, not accents."""
    code = ord(char)
    return 0x0900 <= code <= 0x0DFF or 0x0E00 <= code <= 0x0EFF or 0x1000 <= code <= 0x109F


def fold(text: str) -> str:
    """The form in which keywords are compared: NFKC, case-folded, without accents."""
    text = unicodedata.normalize("NFKC", text).translate(_BIDI_CONTROLS).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    kept = [
        char
        for char in decomposed
        if char != _TATWEEL and (unicodedata.category(char) != "Mn" or _keeps_marks(char))
    ]
    return unicodedata.normalize("NFC", "".join(kept))


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
        if not self.keywords:
            return set()
        folded = fold(text)
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
