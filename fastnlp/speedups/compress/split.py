"""``split_preprocessing``: an end-to-end string model as its vectorizer and the numeric model after it.

A model with ``TextVectorization`` (or any of Keras's preprocessing layers) inside it takes raw strings,
which LiteRT and tfmot cannot: the lookup table is not a TFLite op. Keras's own export recipe keeps the
vectorizer in front of a model that takes ids; this module cuts a model the user already has at that
point, so the numeric part exports (``to_tflite``) and the vectorizer runs in the input pipeline.
"""

from __future__ import annotations

from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core.lineage import carry_lineage
from fastnlp.core.rebuild import compile_like, rebuild

__all__ = ["split_preprocessing"]


def split_preprocessing(model: Any) -> tuple[Any, Any]:
    """Split ``model`` into ``(vectorizer, numeric_model)``: its preprocessing layers, and the rest; ``model`` is untouched.

    The preprocessing layers at the front of ``model`` (``TextVectorization``, ``StringLookup``, ...,
    alone or as a nested sub-model of them) become ``vectorizer``, a model from ``model``'s input to the
    ids they make, with the same layers (the adapted vocabulary and any custom ``standardize`` come along).
    ``numeric_model`` is a new model from those ids to ``model``'s outputs, with copies of the weights,
    compiled as ``model`` was: ``numeric_model(vectorizer(texts))`` computes ``model(texts)``, and
    ``to_tflite(numeric_model)`` exports it.

    Args:
        model: a functional Keras 3 or tf_keras model with one input.

    Returns:
        ``(vectorizer, numeric_model)``, both of ``model``'s flavour.

    Raises:
        TypeError: not a functional Keras model.
        ValueError: a model with several inputs, with no preprocessing layer at its front, or whose
            preprocessing layers feed the rest of the model in more than one place.

    Examples:
        >>> import keras, numpy as np
        >>> texts = np.array([["the cat sat"], ["a dog ran far"]])
        >>> vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
        >>> vectorize.adapt(texts)
        >>> raw = keras.Input((1,), dtype="string")
        >>> model = keras.Model(raw, keras.layers.Dense(1)(keras.layers.Embedding(20, 3)(vectorize(raw))))
        >>> vectorizer, numeric = split_preprocessing(model)
        >>> ids = vectorizer(texts)
        >>> tuple(ids.shape), bool(np.allclose(numeric(ids), model(texts)))
        ((2, 4), True)
    """
    kind = flavours.detect(model)
    keras = flavours.keras_module(kind)
    if isinstance(model, keras.Sequential) or not hasattr(model, "inputs") or model.inputs is None:
        raise TypeError(f"split_preprocessing takes a functional model (keras.Model(inputs, outputs)), got {type(model).__name__}")
    if len(model.inputs) != 1:
        raise ValueError(f"split_preprocessing takes a model with one input; {model.name!r} has {len(model.inputs)}")
    boundary = _preprocessed_tensors(model, keras)
    if not boundary:
        raise ValueError(
            f"split_preprocessing: model {model.name!r} has no preprocessing layer (TextVectorization, StringLookup, ...) "
            f"at its front; it takes numbers already"
        )
    if len(boundary) > 1:
        raise ValueError(
            f"split_preprocessing: the preprocessing layers of {model.name!r} feed the rest of the model in "
            f"{len(boundary)} places; it splits a model with one vectorized input"
        )
    (ids,) = boundary
    vectorizer = keras.Model(model.inputs, ids, name=f"{model.name}_vectorizer")
    rest = keras.Model(ids, model.outputs, name=f"{model.name}_numeric")
    inner = [layer for layer in rest.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(inner) == 1 and isinstance(inner[0], keras.Model):  # Keras's export recipe: a vectorizer, then one model
        rest = inner[0]
    numeric = rebuild(rest)  # its own weights
    compile_like(numeric, model)
    carry_lineage(model, numeric, distributed=False)
    return vectorizer, numeric


def _preprocessed_tensors(model: Any, keras: Any) -> list:
    """The tensors that preprocessing layers at ``model``'s front hand to the rest of it."""
    raw = {id(model.inputs[0])}  # the input, and what preprocessing made of it
    made: dict[int, Any] = {}
    handed_on: dict[int, Any] = {}
    for layer in model.layers:  # in the graph's order
        for inputs, outputs in _calls(layer):
            if inputs and all(id(tensor) in raw for tensor in inputs) and _preprocesses(layer, keras):
                raw.update(id(tensor) for tensor in outputs)
                made.update((id(tensor), tensor) for tensor in outputs)
            else:
                handed_on.update((id(tensor), tensor) for tensor in inputs if id(tensor) in made)
    return list(handed_on.values())


def _calls(layer: Any) -> list[tuple[list, list]]:
    """``(input tensors, output tensors)`` of each call of ``layer`` in its model's graph."""
    return [(_flat(node.input_tensors), _flat(node.output_tensors)) for node in getattr(layer, "_inbound_nodes", [])]


def _flat(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _preprocesses(layer: Any, keras: Any) -> bool:
    """A preprocessing layer, or a nested model made of nothing else."""
    if isinstance(layer, keras.Model):
        leaves = [inner for inner in flavours.leaf_layers(layer) if not isinstance(inner, keras.layers.InputLayer)]
        return bool(leaves) and all(flavours.is_preprocessing(inner) for inner in leaves)
    return flavours.is_preprocessing(layer)
