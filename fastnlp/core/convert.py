"""The same model in the other Keras flavour: same layers, exact weights, compiled the same way."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core.serializables import fastnlp_counterpart, share_registration
from fastnlp.core.lineage import carry_lineage
from fastnlp.core.rebuild import compile_like, rebuild, recreated_layer

__all__ = ["convert", "reassemble"]


def convert(model: Any, to: flavours.Flavour, *, inline_models: bool = False):
    """The same model in the other Keras flavour: same layers, exact weights, compiled the same way.

    tensorflow-model-optimization works only with tf_keras, so compression goes Keras 3 -> tf_keras
    -> (compress) -> Keras 3. Layer configs keep what the target flavour's layer accepts (dtype
    policies by name, initializers by class); weights are copied exactly, so predictions match to
    float precision. Sequential and functional models convert, branches and several inputs and outputs
    included (each layer called once); a layer shared between calls raises ``TypeError``. A
    ``TextVectorization``, ``StringLookup`` or ``IntegerLookup`` converts with its vocabulary and its own
    ``standardize`` function. With ``inline_models``, nested models' layers are called in their place (in
    the same flavour too: a flat copy).

    Examples:
        >>> import keras, numpy as np
        >>> k3 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
        >>> k2 = convert(k3, "tf_keras")
        >>> flavours.detect(k2), bool(np.allclose(k2.predict(np.ones((1, 4)), verbose=0), k3.predict(np.ones((1, 4)), verbose=0)))
        ('tf_keras', True)
    """
    source = flavours.detect(model)
    target = flavours.keras_module(to)
    if source == to and not inline_models:
        return rebuild(model)

    def counterpart(layer: Any) -> Any:
        if source == to:
            return layer if flavours.shared_as_is(layer) else recreated_layer(layer)
        cls = getattr(target.layers, type(layer).__name__, None) or fastnlp_counterpart(layer, to)
        if cls is None:
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) has no {to} counterpart")
        if flavours.is_preprocessing(layer):
            return flavours.lookup_layer_copy(layer, cls)
        return cls.from_config(_portable_config(layer.get_config(), cls))

    result, pairs = reassemble(model, target, counterpart, inline_models=inline_models)
    for layer, new in pairs:
        if new is not layer and not flavours.is_preprocessing(layer):
            new.set_weights(layer.get_weights())
    arguments = flavours.compile_arguments(model)
    if source == to:
        compile_like(result, model)
    elif arguments is not None:
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
        if isinstance(model.optimizer, flavours.loss_scale_optimizer_class(source)):
            fresh = flavours.loss_scale_optimizer_class(to)(fresh)
        loss = _portable_compile_value(arguments.get("loss"), own_objects=True)
        for own in _flat(list(loss.values()) if isinstance(loss, dict) else loss):
            if hasattr(own, "get_config"):  # the user's Loss object: saved under the name they registered it by
                share_registration(type(own), source, to)
        result.compile(
            optimizer=fresh,
            loss=loss,
            metrics=_portable_compile_value(arguments.get("metrics")),
        )
    carry_lineage(model, result, distributed=False)  # the other flavour's model is built outside the strategy
    return result


def reassemble(
    model: Any,
    target: ModuleType,
    new_layer: Callable[[Any], Any],
    adapt: Callable[[Any, Any], Any] | None = None,
    finish: Callable[[Any, Any], Any] | None = None,
    *,
    inline_models: bool = False,
) -> tuple[Any, list[tuple[Any, Any]]]:
    """``model``'s graph again in ``target``'s flavour: each layer replaced by ``new_layer(layer)``, called where it was.

    Sequential models and functional models whose layers are each called once (branches, several
    inputs and outputs, an encoder's states passed to a decoder included) can be reassembled.
    ``adapt(layer, inputs) -> inputs`` may change what a new layer is called on, and
    ``finish(layer, outputs) -> outputs`` what it hands on. With ``inline_models``, the layers of a nested
    Sequential or functional model are called in its place, so the result has no nested model. Returns the
    new, uncompiled model and the ``(layer, new layer)`` pairs, for the caller to copy weights along.

    Raises:
        TypeError: a subclassed model, or a layer called more than once.
    """
    flavours.check_rebuildable(model)
    specs = list(model.inputs)
    inputs = [
        target.Input(shape=tuple(spec.shape[1:]), dtype=_dtype_name(spec.dtype), name=spec._keras_history[0].name)
        for spec in specs
    ]
    tensors = {id(spec): new for spec, new in zip(specs, inputs)}  # each source tensor's counterpart, in topological order
    pairs: list[tuple[Any, Any]] = []
    outputs = _replay(model, inputs, tensors, pairs, (new_layer, adapt, finish), inline_models)
    return target.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name), pairs


def _replay(model: Any, inputs: list, tensors: dict, pairs: list, hooks: tuple, inline_models: bool) -> list:
    """Call the new layers of ``model``'s graph on ``inputs`` (its inputs' counterparts), recording each source
    tensor's counterpart in ``tensors`` and each ``(layer, new layer)`` in ``pairs``; return its outputs' counterparts."""
    new_layer, adapt, finish = hooks
    # A Sequential is a chain; its layers' .input may point at a graph from before the last add().
    chain = isinstance(model, flavours.keras_module(flavours.detect(model)).Sequential)
    latest = inputs[0]
    for layer in (layer for layer in model.layers if type(layer).__name__ != "InputLayer"):
        if inline_models and _is_nested_graph(layer):
            latest = _inlined(layer, latest if chain else None, tensors, pairs, hooks)
            continue
        new = new_layer(layer)
        source = latest if chain else _counterparts(layer, tensors)
        if isinstance(source, list) and hasattr(layer, "return_state"):  # an RNN given initial states
            latest = new(source[0], initial_state=source[1:])  # the one form Keras 3 takes
        else:
            latest = new(adapt(layer, source) if adapt is not None else source)
        if finish is not None:
            latest = finish(layer, latest)
        if not chain:
            for old_tensor, new_tensor in zip(_flat(_this_call(layer, tensors)[1]), _flat(latest)):
                tensors[id(old_tensor)] = new_tensor
        pairs.append((layer, new))
    if chain:
        return [latest]
    if any(id(tensor) not in tensors for tensor in model.outputs):
        raise TypeError(
            f"fastnlp handles models in which each layer is called once; it could not follow {model.name!r}'s "
            f"graph to its outputs (a layer called more than once?)"
        )
    return [tensors[id(tensor)] for tensor in model.outputs]


def _is_nested_graph(layer: Any) -> bool:
    """Whether ``layer`` is a Sequential or functional model (not a plain layer, nor a subclassed model)."""
    try:
        return flavours.is_layer_graph(layer)
    except TypeError:  # not a model at all
        return False


def _inlined(nested: Any, source: Any, tensors: dict, pairs: list, hooks: tuple) -> Any:
    """The counterpart of ``nested``'s output where the outer graph calls it (on ``source``, in a chain), its
    layers replayed in its place. A nested model's ``.input`` is its own graph's; the outer call is its node."""
    node = None
    if source is None:
        if len(nested._inbound_nodes) != 1:
            raise TypeError(f"fastnlp handles nested models called once; {nested.name!r} is called {len(nested._inbound_nodes)} times")
        (node,) = nested._inbound_nodes
    outer_inputs = [source] if node is None else [tensors[id(tensor)] for tensor in _flat(node.input_tensors)]
    for spec, value in zip(nested.inputs, outer_inputs, strict=True):
        tensors[id(spec)] = value
    outputs = _replay(nested, outer_inputs, tensors, pairs, hooks, inline_models=True)
    if node is not None:
        for old_tensor, new_tensor in zip(_flat(node.output_tensors), outputs, strict=True):
            tensors[id(old_tensor)] = new_tensor
    return outputs[0] if len(outputs) == 1 else outputs


def _counterparts(layer: Any, tensors: dict) -> Any:
    """The converted tensors ``layer`` is to be called on: its source inputs' counterparts, in the same structure.

    Keras 3 also feeds a layer the padding mask it computed with a plain ``not_equal`` op; that
    input is left out, since the converted layer gets its mask from the converted ``Embedding``.
    """
    inputs, _ = _this_call(layer, tensors)
    sources = [tensor for tensor in _flat(inputs) if not _is_mask_op_output(tensor)]
    unknown = [tensor for tensor in sources if id(tensor) not in tensors]
    if unknown or not sources:  # a layer called on several inputs in turn, or on a tensor made outside any layer
        raise TypeError(
            f"convert handles models in which each layer is called once, on other layers' outputs; "
            f"{layer.name!r} is not"
        )
    converted = [tensors[id(tensor)] for tensor in sources]
    return converted if isinstance(inputs, (list, tuple)) and len(converted) > 1 else converted[0]


def _this_call(layer: Any, tensors: dict) -> tuple[Any, Any]:
    """``(inputs, outputs)`` of ``layer``'s call in the graph being replayed: its call, or for a layer that copies of
    a model share (a preprocessing layer) the call on this graph's tensors (those ``tensors`` knows)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) > 1 and flavours.shared_as_is(layer):
        for node in reversed(nodes):
            if all(id(tensor) in tensors for tensor in _flat(node.input_tensors)):
                return node.input_tensors, node.output_tensors
    return layer.input, layer.output


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
                if "name" in inner and named.__module__.startswith("tf_keras"):  # tf_keras's wrapper prefixes
                    inner["name"] = inner["name"].removeprefix(_DIRECTION_PREFIXES[key])  # "forward_" itself
            else:
                inner = _accepted(value.get("config", {}), named)
            config[key] = {"class_name": value["class_name"], "config": inner}
            if key in _WRAPPED_LAYER_KEYS and named is not None and named.__module__.startswith("keras."):
                config[key]["module"] = "keras.layers"  # Keras 3 finds a wrapped layer's class by its module
    return _accepted(config, target_class, keep=("name", "trainable", "dtype"))


_WRAPPED_LAYER_KEYS = ("layer", "backward_layer")
_DIRECTION_PREFIXES = {"layer": "forward_", "backward_layer": "backward_"}


def _named(class_name: str, layer_class: type) -> type | None:
    package = next(root for cls in layer_class.__mro__ if (root := cls.__module__.split(".")[0]) in flavours.FLAVOURS)
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


def _portable_compile_value(value: Any, own_objects: bool = False) -> Any:
    """Losses and metrics by name, so either flavour resolves them; plain functions as they are, and with
    ``own_objects`` (losses: a function of ``y_true`` and ``y_pred``, which either flavour calls) objects of the
    user's own classes too.

    Raises:
        TypeError: a metric object of the user's own class, which the other flavour cannot update.
    """
    if isinstance(value, (list, tuple)):
        return type(value)(_portable_compile_value(item, own_objects) for item in value)
    if isinstance(value, dict) and "class_name" in value:
        return value.get("config", {}).get("name") or value["class_name"]
    if hasattr(value, "get_config"):
        if type(value).__module__.split(".")[0] not in flavours.FLAVOURS:
            if own_objects:
                return value
            raise TypeError(
                f"the model is compiled with {type(value).__qualname__}, an object of the user's own class, which the "
                f"other Keras flavour cannot re-create; compile it with a built-in metric, or a plain function "
                f"metric(y_true, y_pred), for this step"
            )
        return value.get_config().get("name", type(value).__name__)
    return value
