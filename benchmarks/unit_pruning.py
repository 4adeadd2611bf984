"""Benchmark: structured unit pruning (``prune_units``) against the dense model and magnitude ``prune``.

On the seed's model shape, a 3 x LSTM(512) character LM on tinyshakespeare, trained here in float32
for ``--train-steps`` steps:

1. quality: 25 / 50 / 75% of the units removed, each fine-tuned ``--finetune-steps`` steps, against
   the dense model trained the same extra steps, and magnitude ``prune`` at the parameter count of the
   50% model (its LSTM kernels at that sparsity), fine-tuned as long; at 50%, both criteria
   (``"magnitude"`` and ``"activation"``) and ``prune_units_gradually`` over the fine-tune;
2. speed: training samples/s (alternating rounds, medians), LiteRT batch-1 latency of a
   ``--seq-len`` window, and the TFLite size in float32 and dynamic-range int8.

Then an SST-2 classifier (2 x LSTM, left-padded so it exports fused), trained ``--sst2-epochs``
epochs: dev accuracy with 50% of its units removed and one more epoch, against the dense model given
the same epoch. Targets (issue #24): validation loss within 2%, LiteRT >= 2.5x, training >= 2x
faster, SST-2 within 1 point, pruned + int8 >= 12x smaller than the float32 unpruned model.

    python benchmarks/unit_pruning.py                  # ~25 minutes on 2 cores
    python benchmarks/unit_pruning.py --quick          # a smoke run
"""

from __future__ import annotations

import json
import os
import statistics
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from common import char_lm_parser
from compression import char_lm_task, sst2_task, timed_fit

from fastnlp import LiteRTModel, prune, prune_units, prune_units_gradually, strip_pruning, to_tflite
from fastnlp.core import hardware
from fastnlp.core.convert import convert
from fastnlp.core.measure import median_ms
from fastnlp.core.rebuild import rebuild
from fastnlp.harness.reports import machine_summary


def train(model, task, steps: int, seed: int, callbacks=()) -> None:
    """``steps`` batches of ``task``'s training windows in a seeded random order."""
    rows = steps * task.batch_size
    order = np.random.default_rng(seed).permutation(np.arange(rows) % len(task.x))
    model.fit(task.x[order], task.y[order], batch_size=task.batch_size, epochs=1, verbose=0, shuffle=False, callbacks=list(callbacks))


def validation(model, task) -> dict:
    return task.score(model.predict(task.x_val, batch_size=256, verbose=0))


def lstm_parameters(model) -> int:
    return sum(int(np.prod(w.shape)) for layer in model.layers if "LSTM" in type(layer).__name__ for w in layer.weights)


def quality_study(task, args) -> dict:
    dense = task.model
    train(dense, task, args.train_steps, seed=0)
    print(f"trained dense: {validation(dense, task)}", flush=True)
    rows = {}

    def finish(name, model, callbacks=(), final=None):
        seconds = timed_fit(model, task.x, task.y, 4, task.batch_size)  # warms up the trace, and times a few steps
        train(model, task, args.finetune_steps, seed=1, callbacks=callbacks)
        model = final(model) if final else model
        rows[name] = {**validation(model, task), "lstm_parameters": lstm_parameters(model), "step_seconds": seconds}
        print(f"  {name:28s} loss {rows[name]['loss']:.4f} accuracy {rows[name]['accuracy']:.4f} "
              f"LSTM parameters {rows[name]['lstm_parameters']:,}", flush=True)
        return model

    finish("dense (fine-tuned as long)", rebuild(dense))
    for fraction in (0.25, 0.5, 0.75):
        for criterion in ("magnitude", "activation") if fraction == 0.5 else ("magnitude",):
            data = task.x[: args.calibration] if criterion == "activation" else None
            finish(f"units {fraction:.0%} removed, {criterion}", prune_units(dense, fraction, criterion=criterion, data=data))
    gradual = rebuild(dense)  # a fresh optimizer: its steps count from 0, and finish() times 5 before the fine-tune
    pruning = prune_units_gradually(gradual, 0.5, begin_step=5, end_step=5 + max(args.finetune_steps // 2, 1),
                                    frequency=max(args.finetune_steps // 20, 1))
    finish("units 50% removed, gradual", gradual, callbacks=[pruning], final=lambda model: pruning.pruned_model())
    half = prune_units(dense, 0.5)
    sparsity = 1 - lstm_parameters(half) / lstm_parameters(dense)
    names = [layer.name for layer in dense.layers if type(layer).__name__ == "LSTM"]
    magnitude = prune(convert(dense, "tf_keras"), sparsity, layer_names=names, frequency=max(args.finetune_steps // 10, 1))
    finish(f"magnitude prune {sparsity:.0%} (same count)", magnitude, final=strip_pruning)
    reference = rows["dense (fine-tuned as long)"]["loss"]
    for row in rows.values():
        row["loss_vs_dense"] = row["loss"] / reference
    return rows


def speed_study(task, args) -> dict:
    dense = task.model
    half = prune_units(dense, 0.5)
    sample = task.x_val[:1]
    dense_rates, half_rates = [], []
    for _ in range(args.rounds):  # alternating, so drift in the machine's speed falls on both alike
        dense_rates.append(task.batch_size / timed_fit(dense, task.x, task.y, args.speed_steps, task.batch_size))
        half_rates.append(task.batch_size / timed_fit(half, task.x, task.y, args.speed_steps, task.batch_size))
    ratios = [h / d for d, h in zip(dense_rates, half_rates, strict=True)]
    exports = {}
    for name, model in (("dense", dense), ("units 50% removed", half)):
        for quantization in (None, "dynamic"):
            content = to_tflite(model, quantization, batch_size=1)
            lite = LiteRTModel(content)
            exports[f"{name} {quantization or 'float32'}"] = {
                "bytes": len(content), "ops": sorted(set(lite.ops)), **task.score(lite.predict(task.x_val)),
                "latency_ms": median_ms(lambda: lite.predict(sample), args.repeats, warmup=2),
            }
    base = exports["dense float32"]
    for name, row in exports.items():
        row["smaller_than_dense_float32"] = base["bytes"] / row["bytes"]
        row["faster_than_dense_float32"] = base["latency_ms"] / row["latency_ms"]
        print(f"  {name:28s} {row['bytes'] / 1e6:6.2f} MB ({row['smaller_than_dense_float32']:.1f}x smaller) "
              f"batch-1 latency {row['latency_ms']:.2f} ms ({row['faster_than_dense_float32']:.2f}x) ops {row['ops']}", flush=True)
    training = {
        "dense_samples_per_s": statistics.median(dense_rates), "pruned_samples_per_s": statistics.median(half_rates),
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
    }
    print(f"  training: dense {training['dense_samples_per_s']:.0f}/s, 50% removed {training['pruned_samples_per_s']:.0f}/s, "
          f"{training['ratio_median']:.2f}x ({training['ratio_min']:.2f}-{training['ratio_max']:.2f})", flush=True)
    return {"training": training, "exports": exports}


def sst2_study(args) -> dict | None:
    task = sst2_task(args)
    if task is None:
        return None
    steps = len(task.x) // task.batch_size
    train(task.model, task, steps * args.sst2_epochs, seed=0)
    dense, half = rebuild(task.model), prune_units(task.model, 0.5)
    for model in (dense, half):
        train(model, task, steps, seed=1)
    rows = {"dense": validation(dense, task), "units 50% removed": validation(half, task)}
    print(f"  SST-2 dev accuracy: dense {rows['dense']['accuracy']:.4f}, 50% of units removed "
          f"{rows['units 50% removed']['accuracy']:.4f}", flush=True)
    return rows


def main() -> int:
    parser = char_lm_parser(__doc__, units=512, layers=3)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--validation-windows", type=int, default=256)
    parser.add_argument("--calibration", type=int, default=256, help="windows the activation criterion reads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--speed-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sst2-units", type=int, default=128)
    parser.add_argument("--sst2-length", type=int, default=48)
    parser.add_argument("--sst2-epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    parser.add_argument("--out", default="bench-output/unit_pruning.json")
    args = parser.parse_args()
    if args.quick:
        args.units, args.train_steps, args.finetune_steps, args.rounds, args.repeats = 32, 4, 4, 2, 3
        args.sst2_epochs, args.validation_windows, args.calibration, args.seq_len = 1, 16, 16, 16
    machine = {**machine_summary(), "cpu_flags": sorted(f for f in hardware.cpu_flags() if f.startswith(("avx", "amx")))}
    print(json.dumps(machine), flush=True)
    task = char_lm_task(args)
    if task is None:
        return 1
    task.batch_size = 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = {"machine": machine, "arguments": vars(args), "char_lm_quality": quality_study(task, args)}
        results["char_lm_speed"] = speed_study(task, args)
        results["sst2"] = sst2_study(args)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1, default=str)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
