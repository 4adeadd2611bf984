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


@pytest.mark.parametrize(("flavour", "family"), [("keras", "custom_standardize_classifier"), ("tf_keras", "nested_vectorizer_conv1d")])
def test_a_string_model_converts_with_its_vocabulary_and_nested_models_inline(flavour, family):
    import zoo

    example = zoo.build(family, flavour)
    for to in (flavour, OTHER[flavour]):
        flat = convert(example.model, to, inline_models=True)
        assert flavours.detect(flat) == to
        assert not any(isinstance(layer, flavours.keras_module(to).Model) for layer in flat.layers)  # no nested model left
        (vectorizer,) = [layer for layer in flat.layers if type(layer).__name__ == "TextVectorization"]
        (original,) = [layer for layer in flavours.leaf_layers(example.model) if type(layer).__name__ == "TextVectorization"]
        assert vectorizer.get_vocabulary() == original.get_vocabulary()
        assert (vectorizer is original) == (to == flavour)  # shared in its own flavour, converted in the other
        np.testing.assert_allclose(zoo.outputs(flat, example.x)[0], zoo.outputs(example.model, example.x)[0], atol=1e-6)
        assert flat.optimizer is not None and flat.optimizer is not example.model.optimizer


def test_a_standardize_function_registered_for_one_flavour_loads_in_a_file_of_the_other(tmp_path):
    import keras
    import tf_keras
    import zoo

    example = zoo.build("custom_standardize_classifier", "keras")
    there = convert(example.model, "tf_keras")
    path = str(tmp_path / "converted.keras")
    there.save(path)
    registered = tf_keras.utils.get_custom_objects()
    name = keras.saving.get_registered_name(zoo.lowercase_only)
    registered.pop(name, None)  # as in a new process, where the user registered it for Keras 3 only
    loaded = flavours.load_model(path, "tf_keras")
    np.testing.assert_allclose(zoo.outputs(loaded, example.x)[0], zoo.outputs(example.model, example.x)[0], atol=1e-6)


def test_a_preprocessing_layer_without_a_portable_state_is_refused_by_name():
    import keras

    raw = keras.Input((3,))
    norm = keras.layers.Normalization(name="scale_inputs")
    norm.adapt(np.arange(12.0).reshape(4, 3))
    model = keras.Model(raw, keras.layers.Dense(1)(norm(raw)))
    with pytest.raises(TypeError, match="layer 'scale_inputs' \\(Normalization\\) holds adapted state that fastnlp cannot carry"):
        convert(model, "tf_keras")


def test_the_users_own_loss_object_is_kept_and_the_converted_file_loads(tmp_path):
    import zoo

    example = zoo.build("tagger_with_loss_subclass", "keras")
    there = convert(example.model, "tf_keras")
    assert there.loss is example.model.loss  # a Loss subclass with its own __init__: not re-created from its config
    there.fit(example.x, example.y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "tagger.keras")
    there.save(path)
    loaded = flavours.load_model(path, "tf_keras")
    assert type(loaded.loss) is type(example.model.loss)
    np.testing.assert_allclose(zoo.outputs(loaded, example.x)[0], zoo.outputs(there, example.x)[0], atol=1e-6)


def test_an_inlined_copy_keeps_what_a_layers_config_leaves_out():
    import keras

    ids = keras.Input((5,), dtype="int32")
    inner = keras.Model(ids, keras.layers.LSTM(3, use_cudnn=False, name="no_cudnn")(keras.layers.Embedding(9, 2)(ids)))
    outer = keras.Input((5,), dtype="int32")
    flat = convert(keras.Model(outer, inner(outer)), "keras", inline_models=True)
    assert flat.get_layer("no_cudnn").use_cudnn is False  # Keras 3 keeps use_cudnn out of get_config
