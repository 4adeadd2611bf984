"""Shared tests every registered transform must pass, for both Keras flavours."""

import warnings

import keras
import numpy as np
import pytest
import tf_keras
from speedup_settings import settings_for

from fastnlp import applied_speedups, load_checkpoint
from fastnlp.core import flavour as flavours
from fastnlp.core.notices import FlavourWarning
from fastnlp.speedups import catalog

TRANSFORMS = catalog.transforms()
pytestmark = [
    pytest.mark.parametrize("transform", TRANSFORMS, ids=[t.name for t in TRANSFORMS]),
    pytest.mark.filterwarnings("ignore::fastnlp.SpeedupWarning"),
    pytest.mark.filterwarnings("ignore::fastnlp.FlavourWarning"),
]


def result_flavour(transform, flavour):
    """The flavour ``transform`` returns for a ``flavour`` input: the same, unless it declares otherwise."""
    return transform.returns or flavour


def model_state(model):
    optimizer = model.optimizer
    return {
        "weights": [w.copy() for w in model.get_weights()],
        "policies": [layer.dtype_policy.name for layer in model.layers],
        "compile": model.get_compile_config(),
        "optimizer": (type(optimizer).__name__, int(optimizer.iterations.numpy()), [v.numpy().copy() for v in optimizer.variables]),
    }


def global_state():
    import tensorflow as tf

    return (
        keras.mixed_precision.global_policy().name,
        tf_keras.mixed_precision.global_policy().name,
        keras.config.floatx(),
        tf_keras.backend.floatx(),
        tf.distribute.has_strategy(),
    )


def assert_same_state(before, after):
    assert before["policies"] == after["policies"]
    assert before["compile"] == after["compile"]
    assert before["optimizer"][:2] == after["optimizer"][:2]
    for a, b in zip(before["optimizer"][2] + before["weights"], after["optimizer"][2] + after["weights"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_input_model_and_global_state_are_untouched(transform, flavour):
    example = settings_for(transform.name).example(flavour)
    example.model.fit(example.x, example.y, epochs=1, verbose=0)  # a trained input, optimizer state and all
    before, globals_before = model_state(example.model), global_state()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = transform.func(example.model, **settings_for(transform.name).try_kwargs)

    assert result is not example.model
    assert_same_state(before, model_state(example.model))
    assert global_state() == globals_before
    assert flavours.detect(result) == result_flavour(transform, flavour)
    changed_flavour = [w for w in caught if issubclass(w.category, FlavourWarning)]
    assert bool(changed_flavour) == (result_flavour(transform, flavour) != flavour)  # said when, and only when, it changes


def user_loss(y_true, y_pred):
    """A loss Keras knows by no name: a transform must carry the function itself over."""
    import tensorflow as tf

    y_true = tf.one_hot(tf.cast(y_true, tf.int32), tf.shape(y_pred)[-1])
    return -tf.reduce_mean(tf.reduce_sum(y_true * tf.math.log(tf.cast(y_pred, tf.float32) + 1e-7), axis=-1))


def test_result_fits_two_steps_with_the_users_own_loss_function_and_lambda_metric(transform, flavour):
    import tensorflow as tf

    example = settings_for(transform.name).example(flavour)
    mean_prediction = lambda y_true, y_pred: tf.reduce_mean(tf.cast(y_pred, tf.float32))  # noqa: E731
    example.model.compile(optimizer=type(example.model.optimizer)(learning_rate=1e-3), loss=user_loss, metrics=[mean_prediction])
    result = transform.func(example.model, **settings_for(transform.name).try_kwargs)  # every transform failed: "Could not locate function"
    history = result.fit(example.x, example.y, batch_size=len(example.x) // 2, epochs=1, verbose=0)
    assert int(result.optimizer.iterations.numpy()) == 2 and np.isfinite(history.history["loss"]).all()
    assert flavours.compile_arguments(result)["loss"] is user_loss


def test_save_and_load_give_equal_predictions(transform, flavour, tmp_path):
    example = settings_for(transform.name).example(flavour)
    result = transform.func(example.model, **settings_for(transform.name).try_kwargs)
    result.fit(example.x, example.y, epochs=1, verbose=0)
    path = str(tmp_path / f"model{settings_for(transform.name).save_suffix}")
    result.save(path)

    loaded = flavours.load_model(path, result_flavour(transform, flavour))  # no custom objects passed

    assert [layer.dtype_policy.name for layer in loaded.layers] == [layer.dtype_policy.name for layer in result.layers]
    np.testing.assert_allclose(loaded.predict(example.x, verbose=0), result.predict(example.x, verbose=0), rtol=0, atol=1e-6)
    loaded.fit(example.x, example.y, epochs=1, verbose=0)  # and it trains on
    if path.endswith(".keras"):  # the lineage rides in the archive's assets (.h5 files have none)
        assert applied_speedups(load_checkpoint(path)) == applied_speedups(result)
        assert applied_speedups(result)[-1].startswith(transform.name)


def test_bad_input_raises_a_clear_error(transform, flavour):
    with pytest.raises(TypeError, match="expected a Keras 3"):
        transform.func("not a model", **settings_for(transform.name).try_kwargs)

    module = flavours.keras_module(flavour)

    class Subclassed(module.Model):  # its config cannot re-create it (a function argument), so no transform copies it
        def __init__(self, activation):
            super().__init__()
            self.dense = module.layers.Dense(2)
            self.activation = activation

        def call(self, inputs):
            return self.activation(self.dense(inputs))

    subclassed = Subclassed(lambda x: 2 * x)
    subclassed(np.zeros((1, 3), "float32"))
    with pytest.raises(TypeError, match="subclassed model"):
        transform.func(subclassed, **settings_for(transform.name).try_kwargs)

    example = settings_for(transform.name).example(flavour)
    for bad in settings_for(transform.name).bad_calls:
        with pytest.raises(bad.error, match=bad.match):
            transform.func(example.model, **bad.kwargs)
