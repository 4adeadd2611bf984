"""Saying what a speedup did: the warnings fastnlp gives when a speedup cannot help, or cannot take effect.

What was applied is recorded in the model's lineage (:mod:`fastnlp.core.lineage`).
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["FlavourWarning", "NoEffectWarning", "SpeedupWarning", "warn", "warn_no_effect"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SpeedupWarning(UserWarning):
    """A speedup was applied as asked, but this machine is unlikely to run it faster."""


class FlavourWarning(UserWarning):
    """The result is a tf_keras model although a Keras 3 model was given (tfmot exists only for tf_keras)."""


class NoEffectWarning(SpeedupWarning):
    """A speedup could not take effect here; the model came back as an unchanged copy."""


def warn(message: str, category: type[Warning] = SpeedupWarning) -> None:
    """``warnings.warn(message, category)``, pointing at the first caller outside fastnlp (the user's line),
    however deep inside fastnlp the warning is raised.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn("slow here")
        >>> caught[0].filename.endswith("notices.py")
        False
    """
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def warn_no_effect(transform: str, reason: str) -> None:
    """Warn that ``transform`` returned an unchanged copy, and why."""
    warn(f"{transform}: no effect, returning an unchanged copy: {reason}", NoEffectWarning)
