"""``hoist_lstm_projection``: train LSTMs and GRUs on the schedule cuDNN uses, on any device, with the same math.

See :mod:`fastnlp.speedups.hoisted_lstm` and :mod:`fastnlp.speedups.hoisted_gru` for what changes in the execution, and the method card in
docs/training.md (figures in docs/benchmarks.md, with the machines they come from) for when it pays.
"""

from __future__ import annotations

from typing import Any

from fastnlp.core import flavour, hardware, notices
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import rebuild, wrapped_layers
from fastnlp.core.recurrent import fast_path_blockers, recurrent_layers
from fastnlp.core.registry import Applied, NoEffect, speedup
from fastnlp.speedups.hoisted_gru import hoisted_gru_class, is_hoisted_gru
from fastnlp.speedups.hoisted_lstm import hoisted_lstm_class, is_hoisted_lstm

__all__ = ["hoist_lstm_projection", "stock_recurrent_layers"]


@speedup(stage="layer_config", conflicts=("prune", "quantize"))
def hoist_lstm_projection(model: Any) -> Applied | NoEffect:
    """Return a copy of ``model`` whose LSTMs and GRUs project all time steps' inputs before the loop; ``model`` is untouched.

    The copy's LSTM layers become :class:`HoistedLSTM` and its GRU layers :class:`HoistedGRU` (same
    config, same weights, same outputs to float rounding; both of Keras's GRU forms): ``x @ W`` for every step is one matrix product before the time loop, and the
    backward pass keeps one small product per step, as cuDNN does. It pays most where the input is
    as wide as the layer (a stacked LSTM) and for the weight gradients of every layer. Masked inputs
    follow Keras's mask semantics, and both directions of a ``Bidirectional`` are hoisted. Where cuDNN
    would run (a visible GPU) the layer runs cuDNN as before. Layers whose math the hoisted loop does
    not reproduce (recurrent dropout, unrolling, other activations) keep the stock loop, named in a
    :class:`~fastnlp.SpeedupWarning`. ``to_tflite`` exports the stock layers, so the
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
    keras = flavour.keras_module(kind)
    chosen, kept = {}, {}
    for layer, _masked in recurrent_layers(model):
        reasons = fast_path_blockers(layer, "hoisted")
        if reasons:
            kept[layer.name] = reasons
        elif not (is_hoisted_lstm(layer) or is_hoisted_gru(layer)):
            gru = isinstance(layer, keras.layers.GRU)
            chosen[layer.name] = hoisted_gru_class(kind) if gru else hoisted_lstm_class(kind)
    if kept:
        described = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in kept.items())
        notices.warn(f"hoist_lstm_projection: kept the stock loop for {described}", SpeedupWarning)
    if not chosen:
        return NoEffect("no LSTM or GRU layer whose loop can be hoisted (or all already are)", "hoist_lstm_projection")
    result = _recreated(model, lambda layer: chosen.get(layer.name))
    if hardware.has_gpu():
        notices.warn(
            "hoist_lstm_projection: a GPU is visible, so cuDNN-eligible layers keep running cuDNN, which already "
            "hoists the projection", SpeedupWarning)
    return Applied(result, f"hoist_lstm_projection({sorted(chosen)})")


def stock_recurrent_layers(model: Any) -> Any:
    """``model`` itself, or a copy whose hoisted LSTM and GRU layers are stock layers again (same weights).

    Tools that recognise the stock class (the TFLite converter's fused LSTM, tfmot) get the stock layer.
    """
    keras = flavour.keras_module(flavour.detect(model))
    if not any(is_hoisted_lstm(layer) or is_hoisted_gru(layer) for layer, _ in recurrent_layers(model)):
        return model
    return _recreated(
        model, lambda layer: keras.layers.LSTM if is_hoisted_lstm(layer) else keras.layers.GRU if is_hoisted_gru(layer) else None
    )


def _recreated(model: Any, new_class: Any) -> Any:
    """A copy of ``model`` whose layers, inside a ``Bidirectional`` or not, are re-created as ``new_class(layer)``
    (None: as they are), from the same config and with the same weights."""
    serialize = flavour.keras_module(flavour.detect(model)).layers.serialize

    def edit(layer: Any, config: dict, is_output: bool) -> dict:
        config = dict(config)
        for key, inner in wrapped_layers(layer):
            cls = new_class(inner) if isinstance(config.get(key), dict) else None
            if cls is not None:
                config[key] = serialize(cls.from_config(config[key]["config"]))
        return config

    return rebuild(model, edit, layer_class=new_class)
