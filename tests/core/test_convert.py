"""convert: the same model in the other Keras flavour, exactly (the bridge tfmot needs)."""

import warnings

import numpy as np
import pytest

from fastnlp import build_lstm, enable_mixed_precision
from fastnlp.core import flavour as flavours
from fastnlp.core.convert import convert

OTHER = {"keras": "tf_keras", "tf_keras": "keras"}


def padded_ids(rng_seed=0):
    ids = np.random.default_rng(rng_seed).integers(1, 20, (4, 9))
    ids[:, 6:] = 0  # padding, masked by the classifier
    return ids


@pytest.mark.parametrize("task", ["char_lm", "classify"])
def test_converted_models_predict_the_same_and_train(flavour, task):
    model = build_lstm(20, units=8, num_layers=2, task=task, flavour=flavour)
    converted = convert(model, OTHER[flavour])

    assert flavours.detect(converted) == OTHER[flavour]
    x = padded_ids()
    np.testing.assert_allclose(converted.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-5)
    assert converted.get_compile_config()["loss"] == "sparse_categorical_crossentropy"
    assert type(converted.optimizer).__name__ == type(model.optimizer).__name__
    assert float(converted.optimizer.learning_rate.numpy()) == pytest.approx(float(model.optimizer.learning_rate.numpy()))
    y = x if task == "char_lm" else np.array([0, 1, 0, 1])
    assert np.isfinite(converted.fit(x, y, epochs=1, verbose=0).history["loss"]).all()


def test_policies_and_loss_scaling_cross_over(flavour):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = enable_mixed_precision(build_lstm(20, units=8, num_layers=1, flavour=flavour), "mixed_float16")
    converted = convert(model, OTHER[flavour])
    assert converted.get_layer("lstm_1").dtype_policy.name == "mixed_float16"
    assert converted.get_layer("probabilities").dtype_policy.name == "float32"
    assert isinstance(converted.optimizer, flavours.loss_scale_optimizer_class(OTHER[flavour]))


def test_uncompiled_and_same_flavour(flavour):
    keras = flavours.keras_module(flavour)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert flavours.compile_arguments(convert(plain, OTHER[flavour])) is None
    same = convert(plain, flavour)
    assert same is not plain and flavours.detect(same) == flavour


def test_a_branched_model_converts_and_a_shared_layer_is_refused(flavour):
    keras = flavours.keras_module(flavour)
    inputs = keras.Input((3,))
    outputs = keras.layers.Add()([keras.layers.Dense(2, name="a")(inputs), keras.layers.Dense(2, name="b")(inputs)])
    branched = keras.Model(inputs, outputs)
    converted = convert(branched, OTHER[flavour])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(converted.predict(x, verbose=0), branched.predict(x, verbose=0), rtol=1e-6)
    shared = keras.layers.Dense(3, name="shared")
    twice = keras.Model(inputs, shared(shared(inputs)))
    with pytest.raises(TypeError, match="each layer is called once"):
        convert(twice, OTHER[flavour])


@pytest.mark.parametrize("family", ["seq2seq_trainer", "seq2seq_inference_decoder"])
def test_an_encoder_decoder_with_states_converts_both_ways(flavour, family):
    import zoo

    example = zoo.build(family, flavour)
    other = "tf_keras" if flavour == "keras" else "keras"
    there = convert(example.model, other)  # "fastnlp handles models with one input" before
    back = convert(there, flavour)
    for converted in (there, back):
        for got, want in zip(zoo.outputs(converted, example.x), zoo.outputs(example.model, example.x), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)
