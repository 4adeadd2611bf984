"""The one written list of the modules that define fastnlp's own Keras classes, which the loader reads.

Each class lives beside the speedup it serves and registers itself with Keras when its module is
imported (``register_keras_serializable``, Keras's own registry). Before it reads a model, the loader
imports the modules listed here for the model's flavour, and everything else in core finds a class
through Keras's registry, so core names speedups' modules only in this list and never calls them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["COMPRESSION_MODULE", "MODULES", "fastnlp_counterpart", "know_fastnlp_classes"]

#: The module that registers tensorflow-model-optimization's wrappers and fastnlp's own compression
#: objects with tf_keras; it imports tfmot, so it is imported only where a model may hold them.
COMPRESSION_MODULE = "fastnlp.speedups.compress.objects"

#: For each flavour, the modules whose import registers fastnlp's classes with that flavour's Keras.
MODULES: dict[str, tuple[str, ...]] = {
    "keras": ("fastnlp.speedups.hoisted_keras", "fastnlp.speedups.parallel.distributed_model_keras"),
    "tf_keras": (
        "fastnlp.speedups.hoisted_tf_keras", "fastnlp.speedups.parallel.distributed_model_tf_keras",
        "fastnlp.speedups.compress.right_padding", COMPRESSION_MODULE,
    ),
}


def know_fastnlp_classes(flavour: str, *, compression: bool = True) -> None:
    """Make ``flavour``'s Keras know every class fastnlp defines (``compression=False``: leave out tfmot's,
    unless tensorflow-model-optimization is imported already, so a model cannot hold them).

    Examples:
        >>> import keras
        >>> know_fastnlp_classes("keras")
        >>> keras.saving.get_registered_object("fastnlp>HoistedLSTM").__name__
        'HoistedLSTM'
    """
    for module in MODULES[flavour]:
        if module == COMPRESSION_MODULE and not compression and "tensorflow_model_optimization" not in sys.modules:
            continue
        importlib.import_module(module)


def fastnlp_counterpart(layer: Any, flavour: str) -> type | None:
    """The class of ``flavour`` registered under the name of ``layer``'s fastnlp class (None: not fastnlp's).

    Examples:
        >>> import keras
        >>> from fastnlp.speedups.hoisted_lstm import hoisted_lstm_class
        >>> fastnlp_counterpart(hoisted_lstm_class("keras")(4), "tf_keras").__module__
        'fastnlp.speedups.hoisted_tf_keras'
    """
    for kind in ("keras", "tf_keras"):
        name = _registry(kind).get_registered_name(type(layer)) if kind in sys.modules else ""
        if name.startswith("fastnlp>"):
            know_fastnlp_classes(flavour, compression=False)
            return _registry(flavour).get_registered_object(name)
    return None


def _registry(flavour: str) -> Any:
    """The module of ``flavour`` that holds Keras's registry functions."""
    keras = importlib.import_module(flavour)
    return keras.saving if flavour == "keras" else keras.utils
