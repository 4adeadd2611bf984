"""The budget-aware pieces: the learning-rate budget, short windows first, train_char_lm and `fastnlp train`."""

import dataclasses
import json
import math
import types

import numpy as np
import pytest
from conftest import AMX_CPU

from fastnlp import (
    CharLMRecipe,
    build_lstm,
    char_lm_dataset,
    learning_rate_budget,
    load_checkpoint,
    train_char_lm,
)
from fastnlp.harness.cli import main
from fastnlp.recipes import training
from fastnlp.recipes.training import char_lm_loss, choose_recipe, split_text
from fastnlp.speedups.schedules import warmup_decay_factor
from fastnlp.speedups.tuning import Measurement

TINY = CharLMRecipe(units=16, num_layers=1, embedding_dim=8, seq_len=16, batch_size=8, learning_rate=1e-2)


def test_learning_rate_follows_warmup_and_decay_and_training_stops_at_the_step_budget(flavour):
    model = build_lstm(10, units=4, num_layers=1, learning_rate=0.02, flavour=flavour)
    budget = learning_rate_budget(model, steps=10, warmup_fraction=0.2, final_fraction=0.1)
    seen = []
    record = type(budget).__mro__[-2]()  # a plain callback of the same flavour (its Callback base)
    record.on_train_batch_begin = lambda batch, logs=None: seen.append(float(model.optimizer.learning_rate.numpy()))
    x = np.zeros((40, 5), "int32")
    model.fit(x, x, batch_size=2, epochs=5, callbacks=[budget, record], verbose=0)

    assert budget.steps_done == 10 and int(model.optimizer.iterations.numpy()) == 10
    expected = [0.02 * warmup_decay_factor(step / 10, 0.2, 0.1) for step in range(10)]
    np.testing.assert_allclose(seen, expected, rtol=1e-5)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)  # the peak again after fit


def test_learning_rate_budget_in_seconds_stops_the_fit(step_seconds):
    step_seconds(0.125)  # a power of two: the sum is exact
    model = build_lstm(10, units=4, num_layers=1)
    budget = learning_rate_budget(model, seconds=0.5)
    x = np.zeros((64, 5), "int32")
    model.fit(x, x, batch_size=2, epochs=1000, callbacks=[budget], verbose=0)
    assert budget.steps_done == 4 and budget.elapsed_s == pytest.approx(0.5) and budget.progress >= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [({}, "give the budget"), ({"seconds": -5}, "seconds must be"), ({"seconds": math.inf}, "seconds must be"),
     ({"steps": 0}, "steps must be"), ({"steps": 5, "warmup_fraction": 1}, "warmup_fraction"),
     ({"steps": 5, "final_fraction": 2}, "final_fraction")],
)
def test_learning_rate_budget_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        learning_rate_budget(build_lstm(10, units=4, num_layers=1), **kwargs)


def test_learning_rate_budget_needs_a_numeric_learning_rate():
    import keras

    model = build_lstm(10, units=4, num_layers=1)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="not a schedule"):
        learning_rate_budget(model, steps=5)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compile the model first"):
        learning_rate_budget(plain, steps=5)


def test_short_windows_come_first_and_only_once():
    data = char_lm_dataset("to be or not to be, " * 500, seq_len=16, batch_size=4, seq_len_warmup=6)
    first = [tuple(x.shape) for x, _ in data.train.take(8)]
    again = [tuple(x.shape) for x, _ in data.train.take(8)]
    assert first == [(4, 2), (4, 2), (4, 4), (4, 4), (4, 8), (4, 8), (4, 16), (4, 16)]
    assert again == [(4, 16)] * 8
    for ids, targets in data.train.take(3):  # cut windows still pair each id with the next one
        assert np.array_equal(ids.numpy()[:, 1:], targets.numpy()[:, :-1])


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_seq_len_warmup_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="seq_len_warmup"):
        char_lm_dataset("abcdefgh" * 20, seq_len=4, seq_len_warmup=bad)


def test_split_text_and_loss_measure():
    assert split_text("abcdefghij", 0.3) == ("abcdefg", "hij")
    with pytest.raises(ValueError, match="validation_split"):
        split_text("abc", 0)
    model = build_lstm(4, units=4, num_layers=1)
    assert char_lm_loss(model, np.arange(100) % 4, window=8) == pytest.approx(math.log(4), abs=0.05)
    with pytest.raises(ValueError, match="window=64"):
        char_lm_loss(model, np.arange(30) % 4)


def test_recipe_grows_with_the_budget():
    rate = 68e9  # the machine's measured matmul rate, given: the rule, not this machine's speed, is under test
    short, long = choose_recipe(37, matmul_flops=rate), choose_recipe(300, matmul_flops=rate)
    assert short.units < long.units
    with pytest.raises(ValueError, match="budget_s"):
        choose_recipe(0)


def test_train_char_lm_learns_and_never_trains_on_the_held_out_tail(flavour, step_seconds):
    text = "abc" * 1800 + "xyz" * 200  # exactly the last 10% is a text the model never sees
    step_seconds(2**-5)  # 160 steps in the 5 s budget, on any machine under any load
    result = train_char_lm(text, budget_s=5, recipe=TINY, evaluations=2, flavour=flavour)
    ids = result.vocabulary.encode("abcabcabcabcabc" * 20)
    assert result.vocabulary.chars == "abcxyz"
    assert char_lm_loss(result.model, ids) < 0.5  # it learned the training text
    assert result.validation_loss > 2.0  # and knows nothing of the tail
    assert [t for t, _ in result.curve] == [0.0, 0.5, 1.0, 2.0, 2.5, 5.0]  # log-spaced early, then evenly (it was 0, 2.5, 5)
    assert result.steps == 160 and result.training_s == pytest.approx(5)


def test_train_char_lm_rejects_bad_input():
    with pytest.raises(ValueError, match="budget_s"):
        train_char_lm("abc" * 1000, budget_s=-5)
    with pytest.raises(ValueError, match="too short"):
        train_char_lm("abc" * 20, budget_s=1, recipe=TINY)
    with pytest.raises(TypeError, match="text must be a str"):
        train_char_lm(b"abc", budget_s=1)
    with pytest.raises(ValueError, match="only one distinct character"):  # it blamed vocab_size, never passed
        train_char_lm("a" * 3000, budget_s=1, recipe=TINY)
    with pytest.raises(ValueError, match="recipe.execution must be one of"):
        train_char_lm("abc" * 1000, budget_s=1, recipe=dataclasses.replace(TINY, execution="fast"))


class FakeProbe:
    """Stands in for the execution probe (``tune``): records what it was asked to measure, answers ``best``
    (and measurements in which the stock layer is faster than the hoisted one in float32)."""

    def __init__(self, best):
        self.best, self.asked = best, []

    def __call__(self, model, data, candidates, **options):
        self.asked.append([name for name, _ in candidates])
        rates = {"input": 100.0, "hoisted": 90.0, "bf16": 120.0, "hoisted + bf16": 130.0}
        names = ["input"] + [name for name, _ in candidates]
        measurements = [Measurement(name, rates[name], vs_input=rates[name] / rates["input"]) for name in names]
        return types.SimpleNamespace(best=self.best, measurements=measurements)


def losses_by_precision(bf16_loss, float32_loss):
    """A ``validate`` that scores a model by the precision it computes in, and records what it scored."""
    scored = []

    def validate(model, ids):
        lstm = next(layer for layer in model.layers if "lstm" in layer.name)
        scored.append(lstm.dtype_policy.name)
        return bf16_loss if "bfloat16" in lstm.dtype_policy.name else float32_loss

    return validate, scored


def test_a_long_budget_runs_the_execution_the_probe_measured_fastest(cpu_kind, step_seconds, monkeypatch):
    probe = FakeProbe("hoisted + bf16" if "amx_bf16" in cpu_kind else "stock")
    monkeypatch.setattr(training, "tune", probe)
    step_seconds(60.0)  # two steps in the budget

    validate, scored = losses_by_precision(bf16_loss=2.0, float32_loss=2.0)  # bf16 no worse: it stays
    result = train_char_lm("abc" * 2000, budget_s=training.PROBE_MIN_BUDGET_S, recipe=TINY, evaluations=1, validate=validate)

    on_amx = "amx_bf16" in cpu_kind
    assert probe.asked == [["hoisted", "bf16", "hoisted + bf16"] if on_amx else ["hoisted"]]  # bf16 only where AMX runs it
    assert result.recipe.execution == probe.best
    race = ["float32", "mixed_bfloat16"] if on_amx else []  # bf16's quality at equal time, against float32's
    assert scored[: len(race)] == race
    lstm = next(layer for layer in result.model.layers if "lstm" in layer.name)
    assert (type(lstm).__name__, lstm.dtype_policy.name) == (("HoistedLSTM", "mixed_bfloat16") if on_amx else ("LSTM", "float32"))


def test_bf16_that_learns_less_in_equal_time_gives_way_to_the_fastest_float32_execution(step_seconds, machine, monkeypatch):
    machine.pretend(cpu_flags=AMX_CPU)
    monkeypatch.setattr(training, "tune", FakeProbe("hoisted + bf16"))
    step_seconds(6.0)  # the race's 5% of the budget: one step each
    validate, scored = losses_by_precision(bf16_loss=2.1, float32_loss=2.0)
    result = train_char_lm("abc" * 2000, budget_s=training.PROBE_MIN_BUDGET_S, recipe=TINY, evaluations=1, validate=validate)
    assert scored[:2] == ["float32", "mixed_bfloat16"]
    assert result.recipe.execution == "stock"  # the probe measured it faster than the hoisted loop in float32
    lstm = next(layer for layer in result.model.layers if "lstm" in layer.name)
    assert (type(lstm).__name__, lstm.dtype_policy.name) == ("LSTM", "float32")


def test_a_short_budget_runs_the_hoisted_loop_without_a_probe(step_seconds, monkeypatch):
    probe = FakeProbe("stock")
    monkeypatch.setattr(training, "tune", probe)
    step_seconds(0.5)
    result = train_char_lm("abc" * 2000, budget_s=2, recipe=TINY, evaluations=1)
    assert probe.asked == [] and result.recipe.execution == "hoisted"
    assert any(type(layer).__name__ == "HoistedLSTM" for layer in result.model.layers)


def test_train_command_writes_a_loadable_model_and_vocabulary(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log. " * 400, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["train", str(corpus), "--budget", "3", "--out", str(out)]) == 0
    chars = json.loads((out / "vocabulary.json").read_text(encoding="utf-8"))["chars"]
    assert chars == "".join(sorted(set(corpus.read_text(encoding="utf-8"))))
    model = load_checkpoint(out / "model.keras")
    for length in (64, 7):  # any sequence length
        probabilities = model.predict(np.zeros((2, length), "int32"), verbose=0)
        assert probabilities.shape == (2, length, len(chars))
    printed = capsys.readouterr().out
    assert printed.count("validation loss") == 1, printed  # one line per phase; -v adds one per evaluation


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--budget", "-5"], "argument --budget: must be a positive, finite number of seconds, got -5"),
        (["--budget", "3"], "cannot read"),
        (["--budget", "inf"], "argument --budget: must be a positive, finite"),
    ],
)
def test_train_command_refuses_bad_arguments_before_training(tmp_path, capsys, arguments, message):
    missing = str(tmp_path / "missing.txt")
    if message != "cannot read":
        missing = str(tmp_path / "corpus.txt")
        (tmp_path / "corpus.txt").write_text("abc" * 100, encoding="utf-8")
    try:
        code = main(["train", missing, *arguments, "--out", str(tmp_path / "out")])
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_learning_rate_budget_refuses_a_tf_keras_schedule_too():
    import tf_keras

    model = build_lstm(10, units=4, num_layers=1, flavour="tf_keras")
    schedule = tf_keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    model.compile(optimizer=tf_keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="not a schedule"):  # it was accepted, and the schedule silently won
        learning_rate_budget(model, steps=5)


def test_learning_rate_budget_schedules_the_model_it_is_fitted_with(flavour):
    from fastnlp import set_steps_per_execution

    model = build_lstm(10, units=4, num_layers=1, learning_rate=0.02, flavour=flavour)
    copy = set_steps_per_execution(model, steps=1)  # a transformed copy, its own optimizer
    budget = learning_rate_budget(model, steps=4, warmup_fraction=0.0, final_fraction=0.1)
    seen = []
    record = type(budget).__mro__[-2]()
    record.on_train_batch_begin = lambda batch, logs=None: seen.append(float(copy.optimizer.learning_rate.numpy()))
    x = np.zeros((16, 5), "int32")
    copy.fit(x, x, batch_size=2, epochs=5, callbacks=[budget, record], verbose=0)
    assert seen[0] == pytest.approx(0.02) and seen[-1] < 0.02 * 0.5  # the copy's rate decays
    assert budget.steps_done == 4 and int(copy.optimizer.iterations.numpy()) == 4
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)  # the original's is left alone


def test_learning_rate_budget_counts_optimizer_steps_under_steps_per_execution(flavour):
    from fastnlp import set_steps_per_execution

    model = set_steps_per_execution(build_lstm(10, units=4, num_layers=1, flavour=flavour), steps=4)
    budget = learning_rate_budget(model, steps=8)
    x = np.zeros((64, 5), "int32")
    model.fit(x, x, batch_size=2, epochs=10, callbacks=[budget], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 8 and budget.steps_done == 8  # it ran 32


def test_a_large_vocabulary_is_scored_in_chunks():
    class Uniform:
        """A stand-in model over 100,000 characters that records the batches it is called on."""

        output_shape = (None, None, 100_000)
        batches: list = []

        def __call__(self, ids, training=False):
            self.batches.append(len(ids))
            return np.full((*ids.shape, 100_000), 1e-5, "float32")

    model = Uniform()
    loss = char_lm_loss(model, np.arange(64 * 6 + 1) % 100_000)
    assert loss == pytest.approx(math.log(100_000), rel=1e-4)
    assert max(model.batches) * 64 * 100_000 <= 2**24 and sum(model.batches) == 6  # it asked for 512 windows at once: 13 GB


def test_the_recipe_of_an_absurd_budget_is_the_largest_not_an_overflow():
    assert choose_recipe(1e300, matmul_flops=68e9).units == 1024


def test_every_training_window_comes_once_a_pass_in_a_new_order_each_pass():
    text = "".join(chr(97 + i % 26) for i in range(16 * 40 + 1))
    data = char_lm_dataset(text, seq_len=16, batch_size=8, validation_split=0.0)
    expected = data.vocabulary.encode(text[: 16 * 40]).reshape(40, 16)
    passes = [np.concatenate([ids.numpy() for ids, _ in data.train]) for _ in range(2)]
    for windows in passes:  # each window once (there is no shuffle buffer to fill first)
        assert sorted(map(tuple, windows)) == sorted(map(tuple, expected))
    assert not np.array_equal(passes[0], passes[1])  # reshuffled each pass


def test_progress_is_scored_on_a_sample_of_the_tail_spread_over_it():
    class Counting:
        output_shape = (None, None, 4)
        rows = 0

        def __call__(self, ids, training=False):
            Counting.rows += len(ids)
            return np.full((*ids.shape, 4), 0.25, "float32")

    assert char_lm_loss(Counting(), np.arange(64 * 1000 + 1) % 4, max_windows=256) == pytest.approx(math.log(4))
    assert Counting.rows == 256  # of 1,000 windows


def test_scoring_ids_outside_the_models_vocabulary_is_refused():
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 4\).*from 0 to 9"):  # an IndexError deep in NumPy
        char_lm_loss(build_lstm(4, units=4, num_layers=1), np.arange(200) % 10, window=8)
