"""Benchmark: why a Keras LSTM trains at a fraction of this CPU's matmul FLOP/s, and what moves it.

An LSTM step multiplies a (batch x (input + units)) matrix by a ((input + units) x 4 units) one, one
time step after another: the matrix products are small, and the gates' element-wise work between
them is memory-bound. This script measures, in one process:

1. the reference: a 2048 x 2048 float32 matmul;
2. a matmul of the LSTM's own step shape, for each batch size (the most one LSTM step could reach);
3. training FLOP/s of the char-LM stack (3 x LSTM(units), ``--window`` characters) at each batch size,
   as a fraction of both.

    python benchmarks/lstm_flops.py                  # ~6 minutes on 2 cores
    python benchmarks/lstm_flops.py --units 64 --batch-sizes 32 64 --steps 5   # a smoke run
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import char_lm_parser, read_corpus

from fastnlp import build_lstm
from fastnlp.core.measure import lstm_training_flops, matmul_flops, step_matmul_flops
from fastnlp.harness.reports import machine_summary
from fastnlp.preprocess import CharVocabulary


def training_samples_per_s(model, x, y, batch: int, steps: int) -> float:
    model.fit(x[: batch * 2], y[: batch * 2], batch_size=batch, epochs=1, verbose=0)  # trace and warm up
    rows = x[: batch * steps], y[: batch * steps]
    start = time.perf_counter()
    model.fit(*rows, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return batch * steps / (time.perf_counter() - start)


def main() -> int:
    parser = char_lm_parser(__doc__)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[16, 64, 256, 1024])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per batch size")
    parser.add_argument("--out", default="bench-output/lstm_flops.json")
    args = parser.parse_args()
    text = read_corpus(args.corpus)
    if text is None:
        return 2
    vocabulary = CharVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    rows = len(ids) // (args.window + 1)
    windows = ids[: rows * (args.window + 1)].reshape(rows, args.window + 1)
    x, y = windows[:, :-1].astype("int32"), windows[:, 1:].astype("int32")

    reference = matmul_flops(dtype="float32")
    print(f"2048 x 2048 float32 matmul: {reference / 1e9:.1f} GFLOP/s", flush=True)
    per_sample = lstm_training_flops(args.window, 64, args.units, args.layers, vocabulary.size, args.window)
    results = []
    for batch in args.batch_sizes:
        step = step_matmul_flops(batch, 2 * args.units, args.units)
        model = build_lstm(vocabulary.size, units=args.units, num_layers=args.layers)
        samples = training_samples_per_s(model, x, y, batch, args.steps)
        flops = samples * per_sample
        row = {"batch_size": batch, "step_matmul_flops": step, "samples_per_s": samples, "training_flops": flops,
               "fraction_of_2048_matmul": flops / reference, "fraction_of_step_matmul": flops / step,
               "step_matmul_fraction_of_2048": step / reference}
        results.append(row)
        print(f"batch {batch:5d}: step-shape matmul {step / 1e9:6.1f} GFLOP/s ({step / reference:.0%} of 2048^2); "
              f"LSTM training {samples:8.0f} samples/s = {flops / 1e9:5.1f} GFLOP/s = {flops / reference:.0%} of "
              f"2048^2, {flops / step:.0%} of the step-shape matmul", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"settings": vars(args), "matmul_2048_flops": reference, "per_sample_flops": per_sample,
                   "batches": results, "machine": machine_summary()}, out, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
