"""Masked LSTMs over right-padded sequences, exported as the fused LSTM op.

The converter makes TFLite's fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` only from an LSTM without a mask; a
masked one (behind ``Embedding(mask_zero=True)``) becomes a ``WHILE`` loop, slower, and one that int8
calibration crashes on. Where every sequence is padded at its end only, an LSTM's outputs at the real
steps do not depend on the padding after them: the same LSTM without the mask computes them, and the
masked layer's final output is the unmasked layer's output at the last real step.
:func:`unmasked_for_right_padding` re-creates a model that way, for export.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tf_keras

from fastnlp.core import flavour as flavours
from fastnlp.core.convert import reassemble
from fastnlp.core.recurrent import makes_mask

__all__ = ["LastRealStep", "check_right_padded", "unmasked_for_right_padding"]

_RECURRENT = ("GRU", "LSTM", "SimpleRNN")
#: layers that hand a mask on and compute each step on its own, so padding after a step cannot change it
_STEPWISE = ("Activation", "Dense", "Dropout", "SpatialDropout1D", "TimeDistributed")


def unmasked_for_right_padding(model: Any) -> Any:
    """A tf_keras copy of the tf_keras ``model`` without its padding mask, computing what ``model`` does on
    right-padded ids: each masked recurrent layer runs unmasked, and one that returns its last output returns
    its output at the last real step (the last non-zero id) instead.

    Raises:
        ValueError: ``model`` has no ``Embedding(mask_zero=True)``, or more than one, or a layer that uses the
            mask in another way (named, with why): a ``Bidirectional`` or ``go_backwards`` layer reads the
            padding first, and a sequence output or a masked pooling layer would take the padded steps in.

    Examples:
        >>> import numpy as np, tf_keras
        >>> ids = tf_keras.Input((5,), dtype="int32")
        >>> lstm = tf_keras.layers.LSTM(3)(tf_keras.layers.Embedding(9, 2, mask_zero=True)(ids))
        >>> model = tf_keras.Model(ids, lstm)
        >>> x = np.array([[4, 2, 7, 0, 0], [1, 0, 0, 0, 0]])
        >>> bool(np.allclose(unmasked_for_right_padding(model)(x), model(x), atol=1e-6))
        True
    """
    if flavours.detect(model) != "tf_keras":
        raise ValueError(
            f"to_tflite(right_padded=True) re-creates the model in tf_keras, and {model.name!r} could not be "
            f"converted (see the warning before); export it without right_padded"
        )
    keras = flavours.keras_module("tf_keras")
    masking = [layer for layer in model.layers if makes_mask(layer, keras)]
    if len(masking) != 1 or not isinstance(masking[0], keras.layers.Embedding):
        found = ", ".join(repr(layer.name) for layer in masking) or "none"
        raise ValueError(
            f"to_tflite(right_padded=True) takes a model with one Embedding(mask_zero=True) making its padding mask; "
            f"{model.name!r} has {found}. Export it without right_padded"
        )
    (embedding,) = masking
    last_step = {layer.name for layer in model.layers if _check_masked_use(layer, embedding) and not layer.return_sequences}
    for tensor in model.outputs:
        if _masked(tensor):
            raise ValueError(
                f"to_tflite(right_padded=True): the output of layer {tensor._keras_history[0].name!r} is a sequence "
                f"that carries the padding mask, and the unmasked export would compute its padded steps too. "
                f"Export it without right_padded"
            )
    ids: list = []

    def unmasked(layer: Any) -> Any:
        config = layer.get_config()
        if layer is embedding:
            config["mask_zero"] = False
        if layer.name in last_step:
            config["return_sequences"] = True
        return type(layer).from_config(config)

    def remember_ids(layer: Any, inputs: Any) -> Any:
        if layer is embedding:
            ids.append(inputs)
        return inputs

    def take_last_real_step(layer: Any, outputs: Any) -> Any:
        if layer.name not in last_step:
            return outputs
        return LastRealStep(name=f"{layer.name}_last_real_step")([outputs, ids[0]])

    copy, pairs = reassemble(model, keras, unmasked, remember_ids, take_last_real_step)
    for layer, new in pairs:
        new.set_weights(layer.get_weights())
    return copy


def check_right_padded(samples: np.ndarray) -> None:
    """``ValueError`` when a row of ``samples`` (ids, samples first) has a real id after a padding id (0).

    Examples:
        >>> check_right_padded(np.array([[3, 1, 0, 0]]))
        >>> check_right_padded(np.array([[0, 3, 1, 0]]))
        Traceback (most recent call last):
        ...
        ValueError: right_padded=True, but row 0 of representative_data has a real id after padding (0) ...
    """
    real = np.asarray(samples).reshape(len(samples), -1) != 0
    later_real = np.flip(np.logical_or.accumulate(np.flip(real, axis=1), axis=1), axis=1)
    wrong = np.flatnonzero((later_real & ~real).any(axis=1))
    if wrong.size:
        raise ValueError(
            f"right_padded=True, but row {int(wrong[0])} of representative_data has a real id after padding (0) "
            f"(left- or mid-padded); the export computes right-padded sequences only. Pad at the end, or export "
            f"without right_padded"
        )


@tf_keras.utils.register_keras_serializable(package="fastnlp")
class LastRealStep(tf_keras.layers.Layer):
    """Each sequence's output at its last real step: called on ``[outputs (batch, time, units), ids (batch, time)]``,
    it returns ``outputs`` at the last non-zero id of each row; a row of padding only gives zeros, as a masked
    recurrent layer does. (A layer of its own, not a ``Lambda``, so the int8 converter's process can load it.)"""

    def call(self, inputs: list) -> Any:
        import tensorflow as tf

        outputs, ids = inputs
        lengths = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1)
        pick = tf.one_hot(lengths - 1, tf.shape(outputs)[1], dtype=outputs.dtype)  # an index of -1: all zeros
        return tf.reduce_sum(outputs * pick[:, :, None], axis=1)


def _check_masked_use(layer: Any, embedding: Any) -> bool:
    """Whether ``layer`` is a recurrent layer that the mask reaches (``ValueError`` naming it when the mask
    reaches it and it uses the mask in a way the unmasked export cannot compute)."""
    if layer is embedding or type(layer).__name__ == "InputLayer":
        return False
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    if not any(_masked(tensor) for tensor in inputs):
        return False
    kind = type(layer).__name__
    if kind in _STEPWISE:
        return False
    why = None
    if kind == "Bidirectional":
        why = "its backward direction reads the padding before the sequence"
    elif kind not in _RECURRENT:
        why = "it uses the padding mask across steps (right padding changes what it computes without the mask)"
    elif layer.go_backwards:
        why = "it reads the sequence backwards, padding first (go_backwards=True)"
    elif layer.return_state:
        why = "it returns its states, which the export would take after the padding"
    if why:
        raise ValueError(
            f"to_tflite(right_padded=True) cannot export layer {layer.name!r} ({kind}) unmasked: {why}. "
            f"Export it without right_padded (a masked LSTM becomes a loop of small ops)"
        )
    return True


def _masked(tensor: Any) -> bool:
    return getattr(tensor, "_keras_mask", None) is not None
