"""What a tf_keras loader must know to read back a model that :mod:`fastnlp.speedups.compress` made:
tfmot's wrappers, fastnlp's pruning wrapper that keeps a padding mask, and :class:`RecurrentQuantizeConfig`.

Importing this module registers them all with tf_keras (as tfmot's own ``prune_scope`` and
``quantize_scope`` would, for good), so tf_keras's loader and ``from_config`` know them without a
scope; :data:`fastnlp.core.serializables.MODULES` lists it for the loader. It imports
tensorflow-model-optimization, so it is imported only when such a model is loaded or made.
"""

from __future__ import annotations

from typing import Any

import tf_keras
from tensorflow_model_optimization.quantization.keras import quantizers

__all__ = [
    "PRUNABLE_WRAPPERS", "KernelQuantizeConfig", "MaskedPruneLowMagnitude", "PrefixedLastValueQuantizer",
    "PrunableBidirectional", "PrunableTimeDistributed", "RecurrentQuantizeConfig", "compression_objects", "pruning_wrapper_class",
    "stock_wrapper_class",
]


def _config_base() -> type:
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.QuantizeConfig


def pruning_wrapper_class() -> type:
    """tfmot's pruning wrapper class (its public API exports only the function that creates it)."""
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    return PruneLowMagnitude


class MaskedPruneLowMagnitude(pruning_wrapper_class()):
    """tfmot's ``PruneLowMagnitude`` that passes on the padding mask its layer makes or passes on.

    tfmot's own wrapper drops it, so an LSTM after a pruned ``Embedding(mask_zero=True)`` trained on
    the padding (and the stripped model, whose mask was back, computed something else).
    """

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return self.layer.compute_mask(inputs, mask)


class PrefixedLastValueQuantizer(quantizers.LastValueQuantizer):
    """tfmot's last-value weight quantizer, its variables named with ``prefix``: the two directions of a
    ``Bidirectional`` have weights of the same short names, and their quantizers' variables must not clash
    (an ``.h5`` file could not hold both)."""

    def __init__(self, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    def build(self, tensor_shape: Any, name: str, layer: Any) -> dict:
        return super().build(tensor_shape, self.prefix + name, layer)

    def get_config(self) -> dict:
        return {**super().get_config(), "prefix": self.prefix}


def _weight_quantizer(prefix: str) -> Any:
    """8-bit symmetric per-tensor fake quantization of a weight (the scheme TFLite's int8 kernels use)."""
    return PrefixedLastValueQuantizer(prefix, num_bits=8, per_axis=False, symmetric=True, narrow_range=True)


class _WeightsAndOutputQuantizeConfig(_config_base()):
    """8-bit symmetric fake quantization of some weights (named attributes of some objects the layer calls
    through), and an 8-bit moving-average quantizer on the layer's output."""

    def _holders(self, layer: Any) -> list[tuple[Any, str, str]]:  # (object, attribute, prefix) of each weight
        raise NotImplementedError

    def get_weights_and_quantizers(self, layer: Any) -> list:
        return [(getattr(holder, name), _weight_quantizer(prefix)) for holder, name, prefix in self._holders(layer)]

    def get_activations_and_quantizers(self, layer: Any) -> list:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
        for (holder, name, _), value in zip(self._holders(layer), quantize_weights, strict=True):
            setattr(holder, name, value)  # the layer's call reads them from there

    def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
        pass

    def get_output_quantizers(self, layer: Any) -> list:
        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self) -> dict:
        return {}


class RecurrentQuantizeConfig(_WeightsAndOutputQuantizeConfig):
    """tfmot ``QuantizeConfig`` for a tf_keras LSTM or GRU, or a ``Bidirectional`` of one: 8-bit kernels and
    recurrent kernels (of both directions), 8-bit output.

    Examples:
        >>> import tf_keras
        >>> lstm = tf_keras.layers.LSTM(4)
        >>> lstm.build((None, 3, 2))
        >>> [w.name.split("/")[-1] for w, _ in RecurrentQuantizeConfig().get_weights_and_quantizers(lstm)]
        ['kernel:0', 'recurrent_kernel:0']
    """

    def _holders(self, layer: Any) -> list[tuple[Any, str, str]]:
        if hasattr(layer, "forward_layer"):
            directions = [(layer.forward_layer, "forward_"), (layer.backward_layer, "backward_")]
        else:
            directions = [(layer, "")]
        return [(direction.cell, name, prefix) for direction, prefix in directions for name in ("kernel", "recurrent_kernel")]


class KernelQuantizeConfig(_WeightsAndOutputQuantizeConfig):
    """tfmot ``QuantizeConfig`` for a layer with a ``kernel`` that tfmot's registry does not take (``Conv1D``),
    or a ``TimeDistributed`` of one (its inner layer's kernel): 8-bit kernel, 8-bit output.

    Examples:
        >>> import tf_keras
        >>> per_token = tf_keras.layers.TimeDistributed(tf_keras.layers.Dense(3))
        >>> per_token.build((None, 5, 2))
        >>> [w.name.split("/")[-1] for w, _ in KernelQuantizeConfig().get_weights_and_quantizers(per_token)]
        ['kernel:0']
    """

    def _holders(self, layer: Any) -> list[tuple[Any, str, str]]:
        return [(getattr(layer, "layer", layer), "kernel", "")]


class PrunableBidirectional(tf_keras.layers.Bidirectional):
    """A tf_keras ``Bidirectional`` whose kernels and recurrent kernels (both directions) tfmot prunes
    (tfmot's registry does not reach into wrappers; a layer with ``get_prunable_weights`` it takes)."""

    def get_prunable_weights(self) -> list:
        cells = [self.forward_layer.cell, self.backward_layer.cell]
        return [getattr(cell, name) for cell in cells for name in ("kernel", "recurrent_kernel")]


class PrunableTimeDistributed(tf_keras.layers.TimeDistributed):
    """A tf_keras ``TimeDistributed`` whose inner layer's kernel tfmot prunes."""

    def get_prunable_weights(self) -> list:
        return [self.layer.kernel]

    def build_from_config(self, config: dict) -> None:
        """Built when first called: the shape tf_keras records for a ``TimeDistributed`` is its inner layer's,
        one dimension short, and building from it failed when a pruned model was loaded."""


#: each pruning-ready wrapper, and the stock class it is made from and stripped back to
PRUNABLE_WRAPPERS: dict[str, tuple[type, type]] = {
    "Bidirectional": (PrunableBidirectional, tf_keras.layers.Bidirectional),
    "TimeDistributed": (PrunableTimeDistributed, tf_keras.layers.TimeDistributed),
}


def stock_wrapper_class(layer: Any) -> type | None:
    """The tf_keras class a pruning-ready wrapper was made from, or ``None`` for any other layer."""
    return next((stock for ready, stock in PRUNABLE_WRAPPERS.values() if type(layer) is ready), None)


def compression_objects() -> dict[str, Any]:
    """tfmot's pruning and quantization classes and fastnlp's own compression classes, by name.

    Examples:
        >>> sorted(name for name in compression_objects() if name.startswith("Prune"))
        ['PruneLowMagnitude']
    """
    import tensorflow_model_optimization as tfmot

    objects: dict[str, Any] = {}
    scopes = (
        tfmot.sparsity.keras.prune_scope(),
        tfmot.quantization.keras.quantize_scope(
            {"RecurrentQuantizeConfig": RecurrentQuantizeConfig, "KernelQuantizeConfig": KernelQuantizeConfig}
        ),
    )
    for scope in scopes:
        for named in scope.custom_objects:
            objects.update(named)
    for cls in (MaskedPruneLowMagnitude, PrefixedLastValueQuantizer, PrunableBidirectional, PrunableTimeDistributed):
        objects[cls.__name__] = cls
    return objects


def _register() -> None:
    import tf_keras

    tf_keras.utils.get_custom_objects().update(compression_objects())


_register()
