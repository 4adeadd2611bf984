"""What a tf_keras loader must know to read back a model that :mod:`fastnlp.compress` made."""

from __future__ import annotations

from typing import Any

__all__ = ["compression_objects"]


def compression_objects() -> dict[str, Any]:
    """tfmot's pruning and quantization classes and fastnlp's recurrent ``QuantizeConfig``, by name.

    Examples:
        >>> sorted(name for name in compression_objects() if name.startswith("Prune"))
        ['PruneLowMagnitude']
    """
    import tensorflow_model_optimization as tfmot

    from fastnlp.compress.quantization import RecurrentQuantizeConfig

    objects: dict[str, Any] = {}
    scopes = (
        tfmot.sparsity.keras.prune_scope(),
        tfmot.quantization.keras.quantize_scope({"RecurrentQuantizeConfig": RecurrentQuantizeConfig}),
    )
    for scope in scopes:
        for named in scope.custom_objects:
            objects.update(named)
    return objects
