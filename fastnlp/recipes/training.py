"""``train_char_lm``: the best character LM this machine can train in a given number of seconds.

The recipe (its method card and figures: docs/training.md, docs/benchmarks.md "Time to a good model"):
every-position targets on short windows, one LSTM layer run the faster way this machine measures (the
hoisted projection, unless a probe before a long budget finds otherwise: :func:`choose_execution`), a fairly high peak
learning rate decayed linearly to the end of the budget, and a model size that grows with the
budget. Validation is nanoGPT's ``shakespeare_char`` measure: the last ``validation_split`` of the
text as 64-character windows, each from a zero state, mean cross-entropy over every position.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours
from fastnlp.core.measure import step_matmul_flops, time_to
from fastnlp.core.validation import (
    check_callable,
    check_fraction,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
)
from fastnlp.preprocess import CharVocabulary, char_lm_dataset
from fastnlp.recipes.models import build_lstm
from fastnlp.speedups.precision import enable_mixed_precision
from fastnlp.speedups.tuning import tune
from fastnlp.speedups.schedules import learning_rate_budget

__all__ = [
    "EXECUTIONS", "CharLMRecipe", "CharLMResult", "Evaluations", "char_lm_loss", "char_lm_sampler", "choose_execution", "choose_recipe",
    "evaluation_times", "sample_text", "split_text", "train_char_lm",
]

#: Characters per window of the validation measure (nanoGPT's block size for shakespeare_char).
EVAL_WINDOW = 64
#: Held-out windows scored at most, spread over the tail: at each evaluation during training, and at the end
#: (tinyshakespeare's tail has 1,742; a large corpus's tail would take longer to score than a short budget).
PROGRESS_WINDOWS, FINAL_WINDOWS = 256, 4096
#: FLOP/s of a (32 x 256) @ (256 x 1024) product on the machine the recipe's rules were measured on,
#: and the budget at which that machine's best width was 256 units.
REFERENCE_MATMUL_FLOPS = 68e9
_REFERENCE_BUDGET_S = 37.0
#: The executions :func:`choose_execution` measures, by name: the speedups each applies to the recipe's model.
EXECUTIONS: dict[str, tuple[Any, ...]] = {
    "stock": (),
    "hoisted": ("hoist_lstm_projection",),
    "bf16": (functools.partial(enable_mixed_precision, policy="mixed_bfloat16"),),
    "hoisted + bf16": ("hoist_lstm_projection", functools.partial(enable_mixed_precision, policy="mixed_bfloat16")),
}
#: The shortest budget whose execution is measured first (the probe takes a few seconds of it); shorter
#: budgets run the hoisted loop, the faster one on the machines the recipe was measured on.
PROBE_MIN_BUDGET_S = 120.0
PROBE_STEPS = 12
#: Where the probe finds a bfloat16 execution fastest, it and the fastest float32 one each train this share
#: of the budget, and bfloat16 is kept only if its held-out loss is no worse than float32's (within
#: :data:`QUALITY_TOLERANCE`, the race's noise): faster steps are worth nothing if they learn less.
QUALITY_RACE_FRACTION = 0.05
QUALITY_TOLERANCE = 0.005


@dataclasses.dataclass(frozen=True)
class CharLMRecipe:
    """The settings :func:`train_char_lm` trains with (see :func:`choose_recipe`)."""

    units: int
    num_layers: int
    embedding_dim: int
    seq_len: int
    batch_size: int
    learning_rate: float
    warmup_fraction: float = 0.05
    final_fraction: float = 0.1
    seq_len_warmup: int = 0
    #: how the LSTM runs, a key of :data:`EXECUTIONS`; ``None``: measured on this machine at the start of
    #: training when the budget allows (:func:`choose_execution`), else ``"hoisted"``
    execution: str | None = None


@dataclasses.dataclass
class CharLMResult:
    """What :func:`train_char_lm` returns."""

    model: Any
    vocabulary: CharVocabulary
    recipe: CharLMRecipe
    curve: list[tuple[float, float]]  # (training seconds, validation loss), the last at the end of training
    steps: int
    training_s: float

    @property
    def validation_loss(self) -> float:
        """The validation loss of the returned model."""
        return self.curve[-1][1]

    def time_to(self, loss: float) -> float | None:
        """Training seconds at the first evaluation at or below ``loss`` (None: never reached)."""
        return time_to(self.curve, loss)


def choose_recipe(budget_s: float, matmul_flops: float | None = None) -> CharLMRecipe:
    """The settings for a budget of ``budget_s`` training seconds on this machine.

    The rules (docs/training.md has the runs they come from, and the machine):

    * width grows with the fifth root of the compute in the budget: a larger model learns more per
      step but takes fewer of them. The compute is ``budget_s`` times this machine's rate for the
      LSTM's step-shaped matrix product (``matmul_flops``, measured in about 0.3 s when not given),
      relative to the reference machine's;
    * 32-character windows and batches of 32: many cheap updates leave the unigram plateau soonest;
      the first 150 batches shorter still (``seq_len_warmup``);
    * the peak learning rate falls with the square root of the width (6e-3 at 256 units).

    Args:
        budget_s: training seconds.
        matmul_flops: this machine's FLOP/s for a ``(32 x 256) @ (256 x 1024)`` product, or ``None``
            to measure it.

    Returns:
        A :class:`CharLMRecipe`.

    Raises:
        ValueError: a budget or rate that is not positive.

    Examples:
        >>> choose_recipe(37, matmul_flops=REFERENCE_MATMUL_FLOPS).units, choose_recipe(300, matmul_flops=REFERENCE_MATMUL_FLOPS).units
        (256, 384)
    """
    check_positive_number(budget_s=budget_s)
    if matmul_flops is None:
        matmul_flops = step_matmul_flops(32, 256, 256)
    if not matmul_flops > 0:
        raise ValueError(f"matmul_flops must be positive, got {matmul_flops!r}")
    compute = min(budget_s * matmul_flops / (_REFERENCE_BUDGET_S * REFERENCE_MATMUL_FLOPS), 1e12)  # far past the cap
    units = int(min(max(64 * round(4 * compute**0.2), 128), 1024))
    return CharLMRecipe(
        units=units, num_layers=1, embedding_dim=64, seq_len=32, batch_size=32,
        learning_rate=round(6e-3 * math.sqrt(256 / units), 5), seq_len_warmup=150,
    )


def choose_execution(
    model: Any, data: Any, *, steps: int = PROBE_STEPS, loss_after: Callable[[str], float] | None = None
) -> str:
    """The faster way to run ``model`` here, a key of :data:`EXECUTIONS`, by a short in-process probe
    (:func:`fastnlp.tune`, ``steps`` timed steps each) at the model's own shapes on ``data``.

    It measures the stock LSTM against the hoisted loop and, on a CPU with AMX (bfloat16 matrix
    units), each in mixed bfloat16 too: the hoisted loop was slower than the stock layer at some
    shapes on such a CPU, and bfloat16 faster (docs/benchmarks.md). The fastest by at least 3% wins.
    Where that is a bfloat16 execution and ``loss_after(name) -> held-out loss`` (after equal training
    time) is given, it wins only if its loss is no worse than the fastest float32 execution's (within
    :data:`QUALITY_TOLERANCE`).

    Examples:
        >>> import numpy as np, tensorflow as tf
        >>> model = build_lstm(12, units=8, num_layers=1, seq_len=6)
        >>> ids = np.random.default_rng(0).integers(0, 12, (32, 6))
        >>> choose_execution(model, tf.data.Dataset.from_tensor_slices((ids, ids)).batch(8), steps=2) in EXECUTIONS
        True
    """
    from fastnlp.core import hardware

    names = ["hoisted"] + (["bf16", "hoisted + bf16"] if "amx_bf16" in hardware.cpu_flags() else [])
    measured = tune(model, data, [(name, list(EXECUTIONS[name])) for name in names], steps=steps, warmup_steps=2, combine=False)
    fastest = "stock" if measured.best == "input" else measured.best
    if loss_after is None or "bf16" not in fastest:
        return fastest
    speeds = {("stock" if m.name == "input" else m.name): m.vs_input or 0.0 for m in measured.measurements}
    float32 = max((name for name in speeds if "bf16" not in name), key=speeds.__getitem__)
    reference = loss_after(float32)
    return fastest if loss_after(fastest) <= reference * (1 + QUALITY_TOLERANCE) else float32


def split_text(text: str, validation_split: float = 0.1) -> tuple[str, str]:
    """``(training text, held-out text)``: the last ``validation_split`` of ``text`` is held out.

    Examples:
        >>> split_text("abcdefghij", 0.2)
        ('abcdefgh', 'ij')
    """
    check_fraction("validation_split", validation_split, include_zero=False)
    cut = len(text) - int(round(len(text) * validation_split))
    return text[:cut], text[cut:]


#: At most this many probabilities (float32) are held at once while scoring: 64 MB.
_SCORING_ELEMENTS = 2**24


def char_lm_loss(
    model: Any, ids: np.ndarray, window: int = EVAL_WINDOW, batch_size: int = 512, max_windows: int | None = None
) -> float:
    """Mean cross-entropy (nats) of every next id over ``ids`` cut into ``window``-long windows, each from a zero state.

    ``max_windows`` scores at most that many windows, spread evenly over ``ids`` (all of them by default).

    Windows are scored ``batch_size`` at a time, fewer where the vocabulary is large, so that at most
    64 MB of probabilities are held at once (100,000 distinct characters took 6 GB before).

    Examples:
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(5, units=4, num_layers=1)
        >>> round(char_lm_loss(model, np.arange(200) % 5, window=8), 1)  # an untrained model: about log(5)
        1.6
    """
    ids = np.asarray(ids)
    windows = (len(ids) - 1) // window
    if windows < 1:
        raise ValueError(f"need more than window={window} ids to score, got {len(ids)}")
    inputs = ids[: windows * window].reshape(windows, window)
    targets = ids[1 : windows * window + 1].reshape(windows, window)
    if max_windows is not None and windows > max_windows:
        chosen = np.linspace(0, windows - 1, max_windows).round().astype(int)
        inputs, targets, windows = inputs[chosen], targets[chosen], max_windows
    vocabulary_size = int(model.output_shape[-1])
    if ids.min() < 0 or ids.max() >= vocabulary_size:
        raise ValueError(f"ids must lie in [0, {vocabulary_size}) (the model's vocabulary); got ids from {ids.min()} to {ids.max()}")
    batch_size = max(1, min(batch_size, _SCORING_ELEMENTS // (window * vocabulary_size)))
    total = 0.0
    for start in range(0, windows, batch_size):
        probabilities = model(inputs[start : start + batch_size], training=False)
        chosen = np.take_along_axis(np.asarray(probabilities), targets[start : start + batch_size, :, None], axis=2)
        total += float(-np.log(np.clip(chosen, 1e-7, 1.0)).sum())
    return total / targets.size


def evaluation_times(budget_s: float, evaluations: int) -> list[float]:
    """When :func:`train_char_lm` scores the model, before the end: 0.5, 1, 2, 4, ... seconds until the first of
    ``evaluations - 1`` evenly spaced times, then those, so that the curve shows how soon it leaves the plateau.

    Examples:
        >>> evaluation_times(75, 5)
        [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 45.0, 60.0]
    """
    interval = budget_s / evaluations
    early = [0.5 * 2**k for k in range(64) if 0.5 * 2**k < interval]
    return early + [interval * i for i in range(1, evaluations)]


def train_char_lm(
    text: str,
    budget_s: float,
    *,
    recipe: CharLMRecipe | None = None,
    validation_split: float = 0.1,
    evaluations: int = 8,
    flavour: str = "keras",
    seed: int = 0,
    report: Any = None,
    validate: Any = None,
) -> CharLMResult:
    """Train a character LM on ``text`` for ``budget_s`` training seconds; return the model, vocabulary and loss curve.

    The last ``validation_split`` of the text is held out and never trained on; the model is scored
    on it ``evaluations`` times, spread over the budget (evaluation time is not training time), on
    up to :data:`PROGRESS_WINDOWS` of its windows during training and :data:`FINAL_WINDOWS` at the end. The
    model takes id sequences of any length.

    Args:
        text: the corpus, any Unicode.
        budget_s: training seconds, counted from the first step (graph tracing included).
        recipe: the settings; by default :func:`choose_recipe` picks them from the budget.
        validation_split: the share of the text held out, at its end.
        evaluations: evenly spaced validation points on the curve (at least 1: the end); before the first,
            it also scores at 0.5, 1, 2, 4, ... seconds (:func:`evaluation_times`).
        flavour: ``"keras"`` (Keras 3) or ``"tf_keras"``.
        seed: seeds the shuffling.
        report: called with a line of text at each evaluation (e.g. ``print``).
        validate: ``validate(model, held_out_ids) -> loss`` replaces the 64-character-window
            measure (:func:`char_lm_loss`) on the curve, e.g. to score another recipe's way.

    Returns:
        A :class:`CharLMResult`: ``model``, ``vocabulary``, ``recipe``, ``curve`` of
        ``(training seconds, validation loss)``, ``steps`` and ``training_s``.

    Raises:
        TypeError: ``text`` is not a str.
        ValueError: a budget that is not positive, too little text for the recipe, or an argument out of range.

    Examples:
        >>> result = train_char_lm("to be or not to be, that is the question. " * 300, budget_s=2,
        ...                        recipe=CharLMRecipe(units=16, num_layers=1, embedding_dim=8, seq_len=16,
        ...                                            batch_size=8, learning_rate=1e-2), evaluations=1)
        >>> result.validation_loss < result.curve[0][1], result.vocabulary.size
        (True, 15)
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_positive_number(budget_s=budget_s)
    check_positive_int(evaluations=evaluations)
    if recipe is not None and not isinstance(recipe, CharLMRecipe):
        raise TypeError(f"recipe must be a CharLMRecipe (or None), got {type(recipe).__name__}")
    check_non_negative_int(seed=seed)
    check_callable(report=report, validate=validate)
    recipe = recipe or choose_recipe(budget_s)
    if recipe.execution is not None and recipe.execution not in EXECUTIONS:
        raise ValueError(f"recipe.execution must be one of {sorted(EXECUTIONS)} or None, got {recipe.execution!r}")
    train_text, held_out = split_text(text, validation_split)
    if len(held_out) <= EVAL_WINDOW or len(train_text) < recipe.seq_len * recipe.batch_size + 1:
        raise ValueError(
            f"the text ({len(text)} characters) is too short: it needs a held-out tail of more than {EVAL_WINDOW} "
            f"characters and at least one batch of {recipe.batch_size} x {recipe.seq_len} characters to train on"
        )
    vocabulary = CharVocabulary.from_text(text)  # the characters of the whole text, so that the held-out tail encodes
    if vocabulary.size < 2:
        raise ValueError(
            f"the text has only one distinct character ({vocabulary.chars!r}): there is nothing to predict; "
            f"give a text of at least two different characters"
        )
    held_out_ids = vocabulary.encode(held_out)
    data = char_lm_dataset(
        train_text, recipe.seq_len, recipe.batch_size, 0.0, vocabulary=vocabulary, seed=seed,
        seq_len_warmup=recipe.seq_len_warmup,
    )
    def model_running(speedups: tuple[Any, ...]) -> Any:
        return build_lstm(
            vocabulary.size, units=recipe.units, num_layers=recipe.num_layers, dropout=0.0,
            embedding_dim=recipe.embedding_dim, learning_rate=recipe.learning_rate, flavour=flavour, speedups=list(speedups),
        )

    def trained(execution: str, seconds: float) -> tuple[Any, Any]:
        """A new model run ``execution``'s way, and its budget of ``seconds`` (``fit`` it with the budget)."""
        model = model_running(EXECUTIONS[execution])
        budget = learning_rate_budget(
            model, seconds=seconds, warmup_fraction=recipe.warmup_fraction, final_fraction=recipe.final_fraction
        )
        return model, budget

    def held_out_loss(model: Any, final: bool = False) -> float:
        if validate is not None:
            return validate(model, held_out_ids)
        return char_lm_loss(model, held_out_ids, max_windows=FINAL_WINDOWS if final else PROGRESS_WINDOWS)

    def loss_after_race(execution: str) -> float:
        racer, race = trained(execution, budget_s * QUALITY_RACE_FRACTION)
        racer.fit(data.train, epochs=1_000_000, shuffle=False, callbacks=[race], verbose=0)
        return held_out_loss(racer)

    probe_s = 0.0
    if recipe.execution is None:
        started = time.perf_counter()
        chosen = (
            choose_execution(model_running(()), data.train, loss_after=loss_after_race)
            if budget_s >= PROBE_MIN_BUDGET_S else "hoisted"
        )
        probe_s = time.perf_counter() - started  # the probe trained too: its seconds come out of the budget
        recipe = dataclasses.replace(recipe, execution=chosen)
    model, budget = trained(recipe.execution, max(budget_s - probe_s, 1e-3))

    def score(final: bool = False) -> float:
        return held_out_loss(model, final)

    curve = [(0.0, score())]

    def evaluate(final: bool = False) -> None:
        curve.append((budget.elapsed_s, score(final)))
        if report is not None:
            report(f"{budget.elapsed_s:7.1f} s  {budget.steps_done:6d} steps  validation loss {curve[-1][1]:.4f}")

    times = evaluation_times(budget_s, evaluations)

    evaluations = flavours.callback_class(Evaluations, flavours.detect(model))(budget, times, evaluate)
    model.fit(data.train, epochs=1_000_000, shuffle=False, callbacks=[budget, evaluations], verbose=0)
    evaluate(final=True)
    return CharLMResult(model, vocabulary, recipe, curve, budget.steps_done, budget.elapsed_s)


class Evaluations:
    """Callback hooks: call ``evaluate()`` once the budget's training time passes each of ``times`` (seconds)."""

    def __init__(self, budget: Any, times: list[float], evaluate: Callable[[], None]) -> None:
        super().__init__()
        self.budget, self.times, self.evaluate = budget, list(times), evaluate

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        due = [t for t in self.times if t <= self.budget.elapsed_s]
        if due and self.budget.progress < 1:
            self.evaluate()  # once, even when a slow step (a trace) crossed several evaluation times
            del self.times[: len(due)]


def sample_text(
    next_probabilities: Any, vocabulary: CharVocabulary, prompt: str, length: int = 200, *, temperature: float = 1.0, seed: int = 0
) -> str:
    """``length`` characters sampled one at a time after ``prompt``.

    Args:
        next_probabilities: ``next_probabilities(ids) -> probabilities`` of the character after the
            id sequence ``ids`` (1-D, the prompt and what was sampled so far).
        vocabulary: the model's characters.
        prompt: text to start from (its characters must be in the vocabulary).
        length: characters to sample.
        temperature: below 1 sharpens the distribution, above 1 flattens it.
        seed: the sampling seed.

    Examples:
        >>> vocab = CharVocabulary("ab")
        >>> sample_text(lambda ids: np.array([0.0, 1.0]), vocab, "a", length=3)
        'bbb'
    """
    check_positive_int(length=length)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    rng = np.random.default_rng(seed)
    ids = list(vocabulary.encode(prompt))
    for _ in range(length):
        logits = np.log(np.clip(np.asarray(next_probabilities(np.asarray(ids, np.int32)), np.float64), 1e-12, 1)) / temperature
        weights = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(weights), p=weights / weights.sum())))
    return vocabulary.decode(ids[len(ids) - length :])


def char_lm_sampler(model: Any, window: int = EVAL_WINDOW) -> Any:
    """``next_probabilities`` for :func:`sample_text` from a model of ``build_lstm``'s char-LM shape: it reads
    the last ``window`` ids (the context length it is scored on), from a zero state."""
    import tensorflow as tf

    predict = tf.function(lambda ids: model(ids, training=False)[:, -1, :], reduce_retracing=True)

    def next_probabilities(ids: np.ndarray) -> np.ndarray:
        return predict(ids[None, -window:]).numpy()[0]

    return next_probabilities
