"""One worker of the multi-worker tests: trains a tiny char LM under fastnlp.distribute and writes what it saw.

Run by ``fastnlp.speedups.parallel.launch.launch_local_workers`` (``TF_CONFIG`` set) from tests/test_parallel.py.
"""

import argparse
import json
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import fastnlp  # noqa: E402

EXAMPLES, SEQ_LEN, VOCAB = 48, 10, 12
COUNTED = 53  # examples whose ids are counted: not a multiple of the global batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flavour", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--backup", help="backup directory (fault-tolerance test)")
    parser.add_argument("--kill-at", help="EPOCH:BATCH at which worker 1 SIGKILLs itself on the first attempt")
    args = parser.parse_args()

    strategy = fastnlp.init_distributed()  # before any model or tensor
    import numpy as np
    import tensorflow as tf

    from fastnlp.speedups.parallel.cluster import is_chief

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    attempt = int(os.environ.get("FASTNLP_ATTEMPT", "0"))
    out = args.out

    model = fastnlp.build_lstm(VOCAB, units=8, num_layers=1, embedding_dim=4, seq_len=SEQ_LEN, dropout=0.0, flavour=args.flavour)
    np.savez(f"{out}/initial-{index}.npz", *model.get_weights())  # each worker's own random weights
    model = fastnlp.distribute(model, backup_dir=args.backup)
    np.savez(f"{out}/start-{index}.npz", *model.get_weights())

    # Which examples this worker sees, by id, through the same distribution fit uses.
    ids = fastnlp.distribute_dataset(tf.data.Dataset.range(COUNTED), strategy, global_batch_size=args.global_batch, shuffle_buffer=COUNTED)
    epochs = [strategy.experimental_distribute_dataset(ids) for _ in range(2)]  # two epochs: two shuffled orders
    seen = [[int(i) for batch in epoch for part in strategy.experimental_local_results(batch) for i in part.numpy()] for epoch in epochs]
    with open(f"{out}/ids-{index}.json", "w") as file:
        json.dump(seen, file)

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, VOCAB, (EXAMPLES, SEQ_LEN)), rng.integers(0, VOCAB, (EXAMPLES, SEQ_LEN))
    train = fastnlp.distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)), strategy, global_batch_size=args.global_batch)

    kill_epoch, kill_batch = map(int, args.kill_at.split(":")) if args.kill_at else (-1, -1)
    base = fastnlp.core.flavour.callback_base(args.flavour)

    class Record(base):
        def _log(self, line):
            with open(f"{out}/epochs-{index}.log", "a") as file:
                file.write(f"{attempt} {line}\n")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self._log(f"begin {epoch}")

        def on_train_batch_end(self, batch, logs=None):
            if attempt == 0 and index == 1 and (self.epoch, batch) == (kill_epoch, kill_batch):
                os.kill(os.getpid(), signal.SIGKILL)

        def on_epoch_end(self, epoch, logs=None):
            self._log(f"end {epoch} {logs['loss']:.6f}")

    history = model.fit(train, epochs=args.epochs, callbacks=[Record()], verbose=0)
    np.savez(f"{out}/final-{index}.npz", *model.get_weights())
    with open(f"{out}/history-{index}.json", "w") as file:
        json.dump({"loss": history.history["loss"], "iterations": int(model.optimizer.iterations.numpy()), "chief": is_chief(strategy)}, file)


if __name__ == "__main__":
    main()
