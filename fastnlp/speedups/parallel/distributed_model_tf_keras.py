"""The tf_keras ``DistributedModel`` that :func:`fastnlp.distribute` returns (see :mod:`fastnlp.speedups.parallel.distribute`)."""

from __future__ import annotations

from typing import Any

import tf_keras

from fastnlp.speedups.parallel.backup import with_backup

__all__ = ["DistributedModel"]


@tf_keras.utils.register_keras_serializable(package="fastnlp", name="DistributedModel")
class DistributedModel(tf_keras.Model):
    """A functional tf_keras model that trains data-parallel under the strategy it was built in; its ``fit``
    backs up to the folder its lineage names, with tf_keras's own (multi-worker aware) ``BackupAndRestore``."""

    def __init__(self, inputs: Any, outputs: Any, name: str | None = None, trainable: bool = True, **kwargs: Any) -> None:
        # Functional's own arguments: tf_keras then saves, loads and clones it as a functional model of this class
        super().__init__(inputs, outputs, name=name, trainable=trainable, **kwargs)

    def fit(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        backup = tf_keras.callbacks.BackupAndRestore
        return super().fit(*args, callbacks=with_backup(self, callbacks, backup, backup), **kwargs)
