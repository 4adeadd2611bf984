"""What a new user sees: fastnlp commands print their work, not TensorFlow's logs; the library leaves logging alone."""

import json
import os
import re
import subprocess
import sys

import pytest

from fastnlp.harness.demo import LADDER, QUICK, format_table
from fastnlp.harness.quiet import is_native_log_line


def fresh_user_environment():
    """This process's environment as a user's shell has it: no TF_CPP_MIN_LOG_LEVEL (the suite's conftest sets one)."""
    return {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def run_command(*arguments, cwd):
    result = subprocess.run(
        [sys.executable, "-m", "fastnlp", *arguments], capture_output=True, timeout=400, cwd=cwd, env=fresh_user_environment(),
    )
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode == 0, output[-3000:]
    return result, output


def test_demo_quick_prints_a_screenful_without_tensorflow_logs_or_bars_and_writes_its_results(tmp_path):
    # --quick's output with a smaller corpus and blog model, to keep the suite short
    out = tmp_path / "out"
    result, output = run_command("demo", "--quick", "--budget", "3", "--max-chars", "60000", "--blog-units", "8",
                                 "--out", str(out), cwd=tmp_path)
    lines = output.splitlines()
    assert len(lines) <= 60, output
    native = [line for line in (result.stdout + result.stderr).splitlines() if is_native_log_line(line)]
    assert not native and "absl" not in output and "cuInit" not in output, output
    assert "/step" not in output and "\r" not in output  # no Keras per-step progress bar
    assert "each recipe trains 3 s" in output  # the settings
    assert re.search(r"training the blog recipe \.\.\. \d+ steps in [\d.]+ s, validation loss", output), output
    assert re.search(r"training the fastnlp recipe \.\.\. \d+ steps in [\d.]+ s, validation loss", output), output
    assert f"wrote {out}/results.json" in output

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for recipe in results["recipes"].values():
        times = [t for t, _ in recipe["curve"]]
        assert times == sorted(times) and recipe["curve"][0][0] == 0.0
        assert recipe["training_s"] >= 3  # the same budget, each (where it stops is learning_rate_budget's test)
        assert recipe["peak_rss_mb"] > 0 and recipe["steps"] > 0
        assert len(recipe["sample"]) == QUICK.sample_chars
    assert format_table(results) in output  # the printed table is the one written
    assert all(f"seconds to loss {loss}" in output for loss in LADDER)
    assert (out / "loss_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "char_lm.keras").exists()


def test_verbose_brings_back_a_line_per_evaluation_and_tensorflows_own_lines(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log. " * 400, encoding="utf-8")
    result, output = run_command("train", str(corpus), "--budget", "2", "--out", str(tmp_path / "out"), "-v", cwd=tmp_path)
    assert re.search(r"\d+ steps  validation loss", output), output  # a per-evaluation line
    # without -v the filter would have dropped these; a GPU-less TensorFlow build always says it found no GPU
    assert any(is_native_log_line(line) for line in result.stderr.splitlines()) or "cuda" not in output.lower()


def test_the_library_changes_no_logging_settings():
    code = """
import logging, os, sys
import tensorflow as tf, keras
def state():
    loggers = {name: logging.getLogger(name).level for name in ("", "absl", "tensorflow", "keras")}
    return loggers, os.environ.get("TF_CPP_MIN_LOG_LEVEL"), os.fstat(2).st_ino, len(logging.getLogger().handlers)
before = state()
import fastnlp
model = fastnlp.enable_mixed_precision(fastnlp.build_lstm(20, units=8, num_layers=1, seq_len=5))
fastnlp.clean_text("The 3 cats", stopwords={"the"})
print(state() == before, before[1])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=fresh_user_environment())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "None"]


def refusal(capsys, *arguments):
    """(exit code, stderr) of the CLI on ``arguments``, run in this process: nothing may train first."""
    from fastnlp.harness.cli import main

    try:
        code = main(list(arguments))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def test_bad_command_arguments_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import fastnlp.harness.demo

    import fastnlp.harness.bench
    import fastnlp.recipes.training

    for module, name in ((fastnlp.harness.demo, "run_demo"), (fastnlp.harness.bench, "run_bench"), (fastnlp.recipes.training, "train_char_lm")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("trained before refusing"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 50, encoding="utf-8")
    earlier, folder_in_the_way = tmp_path / "earlier", tmp_path / "odd"
    (earlier / "model.keras").parent.mkdir()
    (earlier / "model.keras").write_bytes(b"an earlier run's model")
    (earlier / "results.json").write_text("{}")
    (folder_in_the_way / "model.keras").mkdir(parents=True)
    labelled = tmp_path / "labelled.tsv"
    labelled.write_text("a fine film\t1\nnot for me\tx\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# no bench section here\n")
    cases = [
        (("train", str(corpus), "--budget", "1e300"), "argument --budget: must be at most 31536000 seconds"),
        (("train", str(corpus), "--budget", "3", "--out", str(earlier)), "already holds model.keras from an earlier run; pass --overwrite"),
        (("train", str(corpus), "--budget", "3", "--out", str(folder_in_the_way)), "model.keras' : it is a folder".replace("' :", "':")),
        (("demo", "--out", str(earlier)), "already holds results.json from an earlier run"),
        (("bench", "--docs", str(page), "--out", str(tmp_path / "b")), "has no <!-- bench:begin"),
        (("bench", "--docs", str(tmp_path / "missing.md"), "--out", str(tmp_path / "b")), "cannot read --docs"),
        (("launch", "--", "/no/such/bin"), "fastnlp launch: no such program '/no/such/bin'"),
        (("bench", "--task", "classify", "--corpus", str(labelled), "--out", str(tmp_path / "c")), "line 2: the label 'x' is not a non-negative integer"),
        (("demo", "--out", str(blocker / "out")), "fastnlp demo: cannot create --out"),
        (("demo", "--max-chars", "0"), "argument --max-chars: must be a positive integer, got 0"),
        (("demo", "--budget", "-5"), "argument --budget: must be a positive, finite number of seconds"),
        (("demo", "--blog-units", "-1"), "argument --blog-units: must be a positive integer"),
        (("demo", "--corpus", str(tmp_path / "missing.txt")), "fastnlp demo: cannot read"),
        (("demo", "--corpus", str(binary)), "fastnlp demo: cannot read"),
        (("bench", "--units", "-1"), "argument --units: must be a positive integer"),
        (("bench", "--corpus", str(binary)), "fastnlp bench: cannot read"),
        (("bench", "--out", str(blocker / "out")), "fastnlp bench: cannot create --out"),
        (("train", str(binary), "--budget", "3"), "fastnlp train: cannot read"),
        (("launch", "--workers", "0", "--", "python", "-c", "pass"), "argument --workers: must be a positive integer"),
    ]
    for arguments, message in cases:
        code, err = refusal(capsys, *arguments)
        assert code == 2 and message in err.strip().splitlines()[-1], (arguments, err)  # one line says it
        assert "Traceback" not in err, err
