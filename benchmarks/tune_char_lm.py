"""Benchmark: what ``fastnlp.tune`` measures and picks for the character LM on this machine.

The fastnlp char-LM recipe (3 x LSTM(256), 10-character windows, batch 64, tinyshakespeare): every
default candidate speedup alone, larger batch sizes (``--batch-sizes``), then the combination of
those that beat the input, timed after warm-up. Prints the table and writes it as JSON.

    python benchmarks/tune_char_lm.py                   # ~3 minutes on 2 cores
    python benchmarks/tune_char_lm.py --units 64 --steps 10   # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import char_lm_parser, read_corpus

from fastnlp import build_lstm, char_lm_dataset, tune
from fastnlp.harness.reports import machine_summary


def main() -> int:
    parser = char_lm_parser(__doc__)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[128, 256, 512],
                        help="other batch sizes for tune to try (samples/s compares them)")
    parser.add_argument("--memory-budget-mb", type=float, default=None)
    parser.add_argument("--out", default="bench-output/tune_char_lm.json")
    args = parser.parse_args()
    text = read_corpus(args.corpus)
    if text is None:
        return 2
    data = char_lm_dataset(text, args.window, args.batch_size, 0.0)
    model = build_lstm(data.vocabulary.size, units=args.units, num_layers=args.layers)
    result = tune(model, data.train, steps=args.steps, warmup_steps=5, time_budget_s=900,
                  batch_sizes=args.batch_sizes, memory_budget_mb=args.memory_budget_mb)
    print(result)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"settings": vars(args), "best": result.best, "batch_size": result.batch_size,
                   "measurements": [dataclasses.asdict(m) for m in result.measurements],
                   "machine": machine_summary()}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
