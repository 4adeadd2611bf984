"""The Keras 3 ``HoistedLSTM`` and ``HoistedGRU``, registered with Keras as ``fastnlp>HoistedLSTM`` and
``fastnlp>HoistedGRU`` (see :mod:`fastnlp.speedups.hoisted_lstm` and :mod:`fastnlp.speedups.hoisted_gru`)."""

from __future__ import annotations

from typing import Any

import keras

from fastnlp.speedups.hoisted_gru import hoisted_gru
from fastnlp.speedups.hoisted_lstm import hoistable, hoisted_lstm

__all__ = ["HoistedGRU", "HoistedLSTM", "HoistedLoop"]


class HoistedLoop:
    """The Keras 3 recurrent layer's ``inner_loop``, run hoisted where that computes the stock math
    (:func:`~fastnlp.speedups.hoisted_lstm.hoistable`); the layer class says how (:meth:`hoisted`)."""

    def inner_loop(self, sequences: Any, initial_state: Any, mask: Any, training: bool = False) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not hoistable(self):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if training and self.dropout:
            sequences = sequences * self.cell.get_dropout_mask(sequences[:, 0, :])[:, None, :]
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        cell = self.cell
        weights = (cell.kernel.value, cell.recurrent_kernel.value, cell.bias.value if cell.use_bias else None)
        options = {
            "go_backwards": self.go_backwards, "return_sequences": self.return_sequences, "mask": mask,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        return self.hoisted(sequences, states, weights, options)


@keras.saving.register_keras_serializable(package="fastnlp", name="HoistedLSTM")
class HoistedLSTM(HoistedLoop, keras.layers.LSTM):
    """A Keras 3 ``LSTM`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_lstm`)."""

    def hoisted(self, sequences: Any, states: list, weights: tuple, options: dict) -> Any:
        return hoisted_lstm(sequences, *states, *weights, **options)


@keras.saving.register_keras_serializable(package="fastnlp", name="HoistedGRU")
class HoistedGRU(HoistedLoop, keras.layers.GRU):
    """A Keras 3 ``GRU`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_gru`)."""

    def hoisted(self, sequences: Any, states: list, weights: tuple, options: dict) -> Any:
        return hoisted_gru(sequences, states[0], *weights, reset_after=self.cell.reset_after, **options)
