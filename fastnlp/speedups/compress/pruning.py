"""Magnitude pruning with tensorflow-model-optimization, without its usual traps.

tfmot's ``prune_low_magnitude`` needs an ``UpdatePruningStep`` callback in every ``fit`` or it
fails; it wraps (and so shares) the layers of the model it is given; its ``strip_pruning`` keeps
whatever weights the last gradient step left, not the masked ones; and a pruned file loads only
inside ``prune_scope()``. :func:`prune` returns a model that prunes during a plain ``fit``, from a
copy; :func:`strip_pruning` applies the masks and can hand back a Keras 3 model;
``fastnlp.load_checkpoint`` and ``fastnlp.core.flavour.load_model`` read pruned files as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours
from fastnlp.core import notices
from fastnlp.core.convert import convert
from fastnlp.core.lineage import lineage_of
from fastnlp.core.notices import SpeedupWarning, warn_no_effect
from fastnlp.core.rebuild import compile_like, rebuild, wrapped_layers
from fastnlp.core.registry import Applied, finishing_step, speedup
from fastnlp.core.validation import (
    check_fraction,
    check_non_negative_int,
    check_positive_int,
    checked_list,
)
from fastnlp.speedups.compress.common import check_float32, check_layers, check_wrapped_layers, tf_keras_copy

__all__ = ["PRUNABLE_LAYERS", "SCHEDULES", "prune", "strip_pruning", "weight_sparsity"]

#: Layer classes whose weights :func:`prune` prunes; the others listed in ``_PASSIVE_LAYERS`` stay as they are.
PRUNABLE_LAYERS: tuple[str, ...] = ("Bidirectional", "Conv1D", "Dense", "Embedding", "GRU", "LSTM", "SimpleRNN", "TimeDistributed")
_PASSIVE_LAYERS: tuple[str, ...] = (
    "Activation", "AveragePooling1D", "Dropout", "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Masking",
    "MaxPooling1D", "RepeatVector", "Reshape", "Softmax", "SpatialDropout1D",
)
SCHEDULES: tuple[str, ...] = ("constant", "polynomial")
_KERAS3_ROUTE = (
    "a Keras 3 model converts to tf_keras for tfmot, and only Keras's own layers convert; in a tf_keras model, prune "
    "leaves layers it does not know as they are"
)


@speedup(stage="wrappers", conflicts=("enable_mixed_precision",), returns="tf_keras")
def prune(
    model: Any,
    sparsity: float = 0.5,
    *,
    schedule: str = "constant",
    initial_sparsity: float = 0.0,
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int = 100,
    layer_names: Iterable[str] | None = None,
) -> Any:
    """A copy of ``model`` whose weights are pruned by magnitude while it trains with a plain ``fit``.

    Every ``frequency`` training steps from ``begin_step`` the smallest weights of each pruned
    kernel are masked to zero: ``sparsity`` of them at once (``"constant"``), or rising from
    ``initial_sparsity`` to ``sparsity`` by ``end_step`` (``"polynomial"``, tfmot's
    ``PolynomialDecay``). No ``UpdatePruningStep`` callback is needed. After training,
    :func:`strip_pruning` gives a plain model with the zeros in place. Pruning makes a model
    compress better (gzip, LiteRT); it does not make dense training or inference faster.

    Args:
        model: a compiled float32 Sequential or functional model, Keras 3 or tf_keras. Preprocessing layers
            (``TextVectorization``, ...) stay as they are; nested models' layers are pruned in their place
            (the result is flat). A tf_keras model's layers that prune does not know (custom layers, attention)
            stay as they are, named in a :class:`~fastnlp.SpeedupWarning`; a Keras 3 model's are refused.
        sparsity: fraction of each pruned weight set to zero, in [0, 1).
        schedule: ``"constant"`` or ``"polynomial"``.
        initial_sparsity: the polynomial schedule's starting sparsity.
        begin_step: first training step that prunes.
        end_step: last step that updates the masks (required for ``"polynomial"``; default: never stop).
        frequency: steps between mask updates (tfmot's default, 100). Fit at least this many steps.
        layer_names: prune only these layers (default: every prunable layer).

    Returns:
        A compiled **tf_keras** model (tfmot's wrappers exist only in tf_keras; a Keras 3 input
        gives a :class:`~fastnlp.core.notices.FlavourWarning`). ``model`` is untouched.

    Raises:
        ValueError: a value out of range, an unknown schedule or layer name, or a non-float32 layer.
        TypeError: not a Keras model, a subclassed model, or (Keras 3) a layer prune does not know.

    Examples:
        >>> import numpy as np, tf_keras
        >>> from fastnlp import build_lstm
        >>> dense = build_lstm(20, units=8, num_layers=1, seq_len=6, flavour="tf_keras")
        >>> pruned = prune(dense, sparsity=0.75, frequency=1)
        >>> x = np.random.default_rng(0).integers(0, 20, (8, 6))
        >>> _ = pruned.fit(x, x, epochs=1, batch_size=4, verbose=0)
        >>> round(weight_sparsity(strip_pruning(pruned))["lstm_1/kernel"], 2)
        0.75
    """
    import tensorflow_model_optimization as tfmot

    from fastnlp.speedups.compress.objects import PRUNABLE_WRAPPERS, MaskedPruneLowMagnitude, pruning_wrapper_class

    check_fraction("sparsity", sparsity)
    check_fraction("initial_sparsity", initial_sparsity)
    check_non_negative_int(begin_step=begin_step)
    if end_step is not None:
        check_positive_int(end_step=end_step)
    if layer_names is not None:
        layer_names = checked_list("layer_names", layer_names, str, "a list of layer names")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "polynomial" and end_step is None:
        raise ValueError("schedule='polynomial' needs end_step: the step by which sparsity is reached")
    if not 0 <= initial_sparsity <= sparsity:
        raise ValueError(f"initial_sparsity must be in [0, sparsity], got {initial_sparsity}")
    check_positive_int(frequency=frequency)
    if flavours.detect(model) == "keras":  # tf_keras models keep the layers tfmot does not prune as they are
        check_layers(model, PRUNABLE_LAYERS + _PASSIVE_LAYERS, "prune", route=_KERAS3_ROUTE)
    check_wrapped_layers(model, "prune")
    check_float32(model, "prune")
    prunable = [layer.name for layer in flavours.leaf_layers(model) if type(layer).__name__ in PRUNABLE_LAYERS]
    chosen = set(prunable if layer_names is None else layer_names)
    for name in chosen.difference(prunable):
        raise ValueError(f"no prunable layer named {name!r}; prunable layers: {prunable}")
    flavours.require_compiled(model, "prune recompiles the pruned model as the input was")

    sparsity_api = tfmot.sparsity.keras
    if schedule == "constant":
        plan = sparsity_api.ConstantSparsity(sparsity, begin_step, -1 if end_step is None else end_step, frequency)
    else:
        plan = sparsity_api.PolynomialDecay(initial_sparsity, sparsity, begin_step, end_step, frequency=frequency)
    base = tf_keras_copy(model, "prune")
    keras = flavours.keras_module("tf_keras")

    made_ready = []  # (pruning-ready wrapper, the layer it copies): weights copied once it is built

    def wrap(layer):
        if layer.name not in chosen:
            return layer  # ``base`` is our own copy, so its layers may be reused as they are
        if type(layer).__name__ in PRUNABLE_WRAPPERS:  # a Bidirectional or TimeDistributed: its inner kernels
            ready = PRUNABLE_WRAPPERS[type(layer).__name__][0].from_config(layer.get_config())
            made_ready.append((ready, layer))
            layer = ready
        return MaskedPruneLowMagnitude(layer, pruning_schedule=plan)  # tfmot's wrapper, keeping the padding mask

    left = [
        layer.name for layer in base.layers
        if layer.weights and layer.name not in prunable and not flavours.is_preprocessing(layer)
    ]
    if left:
        notices.warn(f"prune: layers {left} stay as they are, unpruned: tfmot prunes only the layers it knows", SpeedupWarning)
    pruned = keras.models.clone_model(base, clone_function=wrap)
    for ready, layer in made_ready:
        ready.set_weights(layer.get_weights())
    for layer in pruned.layers:
        if isinstance(layer, pruning_wrapper_class()):
            layer.pruning_step.assign(0)  # what UpdatePruningStep.on_train_begin would do: the wrapper counts on
    compile_like(pruned, base)
    return Applied(pruned, f"prune(sparsity={sparsity}, schedule={schedule!r}, layers={sorted(chosen)})")


@finishing_step
def strip_pruning(model: Any, *, to: str | None = None) -> Applied:
    """The plain model inside a pruned one, with each pruned weight multiplied by its mask.

    Args:
        model: a model returned by :func:`prune` (trained, or loaded from a file).
        to: the flavour to return, ``"keras"`` or ``"tf_keras"``; by default the flavour that
            was given to :func:`prune`, which the model's lineage keeps (``.keras`` files too;
            tf_keras where it is not known, as for an ``.h5`` file).

    Returns:
        A new compiled model without pruning wrappers; ``model`` is untouched. A
        :class:`~fastnlp.core.notices.NoEffectWarning` says when no weight was pruned (the masks are
        first updated after ``frequency`` steps of ``fit``).

    Raises:
        TypeError: ``model`` is not a tf_keras model.
        ValueError: ``model`` has no pruning wrappers, or ``to`` is not a flavour.

    Examples:
        >>> import warnings
        >>> from fastnlp import build_lstm
        >>> pruned = prune(build_lstm(20, units=8, num_layers=1, flavour="tf_keras"), sparsity=0.5)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     plain = strip_pruning(pruned)   # never trained: nothing was pruned yet, and it says so
        >>> [layer.name for layer in plain.layers][:3], "no weight was pruned" in str(caught[-1].message)
        (['token_ids', 'embedding', 'lstm_1'], True)
    """
    import tensorflow_model_optimization as tfmot

    from fastnlp.speedups.compress.objects import pruning_wrapper_class, stock_wrapper_class

    if flavours.detect(model) != "tf_keras":
        raise TypeError(f"strip_pruning takes the tf_keras model prune returned, got a {flavours.detect(model)} model")
    wrappers = [layer for layer in model.layers if isinstance(layer, pruning_wrapper_class())]
    if not wrappers:
        raise ValueError(f"model {model.name!r} has no pruning wrappers: it was not made by prune")
    target = (lineage_of(model).origin_flavour or "tf_keras") if to is None else to
    if target not in flavours.FLAVOURS:
        raise ValueError(f"to must be one of {flavours.FLAVOURS}, got {to!r}")

    # new layers, not the wrapped ones; a pruning-ready Bidirectional or TimeDistributed back to the stock class
    plain = rebuild(tfmot.sparsity.keras.strip_pruning(model), layer_class=stock_wrapper_class)
    for wrapper in wrappers:
        masks = {id(weight): mask for weight, mask, _ in wrapper.pruning_vars}
        values = [w.numpy() * masks[id(w)].numpy() if id(w) in masks else w.numpy() for w in wrapper.layer.weights]
        plain.get_layer(wrapper.layer.name).set_weights(values)
    compile_like(plain, model)
    measured = weight_sparsity(plain)
    if not any(measured.values()):  # the wrappers go all the same: the result is not an unchanged copy
        warn_no_effect("strip_pruning", "no weight was pruned: fit the pruned model for at least `frequency` steps first")
    result = convert(plain, target) if target != "tf_keras" else plain
    summary = ", ".join(f"{name}={value:.2f}" for name, value in measured.items())
    return Applied(result, f"strip_pruning(sparsity: {summary})")


def weight_sparsity(model: Any) -> dict[str, float]:
    """Fraction of exact zeros in each kernel-like weight (two or more dimensions), by ``layer/weight``
    (``layer/direction/weight`` in a ``Bidirectional``).

    For a model that :func:`prune` returned, the masked weights are measured (what
    :func:`strip_pruning` will keep).

    Args:
        model: a Keras 3 or tf_keras model, pruned or not.

    Returns:
        ``{"layer/weight": fraction of zeros}`` for every weight of two or more dimensions.

    Examples:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, kernel_initializer="zeros", name="d")])
        >>> weight_sparsity(m)
        {'d/kernel': 1.0}
    """
    flavours.detect(model)  # a clear TypeError for anything but a Keras model
    masks: dict[int, Any] = {}
    for layer in model.layers:
        for weight, mask, _ in getattr(layer, "pruning_vars", ()):
            masks[id(weight)] = mask
    measured = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        directions = wrapped_layers(inner) if hasattr(inner, "forward_layer") else ()
        holders = [(f"{inner.name}/{direction.name}", direction) for _, direction in directions] or [(inner.name, layer)]
        for prefix, holder in holders:
            for weight in holder.trainable_weights:
                if len(weight.shape) < 2:
                    continue
                value = weight.numpy() * (masks[id(weight)].numpy() if id(weight) in masks else 1)
                short = weight.name.split("/")[-1].split(":")[0]
                measured[f"{prefix}/{short}"] = float(np.mean(value == 0))
    return measured
