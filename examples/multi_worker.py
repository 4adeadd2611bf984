"""Multi-worker training of a Keras 3 character LM: the same script on one machine or on a cluster.

Try it on this machine, two workers on 127.0.0.1 (the launcher sets each worker's TF_CONFIG):

    python -m fastnlp launch --workers 2 -- python examples/multi_worker.py --quick

On a cluster, run the same script on every node with TF_CONFIG set, or inside a Slurm job step
(``srun python examples/multi_worker.py``): ``init_distributed`` reads either. See docs/parallel.md.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import fastnlp  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--corpus", help="UTF-8 text file (default: Python's bundled documentation)")
parser.add_argument("--quick", action="store_true", help="a small model and a few steps")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--per-replica-batch", type=int, default=64)
parser.add_argument("--backup-dir", default=os.path.join(tempfile.gettempdir(), "fastnlp-multi-worker-backup"))
args = parser.parse_args()

strategy = fastnlp.init_distributed()  # first, before any model or tensor exists

from fastnlp.harness.corpora import default_corpus  # noqa: E402
from fastnlp.speedups.parallel.cluster import is_chief  # noqa: E402

text = open(args.corpus, encoding="utf-8").read() if args.corpus else default_corpus()[0]
text = text[: 60_000 if args.quick else 2_000_000]
data = fastnlp.char_lm_dataset(text, seq_len=50, batch_size=64, validation_split=0.1)  # seeded: alike on all workers

units, layers = (32, 1) if args.quick else (256, 3)
model = fastnlp.build_lstm(data.vocabulary.size, units=units, num_layers=layers, seq_len=50)  # Keras 3
model = fastnlp.distribute(model, backup_dir=args.backup_dir)  # the chief's weights, resumable fit
train = fastnlp.distribute_dataset(
    data.train.unbatch(), strategy, per_replica_batch_size=args.per_replica_batch, shuffle_buffer=10_000
)

start = time.perf_counter()
history = model.fit(train, epochs=1 if args.quick else args.epochs, verbose=2 if is_chief(strategy) else 0)
seconds = time.perf_counter() - start
if is_chief(strategy):
    print(f"{strategy.num_replicas_in_sync} replica(s): final loss {history.history['loss'][-1]:.4f}, {seconds:.1f} s")
    print("applied:", fastnlp.applied_speedups(model))
