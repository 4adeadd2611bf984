"""``hoist_lstm_projection``: train LSTMs on the schedule cuDNN uses, on any device, with the same math.

See :mod:`fastnlp.speedups.hoisted_lstm` for what changes in the execution, and the method card in
docs/training.md (figures in docs/benchmarks.md, with the machines they come from) for when it pays.
"""

from __future__ import annotations

from typing import Any

from fastnlp.core import notices
from fastnlp.core import flavour, hardware
from fastnlp.speedups.hoisted_lstm import hoisted_lstm_class, is_hoisted_lstm
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import rebuild
from fastnlp.core.recurrent import fast_path_blockers, recurrent_layers
from fastnlp.core.registry import Applied, NoEffect, speedup

__all__ = ["hoist_lstm_projection", "stock_lstm_layers"]


@speedup(stage="layer_config", conflicts=("prune", "quantize"))
def hoist_lstm_projection(model: Any) -> Applied | NoEffect:
    """Return a copy of ``model`` whose LSTMs project all time steps' inputs before the loop; ``model`` is untouched.

    The copy's LSTM layers become :class:`HoistedLSTM` (same config, same weights, same outputs to
    float rounding): ``x @ W`` for every step is one matrix product before the time loop, and the
    backward pass keeps one small product per step, as cuDNN does. It pays most where the input is
    as wide as the layer (a stacked LSTM) and for the weight gradients of every layer. Where cuDNN
    would run (a visible GPU) the layer runs cuDNN as before. Layers whose math the hoisted loop does
    not reproduce (masks, recurrent dropout, unrolling, other activations) keep the stock loop,
    named in a :class:`~fastnlp.SpeedupWarning`. ``to_tflite`` exports the stock layers, so the
    LSTM is still TFLite's fused op. Prune or quantize first: tfmot wraps only stock layers.

    Args:
        model: a Sequential or functional Keras 3 or tf_keras model.

    Returns:
        A new model of the same flavour, compiled as ``model`` was.

    Raises:
        TypeError: not a Sequential or functional Keras model.

    Examples:
        >>> import numpy as np
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(30, units=16, num_layers=2, seq_len=12)
        >>> fast = hoist_lstm_projection(model)
        >>> type(fast.get_layer("lstm_2")).__name__
        'HoistedLSTM'
        >>> x = np.random.default_rng(0).integers(0, 30, (4, 12))
        >>> bool(np.allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5))
        True
    """
    kind = flavour.detect(model)
    chosen, kept = set(), {}
    for layer, masked in recurrent_layers(model, of=("LSTM",), inside_wrappers=False):
        reasons = fast_path_blockers(layer, "hoisted", masked=masked is not None)
        if reasons:
            kept[layer.name] = reasons
        elif not is_hoisted_lstm(layer):
            chosen.add(layer.name)
    if kept:
        described = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in kept.items())
        notices.warn(f"hoist_lstm_projection: kept the stock loop for {described}", SpeedupWarning)
    if not chosen:
        return NoEffect("no LSTM layer whose loop can be hoisted (or all already are)", "hoist_lstm_projection")
    hoisted = hoisted_lstm_class(kind)
    result = rebuild(model, layer_class=lambda layer: hoisted if layer.name in chosen else None)
    if hardware.has_gpu():
        notices.warn("hoist_lstm_projection: a GPU is visible, so cuDNN-eligible layers keep running cuDNN, which already "
            "hoists the projection", SpeedupWarning)
    return Applied(result, f"hoist_lstm_projection({sorted(chosen)})")


def stock_lstm_layers(model: Any) -> Any:
    """``model`` itself, or a copy whose :class:`HoistedLSTM` layers are stock LSTMs again (same weights).

    Tools that recognise the stock class (the TFLite converter's fused LSTM, tfmot) get the stock layer.
    """
    keras = flavour.keras_module(flavour.detect(model))
    if not any(is_hoisted_lstm(layer) for layer, _ in recurrent_layers(model, of=("LSTM",), inside_wrappers=False)):
        return model
    stock = keras.layers.LSTM
    return rebuild(model, layer_class=lambda layer: stock if is_hoisted_lstm(layer) else None)
