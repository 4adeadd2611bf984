"""How the shared tests try each registered transform: the example, the arguments, the bad calls.

Kept beside the tests, not in the package: a transform registered without an entry here is tried
with no arguments on :func:`tiny_char_lm` and saved as ``.keras``, so it is covered all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Example:
    """A tiny compiled model and a batch of data to try a transform on."""

    model: Any
    x: Any
    y: Any


@dataclass(frozen=True)
class BadCall:
    """Keyword arguments that must make a transform raise ``error`` with ``match`` in its message."""

    kwargs: Mapping[str, Any]
    error: type[Exception]
    match: str


def tiny_char_lm(flavour: str) -> Example:
    """A 1-layer character LM (vocabulary 12, 8 units, sequences of 10) and 8 random samples."""
    from fastnlp import build_lstm

    rng = np.random.default_rng(0)
    model = build_lstm(12, units=8, num_layers=1, embedding_dim=4, seq_len=10, flavour=flavour)
    return Example(model, rng.integers(0, 12, (8, 10)), rng.integers(0, 12, (8, 10)))


@dataclass(frozen=True)
class Settings:
    """How to try one transform."""

    try_kwargs: Mapping[str, Any] = field(default_factory=dict)  # arguments that make it take effect here
    bad_calls: tuple[BadCall, ...] = ()
    example: Callable[[str], Example] = tiny_char_lm
    save_suffix: str = ".keras"  # the file format its results save to and load from
    atol: float = 1e-5  # how far the result's outputs may be from the input's (its math contract)
    #: ``prepare(model, x) -> kwargs``: sets up a zoo input so the math contract can be checked (e.g. silences
    #: the units a structured pruning will remove), returning the extra arguments that make the transform do so
    prepare: Callable[[Any, Any], dict] | None = None


def silence_units_to_remove(model: Any, x: Any) -> dict:
    """Zero the columns that the units ``prune_units(fraction=0.5)`` removes (each layer's last ones) own in
    every LSTM, GRU and Dense layer of ``model``, so those units output 0 and removing them leaves the model's
    outputs as they are; returns the arguments that rank units by their outputs (the silent ones score 0).

    Written here apart from fastnlp's unit bookkeeping: an LSTM or GRU unit with zero kernel, recurrent
    kernel and bias columns keeps a zero state and output from a zero initial state.
    """
    for layer in model.layers:
        cells = [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]
        if not all(_gates(cell) for cell in cells):
            continue
        weights = layer.get_weights()
        per_cell, silenced = len(weights) // len(cells), []
        for n, cell in enumerate(cells):
            units = cell.units
            silent = [gate * units + j for gate in range(_gates(cell)) for j in range(round(units * 0.5), units)]
            for weight in weights[n * per_cell : (n + 1) * per_cell]:
                weight = weight.copy()
                weight[..., silent] = 0.0
                silenced.append(weight)
        layer.set_weights(silenced)
    return {"criterion": "activation", "data": x}


def _gates(layer: Any) -> int:
    """Columns per unit in ``layer``'s weights: 4 (LSTM), 3 (GRU), 1 (Dense); 0 for any other layer."""
    names = [cls.__name__ for cls in type(layer).__mro__]
    return 4 if "LSTM" in names else 3 if "GRU" in names else 1 if "Dense" in names else 0


MODEL_TRANSFORMS: dict[str, Settings] = {
    "prune_units": Settings(
        try_kwargs={"fraction": 0.5},
        atol=2e-5,
        prepare=silence_units_to_remove,
        bad_calls=(
            BadCall({"fraction": 1.0}, ValueError, r"fraction must be a number in \[0, 1\)"),
            BadCall({"criterion": "random"}, ValueError, "criterion must be one of"),
            BadCall({"criterion": "activation"}, ValueError, "pass data=inputs"),
            BadCall({"units": {"nope": 3}}, ValueError, "layer 'nope' has no hidden units"),
        ),
    ),
    "enable_cudnn": Settings(bad_calls=(BadCall({"skip_blocked": "yes"}, TypeError, "skip_blocked must be"),)),
    "hoist_lstm_projection": Settings(bad_calls=(BadCall({"units": 3}, TypeError, "unexpected keyword"),)),
    "enable_mixed_precision": Settings(
        try_kwargs={"policy": "mixed_bfloat16"},
        atol=5e-2,
        bad_calls=(
            BadCall({"policy": "float8"}, ValueError, "policy must be one of"),
            BadCall({"policy": None}, ValueError, "policy must be one of"),
        ),
    ),
    "prune": Settings(
        try_kwargs={"sparsity": 0.5, "frequency": 1},
        bad_calls=(
            BadCall({"sparsity": 1.0}, ValueError, r"sparsity must be a number in \[0, 1\)"),
            BadCall({"schedule": "cubic"}, ValueError, "schedule must be one of"),
            BadCall({"schedule": "polynomial"}, ValueError, "needs end_step"),
            BadCall({"layer_names": ["nope"]}, ValueError, "no prunable layer named 'nope'"),
        ),
    ),
    "quantize": Settings(save_suffix=".h5", atol=5e-2),
    "distribute": Settings(
        try_kwargs={"strategy": "mirrored"},
        bad_calls=(
            BadCall({"strategy": "horovod"}, ValueError, "strategy must be"),
            BadCall({"strategy": "mirrored", "scale_learning_rate": "yes"}, TypeError, "scale_learning_rate must be"),
        ),
    ),
    "set_steps_per_execution": Settings(
        try_kwargs={"steps": 2}, bad_calls=(BadCall({"steps": 0}, ValueError, "steps must be a positive integer"),)
    ),
    "use_xla": Settings(bad_calls=(BadCall({"steps_per_execution": 1}, TypeError, "unexpected keyword"),)),
}

TEXT_TRANSFORMS: dict[str, Settings] = {
    "clean_text": Settings(
        try_kwargs={"stopwords": {"the", "a", "of"}},
        bad_calls=(
            BadCall({"stopwords": 7}, TypeError, "stopwords must be"),
            BadCall({"lowercase": "yes"}, TypeError, "lowercase must be True or False"),
        ),
    ),
    "normalize_text": Settings(bad_calls=(BadCall({"zero_digits": None}, TypeError, "zero_digits must be"),)),
    "remove_stopwords": Settings(
        try_kwargs={"stopwords": {"the", "a", "of"}}, bad_calls=(BadCall({"stopwords": None}, TypeError, "needs stopwords"),)
    ),
    "tokenize": Settings(bad_calls=(BadCall({"lowercase": 1}, TypeError, "lowercase must be"),)),
}


def settings_for(name: str, table: Mapping[str, Settings] = MODEL_TRANSFORMS) -> Settings:
    """The settings of transform ``name`` (the defaults where it has none)."""
    return table.get(name, Settings())
