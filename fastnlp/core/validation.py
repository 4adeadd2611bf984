"""Argument checks shared by the public functions, with messages that name the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "check_bool", "check_callable", "check_fraction", "check_mapping", "check_non_negative_int", "check_non_negative_number",
    "check_positive_int",
    "check_positive_number", "checked_list", "checked_path",
]


def check_positive_int(**values: Any) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive integer (NumPy's count).

    Examples:
        >>> import numpy as np
        >>> check_positive_int(units=np.int64(8))
        >>> check_positive_int(units=8, seq_len=0)
        Traceback (most recent call last):
        ...
        ValueError: seq_len must be a positive integer, got 0
    """
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or type(value).__name__ == "bool_" or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_number(**values: Any) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive finite number.

    Examples:
        >>> check_positive_number(budget_s=37, seconds=float("inf"))
        Traceback (most recent call last):
        ...
        ValueError: seconds must be a positive finite number, got inf
    """
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 < value < math.inf:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_non_negative_int(**values: Any) -> None:
    """Raise ``ValueError`` naming the first argument that is not an integer >= 0.

    Examples:
        >>> check_non_negative_int(seed=-1)
        Traceback (most recent call last):
        ...
        ValueError: seed must be a non-negative integer, got -1
    """
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or type(value).__name__ == "bool_" or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_fraction(name: str, value: Any, *, include_zero: bool = True, include_one: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number in [0, 1) (ends as asked).

    Examples:
        >>> check_fraction("dropout", 1.0)
        Traceback (most recent call last):
        ...
        ValueError: dropout must be a number in [0, 1), got 1.0
    """
    interval = f"{'[' if include_zero else '('}0, 1{']' if include_one else ')'}"
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (0 <= value if include_zero else 0 < value)
    if not ok or not (value <= 1 if include_one else value < 1):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def check_bool(**values: Any) -> None:
    """Raise ``TypeError`` naming the first argument that is not True or False.

    Examples:
        >>> check_bool(drop_remainder="yes")
        Traceback (most recent call last):
        ...
        TypeError: drop_remainder must be True or False, got 'yes'
    """
    for name, value in values.items():
        if not isinstance(value, bool) and type(value).__name__ != "bool_":
            raise TypeError(f"{name} must be True or False, got {value!r}")


def check_callable(**values: Any) -> None:
    """Raise ``TypeError`` naming the first argument that is neither None nor callable."""
    for name, value in values.items():
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be a function (or None), got {type(value).__name__}")


def checked_path(name: str, value: Any) -> str:
    """``value`` as a path string, or ``TypeError`` naming ``name`` (bytes paths are refused: they may not be text).

    Examples:
        >>> checked_path("path", 3)
        Traceback (most recent call last):
        ...
        TypeError: path must be a file path (str or os.PathLike), got int
    """
    import os

    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        got = repr(value) if isinstance(value, str) else type(value).__name__
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {got}")
    return value


def check_mapping(name: str, value: Any) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is None or a mapping."""
    from collections.abc import Mapping

    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict (or None), got {type(value).__name__}")


def checked_list(name: str, value: Any, item_type: type | tuple[type, ...], what: str) -> list:
    """``value`` as a list of ``item_type`` items, or ``TypeError`` naming ``name`` and saying ``what`` it should be."""
    from collections.abc import Iterable

    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    items = list(value)
    wrong = [item for item in items if not isinstance(item, item_type) or isinstance(item, bool)]
    if wrong:
        raise TypeError(f"{name} must be {what}; it holds {wrong[0]!r}")
    return items


def check_non_negative_number(**values: Any) -> None:
    """Raise ``ValueError`` naming the first argument that is not a finite number >= 0.

    Examples:
        >>> check_non_negative_number(min_gain=float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: min_gain must be a non-negative finite number, got nan
    """
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
