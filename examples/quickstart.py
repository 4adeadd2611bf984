"""Quickstart: a character LM on any text, with fastnlp's pipeline, mixed precision and a safe checkpoint.

    python examples/quickstart.py                 # Python's bundled docs, about a minute on 2 cores
    python examples/quickstart.py --corpus FILE --units 512 --epochs 20
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fastnlp import (
                   applied_speedups,
                   best_checkpoint,
                   build_lstm,
                   char_lm_dataset,
                   load_checkpoint,
)
from fastnlp.harness.corpora import default_corpus

parser = argparse.ArgumentParser()
parser.add_argument("--corpus", help="UTF-8 text file (default: Python's bundled documentation)")
parser.add_argument("--units", type=int, default=64)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--max-chars", type=int, default=100_000)
args = parser.parse_args()

text = open(args.corpus, encoding="utf-8").read() if args.corpus else default_corpus()[0]
data = char_lm_dataset(text[: args.max_chars], seq_len=100, batch_size=64, validation_split=0.1)

# "auto" mixed precision: float16 on a Tensor Core GPU, bfloat16 on TPU or AMX CPUs, else a warning.
model = build_lstm(data.vocabulary.size, units=args.units, num_layers=3, seq_len=100,
                   speedups=["enable_mixed_precision"])
print("applied:", applied_speedups(model))

best = os.path.join(tempfile.mkdtemp(), "best.keras")
model.fit(data.train, validation_data=data.validation, epochs=args.epochs, shuffle=False,
          callbacks=[best_checkpoint(model, best)])
restored = load_checkpoint(best)
print("restored best model, validation loss", restored.evaluate(data.validation, verbose=0))
