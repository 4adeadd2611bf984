"""``fastnlp bench``: measures in fresh processes, writes JSON and PNG, regenerates the docs section from the JSON."""

import dataclasses
import json
import subprocess
import sys

import pytest

from fastnlp.harness import bench


def test_bench_measures_writes_and_regenerates_the_docs_page(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nintro\n\n{bench.BEGIN}\nold table\n{bench.END}\n\nafter\n")
    command = [sys.executable, "-m", "fastnlp", "bench", "--quick", "--budget", "3", "--only", "steps_per_execution=4",
               "--out", str(tmp_path / "out"), "--docs", str(page)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]

    record = json.loads((tmp_path / "out" / "bench.json").read_text())
    names = [row["name"] for row in record["rows"]]
    assert names == ["baseline", "steps_per_execution=4", "int8 export (dynamic, LiteRT)"]
    baseline, steps, export = record["rows"]
    assert baseline["samples_per_s"] > 0 and steps["samples_per_s"] > 0 and export["samples_per_s"] is None
    assert "4 steps/execution" in steps["fast_paths"] and "4 steps/execution" not in baseline["fast_paths"]
    assert export["model_bytes"] < baseline["model_bytes"] and export["fast_paths"] == "fused int8 LSTM op"
    assert baseline["seconds_to_target"] is not None  # the baseline reaches its own final loss
    assert (tmp_path / "out" / "bench.png").stat().st_size > 10_000

    text = page.read_text()
    assert "old table" not in text and text.startswith("# Benchmarks\n\nintro") and text.endswith("after\n")
    assert bench.render_markdown(record) in text  # regenerated from the record, not typed
    assert "steps_per_execution=4" in result.stdout  # and the printed table


def test_regenerating_from_json_measures_nothing_and_refuses_a_page_without_markers(tmp_path):
    record_path = tmp_path / "bench.json"
    record_path.write_text(json.dumps(bench._EXAMPLE))
    page = tmp_path / "page.md"
    page.write_text(f"{bench.BEGIN}\n{bench.END}\n")
    command = [sys.executable, "-m", "fastnlp", "bench", "--from-json", str(record_path), "--out", str(tmp_path), "--docs", str(page)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    assert "| baseline | 100.0 | 1.00x |" in page.read_text()
    page.write_text("no markers\n")
    with pytest.raises(ValueError, match="no <!-- bench:begin -->"):
        bench.update_docs(bench._EXAMPLE, str(page))


def test_bench_classify_task_on_sst2(tmp_path):
    from conftest import shared_corpus

    corpus = shared_corpus("sst2/train.tsv")
    command = [sys.executable, "-m", "fastnlp", "bench", "--quick", "--task", "classify", "--corpus", str(corpus),
               "--only", "baseline", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    baseline, export = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert baseline["samples_per_s"] > 0 and len(baseline["curve"]) >= 2 and baseline["final_val_loss"] > 0
    # (no bound on the loss: 6 s over 900 sentences is ~30 epochs, and the quick classifier overfits)
    assert export["model_bytes"] < baseline["model_bytes"] / 3 and export["latency_ms"] > 0


def test_a_held_out_label_the_training_lines_never_have_is_refused(tmp_path):
    from fastnlp.harness import bench

    corpus = tmp_path / "labelled.tsv"
    lines = ["an odd one\t5"] + [f"review {i}\t{i % 2}" for i in range(19)]  # the first 10% are held out
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = dataclasses.replace(bench.QUICK, task="classify")
    with pytest.raises(ValueError, match="held-out first 2 lines have label 5, which the training lines"):
        bench.load_datasets(str(corpus), settings)
