"""What this machine has: CPU model and flags, GPUs and their compute capability, TPUs."""

from __future__ import annotations

import functools
import platform

__all__ = ["cpu_flags", "cpu_model", "gpu_compute_capabilities", "gpu_names", "has_tpu"]


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags() -> set[str]:
    """The CPU's feature flags, e.g. ``{"avx2", "avx512_bf16", "amx_bf16", ...}`` (empty if unknown)."""
    return set(_cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def _gpu_details() -> list[tuple[str, dict]]:
    import tensorflow as tf

    return [(gpu.name, tf.config.experimental.get_device_details(gpu)) for gpu in tf.config.list_physical_devices("GPU")]


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Compute capability of each visible GPU ((0, 0) where TensorFlow does not report one)."""
    return [tuple(details.get("compute_capability") or (0, 0)) for _, details in _gpu_details()]


def gpu_names() -> list[str]:
    """The model name of each visible GPU, e.g. ``"NVIDIA H200"``."""
    return [details.get("device_name", name) for name, details in _gpu_details()]


def has_tpu() -> bool:
    """Whether TensorFlow sees a TPU."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("TPU"))
