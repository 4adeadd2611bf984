"""The one module that knows Keras 3 from tf_keras (Keras 2).

TensorFlow 2.21's ``keras``/``tf.keras`` is Keras 3, while tensorflow-model-optimization needs
``tf_keras``. Every model transform in fastnlp accepts either flavour and returns the same flavour,
and goes through :func:`rebuild` to do so: no other module branches on the flavour.

A dtype policy or a distribution strategy is fixed when a layer is built, so a transform that changes
either clones the model with an edited layer config, copies the weights and recompiles it with the
same loss and metrics and a fresh optimizer of the same config. That also leaves the input untouched.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Literal

from fastnlp import layers as fastnlp_layers

Flavour = Literal["keras", "tf_keras"]
FLAVOURS: tuple[Flavour, ...] = ("keras", "tf_keras")

#: ``edit(layer, config, is_output) -> config``: how :func:`rebuild` changes one layer's config.
ConfigEdit = Callable[[Any, dict, bool], dict]
#: ``layer_class(layer) -> class or None``: the class :func:`rebuild` re-creates a layer as (None: its own).
LayerClass = Callable[[Any], "type | None"]

__all__ = [
    "FLAVOURS",
    "Flavour",
    "callback_base",
    "check_rebuildable",
    "compile_arguments",
    "compile_like",
    "convert",
    "detect",
    "keras_module",
    "leaf_layers",
    "load_model",
    "loss_scale_optimizer_class",
    "reassemble",
    "rebuild",
    "require_compiled",
]


def keras_module(flavour: Flavour) -> ModuleType:
    """Return the ``keras`` or ``tf_keras`` module for ``flavour``.

    Examples:
        >>> keras_module("tf_keras").__name__
        'tf_keras'
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    return importlib.import_module(flavour)


def leaf_layers(model: Any) -> list:
    """``model``'s layers in order, the layers of nested models in their place (wrappers kept whole).

    Examples:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="inner")])
        >>> outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1, name="head")])
        >>> [layer.name for layer in leaf_layers(outer)]
        ['inner', 'head']
    """
    model_class = keras_module(detect(model)).Model
    found = []
    for layer in model.layers:
        found.extend(leaf_layers(layer) if isinstance(layer, model_class) else [layer])
    return found


def detect(model: Any) -> Flavour:
    """Return ``"keras"`` (Keras 3) or ``"tf_keras"`` (Keras 2) for a Keras model.

    Raises:
        TypeError: ``model`` is not a Keras model of either flavour.

    Examples:
        >>> import keras
        >>> detect(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
        'keras'
    """
    for name in FLAVOURS:
        module = sys.modules.get(name)  # a model of a flavour implies its module is imported
        if module is not None and isinstance(model, module.Model):
            return name
    raise TypeError(
        f"expected a Keras 3 (keras.Model) or tf_keras model, got {type(model).__module__}."
        f"{type(model).__qualname__}"
    )


def load_model(path: str, flavour: Flavour, *, safe_mode: bool = True, custom_objects=None):
    """Load a ``.keras`` (or tf_keras ``.h5``) file with the loader of ``flavour`` (``safe_mode`` on by default).

    tf_keras models pruned or quantized by :mod:`fastnlp.compress` load without custom objects.

    Examples:
        >>> import keras, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(path)
        >>> load_model(path, "keras").count_params()
        4
    """
    fastnlp_layers.register_layers(flavour)  # models may hold fastnlp's own layers
    if flavour == "tf_keras":  # models fastnlp.compress made hold tfmot's wrappers: know them without being told
        from fastnlp.compress.objects import compression_objects

        custom_objects = {**compression_objects(), **(custom_objects or {})}
    options = {"safe_mode": safe_mode} if str(path).endswith(".keras") else {}  # HDF5 has no safe mode
    return keras_module(flavour).models.load_model(path, custom_objects=custom_objects, **options)


def callback_base(flavour: Flavour) -> type:
    """The ``Callback`` base class that ``fit`` of ``flavour`` accepts."""
    return keras_module(flavour).callbacks.Callback


def loss_scale_optimizer_class(flavour: Flavour) -> type:
    """The dynamic loss-scaling optimizer wrapper of ``flavour`` (needed for float16)."""
    module = keras_module(flavour)
    return module.optimizers.LossScaleOptimizer if flavour == "keras" else module.mixed_precision.LossScaleOptimizer


def compile_arguments(model: Any) -> dict | None:
    """The arguments ``model.compile`` was called with, or ``None`` for an uncompiled model."""
    compiled = model.compiled if detect(model) == "keras" else model._is_compiled
    if not compiled or not hasattr(model, "_compile_config"):
        return None
    return dict(model._compile_config.config)


def require_compiled(model: Any, why: str) -> dict:
    """``model``'s compile arguments; ``ValueError`` saying ``why`` it must be compiled when it is not."""
    arguments = compile_arguments(model)
    if arguments is None:
        raise ValueError(f"{why}: compile the model first (model.compile(...))")
    return arguments


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
    parallel = sys.modules.get("fastnlp.parallel")  # imported if, and only if, a model may have been distributed
    if parallel is not None:
        parallel.carry_over(model, result)
    return result


def _strategy_scope(model: Any) -> Any:
    """The scope of ``model``'s own ``tf.distribute`` strategy, or no scope where it has none or one is active."""
    import contextlib

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


def check_rebuildable(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is a Sequential or functional model of either flavour."""
    keras = keras_module(detect(model))
    is_layer_graph = isinstance(model, keras.Sequential) or any(
        cls.__name__ == "Functional" for cls in type(model).__mro__  # same class name in both flavours
    )
    if not is_layer_graph:
        raise TypeError(
            f"fastnlp re-creates models layer by layer, which a subclassed model "
            f"({type(model).__qualname__}) does not allow; build it with keras.Sequential or the "
            f"functional API (keras.Model(inputs, outputs))"
        )


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


def convert(model: Any, to: Flavour):
    """The same model in the other Keras flavour: same layers, exact weights, compiled the same way.

    tensorflow-model-optimization works only with tf_keras, so compression goes Keras 3 -> tf_keras
    -> (compress) -> Keras 3. Layer configs keep what the target flavour's layer accepts (dtype
    policies by name, initializers by class); weights are copied exactly, so predictions match to
    float precision. Sequential and functional models with one input convert, branches included
    (each layer called once); a layer shared between calls raises ``TypeError``.

    Examples:
        >>> import keras, numpy as np
        >>> k3 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
        >>> k2 = convert(k3, "tf_keras")
        >>> detect(k2), bool(np.allclose(k2.predict(np.ones((1, 4)), verbose=0), k3.predict(np.ones((1, 4)), verbose=0)))
        ('tf_keras', True)
    """
    source = detect(model)
    target = keras_module(to)
    if source == to:
        return rebuild(model)

    def counterpart(layer: Any) -> Any:
        cls = getattr(target.layers, type(layer).__name__, None) or fastnlp_layers.counterpart(layer, to)
        if cls is None:
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) has no {to} counterpart")
        return cls.from_config(_portable_config(layer.get_config(), cls))

    result, pairs = reassemble(model, target, counterpart)
    for layer, new in pairs:
        new.set_weights(layer.get_weights())
    arguments = compile_arguments(model)
    if arguments is not None:
        optimizer = model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        optimizer_class = getattr(target.optimizers, type(optimizer).__name__)
        settings = {k: _python_value(v) for k, v in _accepted(optimizer.get_config(), optimizer_class, drop=("name",)).items()}
        if isinstance(settings.get("learning_rate"), dict):  # a schedule
            schedule = settings["learning_rate"]
            settings["learning_rate"] = target.optimizers.schedules.deserialize(
                {"class_name": schedule["class_name"], "config": schedule["config"]}
            )
        fresh = optimizer_class(**settings)
        if isinstance(model.optimizer, loss_scale_optimizer_class(source)):
            fresh = loss_scale_optimizer_class(to)(fresh)
        result.compile(
            optimizer=fresh,
            loss=_portable_compile_value(arguments.get("loss")),
            metrics=_portable_compile_value(arguments.get("metrics")),
        )
    return result


def reassemble(
    model: Any, target: ModuleType, new_layer: Callable[[Any], Any], adapt: Callable[[Any, Any], Any] | None = None
) -> tuple[Any, list[tuple[Any, Any]]]:
    """``model``'s graph again in ``target``'s flavour: each layer replaced by ``new_layer(layer)``, called where it was.

    Sequential models and one-input functional models whose layers are each called once (branches
    included) can be reassembled. ``adapt(layer, inputs) -> inputs`` may change what a new layer is
    called on. Returns the new, uncompiled model and the ``(layer, new layer)`` pairs, for the caller
    to copy weights along.

    Raises:
        TypeError: a subclassed model, several inputs, or a layer called more than once.
    """
    check_rebuildable(model)
    if len(model.inputs) != 1:
        raise TypeError(f"fastnlp handles models with one input; {model.name!r} has {len(model.inputs)}")
    (spec,) = model.inputs
    inputs = target.Input(shape=tuple(spec.shape[1:]), dtype=_dtype_name(spec.dtype), name=spec._keras_history[0].name)
    # A Sequential is a chain; its layers' .input may point at a graph from before the last add().
    chain = isinstance(model, keras_module(detect(model)).Sequential)
    tensors, latest, pairs = {id(spec): inputs}, inputs, []  # each source tensor's counterpart, in topological order
    for layer in (layer for layer in model.layers if type(layer).__name__ != "InputLayer"):
        new = new_layer(layer)
        source = latest if chain else _counterparts(layer, tensors)
        latest = new(adapt(layer, source) if adapt is not None else source)
        if not chain:
            for old_tensor, new_tensor in zip(_flat(layer.output), _flat(latest)):
                tensors[id(old_tensor)] = new_tensor
        pairs.append((layer, new))
    if chain:
        return target.Model(inputs, latest, name=model.name), pairs
    if any(id(tensor) not in tensors for tensor in model.outputs):
        raise TypeError(
            f"fastnlp handles models in which each layer is called once; it could not follow {model.name!r}'s "
            f"graph to its outputs (a layer called more than once?)"
        )
    outputs = [tensors[id(tensor)] for tensor in model.outputs]
    return target.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name), pairs


def _counterparts(layer: Any, tensors: dict) -> Any:
    """The converted tensors ``layer`` is to be called on: its source inputs' counterparts, in the same structure.

    Keras 3 also feeds a layer the padding mask it computed with a plain ``not_equal`` op; that
    input is left out, since the converted layer gets its mask from the converted ``Embedding``.
    """
    sources = [tensor for tensor in _flat(layer.input) if not _is_mask_op_output(tensor)]
    unknown = [tensor for tensor in sources if id(tensor) not in tensors]
    if unknown or not sources:  # a layer called on several inputs in turn, or on a tensor made outside any layer
        raise TypeError(
            f"convert handles models in which each layer is called once, on other layers' outputs; "
            f"{layer.name!r} is not"
        )
    converted = [tensors[id(tensor)] for tensor in sources]
    return converted if isinstance(layer.input, (list, tuple)) and len(converted) > 1 else converted[0]


def _is_mask_op_output(tensor: Any) -> bool:
    history = getattr(tensor, "_keras_history", None)
    return history is not None and type(history[0]).__name__ == "NotEqual"


def _flat(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "name", dtype)


def _portable_config(config: dict, target_class: type) -> dict:
    """``config`` with what ``target_class`` accepts: dtype policies by name, serialized objects without module."""
    config = dict(config)
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # {"class_name": "DTypePolicy"/"Policy", "config": {"name": ...}}
        config["dtype"] = dtype.get("config", {}).get("name", "float32")
    for key, value in config.items():
        if isinstance(value, dict) and "class_name" in value and key != "dtype":
            named = _named(value["class_name"], target_class)
            if key in _WRAPPED_LAYER_KEYS and named is not None:  # Bidirectional's layers: their own dtype policies too
                inner = _portable_config(value.get("config", {}), named)
            else:
                inner = _accepted(value.get("config", {}), named)
            config[key] = {"class_name": value["class_name"], "config": inner}
    return _accepted(config, target_class, keep=("name", "trainable", "dtype"))


# Config keys of wrapper layers (Bidirectional, TimeDistributed) that hold a whole layer's config.
_WRAPPED_LAYER_KEYS = ("layer", "backward_layer")


def _named(class_name: str, layer_class: type) -> type | None:
    package = next(root for cls in layer_class.__mro__ if (root := cls.__module__.split(".")[0]) in FLAVOURS)
    module = importlib.import_module(package)
    for namespace in ("initializers", "regularizers", "constraints", "layers"):
        found = getattr(getattr(module, namespace, None), class_name, None)
        if found is not None:
            return found
    return None


def _accepted(config: dict, cls: type | None, keep: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> dict:
    """The entries of ``config`` that ``cls.__init__`` takes by name (all of them when it can't be told)."""
    if cls is None:
        return {k: v for k, v in config.items() if k not in drop}
    parameters = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in config.items() if (k in parameters or k in keep) and k not in drop}


def _python_value(value: Any) -> Any:
    """NumPy scalars (tf_keras keeps a learning rate as float32) as Python numbers."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value


def _portable_compile_value(value: Any) -> Any:
    """Losses and metrics by name, so either flavour resolves them."""
    if isinstance(value, (list, tuple)):
        return type(value)(_portable_compile_value(item) for item in value)
    if isinstance(value, dict) and "class_name" in value:
        return value.get("config", {}).get("name") or value["class_name"]
    if hasattr(value, "get_config"):
        return value.get_config().get("name", type(value).__name__)
    return value
