"""Structured unit pruning: a smaller, dense model with whole LSTM, GRU and hidden Dense units removed.

Magnitude pruning (:func:`fastnlp.prune`) zeroes single weights, so the kernels stay as large and as
slow as before. Removing whole hidden units (Wen et al., "Learning Intrinsic Sparse Structures within
LSTM", ICLR 2018) leaves a regular model with fewer units, which every runtime runs faster: the same
layer types, just narrower, so cuDNN, the hoisted loop and LiteRT's fused LSTM op all still apply.
:mod:`fastnlp.speedups.compress.unit_groups` finds which units go together and where each one's
weights are; this module scores the units, chooses which to keep and re-creates the model without the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours
from fastnlp.core.convert import convert
from fastnlp.core.rebuild import edit_wrapped, rebuild
from fastnlp.core.registry import Applied, NoEffect, speedup
from fastnlp.core.validation import check_fraction
from fastnlp.speedups.compress.unit_groups import UnitPlan, unit_groups, weight_axes

__all__ = ["CRITERIA", "prune_units", "remove_units", "unit_scores", "units_kept"]

#: How :func:`prune_units` ranks units: the norm of each unit's weights, or its mean output times its outgoing weights.
CRITERIA: tuple[str, ...] = ("magnitude", "activation")


@speedup(stage="layer_config")
def prune_units(
    model: Any,
    fraction: float = 0.5,
    *,
    units: Mapping[str, int] | None = None,
    data: Any = None,
    criterion: str = "magnitude",
) -> Applied | NoEffect:
    """A smaller, dense copy of ``model`` with whole hidden units removed; ``model`` is untouched.

    Removing unit *j* of an LSTM or GRU removes its gate columns from the kernel, recurrent kernel and
    bias, its row of the recurrent kernel, and its input row in every layer that consumes it (the next
    RNN, a ``Dense``, ``TimeDistributed``, ``Conv1D``, both directions of a ``Bidirectional``), through
    dropout, pooling over time, ``RepeatVector`` and ``Concatenate``. Units tied together (an encoder
    whose states start a decoder, the two directions of a ``Bidirectional`` merged by sum, an ``Add``)
    are removed together. Units that reach a model output stay, so the output layer keeps its size.
    Fine-tune the result for a few hundred steps to recover quality (docs/compress.md's method card).

    Args:
        model: a Sequential or functional model, Keras 3 or tf_keras (nested models' layers are followed in their
            place: the result is flat).
        fraction: the share of each removable layer's units to remove, in [0, 1); ignored with ``units``.
        units: how many units to keep, by layer name (e.g. ``{"lstm": 128}``); other layers keep theirs.
        data: inputs to run the model on (an array, a list or dict of them, or a ``tf.data.Dataset`` of
            batches) for ``criterion="activation"``.
        criterion: ``"magnitude"``: the norm of the weights each unit owns and feeds (no data needed);
            ``"activation"``: the unit's mean absolute output on ``data`` times the norm of its outgoing weights.

    Returns:
        A new model of the same flavour and layer types, compiled as ``model`` was, with fewer units;
        its lineage records the units kept per layer.

    Raises:
        ValueError: a fraction out of range, an unknown criterion, ``"activation"`` without ``data``, a layer
            name with no removable units (the reason is named), or a unit count out of range.
        TypeError: not a Sequential or functional Keras model, or a layer called more than once (named).

    Examples:
        >>> import keras
        >>> inputs = keras.Input((6,), dtype="int32")
        >>> x = keras.layers.LSTM(16, name="lstm")(keras.layers.Embedding(20, 4)(inputs))
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
        >>> small = prune_units(model, 0.5)
        >>> small.get_layer("lstm").units, small.get_layer("head").units
        (8, 2)
    """
    check_fraction("fraction", fraction)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if criterion == "activation" and data is None:
        raise ValueError("criterion='activation' ranks units by their outputs on data: pass data=inputs")
    if flavours.has_nested_models(model):  # follow units through nested models: a flat copy first
        model = convert(model, flavours.detect(model), inline_models=True)
    plan = unit_groups(model)
    targets = _targets(plan, fraction, units)
    if not targets:
        why = "every removable layer keeps its units" if units is not None or plan.removable() else (
            "no layer has units that can be removed (units that reach a model output, or a layer fastnlp does "
            "not know, stay)"
        )
        return NoEffect(why, f"prune_units(fraction={fraction})")
    scores = unit_scores(model, plan, criterion, data)
    kept = {group: np.sort(np.argsort(-scores[group], kind="stable")[:count]) for group, count in targets.items()}
    result = remove_units(model, plan, kept)
    counts = {name: len(kept[group]) for group in kept for name, _ in plan.groups[group].members}
    described = ", ".join(f"{name}: {plan.groups[group].size}->{len(kept[group])}" for name, group in _named(plan, kept))
    return Applied(result, f"prune_units({described}; {criterion})", units=counts)


def remove_units(model: Any, plan: UnitPlan, kept: Mapping[int, np.ndarray]) -> Any:
    """A copy of ``model`` keeping only the units ``kept`` (indices per group of ``plan``); compiled as ``model`` was."""
    owners = {id(layer): layer.name for layer in model.layers}
    counts = {name: {direction: len(kept[group]) for direction, group in own.items() if group in kept} for name, own in plan.own.items()}

    def edit(layer: Any, config: dict, is_output: bool) -> dict:
        if id(layer) not in owners:
            return config
        new = counts.get(layer.name, {})
        if "" in new:
            return {**config, "units": new[""]}
        sizes = {id(layer.forward_layer): new.get("forward"), id(layer.backward_layer): new.get("backward")} if new else {}

        def inner_edit(inner: Any, inner_config: dict) -> dict:  # built anew for the input it will be called on
            return {**inner_config, "units": sizes.get(id(inner)) or inner.units} if sizes else inner_config

        edited = edit_wrapped(layer, config, inner_edit)
        return {key: _unbuilt(value) if key in ("layer", "backward_layer") else value for key, value in edited.items()}

    def weights(layer: Any) -> list:
        axes = weight_axes(layer, plan, kept) if id(layer) in owners else None
        if axes is None:
            return layer.get_weights()
        return [_taken(weight, index) for weight, index in zip(layer.get_weights(), axes, strict=True)]

    return rebuild(model, edit, weights=weights)


def unit_scores(model: Any, plan: UnitPlan, criterion: str, data: Any = None) -> dict[int, np.ndarray]:
    """A score per unit of each removable group of ``plan`` (higher: more worth keeping) by ``criterion``."""
    if criterion == "magnitude":
        return {group: np.sqrt(total) for group, total in _weight_mass(model, plan).items()}
    outgoing = _weight_mass(model, plan, own=False)
    means = _mean_outputs(model, plan, data)
    return {group: means[group] * np.sqrt(outgoing[group] + 1e-12) for group in outgoing}


def units_kept(size: int, fraction: float) -> int:
    """How many of a layer's ``size`` units stay when ``fraction`` of them are removed (at least one).

    Examples:
        >>> units_kept(512, 0.5), units_kept(5, 0.5), units_kept(4, 0.9)
        (256, 2, 1)
    """
    return max(1, round(size * (1 - fraction)))


def _targets(plan: UnitPlan, fraction: float, units: Mapping[str, int] | None) -> dict[int, int]:
    """Units to keep per group that loses some."""
    if units is None:
        chosen = {group: units_kept(plan.groups[group].size, fraction) for group in plan.removable()}
    else:
        if not isinstance(units, Mapping) or not all(isinstance(n, int) and not isinstance(n, bool) for n in units.values()):
            raise ValueError(f"units must map layer names to unit counts, e.g. {{'lstm': 128}}; got {units!r}")
        chosen = {}
        for name, count in units.items():
            for group in plan.groups_of(name):
                info = plan.groups[group]
                if not info.removable:
                    raise ValueError(f"units of layer {name!r} cannot be removed: {info.why_kept}")
                if not 1 <= count <= info.size:
                    raise ValueError(f"units[{name!r}] must be in [1, {info.size}], got {count}")
                if chosen.get(group, count) != count:
                    raise ValueError(f"layer {name!r} shares its units with {[m for m, _ in info.members]}: give them one count")
                chosen[group] = count
    return {group: count for group, count in chosen.items() if count < plan.groups[group].size}


def _unbuilt(serialized: Any) -> Any:
    """A wrapped layer's serialized form without its build config: Keras 3 would build it for the old input width."""
    if isinstance(serialized, dict) and "build_config" in serialized:
        return {key: value for key, value in serialized.items() if key != "build_config"}
    return serialized


def _named(plan: UnitPlan, kept: Mapping[int, np.ndarray]) -> list[tuple[str, int]]:
    return [(name if not direction else f"{name}/{direction}", group) for group in sorted(kept) for name, direction in plan.groups[group].members]


def _taken(weight: np.ndarray, index: tuple) -> np.ndarray:
    for axis, kept in enumerate(index):
        if kept is not None:
            weight = np.take(weight, kept, axis=axis)
    return weight


def _weight_mass(model: Any, plan: UnitPlan, *, own: bool = True) -> dict[int, np.ndarray]:
    """Per unit of each removable group, the sum of squares of the weights it feeds (its consumers' input
    rows) and, with ``own``, of the weights it owns (its gate columns, recurrent row and biases)."""
    removable = set(plan.removable())
    mass = {group: np.zeros(plan.groups[group].size) for group in removable}
    for layer in model.layers:
        kind = plan.kinds.get(layer.name)
        if kind is None:
            continue
        weights = [np.asarray(w, "float64") ** 2 for w in layer.get_weights()]
        parts = _per_direction(layer, kind, weights)
        if own:
            for direction, group in plan.own.get(layer.name, {}).items():
                if group in removable:
                    mass[group] += _own_mass(parts[direction], plan.gates.get(_gate_key(layer.name, direction), 1))
        offset = 0
        for segment in plan.inputs.get(layer.name, ()):
            if segment.group in removable:
                rows = slice(offset, offset + segment.size)
                for direction_weights in parts.values():
                    kernel = direction_weights[0]
                    mass[segment.group] += kernel[:, rows, :].sum(axis=(0, 2)) if kind == "Conv1D" else kernel[rows].sum(axis=1)
            offset += segment.size
    return mass


def _per_direction(layer: Any, kind: str, weights: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    if kind == "Bidirectional":
        half = len(weights) // 2
        return {"forward": weights[:half], "backward": weights[half:]}
    return {"": weights}


def _gate_key(name: str, direction: str) -> str:
    return f"{name}/{direction}" if direction else name


def _own_mass(weights: list[np.ndarray], gates: int) -> np.ndarray:
    """Per unit, the sum of squares of its columns (all gates), its recurrent row, and its biases."""
    kernel = weights[0]
    units = kernel.shape[-1] // gates
    total = kernel.reshape(-1, gates, units).sum(axis=(0, 1))
    if gates > 1:  # a recurrent cell: its recurrent kernel's columns and rows
        recurrent = weights[1]
        total = total + recurrent.reshape(units, gates, units).sum(axis=(0, 1)) + recurrent.sum(axis=1)
        biases = weights[2:]
    else:
        biases = weights[1:]
    for bias in biases:
        total = total + bias.reshape(-1, gates, units).sum(axis=(0, 1))
    return total


def _mean_outputs(model: Any, plan: UnitPlan, data: Any) -> dict[int, np.ndarray]:
    """Per unit of each removable group, its mean absolute output over ``data`` (summed over tied layers)."""
    import tensorflow as tf

    keras = flavours.keras_module(flavours.detect(model))
    removable = set(plan.removable())
    tensors, where = [], []
    for name, outputs in plan.outputs.items():
        layer = model.get_layer(name)
        flat = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        for tensor, segments in zip(flat, outputs):
            if any(segment.group in removable for segment in segments):
                tensors.append(tensor)
                where.append(segments)
    probe = keras.Model(model.inputs, tensors)
    if isinstance(data, tf.data.Dataset):
        data = data.map(lambda x, *rest: x)
    predicted = probe.predict(data, verbose=0)
    predicted = predicted if isinstance(predicted, list) else [predicted]
    means = {group: np.zeros(plan.groups[group].size) for group in removable}
    for values, segments in zip(predicted, where):
        average = np.abs(np.asarray(values, "float64")).reshape(-1, values.shape[-1]).mean(axis=0)
        offset = 0
        for segment in segments:
            if segment.group in removable:
                means[segment.group] += average[offset : offset + segment.size]
            offset += segment.size
    return means
