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

__all__ = ["flatbuffer", "flatbuffer_apart", "io_order", "with_io_order"]

#: the flatbuffer metadata entry that holds the model's input and output names in the model's order (a TFLite
#: signature lists them sorted by name, which is not the order Keras takes and returns them in)
_IO_ORDER = "fastnlp.io_order"


def flatbuffer(exported: Any, signatures: list, output_names: list[str], quantization: str | None, samples: list | None = None) -> bytes:
    """The flatbuffer of ``exported``'s inference call on ``signatures`` (``samples``: the int8 calibration batches)."""
    import tensorflow as tf

    function, variables = _traced(exported, signatures, output_names)
    # The converter saves its trackable object as a SavedModel first (the route on which LSTMs fuse); a
    # module holding just the variables saves in a fraction of the time the whole Keras model takes
    # (about 2 s instead of 14 s for a 2 x LSTM(64) here), and gives the same flatbuffer.
    return _converted(tf.lite.TFLiteConverter.from_concrete_functions([function], variables), quantization, samples)


def flatbuffer_apart(exported: Any, signatures: list, output_names: list[str], samples: list) -> bytes:
    """The int8 flatbuffer of :func:`flatbuffer`, converted in a fresh Python process.

    The traced call is handed over as a SavedModel, which needs none of the model's Python: custom layers,
    a loss of the user's own, or functions defined in a notebook load in no other process.

    Raises:
        ValueError: the converter's process died, or failed (the model is named, and the routes that work).
    """
    import tensorflow as tf

    function, variables = _traced(exported, signatures, output_names)
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(variables, os.path.join(folder, "saved"), signatures=function)
        np.save(os.path.join(folder, "samples.npy"), np.stack(samples))
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


def _traced(exported: Any, signatures: list, output_names: list[str]) -> tuple[Any, Any]:
    """``exported``'s inference call traced on ``signatures``, and a module holding just its variables."""
    import tensorflow as tf

    function = tf.function(_forward(exported, output_names)).get_concrete_function(*signatures)
    variables = tf.Module()
    # Keras 3's variables wrap a tf.Variable, which the SavedModel must hold (it held none: the export computed garbage)
    variables.weights = [v.value if type(v).__module__.startswith("keras.") else v for v in exported.variables]
    return function, variables


def _converted(converter: Any, quantization: str | None, samples: list | None) -> bytes:
    """What ``converter`` makes with ``quantization``'s settings."""
    import tensorflow as tf

    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = lambda: ([sample] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def with_io_order(content: bytes, input_names: list[str], output_names: list[str]) -> bytes:
    """``content`` with the model's input and output names, in the model's order, as a metadata entry."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(content)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps({"inputs": input_names, "outputs": output_names}).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = _IO_ORDER, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def io_order(content: bytes) -> tuple[list[str], list[str]] | None:
    """The input and output names :func:`with_io_order` stored in ``content``, in the model's order (None: none stored).

    Examples:
        >>> from fastnlp import build_lstm, to_tflite
        >>> io_order(to_tflite(build_lstm(20, units=8, num_layers=1, seq_len=6)))[1]
        ['probabilities']
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == _IO_ORDER.encode():
            stored = json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
            return stored["inputs"], stored["outputs"]
    return None


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
    """What ``python -m fastnlp.speedups.compress.conversion FOLDER`` does: the int8 flatbuffer of the SavedModel
    in ``FOLDER``, calibrated on the batches beside it, written to ``FOLDER/model.tflite``."""
    import tensorflow as tf

    samples = list(np.load(os.path.join(folder, "samples.npy")))
    content = _converted(tf.lite.TFLiteConverter.from_saved_model(os.path.join(folder, "saved")), "int8", samples)
    with open(os.path.join(folder, "model.tflite"), "wb") as file:
        file.write(content)


if __name__ == "__main__":
    _convert_job(sys.argv[1])
