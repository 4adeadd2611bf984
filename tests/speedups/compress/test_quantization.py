"""quantize: LSTM/GRU quantization-aware training; what prune and quantize both refuse."""

import functools

import keras
import numpy as np
import pytest
import tf_keras
from compress_data import SEQ, VOCAB, masked_bidirectional_tagger, pattern_data, trained_float_model

from fastnlp import (
    LiteRTModel,
    build_lstm,
    enable_mixed_precision,
    prune,
    quantize,
    to_tflite,
)
from fastnlp.core import flavour as flavours
from fastnlp.core.convert import convert
from fastnlp.core.notices import FlavourWarning

pytestmark = pytest.mark.filterwarnings("ignore::fastnlp.FlavourWarning")


@pytest.mark.parametrize("transform", [prune, quantize])
def test_keras3_input_warns_that_the_result_is_tf_keras(transform):
    with pytest.warns(FlavourWarning, match="tf_keras"):
        transform(build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ))


@pytest.mark.parametrize("transform", [prune, quantize])
def test_unsupported_layer_is_named(transform):
    inputs = keras.Input((SEQ, 4))
    outputs = keras.layers.Dense(2)(keras.layers.Bidirectional(keras.layers.SimpleRNN(4), name="both_ways")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(loss="mse")
    with pytest.raises(TypeError, match=r"'both_ways' \(Bidirectional of SimpleRNN\); it takes a Bidirectional of LSTM or GRU"):
        transform(model)


@pytest.mark.filterwarnings("ignore::fastnlp.SpeedupWarning")
@pytest.mark.parametrize("transform", [prune, quantize])
def test_mixed_precision_model_is_refused(transform):
    bf16 = functools.partial(enable_mixed_precision, policy="mixed_bfloat16")
    model = build_lstm(VOCAB, units=8, num_layers=1, speedups=[bf16])
    with pytest.raises(ValueError, match="needs a float32 model"):
        transform(model)


def test_quantize_aware_fine_tune_stays_close_to_the_float_model(flavour):
    float_model = trained_float_model()
    if flavour == "tf_keras":
        float_model = convert(float_model, "tf_keras")
    x, y = pattern_data(seed=1)
    qat = quantize(float_model)
    qat.fit(x, y, epochs=10, batch_size=16, verbose=0)  # 40 steps: the output ranges start at tfmot's +-6 and settle

    expected, got = float_model.predict(x, verbose=0), qat.predict(x, verbose=0)
    # Measured when this test was written: max 0.066, mean 0.0024 (before any fine-tune: max 0.66, 67%
    # of argmaxes kept; after 12 steps: max 0.20). 8-bit logits move by range/255 per step, and a
    # confident softmax amplifies that near 0.5; the bounds leave room for seeds and platforms, while
    # an unquantized LSTM or an uncalibrated range would break them. The learned task must survive.
    assert np.abs(got - expected).max() < 0.15
    assert np.abs(got - expected).mean() < 0.01
    assert (got.argmax(-1) == expected.argmax(-1)).mean() == 1.0


def test_quantize_handles_masked_classifiers():
    model = build_lstm(50, task="classify", units=8, num_layers=2, flavour="tf_keras")
    x = np.random.default_rng(0).integers(1, 50, (16, 7))
    x[:, 5:] = 0  # right padding
    qat = quantize(model)
    qat.fit(x, np.arange(16) % 2, epochs=1, verbose=0)
    assert qat.predict(x, verbose=0).shape == (16, 2)


def test_quantize_trains_a_gru_model_and_exports_it():
    inputs = tf_keras.Input((SEQ,), dtype="int32")
    h = tf_keras.layers.Embedding(VOCAB, 8)(inputs)
    h = tf_keras.layers.GRU(8, return_sequences=True, name="gru")(h)
    outputs = tf_keras.layers.Dense(VOCAB, activation="softmax")(tf_keras.layers.Dropout(0.1)(h))
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = pattern_data(32)

    qat = quantize(model)
    history = qat.fit(x, y, epochs=1, batch_size=16, verbose=0)

    assert type(qat.get_layer("quant_gru")).__name__ == "QuantizeWrapperV2"
    assert np.isfinite(history.history["loss"]).all()
    assert LiteRTModel(to_tflite(qat, "dynamic")).predict(x[:3]).shape == (3, SEQ, VOCAB)



def test_the_padding_mask_reaches_every_layer_of_the_quantization_aware_model(flavour, tmp_path):
    import zoo

    from fastnlp.core import flavour as flavours

    example = zoo.build("masked_stack", flavour)
    aware = quantize(example.model)
    assert zoo.padding_sensitivity(aware, example.x) == 0.0  # a wrapped LSTM passed no mask to the next one
    aware.save(tmp_path / "aware.h5")
    assert zoo.padding_sensitivity(flavours.load_model(str(tmp_path / "aware.h5"), "tf_keras"), example.x) == 0.0


def test_quantize_trains_a_masked_bilstm_tagger_that_saves_loads_and_exports(tmp_path):
    # Keras 3 (converted to tf_keras on the way); the zoo's contract tests quantize BiLSTMs in both flavours
    model = masked_bidirectional_tagger(keras, "LSTM")
    x, y = pattern_data(32)

    qat = quantize(model)
    qat.fit(x, y, epochs=1, batch_size=16, verbose=0)
    qat.save(tmp_path / "qat.h5")
    loaded = flavours.load_model(str(tmp_path / "qat.h5"), "tf_keras")

    assert {type(qat.get_layer(name)).__name__ for name in ("quant_both_ways", "quant_per_token")} == {"QuantizeWrapperV2"}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    assert LiteRTModel(to_tflite(qat, "dynamic")).predict(x[:3]).shape == (3, SEQ, VOCAB)


def test_a_nested_model_is_quantized_flat_and_a_string_model_is_refused_with_the_route(flavour):
    import zoo

    k = flavours.keras_module(flavour)
    ids = k.Input((SEQ,), dtype="int32")
    inner = k.Model(ids, k.layers.LSTM(8)(k.layers.Embedding(VOCAB, 8)(ids)), name="encoder")
    outer_ids = k.Input((SEQ,), dtype="int32")
    model = k.Model(outer_ids, k.layers.Dense(3, activation="softmax")(inner(outer_ids)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, _ = pattern_data(8)
    aware = quantize(model)
    assert "encoder" not in [layer.name for layer in aware.layers]  # its layers, wrapped in its place
    assert sum(type(layer).__name__ == "QuantizeWrapperV2" for layer in aware.layers) == 2  # the LSTM and the Dense
    np.testing.assert_allclose(aware.predict(x, verbose=0), model.predict(x, verbose=0), atol=5e-2)

    strings = zoo.build("string_lstm_classifier", flavour).model
    with pytest.raises(ValueError, match="quantize: layer 'text_vectorization.*' \\(TextVectorization\\).*split_preprocessing"):
        quantize(strings)
