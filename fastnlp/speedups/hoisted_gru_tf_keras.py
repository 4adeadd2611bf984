"""The tf_keras ``HoistedGRU``, registered with Keras as ``fastnlp>HoistedGRU`` (see :mod:`fastnlp.speedups.hoisted_gru`)."""

from __future__ import annotations

import tf_keras

from fastnlp.speedups.hoisted_gru import hoisted_gru
from fastnlp.speedups.hoisted_lstm import hoistable

__all__ = ["HoistedGRU"]


@tf_keras.utils.register_keras_serializable(package="fastnlp", name="HoistedGRU")
class HoistedGRU(tf_keras.layers.GRU):
    """A tf_keras ``GRU`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_gru`)."""

    def call(self, inputs, mask=None, training=None, initial_state=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        ragged = not hasattr(inputs, "shape") or type(inputs).__name__ == "RaggedTensor"
        if ragged or not hoistable(self):
            return super().call(inputs, mask=mask, training=training, initial_state=initial_state)
        inputs, initial_state, _ = self._process_inputs(inputs, initial_state, None)
        self.reset_dropout_mask()
        dropout = self.get_dropout_mask_for_cell(inputs, training, count=3)
        if dropout is not None:  # the stock fused path also applies one mask (shaped like the inputs) to every gate
            mask_of_inputs = dropout[0]
            inputs = inputs * (mask_of_inputs if mask_of_inputs.shape.rank == 3 else mask_of_inputs[:, None, :])
        cell = self.cell
        last, outputs, states = hoisted_gru(
            inputs, initial_state[0], cell.kernel, cell.recurrent_kernel, cell.bias if cell.use_bias else None,
            reset_after=cell.reset_after, go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            mask=mask, zero_output_for_mask=self.zero_output_for_mask,
        )
        if self.stateful:
            self.states[0].assign(states[0])
        output = outputs if self.return_sequences else last
        return [output, *states] if self.return_state else output
