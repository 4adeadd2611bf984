import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_runs():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py"), "--units", "8", "--max-chars", "20000"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored best model, validation loss" in result.stdout


def test_multi_worker_example_runs_as_two_local_workers(tmp_path):
    command = [sys.executable, "-m", "fastnlp", "launch", "--workers", "2", "--timeout", "240", "--log-dir", str(tmp_path), "--",
               sys.executable, str(EXAMPLES / "multi_worker.py"), "--quick", "--backup-dir", str(tmp_path / "backup")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    chief = (tmp_path / "worker-0.log").read_text()
    assert result.returncode == 0, result.stderr[-2000:] + chief[-3000:]
    assert "2 replica(s): final loss" in chief and "MultiWorkerMirroredStrategy, 2 worker(s)" in chief


def run_example(name, *args, timeout=400):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_text_generation_example_chains_every_training_speedup_and_samples_text():
    out = run_example("text_generation.py", "--quick")
    assert "applied: (" in out and "set_steps_per_execution" in out and "distribute(" in out
    sampled = out.split("sampled at temperature 0.8:\n", 1)[1]
    assert sampled.startswith("The ") and len(sampled.rstrip("\n")) == len("The ") + 80


def test_sst2_example_prunes_exports_int8_and_runs_litert():
    from conftest import shared_corpus

    data = shared_corpus("sst2")
    out = run_example("sst2_pipeline.py", "--quick", "--data", str(data))
    assert "bucketing:" in out and "sparsity:" in out and "0.5" in out
    assert "LiteRT int8" in out and "fused ops: True" in out


def test_walkthrough_notebook_runs_top_to_bottom():
    out = run_example("walkthrough.py", "--quick")
    assert "input untouched: True" in out and "fused LSTM: True" in out
