"""Data parallelism on TensorFlow's own engine, ``tf.distribute``: one device, several, several machines.

Three calls, the same on a laptop and on a cluster::

    import fastnlp
    strategy = fastnlp.init_distributed()          # first thing, on every worker
    model = fastnlp.distribute(build_my_model())   # variables under the strategy, the chief's weights
    train = fastnlp.distribute_dataset(examples, strategy, per_replica_batch_size=64)
    model.fit(train, epochs=10)

:func:`init_distributed` is the one function here that changes process-wide state, as it must:
``MultiWorkerMirroredStrategy`` configures TensorFlow's collective ops, which is possible only before
the runtime starts. It is meant for the top of a training script.

Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585). Two causes,
both in Keras's TensorFlow trainer: before the first step it builds the model from one batch that it
reduces across workers *eagerly* (``strategy.reduce("MEAN", batch)``) only to learn its shapes, and
the cross-worker eager reduce cannot convert the per-replica batch; after each step it reduces the
scalar logs with ``strategy.reduce("MEAN", value, axis=0)``, which fails on a rank-0 value. The model
:func:`distribute` returns builds from the local replica's part of the batch (only shapes matter)
and returns its logs as rank-1 values, whose axis-0 mean across workers is the scalar Keras expects.
tf_keras needs neither.
"""

from __future__ import annotations

import functools
import json
import numbers
import os
import types
import warnings
import weakref
from typing import Any

from fastnlp import flavour
from fastnlp.notices import record_applied, warn_no_effect
from fastnlp.registry import BadCall, register
from fastnlp.validation import check_bool, check_non_negative_int, check_positive_int, checked_path

__all__ = ["carry_over", "cluster_configured", "distribute", "distribute_dataset", "init_distributed", "is_chief"]

#: Strategy names :func:`distribute` accepts, besides a ``tf.distribute.Strategy``.
STRATEGY_NAMES = ("auto", "multi_worker", "mirrored", "default")

_initialized: dict[str, Any] = {}  # the strategy init_distributed set up for this process
_DISTRIBUTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (strategy, backup_dir)

_NOT_INITIALIZED = (
    "a cluster is configured ({source}) but fastnlp.init_distributed() was not called: call it at the top of "
    "the training script on every worker, before building any model (MultiWorkerMirroredStrategy must be "
    "created before TensorFlow's runtime starts)"
)


def cluster_configured() -> str | None:
    """Where this process's cluster comes from: ``"TF_CONFIG"``, ``"Slurm"``, or ``None`` for no cluster.

    A Slurm job step counts when it runs more than one task.

    Examples:
        >>> import os
        >>> cluster_configured() if "TF_CONFIG" not in os.environ and "SLURM_PROCID" not in os.environ else None
    """
    if os.environ.get("TF_CONFIG"):
        return "TF_CONFIG"
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS")
    if "SLURM_PROCID" in os.environ and tasks and int(tasks) > 1:
        return "Slurm"
    return None


def init_distributed(*, port_base: int = 8888, communication: str = "auto") -> Any:
    """Set up this worker's strategy from the cluster it belongs to; call it first thing, on every worker.

    Reads the cluster from ``TF_CONFIG`` or, inside a Slurm job step with several tasks, from Slurm's
    variables (one worker per task, ports from ``port_base`` on each node), and creates the
    ``MultiWorkerMirroredStrategy`` that :func:`distribute` and :func:`distribute_dataset` then use.
    Without a cluster it sets up what ``"auto"`` means on this machine (``MirroredStrategy`` over
    several GPUs, else the default strategy) and says so. Calling it again returns the same strategy.

    Args:
        port_base: first port of each node's workers (Slurm only; ``TF_CONFIG`` names its ports).
        communication: cross-worker all-reduce: ``"auto"``, ``"ring"`` (gRPC) or ``"nccl"`` (GPUs).

    Returns:
        The ``tf.distribute.Strategy`` set up for this process.

    Raises:
        ValueError: an unknown ``communication``, or a ``TF_CONFIG`` that is not valid JSON.
        RuntimeError: TensorFlow's runtime has already started, so collective ops can no longer be
            configured (call it before building any model or creating any tensor).

    Examples:
        >>> init_distributed(communication="carrier pigeon")
        Traceback (most recent call last):
        ...
        ValueError: communication must be one of ('auto', 'ring', 'nccl'), got 'carrier pigeon'
    """
    implementations = ("auto", "ring", "nccl")
    if communication not in implementations:
        raise ValueError(f"communication must be one of {implementations}, got {communication!r}")
    if "strategy" in _initialized:
        return _initialized["strategy"]
    import tensorflow as tf
    from tensorflow.python.eager import context

    source = cluster_configured()
    if source is None:
        strategy = _local_strategy(tf)
        warnings.warn(
            f"init_distributed: no cluster configured (no TF_CONFIG, no multi-task Slurm step); "
            f"training on this machine with {type(strategy).__name__}", UserWarning, stacklevel=2,
        )
    else:
        if context.context()._initialized:
            raise RuntimeError(
                "init_distributed() must run before TensorFlow's runtime starts (collective ops are configured at "
                "program start-up): call it at the top of the training script, before building any model or tensor"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=getattr(tf.distribute.experimental.CommunicationImplementation, communication.upper())
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=_cluster_resolver(tf, source, port_base), communication_options=options
        )
    _initialized["strategy"] = strategy
    return strategy


def is_chief(strategy: Any = None) -> bool:
    """Whether this process is the chief (worker 0, or the ``chief`` task): the one that writes files.

    Examples:
        >>> is_chief()
        True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


@register(
    stage="strategy",
    try_kwargs={"strategy": "mirrored"},
    bad_calls=(
        BadCall({"strategy": "horovod"}, ValueError, "strategy must be"),
        BadCall({"strategy": "mirrored", "scale_learning_rate": "yes"}, TypeError, "scale_learning_rate must be"),
    ),
)
def distribute(model: Any, strategy: Any = "auto", *, scale_learning_rate: bool = False, backup_dir: str | None = None) -> Any:
    """Return a copy of ``model`` that trains data-parallel under ``strategy``; ``model`` is untouched.

    The copy is rebuilt inside ``strategy.scope()`` (its variables mirrored on every replica), holds
    ``model``'s weights — on a multi-worker cluster the *chief's*, so every worker starts, and stays,
    identical although each built its own model with its own random weights — and is compiled as
    ``model`` was (a fresh optimizer of the same config). Train it with plain ``fit``, in either
    flavour: for Keras 3 under ``MultiWorkerMirroredStrategy`` the copy carries the route around
    keras-team/keras#20585 described in :mod:`fastnlp.parallel`.

    Args:
        model: a Sequential or functional model, Keras 3 or tf_keras.
        strategy: ``"auto"`` (the cluster set up by :func:`init_distributed`, else ``MirroredStrategy``
            over several local GPUs, else nothing to parallelize: a warning and the default strategy),
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
        ValueError: an unknown strategy name, ``scale_learning_rate`` with a learning-rate schedule, or a
            model that ``distribute`` made already.
        RuntimeError: a cluster is configured but :func:`init_distributed` was not called.
        TypeError: not a Sequential or functional Keras model.

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

    flavour.check_rebuildable(model)
    if not isinstance(scale_learning_rate, bool):
        raise TypeError(f"scale_learning_rate must be True or False, got {scale_learning_rate!r}")
    if backup_dir is not None:
        backup_dir = checked_path("backup_dir", backup_dir)
    if model in _DISTRIBUTED:
        raise ValueError("this model was made by distribute already; distribute the model you built instead")
    strategy = resolve_strategy(strategy)
    replicas = strategy.num_replicas_in_sync
    learning_rate = _scaled_learning_rate(model, replicas) if scale_learning_rate else None
    if replicas == 1 and _workers(strategy) == 1:
        warn_no_effect("distribute", "one device and no cluster: nothing to parallelize")
    with strategy.scope():
        result = flavour.rebuild(model)
        if learning_rate is not None:
            _optimizer_config_owner(result.optimizer).learning_rate = learning_rate
    if _workers(strategy) > 1:
        _take_chief_weights(result, strategy)
    _adapt(result, strategy, backup_dir)
    name = "MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else type(strategy).__name__
    described = f"{name}, {_workers(strategy)} worker(s), {replicas} replica(s) in sync"
    extras = (", learning rate scaled" if learning_rate is not None else "") + (f", backup in {backup_dir}" if backup_dir else "")
    record_applied(result, f"distribute({described}{extras})", model)
    return result


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


def resolve_strategy(strategy: Any) -> Any:
    """The ``tf.distribute.Strategy`` a strategy argument of :func:`distribute` names."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"strategy must be one of {STRATEGY_NAMES} or a tf.distribute.Strategy, got {strategy!r}")
    source = cluster_configured()
    if strategy in ("auto", "multi_worker"):
        if "strategy" in _initialized:
            return _initialized["strategy"]
        if source is not None:
            raise RuntimeError(_NOT_INITIALIZED.format(source=source))
        if strategy == "multi_worker":
            raise RuntimeError("strategy='multi_worker' needs a cluster (TF_CONFIG or a Slurm step) and init_distributed()")
        return _local_strategy(tf)
    if strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return _mirrored(tuple(d.name for d in gpus or tf.config.list_logical_devices("CPU")))
    return tf.distribute.get_strategy()


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> Any:
    """One ``MirroredStrategy`` per set of devices for the whole process: two strategies over the same
    devices number their collective operations alike, and the second one's all-reduces then fail with a
    shape mismatch against the first one's."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


def carry_over(source: Any, copy: Any) -> None:
    """Give ``copy``, rebuilt from a model :func:`distribute` made, the same training adaptations.

    :func:`fastnlp.flavour.rebuild` calls it, so a speedup applied after ``distribute`` (XLA, steps per
    execution, ...) keeps the multi-worker route and the backup.
    """
    if source in _DISTRIBUTED:
        _adapt(copy, *_DISTRIBUTED[source])


def _adapt(model: Any, strategy: Any, backup_dir: str | None) -> None:
    """Install on ``model`` what training under ``strategy`` needs, and the backup if asked."""
    if _workers(strategy) > 1 and flavour.detect(model) == "keras":
        _route_around_keras_20585(model, strategy)
    if backup_dir is not None:
        from fastnlp.backup import train_with_backup

        train_with_backup(model, backup_dir, strategy)
    _DISTRIBUTED[model] = (strategy, backup_dir)


def _local_strategy(tf: Any) -> Any:
    """``MirroredStrategy`` over several local GPUs, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return _mirrored(tuple(d.name for d in gpus))
    return tf.distribute.get_strategy()


def _cluster_resolver(tf: Any, source: str, port_base: int) -> Any:
    resolvers = tf.distribute.cluster_resolver
    if source == "TF_CONFIG":
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
        return resolvers.TFConfigClusterResolver()
    gpus = int(os.environ.get("SLURM_GPUS_ON_NODE", "0") or 0)  # read without starting CUDA
    if gpus:
        return resolvers.SlurmClusterResolver(port_base=port_base, gpus_per_node=gpus)
    # TF's resolver places one task per GPU slot and lists no task at all on GPU-less nodes: give it
    # as many (unused) slots as there are tasks, and leave CUDA_VISIBLE_DEVICES alone.
    tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ["SLURM_NTASKS"])
    return resolvers.SlurmClusterResolver(port_base=port_base, gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False)


def _workers(strategy: Any) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


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


def _route_around_keras_20585(model: Any, strategy: Any) -> None:
    """Give a Keras 3 model the two fixes multi-worker ``fit`` needs (see the module docstring)."""
    import tensorflow as tf

    def symbolic_build_from_local_batch(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v,
                    next(batches),
                )
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def rank_one_logs(step):
        def step_with_rank_one_logs(data):
            return tf.nest.map_structure(lambda v: tf.reshape(v, [-1]) if v.shape.rank == 0 else v, step(data))

        return step_with_rank_one_logs

    model._maybe_symbolic_build = types.MethodType(symbolic_build_from_local_batch, model)
    model.train_step = rank_one_logs(model.train_step)
    model.test_step = rank_one_logs(model.test_step)
