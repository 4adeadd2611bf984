import os

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
