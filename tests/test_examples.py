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


def test_walkthrough_notebook_is_stored_without_outputs_and_runs_top_to_bottom(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLES / "walkthrough.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "store the notebook without outputs"
    monkeypatch.setenv("FASTNLP_QUICK", "1")  # the kernel inherits it: small settings
    NotebookClient(notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in code for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert "validation loss" in text and "input untouched: True" in text and "fused LSTM: True" in text
    (sample_cell,) = [cell for cell in code if "sample_text(" in cell.source]
    sampled = "".join(output.get("text", "") for output in sample_cell.outputs)
    assert sampled.startswith("sampled: The ") and len(sampled.rstrip("\n")) == len("sampled: The ") + 200
    assert any("image/png" in output.get("data", {}) for output in outputs), "the loss plot shows inline"
