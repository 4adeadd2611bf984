"""The TFLite converter's run, in this process or, for int8, in one of its own.

Calibrating a model for int8 has crashed the converter (exit 139) on models that no check
foresaw, and a crash ends the process it happens in. :func:`flatbuffer_apart` therefore runs the
conversion in a fresh Python (``python -m fastnlp.speedups.compress.conversion FOLDER``), not a
``multiprocessing`` child: those re-import the caller's main script, which a script without an
``if __name__ == "__main__"`` guard does not survive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours

__all__ = ["flatbuffer", "flatbuffer_apart"]


def flatbuffer(exported: Any, signatures: list, output_names: list[str], quantization: str | None, samples: list | None = None) -> bytes:
    """The flatbuffer of ``exported``'s inference call on ``signatures`` (``samples``: the int8 calibration batches)."""
    import tensorflow as tf

    function = tf.function(_forward(exported, output_names)).get_concrete_function(*signatures)
    # The converter saves its trackable object as a SavedModel first (the route on which LSTMs fuse); a
    # module holding just the variables saves in a fraction of the time the whole Keras model takes
    # (about 2 s instead of 14 s for a 2 x LSTM(64) here), and gives the same flatbuffer.
    variables = tf.Module()
    # Keras 3's variables wrap a tf.Variable, which the SavedModel must hold (it held none: the export computed garbage)
    variables.weights = [v.value if type(v).__module__.startswith("keras.") else v for v in exported.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], variables)
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = lambda: ([sample] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def flatbuffer_apart(exported: Any, signatures: list, output_names: list[str], samples: list) -> bytes:
    """The int8 flatbuffer of :func:`flatbuffer`, converted in a fresh Python process.

    Raises:
        ValueError: the converter's process died, or failed (the model is named, and the routes that work).
    """
    job = {
        "flavour": flavours.detect(exported), "output_names": output_names,
        "specs": [(spec.name, list(spec.shape), spec.dtype.name) for spec in signatures],
    }
    with tempfile.TemporaryDirectory() as folder:
        exported.save(os.path.join(folder, "model.keras"))
        np.save(os.path.join(folder, "samples.npy"), np.stack(samples))
        with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as file:
            json.dump(job, file)
        run = subprocess.run(
            [sys.executable, "-W", "ignore", "-m", __name__, folder],
            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=False,
        )
        if run.returncode != 0:
            how = f"its process died (signal {-run.returncode})" if run.returncode < 0 else f"it failed: {_last_line(run.stderr)}"
            raise ValueError(
                f"quantization='int8': the TFLite converter could not calibrate {exported.name!r}: {how}; your process "
                f"goes on. Use 'dynamic' (int8 weights, float activations) or 'float16'"
            )
        with open(os.path.join(folder, "model.tflite"), "rb") as file:
            return file.read()


def _forward(model: Any, output_names: list[str]) -> Any:
    """``model``'s inference call on positional inputs; several outputs come back by name (the export's signature)."""
    def forward(*inputs: Any) -> Any:
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        if len(output_names) == 1:
            return outputs
        return {name: output for name, output in zip(output_names, outputs, strict=True)}

    return forward


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def _convert_job(folder: str) -> None:
    """What ``python -m fastnlp.speedups.compress.conversion FOLDER`` does: the int8 flatbuffer of the model saved
    in ``FOLDER``, calibrated on the batches beside it, written to ``FOLDER/model.tflite``."""
    import tensorflow as tf

    with open(os.path.join(folder, "job.json"), encoding="utf-8") as file:
        job = json.load(file)
    model = flavours.load_model(os.path.join(folder, "model.keras"), job["flavour"])
    signatures = [tf.TensorSpec(shape, dtype, name=name) for name, shape, dtype in job["specs"]]
    samples = list(np.load(os.path.join(folder, "samples.npy")))
    content = flatbuffer(model, signatures, job["output_names"], "int8", samples)
    with open(os.path.join(folder, "model.tflite"), "wb") as file:
        file.write(content)


if __name__ == "__main__":
    _convert_job(sys.argv[1])
