"""fastnlp: composable, measured training speedups for Keras LSTM text models.

Each speedup is a pure function from a model to a new model::

    from fastnlp import build_lstm, enable_mixed_precision
    model = enable_mixed_precision(my_model)      # a new model; my_model is untouched

TensorFlow is imported only when a function that needs it is first used, so ``import fastnlp`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "build_lstm": "fastnlp.models",
    "train_char_lm": "fastnlp.training",
    "CharLMRecipe": "fastnlp.training",
    "learning_rate_budget": "fastnlp.schedules",
    "enable_mixed_precision": "fastnlp.precision",
    "configure_gpu": "fastnlp.gpu",
    "cudnn_report": "fastnlp.gpu",
    "enable_cudnn": "fastnlp.gpu",
    "use_xla": "fastnlp.gpu",
    "hoist_lstm_projection": "fastnlp.hoisting",
    "set_steps_per_execution": "fastnlp.tuning",
    "tune": "fastnlp.tuning",
    "init_distributed": "fastnlp.parallel",
    "distribute": "fastnlp.parallel",
    "distribute_dataset": "fastnlp.parallel",
    "launch_local_workers": "fastnlp.launch",
    "prune": "fastnlp.compress",
    "strip_pruning": "fastnlp.compress",
    "weight_sparsity": "fastnlp.compress",
    "quantize": "fastnlp.compress",
    "to_tflite": "fastnlp.compress",
    "LiteRTModel": "fastnlp.compress",
    "TuneResult": "fastnlp.tuning",
    "char_lm_dataset": "fastnlp.preprocess",
    "CharVocabulary": "fastnlp.preprocess",
    "CharLMData": "fastnlp.preprocess",
    "clean_text": "fastnlp.preprocess",
    "normalize_text": "fastnlp.preprocess",
    "remove_stopwords": "fastnlp.preprocess",
    "tokenize": "fastnlp.preprocess",
    "load_stopwords": "fastnlp.preprocess",
    "text_classification_dataset": "fastnlp.preprocess",
    "best_checkpoint": "fastnlp.checkpoint",
    "load_checkpoint": "fastnlp.checkpoint",
    "applied_speedups": "fastnlp.notices",
    "NoEffectWarning": "fastnlp.notices",
    "FlavourWarning": "fastnlp.notices",
    "SpeedupWarning": "fastnlp.notices",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastnlp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
