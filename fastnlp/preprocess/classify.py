"""Text classification batches that waste no compute on padding: clean, vectorize, bucket by length.

An LSTM runs every time step of a batch, padding included. Padding every text to the longest one
(what ``pad_sequences`` does by default) makes a batch of short sentences cost as much as the longest
sentence of the corpus. Grouping texts of similar length into the same batch
(``tf.data.Dataset.bucket_by_sequence_length``) and padding each batch only to its own longest text
removes most of that work.

The pipeline: clean (:func:`~fastnlp.preprocess.text.clean_text`, once, in Python) → vectorize
(a frequency-ordered vocabulary; id 0 is padding, 1 is unknown) → cache the id sequences →
shuffle every epoch → bucket by length → pad each batch to its longest → prefetch. Caching comes
before shuffling and bucketing so that every epoch draws new batches.
"""

from __future__ import annotations

import collections
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnlp.core.validation import (
    check_non_negative_int,
    check_positive_int,
    checked_list,
)
from fastnlp.preprocess.text import clean_text, tokenize

__all__ = ["PADDING", "UNKNOWN", "PaddingReport", "TextClassificationData", "text_classification_dataset"]

PADDING, UNKNOWN = "", "[UNK]"  # the tokens of ids 0 and 1


@dataclass(frozen=True)
class PaddingReport:
    """Tokens an epoch feeds the model, with bucketing and with padding to the longest text.

    Examples:
        >>> report = PaddingReport(real_tokens=60, bucketed_tokens=70, pad_to_longest_tokens=160)
        >>> f"{report.saved_fraction:.0%}"
        '90%'
    """

    real_tokens: int  # tokens of the texts themselves
    bucketed_tokens: int  # tokens in the bucketed batches, padding included (one epoch, simulated)
    pad_to_longest_tokens: int  # texts x the longest text

    @property
    def saved_fraction(self) -> float:
        """The fraction of pad-to-longest's padding tokens that bucketing does not feed the model."""
        padding = self.pad_to_longest_tokens - self.real_tokens
        return (self.pad_to_longest_tokens - self.bucketed_tokens) / padding if padding else 0.0

    def __str__(self) -> str:
        return (
            f"bucketing by length: {self.bucketed_tokens - self.real_tokens:,} padding tokens per epoch instead of "
            f"{self.pad_to_longest_tokens - self.real_tokens:,} when padding to the longest text "
            f"({self.saved_fraction:.1%} of the padding saved; {self.pad_to_longest_tokens / self.bucketed_tokens:.2f}x "
            f"fewer time steps)"
        )


@dataclass(frozen=True)
class TextClassificationData:
    """What :func:`text_classification_dataset` returns: the batches, and what to know about them."""

    dataset: Any  # tf.data.Dataset of (token_ids, label) batches
    vocabulary: tuple[str, ...]  # the token of each id: pass it to build the validation set with the same ids
    padding: PaddingReport  # the padding bucketing saves against padding every text to the longest


def text_classification_dataset(
    texts: Iterable[str | bytes],
    labels: Iterable[int],
    *,
    batch_size: int = 32,
    num_classes: int | None = None,
    vocabulary: Sequence[str] | None = None,
    max_tokens: int = 20_000,
    max_length: int | None = None,
    clean: bool | Mapping[str, Any] = True,
    bucket_boundaries: Sequence[int] | None = None,
    shuffle: bool = True,
    seed: int = 0,
) -> TextClassificationData:
    """A ``tf.data.Dataset`` of ``(token_ids, label)`` batches, bucketed by length; 0 is the padding id.

    It comes in a :class:`TextClassificationData` with ``.vocabulary`` (the token of each id; pass it
    to build the validation set with the same ids) and ``.padding`` (a :class:`PaddingReport`: the
    padding saved against padding every text to the longest).

    Args:
        texts: the texts, as :func:`clean_text` takes them.
        labels: one integer label per text.
        batch_size: texts per batch.
        num_classes: labels must lie in ``[0, num_classes)``; by default the largest label + 1.
        vocabulary: the token of each id (``vocabulary[0] == ""``, ``vocabulary[1] == "[UNK]"``),
            e.g. the training data's ``.vocabulary``; by default built from ``texts``.
        max_tokens: vocabulary size when building one (the most frequent tokens).
        max_length: cut texts to this many tokens.
        clean: ``True`` cleans with :func:`clean_text` keeping stopwords (``not`` and ``no`` carry
            sentiment), a mapping gives :func:`clean_text` options, ``False`` only tokenizes.
        bucket_boundaries: length boundaries of the buckets; by default the deciles of the lengths.
        shuffle: reshuffle every epoch (turn off for evaluation).
        seed: shuffling seed.

    Returns:
        A :class:`TextClassificationData`: ``.dataset`` (the batches, for ``fit``), ``.vocabulary``
        and ``.padding``.

    Raises:
        ValueError: no texts, a different number of labels and texts, labels out of range, or a
            bad argument (named).

    Examples:
        >>> data = text_classification_dataset(
        ...     ["a fine film", "dull", "not good at all", "bad"], [1, 0, 0, 0], batch_size=2, shuffle=False)
        >>> [ids.numpy().tolist() for ids, labels in data.dataset]
        [[[6], [5]], [[2, 8, 7]], [[10, 9, 4, 3]]]
        >>> data.vocabulary[:4], f"{data.padding.saved_fraction:.0%}"
        (('', '[UNK]', 'a', 'all'), '100%')
    """
    import tensorflow as tf

    check_positive_int(batch_size=batch_size, max_tokens=max_tokens)
    if max_length is not None:
        check_positive_int(max_length=max_length)
    texts, labels = _checked_texts_and_labels(texts, labels, num_classes)
    check_non_negative_int(seed=seed)
    tokens = _tokens(texts, clean)
    vocabulary = tuple(checked_list("vocabulary", vocabulary, str, "a list of tokens")) if vocabulary is not None else _build_vocabulary(tokens, max_tokens)
    if len(vocabulary) < 2 or vocabulary[0] != PADDING or vocabulary[1] != UNKNOWN:
        raise ValueError(f"vocabulary must start with {PADDING!r} (padding) and {UNKNOWN!r} (unknown)")
    repeated = sorted(token for token, count in collections.Counter(vocabulary).items() if count > 1)
    if repeated:  # a token listed twice has two ids, and every text uses only the later one
        raise ValueError(f"vocabulary lists tokens more than once: {repeated[:10]}; give each token once")
    ids = _ids(tokens, vocabulary, max_length)
    lengths = np.array([len(row) for row in ids])
    boundaries = (
        checked_list("bucket_boundaries", bucket_boundaries, numbers.Integral, "a list of increasing positive integers")
        if bucket_boundaries is not None else _decile_boundaries(lengths)
    )
    if any(not isinstance(b, int) or b < 1 for b in boundaries) or boundaries != sorted(set(boundaries)):
        raise ValueError(f"bucket_boundaries must be increasing positive integers, got {boundaries}")

    flat = tf.constant(np.concatenate(ids).astype(np.int32))
    starts = tf.constant(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    targets = tf.constant(labels)
    dataset = (
        tf.data.Dataset.range(len(texts))
        .map(lambda i: (flat[starts[i] : starts[i + 1]], targets[i]), num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
    )
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.bucket_by_sequence_length(
        lambda ids, label: tf.shape(ids)[0],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([None], []),
    )
    # a bucket of n texts always gives ceil(n / batch_size) batches, whatever the order: say so, so
    # that Keras knows an epoch's length (Keras 3 would otherwise cut later epochs to the first's)
    buckets = np.searchsorted(boundaries, lengths, side="right")  # each text's bucket
    per_bucket = np.bincount(buckets, minlength=len(boundaries) + 1)
    batches = int(sum(-(-count // batch_size) for count in per_bucket))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)

    order = np.random.default_rng(seed).permutation(len(texts)) if shuffle else np.arange(len(texts))
    report = PaddingReport(int(lengths.sum()), _bucketed_tokens(lengths[order], buckets[order], batch_size), len(texts) * int(lengths.max()))
    return TextClassificationData(dataset, vocabulary, report)


def _checked_texts_and_labels(texts: Any, labels: Any, num_classes: int | None) -> tuple[list, np.ndarray]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a list (or other iterable) of texts, not a single text")
    if not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a list (or other iterable) of texts, got {type(texts).__name__}")
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
        raise TypeError(f"labels must be a list (or array) of integer labels, got {type(labels).__name__}")
    texts = list(texts)
    labels = np.asarray(list(labels))
    if not texts:
        raise ValueError("texts is empty")
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
        raise ValueError(f"labels must be integers, one per text; got dtype {labels.dtype}, shape {labels.shape}")
    if num_classes is not None:
        check_positive_int(num_classes=num_classes)
    limit = num_classes if num_classes is not None else int(labels.max()) + 1
    outside = np.flatnonzero((labels < 0) | (labels >= limit))
    if outside.size:
        raise ValueError(f"labels must lie in [0, {limit}); labels[{outside[0]}] is {labels[outside[0]]}")
    too_large = np.flatnonzero(labels > np.iinfo(np.int32).max)  # they are stored as int32: 2**40 became 0
    if too_large.size:
        raise ValueError(f"labels must be class indices below 2**31; labels[{too_large[0]}] is {labels[too_large[0]]}")
    return texts, labels.astype(np.int32)


def _tokens(texts: list, clean: bool | Mapping[str, Any]) -> list[list[str]]:
    if clean is False:
        return tokenize(texts)
    options = {"stopwords": None, **(clean if isinstance(clean, Mapping) else {})}
    if clean is not True and not isinstance(clean, Mapping):
        raise TypeError(f"clean must be True, False or a mapping of clean_text options, got {clean!r}")
    return [text.split() for text in clean_text(texts, **options)]


def _build_vocabulary(tokens: list[list[str]], max_tokens: int) -> tuple[str, ...]:
    counts = collections.Counter(token for row in tokens for token in row)
    ranked = sorted(counts, key=lambda token: (-counts[token], token))
    return (PADDING, UNKNOWN, *ranked[: max(max_tokens - 2, 0)])


def _ids(tokens: list[list[str]], vocabulary: tuple[str, ...], max_length: int | None) -> list[list[int]]:
    index = {token: i for i, token in enumerate(vocabulary)}
    unknown = index[UNKNOWN]
    return [[index.get(token, unknown) for token in row[:max_length]] or [unknown] for row in tokens]


def _decile_boundaries(lengths: np.ndarray) -> list[int]:
    """Bucket boundaries at the deciles of the lengths (a bucket holds lengths below its boundary)."""
    edges = np.quantile(lengths, np.linspace(0.1, 0.9, 9), method="higher").astype(int) + 1
    return sorted({int(edge) for edge in edges if edge <= lengths.max()})


def _bucketed_tokens(lengths: np.ndarray, buckets: np.ndarray, batch_size: int) -> int:
    """Tokens (padding included) of the batches ``bucket_by_sequence_length`` makes from ``lengths`` in this order."""
    waiting: dict[int, list[int]] = {}
    total = 0
    for length, bucket in zip(lengths.tolist(), buckets.tolist()):
        batch = waiting.setdefault(bucket, [])
        batch.append(length)
        if len(batch) == batch_size:
            total += batch_size * max(batch)
            batch.clear()
    return total + sum(len(batch) * max(batch) for batch in waiting.values() if batch)
