"""The hoisted LSTM: an LSTM that projects every time step's input before its loop.

Keras's generic LSTM kernel multiplies ``x_t @ W`` and ``h @ U`` inside its time loop, and its
automatic gradient does four more matrix products per step (``dx``, ``dW``, ``dh``, ``dU``). cuDNN
instead projects the inputs of all steps with one large product before the loop, keeps only
``h @ U`` inside it, and computes the weight gradients with one large product each after the
backward loop. :class:`HoistedLSTM` runs the same schedule on any device: forward, one small
product per step; backward, one small product per step (``dz @ U^T``); ``x @ W``, ``dx``, ``dW``,
``dU`` and the bias gradient as single products over all steps. The math, the weights and their
layout are the stock layer's: the class only changes how the loop is executed.

A padding mask is followed as Keras follows it: a masked step carries the states over, and the loop runs
only over the steps some row of the batch counts (:func:`counted_span`), so the padding after a batch's
longest sequence costs nothing, as with cuDNN's sequence lengths. The layer keeps
the stock execution where that is the better or the only one: where cuDNN would run (a GPU is visible
and the layer is cuDNN-eligible), with recurrent dropout, ``unroll=True`` or activations other than
tanh/sigmoid (:func:`fastnlp.core.recurrent.fast_path_blockers` is the rule).
Each flavour's class is defined in its own module (:mod:`fastnlp.speedups.hoisted_keras`,
:mod:`fastnlp.speedups.hoisted_tf_keras`) and registered with Keras as ``fastnlp>HoistedLSTM``;
:func:`hoisted_lstm_class` returns the one for a flavour, and :func:`fastnlp.load_checkpoint` knows
both through :data:`fastnlp.core.serializables.MODULES`.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from fastnlp.core.recurrent import cudnn_would_run, fast_path_blockers

__all__ = [
    "carried_states", "counted_span", "hoistable", "hoisted_class", "hoisted_lstm", "hoisted_lstm_class", "hoisted_recurrence", "is_hoisted", "is_hoisted_lstm",
    "keras_outputs", "project_time_major", "span_gradient", "steps_kept",
]


def hoisted_recurrence(projected: Any, h0: Any, c0: Any, recurrent_kernel: Any, keep: Any = None) -> tuple[Any, Any, Any]:
    """Run the LSTM recurrence over inputs already projected: ``projected[t] = x_t @ W + b``.

    Args:
        projected: ``(time, batch, 4 * units)`` pre-activations from the inputs, time-major, gates in
            Keras's order (input, forget, cell, output).
        h0: ``(batch, units)`` initial hidden state.
        c0: ``(batch, units)`` initial cell state.
        recurrent_kernel: ``(units, 4 * units)``.
        keep: ``(time, batch, 1)``, 1 where a step counts and 0 where it is masked (its states carry
            the previous ones over, as Keras's masked RNNs do); None: every step counts.

    Returns:
        ``(states, h, c)``: every step's hidden state ``(time, batch, units)`` and the final states.
        Differentiable in the first four arguments, with one ``(batch, 4 * units) @ (4 * units, units)``
        product per backward step and the recurrent kernel's gradient as one product after the loop.

    Examples:
        >>> import tensorflow as tf
        >>> outputs, h, c = hoisted_recurrence(tf.zeros((5, 2, 12)), tf.zeros((2, 3)), tf.zeros((2, 3)), tf.zeros((3, 12)))
        >>> tuple(outputs.shape), tuple(h.shape)
        ((5, 2, 3), (2, 3))
    """
    if keep is None:
        return _recurrence_function(masked=False)(projected, h0, c0, recurrent_kernel, projected[:0, :0, :0])
    return _recurrence_function(masked=True)(projected, h0, c0, recurrent_kernel, keep)


@functools.cache
def _recurrence_function(masked: bool) -> Any:
    import tensorflow as tf

    @tf.custom_gradient
    def recurrence(projected, h0, c0, recurrent_kernel, keep):
        steps = tf.shape(projected)[0]
        first, end = counted_span(keep) if masked else (0, steps)
        inputs = tf.TensorArray(projected.dtype, size=steps).unstack(projected)
        empty = functools.partial(tf.TensorArray, projected.dtype, size=steps)

        def step(t, h, c, hs, cs, gates):
            z = inputs.read(t) + tf.matmul(h, recurrent_kernel)
            z_i, z_f, z_g, z_o = tf.split(z, 4, axis=1)
            i, f, o, g = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.sigmoid(z_o), tf.tanh(z_g)
            new_c = f * c + i * g
            new_h = o * tf.tanh(new_c)
            if masked:  # a masked step carries the states over; its gates then get no gradient
                new_c = keep[t] * new_c + (1 - keep[t]) * c
                new_h = keep[t] * new_h + (1 - keep[t]) * h
            return t + 1, new_h, new_c, hs.write(t, new_h), cs.write(t, new_c), gates.write(t, tf.concat([i, f, g, o], axis=1))

        _, h, c, hs, cs, gates = tf.while_loop(
            lambda t, *_: t < end, step, (first, h0, c0, empty(), empty(), empty()), parallel_iterations=1
        )
        hs, cs, gates = hs.stack(), cs.stack(), gates.stack()
        if masked:
            hs, cs = carried_states(hs, h0, h, first, end), carried_states(cs, c0, c, first, end)

        def gradient(d_outputs, d_h, d_c):
            d_outputs = tf.zeros_like(hs) if d_outputs is None else d_outputs
            d_h = tf.zeros_like(h0) if d_h is None else d_h
            d_c = tf.zeros_like(c0) if d_c is None else d_c
            previous_c = tf.concat([c0[None], cs[:-1]], axis=0)
            transposed_kernel = tf.transpose(recurrent_kernel)

            def back(t, dh_next, dc_next, dzs):
                i, f, g, o = tf.split(gates[t], 4, axis=1)
                tanh_c = tf.tanh(cs[t])
                dh = d_outputs[t] + dh_next
                dc = dc_next
                if masked:
                    carried_h, carried_c = (1 - keep[t]) * dh, (1 - keep[t]) * dc
                    dh, dc = keep[t] * dh, keep[t] * dc
                dc = dc + dh * o * (1 - tanh_c * tanh_c)
                dz = tf.concat(
                    [dc * g * i * (1 - i), dc * previous_c[t] * f * (1 - f), dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)],
                    axis=1,
                )
                dh_previous, dc_previous = tf.matmul(dz, transposed_kernel), dc * f
                if masked:
                    dh_previous, dc_previous = dh_previous + carried_h, dc_previous + carried_c
                return t - 1, dh_previous, dc_previous, dzs.write(t, dz)

            if masked:  # the states carried over the steps no row counts are the final ones, and the first ones
                d_h += span_gradient(d_outputs, first, end, after=True)
            _, dh0, dc0, dzs = tf.while_loop(
                lambda t, *_: t >= first, back, (end - 1, d_h, d_c, empty()), parallel_iterations=1
            )
            if masked:
                dh0 += span_gradient(d_outputs, first, end, after=False)
            dz = dzs.stack()
            previous_h = tf.concat([h0[None], hs[:-1]], axis=0)
            units = tf.shape(h0)[1]
            d_kernel = tf.matmul(tf.reshape(previous_h, (-1, units)), tf.reshape(dz, (-1, 4 * units)), transpose_a=True)
            return dz, dh0, dc0, d_kernel, tf.zeros_like(keep)

        return (hs, h, c), gradient

    return recurrence


def counted_span(keep: Any) -> tuple[Any, Any]:
    """``(first, end)``: the steps from the first that some row counts to the last that some row counts (at least
    one step). Outside it every row is masked and carries its state over, so a loop need not run there: with
    sequences padded to a fixed length, that is the padding after a batch's longest sequence (a reversed
    layer meets it first).

    Examples:
        >>> import tensorflow as tf
        >>> keep = tf.constant([[[0.0], [0.0]], [[1.0], [0.0]], [[0.0], [1.0]], [[0.0], [0.0]]])
        >>> [int(i) for i in counted_span(keep)]
        [1, 3]
    """
    import tensorflow as tf

    steps = tf.shape(keep)[0]
    counted = tf.reduce_max(keep, axis=[1, 2]) > 0
    index = tf.range(steps)
    first = tf.minimum(tf.reduce_min(tf.where(counted, index, steps)), steps - 1)
    return first, tf.maximum(tf.reduce_max(tf.where(counted, index + 1, 0)), first + 1)


def carried_states(states: Any, initial: Any, final: Any, first: Any, end: Any) -> Any:
    """Every step's states ``(time, batch, units)`` from a loop run over ``[first, end)`` only: the initial
    states before it and the final ones after it, as a masked step carries them over."""
    import tensorflow as tf

    index = tf.range(tf.shape(states)[0])[:, None, None]
    return tf.where(index < first, initial[None], tf.where(index >= end, final[None], states))


def span_gradient(d_states: Any, first: Any, end: Any, *, after: bool) -> Any:
    """The gradient reaching the states :func:`carried_states` filled in: the final states' (``after``) or the
    initial ones', summed over the steps after ``end`` or before ``first``."""
    import tensorflow as tf

    index = tf.range(tf.shape(d_states)[0])[:, None, None]
    outside = index >= end if after else index < first
    return tf.reduce_sum(tf.where(outside, d_states, tf.zeros_like(d_states)), axis=0)


def hoisted_lstm(
    sequences: Any, h0: Any, c0: Any, kernel: Any, recurrent_kernel: Any, bias: Any, *,
    go_backwards: bool, return_sequences: bool, mask: Any = None, zero_output_for_mask: bool = False,
):
    """Batch-major LSTM over ``sequences`` (batch, time, features): ``(last_output, outputs, [h, c])``.

    With a ``mask`` (batch, time), Keras's semantics: a masked step carries the states over, and its
    output is the previous step's output (0 before the first step that counts), or 0 with
    ``zero_output_for_mask`` (as ``Bidirectional`` asks of the layers it wraps when returning sequences).
    """
    import tensorflow as tf

    # Tensors, read now: a stateful layer's state variables are overwritten after the forward pass (its
    # gradient read the new values), and tf_keras's mixed precision passes AutoCastVariables, which the
    # custom gradient would take for variables of its own.
    h0, c0, recurrent_kernel = (tf.convert_to_tensor(value) for value in (h0, c0, recurrent_kernel))
    projected = project_time_major(sequences, kernel, bias, go_backwards)
    keep = steps_kept(mask, go_backwards, projected.dtype)
    states, h, c = hoisted_recurrence(projected, h0, c0, recurrent_kernel, keep)
    last, outputs = keras_outputs(states, h, keep, zero_output_for_mask=zero_output_for_mask, return_sequences=return_sequences)
    return last, outputs, [h, c]


def project_time_major(sequences: Any, kernel: Any, bias: Any, go_backwards: bool) -> Any:
    """``x_t @ W + b`` for every step of batch-major ``sequences``, as one product: ``(time, batch, gates * units)``."""
    import tensorflow as tf

    if go_backwards:
        sequences = tf.reverse(sequences, axis=[1])
    time_major = tf.transpose(sequences, (1, 0, 2))  # one transpose of the narrow input, not of the wider projection
    shape = tf.shape(time_major)
    projected = tf.matmul(tf.reshape(time_major, (-1, shape[2])), tf.convert_to_tensor(kernel))
    if bias is not None:
        projected = projected + tf.convert_to_tensor(bias)
    return tf.reshape(projected, (shape[0], shape[1], -1))


def steps_kept(mask: Any, go_backwards: bool, dtype: Any) -> Any:
    """A Keras ``mask`` (batch, time) as the recurrences take it: ``(time, batch, 1)`` of 1 and 0 (None: no mask)."""
    import tensorflow as tf

    if mask is None:
        return None
    keep = tf.cast(tf.reverse(mask, axis=[1]) if go_backwards else mask, dtype)
    return tf.transpose(keep)[:, :, None]


def keras_outputs(states: Any, h: Any, keep: Any, *, zero_output_for_mask: bool, return_sequences: bool) -> tuple[Any, Any]:
    """``(last_output, outputs)`` as Keras's RNN returns them, from every step's state ``(time, batch, units)``."""
    import tensorflow as tf

    last = h
    if keep is not None:  # a masked step's output is the previous output (0 before the first counted step), or 0
        counted = keep if zero_output_for_mask else tf.cast(tf.cumsum(keep, axis=0) > 0, keep.dtype)
        states = states * counted
        last = states[-1]
    return last, tf.transpose(states, (1, 0, 2)) if return_sequences else last[:, None, :]


def hoistable(layer: Any) -> bool:
    """Whether the hoisted loop computes what ``layer``'s stock kernel would, and cuDNN would not run instead."""
    return not fast_path_blockers(layer, "hoisted") and not cudnn_would_run(layer)


def hoisted_class(name: str, flavour: str) -> type:
    """fastnlp's hoisted layer class ``name`` (``"HoistedLSTM"``, ``"HoistedGRU"``) of ``flavour``."""
    if flavour not in ("keras", "tf_keras"):
        raise ValueError(f"flavour must be 'keras' or 'tf_keras', got {flavour!r}")
    return getattr(importlib.import_module(f"fastnlp.speedups.hoisted_{flavour}"), name)


def is_hoisted(layer: Any, name: str) -> bool:
    """Whether ``layer`` is fastnlp's hoisted layer class ``name``, of either flavour."""
    return type(layer).__name__ == name and type(layer).__module__ in ("fastnlp.speedups.hoisted_keras", "fastnlp.speedups.hoisted_tf_keras")


def hoisted_lstm_class(flavour: str) -> type:
    """The ``HoistedLSTM`` class of ``flavour`` (``"keras"`` or ``"tf_keras"``), registered for saving.

    Examples:
        >>> import keras, numpy as np
        >>> stock = keras.layers.LSTM(4, return_sequences=True)
        >>> x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype("float32")
        >>> y = stock(x)
        >>> hoisted = hoisted_lstm_class("keras").from_config(stock.get_config())
        >>> _ = hoisted(x); hoisted.set_weights(stock.get_weights())
        >>> bool(np.allclose(hoisted(x), y, atol=1e-6))
        True
    """
    return hoisted_class("HoistedLSTM", flavour)


def is_hoisted_lstm(layer: Any) -> bool:
    """Whether ``layer`` is a :class:`HoistedLSTM` of either flavour."""
    return is_hoisted(layer, "HoistedLSTM")
