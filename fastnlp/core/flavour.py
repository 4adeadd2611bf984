"""Keras 3 and tf_keras (Keras 2) side by side: which one a model is, and each one's classes.

TensorFlow 2.21's ``keras``/``tf.keras`` is Keras 3, while tensorflow-model-optimization needs
``tf_keras``. Every model transform in fastnlp accepts either flavour and returns the same flavour.
What differs between them (the module, the compiled flag, the loss-scaling wrapper, the callback
base, the loader) is asked of this module; :mod:`fastnlp.core.rebuild` and
:mod:`fastnlp.core.convert` build on it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from types import ModuleType
from typing import Any, Literal

from fastnlp.core.serializables import know_fastnlp_classes, portable_custom_objects, share_registration

Flavour = Literal["keras", "tf_keras"]
FLAVOURS: tuple[Flavour, ...] = ("keras", "tf_keras")

__all__ = [
    "FLAVOURS",
    "Flavour",
    "callback_base",
    "callback_class",
    "check_rebuildable",
    "compile_arguments",
    "detect",
    "has_nested_models",
    "is_layer_graph",
    "is_preprocessing",
    "keras_module",
    "leaf_layers",
    "load_model",
    "lookup_layer_copy",
    "loss_scale_optimizer_class",
    "new_instance",
    "refuse_preprocessing",
    "require_compiled",
    "set_untracked",
    "shared_as_is",
]


def keras_module(flavour: Flavour) -> ModuleType:
    """Return the ``keras`` or ``tf_keras`` module for ``flavour``.

    Examples:
        >>> keras_module("tf_keras").__name__
        'tf_keras'
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    return importlib.import_module(flavour)


def leaf_layers(model: Any) -> list:
    """``model``'s layers in order, the layers of nested models in their place (wrappers kept whole).

    Examples:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="inner")])
        >>> outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1, name="head")])
        >>> [layer.name for layer in leaf_layers(outer)]
        ['inner', 'head']
    """
    model_class = keras_module(detect(model)).Model
    found = []
    for layer in model.layers:
        found.extend(leaf_layers(layer) if isinstance(layer, model_class) else [layer])
    return found


def detect(model: Any) -> Flavour:
    """Return ``"keras"`` (Keras 3) or ``"tf_keras"`` (Keras 2) for a Keras model.

    Raises:
        TypeError: ``model`` is not a Keras model of either flavour.

    Examples:
        >>> import keras
        >>> detect(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
        'keras'
    """
    for name in FLAVOURS:
        module = sys.modules.get(name)  # a model of a flavour implies its module is imported
        if module is not None and isinstance(model, module.Model):
            return name
    raise TypeError(
        f"expected a Keras 3 (keras.Model) or tf_keras model, got {type(model).__module__}."
        f"{type(model).__qualname__}"
    )


def load_model(path: str, flavour: Flavour, *, safe_mode: bool = True, custom_objects=None):
    """Load a ``.keras`` (or tf_keras ``.h5``) file with the loader of ``flavour`` (``safe_mode`` on by default).

    tf_keras models pruned or quantized by :mod:`fastnlp.speedups.compress` load without custom objects, and so do
    functions registered with the other flavour's Keras (a ``standardize`` of a converted ``TextVectorization``).

    Examples:
        >>> import keras, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save(path)
        >>> load_model(path, "keras").count_params()
        4
    """
    know_fastnlp_classes(flavour)  # models may hold fastnlp's own classes, and tf_keras ones tfmot's wrappers
    options = {"safe_mode": safe_mode} if str(path).endswith(".keras") else {}  # HDF5 has no safe mode
    other = next(kind for kind in FLAVOURS if kind != flavour)  # a converted model holds functions registered there
    custom_objects = {**portable_custom_objects(other), **(custom_objects or {})}
    return keras_module(flavour).models.load_model(path, custom_objects=custom_objects, **options)


def callback_base(flavour: Flavour) -> type:
    """The ``Callback`` base class that ``fit`` of ``flavour`` accepts."""
    return keras_module(flavour).callbacks.Callback


@functools.cache
def callback_class(hooks: type, flavour: Flavour) -> type:
    """``hooks``, a class of callback methods written once against ``self.model``, as a ``Callback`` of ``flavour``.

    Each fastnlp callback is one module-level class; Keras 3's ``fit`` and tf_keras's each want their own
    ``Callback`` base, so the class that ``fit`` gets is ``hooks`` on top of that base (made once per flavour).

    Examples:
        >>> class Count:
        ...     def on_train_batch_end(self, batch, logs=None):
        ...         self.batches = batch + 1
        >>> counter = callback_class(Count, "keras")()
        >>> type(counter).__name__, isinstance(counter, callback_base("keras"))
        ('Count', True)
    """
    return type(hooks.__name__, (hooks, callback_base(flavour)), {"__module__": hooks.__module__, "__doc__": hooks.__doc__})


def set_untracked(model: Any, name: str, value: Any) -> None:
    """``model.<name> = value`` without Keras counting ``value`` (a layer) as one of the model's own layers.

    Each flavour's own switch for it: Keras 3's no-tracking scope, tf_keras's (TensorFlow's)
    ``no_automatic_dependency_tracking``.
    """
    if detect(model) == "keras":
        from keras.src.utils.tracking import DotNotTrackScope

        with DotNotTrackScope():
            setattr(model, name, value)
        return
    import tensorflow as tf

    tf.__internal__.tracking.no_automatic_dependency_tracking(setattr)(model, name, value)


def loss_scale_optimizer_class(flavour: Flavour) -> type:
    """The dynamic loss-scaling optimizer wrapper of ``flavour`` (needed for float16)."""
    module = keras_module(flavour)
    return module.optimizers.LossScaleOptimizer if flavour == "keras" else module.mixed_precision.LossScaleOptimizer


def compile_arguments(model: Any) -> dict | None:
    """The arguments ``model.compile`` was called with, or ``None`` for an uncompiled model."""
    compiled = model.compiled if detect(model) == "keras" else model._is_compiled
    if not compiled or not hasattr(model, "_compile_config"):
        return None
    return dict(model._compile_config.config)


def require_compiled(model: Any, why: str) -> dict:
    """``model``'s compile arguments; ``ValueError`` saying ``why`` it must be compiled when it is not."""
    arguments = compile_arguments(model)
    if arguments is None:
        raise ValueError(f"{why}: compile the model first (model.compile(...))")
    return arguments


def check_rebuildable(model: Any, *, whole: bool = False) -> None:
    """Raise ``TypeError`` unless ``model`` is a Sequential or functional model of either flavour whose
    layers can each be re-created from their config. Preprocessing layers, and layers without weights
    that their config cannot re-create, are carried over as they are (:func:`shared_as_is`).

    ``whole``: the caller copies the model whole, re-creating no layer on its own (a compile option, a
    strategy), so a subclassed model is accepted too if its class re-creates it (:func:`new_instance`).

    Examples:
        >>> import keras
        >>> class Scale(keras.layers.Layer):
        ...     def __init__(self, factor):
        ...         super().__init__()
        ...         self.factor = self.add_weight(shape=(), initializer="ones")
        ...     def call(self, x):
        ...         return x * self.factor
        >>> check_rebuildable(keras.Sequential([keras.Input((3,)), Scale(2.0)]))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: fastnlp copies a model layer by layer from each layer's config, and layer 'scale...' (Scale) cannot be re-created from its config...
    """
    if not is_layer_graph(model):
        if whole:
            new_instance(model)
            return
        raise TypeError(
            f"fastnlp re-creates models layer by layer, which a subclassed model "
            f"({type(model).__qualname__}) does not allow; build it with keras.Sequential or the "
            f"functional API (keras.Model(inputs, outputs))"
        )
    know_fastnlp_classes(detect(model), compression=False)  # a compressed model's wrappers re-create themselves
    for layer in leaf_layers(model):
        if not is_preprocessing(layer) and layer.weights:
            _check_recreatable(layer)


def has_nested_models(model: Any) -> bool:
    """Whether ``model`` holds a model among its layers (Keras's export recipe nests a vectorizer model, say).

    Examples:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> has_nested_models(keras.Sequential([keras.Input((3,)), inner])), has_nested_models(inner)
        (True, False)
    """
    return leaf_layers(model) != list(model.layers)


def is_layer_graph(model: Any) -> bool:
    """Whether ``model`` is a Sequential or functional model (a graph of layers), in either flavour."""
    keras = keras_module(detect(model))
    return isinstance(model, keras.Sequential) or any(
        cls.__name__ == "Functional" for cls in type(model).__mro__  # same class name in both flavours
    )


def shared_as_is(layer: Any) -> bool:
    """Whether a copy of a model shares ``layer`` with it rather than re-creating it: a preprocessing
    layer (no trainable state; its adapted vocabulary comes along), or a layer without weights whose
    config cannot re-create it (a custom layer without ``get_config``: sharing it loses nothing)."""
    if is_preprocessing(layer):
        return True
    if not hasattr(layer, "weights") or layer.weights:  # a Keras 3 graph's plain operation is re-created
        return False
    try:
        _check_recreatable(layer)
    except TypeError:
        return True
    return False


def new_instance(model: Any) -> Any:
    """A new, unbuilt instance of a subclassed model's class, made from ``model``'s config.

    A class whose ``__init__`` takes no ``**kwargs`` is given only the config entries it names (Keras 3
    adds ``trainable`` and ``dtype`` to every config); the instance must then have ``model``'s dtype policy.

    Raises:
        TypeError: the class cannot be re-created from its config (named, with what it lacks).
    """
    cls = type(model)
    try:
        config = model.get_config()
        try:
            instance = cls.from_config(config)
        except TypeError:
            parameters = inspect.signature(cls.__init__).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                raise
            instance = cls(**{key: value for key, value in config.items() if key in parameters})
    except Exception as error:  # noqa: BLE001 - any failure of the user's class means the same to the user
        detail = str(error).splitlines()[0][:200] if str(error) else "it has no get_config()"
        raise TypeError(
            f"fastnlp copies a subclassed model ({cls.__qualname__}) by creating it again from its config, which "
            f"failed ({type(error).__name__}: {detail}); give {cls.__name__} a get_config() "
            f"that returns its __init__ arguments, or build it with the functional API (keras.Model(inputs, outputs))"
        ) from None
    policy = getattr(model, "dtype_policy", None)
    if policy is not None and getattr(instance.dtype_policy, "name", None) != policy.name:
        raise TypeError(
            f"fastnlp copies a subclassed model ({cls.__qualname__}) by creating it again from its config, and the "
            f"new one computes in {instance.dtype_policy.name}, not {policy.name}: pass dtype through its __init__"
        )
    return instance


def refuse_preprocessing(model: Any, transform: str, why: str) -> None:
    """``ValueError`` naming the first preprocessing layer of ``model`` (``why``: what ``transform`` cannot do
    with it), and the route: vectorize in the input pipeline, apply ``transform`` to the model that takes ids
    (``split_preprocessing`` makes both)."""
    for layer in leaf_layers(model):
        if is_preprocessing(layer):
            raise ValueError(
                f"{transform}: layer {layer.name!r} ({type(layer).__name__}) {why}; vectorize in the tf.data pipeline "
                f"(dataset.map(vectorizer)) and apply {transform} to the model that takes the ids "
                f"(vectorizer, model = fastnlp.split_preprocessing(model) cuts it there)"
            )


def lookup_layer_copy(layer: Any, cls: type | None = None) -> Any:
    """A new ``TextVectorization``, ``StringLookup`` or ``IntegerLookup`` with ``layer``'s config and vocabulary (an
    adapted vocabulary is not in the config), of class ``cls`` (the other flavour's, say; default: its own), made
    in the current ``tf.distribute`` scope. A ``standardize`` or ``split`` function registered with ``layer``'s
    Keras is registered with ``cls``'s under the same name, so a file holding the copy loads again.

    Raises:
        TypeError: another preprocessing layer, whose adapted state has no portable form here.

    Examples:
        >>> import keras
        >>> lookup = keras.layers.StringLookup()
        >>> lookup.adapt(["b", "a", "b"])
        >>> [str(token) for token in lookup_layer_copy(lookup).get_vocabulary()]
        ['[UNK]', 'b', 'a']
    """
    cls = cls or type(layer)
    if not hasattr(layer, "get_vocabulary") or getattr(layer, "output_mode", None) == "tf_idf":
        raise TypeError(
            f"layer {layer.name!r} ({type(layer).__name__}) holds adapted state that fastnlp cannot carry to a copy (it "
            f"carries a vocabulary); keep it in the tf.data pipeline (dataset.map(layer))"
        )
    config = {key: value for key, value in layer.get_config().items() if key not in ("dtype", "vocabulary", "idf_weights")}
    source, target = type(layer).__module__.split(".")[0], cls.__module__.split(".")[0]  # "keras" or "tf_keras"
    for value in config.values():
        if inspect.isfunction(value) and source != target:  # a user's standardize or split
            share_registration(value, source, target)
    parameters = inspect.signature(cls.__init__).parameters
    new = cls(**{key: value for key, value in config.items() if key in parameters or key in ("name", "trainable")})
    new.set_vocabulary(layer.get_vocabulary())
    return new


def is_preprocessing(layer: Any) -> bool:
    """Whether ``layer`` is one of Keras's preprocessing layers (``TextVectorization``, ``StringLookup``, ...).

    They hold no trainable state, so a copy of a model shares them with the original, as they are:
    an adapted vocabulary and a custom ``standardize`` function come along.
    """
    return any(".layers.preprocessing." in f"{cls.__module__}." for cls in type(layer).__mro__[:-1])


def _check_recreatable(layer: Any) -> None:
    """``TypeError`` naming ``layer`` and what it lacks when its class cannot re-create it from its config."""
    name = type(layer).__name__
    try:
        config = layer.get_config()
        if "name" not in config:  # tf_keras's automatic config of a layer without get_config: the copy breaks saving
            raise TypeError("its get_config() does not include the base Layer's config (name, trainable, dtype)")
        type(layer).from_config(config)
    except Exception as error:  # noqa: BLE001 - any failure of the user's class means the same to the user
        raise TypeError(
            f"fastnlp copies a model layer by layer from each layer's config, and layer {layer.name!r} ({name}) "
            f"cannot be re-created from its config ({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            f"Give {name} a get_config() that returns its __init__ arguments and an __init__ that passes **kwargs "
            f"to the base Layer (Keras's custom-layer guide), or apply the speedup to a model without it"
        ) from None


