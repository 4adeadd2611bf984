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
    is_layer_graph,
    is_preprocessing,
    keras_module,
    leaf_layers,
    loss_scale_optimizer_class,
    lookup_layer_copy,
    new_instance,
    shared_as_is,
)
from fastnlp.core.lineage import carry_lineage

__all__ = ["ConfigEdit", "LayerClass", "compile_like", "edit_wrapped", "rebuild", "recreated_layer", "wrapped_layers"]

#: compile arguments passed to the copy as the user gave them (see :func:`compile_like`)
_STATELESS_ARGUMENTS = frozenset({"loss", "loss_weights"})
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
    weights: Callable[[Any], list] | None = None,
    own_lookups: bool = False,
):
    """Return a new model of the same flavour: layers re-created from (edited) configs, weights copied,
    recompiled as ``model`` was with a fresh optimizer of the same config, under ``model``'s
    ``tf.distribute`` strategy if it has one.

    Args:
        model: a Sequential or functional model, Keras 3 or tf_keras; with neither ``edit`` nor
            ``layer_class``, also a subclassed model whose class re-creates it from its config.
        edit: changes one layer's config; it is called for every layer but the model inputs, with
            ``is_output`` true for the layers that produce the model's outputs.
        layer_class: the class to re-create a layer as, from the same config (e.g. an LSTM with
            another execution of the same math), or ``None`` to keep the layer's own class.
        loss_scale: wrap the new optimizer in dynamic loss scaling (``True``), drop such a wrapper
            (``False``), or keep whatever ``model`` had (``None``).
        compile_options: compile arguments to change (e.g. ``{"jit_compile": True}``); the rest are
            ``model``'s.
        weights: ``weights(layer)`` gives the weights of ``layer``'s copy (for an edit that changes their
            shapes, e.g. fewer units); default: ``layer``'s own.
        own_lookups: give the copy new ``TextVectorization`` / ``StringLookup`` layers with the same vocabulary,
            made in the current strategy scope; by default a copy shares its preprocessing layers with ``model``.

    Raises:
        TypeError: not a Keras model, a layer that cannot be re-created, or a subclassed model given an
            ``edit`` or a ``layer_class`` (or whose class cannot re-create it).

    Examples:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        >>> copy = rebuild(m)
        >>> copy is m, bool((copy.get_weights()[0] == m.get_weights()[0]).all())
        (False, True)
    """
    with _strategy_scope(model):  # a distributed model's copy is distributed the same way
        clone = _clone(model, edit, keras_module(detect(model)), layer_class, own_lookups)
        if weights is not None:
            for layer, copy in zip(leaf_layers(model), leaf_layers(clone), strict=True):
                if copy is not layer and layer.weights:
                    copy.set_weights(weights(layer))
        elif model.weights:
            clone.set_weights(model.get_weights())
        result = compile_like(clone, model, loss_scale=loss_scale, compile_options=compile_options)
    carry_lineage(model, result)
    return result


def wrapped_layers(layer: Any) -> tuple[tuple[str, Any], ...]:
    """``(config key, layer)`` for each layer a wrapper holds (``Bidirectional``: both directions;
    ``TimeDistributed``: its layer); empty for any other layer."""
    if hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer"):
        return (("layer", layer.forward_layer), ("backward_layer", layer.backward_layer))
    inner = getattr(layer, "layer", None)
    if inner is not None and hasattr(inner, "get_config") and hasattr(inner, "dtype_policy"):
        return (("layer", inner),)
    return ()


def edit_wrapped(layer: Any, config: dict, edit_inner: Callable[[Any, dict], dict]) -> dict:
    """``config`` of ``layer`` with ``edit_inner(inner_layer, inner_config)`` applied to each layer it wraps.

    A wrapper's config holds its layers' configs whole; a layer that wraps none keeps ``config`` as it is.

    Examples:
        >>> import keras
        >>> both = keras.layers.Bidirectional(keras.layers.LSTM(2))
        >>> edited = edit_wrapped(both, both.get_config(), lambda inner, c: {**c, "unroll": True})
        >>> edited["layer"]["config"]["unroll"], edited["backward_layer"]["config"]["unroll"]
        (True, True)
    """
    pairs = [(key, inner) for key, inner in wrapped_layers(layer) if isinstance(config.get(key), dict)]
    if not pairs:
        return config
    config = dict(config)
    for key, inner in pairs:
        config[key] = {**config[key], "config": edit_inner(inner, config[key]["config"])}
    return config


def _strategy_scope(model: Any) -> Any:
    """The scope of ``model``'s own ``tf.distribute`` strategy, or no scope where it has none or one is active."""
    import tensorflow as tf

    strategy = model.distribute_strategy
    if tf.distribute.has_strategy() or strategy is tf.distribute.get_strategy():
        return contextlib.nullcontext()
    return strategy.scope()


def compile_like(target: Any, model: Any, *, loss_scale: bool | None = None, compile_options: dict | None = None):
    """Compile ``target`` (same flavour) as ``model`` was, with a fresh optimizer of the same config; return it.

    The user's own loss objects and functions are passed as they are (a loss holds no state, and a
    ``Loss`` subclass with its own ``__init__`` cannot be re-created from its config); metrics get a
    fresh copy where their config re-creates them, and are otherwise shared as they are (Keras resets
    a metric's state at the start of every ``fit`` and ``evaluate``). ``loss_scale`` and
    ``compile_options`` as in :func:`rebuild`; an uncompiled ``model`` leaves ``target`` as it is.
    """
    arguments = compile_arguments(model)
    if arguments is not None:
        optimizer = _fresh_optimizer(model.optimizer, detect(model), loss_scale)
        arguments = {**arguments, **(compile_options or {})}
        kept = {key: value if key in _STATELESS_ARGUMENTS else _fresh(value) for key, value in arguments.items()}
        target.compile(optimizer=optimizer, **{key: value for key, value in kept.items() if key != "optimizer"})
    return target



def _clone(model: Any, edit: ConfigEdit | None, keras: ModuleType, layer_class: LayerClass | None = None, own_lookups: bool = False):
    if not is_layer_graph(model) and edit is None and layer_class is None:
        # a subclassed model: its class makes it again (new_instance refuses, naming what it lacks), built as the input was
        clone = new_instance(model)
        clone.build_from_config(model.get_build_config())
        if [tuple(w.shape) for w in clone.weights] != [tuple(w.shape) for w in model.weights]:
            raise TypeError(
                f"fastnlp copies a subclassed model ({type(model).__qualname__}) by creating it again and building it "
                f"for the input shape it was built for, and the copy's weights differ from the model's; give the class "
                f"a build(input_shape) that creates every weight"
            )
        clone.built = True  # Keras 3 leaves the flag unset when it built the model by running it on a shape
        return clone
    check_rebuildable(model)  # a subclassed model given an edit or a layer class is refused here
    output_layers = {id(tensor._keras_history[0]) for tensor in _outputs(model)}

    def clone_layer(layer):
        if isinstance(layer, keras.Model):
            return _clone(layer, edit, keras, layer_class, own_lookups)
        if own_lookups and is_preprocessing(layer):
            return lookup_layer_copy(layer)
        if shared_as_is(layer):  # no state to copy (a vectorizer keeps its vocabulary)
            return layer
        config = layer.get_config()
        editable = isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.layers.InputLayer)
        if edit is not None and editable:  # Keras 3 graphs also hold plain operations (e.g. a mask's not_equal)
            config = edit(layer, config, id(layer) in output_layers)
        return recreated_layer(layer, config, layer_class(layer) if layer_class is not None else None)

    with _uncompiled(model):
        return keras.models.clone_model(model, clone_function=clone_layer)


def recreated_layer(layer: Any, config: dict | None = None, cls: type | None = None) -> Any:
    """A new, unbuilt layer of class ``cls`` (default: ``layer``'s) from ``config`` (default: ``layer``'s), keeping
    what ``get_config`` leaves out (a Keras 3 RNN's ``use_cudnn``); its weights are the caller's to copy.

    Examples:
        >>> import keras
        >>> recreated_layer(keras.layers.LSTM(3, use_cudnn=False)).use_cudnn
        False
    """
    config = layer.get_config() if config is None else config
    if hasattr(layer, "use_cudnn") and "use_cudnn" not in config:  # Keras 3 RNNs keep it out of get_config
        config = {**config, "use_cudnn": layer.use_cudnn}
    return (cls or type(layer)).from_config(config)


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
    """A new copy of a metric object where its config re-creates it; anything else as it is."""
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(item) for item in value)
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if hasattr(value, "get_config") and hasattr(type(value), "from_config"):
        try:
            return type(value).from_config(value.get_config())
        except (TypeError, ValueError, NotImplementedError):  # a subclass whose __init__ its config does not fit
            return value
    return value
