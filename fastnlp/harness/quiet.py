"""Quiet command output: what ``fastnlp`` commands do so that their output is the work, not TensorFlow's logs.

Only the command line uses this; importing or calling the library never changes a user's logging.

TensorFlow's C++ code logs through Abseil before Abseil's logging is set up, so its lines
("Could not find cuda drivers", "failed call to cuInit" on every machine without a GPU, oneDNN
notices) go straight to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: measured with
TF 2.21, level 3 still printed the ``cudart_stub`` lines. So besides setting that variable, a
command passes its standard error through a filter that drops those lines, in its own process and
in the processes it starts (they inherit the descriptor).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
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
def quiet_command_output(verbose: int = 0) -> Iterator[None]:
    """Inside it, TensorFlow's C++ log lines and library warnings stay out of standard error (unless ``verbose``).

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set it (enter before TensorFlow is imported),
    raises the ``absl`` and ``tensorflow`` loggers to ERROR, and filters descriptor 2 so that
    Abseil-format lines from this process and its child processes are dropped. Everything is put
    back on exit. With ``verbose`` it does nothing.
    """
    if verbose:
        yield
        return
    saved_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved_loggers = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with _filtered_stderr():
            yield
    finally:
        for name, level in saved_loggers.items():
            logging.getLogger(name).setLevel(level)
        if saved_level is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Route descriptor 2 through a pipe; a thread copies every line but the native log lines back."""
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def copy_lines() -> None:
        with os.fdopen(read_end, "rb") as lines:
            for line in lines:
                if not is_native_log_line(line):
                    os.write(original, line)

    thread = threading.Thread(target=copy_lines, name="fastnlp-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes this process's last write end: the thread sees the end of the pipe
        thread.join(timeout=10)  # a child still holding the pipe must not hang the command
        if not thread.is_alive():  # else the thread still copies into it; the descriptor goes with the process
            os.close(original)
