"""The tf_keras ``HoistedLSTM`` and ``HoistedGRU``, registered with Keras as ``fastnlp>HoistedLSTM`` and
``fastnlp>HoistedGRU`` (see :mod:`fastnlp.speedups.hoisted_lstm` and :mod:`fastnlp.speedups.hoisted_gru`)."""

from __future__ import annotations

from typing import Any

import tf_keras

from fastnlp.speedups.hoisted_gru import hoisted_gru
from fastnlp.speedups.hoisted_lstm import hoistable, hoisted_lstm

__all__ = ["HoistedGRU", "HoistedLSTM", "HoistedLoop"]


class HoistedLoop:
    """The tf_keras recurrent layer's ``call``, run hoisted where that computes the stock math
    (:func:`~fastnlp.speedups.hoisted_lstm.hoistable`); the layer class says how (:meth:`hoisted`)."""

    #: how many gate inputs the stock fused path draws dropout masks for (each layer class says)
    GATES: int

    def call(self, inputs: Any, mask: Any = None, training: Any = None, initial_state: Any = None) -> Any:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        ragged = not hasattr(inputs, "shape") or type(inputs).__name__ == "RaggedTensor"
        if ragged or not hoistable(self):
            return super().call(inputs, mask=mask, training=training, initial_state=initial_state)
        inputs, initial_state, _ = self._process_inputs(inputs, initial_state, None)
        self.reset_dropout_mask()
        dropout = self.get_dropout_mask_for_cell(inputs, training, count=self.GATES)
        if dropout is not None:  # the stock fused path also applies one mask (shaped like the inputs) to every gate
            mask_of_inputs = dropout[0]
            inputs = inputs * (mask_of_inputs if mask_of_inputs.shape.rank == 3 else mask_of_inputs[:, None, :])
        cell = self.cell
        weights = (cell.kernel, cell.recurrent_kernel, cell.bias if cell.use_bias else None)
        options = {
            "go_backwards": self.go_backwards, "return_sequences": self.return_sequences, "mask": mask,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        last, outputs, states = self.hoisted(inputs, list(initial_state), weights, options)
        if self.stateful:
            for variable, value in zip(self.states, states):
                variable.assign(value)
        output = outputs if self.return_sequences else last
        return [output, *states] if self.return_state else output


@tf_keras.utils.register_keras_serializable(package="fastnlp", name="HoistedLSTM")
class HoistedLSTM(HoistedLoop, tf_keras.layers.LSTM):
    """A tf_keras ``LSTM`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_lstm`)."""

    GATES = 4

    def hoisted(self, sequences: Any, states: list, weights: tuple, options: dict) -> Any:
        return hoisted_lstm(sequences, *states, *weights, **options)


@tf_keras.utils.register_keras_serializable(package="fastnlp", name="HoistedGRU")
class HoistedGRU(HoistedLoop, tf_keras.layers.GRU):
    """A tf_keras ``GRU`` whose loop is executed as cuDNN schedules it (see :mod:`fastnlp.speedups.hoisted_gru`)."""

    GATES = 3

    def hoisted(self, sequences: Any, states: list, weights: tuple, options: dict) -> Any:
        return hoisted_gru(sequences, states[0], *weights, reset_after=self.cell.reset_after, **options)
