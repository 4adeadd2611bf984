"""``hoist_lstm_projection``: train LSTMs on the schedule cuDNN uses, on any device, with the same math.

See :mod:`fastnlp.layers` for what changes in the execution. Measured on this project's 2-core CPU
(docs/benchmarks.md has the table): a training step of a 256-unit LSTM over 256-wide inputs ran
about 1.45x the stock layer's speed, and the 384-unit single layer of ``fastnlp train`` about 1.8x.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastnlp import flavour, hardware
from fastnlp.layers import hoisted_lstm_class, is_hoisted_lstm
from fastnlp.notices import SpeedupWarning, record_applied, warn_no_effect
from fastnlp.registry import BadCall, register

__all__ = ["hoist_lstm_projection", "stock_lstm_layers"]


def _blockers(layer: Any, masked: bool) -> list[str]:
    """Why ``layer``'s loop cannot be hoisted without changing its math (empty: it can)."""
    config = layer.get_config()
    reasons = []
    if config.get("activation") != "tanh" or config.get("recurrent_activation") != "sigmoid":
        reasons.append("activations other than tanh/sigmoid")
    if config.get("recurrent_dropout"):
        reasons.append("recurrent_dropout (a new mask inside the loop)")
    if config.get("unroll"):
        reasons.append("unroll=True")
    if config.get("time_major"):
        reasons.append("time_major=True")
    if masked:
        reasons.append("a mask (masked steps keep the previous state)")
    return reasons


def _lstm_layers(model: Any, keras: Any) -> list[tuple[Any, bool]]:
    """Each LSTM layer of ``model`` (nested models included) and whether a mask reaches it."""
    found, masked = [], False
    for layer in flavour.leaf_layers(model):
        masked = masked or bool(getattr(layer, "mask_zero", False)) or isinstance(layer, keras.layers.Masking)
        if isinstance(layer, keras.layers.LSTM):
            found.append((layer, masked))
    return found


@register(stage="layer_config", conflicts=("prune", "quantize"), bad_calls=(BadCall({"units": 3}, TypeError, "unexpected keyword"),))
def hoist_lstm_projection(model: Any) -> Any:
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
    flavour.check_rebuildable(model)
    kind = flavour.detect(model)
    keras = flavour.keras_module(kind)
    chosen, kept = set(), {}
    for layer, masked in _lstm_layers(model, keras):
        reasons = _blockers(layer, masked)
        if reasons:
            kept[layer.name] = reasons
        elif not is_hoisted_lstm(layer):
            chosen.add(layer.name)
    if kept:
        described = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in kept.items())
        warnings.warn(f"hoist_lstm_projection: kept the stock loop for {described}", SpeedupWarning, stacklevel=2)
    if not chosen:
        warn_no_effect("hoist_lstm_projection", "no LSTM layer whose loop can be hoisted (or all already are)")
        result = flavour.rebuild(model)
        record_applied(result, "hoist_lstm_projection: no effect", model)
        return result
    hoisted = hoisted_lstm_class(kind)
    result = flavour.rebuild(model, layer_class=lambda layer: hoisted if layer.name in chosen else None)
    if hardware.has_gpu():
        warnings.warn(
            "hoist_lstm_projection: a GPU is visible, so cuDNN-eligible layers keep running cuDNN, which already "
            "hoists the projection", SpeedupWarning, stacklevel=2,
        )
    record_applied(result, f"hoist_lstm_projection({sorted(chosen)})", model)
    return result


def stock_lstm_layers(model: Any) -> Any:
    """``model`` itself, or a copy whose :class:`HoistedLSTM` layers are stock LSTMs again (same weights).

    Tools that recognise the stock class (the TFLite converter's fused LSTM, tfmot) get the stock layer.
    """
    keras = flavour.keras_module(flavour.detect(model))
    if not any(is_hoisted_lstm(layer) for layer, _ in _lstm_layers(model, keras)):
        return model
    stock = keras.layers.LSTM
    return flavour.rebuild(model, layer_class=lambda layer: stock if is_hoisted_lstm(layer) else None)
