"""Training throughput of one process vs two workers on 127.0.0.1 (``MultiWorkerMirroredStrategy``), same global batch.

    python benchmarks/multi_worker.py                 # 2 x LSTM(256) char LM on tinyshakespeare
    python benchmarks/multi_worker.py --quick         # small model, a few steps

Each configuration runs in fresh processes: one warm-up epoch, then one timed epoch of ``--steps``
steps. Two workers on one 2-core machine share its cores (and talk over loopback gRPC), so this is a
correctness-and-overhead check, not a speedup: multi-worker pays off with one machine (or GPU) per worker.
Writes docs/results/multi_worker.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import HERE, char_lm_parser, read_corpus  # noqa: E402

SEQ_LEN = 50


def parse_args(argv=None):
    parser = char_lm_parser(__doc__, units=256, layers=2)
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="timed steps (after a warm-up epoch of as many)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one process, write its result here
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "results", "multi_worker.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.layers, args.steps = 32, 1, 5
    return args


def worker(args) -> None:
    """One process of a configuration: train, time the second epoch, write samples/s to ``args.worker``."""
    import fastnlp

    strategy = fastnlp.init_distributed() if os.environ.get("TF_CONFIG") else None
    from fastnlp.speedups.parallel.cluster import is_chief

    text = read_corpus(args.corpus)[:1_000_000]
    data = fastnlp.char_lm_dataset(text, seq_len=SEQ_LEN, batch_size=64, validation_split=0.0)
    model = fastnlp.build_lstm(data.vocabulary.size, units=args.units, num_layers=args.layers, seq_len=SEQ_LEN)
    if strategy is not None:
        model = fastnlp.distribute(model)
    examples = data.train.unbatch().repeat()
    train = fastnlp.distribute_dataset(examples, strategy or "default", global_batch_size=args.global_batch, shuffle_buffer=10_000)

    class Timer(fastnlp.core.flavour.callback_base("keras")):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = Timer()
    model.fit(train, epochs=2, steps_per_epoch=args.steps, callbacks=[timer], verbose=0)
    if strategy is None or is_chief(strategy):
        replicas = strategy.num_replicas_in_sync if strategy else 1
        with open(args.worker, "w") as file:
            json.dump({"samples_per_s": args.steps * args.global_batch / timer.seconds, "replicas": replicas,
                       "step_ms": 1000 * timer.seconds / args.steps}, file)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if read_corpus(args.corpus) is None:
        return 1
    from fastnlp.core.hardware import cpu_model
    from fastnlp.speedups.parallel.launch import launch_local_workers

    base = [sys.executable, os.path.abspath(__file__), "--corpus", args.corpus, "--units", str(args.units),
            "--layers", str(args.layers), "--global-batch", str(args.global_batch), "--steps", str(args.steps)]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, workers in (("one process", 1), ("two workers on 127.0.0.1", 2)):
            out = os.path.join(scratch, f"{workers}.json")
            if workers == 1:
                subprocess.run([*base, "--worker", out], check=True)
            else:
                launch_local_workers([*base, "--worker", out], workers, timeout_s=1800)
            with open(out) as file:
                results[name] = json.load(file)
            print(f"{name:26s} {results[name]['samples_per_s']:8.1f} samples/s  {results[name]['step_ms']:7.1f} ms/step", flush=True)
    single = results["one process"]["samples_per_s"]
    two = results["two workers on 127.0.0.1"]["samples_per_s"]
    print(f"two workers / one process: {two / single:.2f}x")
    record = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores", "model": f"{args.layers} x LSTM({args.units}), Keras 3",
        "seq_len": SEQ_LEN, "global_batch": args.global_batch, "timed_steps": args.steps, "results": results,
        "two_workers_vs_one_process": two / single,
    }
    if not args.quick:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as file:
            json.dump(record, file, indent=2)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
