import contextlib
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import pytest
import tensorflow as tf

# Two logical CPU devices, so MirroredStrategy runs two replicas without a GPU (settable only before
# TensorFlow's runtime starts, hence here). Ops not placed by a strategy still run on CPU:0.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

FLAVOURS = ("keras", "tf_keras")
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    """Run a test once with a Keras 3 model and once with a tf_keras model."""
    return request.param


#: CPU kinds the suite pretends to run on: this project's development VM, and the Intel Xeon where "auto" picks bf16.
AVX2_CPU = frozenset({"sse4_2", "avx", "avx2", "fma"})
AMX_CPU = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"})


class Machine:
    """The hardware fastnlp sees during a test (:mod:`fastnlp.core.hardware` replaced): a CPU without AMX
    and no GPU or TPU unless the test says otherwise with :meth:`pretend`."""

    def __init__(self, monkeypatch) -> None:
        self._monkeypatch = monkeypatch
        self.pretend()

    def pretend(self, cpu_flags=AVX2_CPU, gpus=(), tpu: bool = False) -> None:
        """Be a machine with these CPU flags, GPUs of these compute capabilities, and a TPU or not."""
        from fastnlp.core import hardware

        patch = self._monkeypatch.setattr
        patch(hardware, "cpu_flags", lambda: set(cpu_flags))
        patch(hardware, "gpu_compute_capabilities", lambda: [tuple(gpu) for gpu in gpus])
        patch(hardware, "has_gpu", lambda: bool(gpus))
        patch(hardware, "has_tpu", lambda: tpu)


@pytest.fixture(autouse=True)
def machine(monkeypatch) -> Machine:
    """Every test runs on a pretended machine, so no result depends on the CPU or GPU it really runs on."""
    return Machine(monkeypatch)


@pytest.fixture(params=[AVX2_CPU, AMX_CPU], ids=["avx2-cpu", "amx-cpu"])
def cpu_kind(request, machine) -> frozenset:
    """Run a test once on a CPU without AMX (bf16 is slow there) and once on one with AMX (bf16 is native)."""
    machine.pretend(cpu_flags=request.param)
    return request.param


@pytest.fixture
def step_seconds(monkeypatch):
    """``step_seconds(s)``: every training step takes ``s`` seconds on ``learning_rate_budget``'s clock, so a
    budget of seconds is a fixed number of steps however fast or busy the machine is."""
    import types

    from fastnlp.speedups import schedules

    def pretend(seconds: float) -> None:
        now = [0.0]

        def perf_counter() -> float:  # read once as a step begins and once as it ends
            now[0] += seconds
            return now[0]

        monkeypatch.setattr(schedules, "time", types.SimpleNamespace(perf_counter=perf_counter))

    return pretend


@contextlib.contextmanager
def expect_slow_bf16_warning(cpu_kind):
    """Expect a ``SpeedupWarning`` for bf16 on a CPU without AMX, and none on a CPU with AMX (bf16 is native there)."""
    from fastnlp import SpeedupWarning

    if cpu_kind != AMX_CPU:
        with pytest.warns(SpeedupWarning):
            yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not [w for w in caught if issubclass(w.category, SpeedupWarning)], [str(w.message) for w in caught]


def shared_corpus(relative: str) -> Path:
    """A corpus under ../shared/data, or skip when this checkout has none beside it."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared corpora exist only in the fastnlp workplace)")
    return path


def run_isolated(code: str, timeout: float = 300):
    """Run ``code`` in a fresh interpreter: a crash (a segfault in a converter) fails the test instead of the run."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout
