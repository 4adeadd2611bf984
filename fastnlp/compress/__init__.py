"""Compression: pruning, quantization-aware training (LSTMs included) and TFLite/LiteRT export.

``prune`` / ``strip_pruning`` and ``quantize`` wrap layers with tensorflow-model-optimization,
which exists only for tf_keras: Keras 3 models are bridged there exactly (``fastnlp.flavour.convert``).
``to_tflite`` exports either flavour with a fused LSTM op, and ``LiteRTModel`` runs the result.
"""

from fastnlp.compress.export import QUANTIZATIONS, LiteRTModel, to_tflite
from fastnlp.compress.pruning import prune, strip_pruning, weight_sparsity
from fastnlp.compress.quantization import RecurrentQuantizeConfig, quantize

__all__ = [
    "QUANTIZATIONS", "LiteRTModel", "RecurrentQuantizeConfig", "prune", "quantize", "strip_pruning", "to_tflite",
    "weight_sparsity",
]
