"""Benchmark: the blog's char-LM recipe vs fastnlp's on tinyshakespeare, at a size this CPU can train.

Prints and records (JSON + PNG under --out):
  * time to the blog recipe's final validation loss, both recipes, same model size, same run, and
    fastnlp's once more on the blog's 100-character windows (the pipeline's gain alone);
  * samples/s and predicted characters/s;
  * training FLOP/s of each recipe as a fraction of a same-run 2048^2 float32 matmul;
  * fastnlp recipe throughput in mixed_bfloat16 vs float32 on this CPU.

    python benchmarks/char_lm_speedup.py                      # full size, ~25 minutes on 2 cores
    python benchmarks/char_lm_speedup.py --budget 60 --units 64   # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import char_lm_parser, read_corpus

from fastnlp import char_lm_dataset
from fastnlp.demo import DemoSettings, build_fastnlp_model, compare_recipes, format_table, plot_curves, run_fastnlp_recipe, split_corpus
from fastnlp.measure import TrainingRun, lstm_training_flops, matmul_flops, timed_training_callback



def throughput(text: str, settings: DemoSettings, policy: str, seconds: float) -> float:
    """Training samples/s of the fastnlp recipe with ``policy`` (or "float32") for ``seconds``."""
    data = char_lm_dataset(text, settings.fastnlp_seq_len, settings.batch_size, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an explicit bfloat16 policy warns that this CPU won't gain
        model = build_fastnlp_model(data.vocabulary.size, dataclasses.replace(settings, policy=policy))
    run = TrainingRun(settings.batch_size)
    clock = timed_training_callback(model, lambda: float("nan"), run, seconds, min_gap_s=seconds)
    model.fit(data.train, epochs=1000, shuffle=False, callbacks=[clock], verbose=0)
    return run.samples_per_second()


def main() -> int:
    parser = char_lm_parser(__doc__)
    parser.add_argument("--budget", type=float, default=720.0, help="blog recipe training seconds")
    parser.add_argument("--precision-seconds", type=float, default=60.0, help="seconds per precision throughput run")
    parser.add_argument("--out", default="bench-output/char_lm")
    args = parser.parse_args()
    text = read_corpus(args.corpus)
    if text is None:
        return 2
    os.makedirs(args.out, exist_ok=True)
    settings = DemoSettings(units=args.units, num_layers=args.layers, budget_s=args.budget, verbose=2)

    results = compare_recipes(text, settings)
    results["corpus"] = os.path.basename(os.path.dirname(os.path.abspath(args.corpus))) + "/" + os.path.basename(args.corpus)

    # fastnlp again on the blog's 100-character windows: the pipeline's gain alone
    long_windows = dataclasses.replace(settings, fastnlp_seq_len=settings.seq_len)
    results["recipes"]["fastnlp_100"] = {
        **run_fastnlp_recipe(split_corpus(text, long_windows), long_windows, results["target_val_loss"]),
        "label": f"fastnlp, {settings.seq_len}-char windows",
    }
    results["recipes"]["fastnlp_100"].pop("machine")

    vocab = results["vocab_size"]
    results["matmul_2048_flops"] = {"float32": matmul_flops(dtype="float32"), "bfloat16": matmul_flops(dtype="bfloat16")}
    for name, input_dim, window, predictions in (
        ("blog", 1, settings.seq_len, 1),
        ("fastnlp", 64, settings.fastnlp_seq_len, settings.fastnlp_seq_len),
        ("fastnlp_100", 64, settings.seq_len, settings.seq_len),
    ):
        recipe = results["recipes"][name]
        per_sample = lstm_training_flops(window, input_dim, settings.units, settings.num_layers, vocab, predictions)
        recipe["training_flops"] = per_sample * recipe["samples_per_s"]
        recipe["fraction_of_matmul_fp32"] = recipe["training_flops"] / results["matmul_2048_flops"]["float32"]

    print(f"\n== fastnlp recipe throughput, float32 vs mixed_bfloat16, {args.precision_seconds:g} s each", flush=True)
    results["precision_samples_per_s"] = {
        "float32": throughput(text, settings, "float32", args.precision_seconds),
        "mixed_bfloat16": throughput(text, settings, "mixed_bfloat16", args.precision_seconds),
    }

    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    plot_curves(results, os.path.join(args.out, "loss_vs_time.png"))
    print()
    print(format_table(results))
    matmul = results["matmul_2048_flops"]
    print(f"2048^2 matmul: {matmul['float32'] / 1e9:.1f} GFLOP/s float32, {matmul['bfloat16'] / 1e9:.1f} GFLOP/s bfloat16")
    for name in ("blog", "fastnlp", "fastnlp_100"):
        recipe = results["recipes"][name]
        print(f"{name} training: {recipe['training_flops'] / 1e9:.1f} GFLOP/s = {recipe['fraction_of_matmul_fp32']:.0%} of float32 matmul")
    precision = results["precision_samples_per_s"]
    print(f"fastnlp samples/s: float32 {precision['float32']:.1f}, mixed_bfloat16 {precision['mixed_bfloat16']:.1f} "
          f"({precision['mixed_bfloat16'] / precision['float32']:.2f}x)")
    print(f"machine: {results['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
