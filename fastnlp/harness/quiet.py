"""Quiet command output: what ``fastnlp`` commands do so that their output is the work, not TensorFlow's logs.

Only the command line uses this; importing or calling the library never changes a user's logging.

TensorFlow's C++ code logs through Abseil before Abseil's logging is set up, so its lines
("Could not find cuda drivers", "failed call to cuInit" on every machine without a GPU, oneDNN
notices) go straight to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: measured with
TF 2.21, level 3 still printed the ``cudart_stub`` lines. So besides setting that variable, a
command passes its standard error through a filter process that drops those lines, from its own
process and from the processes it starts (they inherit the descriptor).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

__all__ = ["is_native_log_line", "quiet_command_output"]

# Abseil's prefix (severity letter, MMDD, time, thread id, file:line]), its one-time notice, and the
# prefix of TensorFlow's older logger (date, time, severity), which TF_CPP_MIN_LOG_LEVEL=0 lets through.
_NATIVE_LOG = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] )"
)

# Python-side loggers that print warnings of their own (absl's "WARNING:absl:...", tf.get_logger()).
_LIBRARY_LOGGERS = ("absl", "tensorflow")


def is_native_log_line(line: bytes) -> bool:
    """Whether ``line`` is one of TensorFlow's C++ (Abseil) log lines: info, warning or error, not fatal.

    Examples:
        >>> is_native_log_line(b"I0000 00:00:1795851295.244824   10780 cudart_stub.cc:31] Could not find cuda drivers")
        True
        >>> is_native_log_line(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
        True
        >>> is_native_log_line(b"2026-11-28 07:10:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on")
        True
        >>> is_native_log_line(b"ValueError: budget_s must be positive")
        False
    """
    return bool(_NATIVE_LOG.match(line))


@contextlib.contextmanager
def quiet_command_output(verbose: int = 0, *, quiet_children: bool = True) -> Iterator[None]:
    """Inside it, TensorFlow's C++ log lines and library warnings stay out of standard error (unless ``verbose``).

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it (enter before TensorFlow is imported; with
    ``quiet_children=False`` it is left alone, so that child processes log in full), raises the
    ``absl`` and ``tensorflow`` loggers to ERROR, and filters descriptor 2 so that Abseil-format
    lines from this process and its child processes are dropped. Everything is put back on exit;
    entered again (another thread), it only counts, and the last exit puts things back. With
    ``verbose`` it does nothing.
    """
    if verbose:
        yield
        return
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = _install(quiet_children)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore(_saved)
                _saved = None


_lock = threading.Lock()
_depth = 0  # how many quiet_command_output blocks are open in this process
_saved: dict | None = None  # what the first of them changed


def _install(quiet_children: bool) -> dict:
    saved = {"level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"), "set_level": False}
    if quiet_children and saved["level"] is None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        saved["set_level"] = True
    saved["loggers"] = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    saved["stderr"] = _filter_stderr()
    return saved


def _restore(saved: dict) -> None:
    _unfilter_stderr(saved["stderr"])
    for name, level in saved["loggers"].items():
        logging.getLogger(name).setLevel(level)
    if saved["set_level"]:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


# The filter runs in a process of its own: it reads the pipe until every writer has closed it, so a
# child that outlives the command keeps writing, and the last lines of a process that aborts (or
# crashes, or calls os._exit) still reach the terminal; a thread of the dying process lost them.
_FILTER_PROGRAM = f"""
import os, re, sys
native = re.compile({_NATIVE_LOG.pattern!r})
for line in sys.stdin.buffer:
    if not native.match(line):
        os.write(1, line)
"""


def _filter_stderr() -> tuple[int, subprocess.Popen] | None:
    """Route descriptor 2 through the filter process; ``(the original descriptor 2, the filter)``, or None
    where descriptor 2 is closed (``2>&-``: nothing to filter)."""
    try:
        os.fstat(2)
    except OSError:
        return None
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    log_filter = subprocess.Popen(
        [sys.executable, "-c", _FILTER_PROGRAM], stdin=read_end, stdout=original, stderr=subprocess.DEVNULL,
        close_fds=True, start_new_session=True,  # a Ctrl-C meant for the command leaves the filter draining
    )
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    return original, log_filter


def _unfilter_stderr(state: tuple[int, subprocess.Popen] | None) -> None:
    if state is None:
        return
    original, log_filter = state
    sys.stderr.flush()
    os.dup2(original, 2)  # closes this process's last write end
    os.close(original)
    try:  # the filter ends once no child holds the pipe; this command's own lines are out by then
        log_filter.wait(timeout=5)
    except subprocess.TimeoutExpired:  # a child still holds the pipe: the filter serves it after the command returns
        _FILTERS.append(log_filter)


_FILTERS: list[subprocess.Popen] = []  # filters still serving children: kept referenced until the process ends
