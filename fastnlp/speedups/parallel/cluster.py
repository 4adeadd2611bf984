"""The cluster a worker belongs to, and the strategy fastnlp trains it under.

:func:`init_distributed` is the one function here that changes process-wide state, as it must:
``MultiWorkerMirroredStrategy`` configures TensorFlow's collective ops, which is possible only before
the runtime starts. It is meant for the top of a training script.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from fastnlp.core import hardware, notices

__all__ = ["STRATEGY_NAMES", "cluster_configured", "init_distributed", "is_chief", "resolve_strategy", "workers"]


STRATEGY_NAMES = ("auto", "multi_worker", "mirrored", "default")


_initialized: dict[str, Any] = {}  # the strategy init_distributed set up for this process


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
        notices.warn(
            f"init_distributed: no cluster configured (no TF_CONFIG, no multi-task Slurm step); "
            f"training on this machine with {type(strategy).__name__}",
            UserWarning,
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
        return _mirrored(tuple(hardware.logical_devices("GPU") or hardware.logical_devices("CPU")))
    return tf.distribute.get_strategy()


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> Any:
    """One ``MirroredStrategy`` per set of devices for the whole process: two strategies over the same
    devices number their collective operations alike, and the second one's all-reduces then fail with a
    shape mismatch against the first one's."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(devices))


def _local_strategy(tf: Any) -> Any:
    """``MirroredStrategy`` over several local GPUs, else the default strategy."""
    gpus = hardware.logical_devices("GPU")
    if len(gpus) > 1:
        return _mirrored(tuple(gpus))
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


def workers(strategy: Any) -> int:
    """How many worker processes train under ``strategy`` (1 without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))

