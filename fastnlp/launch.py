"""Start N workers of one training script on this machine, each with its ``TF_CONFIG``, for trying multi-worker
training out (``python -m fastnlp launch --workers 2 -- python train.py``).

Synchronous data parallelism stops when one worker dies, so, like a cluster manager, the launcher
then stops the others and starts them all again (``restarts`` times); a script trained with
``distribute(..., backup_dir=...)`` resumes from its last completed epoch. Every worker is killed
when the launcher leaves, whatever the reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["WorkerFailure", "free_ports", "launch_local_workers", "local_tf_config"]


class WorkerFailure(RuntimeError):
    """A worker failed and no restart was left."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now.

    Examples:
        >>> len(set(free_ports(3)))
        3
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of workers on 127.0.0.1 at ``ports``.

    Examples:
        >>> local_tf_config([2222, 2223], 1)
        '{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 1}}'
    """
    if not 0 <= index < len(ports):
        raise ValueError(f"index must be in [0, {len(ports)}), got {index}")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def launch_local_workers(
    command: Sequence[str],
    num_workers: int,
    *,
    restarts: int = 0,
    timeout_s: float | None = None,
    log_dir: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run ``command`` as ``num_workers`` workers on 127.0.0.1 until all exit 0; return the attempts it took.

    Each worker gets ``TF_CONFIG`` (fresh ports per attempt) and ``FASTNLP_ATTEMPT`` (0, 1, ...).
    When a worker exits non-zero or is killed, the others are stopped and all start again, at most
    ``restarts`` times.

    Args:
        command: the program and its arguments, e.g. ``[sys.executable, "train.py"]``.
        num_workers: how many workers.
        restarts: how many times to start them all again after a failure.
        timeout_s: stop everything and raise ``TimeoutError`` after this many seconds.
        log_dir: write worker ``i``'s output to ``log_dir/worker-i.log`` (appended per attempt)
            instead of this process's output.
        env: environment of the workers (default: this process's).

    Returns:
        How many attempts it took (1 when nothing failed).

    Raises:
        ValueError: fewer than one worker, a negative ``restarts`` or an empty command.
        WorkerFailure: a worker failed with no restart left.
        TimeoutError: ``timeout_s`` passed.

    Examples:
        >>> import sys
        >>> launch_local_workers([sys.executable, "-c", "import os; assert 'TF_CONFIG' in os.environ"], 2)
        1
    """
    if num_workers < 1 or restarts < 0 or not command:
        raise ValueError("need a command, at least one worker and restarts >= 0")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for attempt in range(restarts + 1):
        workers = _start(command, num_workers, attempt, log_dir, env)
        try:
            failed = _wait(workers, deadline)
        finally:
            _stop(workers)
        if failed is None:
            return attempt + 1
        print(f"fastnlp launch: worker {failed} failed (attempt {attempt + 1}); stopping the others", file=sys.stderr)
    raise WorkerFailure(f"a worker failed on each of {restarts + 1} attempt(s); see the workers' output")


def _start(command: Sequence[str], num_workers: int, attempt: int, log_dir: str | os.PathLike | None, env: dict | None) -> list:
    ports = free_ports(num_workers)
    workers = []
    for index in range(num_workers):
        worker_env = {**(os.environ if env is None else env), "TF_CONFIG": local_tf_config(ports, index), "FASTNLP_ATTEMPT": str(attempt)}
        output = None
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            output = open(Path(log_dir) / f"worker-{index}.log", "a")  # noqa: SIM115 - closed in _stop
        process = subprocess.Popen(list(command), env=worker_env, stdout=output, stderr=subprocess.STDOUT if output else None, start_new_session=True)
        process.log_file = output
        workers.append(process)
    return workers


def _wait(workers: list, deadline: float | None) -> int | None:
    """Index of the first worker that failed, or ``None`` once all exited 0."""
    while True:
        codes = [worker.poll() for worker in workers]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return index
        if all(code == 0 for code in codes):
            return None
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the workers did not finish in time; all were killed")
        time.sleep(0.2)


def _stop(workers: list, grace_s: float = 5.0) -> None:
    for worker in workers:
        if worker.poll() is None:
            _signal_group(worker.pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(worker.pid, signal.SIGKILL)
            worker.wait()
        if worker.log_file is not None:
            worker.log_file.close()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the worker and anything it started
    except ProcessLookupError:
        pass  # already gone
