"""Quantization-aware training for models with LSTM and GRU layers.

tfmot's ``quantize_model`` rejects recurrent layers (its RNN entries were switched off pending
verification) and Keras 3's ``model.quantize("int8")`` skips them. :class:`RecurrentQuantizeConfig`
teaches tfmot an LSTM or GRU: the input and recurrent kernels go through 8-bit symmetric fake
quantization (the scheme TFLite's int8 kernels use for weights) and the layer's output through an
8-bit moving-average quantizer, so ``fit`` learns weights that survive int8 export. The gates'
internal activations stay float during training; the converter calibrates them
(``fastnlp.to_tflite(..., "int8", representative_data)``).
"""

from __future__ import annotations

from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core.rebuild import compile_like
from fastnlp.core.registry import Applied, speedup
from fastnlp.speedups.compress.common import (
    check_float32,
    check_layers,
    check_wrapped_layers,
    tf_keras_copy,
    value_named_like,
)

__all__ = ["QUANTIZABLE_LAYERS", "quantize"]

#: Layer classes :func:`quantize` accepts. Embedding stays float here (tfmot has no config for it);
#: the int8 export quantizes its table.
QUANTIZABLE_LAYERS: tuple[str, ...] = (
    "Activation", "AveragePooling1D", "Bidirectional", "Conv1D", "Dense", "Dropout", "Embedding", "GRU",
    "GlobalAveragePooling1D", "GlobalMaxPooling1D", "LSTM", "MaxPooling1D", "RepeatVector", "SpatialDropout1D",
    "TimeDistributed",
)
_RECURRENT = ("Bidirectional", "GRU", "LSTM")
#: layers tfmot's registry does not take, whose kernel fastnlp's KernelQuantizeConfig quantizes
_KERNEL = ("Conv1D", "TimeDistributed")
#: accepted but not annotated: tfmot has no config for them (Embedding) or its registry does not know them
#: (weightless layers that pass values through)
_LEFT_FLOAT = ("Embedding", "MaxPooling1D", "RepeatVector")


@speedup(stage="wrappers", conflicts=("enable_mixed_precision", "prune"), returns="tf_keras")
def quantize(model: Any) -> Applied:
    """A copy of ``model`` prepared for quantization-aware training, LSTM and GRU layers included.

    Fine-tune the result with ``fit`` (a few hundred steps from the trained float weights), then
    export with ``fastnlp.to_tflite(qat_model, "int8", representative_data)`` or ``"dynamic"``.
    Quantization-aware training makes the int8 model's quality closer to the float model's; it
    does not make training faster (fake quantization adds work to every step).

    Save the result as ``.h5``: tfmot's quantization layers do not reload from tf_keras's
    ``.keras`` format (even tfmot's own ``quantize_model`` on a Dense model fails there);
    ``fastnlp.core.flavour.load_model(path, "tf_keras")`` reads the ``.h5`` file without custom objects.

    Args:
        model: a compiled float32 Sequential or functional model, Keras 3 or tf_keras, made of
            Embedding, LSTM, GRU, ``Bidirectional`` (of an LSTM or GRU), Dense, ``TimeDistributed``
            (of a Dense or Conv1D), Conv1D, Dropout, pooling and Activation layers, at the top level or in
            nested models (the result is flat).

    Returns:
        A compiled **tf_keras** model (tfmot exists only for tf_keras; a Keras 3 input gives a
        :class:`~fastnlp.core.notices.FlavourWarning`). ``model`` is untouched.

    Raises:
        TypeError: not a Keras model, a subclassed model, or a layer of another class (named).
        ValueError: ``model`` is not compiled, has a non-float32 layer, a preprocessing layer (quantize the
            numeric model ``split_preprocessing`` gives), or an LSTM/GRU that takes or returns states (tfmot's
            wrapper handles one input and one output; the layer is named).

    Examples:
        >>> import numpy as np
        >>> from fastnlp import build_lstm
        >>> qat = quantize(build_lstm(20, units=8, num_layers=1, seq_len=6, flavour="tf_keras"))
        >>> [type(layer).__name__ for layer in qat.layers][2:4]
        ['QuantizeWrapperV2', 'QuantizeWrapperV2']
        >>> x = np.random.default_rng(0).integers(0, 20, (8, 6))
        >>> bool(np.isfinite(qat.fit(x, x, epochs=1, verbose=0).history["loss"][0]))
        True
    """
    import tensorflow_model_optimization as tfmot

    from fastnlp.speedups.compress.objects import KernelQuantizeConfig, RecurrentQuantizeConfig, compression_objects

    flavours.refuse_preprocessing(
        model, "quantize", "holds a lookup table, which no file of a quantization-aware model can hold (.h5 cannot, and "
        "tfmot's layers do not reload from .keras or a SavedModel)"
    )
    check_layers(model, QUANTIZABLE_LAYERS, "quantize")
    check_wrapped_layers(model, "quantize")
    check_float32(model, "quantize")
    flavours.require_compiled(model, "quantize recompiles the quantization-aware model as the input was")
    base = tf_keras_copy(model, "quantize")
    for layer in base.layers:  # in tf_keras, where a mask is not one of a layer's inputs (Keras 3 graphs list it)
        if type(layer).__name__ in _RECURRENT and (layer.return_state or _several_inputs(layer)):
            raise ValueError(
                f"quantize cannot wrap layer {layer.name!r}: it takes initial states or returns its states, and tfmot's "
                f"quantization wrapper handles one input and one output. Use to_tflite(model, 'dynamic') for int8 "
                f"weights without quantization-aware training"
            )
    api = tfmot.quantization.keras
    keras = flavours.keras_module("tf_keras")

    def annotate(layer):
        kind = type(layer).__name__
        if kind in _LEFT_FLOAT:
            return layer  # ``base`` is our own copy, so its layers may be reused as they are
        if kind in _RECURRENT:
            return api.quantize_annotate_layer(layer, RecurrentQuantizeConfig())
        if kind in _KERNEL:
            return api.quantize_annotate_layer(layer, KernelQuantizeConfig())
        return api.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(base, clone_function=annotate)
    with keras.utils.custom_object_scope(compression_objects()):  # tfmot's quantize_scope, and fastnlp's configs
        trained_aware = api.quantize_apply(annotated)
    if any(type(layer).__name__ == "Bidirectional" for layer in base.layers):
        trained_aware = _as_loaded(trained_aware)
    compile_like(trained_aware, base)
    return Applied(trained_aware, "quantize(8-bit weights and outputs; LSTM/GRU via RecurrentQuantizeConfig)")


def _several_inputs(layer: Any) -> bool:
    """Whether the tf_keras ``layer`` is called on more than one tensor (an RNN given initial states)."""
    return isinstance(layer.input, (list, tuple)) and len(layer.input) > 1


def _as_loaded(model: Any) -> Any:
    """``model`` re-created from its config, as a loader makes it, with the same weights matched by name.

    A quantized ``Bidirectional`` lists its weights in another order when tf_keras re-creates it (its
    kernels first), and an ``.h5`` file is read back by that order: the model saved as made did not load.
    """
    from fastnlp.speedups.compress.objects import compression_objects

    keras = flavours.keras_module("tf_keras")
    with keras.utils.custom_object_scope(compression_objects()):
        again = keras.models.model_from_json(model.to_json())
    for layer, copy in zip(model.layers, again.layers, strict=True):
        values = {weight.name: weight.numpy() for weight in layer.weights}
        copy.set_weights([value_named_like(weight.name, values) for weight in copy.weights])
    return again
