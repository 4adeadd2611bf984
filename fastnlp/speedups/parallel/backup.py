"""Fault tolerance for :func:`fastnlp.distribute`: back up at every epoch's end, resume after a crash.

A worker that dies mid-epoch takes the whole synchronous cluster down with it; the cluster manager
(or ``python -m fastnlp launch``) starts every worker again, and ``fit`` resumes from the last
completed epoch: no completed epoch is lost, none is repeated (the interrupted one is redone).

tf_keras models use tf_keras's own ``BackupAndRestore``, which is multi-worker aware. Keras 3's
``BackupAndRestore`` is not: every worker writes the same files, the weights and the epoch counter
are written separately (a crash between them repeats or skips an epoch), and its mid-epoch ``batch``
is saved but never used. :class:`EpochBackup` is the Keras 3 replacement: the chief writes, every
worker reads the chief's backup, and one atomic rename commits a weights file and its epoch together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import keras

from fastnlp.core.lineage import lineage_of
from fastnlp.speedups.parallel.cluster import is_chief

__all__ = ["EpochBackup", "with_backup"]

_STATE = "state.json"


def with_backup(model: Any, callbacks: Any, kind: type, make: Callable[[str], Any]) -> list:
    """``callbacks`` (of ``fit``), plus ``make(folder)`` where ``model``'s lineage names a backup folder and none of
    ``callbacks`` is a ``kind`` already."""
    distribution = lineage_of(model).distribution
    callbacks = list(callbacks or [])
    if distribution is not None and distribution.backup_dir is not None:
        if not any(isinstance(callback, kind) for callback in callbacks):
            callbacks.append(make(distribution.backup_dir))
    return callbacks


class EpochBackup(keras.callbacks.Callback):
    """Keras 3 callback: the chief backs up weights, optimizer state and epoch; ``fit`` resumes from them.

    Args:
        backup_dir: a directory every worker can read (a shared file system in a multi-node cluster).
        strategy: the model's strategy (decides which worker writes).

    Examples:
        >>> import numpy as np, tempfile, tensorflow as tf
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile("sgd", "mse")
        >>> backup = EpochBackup(tempfile.mkdtemp(), tf.distribute.get_strategy())
        >>> model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, callbacks=[backup], verbose=0).epoch
        [0, 1]
    """

    def __init__(self, backup_dir: str | os.PathLike, strategy: Any) -> None:
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self._chief = is_chief(strategy)

    def on_train_begin(self, logs: dict | None = None) -> None:
        state_path = os.path.join(self.backup_dir, _STATE)
        if not os.path.exists(state_path):
            return
        with open(state_path) as file:
            state = json.load(file)
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        self.model._initial_epoch = state["epoch"]  # where Keras 3's fit starts (its own BackupAndRestore's hook)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # Every worker saves (reading distributed variables may need all of them); only the chief's copy is kept.
        target = self.backup_dir if self._chief else tempfile.mkdtemp(prefix="fastnlp-backup-")
        os.makedirs(target, exist_ok=True)
        weights = f"epoch-{epoch + 1}.weights.h5"
        self.model.save_weights(os.path.join(target, weights), overwrite=True)
        if not self._chief:
            shutil.rmtree(target, ignore_errors=True)
            return
        staged = os.path.join(target, f".{_STATE}.{os.getpid()}")
        with open(staged, "w") as file:
            json.dump({"epoch": epoch + 1, "weights": weights}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staged, os.path.join(target, _STATE))  # the commit: epoch and weights together
        for name in os.listdir(target):
            if name.endswith(".weights.h5") and name != weights:
                os.remove(os.path.join(target, name))

    def on_train_end(self, logs: dict | None = None) -> None:
        self.model._initial_epoch = None  # a later fit starts from its own initial_epoch again
        if self._chief:  # fit ended normally (a crash never gets here): the backup has served
            shutil.rmtree(self.backup_dir, ignore_errors=True)
