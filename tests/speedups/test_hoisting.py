"""The hoisted-projection LSTM: the stock layer's outputs and gradients, a faster schedule, stock where it must."""

import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

from fastnlp import (
    LiteRTModel,
    applied_speedups,
    build_lstm,
    enable_mixed_precision,
    hoist_lstm_projection,
    load_checkpoint,
    to_tflite,
)
from fastnlp.core import flavour as flavours
from fastnlp.core.convert import convert
from fastnlp.core.notices import NoEffectWarning, SpeedupWarning
from fastnlp.speedups.hoisted_lstm import hoisted_lstm, hoisted_lstm_class, hoisted_recurrence, is_hoisted_lstm
from fastnlp.speedups.hoisted_gru import gru_recurrence, hoisted_gru_class, is_hoisted_gru
from fastnlp.speedups.hoisting import stock_recurrent_layers

pytestmark = pytest.mark.filterwarnings("ignore::fastnlp.SpeedupWarning")

LAYER_SETTINGS = [
    {"return_sequences": True},
    {"return_sequences": False},
    {"return_sequences": True, "go_backwards": True},
    {"return_state": True},
    {"return_sequences": True, "use_bias": False},
    {"return_sequences": True, "unit_forget_bias": False, "bias_initializer": "random_normal"},
]


def outputs_and_gradients(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        if isinstance(y, list):  # output, h, c: weigh each differently so that a mixed-up state shows
            y = y[0] + 2 * y[1] + 3 * y[2]
        loss = tf.reduce_sum(tf.sin(y))
    return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]


@pytest.mark.parametrize("settings", LAYER_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_outputs_and_gradients_equal_the_stock_layers(flavour, settings):
    keras = flavours.keras_module(flavour)
    x = np.random.default_rng(1).normal(size=(3, 9, 5)).astype("float32")
    stock = keras.layers.LSTM(6, **settings)
    stock(x)
    hoisted = hoisted_lstm_class(flavour).from_config(stock.get_config())
    hoisted(x)
    hoisted.set_weights(stock.get_weights())

    for expected, got in zip(outputs_and_gradients(stock, x), outputs_and_gradients(hoisted, x), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-5)


def test_recurrence_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    args = [tf.constant(rng.normal(size=shape), tf.float64) for shape in [(3, 2, 8), (2, 2), (2, 2), (2, 8)]]
    theoretical, numerical = tf.test.compute_gradient(lambda *a: hoisted_recurrence(*a)[0], args)
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, atol=1e-6)


def test_model_transform_keeps_predictions_and_records_itself(flavour):
    model = build_lstm(30, units=12, num_layers=2, seq_len=7, flavour=flavour)
    fast = hoist_lstm_projection(model)
    x = np.random.default_rng(0).integers(0, 30, (5, 7))

    assert [is_hoisted_lstm(fast.get_layer(f"lstm_{i}")) for i in (1, 2)] == [True, True]
    assert not is_hoisted_lstm(model.get_layer("lstm_1"))
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert applied_speedups(fast) == ("hoist_lstm_projection(['lstm_1', 'lstm_2'])",)


def test_layers_whose_math_it_cannot_reproduce_keep_the_stock_loop(flavour):
    keras = flavours.keras_module(flavour)
    plain = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, recurrent_dropout=0.1, name="rd")])
    with pytest.warns(SpeedupWarning, match="rd: recurrent_dropout"), pytest.warns(NoEffectWarning):
        result = hoist_lstm_projection(plain)
    assert not is_hoisted_lstm(result.get_layer("rd"))

    unrolled = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, unroll=True, return_sequences=True, name="un"), keras.layers.LSTM(2)])
    with pytest.warns(SpeedupWarning, match="un: unroll=True"):
        result = hoist_lstm_projection(unrolled)
    assert [is_hoisted_lstm(layer) for layer in result.layers] == [False, True]


MASKED_SETTINGS = [
    {"return_sequences": True},
    {"return_sequences": False},
    {"return_sequences": True, "go_backwards": True},
    {"return_sequences": True, "zero_output_for_mask": True},
    {"return_state": True, "go_backwards": True},
]


#: "mixed": right and left padding, a row with no padding and one with no step; "span": no row counts the first
#: step or the last two, which the loop then skips (the states carried over them are filled in)
MASKS = {
    "mixed": [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]],
    "span": [[0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]],
}


#: the settings a loop over part of the steps must fill in for: every step's output, the reversed order, the states
SPAN_SETTINGS = [MASKED_SETTINGS[0], MASKED_SETTINGS[2], MASKED_SETTINGS[4]]


@pytest.mark.parametrize(
    ("settings", "padding"),
    [(settings, "mixed") for settings in MASKED_SETTINGS] + [(settings, "span") for settings in SPAN_SETTINGS],
    ids=lambda value: ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value,
)
def test_a_mask_at_call_time_follows_keras_mask_semantics(flavour, settings, padding, monkeypatch):
    """Masked steps carry the states over, and outputs follow Keras."""
    keras = flavours.keras_module(flavour)
    x = tf.constant(np.random.default_rng(3).normal(size=(4, 6, 3)).astype("float32"))
    mask = tf.constant(np.array(MASKS[padding], bool))
    settings = dict(settings)  # the parameter is shared by cases
    zero_output = settings.pop("zero_output_for_mask", False)
    stock = keras.layers.LSTM(4, **settings)
    stock(x)
    hoisted = hoisted_lstm_class(flavour).from_config(stock.get_config())
    hoisted(x)
    hoisted.set_weights(stock.get_weights())
    stock.zero_output_for_mask = hoisted.zero_output_for_mask = zero_output  # as Bidirectional sets it
    module = sys.modules[type(hoisted).__module__]
    calls = []
    monkeypatch.setattr(module, "hoisted_lstm", lambda *a, **k: calls.append(1) or hoisted_lstm(*a, **k))

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, mask=mask, training=True)
            y = y[0] + 2 * y[1] + 3 * y[2] if isinstance(y, list) else y
            loss = tf.reduce_sum(tf.sin(y))
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    for expected, got in zip(run(stock), run(hoisted), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-5)
    assert calls  # the hoisted loop ran


#: (time, batch) masks for the recurrences, with the outputs whose gradients are checked: steps no row counts at
#: both ends (every output: the states filled in before and after the loop, and the final ones); every step masked
KEEPS = {"both_ends": ([[0, 0], [1, 0], [0, 1], [0, 0]], "all"), "nothing": ([[0, 0], [0, 0], [0, 0], [0, 0]], "states")}


@pytest.mark.parametrize("kept", list(KEEPS))
def test_masked_recurrence_gradient_matches_finite_differences(kept):
    rng = np.random.default_rng(4)
    args = [tf.constant(rng.normal(size=shape), tf.float64) for shape in [(4, 2, 8), (2, 2), (2, 2), (2, 8)]]
    mask, checked = KEEPS[kept]
    keep = tf.constant(mask, tf.float64)[:, :, None]
    for output in range(3 if checked == "all" else 1):  # every step's states, and the final h and c
        traced = tf.function(lambda *a, i=output: hoisted_recurrence(*a, keep=keep)[i])  # one graph for the many calls
        theoretical, numerical = tf.test.compute_gradient(traced, args)
        for t, n in zip(theoretical, numerical, strict=True):
            np.testing.assert_allclose(t, n, atol=1e-6)


def test_both_directions_of_a_bidirectional_lstm_are_hoisted(flavour, tmp_path):
    """Every merge mode, over a padded input, a GRU beside them: the outputs, the gradients, save and load."""
    keras = flavours.keras_module(flavour)
    inputs = keras.Input((7,), dtype="int32")
    embedded = keras.layers.Embedding(20, 5, mask_zero=True)(inputs)
    branches = []
    # every merge mode in Keras 3; two in tf_keras, whose Bidirectional traces slowly (the wrapper merges, not fastnlp)
    for mode in ("concat", "sum", "mul", "ave", None) if flavour == "keras" else ("concat", None):
        both = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), merge_mode=mode, name=f"both_{mode}")(embedded)
        branches.append(keras.layers.Concatenate()(both) if mode is None else both)
    branches.append(keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True), name="both_gru")(embedded))
    merged = keras.layers.Concatenate()(branches)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LSTM(3, go_backwards=True)(merged)))
    model.compile("adam", "mse")
    fast = hoist_lstm_projection(model)
    ids = np.random.default_rng(5).integers(1, 20, (3, 7))
    ids[0, 4:], ids[2, :2] = 0, 0
    y = np.random.default_rng(6).normal(size=(3, 2)).astype("float32")

    wrappers = [layer for layer in fast.layers if layer.name.startswith("both_")]
    assert len(wrappers) == (6 if flavour == "keras" else 3) and all(is_hoisted(w.forward_layer) and is_hoisted(w.backward_layer) for w in wrappers)
    for expected, got in zip(outputs_and_gradients_of(model, ids, y), outputs_and_gradients_of(fast, ids, y), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    fast.save(tmp_path / "fast.keras")
    loaded = load_checkpoint(tmp_path / "fast.keras")
    assert is_hoisted(loaded.get_layer("both_gru").backward_layer)
    np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=1e-5)
    stock = stock_recurrent_layers(fast)
    assert not any(is_hoisted(w.forward_layer) for w in stock.layers if w.name.startswith("both_"))


def is_hoisted(layer):
    return is_hoisted_lstm(layer) or is_hoisted_gru(layer)


GRU_SETTINGS = [
    {"reset_after": True, "return_sequences": True},
    {"reset_after": False, "return_sequences": True},
    {"reset_after": True, "go_backwards": True, "return_state": True},
    {"reset_after": False, "use_bias": False},
]


@pytest.mark.parametrize(
    ("settings", "padding"),
    [(settings, padding) for settings in GRU_SETTINGS for padding in (None, "mixed")] + [(GRU_SETTINGS[1], "span"), (GRU_SETTINGS[2], "span")],
    ids=lambda value: ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value),
)
def test_gru_outputs_and_gradients_equal_the_stock_layers(flavour, settings, padding):
    keras = flavours.keras_module(flavour)
    x = tf.constant(np.random.default_rng(7).normal(size=(4, 6, 3)).astype("float32"))
    mask = tf.constant(np.array(MASKS[padding], bool)) if padding else None
    stock = keras.layers.GRU(5, bias_initializer="random_normal", **settings)
    stock(x)
    hoisted = hoisted_gru_class(flavour).from_config(stock.get_config())
    hoisted(x)
    hoisted.set_weights(stock.get_weights())

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, mask=mask, training=True)
            y = y[0] + 2 * y[1] if isinstance(y, list) else y
            loss = tf.reduce_sum(tf.sin(y))
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    for expected, got in zip(run(stock), run(hoisted), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_recurrence_gradient_matches_finite_differences(reset_after):
    rng = np.random.default_rng(8)
    args = [tf.constant(rng.normal(size=shape), tf.float64) for shape in [(4, 2, 9), (2, 3), (3, 9), (9,)]]
    both_ends = tf.constant(KEEPS["both_ends"][0], tf.float64)[:, :, None]
    for masks, outputs in ((None, 1), (both_ends, 2)):
        for output in range(outputs):  # every step's state, and (masked: filled in after the loop) the final one
            traced = tf.function(lambda *a, i=output: gru_recurrence(*a, keep=masks, reset_after=reset_after)[i])  # noqa: B023
            theoretical, numerical = tf.test.compute_gradient(traced, args)
            for t, n in zip(theoretical, numerical, strict=True):
                np.testing.assert_allclose(t, n, atol=1e-5)


def outputs_and_gradients_of(model, x, y):
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_sum((out - y) ** 2)
    return [out.numpy(), *(tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_weights))]


def test_tflite_export_is_still_the_fused_lstm(flavour):
    model = hoist_lstm_projection(build_lstm(20, units=8, num_layers=1, seq_len=6, flavour=flavour))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lite = LiteRTModel(to_tflite(model))
    x = np.random.default_rng(0).integers(0, 20, (3, 6))
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops
    np.testing.assert_allclose(lite.predict(x), model.predict(x, verbose=0), atol=1e-4)


def test_convert_keeps_the_hoisted_layer_and_mixed_precision_composes():
    model = build_lstm(20, units=8, num_layers=1, seq_len=6, speedups=["hoist_lstm_projection"])
    converted = convert(model, "tf_keras")
    assert is_hoisted_lstm(converted.get_layer("lstm_1"))
    x = np.random.default_rng(0).integers(0, 20, (3, 6))
    np.testing.assert_allclose(converted.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)

    bf16 = enable_mixed_precision(model, "mixed_bfloat16")
    assert is_hoisted_lstm(bf16.get_layer("lstm_1")) and bf16.get_layer("lstm_1").dtype_policy.name == "mixed_bfloat16"
    history = bf16.fit(x, x, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_prune_after_hoisting_is_refused_in_build_lstm():
    with pytest.raises(ValueError, match="cannot be combined"):
        build_lstm(20, units=8, num_layers=1, speedups=["hoist_lstm_projection", "prune"])


def test_where_cudnn_would_run_the_layer_keeps_the_stock_path(flavour, monkeypatch, machine):
    hoisted_calls = []
    machine.pretend(gpus=[(9, 0)])  # as on a GPU machine
    module = sys.modules[hoisted_lstm_class(flavour).__module__]
    monkeypatch.setattr(module, "hoisted_lstm", lambda *a, **k: hoisted_calls.append(1))
    layer = hoisted_lstm_class(flavour).from_config(flavours.keras_module(flavour).layers.LSTM(4).get_config())
    layer(np.zeros((2, 3, 5), "float32"))  # the stock path (cuDNN on a GPU; here its generic fallback)
    assert hoisted_calls == []


def test_a_stateful_hoisted_lstm_has_the_stock_gradients_under_an_eager_tape(flavour):
    k = flavours.keras_module(flavour)
    config = k.layers.LSTM(4, stateful=True, return_sequences=True).get_config()
    stock, hoisted = k.layers.LSTM.from_config(config), hoisted_lstm_class(flavour).from_config(config)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 3)).astype("float32"))
    stock(x), hoisted(x)
    hoisted.set_weights(stock.get_weights())
    gradients = []
    for layer in (stock, hoisted):
        layer.reset_states() if hasattr(layer, "reset_states") else layer.reset_state()
        layer(x)  # a state that is not zero
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) ** 2)
        gradients.append(tape.gradient(loss, layer.trainable_weights))
    for stock_gradient, hoisted_gradient in zip(*gradients, strict=True):  # off by up to 0.15 when read after the update
        np.testing.assert_allclose(hoisted_gradient, stock_gradient, atol=1e-5)


def test_tf_keras_hoisted_lstm_trains_with_dropout_and_runs_eagerly_in_mixed_precision():
    import tf_keras

    model = tf_keras.Sequential([
        tf_keras.Input((6,), dtype="int32"), tf_keras.layers.Embedding(20, 8),
        tf_keras.layers.LSTM(8, dropout=0.3, return_sequences=True), tf_keras.layers.Dense(20, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 20, (4, 6))
    hoisted = hoist_lstm_projection(model)
    assert np.isfinite(hoisted.fit(x, x, verbose=0).history["loss"]).all()  # a transpose error before
    mixed = enable_mixed_precision(hoisted, "mixed_bfloat16")
    np.testing.assert_allclose(mixed(x), model(x), atol=3e-2)  # custom_gradient took its AutoCastVariables for its own
