"""Benchmark: fastnlp's text cleaning and bucketed classification pipeline against the blog's way.

1. Cleaning throughput (MB/s of UTF-8 input, best of --repeats) of the blog's ``clean_text`` and of
   fastnlp's ``clean_text`` with each engine, on tinyshakespeare as one document and a document per
   line, and on SST-2's training sentences as one document each. Every output is checked identical
   to the blog's.
2. An SST-2 LSTM classifier (``build_lstm(task="classify")``) trained on the bucketed pipeline and on
   the same ids padded to the longest sentence (the blog's ``pad_sequences`` way), from the same
   initial weights, for each seed: training samples/s and dev accuracy.

Uses NLTK's English stopwords (an installed corpus, else the copy fastnlp ships) or ``--stopwords FILE``.

    python benchmarks/text_preprocessing.py                 # ~10 minutes on 2 cores
    python benchmarks/text_preprocessing.py --epochs 1 --seeds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from common import SHARED_DATA, read_sst2

from fastnlp import build_lstm, clean_text, load_stopwords, text_classification_dataset
from fastnlp.harness.baseline import blog_clean_text
from fastnlp.harness.reports import machine_summary


def best_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def cleaning(name: str, documents: list[str], stopwords: frozenset[str], repeats: int) -> dict:
    megabytes = sum(len(doc.encode("utf-8")) for doc in documents) / 1e6
    expected = [blog_clean_text(doc, stopwords) for doc in documents]
    row = {"documents": len(documents), "megabytes": megabytes}
    candidates = {
        "blog": lambda: [blog_clean_text(doc, stopwords) for doc in documents],
        "fastnlp": lambda: clean_text(documents, stopwords=stopwords, progress=False),  # engine="auto": Python
        "fastnlp_tensorflow": lambda: clean_text(documents, stopwords=stopwords, engine="tensorflow", progress=False),
    }
    for label, function in candidates.items():
        output = function()  # warm-up: tables built, graphs traced
        if output != expected:
            raise AssertionError(f"{label} output differs from the blog's on {name}")
        row[f"{label}_mb_per_s"] = megabytes / best_seconds(function, repeats)
    for label in ("fastnlp", "fastnlp_tensorflow"):
        row[f"{label}_speedup"] = row[f"{label}_mb_per_s"] / row["blog_mb_per_s"]
    print(f"{name}: {len(documents)} documents, {megabytes:.2f} MB, identical output; MB/s "
          + ", ".join(f"{label} {row[f'{label}_mb_per_s']:.1f}" for label in candidates), flush=True)
    return row


def padded_to_longest(texts: list[str], labels: list[int], vocabulary: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The same ids as the bucketed pipeline, every text padded to the longest (the blog's pad_sequences way)."""
    everything = text_classification_dataset(
        texts, labels, batch_size=len(texts), vocabulary=vocabulary, shuffle=False, bucket_boundaries=[]
    )
    ids, targets = next(iter(everything.dataset))
    return ids.numpy(), targets.numpy()


def classifier(args: argparse.Namespace) -> dict:
    import keras

    train_texts, train_labels = read_sst2("train")
    dev_texts, dev_labels = read_sst2("dev")
    bucketed = text_classification_dataset(train_texts, train_labels, batch_size=args.batch_size, seed=0)
    vocabulary = bucketed.vocabulary
    dev = text_classification_dataset(dev_texts, dev_labels, batch_size=256, vocabulary=vocabulary, shuffle=False)
    padded, padded_labels = padded_to_longest(train_texts, train_labels, vocabulary)
    dev_padded, dev_padded_labels = padded_to_longest(dev_texts, dev_labels, vocabulary)
    print(f"SST-2: {len(train_texts)} train / {len(dev_texts)} dev sentences, vocabulary {len(vocabulary)}, "
          f"longest {padded.shape[1]} tokens; {bucketed.padding}", flush=True)

    class EpochSeconds(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    runs = []
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        initial = build_lstm(len(vocabulary), task="classify", units=args.units, num_layers=args.layers)
        run = {"seed": seed}
        for name in ("pad_to_longest", "bucketed"):
            model = keras.models.clone_model(initial)
            model.set_weights(initial.get_weights())
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            keras.utils.set_random_seed(seed)
            timer = EpochSeconds()
            if name == "bucketed":
                model.fit(bucketed.dataset, epochs=args.epochs, callbacks=[timer], verbose=0)
                accuracy = model.evaluate(dev.dataset, verbose=0)[1]
            else:
                model.fit(padded, padded_labels, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                          callbacks=[timer], verbose=0)
                accuracy = model.evaluate(dev_padded, dev_padded_labels, batch_size=256, verbose=0)[1]
            later = timer.seconds[1:] or timer.seconds  # the first epoch also traces the graph
            run[name] = {
                "epoch_seconds": timer.seconds,
                "samples_per_s": len(train_texts) * len(timer.seconds) / sum(timer.seconds),
                "samples_per_s_after_first_epoch": len(train_texts) * len(later) / sum(later),
                "dev_accuracy": accuracy,
            }
            print(f"  seed {seed} {name}: epochs {', '.join(f'{t:.1f}' for t in timer.seconds)} s, "
                  f"{run[name]['samples_per_s']:.0f} samples/s, dev accuracy {accuracy:.4f}", flush=True)
        run["speedup"] = run["bucketed"]["samples_per_s"] / run["pad_to_longest"]["samples_per_s"]
        runs.append(run)
    return {"units": args.units, "layers": args.layers, "epochs": args.epochs, "batch_size": args.batch_size,
            "padding": vars(bucketed.padding), "padding_saved_fraction": bucketed.padding.saved_fraction,
            "longest": int(padded.shape[1]), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stopwords", help="a file of stopwords, one a line (default: NLTK's English list)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench-output/text_preprocessing.json")
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(SHARED_DATA, "sst2")):
        print(f"{SHARED_DATA} has no sst2/ and tinyshakespeare/ (they exist only in the fastnlp workplace)", file=sys.stderr)
        return 2
    if args.stopwords:
        with open(args.stopwords, encoding="utf-8") as lines:
            stopwords = frozenset(word.strip() for word in lines if word.strip())
    else:
        stopwords = load_stopwords("english")

    with open(os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt"), encoding="utf-8") as corpus:
        shakespeare = corpus.read()
    sentences, _ = read_sst2("train")
    results = {
        "stopwords": len(stopwords),
        "cleaning": {
            "tinyshakespeare (one document)": cleaning("tinyshakespeare", [shakespeare], stopwords, args.repeats),
            "tinyshakespeare (a document per line)": cleaning("tinyshakespeare lines", shakespeare.splitlines(), stopwords, args.repeats),
            "sst2 train (a document per sentence)": cleaning("sst2", sentences, stopwords, args.repeats),
        },
        "classifier": classifier(args),
        "machine": machine_summary(),
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    runs = results["classifier"]["runs"]
    for name in ("pad_to_longest", "bucketed"):
        samples = np.mean([run[name]["samples_per_s"] for run in runs])
        accuracy = np.mean([run[name]["dev_accuracy"] for run in runs])
        print(f"{name}: mean {samples:.0f} training samples/s, dev accuracy {accuracy:.4f}")
    print(f"bucketed / pad-to-longest training throughput: {np.mean([run['speedup'] for run in runs]):.2f}x (mean of seeds)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
