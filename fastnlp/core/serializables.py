"""The one written list of the modules that define fastnlp's own Keras classes, which the loader reads.

Each class lives beside the speedup it serves and registers itself with Keras when its module is
imported (``register_keras_serializable``, Keras's own registry). Before it reads a model, the loader
imports the modules listed here for the model's flavour, and everything else in core finds a class
through Keras's registry, so core names speedups' modules only in this list and never calls them.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

__all__ = [
    "COMPRESSION_MODULE", "MODULES", "fastnlp_counterpart", "know_fastnlp_classes", "portable_custom_objects", "registry",
    "share_registration",
]

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
        name = registry(kind).get_registered_name(type(layer)) if kind in sys.modules else ""
        if name.startswith("fastnlp>"):
            know_fastnlp_classes(flavour, compression=False)
            return registry(flavour).get_registered_object(name)
    return None


def registry(flavour: str) -> Any:
    """The module of ``flavour`` that holds Keras's registry functions."""
    keras = importlib.import_module(flavour)
    return keras.saving if flavour == "keras" else keras.utils


def share_registration(obj: Any, source: str, target: str) -> None:
    """Register ``obj`` (a user's ``standardize`` function or ``Loss`` class, say) with ``target``'s Keras under the
    name ``source``'s Keras knows it by, so a model of ``target`` that holds it saves under that name and loads again.

    Examples:
        >>> import keras, tf_keras
        >>> @keras.saving.register_keras_serializable(package="docs")
        ... def shout(text):
        ...     return text
        >>> share_registration(shout, "keras", "tf_keras")
        >>> tf_keras.utils.get_registered_object("docs>shout") is shout
        True
    """
    name = registry(source).get_registered_name(obj)
    package, _, short = name.partition(">")
    if short and registry(target).get_registered_object(name) is None:
        registry(target).register_keras_serializable(package=package, name=short)(obj)


def portable_custom_objects(flavour: str) -> dict[str, Any]:
    """The functions, losses and metrics registered with ``flavour``'s Keras, by registered name (not layers,
    which each flavour has its own of); empty when that flavour is not imported. The other flavour's loader takes
    them as custom objects: a ``standardize`` or a ``Loss`` a user registered once, for Keras 3, is found in a
    tf_keras file that holds it."""
    if flavour not in sys.modules:
        return {}

    def portable(obj: Any) -> bool:
        return inspect.isfunction(obj) or (inspect.isclass(obj) and any(c.__name__ in ("Loss", "Metric") for c in obj.__mro__))

    return {name: obj for name, obj in registry(flavour).get_custom_objects().items() if portable(obj)}
