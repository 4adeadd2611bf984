"""``build_lstm``: the stacked-LSTM text models fastnlp speeds up, with speedups chained in one call."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core.validation import (
    check_fraction,
    check_positive_int,
    check_positive_number,
)
from fastnlp.speedups import catalog

__all__ = ["TASKS", "build_lstm"]

TASKS: tuple[str, ...] = ("char_lm", "classify")


def build_lstm(
    vocab_size: int,
    *,
    task: str = "char_lm",
    units: int = 512,
    num_layers: int = 3,
    dropout: float = 0.2,
    embedding_dim: int = 64,
    num_classes: int = 2,
    seq_len: int | None = None,
    learning_rate: float = 1e-3,
    flavour: str = "keras",
    speedups: Iterable[Any] = (),
) -> Any:
    """Build and compile a stacked-LSTM text model; the defaults are the blog's 3 x LSTM(512) stack.

    Layers: ``token_ids`` (int ids) -> ``embedding`` -> ``num_layers`` x (``lstm_i`` -> ``dropout_i``)
    -> ``logits`` (Dense) -> ``probabilities`` (softmax). Sparse categorical cross-entropy, Adam.

    Args:
        vocab_size: number of token (or character) ids; id 0 is padding for ``"classify"``.
        task: ``"char_lm"``, a prediction of the next id at every position (output
            ``(batch, seq_len, vocab_size)``), or ``"classify"``, one label per sequence
            (output ``(batch, num_classes)``; id 0 is masked as padding).
        units: LSTM units per layer.
        num_layers: number of stacked LSTM layers.
        dropout: rate of the Dropout after each LSTM (0 disables it).
        embedding_dim: width of the id embedding.
        num_classes: labels for ``"classify"``.
        seq_len: fixed sequence length, or ``None`` for any length.
        learning_rate: Adam's learning rate.
        flavour: ``"keras"`` (Keras 3) or ``"tf_keras"`` (Keras 2, which tfmot needs).
        speedups: registered transforms to apply — functions, their names, or ``functools.partial``
            with options — in the valid order fastnlp knows, whatever order they are listed in.

    Returns:
        A compiled model of the chosen flavour.

    Raises:
        ValueError: an argument out of range, an unknown task or flavour, or speedups that cannot
            be combined.

    Examples:
        >>> import functools
        >>> from fastnlp import enable_mixed_precision
        >>> model = build_lstm(65, units=32, num_layers=2, seq_len=100,
        ...                    speedups=[functools.partial(enable_mixed_precision, policy="mixed_bfloat16")])
        >>> model.output_shape, model.get_layer("lstm_1").dtype_policy.name
        ((None, 100, 65), 'mixed_bfloat16')
    """
    check_positive_int(vocab_size=vocab_size, units=units, num_layers=num_layers, embedding_dim=embedding_dim)
    vocab_size, units, num_layers, embedding_dim = int(vocab_size), int(units), int(num_layers), int(embedding_dim)  # NumPy's too
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, got {vocab_size}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    check_fraction("dropout", dropout)
    if task == "classify" and (not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 2):
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    if seq_len is not None:
        check_positive_int(seq_len=seq_len)
        seq_len = int(seq_len)
    check_positive_number(learning_rate=learning_rate)  # inf was accepted
    learning_rate = float(learning_rate)  # Keras's optimizers refuse NumPy numbers
    steps = catalog.plan(speedups)  # reject bad speedups before building anything
    keras = flavours.keras_module(flavour)
    layers = keras.layers

    ids = keras.Input(shape=(seq_len,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=task == "classify", name="embedding")(ids)
    for i in range(1, num_layers + 1):
        last = i == num_layers
        x = layers.LSTM(units, return_sequences=task == "char_lm" or not last, name=f"lstm_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = int(num_classes) if task == "classify" else vocab_size
    x = layers.Dense(outputs, name="logits")(x)
    probabilities = layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(ids, probabilities, name=f"lstm_{task}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"] if task == "classify" else None,
    )
    for transform, kwargs in steps:
        model = transform.func(model, **kwargs)
    return model
