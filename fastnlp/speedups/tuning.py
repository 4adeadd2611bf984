"""``tune``: measure the speedups on this machine and keep the fastest combination.

A speedup is not a speedup until measured on the machine at hand: the same speedup is a gain on one
CPU kind and a loss on another (docs/benchmarks.md). :func:`tune` trains a few steps of each
candidate (a copy of the model with some registered speedups applied), times them after warm-up
(graph tracing and XLA compilation excluded), and returns the fastest as a fresh copy of the input
model, with the table of what it measured. The input is measured too, and a candidate must beat it
by a margin (``min_gain``, 3%) to be chosen, so noise does not pick a configuration that is slower.

Candidates are timed as the guide says to compare on a noisy machine: together, in alternating
rounds, each round's rate divided by the input's rate in the same round, and the median of those
ratios. A stretch when the machine is slow then falls on every candidate of that round alike, instead
of on whichever candidate happened to be running. Where candidates are combined, the three fastest
are measured once more, together, before the choice, which then rests on all their rounds.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import numbers
import statistics
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from fastnlp.core import flavour, hardware
from fastnlp.core.measure import PeakMemory, device_memory_mb, fast_paths, step_clock
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
    peak_memory_mb: float | None = None  # what the process held when tune began plus what its warm-up added (GPU, or resident)
    within_budget: bool = True  # False: it needed more memory than tune's memory_budget_mb
    fast_paths: str = ""  # what was actually in effect: dtype policy, XLA, steps per execution, cuDNN layers
    vs_input: float | None = None  # the median of its rates over the input's, round by round (the input: 1.0)


@dataclasses.dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found: the fastest configuration as a ready model, and every measurement."""

    model: Any  # a fresh copy of the input model with ``best`` applied (untrained beyond the input)
    best: str
    measurements: tuple[Measurement, ...]
    batch_size: int  # the batch size to train with (the dataset's own unless a larger one won)

    def __str__(self) -> str:
        rows = []
        for m in self.measurements:
            rows.append([
                m.name + (" <- chosen" if m.name == self.best else ""),
                "-" if m.samples_per_s is None else f"{m.samples_per_s:.1f}",
                "-" if m.vs_input is None else f"{m.vs_input:.2f}x",
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
    rounds: int = 3,
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
            compilation happen there), split over ``rounds`` (each round two executions at least).
        warmup_steps: untimed training steps per candidate before the timed ones.
        rounds: how many times the candidates measured together (and the input with them) take
            turns; each candidate's figure is the median over the rounds of its rate over the input's.
        time_budget_s: stop trying candidates after this many seconds (those left are reported as
            not measured).
        combine: also combine the candidates that ran: every pair (two that are no faster alone can be
            faster together), then each other candidate on top of the fastest, kept only where the
            combination measures faster still; then measure the three fastest once more, together.
        min_gain: how much faster than the input a candidate must measure to count as faster
            (0.03: 3%); a smaller difference is within this kind of measurement's noise.
        batch_sizes: other batch sizes to try the input configuration with (samples/s compares
            them fairly); a winning batch size is combined with the winning speedups. A larger batch takes
            fewer, bigger steps per epoch: scale the learning rate with it (linearly, to start).
        memory_budget_mb: a candidate whose peak memory exceeds this is measured but not chosen.
            A candidate's peak memory is what the process held when ``tune`` began plus what its
            warm-up added at its peak: GPU allocations where there is a GPU, otherwise resident memory.

    Returns:
        A :class:`TuneResult`: ``model`` is a fresh copy of the input with the fastest speedups
        applied (or an unchanged copy when nothing beat the input), ``batch_size`` the batch to
        train it with, ``measurements`` the table: each candidate's median samples/s, its median
        ratio to the input round by round (what decides), and the fast paths it actually had in
        effect (compute dtype, XLA, steps per execution, how many LSTM/GRU layers can take cuDNN).

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
    check_positive_int(steps=steps, warmup_steps=warmup_steps, rounds=rounds)
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
    timing = _Rounds(
        model, dataset, input_batch, steps=steps, warmup_steps=warmup_steps, rounds=rounds,
        deadline=time.perf_counter() + time_budget_s, memory_budget_mb=memory_budget_mb,
    )
    measured = timing.measure(tried)
    ran = sorted((candidate for candidate, m in measured.items() if m.vs_input), key=lambda c: measured[c].vs_input, reverse=True)
    if combine and len(ran) > 1:
        current = ran[0]
        # every pair of candidates that ran, faster alone or not: on the masked GRU classifier neither the hoisted
        # loop nor bfloat16 beat the input alone, and the two together trained 1.35x as fast
        pairs = [_combined(a, b) for a, b in itertools.combinations(ran, 2)]
        for pair, m in timing.measure(list(filter(None, pairs))).items():
            measured[pair] = m
            if _beats(m, measured[current], min_gain):
                current = pair
        for other in ran:  # then each other candidate on top, kept only where it helps
            extended = _combined(current, other) if other.name not in current.name.split(" + ") else None
            if extended is not None and extended not in measured and not timing.spent():
                measured[extended] = timing.measure([extended])[extended]
                if _beats(measured[extended], measured[current], min_gain):
                    current = extended
        finalists = sorted(
            (c for c, m in measured.items() if m.vs_input and m.within_budget), key=lambda c: measured[c].vs_input, reverse=True
        )
        if not timing.spent():  # the fastest few again, together: a lucky round decides less with twice the rounds
            measured.update(timing.measure(finalists[:_FINALISTS]))
    baseline = timing.baseline()
    measurements = (baseline, *measured.values())
    within = [m for m in measurements if m.within_budget]
    if not within:
        raise ValueError(f"tune: every configuration, the input included, went over memory_budget_mb={memory_budget_mb}")
    best = max(within, key=lambda m: m.vs_input or 0.0)
    if best is baseline or not _beats(best, baseline, min_gain):
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


def _beats(measurement: Measurement, reference: Measurement, min_gain: float) -> bool:
    """Whether ``measurement`` is faster than ``reference`` by more than ``min_gain``, both against the input."""
    if not (measurement.vs_input and reference.vs_input and measurement.within_budget):
        return False
    return measurement.vs_input > reference.vs_input * (1 + min_gain)


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


class _Trial:
    """One candidate: a copy of the model with its speedups, traced in a warm-up fit, then trained in timed spells."""

    def __init__(self, candidate: Candidate, model: Any, data: Any, warmup_steps: int, batch_size: int) -> None:
        self.data = data
        self.model = _apply(model, candidate.speedups)
        self.clock = step_clock(self.model, batch_size)
        with PeakMemory() as memory:
            self._fit(warmup_steps)
        self.added_memory_mb = memory.device_increase_mb
        self.steps_per_execution = int((self.model.get_compile_config() or {}).get("steps_per_execution") or 1)
        self.fast_paths = fast_paths(self.model)

    def spell(self, steps: int) -> float | None:
        """Train about ``steps`` steps (whole executions, two at least); the median samples/s between batch ends."""
        done = int(self.model.optimizer.iterations.numpy())
        self._fit(self.steps_per_execution * max(2, math.ceil(steps / self.steps_per_execution)))
        return self.clock.samples_per_second(done)

    def _fit(self, steps: int) -> None:
        self.model.fit(self.data, steps_per_epoch=steps, epochs=1, callbacks=[self.clock], shuffle=False, verbose=0)


#: how many candidates' copies of the model :func:`tune` trains in turn at once (with the input's)
_AT_ONCE = 4
#: how many of the fastest candidates :func:`tune` measures again, together, before it chooses
_FINALISTS = 3


class _Rounds:
    """Times candidates together with the input, in alternating rounds: each candidate's rate over the
    input's in the same round, and the median of those ratios (the input's trial is kept for every group).
    A candidate measured again adds its new rounds to its earlier ones."""

    def __init__(
        self, model: Any, dataset: Any, input_batch: int, *, steps: int, warmup_steps: int, rounds: int,
        deadline: float, memory_budget_mb: float | None,
    ) -> None:
        self.model, self.dataset, self.input_batch = model, dataset, input_batch
        self.spell_steps, self.warmup_steps, self.rounds = math.ceil(steps / rounds), warmup_steps, rounds
        self.deadline, self.memory_budget_mb = deadline, memory_budget_mb
        self.held_mb = device_memory_mb()  # what the process holds before any candidate: each adds its own to this
        self.input_rates: list[float] = []
        self.rates: dict[Candidate, list[float]] = {}
        self.ratios: dict[Candidate, list[float]] = {}
        started = self._start(Candidate("input"))
        if isinstance(started, Measurement):  # nothing can be compared with it, and every candidate would fail alike
            raise ValueError(
                f"tune: the input model cannot train on dataset ({started.note}); check that dataset yields "
                f"batches of (inputs, labels) the model accepts"
            )
        self.input = started

    def spent(self) -> bool:
        return time.perf_counter() > self.deadline

    def measure(self, candidates: list[Candidate]) -> dict[Candidate, Measurement]:
        """Each of ``candidates`` measured in alternating rounds with the input (skipped once the time budget is
        spent), :data:`_AT_ONCE` at a time, so that no more copies of the model are alive together."""
        results: dict[Candidate, Measurement] = {}
        for start in range(0, len(candidates), _AT_ONCE):
            results.update(self._measure_together(candidates[start : start + _AT_ONCE]))
        return results

    def _measure_together(self, candidates: list[Candidate]) -> dict[Candidate, Measurement]:
        results: dict[Candidate, Measurement] = {}
        trials: dict[Candidate, _Trial] = {}
        for candidate in candidates:
            if self.spent():
                results[candidate] = Measurement(candidate.name, None, "skipped: time budget spent", self._batch(candidate))
                continue
            started = self._start(candidate)
            if isinstance(started, Measurement):
                results[candidate] = started
            else:
                trials[candidate] = started
        rates = {candidate: self.rates.setdefault(candidate, []) for candidate in trials}  # pooled with any earlier rounds
        ratios = {candidate: self.ratios.setdefault(candidate, []) for candidate in trials}
        for round_ in range(self.rounds):
            if round_ and self.spent():
                break
            reference = self.input.spell(self.spell_steps)
            if reference:
                self.input_rates.append(reference)
            for candidate, trial in list(trials.items()):
                try:
                    rate = trial.spell(self.spell_steps)
                except Exception as error:  # a candidate that cannot run is a result, not a crash
                    results[candidate] = _failed(candidate.name, error, self._batch(candidate))
                    del trials[candidate]
                    continue
                if rate:
                    rates[candidate].append(rate)
                    if reference:
                        ratios[candidate].append(rate / reference)
        for candidate, trial in trials.items():
            results[candidate] = self._measurement(candidate.name, trial, rates[candidate], ratios[candidate])
        return {candidate: results[candidate] for candidate in candidates}

    def baseline(self) -> Measurement:
        """The input's measurement: its median rate over every round so far (1.0 against itself)."""
        return self._measurement("input", self.input, self.input_rates, [1.0] if self.input_rates else [])

    def _batch(self, candidate: Candidate) -> int:
        return candidate.batch_size or self.input_batch

    def _start(self, candidate: Candidate) -> _Trial | Measurement:
        size = self._batch(candidate)
        data = (self.dataset if size == self.input_batch else self.dataset.unbatch().batch(size, drop_remainder=True)).repeat()
        try:
            return _Trial(candidate, self.model, data, self.warmup_steps, size)
        except Exception as error:  # a candidate that cannot run is a result, not a crash
            return _failed(candidate.name, error, size)

    def _measurement(self, name: str, trial: _Trial, rates: list[float], ratios: list[float]) -> Measurement:
        size = trial.clock.batch_size
        peak = self.held_mb + trial.added_memory_mb
        over = self.memory_budget_mb is not None and peak > self.memory_budget_mb
        note = "" if rates else "too few timed steps: raise steps"
        if over:
            note = f"over the memory budget ({peak:.0f} MB > {self.memory_budget_mb:.0f} MB)"
        return Measurement(
            name, statistics.median(rates) if rates else None, note, size, peak, within_budget=not over,
            fast_paths=trial.fast_paths, vs_input=statistics.median(ratios) if ratios else None,
        )


def _failed(name: str, error: Exception, batch_size: int) -> Measurement:
    return Measurement(name, None, f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}", batch_size)
