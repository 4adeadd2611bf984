"""A learning-rate schedule that knows the training budget: warm up, decay, and stop at the end.

A good model within a fixed budget wants a high learning rate early and a small one at the end
(nanoGPT decays to the last iteration; measured here, a linear decay to 10% at the budget beat a
constant rate at equal time). When the budget is seconds, the number of steps is not known in
advance, so :func:`learning_rate_budget` reads its progress from a clock: the seconds spent inside
training steps (the first step's graph tracing included; anything between steps, such as another
callback's evaluation, excluded).
"""

from __future__ import annotations

import time
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core.validation import (
    check_fraction,
    check_positive_int,
    check_positive_number,
)

__all__ = ["LearningRateBudget", "learning_rate_budget", "warmup_decay_factor"]


def warmup_decay_factor(progress: float, warmup_fraction: float = 0.05, final_fraction: float = 0.1) -> float:
    """The fraction of the peak learning rate at ``progress`` (0 to 1) through the budget.

    Linear warm-up from ``final_fraction`` over the first ``warmup_fraction``, then linear decay to
    ``final_fraction`` at the end.

    Examples:
        >>> [round(warmup_decay_factor(p, 0.1, 0.1), 2) for p in (0.0, 0.1, 0.55, 1.0)]
        [0.1, 1.0, 0.55, 0.1]
    """
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup_fraction:
        return final_fraction + (1 - final_fraction) * progress / warmup_fraction
    return 1 - (1 - final_fraction) * (progress - warmup_fraction) / (1 - warmup_fraction)


def learning_rate_budget(
    model: Any,
    *,
    seconds: float | None = None,
    steps: int | None = None,
    warmup_fraction: float = 0.05,
    final_fraction: float = 0.1,
) -> Any:
    """A ``fit`` callback that warms the learning rate up, decays it, and stops training at the budget.

    The peak is the learning rate ``model`` was compiled with. Progress is the larger of the
    fractions of ``seconds`` (time inside training steps) and ``steps`` used; ``fit`` stops when it
    reaches 1, so give ``epochs`` generously. The callback's ``elapsed_s`` and ``steps_done`` tell
    where training stands (other callbacks may read them), and after ``fit`` the optimizer holds
    the peak again.

    The callback schedules the optimizer of the model it is fitted with (a copy a speedup made of
    ``model`` too) and counts optimizer steps, so ``steps_per_execution`` does not stretch a budget of
    steps.

    Args:
        model: the compiled Keras 3 or tf_keras model it will train, or one compiled alike (its
            optimizer's learning rate must be a number, not a schedule).
        seconds: training seconds in the budget.
        steps: training steps in the budget.
        warmup_fraction: share of the budget spent warming up, in ``[0, 1)``.
        final_fraction: the learning rate at the end, as a fraction of the peak, in ``[0, 1]``.

    Returns:
        A callback of ``model``'s flavour.

    Raises:
        ValueError: neither budget, a budget that is not positive, a fraction out of range, an
            uncompiled model or one whose learning rate is already a schedule.

    Examples:
        >>> import numpy as np
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(10, units=4, num_layers=1, learning_rate=0.01)
        >>> budget = learning_rate_budget(model, steps=3)
        >>> x = np.zeros((8, 5), "int32")
        >>> _ = model.fit(x, x, batch_size=2, epochs=10, callbacks=[budget], verbose=0)
        >>> budget.steps_done, round(float(model.optimizer.learning_rate.numpy()), 4)
        (3, 0.01)
    """
    if seconds is None and steps is None:
        raise ValueError("give the budget: seconds=..., steps=..., or both")
    if seconds is not None:
        check_positive_number(seconds=seconds)
    if steps is not None:
        check_positive_int(steps=steps)
    check_fraction("warmup_fraction", warmup_fraction)
    check_fraction("final_fraction", final_fraction, include_one=True)
    flavours.require_compiled(model, "learning_rate_budget sets the optimizer's learning rate")
    _check_numeric_learning_rate(model)

    hooks = flavours.callback_class(LearningRateBudget, flavours.detect(model))
    return hooks(seconds=seconds, steps=steps, warmup_fraction=warmup_fraction, final_fraction=final_fraction)


def _check_numeric_learning_rate(model: Any) -> None:
    """``ValueError`` when ``model``'s optimizer takes its learning rate from a schedule (both flavours)."""
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    scheduled = isinstance(optimizer.get_config().get("learning_rate"), dict)  # a schedule serializes as a dict
    if scheduled or not hasattr(optimizer.learning_rate, "assign"):
        raise ValueError(
            "learning_rate_budget sets the learning rate step by step; compile the model with a number as the "
            f"learning rate, not a schedule ({type(getattr(optimizer, '_learning_rate', optimizer.learning_rate)).__name__})"
        )


class LearningRateBudget:
    """Callback hooks (see :func:`learning_rate_budget`): warm-up and decay of the learning rate over a budget of
    seconds or steps; stops ``fit`` at its end.

    It acts on the model it is fitted with (``self.model``), and counts optimizer steps, so
    ``steps_per_execution`` and a transformed copy of a model are budgeted alike.
    """

    def __init__(self, *, seconds: float | None, steps: int | None, warmup_fraction: float, final_fraction: float) -> None:
        super().__init__()
        self.seconds, self.steps = seconds, steps
        self.warmup_fraction, self.final_fraction = warmup_fraction, final_fraction
        self.elapsed_s, self.steps_done = 0.0, 0
        self._peak: float | None = None

    @property
    def progress(self) -> float:
        """How much of the budget is used, 0 to 1."""
        by_time = self.elapsed_s / self.seconds if self.seconds else 0.0
        return max(by_time, self.steps_done / self.steps if self.steps else 0.0)

    def _optimizer(self) -> Any:
        return getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)

    def _set(self) -> None:
        factor = warmup_decay_factor(self.progress, self.warmup_fraction, self.final_fraction)
        self._optimizer().learning_rate.assign(self._peak * factor)

    def on_train_begin(self, logs: dict | None = None) -> None:
        _check_numeric_learning_rate(self.model)
        self._peak = float(self._optimizer().learning_rate.numpy())
        self._set()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()
        self._iterations = int(self._optimizer().iterations.numpy())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.elapsed_s += time.perf_counter() - self._started
        self.steps_done += max(int(self._optimizer().iterations.numpy()) - self._iterations, 1)
        if self.progress >= 1:
            self.model.stop_training = True
        self._set()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._optimizer().learning_rate.assign(self._peak)
