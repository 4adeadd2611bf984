"""Input pipelines: the character language-model dataset that wastes no compute.

The blog's recipe slides a 100-character window one character at a time and predicts only the
character after it, so every 100 characters of LSTM work yield one prediction, and it feeds each id
as a float. Here the windows do not overlap, the target is the next character at *every* position
(100 predictions per window), ids go through an embedding, and the data is a cached, shuffled,
prefetched ``tf.data`` pipeline.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnlp.core.validation import (
    check_fraction,
    check_non_negative_int,
    check_positive_int,
)

__all__ = ["CharLMData", "CharVocabulary", "char_lm_dataset"]


@dataclass(frozen=True)
class CharVocabulary:
    """Characters (any Unicode code point) and their ids: ``chars[i]`` has id ``i``.

    Examples:
        >>> vocab = CharVocabulary.from_text("机器学习, machine learning")
        >>> vocab.decode(vocab.encode("学习 learning"))
        '学习 learning'
    """

    chars: str

    def __post_init__(self) -> None:
        if not isinstance(self.chars, str):
            raise TypeError(f"chars must be a str of distinct characters, got {type(self.chars).__name__}")
        if len(set(self.chars)) != len(self.chars):
            repeated = sorted({c for c in self.chars if self.chars.count(c) > 1})
            raise ValueError(f"chars must be distinct: {repeated[:10]!r} appear more than once")

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """The sorted set of characters in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """Number of characters (the model's ``vocab_size``)."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``'s characters (int32).

        Raises:
            ValueError: ``text`` holds characters outside the vocabulary (they are named).

        Examples:
            >>> CharVocabulary("ba").encode("ab").tolist()  # chars[i] has id i, in any order
            [1, 0]
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        points = _code_points(text)
        table = _code_points(self.chars)
        order = np.argsort(table, kind="stable")  # chars need not be sorted: look up in sorted order
        positions = np.minimum(np.searchsorted(table[order], points), len(table) - 1)
        unknown = table[order][positions] != points if len(table) else np.ones(len(points), bool)
        if unknown.any():
            missing = sorted({chr(p) for p in points[unknown]})
            raise ValueError(f"text holds {len(missing)} character(s) outside the vocabulary: {missing[:20]!r}")
        return order[positions].astype(np.int32)

    def decode(self, ids: Any) -> str:
        """The text of one sequence of ids.

        Raises:
            ValueError: ``ids`` is not one sequence (for a batch, decode each row), or an id lies
                outside ``[0, size)``.
            TypeError: ``ids`` are not integers.

        Examples:
            >>> vocab = CharVocabulary("abc")
            >>> vocab.decode([2, 0]), [vocab.decode(row) for row in [[0], [1]]]
            ('ca', ['a', 'b'])
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"ids must be one sequence (1-D); got shape {ids.shape}: for a batch, decode each row")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got {ids.dtype}")
        outside = np.flatnonzero((ids < 0) | (ids >= self.size))
        if outside.size:
            raise ValueError(f"ids must lie in [0, {self.size}); ids[{outside[0]}] is {ids[outside[0]]}")
        points = _code_points(self.chars)[ids.astype(np.int64)]
        return points.astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")


@dataclass(frozen=True)
class CharLMData:
    """What :func:`char_lm_dataset` returns."""

    train: Any  # tf.data.Dataset of (ids, next_ids), each (batch, seq_len) int32
    validation: Any  # the same, for held-out windows; None when validation_split is 0
    vocabulary: CharVocabulary
    train_windows: int
    validation_windows: int


def char_lm_dataset(
    text: str,
    seq_len: int = 100,
    batch_size: int = 64,
    validation_split: float = 0.1,
    *,
    vocabulary: CharVocabulary | None = None,
    seed: int = 0,
    seq_len_warmup: int = 0,
) -> CharLMData:
    """Build train/validation ``tf.data`` pipelines for a character LM with a target at every position.

    The text is cut into non-overlapping windows of ``seq_len + 1`` characters sharing their edge
    character: input ``ids[k : k + seq_len]``, target ``ids[k + 1 : k + seq_len + 1]``. The last
    ``validation_split`` of the windows (the end of the text) are held out. Training windows are
    cached, reshuffled every epoch and prefetched.

    Args:
        text: the corpus, any Unicode.
        seq_len: characters per window.
        batch_size: windows per batch.
        validation_split: fraction of windows held out, in ``[0, 1)``.
        vocabulary: the characters to use; by default every character of ``text``.
        seed: shuffling seed.
        seq_len_warmup: train on shorter windows for this many first batches: an eighth, a quarter,
            then half of ``seq_len`` (each for a third of them, cut at a random offset from the full
            windows), then ``seq_len``. Early steps on short windows are cheaper, and a model leaves
            the unigram plateau after a number of steps more than of characters. The count carries
            over epochs: only the first batches of the first epoch are short. 0 turns it off.

    Returns:
        A :class:`CharLMData`: ``train`` and ``validation`` datasets of ``(ids, next_ids)`` batches,
        the ``vocabulary`` and the number of windows in each.

    Raises:
        ValueError: empty text, text shorter than one window, or an argument out of range (named).

    Examples:
        >>> data = char_lm_dataset("to be or not to be, " * 50, seq_len=10, batch_size=4)
        >>> ids, targets = next(iter(data.train))
        >>> tuple(ids.shape), data.vocabulary.size, data.train_windows, data.validation_windows
        ((4, 10), 8, 89, 10)
    """
    import tensorflow as tf

    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty")
    check_positive_int(seq_len=seq_len, batch_size=batch_size)
    seq_len, batch_size = int(seq_len), int(batch_size)  # NumPy's integers too
    if not isinstance(seq_len_warmup, numbers.Integral) or isinstance(seq_len_warmup, bool) or seq_len_warmup < 0:
        raise ValueError(f"seq_len_warmup must be a non-negative integer (batches), got {seq_len_warmup!r}")
    seq_len_warmup = int(seq_len_warmup)
    check_fraction("validation_split", validation_split)
    windows = (len(text) - 1) // seq_len
    if windows < 1:
        raise ValueError(f"text has {len(text)} characters, fewer than one window of seq_len + 1 = {seq_len + 1}")
    held_out = int(round(windows * validation_split))
    if validation_split and not 1 <= held_out < windows:
        raise ValueError(
            f"validation_split={validation_split} of {windows} windows leaves no training or no validation "
            f"window; give more text or a different validation_split"
        )

    if vocabulary is not None and not isinstance(vocabulary, CharVocabulary):
        raise TypeError(f"vocabulary must be a CharVocabulary (or None), got {type(vocabulary).__name__}")
    check_non_negative_int(seed=seed)
    vocabulary = vocabulary or CharVocabulary.from_text(text)
    ids = vocabulary.encode(text[: windows * seq_len + 1])
    inputs = ids[:-1].reshape(windows, seq_len)
    targets = ids[1:].reshape(windows, seq_len)
    split = windows - held_out

    train = _shuffled_batches(inputs[:split], targets[:split], batch_size, seed)
    if seq_len_warmup:
        train = train.map(_short_windows_first(seq_len, seq_len_warmup, seed))
    train = train.prefetch(tf.data.AUTOTUNE)
    validation = None
    if held_out:
        validation = (
            tf.data.Dataset.from_tensor_slices((inputs[split:], targets[split:]))
            .batch(batch_size)
            .cache()
            .prefetch(tf.data.AUTOTUNE)
        )
    return CharLMData(train, validation, vocabulary, split, held_out)


def _shuffled_batches(inputs: np.ndarray, targets: np.ndarray, batch_size: int, seed: int) -> Any:
    """Batches of every window once per pass, in a new random order each pass.

    The order is a permutation of window numbers drawn at the start of each pass, and each batch
    gathers its windows: a shuffle buffer as large as the data read every window before the first
    step (a 95 MB corpus took minutes with a 2-second budget).
    """
    import tensorflow as tf

    all_inputs, all_targets = tf.constant(inputs), tf.constant(targets)
    generator = tf.random.Generator.from_seed(seed)  # lives as long as the dataset: each pass draws anew
    count = len(inputs)

    def order(_):
        return tf.argsort(generator.uniform((count,)))

    return (
        tf.data.Dataset.from_tensors(0)
        .map(order)
        .unbatch()
        .batch(batch_size)
        .map(lambda chosen: (tf.gather(all_inputs, chosen), tf.gather(all_targets, chosen)))
    )


def _short_windows_first(seq_len: int, warmup_batches: int, seed: int) -> Any:
    """A ``map`` function that cuts the first ``warmup_batches`` batches to shorter windows (see ``seq_len_warmup``)."""
    import tensorflow as tf

    lengths = sorted({max(1, seq_len // 8), max(1, seq_len // 4), max(1, seq_len // 2)} - {seq_len})
    per_stage = -(-warmup_batches // max(1, len(lengths)))
    schedule = tf.constant([*lengths, seq_len], tf.int32)
    batches_seen = tf.Variable(0, dtype=tf.int64, trainable=False)  # lives as long as the dataset: warm-up once
    generator = tf.random.Generator.from_seed(seed)

    def cut(ids, targets):
        seen = batches_seen.assign_add(1) - 1
        stage = tf.minimum(tf.cast(seen // per_stage, tf.int32), len(lengths))
        length = schedule[stage] if seen < warmup_batches else seq_len
        start = generator.uniform((), 0, seq_len - length + 1, tf.int32)
        return ids[:, start : start + length], targets[:, start : start + length]

    return cut
