"""Start N workers of one training script on this machine, each with its ``TF_CONFIG``, for trying multi-worker
training out (``python -m fastnlp launch --workers 2 -- python train.py``).

Synchronous data parallelism stops when one worker dies, so, like a cluster manager, the launcher
then stops the others and starts them all again (``restarts`` times); a script trained with
``distribute(..., backup_dir=...)`` resumes from its last completed epoch. Every worker is stopped
when the launcher leaves, whatever the reason: an error, Ctrl-C, ``SIGTERM`` or ``SIGHUP``.

TensorFlow's worker server listens on every network interface (its address in ``TF_CONFIG``
does not change that) and, as TensorFlow's SECURITY.md says, runs whatever graph it is sent. So on
Linux the workers run in a network namespace of their own, where the only interface is their
loopback: nothing outside can reach their ports (nor can they reach the network).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from fastnlp.core import notices
from fastnlp.core.validation import (
    check_mapping,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
    checked_path,
)

__all__ = ["LauncherStopped", "WorkerFailure", "free_ports", "launch_local_workers", "local_tf_config"]


class WorkerFailure(RuntimeError):
    """A worker failed and no restart was left."""


class LauncherStopped(RuntimeError):
    """The launcher got ``SIGTERM`` or ``SIGHUP``; its workers were stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; the workers were stopped too")
        self.signum = signum


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
    isolate_network: bool | None = None,
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
        isolate_network: run the workers in a network namespace of their own (Linux), so that
            their servers, which listen on every interface, are reachable only from each other.
            ``None``: when this machine allows it, else a warning; ``True``: always, or an error;
            ``False``: never (the ports are open to the network).

    Returns:
        How many attempts it took (1 when nothing failed).

    Raises:
        ValueError: fewer than one worker, a negative ``restarts`` or an empty command.
        WorkerFailure: a worker failed with no restart left.
        TimeoutError: ``timeout_s`` passed.
        LauncherStopped: ``SIGTERM`` or ``SIGHUP`` arrived (the workers were stopped first).
        OSError: ``isolate_network=True`` on a machine that cannot isolate them.

    Examples:
        >>> import sys
        >>> launch_local_workers([sys.executable, "-c", "import os; assert 'TF_CONFIG' in os.environ"], 2)
        1
    """
    if isinstance(command, (str, bytes)) or not isinstance(command, Sequence) or not command:
        raise ValueError(f"command must be a list of program and arguments, e.g. [sys.executable, 'train.py'], got {command!r}")
    if timeout_s is not None:
        check_positive_number(timeout_s=timeout_s)
    if log_dir is not None:
        log_dir = checked_path("log_dir", log_dir)
    check_mapping("env", env)
    check_positive_int(num_workers=num_workers)
    check_non_negative_int(restarts=restarts)
    settings = {"command": [os.fspath(part) for part in command], "num_workers": num_workers, "restarts": restarts,
                "timeout_s": timeout_s, "log_dir": log_dir, "env": env}
    if isolate_network is False or os.environ.get(_ISOLATED) == "1":
        with _stop_on_termination():
            return _supervise(**settings)
    problem = _isolation_problem()
    if problem is None:
        try:
            return _supervise_isolated(settings)
        except _CannotIsolate as error:
            problem = str(error)
    if isolate_network:
        raise OSError(f"isolate_network=True, but the workers cannot be isolated here: {problem}")
    notices.warn(
        f"launch_local_workers: the workers' TensorFlow servers listen on every network interface and run what "
        f"they are sent; they cannot be isolated here ({problem}). Use a machine or container with no untrusted "
        f"network, or pass isolate_network=False to silence this",
        RuntimeWarning,
    )
    with _stop_on_termination():
        return _supervise(**settings)


def _supervise(command: list, num_workers: int, restarts: int, timeout_s: float | None, log_dir: str | None, env: dict | None) -> int:
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


@contextlib.contextmanager
def _stop_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`LauncherStopped`, so that the ``finally`` that stops the
    workers runs: by default those signals end the process at once and the workers live on."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise LauncherStopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_ISOLATED = "FASTNLP_LAUNCH_ISOLATED"  # set inside the namespace: the supervisor there runs the workers itself


class _CannotIsolate(OSError):
    pass


def _isolation_problem() -> str | None:
    """Why this machine cannot give the workers a network namespace (None: it can try)."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux's; this is {sys.platform}"
    if not os.path.exists("/proc/self/ns/net"):
        return "no /proc/self/ns/net"
    return None


def _enter_network_namespace() -> None:
    """In the child, before exec: a new network namespace (and, unprivileged, a user namespace to own it)."""
    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    uid, gid = os.getuid(), os.getgid()
    if _LIBC.unshare(clone_newnet if uid == 0 else clone_newnet | clone_newuser) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    if uid != 0:  # be root inside the user namespace, which network setup needs
        for path, line in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"0 {uid} 1"), ("/proc/self/gid_map", f"0 {gid} 1")):
            descriptor = os.open(path, os.O_WRONLY)
            try:
                os.write(descriptor, line.encode())
            finally:
                os.close(descriptor)


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _bring_loopback_up() -> None:
    """A new network namespace starts with its loopback down: bring ``lo`` up (ioctl SIOCSIFFLAGS)."""
    import fcntl  # Unix only, like the namespace itself

    get_flags, set_flags, interface_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, bytes(14))
        flags = struct.unpack("16sH", fcntl.ioctl(sock, get_flags, request)[:18])[1]
        fcntl.ioctl(sock, set_flags, struct.pack("16sH14s", b"lo", flags | interface_up, bytes(14)))


def _supervise_isolated(settings: dict) -> int:
    """Run :func:`_supervise` in a child process inside a new network namespace; its result, or its error."""
    with tempfile.TemporaryDirectory(prefix="fastnlp-launch-") as folder:
        request, answer = Path(folder) / "settings.json", Path(folder) / "result.json"
        request.write_text(json.dumps(settings), encoding="utf-8")
        try:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "fastnlp.speedups.parallel.launch", str(request), str(answer)],
                env={**os.environ, _ISOLATED: "1", "PYTHONPATH": _with_this_package(os.environ.get("PYTHONPATH"))},
                preexec_fn=_enter_network_namespace,  # noqa: PLW1509 - unshare must run in the child
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise _CannotIsolate(f"creating a network namespace failed: {error}") from error
        with _stop_on_termination():
            try:
                code = supervisor.wait()
            except BaseException:
                supervisor.terminate()  # its own handler stops the workers
                try:
                    supervisor.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    supervisor.kill()
                raise
        result = json.loads(answer.read_text(encoding="utf-8")) if answer.exists() else {"error": "RuntimeError", "message": f"the launcher inside the namespace exited {code}"}
    if "attempts" in result:
        return result["attempts"]
    errors = {"WorkerFailure": WorkerFailure, "TimeoutError": TimeoutError, "_CannotIsolate": _CannotIsolate}
    raise errors.get(result["error"], RuntimeError)(result["message"])


def _with_this_package(python_path: str | None) -> str:
    """``PYTHONPATH`` with the folder this fastnlp is imported from first, so the supervisor imports the same one."""
    here = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join([here, *([python_path] if python_path else [])])


def _isolated_main(request: str, answer: str) -> int:
    """Inside the namespace: bring loopback up, supervise the workers, write the result for the parent."""
    try:
        _bring_loopback_up()
    except OSError as error:
        outcome = {"error": "_CannotIsolate", "message": f"bringing up the namespace's loopback failed: {error}"}
    else:
        settings = json.loads(Path(request).read_text(encoding="utf-8"))
        try:
            with _stop_on_termination():
                outcome = {"attempts": _supervise(**settings)}
        except (WorkerFailure, TimeoutError, LauncherStopped) as error:
            outcome = {"error": type(error).__name__, "message": str(error)}
    Path(answer).write_text(json.dumps(outcome), encoding="utf-8")
    return 0


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


if __name__ == "__main__":  # the supervisor inside the workers' network namespace
    sys.exit(_isolated_main(sys.argv[1], sys.argv[2]))
