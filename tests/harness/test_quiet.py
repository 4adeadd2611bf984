"""The quiet filter of fastnlp's commands: what it drops, what it must never drop, and what it leaves behind."""

import subprocess
import sys
import textwrap

import pytest


def run_python(code: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=120, check=False, **options)


@pytest.mark.parametrize(
    "ending, status",
    [("os.abort()", -6), ("os._exit(3)", 3), ("import ctypes; ctypes.string_at(0)", -11)],
    ids=["abort", "os._exit", "segfault"],
)
def test_a_process_s_last_words_reach_the_terminal(ending, status):
    result = run_python(f"""
        import os, faulthandler, sys
        faulthandler.enable()
        from fastnlp.harness.quiet import quiet_command_output
        with quiet_command_output():
            os.write(2, b"I0000 00:00:1795851295.244824   10780 cudart_stub.cc:31] Could not find cuda drivers\\n")
            print("the last words", file=sys.stderr, flush=True)
            {ending}
    """)
    assert result.returncode == status
    assert b"the last words" in result.stderr  # the filter thread died with the process before copying them
    assert b"cudart_stub" not in result.stderr
    if status == -11:
        assert b"Fatal Python error: Segmentation fault" in result.stderr


def test_a_child_that_outlives_the_command_can_still_write():
    result = run_python("""
        import subprocess, sys, time
        from fastnlp.harness.quiet import quiet_command_output
        with quiet_command_output():
            child = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(1.5); print('child still here', file=sys.stderr)"])
        print("command returned", flush=True)
        sys.exit(child.wait())
    """)
    assert result.returncode == 0, result.stderr  # it died of SIGPIPE on its next write
    assert b"child still here" in result.stderr


def test_overlapping_commands_in_two_threads_put_everything_back():
    result = run_python("""
        import logging, os, threading
        from fastnlp.harness.quiet import quiet_command_output
        before = os.fstat(2).st_ino, logging.getLogger("absl").level
        entered, leave_first = threading.Event(), threading.Event()
        def first():
            with quiet_command_output():
                entered.set()
                leave_first.wait()
        thread = threading.Thread(target=first)
        thread.start()
        entered.wait()
        with quiet_command_output():
            leave_first.set()
            thread.join()  # the first leaves while the second is still inside
        print(before == (os.fstat(2).st_ino, logging.getLogger("absl").level))
    """)
    assert result.stdout.split() == [b"True"], result.stderr


def test_a_closed_stderr_does_not_stop_a_command():
    result = subprocess.run(
        f"{sys.executable} -m fastnlp launch -- {sys.executable} -c pass 2>&-", shell=True, capture_output=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout  # every command failed silently


def test_launch_leaves_its_workers_native_log_level_alone(tmp_path):
    import os

    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    worker = "import os; print('level', os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    result = subprocess.run(
        [sys.executable, "-m", "fastnlp", "launch", "--workers", "1", "--log-dir", str(tmp_path), "--", sys.executable, "-c", worker],
        capture_output=True, timeout=120, check=False, env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "level None" in (tmp_path / "worker-0.log").read_text()  # it was 3: their ERROR lines never reached the log


def test_figures_leave_the_users_matplotlib_backend_alone():
    result = run_python("""
        import matplotlib
        matplotlib.use("svg")
        from fastnlp.harness.reports import new_figure, save_figure
        figure, axes = new_figure(2, (4, 2))
        save_figure(figure, "/dev/null")
        print(matplotlib.get_backend())
    """)
    assert result.stdout.split() == [b"svg"], result.stderr
