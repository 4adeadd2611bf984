"""Compression: structured unit pruning, pruning, quantization-aware training (LSTMs included) and TFLite/LiteRT export.

``prune_units`` removes whole hidden units, giving a smaller dense model in the same flavour.

``prune`` / ``strip_pruning`` and ``quantize`` wrap layers with tensorflow-model-optimization,
which exists only for tf_keras: Keras 3 models are bridged there exactly (``fastnlp.core.convert.convert``).
``to_tflite`` exports either flavour with a fused LSTM op, and ``LiteRTModel`` runs the result.
"""

from typing import Any

from fastnlp.speedups.compress.export import QUANTIZATIONS, LiteRTModel, to_tflite
from fastnlp.speedups.compress.pruning import prune, strip_pruning, weight_sparsity
from fastnlp.speedups.compress.quantization import quantize
from fastnlp.speedups.compress.split import split_preprocessing
from fastnlp.speedups.compress.gradual_units import prune_units_gradually
from fastnlp.speedups.compress.units import prune_units

__all__ = [
    "QUANTIZATIONS", "LiteRTModel", "RecurrentQuantizeConfig", "prune", "prune_units", "prune_units_gradually", "quantize", "split_preprocessing",
    "strip_pruning",
    "to_tflite", "weight_sparsity",
]


def __getattr__(name: str) -> Any:
    """``RecurrentQuantizeConfig`` on first use: defining it imports tensorflow-model-optimization, which
    ``from fastnlp import build_lstm`` should not pay for."""
    if name == "RecurrentQuantizeConfig":
        from fastnlp.speedups.compress.objects import RecurrentQuantizeConfig

        return RecurrentQuantizeConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
