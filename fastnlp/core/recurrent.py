"""What the recurrent layers of a model are, and what keeps each off a fast kernel.

The fast paths have conditions: a Keras LSTM runs the fused cuDNN kernel only with tanh and sigmoid
activations, no recurrent dropout, not unrolled, with a bias, strictly right-padded masks and a
visible GPU, and a cuDNN LSTM cannot be XLA-compiled; fastnlp's hoisted loop reproduces the stock
math only without masks, recurrent dropout or unrolling. :func:`cudnn_report` says, layer by layer,
which kernel will run and why; the speedups ask the same questions of this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from fastnlp.core import flavour, hardware

__all__ = [
    "FIXABLE_SETTINGS", "CudnnStatus", "FastPath", "cudnn_report", "cudnn_would_run", "fast_path_blockers", "jit_compiled",
    "makes_mask", "recurrent_layers",
]


@dataclasses.dataclass(frozen=True)
class CudnnStatus:
    """Whether one recurrent layer will run the fused cuDNN kernel, and what stands in its way."""

    layer: str
    kind: str
    eligible: bool  # the layer's own settings allow cuDNN
    reasons: tuple[str, ...]  # why not, or the conditions left to the run

    def __str__(self) -> str:
        verdict = "cuDNN-eligible" if self.eligible else "generic kernel"
        return f"{self.layer} ({self.kind}): {verdict}" + (f" — {'; '.join(self.reasons)}" if self.reasons else "")


def cudnn_report(model: Any) -> list[CudnnStatus]:
    """Per LSTM/GRU layer: will it run the fused cuDNN kernel, and why not.

    Checks the layer's settings (activations, recurrent dropout, unrolling, bias, GRU's
    ``reset_after``, Keras 3's ``use_cudnn``), the model's compile options (XLA) and the machine
    (a visible GPU). A layer that receives a mask also needs it strictly right-padded, which only
    the data can tell: the report says so.

    Args:
        model: a Keras 3 or tf_keras model.

    Returns:
        One :class:`CudnnStatus` per LSTM/GRU layer (nested models included): ``layer``,
        ``eligible`` and the ``reasons`` it is not.

    Raises:
        TypeError: ``model`` is not a Keras model.

    Examples:
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(50, units=8, num_layers=1)
        >>> print(cudnn_report(model)[0])  # doctest: +ELLIPSIS
        lstm_1 (LSTM): cuDNN-eligible — ...no GPU visible...
    """
    statuses = []
    gpu = hardware.has_gpu()
    xla = jit_compiled(model)
    for layer, masked in recurrent_layers(model):  # masked: an Embedding(mask_zero=True) or Masking upstream, by name
        blockers = fast_path_blockers(layer, "cudnn")
        notes = list(blockers)
        if not blockers:
            if xla:
                notes.append("the model is compiled with jit_compile=True, and XLA cannot compile the cuDNN kernel")
            if not gpu:
                notes.append("no GPU visible: the generic kernel runs here (cuDNN is GPU-only)")
            if masked:
                notes.append("the model masks its input: cuDNN also needs the sequences strictly right-padded")
        statuses.append(CudnnStatus(layer.name, type(layer).__name__, not blockers, tuple(notes)))
    return statuses


#: settings that block cuDNN without being part of the layer's math: enable_cudnn changes them
FIXABLE_SETTINGS = {"unroll": False, "use_cudnn": "auto"}

#: the executions :func:`fast_path_blockers` answers for
FastPath = Literal["cudnn", "hoisted"]


def fast_path_blockers(layer: Any, path: FastPath, *, fixable: bool = True) -> list[str]:
    """Why ``layer`` (an LSTM or GRU, either flavour) cannot run ``path``; empty: it can.

    The one rule for both fast executions, read from the layer's config: ``"cudnn"``, the fused cuDNN
    kernel (a GPU, and for a masked layer right-padded data, are the run's to supply); ``"hoisted"``,
    fastnlp's loop with the input projection before it, which reproduces the stock math (masks
    included) for an LSTM with tanh and sigmoid, no recurrent dropout, not unrolled, and batch-major.

    Args:
        layer: the recurrent layer.
        path: ``"cudnn"`` or ``"hoisted"``.
        fixable: include the settings that block the path without being part of the layer's math
            (:data:`FIXABLE_SETTINGS`; ``enable_cudnn`` changes them); ``False``: only what would change its math.

    Examples:
        >>> import keras
        >>> fast_path_blockers(keras.layers.LSTM(4, unroll=True), "cudnn")
        ['unroll=True']
        >>> fast_path_blockers(keras.layers.LSTM(4, unroll=True), "cudnn", fixable=False)
        []
        >>> fast_path_blockers(keras.layers.LSTM(4, recurrent_dropout=0.1), "hoisted")
        ['recurrent_dropout=0.1 (the hoisted loop needs 0)']
    """
    if path not in ("cudnn", "hoisted"):
        raise ValueError(f"path must be 'cudnn' or 'hoisted', got {path!r}")
    config = layer.get_config()
    needs = "cuDNN needs" if path == "cudnn" else "the hoisted loop needs"
    blockers = []
    if config.get("activation") != "tanh":
        blockers.append(f"activation={config.get('activation')!r} ({needs} 'tanh')")
    if config.get("recurrent_activation") != "sigmoid":
        blockers.append(f"recurrent_activation={config.get('recurrent_activation')!r} ({needs} 'sigmoid')")
    if config.get("recurrent_dropout", 0):
        blockers.append(f"recurrent_dropout={config['recurrent_dropout']} ({needs} 0)")
    if config.get("unroll") and (fixable or path == "hoisted"):
        blockers.append("unroll=True")
    if path == "cudnn":
        if not config.get("use_bias", True):
            blockers.append("use_bias=False")
        if "reset_after" in config and not config["reset_after"]:
            blockers.append("reset_after=False (cuDNN's GRU resets after the matrix product)")
        if getattr(layer, "use_cudnn", "auto") is False and fixable:  # Keras 3 only, and not in its config
            blockers.append("use_cudnn=False")
    else:
        if config.get("time_major"):
            blockers.append("time_major=True")
    return blockers


def cudnn_would_run(layer: Any) -> bool:
    """Whether TensorFlow would run ``layer`` on cuDNN here: it is eligible (masks aside) and a GPU is visible."""
    return hardware.has_gpu() and not fast_path_blockers(layer, "cudnn")


def makes_mask(layer: Any, keras: Any) -> bool:
    """Whether ``layer`` starts a padding mask (``Embedding(mask_zero=True)`` or ``Masking``); ``keras``: its flavour's module."""
    return bool(getattr(layer, "mask_zero", False)) or isinstance(layer, keras.layers.Masking)


def recurrent_layers(
    model: Any, *, of: tuple[str, ...] = ("LSTM", "GRU"), inside_wrappers: bool = True
) -> list[tuple[Any, str | None]]:
    """``(layer, mask)`` per recurrent layer of ``model`` (nested models included); ``mask``: the name of the
    first layer upstream that starts a padding mask (None: no mask reaches it).

    ``of`` names the classes to find (``("RNN",)``: every recurrent layer); ``inside_wrappers=False`` leaves
    out the layers a ``Bidirectional`` wraps.
    """
    keras = flavour.keras_module(flavour.detect(model))
    kinds = tuple(getattr(keras.layers, name) for name in of)
    found, masked = [], None
    for holder in flavour.leaf_layers(model):
        if masked is None and makes_mask(holder, keras):
            masked = holder.name
        wrapped = inside_wrappers and isinstance(holder, keras.layers.Bidirectional)
        inner = [holder.forward_layer, holder.backward_layer] if wrapped else [holder]
        found.extend((layer, masked) for layer in inner if isinstance(layer, kinds))
    return found


def jit_compiled(model: Any) -> bool:
    """Whether ``model`` is compiled with ``jit_compile=True`` (XLA)."""
    arguments = flavour.compile_arguments(model) or {}
    return arguments.get("jit_compile") is True
