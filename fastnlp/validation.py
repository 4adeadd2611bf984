"""Argument checks shared by the public functions, with messages that name the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_positive_int", "check_positive_number"]


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
