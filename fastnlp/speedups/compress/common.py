"""What pruning and quantization share: the bridge to tf_keras (tfmot's only flavour) and input checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core import notices
from fastnlp.core.convert import convert
from fastnlp.core.notices import FlavourWarning
from fastnlp.core.rebuild import rebuild

__all__ = ["check_float32", "check_layers", "tf_keras_copy"]


def tf_keras_copy(model: Any, transform: str) -> Any:
    """A tf_keras copy of ``model`` with the same weights (a Keras 3 model is converted, with a
    :class:`FlavourWarning` that ``transform`` returns tf_keras); ``model`` is untouched."""
    import tensorflow as tf

    if model.distribute_strategy is not tf.distribute.get_strategy():
        raise ValueError(
            f"{transform} re-creates the model in tf_keras, outside its tf.distribute strategy: apply {transform} "
            f"first and fastnlp.distribute after it (build_lstm and speedups=[...] use that order)"
        )
    if flavours.detect(model) == "tf_keras":
        return rebuild(model)
    notices.warn(
        f"{transform}: the result is a tf_keras model: tensorflow-model-optimization wraps only tf_keras "
        f"layers. Train it with fit as usual; fastnlp.strip_pruning(..., to='keras') and fastnlp.to_tflite "
        f"bring it back out",
        FlavourWarning,
    )
    return convert(model, "tf_keras")


def check_float32(model: Any, transform: str) -> None:
    """``ValueError`` when a layer of ``model`` computes in another dtype than float32 (e.g. mixed precision)."""
    for layer in model.layers:
        policy = layer.dtype_policy.name
        if type(layer).__name__ != "InputLayer" and policy != "float32":
            raise ValueError(
                f"{transform} needs a float32 model; layer {layer.name!r} ({type(layer).__name__}) runs "
                f"{policy!r}. Apply {transform} to the float32 model (mixed precision and tfmot's "
                f"wrappers do not combine)"
            )


def check_layers(model: Any, supported: Iterable[str], transform: str) -> None:
    """``TypeError`` naming the first layer whose class is not in ``supported`` (class names)."""
    supported = set(supported)
    for layer in model.layers:
        name = type(layer).__name__
        if name not in supported and name != "InputLayer":
            raise TypeError(
                f"{transform} does not support layer {layer.name!r} ({name}); supported layers: {sorted(supported)}"
            )
