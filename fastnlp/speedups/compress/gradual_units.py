"""Gradual structured pruning: silence whole units step by step while the model trains, then remove them.

The structured counterpart of :func:`fastnlp.prune`'s polynomial schedule: every ``frequency`` steps
the units with the smallest weights (:func:`fastnlp.prune_units`'s ``"magnitude"``) are silenced,
more of them as training goes on, until ``fraction`` of each removable layer's units are; the rest
of the network learns to do without them. Silenced units have every weight they own or feed at zero,
so removing them at the end (:meth:`UnitPruning.pruned_model`) changes no output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours
from fastnlp.core.validation import check_fraction, check_non_negative_int, check_positive_int
from fastnlp.speedups.compress.unit_groups import UnitPlan, unit_groups, weight_axes
from fastnlp.speedups.compress.units import prune_units, unit_scores, units_kept

__all__ = ["UnitPruning", "prune_units_gradually"]


def prune_units_gradually(model: Any, fraction: float = 0.5, *, end_step: int, begin_step: int = 0, frequency: int = 10) -> Any:
    """A callback for ``model.fit`` that silences ``fraction`` of each removable layer's hidden units by
    ``end_step``; its ``pruned_model()`` then returns the smaller model without them.

    The share silenced rises as tfmot's polynomial schedule does (fast at first, then slower) from
    ``begin_step`` to ``end_step``, updated every ``frequency`` optimizer steps; between updates the
    silenced weights are held at zero after every step. Fit past ``end_step`` to fine-tune what is left.

    Args:
        model: the Sequential or functional model you will fit, Keras 3 or tf_keras.
        fraction: the share of each removable layer's units to remove, in [0, 1).
        end_step: the optimizer step by which ``fraction`` is silenced.
        begin_step: the first step that silences units.
        frequency: optimizer steps between updates of which units are silenced.

    Returns:
        A ``Callback`` of ``model``'s flavour with ``pruned_model()`` and ``silenced`` (units per layer).

    Raises:
        ValueError: a value out of range, or ``end_step`` not after ``begin_step``.

    Examples:
        >>> import numpy as np
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(20, units=8, num_layers=2, seq_len=6)
        >>> pruning = prune_units_gradually(model, 0.5, end_step=4, frequency=2)
        >>> x = np.random.default_rng(0).integers(0, 20, (16, 6))
        >>> _ = model.fit(x, x, batch_size=4, epochs=2, verbose=0, callbacks=[pruning])
        >>> [layer.units for layer in pruning.pruned_model().layers if "lstm" in layer.name]
        [4, 4]
    """
    check_fraction("fraction", fraction)
    check_non_negative_int(begin_step=begin_step)
    check_positive_int(end_step=end_step, frequency=frequency)
    if end_step <= begin_step:
        raise ValueError(f"end_step ({end_step}) must come after begin_step ({begin_step})")
    flavours.check_rebuildable(model)
    return flavours.callback_class(UnitPruning, flavours.detect(model))(fraction, begin_step, end_step, frequency)


class UnitPruning:
    """Callback hooks (see :func:`prune_units_gradually`): silences units on a schedule, then removes them."""

    def __init__(self, fraction: float, begin_step: int, end_step: int, frequency: int) -> None:
        super().__init__()
        self.fraction, self.begin_step, self.end_step, self.frequency = fraction, begin_step, end_step, frequency
        self._plan: UnitPlan | None = None
        self._silent: dict[int, np.ndarray] = {}  # group -> indices of its silenced units
        self._masks: dict[str, list[np.ndarray]] = {}  # layer name -> a 0/1 mask per weight, for the silenced units

    @property
    def silenced(self) -> dict[str, int]:
        """Units silenced so far, by layer name (``name/forward`` and ``name/backward`` in a ``Bidirectional``)."""
        if self._plan is None:
            return {}
        return {
            f"{name}/{direction}" if direction else name: len(indices)
            for group, indices in self._silent.items()
            for name, direction in self._plan.groups[group].members
        }

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._plan is None:
            self._plan = unit_groups(self.model)
            self._silent = {group: np.array([], "int64") for group in self._plan.removable()}

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if self.begin_step <= step <= self.end_step and (step - self.begin_step) % self.frequency == 0:
            self._silence_more(step)
        for layer in self.model.layers:  # the optimizer moved them: back to zero
            masks = self._masks.get(layer.name)
            if masks is not None:
                layer.set_weights([weight * mask for weight, mask in zip(layer.get_weights(), masks, strict=True)])

    def pruned_model(self) -> Any:
        """The fitted model without its silenced units (:func:`fastnlp.prune_units`, which records them)."""
        if self._plan is None:
            raise ValueError("fit the model with this callback first: no unit is silenced yet")
        counts = {
            next(name for name, _ in self._plan.groups[group].members): self._plan.groups[group].size - len(indices)
            for group, indices in self._silent.items()
            if len(indices)
        }
        return prune_units(self.model, units=counts)  # silenced units weigh exactly 0: "magnitude" takes them

    def _silence_more(self, step: int) -> None:
        progress = (step - self.begin_step) / (self.end_step - self.begin_step)
        share = 1 - (1 - progress) ** 3  # of the units to remove in the end, as prune_units(fraction) counts them
        scores = unit_scores(self.model, self._plan, "magnitude")
        for group, silent in self._silent.items():
            size = self._plan.groups[group].size
            wanted = round((size - units_kept(size, self.fraction)) * share)
            if wanted > len(silent):
                taken = set(silent.tolist())
                ranked = [j for j in np.argsort(scores[group], kind="stable") if j not in taken]
                self._silent[group] = np.sort(np.concatenate([silent, np.asarray(ranked[: wanted - len(silent)], "int64")]))
        kept = {
            group: np.setdiff1d(np.arange(self._plan.groups[group].size), silent)
            for group, silent in self._silent.items()
            if len(silent)
        }
        self._masks = {}
        for layer in self.model.layers:
            axes = weight_axes(layer, self._plan, kept)
            if axes is not None:
                self._masks[layer.name] = [_mask(weight.shape, index) for weight, index in zip(layer.get_weights(), axes, strict=True)]


def _mask(shape: tuple[int, ...], index: tuple) -> np.ndarray:
    """Ones where every axis's index is kept (``None``: all of that axis), zeros elsewhere."""
    mask = np.ones(shape, "float32")
    for axis, kept in enumerate(index):
        if kept is not None:
            along = np.zeros(shape[axis], "float32")
            along[kept] = 1.0
            mask = mask * along.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return mask
