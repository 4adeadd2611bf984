"""The blog's recipes, reproduced faithfully as the baselines that benchmarks beat.

Not a recommendation: it is here so every comparison runs the original against fastnlp on the same
corpus, model size and machine, in the same run. The recipe (the classic Keras text-generation
tutorial the blog copies): windows of ``seq_len`` characters at stride 1; input ``X`` of shape
``(N, seq_len, 1)`` holding character ids divided by the vocabulary size (floats); the target is the
one next character, one-hot; ``LSTM(512, return_sequences=True) -> Dropout(0.2)`` twice, then
``LSTM(512) -> Dropout(0.2) -> Dense(V, softmax)``; categorical cross-entropy; Adam.

Its text cleaning, plain Python: ``clean_text`` lowercases, deletes runs of digits, deletes ASCII
:data:`string.punctuation`, splits on whitespace and drops NLTK's English stopwords;
``normalize_text`` lowercases, collapses whitespace and writes every digit as ``0``. (The blog forgot
to import ``re`` and ``string``, and downloads the stopwords at run time; here the caller passes them.)
"""

from __future__ import annotations

import re
import string
from collections.abc import Container
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours

__all__ = ["blog_clean_text", "blog_normalize_text", "blog_windows", "build_blog_model"]


def blog_clean_text(text: str, stop_words: Container[str]) -> str:
    """The blog's ``clean_text`` (given a set of stopwords, as NLTK's ``stopwords.words(...)`` in a set).

    Examples:
        >>> blog_clean_text("The 2 Cats' toys, $5!", {"the"})
        'cats toys'
    """
    text = text.lower()
    text = re.sub(r"\d+", "", text)
    text = text.translate(str.maketrans("", "", string.punctuation))
    return " ".join([word for word in text.split() if word not in stop_words])


def blog_normalize_text(text: str) -> str:
    """The blog's ``normalize_text``.

    Examples:
        >>> blog_normalize_text("  Room 101\\n is  HERE ")
        'room 000 is here'
    """
    text = text.lower()
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"\d", "0", text)


def blog_windows(ids: np.ndarray, vocab_size: int, seq_len: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The blog's training arrays: ``X`` (N, seq_len, 1) float ids / vocab_size, ``y`` (N, vocab_size) one-hot.

    Examples:
        >>> x, y = blog_windows(np.array([0, 1, 2, 3, 1]), vocab_size=4, seq_len=3)
        >>> x[:, :, 0].tolist(), y.argmax(axis=1).tolist()
        ([[0.0, 0.25, 0.5], [0.25, 0.5, 0.75]], [3, 1])
    """
    ids = np.asarray(ids)
    if len(ids) <= seq_len:
        raise ValueError(f"need more than seq_len={seq_len} ids, got {len(ids)}")
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], seq_len)
    x = windows.astype(np.float32)[..., None] / np.float32(vocab_size)
    y = np.eye(vocab_size, dtype=np.float32)[ids[seq_len:]]
    return x, y


def build_blog_model(
    vocab_size: int, seq_len: int = 100, units: int = 512, num_layers: int = 3, dropout: float = 0.2,
    flavour: str = "keras",
) -> Any:
    """The blog's model, compiled with categorical cross-entropy and Adam.

    Examples:
        >>> build_blog_model(vocab_size=40, units=8).output_shape
        (None, 40)
    """
    keras = flavours.keras_module(flavour)
    model = keras.Sequential([keras.Input(shape=(seq_len, 1))])
    for i in range(num_layers):
        model.add(keras.layers.LSTM(units, return_sequences=i < num_layers - 1))
        model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(vocab_size, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    return model
