"""What this machine has: CPU model and flags, GPUs and their compute capability, TPUs.

This module is the one place fastnlp asks the machine; every choice made for the user (``"auto"``
mixed precision, whether cuDNN would run, what ``tune`` tries) reads these functions, so a test can
pretend to be any machine by replacing them (the suite's ``machine`` fixture does).
"""

from __future__ import annotations

import functools
import platform
import sys

__all__ = [
    "cpu_flags", "cpu_model", "gpu_compute_capabilities", "gpu_in_use", "gpu_names", "gpu_total_memory_mb", "has_gpu", "has_tpu",
    "logical_devices",
]


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


def gpu_total_memory_mb() -> list[int]:
    """Total memory of each NVIDIA GPU in MB, from the driver's NVML library (empty where there is none).

    Reads NVML through ctypes, so it needs no Python package and does not start TensorFlow's GPU
    runtime (which would fix the GPU configuration before :func:`fastnlp.configure_gpu` could set it).
    """
    import ctypes

    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return []

    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    if nvml.nvmlInit_v2() != 0:
        return []
    try:
        count = ctypes.c_uint()
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return []
        totals = []
        for index in range(count.value):
            handle, memory = ctypes.c_void_p(), Memory()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                return []
            if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
                return []
            totals.append(memory.total // 2**20)
        return totals
    finally:
        nvml.nvmlShutdown()


def has_gpu() -> bool:
    """Whether TensorFlow may use a GPU: one is present and not hidden (without starting its GPU runtime)."""
    import tensorflow as tf

    return bool(tf.config.get_visible_devices("GPU"))


def gpu_in_use() -> str | None:
    """The first logical GPU's name where TensorFlow is imported already and runs on one (None: none; never imports it)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else None


def logical_devices(kind: str) -> list[str]:
    """The names of TensorFlow's logical devices of ``kind`` (``"GPU"``, ``"CPU"``), e.g. to place replicas on."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices(kind)]


def has_tpu() -> bool:
    """Whether TensorFlow sees a TPU."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("TPU"))
