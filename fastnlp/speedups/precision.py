"""Mixed precision as a model transform: float16 or bfloat16 compute, float32 variables and outputs.

Unlike ``keras.mixed_precision.set_global_policy``, nothing process-wide changes: the returned model
carries a per-layer dtype policy, and the model you passed in keeps its own.
"""

from __future__ import annotations

from typing import Any

from fastnlp.core import flavour, hardware, notices
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import edit_wrapped, rebuild, wrapped_layers
from fastnlp.core.registry import Applied, NoEffect, speedup

__all__ = ["POLICIES", "enable_mixed_precision"]

POLICIES: tuple[str, ...] = ("mixed_float16", "mixed_bfloat16")
_REBUILT_DTYPES = {"float32", "float16", "bfloat16"}  # layers of other dtypes (int, string, float64) keep theirs


@speedup(stage="dtype_policy")
def enable_mixed_precision(model: Any, policy: str = "auto") -> Applied | NoEffect:
    """Return a copy of ``model`` that computes in float16 or bfloat16; ``model`` is untouched.

    Variables stay float32; the layers that produce the model's outputs (the softmax) stay float32 so
    the loss is computed at full precision; a float16 model's optimizer gets dynamic loss scaling. The
    copy is recompiled as ``model`` was (same loss and metrics, fresh optimizer of the same config).

    Args:
        model: a Sequential or functional Keras 3 or tf_keras model, compiled or not.
        policy: ``"mixed_float16"``, ``"mixed_bfloat16"``, or ``"auto"``: float16 on GPUs of compute
            capability 7.0 or more, bfloat16 on TPUs and on CPUs with AMX, and elsewhere an unchanged
            copy with a :class:`~fastnlp.NoEffectWarning` (mixed precision there runs slower). An
            explicit policy is always honoured, with a :class:`~fastnlp.SpeedupWarning` where this
            machine is unlikely to gain from it.

    Returns:
        A new model of the same flavour.

    Raises:
        ValueError: ``policy`` is not one of ``"auto"``, ``"mixed_float16"``, ``"mixed_bfloat16"``.
        TypeError: ``model`` is not a Sequential or functional Keras model.

    Examples:
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(vocab_size=60, units=32, num_layers=1)
        >>> fast = enable_mixed_precision(model, "mixed_bfloat16")
        >>> fast.get_layer("lstm_1").dtype_policy.name, fast.get_layer("probabilities").dtype_policy.name
        ('mixed_bfloat16', 'float32')
        >>> model.get_layer("lstm_1").dtype_policy.name
        'float32'
    """
    chosen, reason = _choose_policy(policy)
    if chosen is None:
        return NoEffect(reason, "enable_mixed_precision(policy='auto')")
    if reason:
        notices.warn(f"enable_mixed_precision({chosen!r}): {reason}", SpeedupWarning)

    custom = [layer.name for layer in flavour.leaf_layers(model) if _is_custom(layer)]
    if custom:
        notices.warn(
            f"enable_mixed_precision: kept {custom} in float32: a custom layer's own sub-layers take the global "
            f"policy, not the one set on it (to run them mixed, call keras.mixed_precision.set_global_policy before "
            f"building the model)",
            SpeedupWarning,
        )

    def set_policy(layer: Any, config: dict, is_output: bool) -> dict:
        def one(layer: Any, config: dict) -> dict:  # a wrapper's layers (Bidirectional's LSTMs) take it too
            if layer.dtype_policy.compute_dtype not in _REBUILT_DTYPES or _is_custom(layer):
                return config
            return {**config, "dtype": "float32" if is_output else chosen}

        return edit_wrapped(layer, one(layer, config), one)

    result = rebuild(model, set_policy, loss_scale=chosen == "mixed_float16")
    if not any(_computes_in(layer, chosen) for layer in flavour.leaf_layers(result)):
        return NoEffect(
            "every layer with weights to multiply produces a model output, and outputs stay float32 for the loss",
            f"enable_mixed_precision(policy={chosen!r})",
        )
    return Applied(result, f"enable_mixed_precision(policy={chosen!r})")


def _is_custom(layer: Any) -> bool:
    """Whether ``layer`` is of a class of the user's own (neither Keras's nor fastnlp's)."""
    return type(layer).__module__.split(".")[0] not in (*flavour.FLAVOURS, "fastnlp")


def _computes_in(layer: Any, policy: str) -> bool:
    """Whether ``layer``, or a layer it wraps, multiplies weights under ``policy`` (an embedding only looks them up)."""
    if wrapped_layers(layer):
        return any(_computes_in(inner, policy) for _, inner in wrapped_layers(layer))
    return layer.dtype_policy.name == policy and bool(layer.weights) and type(layer).__name__ != "Embedding"


def _choose_policy(policy: str) -> tuple[str | None, str]:
    """The policy to apply (``None``: none) and a reason to warn about (empty: nothing to say)."""
    if not isinstance(policy, str) or policy not in ("auto", *POLICIES):
        raise ValueError(f"policy must be one of {('auto', *POLICIES)}, got {policy!r}")
    gpus = hardware.gpu_compute_capabilities()
    best, why_not = auto_policy(gpus, hardware.has_tpu(), hardware.cpu_flags())
    if policy == "auto":
        return best, why_not
    if policy == best:
        return policy, ""
    if policy == "mixed_float16" and best is None and not gpus:
        return policy, "no GPU here; float16 on a CPU is emulated and runs slower than float32"
    return policy, f"this machine is unlikely to run it faster ({why_not or f'auto would pick {best}'})"


def auto_policy(
    gpu_compute_capabilities: list[tuple[int, int]], has_tpu: bool, cpu_flags: set[str]
) -> tuple[str | None, str]:
    """What ``policy="auto"`` picks for this hardware, and why not when it picks nothing.

    Examples:
        >>> auto_policy([(9, 0)], False, set())
        ('mixed_float16', '')
        >>> auto_policy([], False, {"avx512_bf16"})[0] is None
        True
    """
    if gpu_compute_capabilities:
        if min(gpu_compute_capabilities) >= (7, 0):
            return "mixed_float16", ""
        return None, f"GPU compute capability {min(gpu_compute_capabilities)} is below 7.0 (no Tensor Cores)"
    if has_tpu:
        return "mixed_bfloat16", ""
    if "amx_bf16" in cpu_flags:
        return "mixed_bfloat16", ""
    detail = (
        "it has AVX512-BF16 but no AMX, where TensorFlow's guide expects mixed_bfloat16 to run slower "
        "(docs/precision.md)"
        if "avx512_bf16" in cpu_flags
        else "it has neither AMX nor AVX512-BF16"
    )
    return None, f"no GPU or TPU, and this CPU would not gain: {detail}"
