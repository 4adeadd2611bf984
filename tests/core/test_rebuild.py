"""rebuild: what a copy keeps of the user's model (compile objects, preprocessing layers) and what it refuses up front."""

import numpy as np
import pytest
import zoo

from fastnlp.core import flavour as flavours
from fastnlp.core.rebuild import rebuild


def test_a_loss_subclass_with_its_own_init_is_reused_as_it_is(flavour):
    example = zoo.build("tagger_with_loss_subclass", flavour)
    copy = rebuild(example.model)  # Keras re-created it from its config: "unexpected keyword argument 'reduction'"
    assert flavours.compile_arguments(copy)["loss"] is flavours.compile_arguments(example.model)["loss"]
    history = copy.fit(example.x, example.y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_a_metric_is_a_fresh_copy_where_its_config_allows(flavour):
    k = flavours.keras_module(flavour)
    example = zoo.build("char_lstm", flavour)
    accuracy = k.metrics.SparseCategoricalAccuracy(name="acc")
    example.model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=[accuracy])
    metrics = flavours.compile_arguments(rebuild(example.model))["metrics"]
    assert metrics[0] is not accuracy and type(metrics[0]) is type(accuracy)


@pytest.mark.parametrize("family", ["string_lstm_classifier", "custom_standardize_classifier", "nested_vectorizer_conv1d"])
def test_preprocessing_layers_are_carried_over_as_they_are(flavour, family):
    example = zoo.build(family, flavour)
    copy = rebuild(example.model)  # an adapted vocabulary ("Table not initialized") and a custom standardize came apart
    np.testing.assert_allclose(copy.predict(example.x, verbose=0), example.model.predict(example.x, verbose=0), atol=1e-6)
    vectorizers = [layer for layer in flavours.leaf_layers(copy) if flavours.is_preprocessing(layer)]
    assert vectorizers and all(layer in flavours.leaf_layers(example.model) for layer in vectorizers)


def test_a_layer_with_weights_that_its_config_cannot_re_create_is_refused_by_name(flavour):
    k = flavours.keras_module(flavour)

    class Gain(k.layers.Layer):  # weights, no get_config, no **kwargs
        def __init__(self, units):
            super().__init__()
            self.gain = self.add_weight(shape=(units,), initializer="ones")

        def call(self, x):
            return x * self.gain

    gain = Gain(3)
    model = k.Sequential([k.Input((3,)), gain, k.layers.Dense(1)])
    with pytest.raises(TypeError, match=rf"layer '{gain.name}' \(Gain\) cannot be re-created from its config.*get_config"):
        rebuild(model)


def test_a_layer_without_weights_that_its_config_cannot_re_create_is_shared(flavour):
    example = zoo.build("custom_layer_without_config", flavour)
    scale = next(layer for layer in example.model.layers if type(layer).__name__ == "Scale")
    copy = rebuild(example.model)
    assert scale in copy.layers  # nothing to copy: the copy calls the same stateless layer
    assert not any(a is b for a, b in zip(copy.weights, example.model.weights))
    np.testing.assert_allclose(copy.predict(example.x, verbose=0), example.model.predict(example.x, verbose=0), atol=1e-6)


def test_a_subclassed_model_is_copied_whole_by_its_class(flavour):
    example = zoo.build("subclassed_tagger", flavour)
    copy = rebuild(example.model)
    assert type(copy) is type(example.model) and copy is not example.model
    assert not any(a is b for a, b in zip(copy.weights, example.model.weights))
    np.testing.assert_allclose(copy.predict(example.x, verbose=0), example.model.predict(example.x, verbose=0), atol=1e-6)
    with pytest.raises(TypeError, match="subclassed model"):
        rebuild(example.model, lambda layer, config, is_output: config)


def test_custom_layers_with_get_config_are_rebuilt(flavour):
    example = zoo.build("transformer_custom_layers", flavour)
    copy = rebuild(example.model)
    np.testing.assert_allclose(copy.predict(example.x, verbose=0), example.model.predict(example.x, verbose=0), atol=1e-6)
