"""GPU memory control, XLA, and which recurrent layers will run on the fused cuDNN kernel.

The blog's ``tf.ConfigProto(gpu_options=...)`` and ``set_session`` are TensorFlow 1; TensorFlow 2
configures devices through ``tf.config`` before the runtime starts. :func:`configure_gpu` does that,
and is the one function here that changes process-wide state: it is meant for the top of a script.

The fast paths conflict: a Keras LSTM runs the fused cuDNN kernel only under conditions (tanh and
sigmoid activations, no recurrent dropout, not unrolled, with a bias, strictly right-padded masks, a
visible GPU), and a cuDNN LSTM cannot be XLA-compiled. :func:`cudnn_report` says, layer by layer,
which kernel will run and why; :func:`use_xla` says what it gives up.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from fastnlp import flavour, hardware
from fastnlp.notices import SpeedupWarning, record_applied
from fastnlp.registry import BadCall, register

__all__ = ["CudnnStatus", "configure_gpu", "cudnn_report", "enable_cudnn", "use_xla"]

_TOO_LATE = (
    "configure_gpu must run before TensorFlow initialises the GPUs: call it at the top of your script, "
    "before building a model or running any TensorFlow op"
)


def configure_gpu(
    memory_fraction: float | None = None,
    memory_limit_mb: int | None = None,
    memory_growth: bool | None = None,
    devices: list[int] | None = None,
) -> list[str]:
    """Configure this process's GPUs, TensorFlow 2's way: which are visible and how much memory each may take.

    Args:
        memory_fraction: cap each visible GPU at this fraction (0 < f <= 1) of its total memory,
            read from the driver (NVML) without starting TensorFlow's runtime.
        memory_limit_mb: cap each visible GPU at this many MB.
        memory_growth: allocate GPU memory as needed instead of all of it up front.
        devices: indices of the GPUs to make visible (default: all).

    Returns:
        What was configured, one line per setting (empty where there is no GPU).

    Raises:
        ValueError: a fraction outside (0, 1], a limit of 0 or less, a cap together with memory
            growth (TensorFlow allows one or the other), both a fraction and a limit, or an unknown
            device index.
        RuntimeError: TensorFlow has already initialised the GPUs (call it first thing).

    Examples:
        >>> configure_gpu(memory_fraction=1.5)
        Traceback (most recent call last):
        ...
        ValueError: memory_fraction must be in (0, 1], got 1.5
    """
    if memory_fraction is not None and memory_limit_mb is not None:
        raise ValueError("give memory_fraction or memory_limit_mb, not both")
    if memory_fraction is not None and not (isinstance(memory_fraction, (int, float)) and 0 < memory_fraction <= 1):
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction!r}")
    if memory_limit_mb is not None and not (isinstance(memory_limit_mb, int) and memory_limit_mb > 0):
        raise ValueError(f"memory_limit_mb must be a positive integer, got {memory_limit_mb!r}")
    capped = memory_fraction is not None or memory_limit_mb is not None
    if capped and memory_growth:
        raise ValueError("TensorFlow takes either a memory cap or memory growth for a GPU, not both")

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")  # does not start the runtime
    if not gpus:
        warnings.warn("configure_gpu: no GPU visible to TensorFlow; nothing to configure", SpeedupWarning, stacklevel=2)
        return []
    chosen = gpus if devices is None else _select(gpus, devices)
    applied = []
    try:
        if devices is not None:
            tf.config.set_visible_devices(chosen, "GPU")
            applied.append(f"visible GPUs: {[gpu.name for gpu in chosen]}")
        if memory_growth is not None:
            for gpu in chosen:
                tf.config.experimental.set_memory_growth(gpu, memory_growth)
            applied.append(f"memory growth: {memory_growth}")
        if capped:
            totals = _total_memory_mb(gpus) if memory_fraction is not None else None
            for index, gpu in enumerate(chosen):
                limit = memory_limit_mb or int(memory_fraction * totals[gpus.index(gpu)])
                tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
                applied.append(f"{gpu.name}: memory capped at {limit} MB")
    except RuntimeError as error:
        raise RuntimeError(f"{_TOO_LATE} ({error})") from None
    return applied


def _select(gpus: list, devices: list[int]) -> list:
    wrong = [index for index in devices if not isinstance(index, int) or not 0 <= index < len(gpus)]
    if wrong or not devices:
        raise ValueError(f"devices must be indices of the {len(gpus)} visible GPU(s), got {devices!r}")
    return [gpus[index] for index in devices]


def _total_memory_mb(gpus: list) -> list[int]:
    totals = hardware.gpu_total_memory_mb()
    if len(totals) < len(gpus):
        raise RuntimeError(
            "memory_fraction needs each GPU's total memory, which the NVIDIA driver (NVML) did not report "
            "here; pass memory_limit_mb instead"
        )
    return totals


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
    keras = flavour.keras_module(flavour.detect(model))
    statuses = []
    gpu = hardware.has_gpu()
    xla = _jit_compile(model)
    for layer, masked in _recurrent_layers(model, keras):  # masked: an Embedding(mask_zero=True) or Masking upstream
        blockers = _cudnn_blockers(layer, isinstance(layer, keras.layers.GRU))
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
_HARMLESS = {"unroll": False, "use_cudnn": "auto"}


def _cudnn_blockers(layer: Any, is_gru: bool, harmless: bool = True) -> list[str]:
    """What keeps ``layer`` off cuDNN; with ``harmless=False`` only what would change its math to fix."""
    config = layer.get_config()
    blockers = []
    if config.get("activation") != "tanh":
        blockers.append(f"activation={config.get('activation')!r} (cuDNN needs 'tanh')")
    if config.get("recurrent_activation") != "sigmoid":
        blockers.append(f"recurrent_activation={config.get('recurrent_activation')!r} (cuDNN needs 'sigmoid')")
    if config.get("recurrent_dropout", 0):
        blockers.append(f"recurrent_dropout={config['recurrent_dropout']} (cuDNN needs 0)")
    if config.get("unroll") and harmless:
        blockers.append("unroll=True")
    if not config.get("use_bias", True):
        blockers.append("use_bias=False")
    if is_gru and not config.get("reset_after", True):
        blockers.append("reset_after=False (cuDNN's GRU resets after the matrix product)")
    if getattr(layer, "use_cudnn", "auto") is False and harmless:  # Keras 3 only, and not in its config
        blockers.append("use_cudnn=False")
    return blockers


def _recurrent_layers(model: Any, keras: Any) -> list[tuple[Any, bool]]:
    """``(layer, masked)`` per LSTM/GRU of ``model``, those inside ``Bidirectional`` and nested models
    included; ``masked``: whether a mask reaches it."""
    found, masked = [], False
    for holder in flavour.leaf_layers(model):
        masked = masked or bool(getattr(holder, "mask_zero", False)) or isinstance(holder, keras.layers.Masking)
        inner = [holder.forward_layer, holder.backward_layer] if isinstance(holder, keras.layers.Bidirectional) else [holder]
        found.extend((layer, masked) for layer in inner if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)))
    return found


def _jit_compile(model: Any) -> bool:
    arguments = flavour.compile_arguments(model) or {}
    return arguments.get("jit_compile") is True


@register(stage="layer_config", bad_calls=(BadCall({"skip_blocked": "yes"}, TypeError, "skip_blocked must be"),))
def enable_cudnn(model: Any, skip_blocked: bool = False) -> Any:
    """Return a copy of ``model`` whose LSTM/GRU layers can run the fused cuDNN kernel; ``model`` is untouched.

    Changes only what does not change a layer's math: ``unroll=True`` becomes ``False`` and Keras 3's
    ``use_cudnn=False`` becomes ``"auto"``. A layer that would need its math changed (another
    activation, recurrent dropout, no bias, GRU ``reset_after=False``) is refused, naming the layer
    and the reason, or left as it is with ``skip_blocked=True`` (and a warning). cuDNN runs only on
    NVIDIA GPUs: without one it warns that the copy will run the same kernel as before.

    Args:
        model: a Sequential or functional model, Keras 3 or tf_keras.
        skip_blocked: leave the layers that cannot be made eligible as they are (with a warning)
            instead of refusing.

    Returns:
        A new model of the same flavour, compiled as ``model`` was.

    Raises:
        ValueError: a recurrent layer cannot be made eligible without changing its math.

    Examples:
        >>> import keras, warnings
        >>> model = keras.Sequential([keras.Input((20, 4)), keras.layers.LSTM(8, unroll=True, name="lstm")])
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     fast = enable_cudnn(model)
        >>> fast.get_layer("lstm").get_config()["unroll"], cudnn_report(fast)[0].eligible
        (False, True)
    """
    flavour.check_rebuildable(model)
    if not isinstance(skip_blocked, bool):
        raise TypeError(f"skip_blocked must be True or False, got {skip_blocked!r}")
    keras = flavour.keras_module(flavour.detect(model))
    blocked = {}
    for layer, _masked in _recurrent_layers(model, keras):
        reasons = _cudnn_blockers(layer, isinstance(layer, keras.layers.GRU), harmless=False)
        if reasons:
            blocked[layer.name] = reasons
    described = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in blocked.items())
    if blocked and not skip_blocked:
        raise ValueError(
            f"enable_cudnn would have to change the math of {described}; change those settings yourself "
            f"if you accept that, or pass skip_blocked=True to leave those layers as they are"
        )
    if blocked:
        warnings.warn(f"enable_cudnn: left on the generic kernel: {described}", SpeedupWarning, stacklevel=2)

    def harmless(layer: Any, config: dict) -> dict:
        if not isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)) or layer.name in blocked:
            return config
        return {**config, **{key: value for key, value in _HARMLESS.items() if key in config or hasattr(layer, key)}}

    def edit(layer: Any, config: dict, is_output: bool) -> dict:
        if not isinstance(layer, keras.layers.Bidirectional):
            return harmless(layer, config)
        config = dict(config)  # the wrapped layers' configs are nested in the wrapper's
        for key, inner in (("layer", layer.forward_layer), ("backward_layer", layer.backward_layer)):
            if isinstance(config.get(key), dict):
                config[key] = {**config[key], "config": harmless(inner, config[key]["config"])}
        return config

    result = flavour.rebuild(model, edit)
    if not hardware.has_gpu():
        warnings.warn("enable_cudnn: no GPU visible, so the generic kernel runs here all the same", SpeedupWarning, stacklevel=2)
    record_applied(result, "enable_cudnn" + (f" (left as they were: {list(blocked)})" if blocked else ""), model)
    return result


@register(
    stage="compile_options",
    bad_calls=(BadCall({"steps_per_execution": 1}, TypeError, "unexpected keyword"),),
)
def use_xla(model: Any) -> Any:
    """Return a copy of ``model`` compiled with ``jit_compile=True`` (XLA); ``model`` is untouched.

    XLA fuses operations into compiled kernels. It is not always faster: on this project's CPU a
    tf_keras LSTM trained about 4x slower under XLA and a Keras 3 one no faster, so it warns on a
    machine without a GPU; and a cuDNN LSTM cannot be XLA-compiled, so on a GPU it warns that the
    recurrent layers it names fall back to the generic kernel. Measure before you keep it.

    Args:
        model: a compiled Sequential or functional model, Keras 3 or tf_keras.

    Returns:
        A new model of the same flavour, compiled as ``model`` was plus ``jit_compile=True``.

    Raises:
        ValueError: ``model`` is not compiled (``jit_compile`` is a compile option).
        TypeError: ``model`` is not a Sequential or functional Keras model.

    Examples:
        >>> import warnings
        >>> from fastnlp import build_lstm
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     xla = use_xla(build_lstm(50, units=8, num_layers=1))
        >>> xla.get_compile_config()["jit_compile"]
        True
    """
    flavour.check_rebuildable(model)
    flavour.require_compiled(model, "use_xla sets a compile option")
    result = flavour.rebuild(model, compile_options={"jit_compile": True})
    if not hardware.has_gpu():
        warnings.warn(
            "use_xla: no GPU visible; on CPUs XLA often trains LSTMs slower (about 4x slower for a tf_keras "
            "LSTM on this project's CPU): measure before you keep it", SpeedupWarning, stacklevel=2,
        )
    else:
        eligible = [status.layer for status in cudnn_report(model) if status.eligible]
        if eligible:
            warnings.warn(
                f"use_xla: XLA cannot compile the cuDNN kernel, so {eligible} run the generic kernel under XLA; "
                "compare with cudnn_report and a timed run", SpeedupWarning, stacklevel=2,
            )
    record_applied(result, "use_xla (jit_compile=True)", model)
    return result
