"""What pruning and quantization share: the bridge to tf_keras (tfmot's only flavour) and input checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core import notices
from fastnlp.core.convert import convert
from fastnlp.core.notices import FlavourWarning
from fastnlp.core.rebuild import rebuild

__all__ = ["check_float32", "check_layers", "check_wrapped_layers", "tf_keras_copy", "value_named_like"]

#: what pruning and quantization take inside a wrapper: recurrent layers in a Bidirectional, kernels in a TimeDistributed
_WRAPPED = {"Bidirectional": ("LSTM", "GRU"), "TimeDistributed": ("Dense", "Conv1D")}


def tf_keras_copy(model: Any, transform: str) -> Any:
    """A tf_keras copy of ``model`` with the same weights, the layers of nested models called in their place (a
    Keras 3 model is converted, with a :class:`FlavourWarning` that ``transform`` returns tf_keras); ``model`` is
    untouched. Preprocessing layers come along as they are (converted with their vocabulary from Keras 3)."""
    import tensorflow as tf

    if model.distribute_strategy is not tf.distribute.get_strategy():
        raise ValueError(
            f"{transform} re-creates the model in tf_keras, outside its tf.distribute strategy: apply {transform} "
            f"first and fastnlp.distribute after it (build_lstm and speedups=[...] use that order)"
        )
    if flavours.detect(model) == "tf_keras":  # tfmot wraps top-level layers: nested models' layers are inlined
        return convert(model, "tf_keras", inline_models=True) if flavours.has_nested_models(model) else rebuild(model)
    notices.warn(
        f"{transform}: the result is a tf_keras model: tensorflow-model-optimization wraps only tf_keras "
        f"layers. Train it with fit as usual; fastnlp.strip_pruning(..., to='keras') and fastnlp.to_tflite "
        f"bring it back out",
        FlavourWarning,
    )
    return convert(model, "tf_keras", inline_models=True)


def check_float32(model: Any, transform: str) -> None:
    """``ValueError`` when a layer of ``model`` computes in another dtype than float32 (e.g. mixed precision);
    preprocessing layers, which compute on strings or ids, aside."""
    for layer in flavours.leaf_layers(model):
        policy = layer.dtype_policy.name
        if type(layer).__name__ != "InputLayer" and policy != "float32" and not flavours.is_preprocessing(layer):
            raise ValueError(
                f"{transform} needs a float32 model; layer {layer.name!r} ({type(layer).__name__}) runs "
                f"{policy!r}. Apply {transform} to the float32 model (mixed precision and tfmot's "
                f"wrappers do not combine)"
            )


def check_layers(model: Any, supported: Iterable[str], transform: str, route: str = "") -> None:
    """``TypeError`` naming the first layer (nested models' included) whose class is not in ``supported`` (class
    names), and ``route`` where given; preprocessing layers are taken, as they are."""
    supported = set(supported)
    for layer in flavours.leaf_layers(model):
        name = type(layer).__name__
        if name not in supported and name != "InputLayer" and not flavours.is_preprocessing(layer):
            raise TypeError(
                f"{transform} does not support layer {layer.name!r} ({name}); supported layers: {sorted(supported)}"
                + (f" ({route})" if route else "")
            )


def check_wrapped_layers(model: Any, transform: str) -> None:
    """``TypeError`` naming the first ``Bidirectional`` or ``TimeDistributed`` of ``model`` whose layer ``transform``
    cannot take (a ``Bidirectional`` of an LSTM or GRU, a ``TimeDistributed`` of a Dense or Conv1D it can)."""
    for layer in flavours.leaf_layers(model):
        accepted = _WRAPPED.get(type(layer).__name__)
        inner = type(getattr(layer, "forward_layer", getattr(layer, "layer", None))).__name__
        if accepted and inner not in accepted:
            raise TypeError(
                f"{transform} does not support layer {layer.name!r} ({type(layer).__name__} of {inner}); it takes a "
                f"{type(layer).__name__} of {' or '.join(accepted)}"
            )


def value_named_like(name: str, values: dict[str, Any]) -> Any:
    """The value in ``values`` (by variable name) whose name ends like ``name`` in the most ``/`` parts: the same
    variable seen under another outer scope (a re-created or an unwrapped layer names its variables without it).

    Examples:
        >>> value_named_like("bi/forward_lstm/lstm_cell/kernel:0", {"forward_lstm/lstm_cell/kernel:0": 1, "backward_lstm/lstm_cell/kernel:0": 2})
        1
    """
    parts = name.split("/")

    def shared(other: str) -> int:
        count = 0
        for mine, theirs in zip(reversed(parts), reversed(other.split("/"))):
            if mine != theirs:
                break
            count += 1
        return count

    return values[max(values, key=shared)]
