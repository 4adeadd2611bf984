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
    "build_lstm": "fastnlp.recipes.models",
    "train_char_lm": "fastnlp.recipes.training",
    "CharLMRecipe": "fastnlp.recipes.training",
    "learning_rate_budget": "fastnlp.speedups.schedules",
    "enable_mixed_precision": "fastnlp.speedups.precision",
    "configure_gpu": "fastnlp.speedups.gpu",
    "cudnn_report": "fastnlp.core.recurrent",
    "enable_cudnn": "fastnlp.speedups.gpu",
    "use_xla": "fastnlp.speedups.compile_options",
    "hoist_lstm_projection": "fastnlp.speedups.hoisting",
    "set_steps_per_execution": "fastnlp.speedups.compile_options",
    "tune": "fastnlp.speedups.tuning",
    "init_distributed": "fastnlp.speedups.parallel.cluster",
    "distribute": "fastnlp.speedups.parallel.distribute",
    "distribute_dataset": "fastnlp.speedups.parallel.distribute",
    "launch_local_workers": "fastnlp.speedups.parallel.launch",
    "prune": "fastnlp.speedups.compress",
    "prune_units": "fastnlp.speedups.compress",
    "prune_units_gradually": "fastnlp.speedups.compress",
    "strip_pruning": "fastnlp.speedups.compress",
    "weight_sparsity": "fastnlp.speedups.compress",
    "quantize": "fastnlp.speedups.compress",
    "to_tflite": "fastnlp.speedups.compress",
    "LiteRTModel": "fastnlp.speedups.compress",
    "split_preprocessing": "fastnlp.speedups.compress",
    "TuneResult": "fastnlp.speedups.tuning",
    "char_lm_dataset": "fastnlp.preprocess",
    "CharVocabulary": "fastnlp.preprocess",
    "CharLMData": "fastnlp.preprocess",
    "clean_text": "fastnlp.preprocess",
    "normalize_text": "fastnlp.preprocess",
    "remove_stopwords": "fastnlp.preprocess",
    "tokenize": "fastnlp.preprocess",
    "load_stopwords": "fastnlp.preprocess",
    "text_classification_dataset": "fastnlp.preprocess",
    "TextClassificationData": "fastnlp.preprocess",
    "best_checkpoint": "fastnlp.core.checkpoint",
    "load_checkpoint": "fastnlp.core.checkpoint",
    "applied_speedups": "fastnlp.core.lineage",
    "NoEffectWarning": "fastnlp.core.notices",
    "FlavourWarning": "fastnlp.core.notices",
    "SpeedupWarning": "fastnlp.core.notices",
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
