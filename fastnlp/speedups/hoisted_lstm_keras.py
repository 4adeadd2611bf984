"""The Keras 3 ``HoistedLSTM``, registered with Keras as ``fastnlp>HoistedLSTM`` (see :mod:`fastnlp.speedups.hoisted_lstm`)."""

from __future__ import annotations

import keras

from fastnlp.speedups.hoisted_lstm import hoistable, hoisted_lstm

__all__ = ["HoistedLSTM"]


@keras.saving.register_keras_serializable(package="fastnlp", name="HoistedLSTM")
class HoistedLSTM(keras.layers.LSTM):
    """A Keras 3 ``LSTM`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_lstm`)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not hoistable(self):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if training and self.dropout:
            sequences = sequences * self.cell.get_dropout_mask(sequences[:, 0, :])[:, None, :]
        cell = self.cell
        return hoisted_lstm(
            sequences, initial_state[0], initial_state[1], cell.kernel.value, cell.recurrent_kernel.value,
            cell.bias.value if cell.use_bias else None,
            go_backwards=self.go_backwards, return_sequences=self.return_sequences,
            mask=mask, zero_output_for_mask=self.zero_output_for_mask,
        )
