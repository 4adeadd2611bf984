"""Data parallelism on TensorFlow's own engine, ``tf.distribute``: one device, several, several machines.

Three calls, the same on a laptop and on a cluster::

    import fastnlp
    strategy = fastnlp.init_distributed()          # first thing, on every worker
    model = fastnlp.distribute(build_my_model())   # variables under the strategy, the chief's weights
    train = fastnlp.distribute_dataset(examples, strategy, per_replica_batch_size=64)
    model.fit(train, epochs=10)

:func:`~fastnlp.speedups.parallel.cluster.init_distributed` sets up the strategy of the cluster the
worker belongs to; this module trains a model and a dataset under it.

The model :func:`distribute` returns is a ``DistributedModel``, a functional model whose class owns
what training under a strategy needs, in each flavour (``distributed_model_keras``,
``distributed_model_tf_keras``); its lineage holds the data (the strategy described, the backup
folder), and Keras holds the strategy (``model.distribute_strategy``). A later speedup's copy keeps
the class, the strategy and the record, because ``clone_model`` keeps a functional subclass.

Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585). Two causes,
both in Keras's TensorFlow trainer: before the first step it builds the model from one batch that it
reduces across workers *eagerly* (``strategy.reduce("MEAN", batch)``) only to learn its shapes, and
the cross-worker eager reduce cannot convert the per-replica batch; after each step it reduces the
scalar logs with ``strategy.reduce("MEAN", value, axis=0)``, which fails on a rank-0 value. The Keras 3
``DistributedModel`` builds from the local replica's part of the batch (only shapes matter) and
returns its logs as rank-1 values, whose axis-0 mean across workers is the scalar Keras expects.
tf_keras needs neither.
"""

from __future__ import annotations

import importlib
import numbers
import os
import warnings
from typing import Any

from fastnlp.core import flavour, notices
from fastnlp.core.lineage import Distribution, lineage_of
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import compile_like, rebuild
from fastnlp.core.registry import Applied, NoEffect, speedup
from fastnlp.core.validation import (
    check_bool,
    check_non_negative_int,
    check_positive_int,
    checked_path,
)
from fastnlp.speedups.parallel.cluster import resolve_strategy, workers

__all__ = ["distribute", "distribute_dataset", "distributed_model_class"]

#: Strategy names :func:`distribute` accepts, besides a ``tf.distribute.Strategy``.


@speedup(stage="strategy", whole=True)
def distribute(model: Any, strategy: Any = "auto", *, scale_learning_rate: bool = False, backup_dir: str | None = None) -> Applied | NoEffect:
    """Return a copy of ``model`` that trains data-parallel under ``strategy``; ``model`` is untouched.

    The copy is rebuilt inside ``strategy.scope()`` (its variables mirrored on every replica), holds
    ``model``'s weights — on a multi-worker cluster the *chief's*, so every worker starts, and stays,
    identical although each built its own model with its own random weights — and is compiled as
    ``model`` was (a fresh optimizer of the same config). It is a ``DistributedModel``, a functional
    model whose class owns training under the strategy: train it with plain ``fit``, in either flavour
    (for Keras 3 under ``MultiWorkerMirroredStrategy`` its class takes the route around
    keras-team/keras#20585 described in :mod:`fastnlp.speedups.parallel.distribute`).

    Args:
        model: a Sequential or functional model, Keras 3 or tf_keras (a subclassed model only where
            there is nothing to parallelize and no backup: its unchanged copy). A tf_keras model's
            ``TextVectorization`` is made again in the strategy's scope, with its vocabulary; Keras 3 cannot
            train on strings under a strategy (refused, naming the layer).
        strategy: ``"auto"`` (the cluster set up by :func:`init_distributed`, else ``MirroredStrategy``
            over several local GPUs, else nothing to parallelize: an unchanged copy and a
            :class:`~fastnlp.NoEffectWarning`, unless ``backup_dir`` asks for a backup),
            ``"multi_worker"`` (the cluster; :func:`init_distributed` must have run), ``"mirrored"``
            (one replica per local GPU, or per logical CPU device where there is no GPU),
            ``"default"`` (no distribution), or a ``tf.distribute.Strategy``.
        scale_learning_rate: multiply the learning rate by the number of replicas (the linear scaling
            rule, for when the global batch grows with the replicas, as with a per-replica batch size).
        backup_dir: make ``fit`` back up the training state at the end of every epoch to this
            directory (every worker must be able to read it; the chief writes it) and resume from it
            after a crash, with no completed epoch lost or repeated; it is removed when ``fit`` ends.

    Returns:
        A new model of the same flavour.

    Raises:
        ValueError: an unknown strategy name, ``scale_learning_rate`` with a learning-rate schedule, a
            model that ``distribute`` made already, or a Keras 3 model with a preprocessing layer.
        RuntimeError: a cluster is configured but :func:`init_distributed` was not called.
        TypeError: not a Keras model, or a subclassed model where there is something to distribute.

    Examples:
        >>> import warnings
        >>> from fastnlp import build_lstm
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")          # one CPU device: nothing to parallelize
        ...     model = distribute(build_lstm(20, units=8, num_layers=1))
        >>> model.distribute_strategy.num_replicas_in_sync
        1
    """
    import tensorflow as tf

    if not isinstance(scale_learning_rate, bool):
        raise TypeError(f"scale_learning_rate must be True or False, got {scale_learning_rate!r}")
    if backup_dir is not None:
        backup_dir = checked_path("backup_dir", backup_dir)
        if os.path.exists(backup_dir) and not os.path.isdir(backup_dir):
            raise ValueError(f"backup_dir {backup_dir!r} is a file; give a folder for the training state (it is made if absent)")
    if lineage_of(model).distribution is not None:
        raise ValueError("this model was made by distribute already; distribute the model you built instead")
    if flavour.detect(model) == "keras":
        flavour.refuse_preprocessing(
            model, "distribute", "takes strings, and Keras 3 fails to train on strings under a tf.distribute strategy "
            "(tensorflow/tensorflow#80951: an AddN of strings); tf_keras trains such a model distributed"
        )
    strategy = resolve_strategy(strategy)
    replicas = strategy.num_replicas_in_sync
    learning_rate = _scaled_learning_rate(model, replicas) if scale_learning_rate else None
    if replicas == 1 and workers(strategy) == 1:
        if backup_dir is None:
            return NoEffect("one device and no cluster: nothing to parallelize", f"distribute({type(strategy).__name__})")
        notices.warn("distribute: one device and no cluster, so nothing is parallelized; the backup applies", SpeedupWarning)
    if not flavour.is_layer_graph(model):
        raise TypeError(
            f"distribute returns a functional DistributedModel around the model's graph, which a subclassed model "
            f"({type(model).__qualname__}) has not; build it with the functional API (keras.Model(inputs, outputs))"
        )
    with strategy.scope():
        copy = rebuild(model, own_lookups=True)  # a lookup table made outside the scope fails in fit
        result = distributed_model_class(flavour.detect(model))(copy.inputs, copy.outputs, name=copy.name)  # copy's layers
        compile_like(result, copy)
        if learning_rate is not None:
            _optimizer_config_owner(result.optimizer).learning_rate = learning_rate
    if workers(strategy) > 1:
        _take_chief_weights(result, strategy)
    name = "MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else type(strategy).__name__
    described = f"{name}, {workers(strategy)} worker(s), {replicas} replica(s) in sync"
    extras = (", learning rate scaled" if learning_rate is not None else "") + (f", backup in {backup_dir}" if backup_dir else "")
    return Applied(result, f"distribute({described}{extras})", Distribution(described, backup_dir))


def distributed_model_class(kind: str) -> type:
    """The ``DistributedModel`` class of flavour ``kind``.

    Examples:
        >>> distributed_model_class("keras").__module__
        'fastnlp.speedups.parallel.distributed_model_keras'
    """
    return importlib.import_module(f"fastnlp.speedups.parallel.distributed_model_{kind}").DistributedModel


def distribute_dataset(
    dataset: Any,
    strategy: Any = "auto",
    *,
    global_batch_size: int | None = None,
    per_replica_batch_size: int | None = None,
    drop_remainder: bool = False,
    shuffle_buffer: int | None = None,
    seed: int = 0,
) -> Any:
    """Shuffle (alike on every worker), batch and shard a dataset of single examples for ``strategy``.

    Give one batch size: ``global_batch_size`` (split across all replicas each step) or
    ``per_replica_batch_size`` (times the number of replicas in sync). The returned dataset is
    auto-sharded by *data*: every worker reads the same input and keeps its own share of each global
    batch, so no example is seen twice or skipped across workers (sharding by file would need as many
    files as workers). That needs every worker to read the examples in the same order: shuffle here
    (``shuffle_buffer``, one ``seed`` for all workers, a new order each epoch), not beforehand with an
    unseeded shuffle. Pass the result to ``model.fit`` of a :func:`distribute` model.

    Args:
        dataset: a ``tf.data.Dataset`` of single (unbatched) examples, e.g. ``(features, label)``.
        strategy: as in :func:`distribute`.
        global_batch_size: examples per step across all replicas.
        per_replica_batch_size: examples per step on each replica.
        drop_remainder: drop the last, smaller batch.
        shuffle_buffer: shuffle through a buffer of this many examples (default: keep the order).
        seed: the shuffle's seed, the same on every worker.

    Returns:
        A batched, prefetched ``tf.data.Dataset`` with the data-sharding option set.

    Raises:
        TypeError: ``dataset`` is not a ``tf.data.Dataset``.
        ValueError: both or neither batch size given, or one below 1; ``dataset`` is already batched.

    Examples:
        >>> import tensorflow as tf
        >>> batches = distribute_dataset(tf.data.Dataset.range(10), "default", global_batch_size=4)
        >>> [len(batch) for batch in batches]
        [4, 4, 2]
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"distribute_dataset expects a tf.data.Dataset of single examples, got {type(dataset).__name__}")
    batching = _batching_step(dataset)
    if batching is not None:  # batching it again made batches of batches
        raise ValueError(
            f"dataset is already batched (it has a {batching} step); distribute_dataset batches it itself: pass "
            f"single examples, e.g. dataset.unbatch()"
        )
    if (global_batch_size is None) == (per_replica_batch_size is None):
        raise ValueError("give exactly one of global_batch_size and per_replica_batch_size")
    if global_batch_size is not None:
        check_positive_int(global_batch_size=global_batch_size)
    else:
        check_positive_int(per_replica_batch_size=per_replica_batch_size)
    size = int(global_batch_size if global_batch_size is not None else per_replica_batch_size)
    check_bool(drop_remainder=drop_remainder)
    if shuffle_buffer is not None:
        check_positive_int(shuffle_buffer=shuffle_buffer)
    check_non_negative_int(seed=seed)
    strategy = resolve_strategy(strategy)
    if per_replica_batch_size is not None:
        size = per_replica_batch_size * strategy.num_replicas_in_sync
    if shuffle_buffer is not None:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE).with_options(options)


def _batching_step(dataset: Any) -> str | None:
    """The name of the last batching step in ``dataset``'s pipeline (None: none since the last unbatch).

    tf.data records no "batched" flag, so this follows the chain of input datasets.
    """
    for _ in range(100):  # pipelines are short; a bound, not a limit anyone meets
        name = type(dataset).__name__.lstrip("_")
        if "Unbatch" in name:
            return None
        if "Batch" in name or "GroupByWindow" in name:
            return name
        dataset = getattr(dataset, "_input_dataset", None)
        if dataset is None:
            return None
    return None


def _optimizer_config_owner(optimizer: Any) -> Any:
    return getattr(optimizer, "inner_optimizer", optimizer)  # a loss-scaling wrapper holds the real one


def _scaled_learning_rate(model: Any, replicas: int) -> float:
    flavour.require_compiled(model, "scale_learning_rate changes the optimizer")
    rate = _optimizer_config_owner(model.optimizer).get_config()["learning_rate"]
    if not isinstance(rate, numbers.Real):  # a schedule's config is a dict
        raise ValueError(
            "scale_learning_rate scales a constant learning rate; this optimizer has a schedule: scale the "
            "schedule's rates by the number of replicas yourself"
        )
    return float(rate) * replicas


def _take_chief_weights(model: Any, strategy: Any) -> None:
    """Overwrite every worker's weights with the chief's, through one all-reduce per variable."""
    import tensorflow as tf

    variables = list(model.weights)

    @tf.function
    def chief_values():
        def from_replica():
            context = tf.distribute.get_replica_context()
            on_chief = tf.equal(context.replica_id_in_sync_group, 0)
            values = [tf.convert_to_tensor(v) for v in variables]
            return [context.all_reduce("SUM", tf.where(on_chief, value, tf.zeros_like(value))) for value in values]

        return strategy.run(from_replica)

    for variable, value in zip(variables, chief_values(), strict=True):
        variable.assign(strategy.experimental_local_results(value)[0])
