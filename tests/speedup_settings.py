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


MODEL_TRANSFORMS: dict[str, Settings] = {
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
