"""GPU memory control, and recurrent layers made eligible for the fused cuDNN kernel.

The blog's ``tf.ConfigProto(gpu_options=...)`` and ``set_session`` are TensorFlow 1; TensorFlow 2
configures devices through ``tf.config`` before the runtime starts. :func:`configure_gpu` does that,
and is the one function here that changes process-wide state: it is meant for the top of a script.

The fast paths conflict: a Keras LSTM runs the fused cuDNN kernel only under conditions (tanh and
sigmoid activations, no recurrent dropout, not unrolled, with a bias, strictly right-padded masks, a
visible GPU), and a cuDNN LSTM cannot be XLA-compiled. :func:`~fastnlp.core.recurrent.cudnn_report`
says, layer by layer, which kernel will run and why; :func:`enable_cudnn` changes what it can.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastnlp.core import flavour, hardware, notices
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import edit_wrapped, rebuild
from fastnlp.core.recurrent import FIXABLE_SETTINGS, fast_path_blockers, recurrent_layers
from fastnlp.core.registry import Applied, NoEffect, speedup
from fastnlp.core.validation import check_positive_int

__all__ = ["configure_gpu", "enable_cudnn"]

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
    if memory_limit_mb is not None:
        check_positive_int(memory_limit_mb=memory_limit_mb)
    capped = memory_fraction is not None or memory_limit_mb is not None
    if capped and memory_growth:
        raise ValueError("TensorFlow takes either a memory cap or memory growth for a GPU, not both")

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")  # does not start the runtime
    if not gpus:
        notices.warn("configure_gpu: no GPU visible to TensorFlow; nothing to configure", SpeedupWarning)
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


@speedup(stage="layer_config")
def enable_cudnn(model: Any, skip_blocked: bool = False) -> Applied | NoEffect:
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
        >>> from fastnlp import cudnn_report
        >>> model = keras.Sequential([keras.Input((20, 4)), keras.layers.LSTM(8, unroll=True, name="lstm")])
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     fast = enable_cudnn(model)
        >>> fast.get_layer("lstm").get_config()["unroll"], cudnn_report(fast)[0].eligible
        (False, True)
    """
    if not isinstance(skip_blocked, bool):
        raise TypeError(f"skip_blocked must be True or False, got {skip_blocked!r}")
    keras = flavour.keras_module(flavour.detect(model))
    recurrent = [layer for layer, _masked in recurrent_layers(model)]
    blocked = {}
    for layer in recurrent:
        reasons = fast_path_blockers(layer, "cudnn", fixable=False)
        if reasons:
            blocked[layer.name] = reasons
    described = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in blocked.items())
    if blocked and not skip_blocked:
        raise ValueError(
            f"enable_cudnn would have to change the math of {described}; change those settings yourself "
            f"if you accept that, or pass skip_blocked=True to leave those layers as they are"
        )
    if blocked:
        notices.warn(f"enable_cudnn: left on the generic kernel: {described}", SpeedupWarning)
    if not recurrent:
        return NoEffect("the model has no LSTM or GRU layer", "enable_cudnn")
    to_change = [layer.name for layer in recurrent if layer.name not in blocked and _needs_change(layer)]
    if not to_change:
        why = "every LSTM/GRU layer is cuDNN-eligible already" if not blocked else "no layer that can be made eligible needs a change"
        return NoEffect(why, "enable_cudnn")

    def fix(layer: Any, config: dict) -> dict:
        if not isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)) or layer.name in blocked:
            return config
        return {**config, **{key: value for key, value in FIXABLE_SETTINGS.items() if key in config or hasattr(layer, key)}}

    def edit(layer: Any, config: dict, is_output: bool) -> dict:
        return edit_wrapped(layer, fix(layer, config), fix)

    result = rebuild(model, edit)
    if not hardware.has_gpu():
        notices.warn("enable_cudnn: no GPU visible, so the generic kernel runs here all the same", SpeedupWarning)
    return Applied(result, f"enable_cudnn({sorted(to_change)})" + (f" (left as they were: {list(blocked)})" if blocked else ""))


def _needs_change(layer: Any) -> bool:
    """Whether a setting that keeps ``layer`` off cuDNN without being part of its math is set (``unroll``, ``use_cudnn``)."""
    return fast_path_blockers(layer, "cudnn") != fast_path_blockers(layer, "cudnn", fixable=False)
