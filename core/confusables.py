"""Confusable skeletons (Unicode TR39 §4): two strings that look alike share a skeleton.

The character data is Unicode's confusables.txt as the `confusable_homoglyphs` package ships
it, which lists each character's look-alikes rather than TR39's one prototype per character.
The prototype used here is the look-alike in ASCII when there is one (confusables.txt's
prototypes are ASCII wherever an ASCII look-alike exists), else the smallest code point among
the character and its look-alikes, so the mapping is deterministic.
"""

from __future__ import annotations

import unicodedata
from functools import cache

from confusable_homoglyphs.confusables import confusables_data  # type: ignore[import-untyped]


@cache
def _prototype(character: str) -> str:
    if character.isascii():
        return character
    alikes: list[str] = [entry["c"] for entry in confusables_data.get(character, ())]
    ascii_alikes = [a for a in alikes if a.isascii()]
    if ascii_alikes:
        return min(ascii_alikes)
    return min([character, *alikes])


def skeleton(text: str) -> str:
    """Compatibility-normalised (NFKC), case-folded, each character mapped to its prototype."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    mapped = "".join(_prototype(c) for c in unicodedata.normalize("NFD", folded))
    return unicodedata.normalize("NFD", mapped)
