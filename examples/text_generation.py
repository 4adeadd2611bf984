"""The blog's text-generation LSTM, done right, with every training speedup chained, then text sampled from it.

    python examples/text_generation.py --quick                  # Python's bundled docs, about a minute
    python examples/text_generation.py --corpus ../shared/data/tinyshakespeare/input.txt --epochs 10

Each speedup says whether it could take effect on this machine (a warning when it cannot) and
``applied_speedups`` lists what was applied. Measure before keeping any: ``fastnlp.tune`` does.
"""

import argparse
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import fastnlp  # noqa: E402
from fastnlp.harness.corpora import default_corpus  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--corpus", help="UTF-8 text file (default: Python's bundled documentation)")
parser.add_argument("--quick", action="store_true", help="a small model and one short epoch")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--units", type=int, default=256)
parser.add_argument("--temperature", type=float, default=0.8)
parser.add_argument("--length", type=int, default=300, help="characters to generate")
parser.add_argument("--seed", default="The ")
args = parser.parse_args()

text = open(args.corpus, encoding="utf-8").read() if args.corpus else default_corpus()[0]
if args.quick:
    text, args.units, args.epochs, args.length = text[:60_000], 32, 1, 80
data = fastnlp.char_lm_dataset(text, seq_len=100, batch_size=64, validation_split=0.1)

speedups = [
    fastnlp.enable_cudnn,            # LSTMs on the fused cuDNN kernel (warns: no GPU here, generic kernel)
    fastnlp.enable_mixed_precision,  # "auto": float16 on Tensor Core GPUs, bfloat16 on AMX CPUs, else a warning
    fastnlp.distribute,              # "auto": all local GPUs, or the cluster from init_distributed()
    fastnlp.set_steps_per_execution, # several steps per call into the graph
]
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    model = fastnlp.build_lstm(data.vocabulary.size, units=args.units, num_layers=3, speedups=speedups)
for warning in said:
    if issubclass(warning.category, fastnlp.SpeedupWarning):
        print(f"note: {warning.message}")
print("applied:", fastnlp.applied_speedups(model))

history = model.fit(data.train, validation_data=data.validation, epochs=args.epochs, verbose=2)


def sample(model, seed: str, length: int, temperature: float, rng: np.random.Generator) -> str:
    """Characters drawn one at a time from the model's next-character distribution."""
    ids = list(data.vocabulary.encode(seed))
    for _ in range(length):
        context = np.array([ids[-100:]])
        probabilities = model.predict(context, verbose=0)[0, -1].astype("float64")
        logits = np.log(np.maximum(probabilities, 1e-12)) / temperature
        weights = np.exp(logits - logits.max())
        ids.append(int(rng.choice(len(weights), p=weights / weights.sum())))
    return data.vocabulary.decode(ids)


print(f"validation loss {history.history['val_loss'][-1]:.3f}; sampled at temperature {args.temperature}:")
print(sample(model, args.seed, args.length, args.temperature, np.random.default_rng(0)))
