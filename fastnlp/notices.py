"""Saying what a speedup did: warnings when it cannot help, and a record of what was applied."""

from __future__ import annotations

import warnings
import weakref
from typing import Any

__all__ = ["FlavourWarning", "NoEffectWarning", "SpeedupWarning", "applied_speedups", "record_applied", "warn_no_effect"]


class SpeedupWarning(UserWarning):
    """A speedup was applied as asked, but this machine is unlikely to run it faster."""


class FlavourWarning(UserWarning):
    """The result is a tf_keras model although a Keras 3 model was given (tfmot exists only for tf_keras)."""


class NoEffectWarning(SpeedupWarning):
    """A speedup could not take effect here; the model came back as an unchanged copy."""


_APPLIED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def warn_no_effect(transform: str, reason: str) -> None:
    """Warn that ``transform`` returned an unchanged copy, and why."""
    warnings.warn(f"{transform}: no effect, returning an unchanged copy: {reason}", NoEffectWarning, stacklevel=3)


def record_applied(model: Any, entry: str, source: Any = None) -> None:
    """Note on ``model`` that ``entry`` was applied, after whatever had been applied to ``source``."""
    previous = _APPLIED.get(source, ()) if source is not None else ()
    _APPLIED[model] = (*previous, entry)


def applied_speedups(model: Any) -> tuple[str, ...]:
    """What fastnlp applied to make ``model``, in order (empty for a model it did not make).

    Args:
        model: any model.

    Returns:
        One entry per speedup, e.g. ``'set_steps_per_execution(steps=8)'``; an entry ending in
        ``': no effect'`` names a speedup that could not take effect and returned an unchanged copy.

    Raises:
        TypeError: ``model`` is not an object a model could be (None, a number, a str).

    Examples:
        >>> from fastnlp import build_lstm
        >>> applied_speedups(build_lstm(10, units=4, num_layers=1, speedups=["enable_mixed_precision"]))[0][:24]
        'enable_mixed_precision(p'
    """
    try:
        return _APPLIED.get(model, ())
    except TypeError:  # None, a number, a str: no weak reference to them ("cannot create weak reference")
        raise TypeError(f"applied_speedups expects a Keras model, got {type(model).__name__}") from None
