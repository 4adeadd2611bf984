"""What a tf_keras loader must know to read back a model that :mod:`fastnlp.speedups.compress` made:
tfmot's wrappers, fastnlp's pruning wrapper that keeps a padding mask, and :class:`RecurrentQuantizeConfig`.

Importing this module registers them all with tf_keras (as tfmot's own ``prune_scope`` and
``quantize_scope`` would, for good), so tf_keras's loader and ``from_config`` know them without a
scope; :data:`fastnlp.core.serializables.MODULES` lists it for the loader. It imports
tensorflow-model-optimization, so it is imported only when such a model is loaded or made.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MaskedPruneLowMagnitude", "RecurrentQuantizeConfig", "compression_objects", "pruning_wrapper_class"]


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


class RecurrentQuantizeConfig(_config_base()):
    """tfmot ``QuantizeConfig`` for a tf_keras LSTM or GRU: 8-bit weights, 8-bit output.

    Examples:
        >>> import tf_keras
        >>> lstm = tf_keras.layers.LSTM(4)
        >>> lstm.build((None, 3, 2))
        >>> [w.name.split("/")[-1] for w, _ in RecurrentQuantizeConfig().get_weights_and_quantizers(lstm)]
        ['kernel:0', 'recurrent_kernel:0']
    """

    _WEIGHTS = ("kernel", "recurrent_kernel")

    def get_weights_and_quantizers(self, layer: Any) -> list:
        from tensorflow_model_optimization.quantization.keras import quantizers

        weights = quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)
        return [(getattr(layer.cell, name), weights) for name in self._WEIGHTS]

    def get_activations_and_quantizers(self, layer: Any) -> list:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
        for name, value in zip(self._WEIGHTS, quantize_weights, strict=True):
            setattr(layer.cell, name, value)  # the layer's call reads them from the cell

    def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
        pass

    def get_output_quantizers(self, layer: Any) -> list:
        from tensorflow_model_optimization.quantization.keras import quantizers

        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self) -> dict:
        return {}


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
        tfmot.quantization.keras.quantize_scope({"RecurrentQuantizeConfig": RecurrentQuantizeConfig}),
    )
    for scope in scopes:
        for named in scope.custom_objects:
            objects.update(named)
    objects[MaskedPruneLowMagnitude.__name__] = MaskedPruneLowMagnitude
    return objects


def _register() -> None:
    import tf_keras

    tf_keras.utils.get_custom_objects().update(compression_objects())


_register()
