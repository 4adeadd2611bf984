"""The written list of speedups, and the plan that applies them in order.

Every model transform is declared once, with :func:`fastnlp.core.registry.speedup`, in one of the
modules imported here; :func:`transforms` lists them in application order (see
:mod:`fastnlp.core.registry` for why the stages run in that order) and :func:`plan` resolves a
``speedups=[...]`` list against them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastnlp.core import registry
from fastnlp.core.registry import Transform
from fastnlp.speedups import compile_options, gpu, hoisting, precision
from fastnlp.speedups.compress import pruning, quantization, units
from fastnlp.speedups.parallel import distribute

__all__ = ["SPEEDUP_MODULES", "plan", "transforms"]

#: The modules that declare speedups, one per family.
SPEEDUP_MODULES = (gpu, hoisting, precision, units, pruning, quantization, distribute, compile_options)


def transforms() -> tuple[Transform, ...]:
    """Every registered transform, in application order.

    Examples:
        >>> [t.name for t in transforms()][:4]
        ['enable_cudnn', 'hoist_lstm_projection', 'prune_units', 'enable_mixed_precision']
    """
    return registry.model_transforms()


def plan(speedups: Iterable[Any]) -> list[tuple[Transform, dict]]:
    """Resolve speedups (functions, names, or ``functools.partial`` with options) into application order.

    Raises:
        ValueError: an unknown name, the same speedup twice, or two speedups that cannot be combined.
        TypeError: ``speedups`` is not a list of speedups.

    Examples:
        >>> [t.name for t, kwargs in plan(["enable_mixed_precision"])]
        ['enable_mixed_precision']
    """
    return registry.plan(speedups, transforms())
