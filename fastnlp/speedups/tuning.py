"""``tune``: measure the speedups on this machine and keep the fastest combination.

A speedup is not a speedup until measured on the machine at hand: the same speedup is a gain on one
CPU kind and a loss on another (docs/benchmarks.md). :func:`tune` trains a few steps of each
candidate (a copy of the model with some registered speedups applied), times them after warm-up
(graph tracing and XLA compilation excluded), and returns the fastest as a fresh copy of the input
model, with the table of what it measured. The input is measured too, and a candidate must beat it
by a margin (``min_gain``, 3%) to be chosen, so noise does not pick a configuration that is slower.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import numbers
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from fastnlp.core import flavour, hardware
from fastnlp.core.measure import PeakMemory, fast_paths, step_clock
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import rebuild
from fastnlp.core.tables import text_table
from fastnlp.core.validation import (
    check_bool,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
    checked_list,
)
from fastnlp.speedups import catalog
from fastnlp.speedups.compile_options import set_steps_per_execution, use_xla
from fastnlp.speedups.gpu import enable_cudnn
from fastnlp.speedups.hoisting import hoist_lstm_projection
from fastnlp.speedups.precision import enable_mixed_precision

__all__ = ["Candidate", "Measurement", "TuneResult", "default_candidates", "tune"]


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One configuration :func:`tune` measures: its name in the table, the speedups (as ``build_lstm`` takes
    them) and the batch size it trains with (None: the dataset's own)."""

    name: str
    speedups: tuple = ()
    batch_size: int | None = None


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One candidate's measured training throughput."""

    name: str
    samples_per_s: float | None  # None: not measured (it failed, or the time budget ran out)
    note: str = ""
    batch_size: int | None = None  # samples per step it ran with
    peak_memory_mb: float | None = None  # the GPU's peak, or (CPU) the process's peak resident memory during the run
    within_budget: bool = True  # False: it needed more memory than tune's memory_budget_mb
    fast_paths: str = ""  # what was actually in effect: dtype policy, XLA, steps per execution, cuDNN layers


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found: the fastest configuration as a ready model, and every measurement."""

    model: Any  # a fresh copy of the input model with ``best`` applied (untrained beyond the input)
    best: str
    measurements: tuple[Measurement, ...]
    batch_size: int  # the batch size to train with (the dataset's own unless a larger one won)

    def __str__(self) -> str:
        baseline = self.measurements[0].samples_per_s
        rows = []
        for m in self.measurements:
            rows.append([
                m.name + (" <- chosen" if m.name == self.best else ""),
                "-" if m.samples_per_s is None else f"{m.samples_per_s:.1f}",
                "-" if m.samples_per_s is None or not baseline else f"{m.samples_per_s / baseline:.2f}x",
                str(m.batch_size or "-"),
                "-" if m.peak_memory_mb is None else f"{m.peak_memory_mb:.0f}",
                m.fast_paths,
                m.note,
            ])
        return text_table(["candidate", "samples/s", "vs input", "batch", "peak MB", "fast paths active", "note"], rows)


def default_candidates() -> list[tuple[str, list]]:
    """The speedups worth trying on this machine: each alone; :func:`tune` then combines the winners.

    Mixed float16 and cuDNN eligibility only where a GPU is visible (no x86 CPU gains from float16,
    and cuDNN is a GPU kernel); XLA; 4 and 16 steps per execution; the hoisted LSTM loop; mixed
    bfloat16 everywhere (each is measured at the model's own shapes, not assumed: the hoisted loop
    is slower than the stock one on some CPUs, and bf16 gains only where the CPU has AMX).
    """
    candidates: list[tuple[str, list]] = [
        ("mixed_bfloat16", [functools.partial(enable_mixed_precision, policy="mixed_bfloat16")]),
        ("xla", [use_xla]),
        ("steps_per_execution=4", [functools.partial(set_steps_per_execution, steps=4)]),
        ("steps_per_execution=16", [functools.partial(set_steps_per_execution, steps=16)]),
        ("hoist_lstm_projection", [hoist_lstm_projection]),
    ]
    if hardware.has_gpu():
        candidates[:0] = [
            ("mixed_float16", [functools.partial(enable_mixed_precision, policy="mixed_float16")]),
            ("cudnn", [functools.partial(enable_cudnn, skip_blocked=True)]),
        ]
    return candidates


def tune(
    model: Any,
    dataset: Any,
    candidates: Sequence[tuple[str, list]] | None = None,
    *,
    steps: int = 20,
    warmup_steps: int = 3,
    time_budget_s: float = 300.0,
    combine: bool = True,
    min_gain: float = 0.03,
    batch_sizes: Sequence[int] = (),
    memory_budget_mb: float | None = None,
) -> TuneResult:
    """Train a few steps of each candidate speedup on ``dataset`` and return the fastest configuration.

    Args:
        model: a compiled Sequential or functional model, Keras 3 or tf_keras (left untouched).
        dataset: batches of ``(x, y)``, a ``tf.data.Dataset`` (repeated as needed).
        candidates: ``(name, speedups)`` pairs, speedups as ``build_lstm`` takes them; by default
            :func:`default_candidates`.
        steps: timed training steps per candidate, after ``warmup_steps`` untimed ones (tracing and
            compilation happen there).
        warmup_steps: untimed training steps per candidate before the timed ones.
        time_budget_s: stop trying candidates after this many seconds (those left are reported as
            not measured).
        combine: also combine the candidates that beat the input: every pair of them, then each other
            one on top of the fastest pair, kept only where the combination measures faster still.
        min_gain: how much faster than the input a candidate must measure to count as faster
            (0.03: 3%); a smaller difference is within this kind of measurement's noise.
        batch_sizes: other batch sizes to try the input configuration with (samples/s compares
            them fairly); a winning batch size is combined with the winning speedups. A larger batch takes
            fewer, bigger steps per epoch: scale the learning rate with it (linearly, to start).
        memory_budget_mb: a candidate whose peak memory exceeds this is measured but not chosen.
            Peak memory is the GPU's peak allocation where there is a GPU, otherwise the process's
            peak resident memory during the candidate's run.

    Returns:
        A :class:`TuneResult`: ``model`` is a fresh copy of the input with the fastest speedups
        applied (or an unchanged copy when nothing beat the input), ``batch_size`` the batch to
        train it with, ``measurements`` the table, with the fast paths each candidate actually had
        in effect (compute dtype, XLA, steps per execution, how many LSTM/GRU layers can take cuDNN).

    Raises:
        ValueError: an uncompiled model, an empty dataset, a non-positive count or batch size,
            speedups that cannot be combined, or a dataset the input model cannot train on
            (unbatched, without labels, labels out of range: the input's own measurement fails).
        TypeError: a dataset that is not a ``tf.data.Dataset``, or a model fastnlp cannot rebuild.

    Examples:
        >>> import tensorflow as tf, numpy as np
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(20, units=8, num_layers=1)
        >>> data = tf.data.Dataset.from_tensor_slices((np.ones((64, 10), "int32"), np.ones((64, 10), "int32"))).batch(8)
        >>> result = tune(model, data, [("steps_per_execution=8", ["set_steps_per_execution"])], steps=8, warmup_steps=2)
        >>> [m.name for m in result.measurements][:2]
        ['input', 'steps_per_execution=8']
    """
    flavour.check_rebuildable(model)
    flavour.require_compiled(model, "tune trains the model")
    check_positive_int(steps=steps, warmup_steps=warmup_steps)
    check_non_negative_number(time_budget_s=time_budget_s, min_gain=min_gain)
    check_bool(combine=combine)
    batch_sizes = checked_list("batch_sizes", batch_sizes, numbers.Integral, "a list of positive integers")
    for size in batch_sizes:
        check_positive_int(batch_sizes=size)
    if memory_budget_mb is not None:
        check_positive_number(memory_budget_mb=memory_budget_mb)
    tried = [Candidate(name, tuple(speedups)) for name, speedups in _checked_candidates(candidates)]
    for candidate in tried:
        catalog.plan(candidate.speedups)  # unknown or impossible combinations fail now, not after minutes of tuning
    input_batch = _batch_size(dataset)
    tried += [Candidate(f"batch_size={size}", (), size) for size in sorted(set(batch_sizes) - {input_batch})]
    deadline = time.perf_counter() + time_budget_s

    def measure(candidate: Candidate) -> Measurement:
        size = candidate.batch_size or input_batch
        data = (dataset if size == input_batch else dataset.unbatch().batch(size, drop_remainder=True)).repeat()
        measured = _measure(candidate.name, model, list(candidate.speedups), data=data, steps=steps, warmup_steps=warmup_steps, batch_size=size)
        over = memory_budget_mb is not None and (measured.peak_memory_mb or 0) > memory_budget_mb
        note = f"over the memory budget ({measured.peak_memory_mb:.0f} MB > {memory_budget_mb:.0f} MB)" if over else measured.note
        return dataclasses.replace(measured, batch_size=size, within_budget=not over, note=note)

    baseline = measure(Candidate("input", ()))
    if baseline.samples_per_s is None:  # nothing can be compared with it, and every candidate would fail alike
        raise ValueError(
            f"tune: the input model cannot train on dataset ({baseline.note}); check that dataset yields "
            f"batches of (inputs, labels) the model accepts"
        )
    measured: dict[Candidate, Measurement] = {}
    for candidate in tried:
        if time.perf_counter() > deadline:
            measured[candidate] = Measurement(candidate.name, None, "skipped: time budget spent", candidate.batch_size or input_batch)
            continue
        measured[candidate] = measure(candidate)
    beats = functools.partial(_beats, baseline=baseline, min_gain=min_gain)
    winners = [candidate for candidate, m in measured.items() if beats(m)]
    if combine and len(winners) > 1:
        ranked = sorted(winners, key=lambda candidate: measured[candidate].samples_per_s, reverse=True)
        current = ranked[0]
        pairs = [_combined(a, b) for a, b in itertools.combinations(ranked, 2)]  # every pair: one noisy rank decides nothing
        for pair in filter(None, pairs):
            if time.perf_counter() <= deadline:
                measured[pair] = measure(pair)
                if _beats(measured[pair], measured[current], min_gain):
                    current = pair
        for other in ranked:  # then each other winner on top, kept only where it helps
            extended = _combined(current, other) if other.name not in current.name.split(" + ") else None
            if extended is not None and extended not in measured and time.perf_counter() <= deadline:
                measured[extended] = measure(extended)
                if _beats(measured[extended], measured[current], min_gain):
                    current = extended
    measurements = (baseline, *measured.values())
    within = [m for m in measurements if m.within_budget]
    if not within:
        raise ValueError(f"tune: every configuration, the input included, went over memory_budget_mb={memory_budget_mb}")
    best = max(within, key=lambda m: m.samples_per_s or 0.0)
    if best is baseline or not beats(best):
        return TuneResult(rebuild(model), "input", measurements, input_batch)
    winner = next(candidate for candidate, m in measured.items() if m is best)
    return TuneResult(_apply(model, winner.speedups), best.name, measurements, winner.batch_size or input_batch)


def _checked_candidates(candidates: Any) -> list[tuple[str, list]]:
    if candidates is None:
        return default_candidates()
    pairs = checked_list("candidates", candidates, (tuple, list), "a list of (name, speedups) pairs")
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(f"candidates must be (name, speedups) pairs, e.g. ('xla', ['use_xla']); got {pair!r}")
    return [(name, speedups) for name, speedups in pairs]


def _batch_size(dataset: Any) -> int:
    """The batch size of ``dataset``'s first element (samples per step)."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"tune needs dataset: a tf.data.Dataset of (x, y) batches, got {type(dataset).__name__}")
    first = next(iter(dataset.take(1)), None)
    if first is None:
        raise ValueError("dataset is empty")
    inputs = first[0] if isinstance(first, tuple) else first
    return int(tf.nest.flatten(inputs)[0].shape[0])


def _beats(measurement: Measurement, baseline: Measurement, min_gain: float) -> bool:
    if not (measurement.samples_per_s and baseline.samples_per_s and measurement.within_budget):
        return False
    return measurement.samples_per_s > baseline.samples_per_s * (1 + min_gain)


def _combined(first: Candidate, second: Candidate) -> Candidate | None:
    """``first`` and ``second`` together, or None where they cannot be combined (two batch sizes, or speedups
    that conflict)."""
    sizes = {size for size in (first.batch_size, second.batch_size) if size}
    speedups = first.speedups + second.speedups
    if len(sizes) > 1 or not _combinable(list(speedups)):
        return None
    return Candidate(f"{first.name} + {second.name}", speedups, next(iter(sizes), None))


def _combinable(speedups: list) -> bool:
    try:
        catalog.plan(speedups)
    except ValueError:
        return False
    return True


def _apply(model: Any, speedups: Iterable[Any]) -> Any:
    result = rebuild(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpeedupWarning)  # tune measured them: the table says what they did
        for transform, kwargs in catalog.plan(speedups):
            result = transform.func(result, **kwargs)
    return result


def _measure(name: str, model: Any, speedups: list, data: Any, steps: int, warmup_steps: int, batch_size: int) -> Measurement:
    try:
        candidate = _apply(model, speedups)
        clock = step_clock(candidate, batch_size)
        with PeakMemory() as memory:
            candidate.fit(data, steps_per_epoch=warmup_steps + steps, epochs=1, callbacks=[clock], shuffle=False, verbose=0)
    except Exception as error:  # a candidate that cannot run here is a result, not a crash
        return Measurement(name, None, f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}", batch_size)
    rate = clock.samples_per_second(warmup_steps)
    note = "" if rate else "too few timed steps: raise steps"
    return Measurement(name, rate, note, batch_size, memory.device_peak_mb, fast_paths=fast_paths(candidate))
