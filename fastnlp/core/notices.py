"""Saying what a speedup did: the warnings fastnlp gives when a speedup cannot help, or cannot take effect.

What was applied is recorded in the model's lineage (:mod:`fastnlp.core.lineage`).
"""

from __future__ import annotations

import warnings

__all__ = ["FlavourWarning", "NoEffectWarning", "SpeedupWarning", "warn_no_effect"]


class SpeedupWarning(UserWarning):
    """A speedup was applied as asked, but this machine is unlikely to run it faster."""


class FlavourWarning(UserWarning):
    """The result is a tf_keras model although a Keras 3 model was given (tfmot exists only for tf_keras)."""


class NoEffectWarning(SpeedupWarning):
    """A speedup could not take effect here; the model came back as an unchanged copy."""


def warn_no_effect(transform: str, reason: str, stacklevel: int = 3) -> None:
    """Warn that ``transform`` returned an unchanged copy, and why (``stacklevel`` 3: the caller's caller)."""
    warnings.warn(f"{transform}: no effect, returning an unchanged copy: {reason}", NoEffectWarning, stacklevel=stacklevel)
