"""Re-create a model of either flavour with edited layer configs, its weights and its compile arguments.

A dtype policy or a distribution strategy is fixed when a layer is built, so a transform that changes
either clones the model with an edited layer config, copies the weights and recompiles it with the
same loss and metrics and a fresh optimizer of the same config. That also leaves the input untouched.
The copy keeps the input's lineage (:mod:`fastnlp.core.lineage`), strategy included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from fastnlp.core.flavour import (
    Flavour,
    check_rebuildable,
    compile_arguments,
    detect,
    keras_module,
    loss_scale_optimizer_class,
)
from fastnlp.core.lineage import carry_lineage

__all__ = ["ConfigEdit", "LayerClass", "compile_like", "rebuild"]

#: ``edit(layer, config, is_output) -> config``: how :func:`rebuild` changes one layer's config.
ConfigEdit = Callable[[Any, dict, bool], dict]
#: ``layer_class(layer) -> class or None``: the class :func:`rebuild` re-creates a layer as (None: its own).
LayerClass = Callable[[Any], "type | None"]


def rebuild(
    model: Any,
    edit: ConfigEdit | None = None,
    *,
    layer_class: LayerClass | None = None,
    loss_scale: bool | None = None,
    compile_options: dict | None = None,
):
    """Return a new model of the same flavour: layers re-created from (edited) configs, weights copied,
    recompiled as ``model`` was with a fresh optimizer of the same config, under ``model``'s
    ``tf.distribute`` strategy if it has one.

    Args:
        model: a Sequential or functional model, Keras 3 or tf_keras.
        edit: changes one layer's config; it is called for every layer but the model inputs, with
            ``is_output`` true for the layers that produce the model's outputs.
        layer_class: the class to re-create a layer as, from the same config (e.g. an LSTM with
            another execution of the same math), or ``None`` to keep the layer's own class.
        loss_scale: wrap the new optimizer in dynamic loss scaling (``True``), drop such a wrapper
            (``False``), or keep whatever ``model`` had (``None``).
        compile_options: compile arguments to change (e.g. ``{"jit_compile": True}``); the rest are
            ``model``'s.

    Raises:
        TypeError: not a Keras model, or a subclassed model, whose layers cannot be re-created.

    Examples:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        >>> copy = rebuild(m)
        >>> copy is m, bool((copy.get_weights()[0] == m.get_weights()[0]).all())
        (False, True)
    """
    with _strategy_scope(model):  # a distributed model's copy is distributed the same way
        clone = _clone(model, edit, keras_module(detect(model)), layer_class)
        if model.weights:
            clone.set_weights(model.get_weights())
        result = compile_like(clone, model, loss_scale=loss_scale, compile_options=compile_options)
    carry_lineage(model, result)
    return result


def _strategy_scope(model: Any) -> Any:
    """The scope of ``model``'s own ``tf.distribute`` strategy, or no scope where it has none or one is active."""
    import tensorflow as tf

    strategy = model.distribute_strategy
    if tf.distribute.has_strategy() or strategy is tf.distribute.get_strategy():
        return contextlib.nullcontext()
    return strategy.scope()


def compile_like(target: Any, model: Any, *, loss_scale: bool | None = None, compile_options: dict | None = None):
    """Compile ``target`` (same flavour) as ``model`` was, with a fresh optimizer of the same config; return it.

    ``loss_scale`` and ``compile_options`` as in :func:`rebuild`; an uncompiled ``model`` leaves
    ``target`` as it is.
    """
    arguments = compile_arguments(model)
    if arguments is not None:
        optimizer = _fresh_optimizer(model.optimizer, detect(model), loss_scale)
        arguments = {**arguments, **(compile_options or {})}
        target.compile(optimizer=optimizer, **{k: _fresh(v) for k, v in arguments.items() if k != "optimizer"})
    return target


def _clone(model: Any, edit: ConfigEdit | None, keras: ModuleType, layer_class: LayerClass | None = None):
    check_rebuildable(model)
    output_layers = {id(tensor._keras_history[0]) for tensor in _outputs(model)}

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            return _clone(layer, edit, keras, layer_class)
        config = layer.get_config()
        editable = isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.layers.InputLayer)
        if edit is not None and editable:  # Keras 3 graphs also hold plain operations (e.g. a mask's not_equal)
            config = edit(layer, config, id(layer) in output_layers)
        if hasattr(layer, "use_cudnn") and "use_cudnn" not in config:  # Keras 3 RNNs keep it out of get_config
            config = {**config, "use_cudnn": layer.use_cudnn}
        cls = (layer_class(layer) if layer_class is not None else None) or layer.__class__
        return cls.from_config(config)

    with _uncompiled(model):
        return keras.models.clone_model(model, clone_function=clone_layer)


@contextlib.contextmanager
def _uncompiled(model: Any) -> Iterator[None]:
    """Keras 3's ``clone_model`` compiles the clone from the *serialized* compile config, which fails
    for a loss or metric that is a plain function or a lambda ("Could not locate function"); the
    caller compiles the clone with the objects themselves (:func:`compile_like`), so hide the flag."""
    compiled = getattr(model, "compiled", None)
    if compiled is not True:  # tf_keras has no such flag and does not compile clones
        yield
        return
    model.compiled = False
    try:
        yield
    finally:
        model.compiled = True


def _outputs(model: Any) -> list:
    try:
        return list(model.outputs or [])
    except AttributeError:  # a Keras 3 Sequential that was never built has no outputs yet
        return []


def _fresh_optimizer(optimizer: Any, flavour: Flavour, loss_scale: bool | None):
    scaler = loss_scale_optimizer_class(flavour)
    had_scaling = isinstance(optimizer, scaler)
    inner = optimizer.inner_optimizer if had_scaling else optimizer
    fresh = type(inner).from_config(inner.get_config())
    return scaler(fresh) if (had_scaling if loss_scale is None else loss_scale) else fresh


def _fresh(value: Any) -> Any:
    """A new copy of a stateful compile argument (metric or loss object); strings and functions as they are."""
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(item) for item in value)
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if hasattr(value, "get_config") and hasattr(type(value), "from_config"):
        return type(value).from_config(value.get_config())
    return value
