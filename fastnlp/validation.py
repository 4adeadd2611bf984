"""Argument checks shared by the public functions, with messages that name the argument."""

from __future__ import annotations

from typing import Any

__all__ = ["check_positive_int"]


def check_positive_int(**values: Any) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer.

    Examples:
        >>> check_positive_int(units=8, seq_len=0)
        Traceback (most recent call last):
        ...
        ValueError: seq_len must be a positive integer, got 0
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
