"""Compression: pruning, quantization-aware training (LSTMs included) and TFLite/LiteRT export.

``prune`` / ``strip_pruning`` and ``quantize`` wrap layers with tensorflow-model-optimization,
which exists only for tf_keras: Keras 3 models are bridged there exactly (``fastnlp.core.convert.convert``).
``to_tflite`` exports either flavour with a fused LSTM op, and ``LiteRTModel`` runs the result.
"""

from typing import Any

from fastnlp.speedups.compress.export import QUANTIZATIONS, LiteRTModel, to_tflite
from fastnlp.speedups.compress.pruning import prune, strip_pruning, weight_sparsity
from fastnlp.speedups.compress.quantization import quantize
from fastnlp.speedups.compress.split import split_preprocessing

__all__ = [
    "QUANTIZATIONS", "LiteRTModel", "RecurrentQuantizeConfig", "prune", "quantize", "split_preprocessing", "strip_pruning",
    "to_tflite", "weight_sparsity",
]


def __getattr__(name: str) -> Any:
    """``RecurrentQuantizeConfig`` on first use: defining it imports tensorflow-model-optimization, which
    ``from fastnlp import build_lstm`` should not pay for."""
    if name == "RecurrentQuantizeConfig":
        from fastnlp.speedups.compress.objects import RecurrentQuantizeConfig

        return RecurrentQuantizeConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
