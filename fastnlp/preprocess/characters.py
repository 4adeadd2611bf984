"""Which characters are digits, punctuation and whitespace, and what each becomes: one table, two engines.

The Python engine applies these tables with :meth:`str.translate`; the TensorFlow engine gathers from
the same tables as integer arrays. Both are built from this Python's :mod:`unicodedata`, so the two
engines agree on every character, whatever Unicode version TensorFlow's own libraries know.

* digit: Unicode category ``Nd`` (what Python's ``re`` calls ``\\d``);
* punctuation: Unicode categories ``P*`` (``，`` ``。`` ``、`` ``«`` ``¿`` ...) and every character of
  ASCII :data:`string.punctuation`, which includes the symbols ``$+<=>^`|~``;
* whitespace: what :meth:`str.isspace` accepts (what :meth:`str.split` splits on);
* lowercase: a character's lowercase when that is one character (``Ä`` → ``ä``, ``Σ`` → ``σ``);
  ``İ`` becomes ``i``. Unlike :meth:`str.lower`, this never looks at neighbouring characters.
"""

from __future__ import annotations

import functools
import string
import sys
import unicodedata

import numpy as np

__all__ = ["DELETE", "CharacterMap", "character_map", "is_digit", "is_punctuation", "is_whitespace", "token_classes",
           "word_and_space_points", "WORD", "SPACE", "OTHER"]

#: The table value of a character that is removed.
DELETE = -1


def is_digit(char: str) -> bool:
    """A decimal digit of any script (category ``Nd``)."""
    return unicodedata.category(char) == "Nd"


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (``P*``) or an ASCII :data:`string.punctuation` character."""
    return unicodedata.category(char).startswith("P") or char in string.punctuation


def is_whitespace(char: str) -> bool:
    """What :meth:`str.split` splits on."""
    return char.isspace()


def _lowercase(char: str) -> str:
    lower = char.lower()
    return lower if len(lower) == 1 else lower[0]  # only U+0130 (İ -> i + combining dot) is longer


@functools.cache
def _classes() -> dict[str, tuple[int, ...]]:
    """Code points of each class, and those that lowercase to another character (one pass, ~1 s)."""
    found: dict[str, list[int]] = {"digit": [], "punctuation": [], "whitespace": [], "cased": [], "word": []}
    for c in range(sys.maxunicode + 1):
        char = chr(c)
        category = unicodedata.category(char)
        if category == "Nd":
            found["digit"].append(c)
        elif category.startswith("P") or char in string.punctuation:
            found["punctuation"].append(c)
        elif char.isspace():
            found["whitespace"].append(c)
        if category != "Cs" and _lowercase(char) != char:
            found["cased"].append(c)
        if category[0] in "LMN" or char == "_":
            found["word"].append(c)
    return {name: tuple(points) for name, points in found.items()}


class CharacterMap:
    """What each character becomes: itself, another character, or nothing (:data:`DELETE`).

    ``translation`` serves :meth:`str.translate`; ``array`` is the same map as int32 over code
    points ``0 .. len(array) - 1`` (characters beyond map to themselves), for the TensorFlow engine.
    """

    def __init__(self, changes: dict[int, int]):
        self.changes = changes
        self.translation = {c: (None if to == DELETE else to) for c, to in changes.items()}
        self.array = np.arange(max(changes, default=-1) + 1, dtype=np.int32)
        for c, to in changes.items():
            self.array[c] = to
        ascii_changes = {c: to for c, to in changes.items() if c < 128}
        self.ascii_array = np.arange(128, dtype=np.int16)
        for c, to in ascii_changes.items():
            self.ascii_array[c] = to
        # an ASCII-only text takes this bytes fast path: only ASCII results, else no fast path
        self.ascii_ok = all(to < 128 for to in ascii_changes.values())
        self.ascii_delete = bytes(c for c, to in ascii_changes.items() if to == DELETE)
        self.ascii_table = bytes(
            ascii_changes[c] if ascii_changes.get(c, DELETE) != DELETE else c for c in range(256)
        )

    def apply(self, text: str) -> str:
        """``text`` with every character mapped.

        Examples:
            >>> character_map(lowercase=True, digits="drop", punctuation="drop").apply("Élan, 42 «Ça»!")
            'élan  ça'
        """
        if self.ascii_ok and text.isascii():
            return text.encode("ascii").translate(self.ascii_table, self.ascii_delete).decode("ascii")
        return text.translate(self.translation)


WORD, SPACE, OTHER = 0, 1, 2  # token classes


def word_and_space_points() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Code points of word characters (letters, marks, digits of any script, ``_``) and of whitespace."""
    return _classes()["word"], _classes()["whitespace"]


@functools.cache
def token_classes() -> np.ndarray:
    """Every code point's token class (int8): :data:`WORD`, :data:`SPACE` or :data:`OTHER`."""
    classes = np.full(sys.maxunicode + 1, OTHER, dtype=np.int8)
    classes[list(_classes()["word"])] = WORD
    classes[list(_classes()["whitespace"])] = SPACE
    return classes


@functools.cache
def character_map(
    *, lowercase: bool = False, digits: str = "keep", punctuation: str = "keep", whitespace: str = "keep"
) -> CharacterMap:
    """The map for a combination of steps (built once per combination, then cached).

    Args:
        lowercase: map each character to its one-character lowercase.
        digits: ``"keep"``, ``"drop"``, or ``"zero"`` (every digit becomes ``0``).
        punctuation: ``"keep"`` or ``"drop"``.
        whitespace: ``"keep"`` or ``"space"`` (every whitespace character becomes a space).

    Examples:
        >>> character_map(digits="zero").apply("٣ apples, 4 pears")
        '0 apples, 0 pears'
    """
    for name, value, allowed in (
        ("digits", digits, ("keep", "drop", "zero")),
        ("punctuation", punctuation, ("keep", "drop")),
        ("whitespace", whitespace, ("keep", "space")),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    classes = _classes()
    candidates = set(classes["cased"]) if lowercase else set()
    if whitespace == "space":
        candidates.update(classes["whitespace"])
    if digits != "keep":
        candidates.update(classes["digit"])
    if punctuation == "drop":
        candidates.update(classes["punctuation"])

    def final(char: str) -> int:  # the steps in the blog's order: lowercase, then the rest
        char = _lowercase(char) if lowercase else char
        if whitespace == "space" and is_whitespace(char):
            return ord(" ")
        if digits != "keep" and is_digit(char):
            return DELETE if digits == "drop" else ord("0")
        if punctuation == "drop" and is_punctuation(char):
            return DELETE
        return ord(char)

    changes = {c: to for c in sorted(candidates) if (to := final(chr(c))) != c}
    return CharacterMap(changes)
