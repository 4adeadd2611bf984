"""tune: picks the fastest measured configuration, never one slower than the input, within a budget."""

import functools
import types

import numpy as np
import pytest
import tensorflow as tf

import fastnlp.speedups.tuning as tune_module
from fastnlp import build_lstm, enable_mixed_precision, set_steps_per_execution, tune
from fastnlp.speedups import catalog
from fastnlp.speedups.tuning import Measurement


def char_lm_data(batches=8, batch_size=8):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, (batches * batch_size, 12)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((ids, ids)).batch(batch_size)


SPE4 = ("steps_per_execution=4", [functools.partial(set_steps_per_execution, steps=4)])
BF16 = ("mixed_bfloat16", [functools.partial(enable_mixed_precision, policy="mixed_bfloat16")])


def test_tune_measures_real_training_and_leaves_the_input_untouched(flavour):
    model = build_lstm(20, units=8, num_layers=1, flavour=flavour)
    before = [w.copy() for w in model.get_weights()]

    result = tune(model, char_lm_data(), [SPE4], steps=8, warmup_steps=2)

    assert [m.name for m in result.measurements] == ["input", "steps_per_execution=4"]
    assert all(m.samples_per_s and m.samples_per_s > 0 for m in result.measurements)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before, result.model.get_weights(), strict=True):  # a fresh copy, not a trial-trained one
        np.testing.assert_array_equal(a, b)
    assert result.model is not model
    assert "samples/s" in str(result) and "<- chosen" in str(result)
    kernel = "cuDNN 1/1 recurrent layers" if tf.config.list_physical_devices("GPU") else "generic recurrent kernel (no GPU)"
    assert [m.fast_paths for m in result.measurements] == [
        f"float32, {kernel}", f"float32, 4 steps/execution, {kernel}"
    ]  # what was in effect, read from the trained candidates


class FakeTrial:
    """Stands in for a candidate's trial: each timed spell answers its rate from ``table`` (name -> samples/s, or
    (samples/s, MB its warm-up adds)), times the machine's speed at that spell, and is logged in ``spells``."""

    table: dict = {}
    spells: list = []
    speed = staticmethod(lambda spell: 1.0)

    def __init__(self, candidate, model, data, warmup_steps, batch_size):
        entry = self.table[candidate.name]
        self.name = candidate.name
        self.rate, self.added_memory_mb = entry if isinstance(entry, tuple) else (entry, 100.0)
        self.clock = types.SimpleNamespace(batch_size=batch_size)
        self.fast_paths = ""

    def spell(self, steps):
        self.spells.append(self.name)
        return None if self.rate is None else self.rate * self.speed(len(self.spells) - 1)


@pytest.fixture
def rates(monkeypatch):
    """Stand-in measurements: candidate name -> samples/s (see FakeTrial)."""
    monkeypatch.setattr(FakeTrial, "table", {})
    monkeypatch.setattr(FakeTrial, "spells", [])
    monkeypatch.setattr(tune_module, "_Trial", FakeTrial)
    monkeypatch.setattr(tune_module, "device_memory_mb", lambda: 0.0)  # the process holds nothing: budgets read exactly
    return FakeTrial.table


def test_the_fastest_candidate_wins_and_winners_are_combined(rates):
    rates.update({"input": 100.0, "steps_per_execution=4": 150.0, "mixed_bfloat16": 120.0,
                  "steps_per_execution=4 + mixed_bfloat16": 170.0})
    model = build_lstm(20, units=8, num_layers=1)

    result = tune(model, char_lm_data(), [SPE4, BF16])

    assert result.best == "steps_per_execution=4 + mixed_bfloat16"
    assert FakeTrial.spells[-12:] == ["input", "steps_per_execution=4 + mixed_bfloat16", "steps_per_execution=4", "mixed_bfloat16"] * 3
    # the three fastest, measured once more together before the choice
    assert result.model.get_compile_config()["steps_per_execution"] == 4
    assert result.model.get_layer("lstm_1").dtype_policy.name == "mixed_bfloat16"


def test_nothing_slower_than_the_input_is_ever_returned(rates):
    rates.update({"input": 100.0, "steps_per_execution=4": 90.0, "mixed_bfloat16": None})
    model = build_lstm(20, units=8, num_layers=1)

    result = tune(model, char_lm_data(), [SPE4, BF16])

    assert result.best == "input"
    assert result.model.get_layer("lstm_1").dtype_policy.name == "float32"
    assert result.model.get_compile_config().get("steps_per_execution", 1) == 1


def test_a_win_within_the_noise_margin_is_not_taken(rates):
    rates.update({"input": 100.0, "steps_per_execution=4": 102.0})
    assert tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [SPE4]).best == "input"
    assert tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [SPE4], min_gain=0.01).best == "steps_per_execution=4"


def test_the_time_budget_is_respected(rates):
    rates.update({"input": 100.0, "steps_per_execution=4": 150.0})
    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [SPE4, BF16], time_budget_s=0)
    assert [(m.name, m.samples_per_s) for m in result.measurements][1:] == [
        ("steps_per_execution=4", None), ("mixed_bfloat16", None)
    ]
    assert result.best == "input"


def test_a_candidate_that_cannot_run_is_reported_not_raised():
    odd = ("odd", [functools.partial(enable_mixed_precision, policy="mixed_float17")])  # fails when applied
    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [odd], steps=2, warmup_steps=1)

    measured = result.measurements[1]
    assert measured.samples_per_s is None and measured.note.startswith("failed: ValueError") and result.best == "input"


def test_candidates_take_turns_with_the_input_and_a_slow_stretch_decides_nothing(rates, monkeypatch):
    rates.update({"input": 100.0, "steps_per_execution=4": 130.0, "mixed_bfloat16": 120.0})
    # The machine runs at half speed for spells 1-3: steps_per_execution=4's and mixed_bfloat16's first spells,
    # then the input's second. Timed one after another, the first candidate would have measured 0.65x.
    monkeypatch.setattr(FakeTrial, "speed", staticmethod(lambda spell: 0.5 if 1 <= spell <= 3 else 1.0))

    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [SPE4, BF16], combine=False, rounds=3)

    assert FakeTrial.spells == ["input", "steps_per_execution=4", "mixed_bfloat16"] * 3
    assert result.best == "steps_per_execution=4"
    assert [round(m.vs_input, 2) for m in result.measurements] == [1.0, 1.3, 1.2]  # medians of the round-by-round ratios
    assert "1.30x" in str(result)


def test_at_most_four_candidates_take_turns_at_once(rates):
    names = [f"steps_per_execution={n}" for n in range(2, 8)]
    rates.update({"input": 100.0, **{name: 100.0 + n for n, name in enumerate(names)}})

    candidates = [(f"steps_per_execution={n}", [functools.partial(set_steps_per_execution, steps=n)]) for n in range(2, 8)]
    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), candidates, combine=False, rounds=2)

    first, second = ["input", *names[:4]], ["input", *names[4:]]
    assert FakeTrial.spells == first * 2 + second * 2  # fewer copies of the model alive at once
    assert result.best == names[-1]


def test_bad_input_raises_before_any_training(flavour):
    model = build_lstm(20, units=8, num_layers=1, flavour=flavour)
    with pytest.raises(ValueError, match="unknown speedup 'turbo'"):
        tune(model, char_lm_data(), [("turbo", ["turbo"])])
    with pytest.raises(TypeError, match="needs dataset: a tf.data.Dataset"):
        tune(model, [1, 2, 3], [SPE4])
    with pytest.raises(ValueError, match="dataset is empty"):
        tune(model, char_lm_data().take(0), [SPE4])
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        tune(model, char_lm_data(), [SPE4], steps=0)


@pytest.mark.parametrize("gpus", [[], [(9, 0)]], ids=["cpu-only", "gpu"])
def test_the_default_candidates_fit_the_machine(machine, gpus):
    machine.pretend(gpus=gpus)
    names = [name for name, _ in tune_module.default_candidates()]
    assert names[-5:] == ["mixed_bfloat16", "xla", "steps_per_execution=4", "steps_per_execution=16", "hoist_lstm_projection"]
    assert ("mixed_float16" in names) == ("cudnn" in names) == bool(gpus)
    for _, speedups in tune_module.default_candidates():
        catalog.plan(speedups)  # every default is a valid, registered speedup


def test_a_larger_batch_is_measured_and_chosen_with_the_winning_speedups(rates):
    rates.update({"input": 100.0, "steps_per_execution=4": 150.0, "batch_size=16": 130.0, "batch_size=32": 160.0,
                  "batch_size=32 + steps_per_execution=4": 210.0, "steps_per_execution=4 + batch_size=16": 170.0})

    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [SPE4], batch_sizes=[32, 16, 8])

    assert [m.name for m in result.measurements] == [
        "input", "steps_per_execution=4", "batch_size=16", "batch_size=32", "batch_size=32 + steps_per_execution=4",
        "steps_per_execution=4 + batch_size=16",
    ]  # the input's own batch size (8) is not measured twice; sizes in increasing order; two sizes never together
    assert [m.batch_size for m in result.measurements] == [8, 8, 16, 32, 32, 16]
    assert result.best == "batch_size=32 + steps_per_execution=4" and result.batch_size == 32
    assert result.model.get_compile_config()["steps_per_execution"] == 4


def test_winners_are_tried_in_pairs_then_extended_only_where_they_help(rates):
    xla = ("xla", ["use_xla"])
    rates.update({"input": 100.0, "steps_per_execution=4": 150.0, "xla": 140.0, "mixed_bfloat16": 120.0,
                  "steps_per_execution=4 + xla": 90.0, "steps_per_execution=4 + mixed_bfloat16": 130.0,
                  "xla + mixed_bfloat16": 200.0, "xla + mixed_bfloat16 + steps_per_execution=4": 150.0})

    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [SPE4, BF16, xla])

    assert [m.name for m in result.measurements][4:] == [
        "steps_per_execution=4 + xla", "steps_per_execution=4 + mixed_bfloat16", "xla + mixed_bfloat16",
        "xla + mixed_bfloat16 + steps_per_execution=4",
    ]  # the best pair is not the fastest single one's, and the third on top made it slower
    assert result.best == "xla + mixed_bfloat16"


def test_candidates_no_faster_alone_are_still_tried_together(rates):
    hoisted = ("hoist_lstm_projection", ["hoist_lstm_projection"])
    rates.update({"input": 100.0, "mixed_bfloat16": 100.0, "hoist_lstm_projection": 93.0, "steps_per_execution=4": 90.0,
                  "mixed_bfloat16 + hoist_lstm_projection": 135.0, "mixed_bfloat16 + steps_per_execution=4": 105.0,
                  "hoist_lstm_projection + steps_per_execution=4": 95.0,
                  "mixed_bfloat16 + hoist_lstm_projection + steps_per_execution=4": 120.0})

    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [BF16, hoisted, SPE4])

    assert [m.name for m in result.measurements][4:] == [
        "mixed_bfloat16 + hoist_lstm_projection", "mixed_bfloat16 + steps_per_execution=4",
        "hoist_lstm_projection + steps_per_execution=4", "mixed_bfloat16 + hoist_lstm_projection + steps_per_execution=4",
    ]  # every pair, then the one left on top of the best pair
    assert result.best == "mixed_bfloat16 + hoist_lstm_projection"  # as the GRU classifier measured on dev-cpu-512


def test_a_batch_over_the_memory_budget_is_not_chosen(rates):
    rates.update({"input": (100.0, 500.0), "batch_size=16": (140.0, 900.0), "batch_size=32": (180.0, 1500.0)})

    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(), [], batch_sizes=[16, 32], memory_budget_mb=1000)

    assert result.best == "batch_size=16" and result.batch_size == 16
    over = result.measurements[-1]
    assert not over.within_budget and "over the memory budget (1500 MB > 1000 MB)" in over.note
    assert "1500" in str(result)


def test_batch_sizes_are_measured_for_real_with_their_peak_memory():
    result = tune(build_lstm(20, units=8, num_layers=1), char_lm_data(batches=16), [], batch_sizes=[16], steps=4, warmup_steps=1)

    measured = result.measurements[-1]
    assert (measured.name, measured.batch_size) == ("batch_size=16", 16)
    assert measured.samples_per_s > 0 and measured.peak_memory_mb > 0
    assert result.batch_size in (8, 16)


def test_bad_batch_settings_raise():
    model = build_lstm(20, units=8, num_layers=1)
    with pytest.raises(ValueError, match="batch_sizes must be a positive integer"):
        tune(model, char_lm_data(), [], batch_sizes=[0])
    with pytest.raises(ValueError, match="memory_budget_mb must be a positive finite number"):
        tune(model, char_lm_data(), [], memory_budget_mb=0)


def test_a_dataset_the_input_cannot_train_on_is_an_error_not_a_choice():
    model = build_lstm(20, units=8, num_layers=1)
    ids = np.random.default_rng(0).integers(0, 20, (16, 6)).astype("int32")
    unbatched = tf.data.Dataset.from_tensor_slices((ids, ids))
    no_labels = tf.data.Dataset.from_tensor_slices(ids).batch(8)
    out_of_range = tf.data.Dataset.from_tensor_slices((ids, ids + 100)).batch(8)
    for dataset in (unbatched, no_labels, out_of_range):  # each returned best='input' with every row failed
        with pytest.raises(ValueError, match="the input model cannot train on dataset"):
            tune(model, dataset, [SPE4], steps=2, warmup_steps=1)
