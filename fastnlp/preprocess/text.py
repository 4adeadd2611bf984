"""Text cleaning that is fast, offline-safe and Unicode-safe, with one result from two engines.

Every function takes a ``str`` (or UTF-8 ``bytes``), a list or other iterable of them, a
``tf.data.Dataset`` of strings or a string ``tf.Tensor``, and returns the same kind (a ``str`` for a
``str`` or ``bytes``; a tuple for a tuple, a list for any other iterable).

Two engines give identical results (a property test checks it on random Unicode):

* ``"python"``: :meth:`str.translate` with one table per combination of steps, then
  :meth:`str.split`, a set of stopwords and ``" ".join``. A list of ASCII texts goes through as one
  bytes string (:meth:`bytes.translate`, one split, one join), which is what makes it fast;
* ``"tensorflow"``: the same table gathered over code points (``tf.strings.unicode_decode``), ``tf.strings``
  splitting and a hash table of stopwords, traced once per combination of steps, as a parallel
  ``tf.data`` map over batches of texts. It is what runs inside a ``tf.data`` pipeline; on this
  project's CPU its string kernels are slower than the Python engine on lists.

``engine="auto"`` (the default) uses TensorFlow for datasets and tensors, and Python otherwise.
The characters each step touches are defined once, in :mod:`fastnlp.preprocess.characters`.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastnlp.core.registry import text_transform
from fastnlp.preprocess.characters import (
    OTHER,
    CharacterMap,
    character_map,
    token_classes,
    word_and_space_points,
)
from fastnlp.preprocess.stopwords import resolve_stopwords

__all__ = ["clean_text", "normalize_text", "remove_stopwords", "tokenize"]

ENGINES = ("auto", "python", "tensorflow")
ERRORS = ("strict", "replace", "ignore")
PROGRESS_CHARACTERS = 4_000_000  # larger inputs show a progress bar unless progress=False
_CHUNK_CHARACTERS = 1_000_000  # characters taken at once: the progress bar's step
_TF_BATCH = 1024  # texts per TensorFlow map call


@dataclass(frozen=True)
class _Steps:
    """What one call does to each text: map characters, then (optionally) split, drop stopwords, join."""

    characters: CharacterMap
    split_and_join: bool
    stopwords: frozenset[str]

    def python_batch(self, texts: list[str]) -> list[str]:
        """The same as ``[self.python(t) for t in texts]``; a list of ASCII texts goes through as one bytes string."""
        joined = "\0".join(texts)  # NUL: neither whitespace, punctuation nor digit, so no step touches it
        if not joined.isascii() or joined.count("\0") != len(texts) - 1 or not self.characters.ascii_ok:
            return [self.python(text) for text in texts]
        data = joined.encode("ascii").translate(self.characters.ascii_table, self.characters.ascii_delete)
        if not self.split_and_join:
            return [part.decode("ascii") for part in data.split(b"\0")]
        words = data.replace(b"\0", b" \0 ").split()
        if self.stopwords:
            words = list(itertools.filterfalse(self._ascii_stopwords().__contains__, words))
        return [part.strip().decode("ascii") for part in b" ".join(words).split(b"\0")]

    def _ascii_stopwords(self) -> frozenset[bytes]:
        return _encoded_stopwords(self.stopwords)

    def python(self, text: str) -> str:
        text = self.characters.apply(text)
        if not self.split_and_join:
            return text
        if self.stopwords:
            return " ".join(itertools.filterfalse(self.stopwords.__contains__, text.split()))
        return " ".join(text.split())

    def tensorflow(self, strings: Any, errors: str) -> Any:
        """The steps on a 1-D string tensor (valid UTF-8 out)."""
        import tensorflow as tf

        text = _tf_map_characters(strings, self.characters, errors)
        if not self.split_and_join:
            return text
        words = tf.strings.split(text)  # every whitespace character is a space by now
        if self.stopwords:
            table = _stopword_table(self.stopwords)
            words = tf.ragged.boolean_mask(words, tf.logical_not(table.lookup(words)))
        return tf.strings.reduce_join(words, axis=-1, separator=" ")


@text_transform
def clean_text(
    texts: Any,
    *,
    lowercase: bool = True,
    drop_digits: bool = True,
    drop_punctuation: bool = True,
    stopwords: str | Iterable[str] | None = "english",
    engine: str = "auto",
    errors: str = "strict",
    progress: bool | None = None,
) -> Any:
    """Lowercase, drop digits, drop punctuation and drop stopwords: the blog's ``clean_text``, done right.

    Words come out separated by single spaces. On ASCII text the defaults give exactly what the
    blog's function gives with the same stopword list; beyond ASCII, Unicode punctuation (``，`` ``。``
    ``、`` ``«`` ``»`` ...) and every script's digits go too, and letters keep their accents.

    Args:
        texts: a str or UTF-8 bytes, an iterable of them, a ``tf.data.Dataset`` of strings or a string tensor.
        lowercase: lowercase the text.
        drop_digits: remove digits (of every script).
        drop_punctuation: remove punctuation (Unicode's, not only ASCII's).
        stopwords: an NLTK stopword list by language name (from installed NLTK data, else, for
            English, the copy fastnlp ships; never downloaded), your own words, or None to keep every word.
        engine: ``"auto"``, ``"python"`` or ``"tensorflow"`` (identical results; see the module docs).
        errors: for bytes that are not UTF-8 (and lone surrogates in a str, which have no UTF-8
            form): ``"strict"`` raises naming the position, ``"replace"`` puts U+FFFD, ``"ignore"``
            drops them.
        progress: a progress bar on stderr; by default for iterables over 4 MB.

    Returns:
        The same kind as ``texts``: a str for a str (or bytes), a list for an iterable, a
        ``tf.data.Dataset`` for a dataset, a string tensor for a tensor.

    Raises:
        TypeError: ``texts`` is not text (the offending item is named).
        ValueError: invalid UTF-8 under ``errors="strict"``, or an unknown option.
        fastnlp.preprocess.stopwords.StopwordsNotFoundError: a non-English list whose NLTK corpus is not installed.

    Examples:
        >>> clean_text("The 3 Quick-Brown foxes!", stopwords={"the"})
        'quickbrown foxes'
        >>> clean_text(["机器学习，很有趣。", "Ça coûte 42 € !"], stopwords=None)
        ['机器学习很有趣', 'ça coûte €']
    """
    characters = character_map(
        lowercase=_flag("lowercase", lowercase),
        digits="drop" if _flag("drop_digits", drop_digits) else "keep",
        punctuation="drop" if _flag("drop_punctuation", drop_punctuation) else "keep",
        whitespace="space",
    )
    steps = _Steps(characters, True, resolve_stopwords(stopwords))
    return _apply("clean_text", steps, texts, engine, errors, progress)


@text_transform
def normalize_text(
    texts: Any,
    *,
    lowercase: bool = True,
    collapse_whitespace: bool = True,
    zero_digits: bool = True,
    engine: str = "auto",
    errors: str = "strict",
    progress: bool | None = None,
) -> Any:
    """Lowercase, collapse whitespace into single spaces (trimming the ends), and turn every digit into ``0``.

    Args:
        texts: as for :func:`clean_text`.
        lowercase: lowercase the text.
        collapse_whitespace: runs of whitespace become one space, and the ends are trimmed.
        zero_digits: every digit (of any script) becomes ``0``.
        engine: as for :func:`clean_text`.
        errors: as for :func:`clean_text`.
        progress: as for :func:`clean_text`.

    Returns:
        The same kind as ``texts`` (see :func:`clean_text`).

    Raises:
        TypeError, ValueError: as :func:`clean_text` raises them.

    Examples:
        >>> normalize_text("  Call   555-0123\\tNOW ")
        'call 000-0000 now'
        >>> normalize_text(["Tel. ٠١٢"], collapse_whitespace=False)
        ['tel. 000']
    """
    characters = character_map(
        lowercase=_flag("lowercase", lowercase),
        digits="zero" if _flag("zero_digits", zero_digits) else "keep",
        whitespace="space" if _flag("collapse_whitespace", collapse_whitespace) else "keep",
    )
    steps = _Steps(characters, collapse_whitespace, frozenset())
    return _apply("normalize_text", steps, texts, engine, errors, progress)


@text_transform
def remove_stopwords(
    texts: Any,
    stopwords: str | Iterable[str] = "english",
    *,
    engine: str = "auto",
    errors: str = "strict",
    progress: bool | None = None,
) -> Any:
    """Drop the words (whitespace-separated, matched exactly) that are stopwords; join the rest with single spaces.

    Matching is case-sensitive, as NLTK's lists are lowercase: lowercase first (or use :func:`clean_text`).

    Args:
        texts: as for :func:`clean_text`.
        stopwords: an NLTK stopword list by language name (as for :func:`clean_text`), or your own words.
        engine: as for :func:`clean_text`.
        errors: as for :func:`clean_text`.
        progress: as for :func:`clean_text`.

    Returns:
        ``texts`` without their stopwords, in the same kind (see :func:`clean_text`).

    Raises:
        StopwordsNotFoundError: a non-English NLTK list is not installed (with how to install it offline).
        TypeError, ValueError: as :func:`clean_text` raises them.

    Examples:
        >>> remove_stopwords("the cat sat on the mat", {"the", "on"})
        'cat sat mat'
    """
    if stopwords is None:
        raise TypeError("remove_stopwords needs stopwords: a language name such as 'english', or your own words")
    steps = _Steps(character_map(whitespace="space"), True, resolve_stopwords(stopwords))
    return _apply("remove_stopwords", steps, texts, engine, errors, progress)


@text_transform
def tokenize(
    texts: Any,
    *,
    lowercase: bool = False,
    engine: str = "auto",
    errors: str = "strict",
    progress: bool | None = None,
) -> Any:
    """Split into words and punctuation marks, with no downloaded model or data.

    A word is a run of letters, marks, digits and ``_`` of any script; every other character that is
    not whitespace is a token of its own. A text gives a list of tokens (a ``tf.data.Dataset`` gives
    1-D string tensors; a string tensor gives a ``tf.RaggedTensor``).

    Args:
        texts: as for :func:`clean_text`.
        lowercase: lowercase the tokens.
        engine: as for :func:`clean_text`.
        errors: as for :func:`clean_text`.
        progress: as for :func:`clean_text`.

    Returns:
        A list of tokens for a str, a list of lists for an iterable, a dataset of 1-D string tensors
        for a dataset, a ``tf.RaggedTensor`` for a string tensor.

    Raises:
        TypeError, ValueError: as :func:`clean_text` raises them.

    Examples:
        >>> tokenize("Don't panic: 42 naïve ½-wits!")
        ['Don', "'", 't', 'panic', ':', '42', 'naïve', '½', '-', 'wits', '!']
    """
    characters = character_map(lowercase=_flag("lowercase", lowercase), whitespace="space")
    return _apply("tokenize", _Tokens(characters), texts, engine, errors, progress)


@dataclass(frozen=True)
class _Tokens:
    characters: CharacterMap

    def python_batch(self, texts: list[str]) -> list[list[str]]:
        return [self.python(text) for text in texts]

    def python(self, text: str) -> list[str]:
        return _python_token_pattern().findall(self.characters.apply(text))

    def tensorflow(self, strings: Any, errors: str) -> Any:
        import tensorflow as tf

        points = _tf_code_points(strings, self.characters, errors)
        values = points.flat_values
        alone = tf.gather(tf.constant(token_classes()), values) == OTHER
        # a character that is neither word nor space becomes " c ", so splitting on spaces isolates it
        spaced = tf.where(alone[:, None], tf.stack([tf.fill(tf.shape(values), 32), values, tf.fill(tf.shape(values), 32)], 1),
                          tf.stack([values, tf.fill(tf.shape(values), -1), tf.fill(tf.shape(values), -1)], 1))
        rows = tf.repeat(points.value_rowids(), 3)
        kept = tf.reshape(spaced, [-1]) >= 0
        spaced_points = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(tf.reshape(spaced, [-1]), kept), tf.boolean_mask(rows, kept), nrows=points.nrows()
        )
        return tf.strings.split(tf.strings.unicode_encode(spaced_points, "UTF-8"))


# ---------------------------------------------------------------- dispatch on the kind of input


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _apply(name: str, steps: Any, texts: Any, engine: str, errors: str, progress: bool | None) -> Any:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
    tf = sys.modules.get("tensorflow")  # a dataset or tensor means TensorFlow is already imported
    if tf is not None and isinstance(texts, tf.data.Dataset):
        return _tf_over_dataset(name, steps, texts, errors)
    if tf is not None and isinstance(texts, (tf.Tensor, tf.RaggedTensor, tf.Variable)):
        return _tf_over_tensor(name, steps, texts, errors)
    single = isinstance(texts, (str, bytes))
    if not single and not isinstance(texts, Iterable):
        raise TypeError(
            f"{name} takes texts: a str, bytes, an iterable of them, a tf.data.Dataset of strings or a string tensor; "
            f"got {type(texts).__name__}"
        )
    items = [texts] if single else list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, (str, bytes)):
            raise TypeError(f"{name}: texts[{index}] is a {type(item).__name__}, not str or bytes")
    items = [_decoded(item, errors, None if single else index) for index, item in enumerate(items)]
    size = sum(map(len, items))
    if engine == "auto":
        engine = "python"
    bar = _Progress(name, size) if (progress if progress is not None else size > PROGRESS_CHARACTERS) else None
    result: list = []
    for chunk in _chunks(items):
        if engine == "python":
            result.extend(steps.python_batch(chunk))
        else:
            result.extend(_tf_over_list(steps, chunk))
        if bar:
            bar.advance(sum(map(len, chunk)))
    if bar:
        bar.close()
    if single:
        return result[0]
    return tuple(result) if isinstance(texts, tuple) else result


def _chunks(items: list[str]) -> Iterable[list[str]]:
    """Consecutive runs of about ``_CHUNK_CHARACTERS`` characters (a longer text alone), for memory and progress."""
    start, size = 0, 0
    for end, item in enumerate(items, 1):
        size += len(item)
        if size >= _CHUNK_CHARACTERS:
            yield items[start:end]
            start, size = end, 0
    if start < len(items) or not items:
        yield items[start:]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _decoded(text: str | bytes, errors: str, index: int | None) -> str:
    if isinstance(text, str):
        return text if text.isascii() else _without_lone_surrogates(text, errors, index)
    try:
        return text.decode("utf-8", errors)
    except UnicodeDecodeError as error:
        where = "texts: " if index is None else f"texts[{index}]: "
        raise ValueError(
            f"{where}invalid UTF-8 at byte {error.start} ({text[error.start:error.start + 4]!r}...); "
            f"pass errors='replace' or errors='ignore' to accept it"
        ) from None


def _without_lone_surrogates(text: str, errors: str, index: int | None) -> str:
    """``text`` without lone surrogates (code points no UTF-8 text holds), as ``errors`` says.

    Left in, the Python engine kept one character where the TensorFlow engine, which works on
    UTF-8, saw three invalid bytes: the engines disagreed on ``'a\\ud800b c'``.
    """
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return text
    if errors == "strict":
        where = "texts: " if index is None else f"texts[{index}]: "
        raise ValueError(
            f"{where}a lone surrogate U+{ord(found.group()):04X} at character {found.start()} is not text "
            f"(it has no UTF-8 form); pass errors='replace' or errors='ignore' to accept it"
        )
    return _LONE_SURROGATE.sub("\ufffd" if errors == "replace" else "", text)


# ---------------------------------------------------------------- the TensorFlow engine


@functools.lru_cache(maxsize=64)
def _compiled(steps: Any, errors: str) -> Callable:
    """``steps.tensorflow`` traced once per combination of steps, for 1-D string tensors of any length."""
    import tensorflow as tf

    return tf.function(lambda strings: steps.tensorflow(strings, errors), input_signature=[tf.TensorSpec([None], tf.string)])


def _tf_over_list(steps: Any, texts: list[str]) -> list:
    import tensorflow as tf

    function = _compiled(steps, "replace")  # decoded already: nothing to replace
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    if len(encoded) <= 2 * _TF_BATCH:
        outputs = [function(tf.constant(encoded[start : start + _TF_BATCH], tf.string))
                   for start in range(0, len(encoded), _TF_BATCH)]
    else:  # a parallel map over batches, to use every core
        outputs = (
            tf.data.Dataset.from_tensor_slices(tf.constant(encoded, tf.string))
            .batch(_TF_BATCH)
            .map(lambda batch: function(batch), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
    return [item for output in outputs for item in _tf_to_python(output)]


def _tf_to_python(batch: Any) -> list:
    import tensorflow as tf

    if isinstance(batch, tf.RaggedTensor):
        return [[token.decode("utf-8") for token in row] for row in batch.to_list()]
    return [text.decode("utf-8") for text in batch.numpy().tolist()]


def _tf_over_tensor(name: str, steps: Any, strings: Any, errors: str) -> Any:
    import tensorflow as tf

    if not isinstance(strings, tf.Tensor) or strings.dtype != tf.string or strings.shape.rank not in (0, 1):
        raise TypeError(f"{name}: expected a scalar or 1-D string tensor, got {strings!r}")
    function = _compiled(steps, errors)
    return function(strings[None])[0] if strings.shape.rank == 0 else function(strings)


def _tf_over_dataset(name: str, steps: Any, dataset: Any, errors: str) -> Any:
    import tensorflow as tf

    spec = dataset.element_spec
    if not isinstance(spec, tf.TensorSpec) or spec.dtype != tf.string or spec.shape.rank not in (0, 1):
        raise TypeError(f"{name}: expected a dataset of strings (scalars or 1-D batches), got elements {spec}")
    function = _compiled(steps, errors)
    if spec.shape.rank == 1:
        return dataset.map(lambda batch: function(batch), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(_TF_BATCH).map(lambda batch: function(batch), num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def _tf_code_points(strings: Any, characters: CharacterMap, errors: str) -> Any:
    """Decode ``strings`` (1-D) into a ragged tensor of code points, each mapped through ``characters``."""
    import tensorflow as tf

    if errors == "strict":
        _tf_check_utf8(strings)
        errors = "replace"  # checked: nothing to replace
    points = tf.strings.unicode_decode(strings, "UTF-8", errors=errors, replacement_char=0xFFFD)
    table = tf.constant(characters.array)
    size = len(characters.array)
    values = points.flat_values
    mapped = tf.where(values < size, tf.gather(table, tf.minimum(values, size - 1)), values)
    return tf.ragged.boolean_mask(points.with_flat_values(mapped), points.with_flat_values(mapped >= 0))


def _tf_map_characters(strings: Any, characters: CharacterMap, errors: str) -> Any:
    """Decode ``strings`` (1-D), map every code point through ``characters``, encode again."""
    import tensorflow as tf

    return tf.strings.unicode_encode(_tf_code_points(strings, characters, errors), "UTF-8")


def _tf_check_utf8(strings: Any) -> None:
    """Fail, naming the text and byte position, when a string is not valid UTF-8."""
    import tensorflow as tf

    points, offsets = tf.strings.unicode_decode_with_offsets(strings, "UTF-8", errors="replace", replacement_char=0xFFFD)
    replaced = points.flat_values == 0xFFFD
    starts = tf.boolean_mask(offsets.flat_values, replaced)
    rows = tf.boolean_mask(points.value_rowids(), replaced)
    genuine = tf.strings.substr(tf.gather(strings, rows), starts, tf.fill(tf.shape(starts), tf.constant(3, tf.int64))) == b"\xef\xbf\xbd"
    bad = tf.concat([tf.logical_not(genuine), [False]], 0)
    first = tf.argmax(tf.cast(bad, tf.int32))  # the sentinel keeps these gathers in range
    tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        ["invalid UTF-8 at byte", tf.gather(tf.concat([starts, [-1]], 0), first), "of text",
         tf.gather(tf.concat([rows, [-1]], 0), first), "of the batch; pass errors='replace' or errors='ignore' to accept it"],
    )


@functools.lru_cache(maxsize=8)
def _encoded_stopwords(stopwords: frozenset[str]) -> frozenset[bytes]:
    return frozenset(word.encode("ascii") for word in stopwords if word.isascii())


@functools.lru_cache(maxsize=8)
def _stopword_table(stopwords: frozenset[str]) -> Any:
    import tensorflow as tf

    with tf.init_scope():  # created eagerly even when first asked for inside a traced function
        keys = tf.constant(sorted(stopwords), tf.string)
        return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.bool)), False)


@functools.cache
def _python_token_pattern() -> re.Pattern:
    words, spaces = word_and_space_points()
    return re.compile(f"[{_python_class(words)}]+|[^{_python_class(words)}{_python_class(spaces)}]")


def _ranges(points: tuple[int, ...]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return ranges


def _python_class(points: tuple[int, ...]) -> str:
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in _ranges(points))


class _Progress:
    """A one-line progress bar on stderr: characters (bytes, for bytes) done, percent, rate."""

    def __init__(self, name: str, total_bytes: int, stream: Any = None):
        self.name, self.total, self.done, self.shown = name, max(total_bytes, 1), 0, 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self.done - self.shown >= 1_000_000 or self.done >= self.total:
            self.shown = self.done
            rate = self.done / max(time.perf_counter() - self.start, 1e-9) / 1e6
            self.stream.write(
                f"\r{self.name}: {self.done / 1e6:.1f}/{self.total / 1e6:.1f} M characters "
                f"{100 * self.done / self.total:3.0f}% {rate:.0f} M/s"
            )
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
