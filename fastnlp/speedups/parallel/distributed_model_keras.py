"""The Keras 3 ``DistributedModel`` that :func:`fastnlp.distribute` returns (see :mod:`fastnlp.speedups.parallel.distribute`)."""

from __future__ import annotations

from typing import Any

import keras

from fastnlp.speedups.parallel.backup import EpochBackup, with_backup
from fastnlp.speedups.parallel.cluster import workers

__all__ = ["DistributedModel"]


@keras.saving.register_keras_serializable(package="fastnlp", name="DistributedModel")
class DistributedModel(keras.Model):
    """A functional Keras 3 model that trains data-parallel under the strategy it was built in.

    Its ``fit`` backs up to the folder its lineage names (:class:`EpochBackup`), and on a cluster
    of several workers its build and its step logs take the route around keras-team/keras#20585:
    it builds from the local replica's part of the first batch (only shapes matter), and returns its
    logs as rank-1 values, whose axis-0 mean across workers is the scalar Keras expects.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # functional arguments, so clone_model keeps the class
        super().__init__(*args, **kwargs)

    def fit(self, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        callbacks = with_backup(self, callbacks, EpochBackup, lambda folder: EpochBackup(folder, self.distribute_strategy))
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def train_step(self, data: Any) -> Any:
        return self._rank_one_across_workers(super().train_step(data))

    def test_step(self, data: Any) -> Any:
        return self._rank_one_across_workers(super().test_step(data))

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        strategy = self.distribute_strategy
        if workers(strategy) == 1:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
            return
        import tensorflow as tf

        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v,
                    next(batches),
                )
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def _rank_one_across_workers(self, logs: Any) -> Any:
        if workers(self.distribute_strategy) == 1:
            return logs
        import tensorflow as tf

        return tf.nest.map_structure(lambda v: tf.reshape(v, [-1]) if v.shape.rank == 0 else v, logs)
