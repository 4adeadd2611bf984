"""The Keras 3 ``HoistedGRU``, registered with Keras as ``fastnlp>HoistedGRU`` (see :mod:`fastnlp.speedups.hoisted_gru`)."""

from __future__ import annotations

import keras

from fastnlp.speedups.hoisted_gru import hoisted_gru
from fastnlp.speedups.hoisted_lstm import hoistable

__all__ = ["HoistedGRU"]


@keras.saving.register_keras_serializable(package="fastnlp", name="HoistedGRU")
class HoistedGRU(keras.layers.GRU):
    """A Keras 3 ``GRU`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_gru`)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(initial_state, (list, tuple)):
            initial_state = initial_state[0]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not hoistable(self):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if training and self.dropout:
            sequences = sequences * self.cell.get_dropout_mask(sequences[:, 0, :])[:, None, :]
        cell = self.cell
        return hoisted_gru(
            sequences, initial_state, cell.kernel.value, cell.recurrent_kernel.value,
            cell.bias.value if cell.use_bias else None, reset_after=cell.reset_after,
            go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            mask=mask, zero_output_for_mask=self.zero_output_for_mask,
        )
