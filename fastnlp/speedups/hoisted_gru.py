"""The hoisted GRU: a GRU that projects every time step's input for all three gates before its loop.

The same schedule as :mod:`fastnlp.speedups.hoisted_lstm`, for Keras's GRU in both of its forms:
``x @ W`` (and the input bias) for every step is one matrix product before the time loop; inside it,
forward and backward, only the recurrent products remain; the recurrent kernel's gradient (and the
recurrent bias's) are single products after the backward loop. With ``reset_after=True`` (Keras's
default, cuDNN's form) the reset gate scales ``h @ U_h + b_h``: one ``h @ U`` per step. With
``reset_after=False`` it scales ``h`` before its product: ``h @ U_zr`` and ``(r * h) @ U_h`` per step.
Masks follow Keras: a masked step carries the state over. Each flavour's class is defined beside its
HoistedLSTM (:mod:`fastnlp.speedups.hoisted_keras`, :mod:`fastnlp.speedups.hoisted_tf_keras`) and
registered as ``fastnlp>HoistedGRU``.
"""

from __future__ import annotations

import functools
from typing import Any

from fastnlp.speedups.hoisted_lstm import (
    carried_states, counted_span, hoisted_class, is_hoisted, keras_outputs, project_time_major, span_gradient, steps_kept,
)

__all__ = ["gru_recurrence", "hoisted_gru", "hoisted_gru_class", "is_hoisted_gru"]


def gru_recurrence(
    projected: Any, h0: Any, recurrent_kernel: Any, recurrent_bias: Any, keep: Any = None, *, reset_after: bool
) -> tuple[Any, Any]:
    """Run the GRU recurrence over inputs already projected: ``projected[t] = x_t @ W + b_input``.

    Args:
        projected: ``(time, batch, 3 * units)``, time-major, gates in Keras's order (update, reset, candidate).
        h0: ``(batch, units)`` initial state.
        recurrent_kernel: ``(units, 3 * units)``.
        recurrent_bias: ``(3 * units,)``, added to ``h @ U`` (``reset_after=True``; zeros where the layer has none).
        keep: ``(time, batch, 1)``, 1 where a step counts and 0 where it is masked; None: every step counts.
        reset_after: Keras's GRU form.

    Returns:
        ``(states, h)``: every step's state ``(time, batch, units)`` and the final one.

    Examples:
        >>> import tensorflow as tf
        >>> states, h = gru_recurrence(tf.zeros((5, 2, 9)), tf.zeros((2, 3)), tf.zeros((3, 9)), tf.zeros((9,)), reset_after=True)
        >>> tuple(states.shape), tuple(h.shape)
        ((5, 2, 3), (2, 3))
    """
    masked = keep is not None
    if keep is None:
        keep = projected[:0, :0, :0]
    return _recurrence_function(reset_after, masked)(projected, h0, recurrent_kernel, recurrent_bias, keep)


@functools.cache
def _recurrence_function(reset_after: bool, masked: bool) -> Any:
    import tensorflow as tf

    @tf.custom_gradient
    def recurrence(projected, h0, recurrent_kernel, recurrent_bias, keep):
        steps = tf.shape(projected)[0]
        first, end = counted_span(keep) if masked else (0, steps)  # a loop over the steps some row counts
        units = tf.shape(h0)[1]
        inputs = tf.TensorArray(projected.dtype, size=steps).unstack(projected)
        empty = functools.partial(tf.TensorArray, projected.dtype, size=steps)
        kernel_zr, kernel_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units :]

        def step(t, h, hs, saved):
            x_z, x_r, x_h = tf.split(inputs.read(t), 3, axis=1)
            if reset_after:
                inner = tf.matmul(h, recurrent_kernel) + recurrent_bias
                inner_z, inner_r, inner_h = tf.split(inner, 3, axis=1)
                z, r = tf.sigmoid(x_z + inner_z), tf.sigmoid(x_r + inner_r)
                candidate = tf.tanh(x_h + r * inner_h)
                kept = inner_h  # what the reset gate scaled
            else:
                inner_z, inner_r = tf.split(tf.matmul(h, kernel_zr), 2, axis=1)
                z, r = tf.sigmoid(x_z + inner_z), tf.sigmoid(x_r + inner_r)
                kept = r * h
                candidate = tf.tanh(x_h + tf.matmul(kept, kernel_h))
            new_h = z * h + (1 - z) * candidate
            if masked:  # a masked step carries the state over; its gates then get no gradient
                new_h = keep[t] * new_h + (1 - keep[t]) * h
            return t + 1, new_h, hs.write(t, new_h), saved.write(t, tf.concat([z, r, candidate, kept], axis=1))

        _, h, hs, saved = tf.while_loop(lambda t, *_: t < end, step, (first, h0, empty(), empty()), parallel_iterations=1)
        hs, saved = hs.stack(), saved.stack()
        if masked:
            hs = carried_states(hs, h0, h, first, end)

        def gradient(d_states, d_h):
            d_states = tf.zeros_like(hs) if d_states is None else d_states
            d_h = tf.zeros_like(h0) if d_h is None else d_h
            previous_h = tf.concat([h0[None], hs[:-1]], axis=0)
            transposed_kernel, transposed_zr, transposed_h = (
                tf.transpose(recurrent_kernel), tf.transpose(kernel_zr), tf.transpose(kernel_h)
            )

            def back(t, dh_next, d_gates, d_inners):
                z, r, candidate, kept = tf.split(saved[t], 4, axis=1)
                h = previous_h[t]
                dh = d_states[t] + dh_next
                if masked:
                    carried, dh = (1 - keep[t]) * dh, keep[t] * dh
                d_candidate = dh * (1 - z) * (1 - candidate * candidate)
                d_z = dh * (h - candidate) * z * (1 - z)
                dh_previous = dh * z
                if reset_after:
                    d_r = d_candidate * kept * r * (1 - r)
                    d_inner = tf.concat([d_z, d_r, d_candidate * r], axis=1)
                    dh_previous += tf.matmul(d_inner, transposed_kernel)
                else:
                    d_kept = tf.matmul(d_candidate, transposed_h)
                    d_r = d_kept * h * r * (1 - r)
                    d_inner = tf.concat([d_z, d_r], axis=1)
                    dh_previous += tf.matmul(d_inner, transposed_zr) + d_kept * r
                if masked:
                    dh_previous += carried
                d_gate = tf.concat([d_z, d_r, d_candidate], axis=1)
                return t - 1, dh_previous, d_gates.write(t, d_gate), d_inners.write(t, d_inner)

            if masked:
                d_h += span_gradient(d_states, first, end, after=True)
            _, dh0, d_gates, d_inners = tf.while_loop(
                lambda t, *_: t >= first, back, (end - 1, d_h, empty(), empty()), parallel_iterations=1
            )
            if masked:
                dh0 += span_gradient(d_states, first, end, after=False)
            d_projected, d_inner = d_gates.stack(), d_inners.stack()
            flat_h = tf.reshape(previous_h, (-1, units))
            if reset_after:
                flat_inner = tf.reshape(d_inner, (-1, 3 * units))
                d_kernel = tf.matmul(flat_h, flat_inner, transpose_a=True)
                d_bias = tf.reduce_sum(flat_inner, axis=0)
            else:
                d_zr = tf.matmul(flat_h, tf.reshape(d_inner, (-1, 2 * units)), transpose_a=True)
                flat_kept = tf.reshape(saved[:, :, 3 * units :], (-1, units))
                d_h_part = tf.matmul(flat_kept, tf.reshape(d_projected[:, :, 2 * units :], (-1, units)), transpose_a=True)
                d_kernel = tf.concat([d_zr, d_h_part], axis=1)
                d_bias = tf.zeros_like(recurrent_bias)
            return d_projected, dh0, d_kernel, d_bias, tf.zeros_like(keep)

        return (hs, h), gradient

    return recurrence


def hoisted_gru(
    sequences: Any, h0: Any, kernel: Any, recurrent_kernel: Any, bias: Any, *, reset_after: bool,
    go_backwards: bool, return_sequences: bool, mask: Any = None, zero_output_for_mask: bool = False,
):
    """Batch-major GRU over ``sequences`` (batch, time, features): ``(last_output, outputs, [h])``, with
    Keras's mask semantics (see :func:`fastnlp.speedups.hoisted_lstm.hoisted_lstm`)."""
    import tensorflow as tf

    h0, kernel, recurrent_kernel = (tf.convert_to_tensor(value) for value in (h0, kernel, recurrent_kernel))
    units = recurrent_kernel.shape[0]
    input_bias = recurrent_bias = tf.zeros((3 * units,), kernel.dtype)
    if bias is not None:
        bias = tf.convert_to_tensor(bias)
        input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, recurrent_bias)
    projected = project_time_major(sequences, kernel, input_bias, go_backwards)
    keep = steps_kept(mask, go_backwards, projected.dtype)
    states, h = gru_recurrence(projected, h0, recurrent_kernel, recurrent_bias, keep, reset_after=reset_after)
    last, outputs = keras_outputs(states, h, keep, zero_output_for_mask=zero_output_for_mask, return_sequences=return_sequences)
    return last, outputs, [h]


def hoisted_gru_class(flavour: str) -> type:
    """The ``HoistedGRU`` class of ``flavour`` (``"keras"`` or ``"tf_keras"``), registered for saving.

    Examples:
        >>> import keras, numpy as np
        >>> stock = keras.layers.GRU(4, return_sequences=True)
        >>> x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype("float32")
        >>> y = stock(x)
        >>> hoisted = hoisted_gru_class("keras").from_config(stock.get_config())
        >>> _ = hoisted(x); hoisted.set_weights(stock.get_weights())
        >>> bool(np.allclose(hoisted(x), y, atol=1e-6))
        True
    """
    return hoisted_class("HoistedGRU", flavour)


def is_hoisted_gru(layer: Any) -> bool:
    """Whether ``layer`` is a :class:`HoistedGRU` of either flavour."""
    return is_hoisted(layer, "HoistedGRU")
