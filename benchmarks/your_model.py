"""Benchmark: ``tune`` on the recurrent models users bring, against the stock model, samples/s in training.

Three Keras 3 families at realistic sizes, each over right-padded id sequences of a fixed length (a
padding mask, as ``Embedding(mask_zero=True)`` makes), as ``pad_sequences(maxlen=...)`` and
``TextVectorization(output_sequence_length=...)`` pad them:

- a masked LSTM(256) classifier (embedding 128, 64 steps, batch 64, 2 classes);
- a BiLSTM(128) per-token tagger, the NER shape (embedding 100, 50 steps, batch 32, 9 tags);
- a masked GRU(256) classifier (embedding 128, 64 steps, batch 64, 2 classes).

For each, ``tune`` picks among its default candidates at the model's own batch size (its table is
printed, each candidate against the input in alternating rounds); then the stock model and
``tune``'s choice train in turn, ``--rounds`` times, ``--steps`` steps each after a warm-up fit,
timed as ``tune`` times them (the median rate between batch ends, so a fit's own setup is not
counted), and the script reports each one's median samples/s and the median of the pair-by-pair
ratios. The machine, with its CPU's AVX/AMX flags, is recorded with the figures.

The sequences' lengths are uniform in [length / 4, length] by default, or, with ``--lengths sst2``, those
of SST-2's training sentences (in words, cut at the model's length; ../shared/data/sst2), where a batch's
longest sequence is usually shorter than the padded length.

    python benchmarks/your_model.py                    # ~20 minutes on 2 cores
    python benchmarks/your_model.py --lengths sst2     # real sentence lengths
    python benchmarks/your_model.py --width 0.5        # half the units (other sizes)
    python benchmarks/your_model.py --quick            # a smoke run
    python benchmarks/your_model.py --json out.json    # also write the figures
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from common import read_sst2

from fastnlp.core import hardware
from fastnlp.harness.reports import machine_summary

VOCAB = 20_000


def masked_classifier(keras, layer, seq_len: int, embedding: int) -> tuple:
    inputs = keras.Input((seq_len,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, embedding, mask_zero=True)(inputs)
    return inputs, keras.layers.Dense(2, activation="softmax")(layer(x))


def build(family: str, width: float = 1.0):
    """The compiled stock model of ``family``, its batch size, sequence length and label shape; ``width``
    scales its embedding and recurrent units (0.5: a BiLSTM(64) tagger, an LSTM(128) classifier)."""
    import keras

    def scaled(units: int) -> int:
        return max(1, round(units * width))

    if family == "bilstm_tagger":
        seq_len, batch = 50, 32
        inputs = keras.Input((seq_len,), dtype="int32")
        x = keras.layers.Embedding(VOCAB, scaled(100), mask_zero=True)(inputs)
        x = keras.layers.Bidirectional(keras.layers.LSTM(scaled(128), return_sequences=True))(x)
        outputs, labels = keras.layers.Dense(9, activation="softmax")(x), (seq_len,)
        classes = 9
    else:
        seq_len, batch, classes, labels = 64, 64, 2, ()
        layer = keras.layers.LSTM if family == "masked_lstm_classifier" else keras.layers.GRU
        inputs, outputs = masked_classifier(keras, layer(scaled(256)), seq_len, scaled(128))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model, batch, seq_len, labels, classes


def dataset(batch: int, seq_len: int, labels: tuple, classes: int, lengths_from: str = "uniform", seed: int = 0):
    """Right-padded random ids and random labels, repeated; lengths uniform in [seq_len / 4, seq_len], or
    (``lengths_from="sst2"``) drawn from SST-2's training sentences' word counts, cut at ``seq_len``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = batch * 16
    ids = rng.integers(1, VOCAB, (n, seq_len))
    if lengths_from == "sst2":
        words = np.array([len(sentence.split()) for sentence in read_sst2("train")[0]])
        lengths = np.minimum(rng.choice(words, n), seq_len)
    else:
        lengths = rng.integers(seq_len // 4, seq_len + 1, n)
    ids[np.arange(seq_len)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, classes, (n, *labels))
    return tf.data.Dataset.from_tensor_slices((ids.astype("int32"), y)).batch(batch, drop_remainder=True).repeat()


def samples_per_second(model, data, steps: int, batch: int) -> float:
    """Training samples/s over ``steps`` steps of ``fit``, timed as ``tune`` times them: the median rate
    between batch ends (the fit's setup, before the first execution ends, is not counted)."""
    from fastnlp.core.measure import step_clock

    clock = step_clock(model, batch)
    done = int(model.optimizer.iterations.numpy())
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
    return clock.samples_per_second(warmup_steps=done) or float("nan")


def measure(family: str, rounds: int, steps: int, tune_steps: int, lengths_from: str = "uniform", width: float = 1.0) -> dict:
    from fastnlp import tune

    model, batch, seq_len, labels, classes = build(family, width)
    data = dataset(batch, seq_len, labels, classes, lengths_from)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tune(model, data, steps=tune_steps, warmup_steps=3)
    print(f"\n{family}: tune chose {result.best!r}\n{result}")
    chosen = result.model
    for candidate in (model, chosen):  # warm-up: tracing happens here
        samples_per_second(candidate, data, steps=4, batch=batch)
    stock_rates, chosen_rates = [], []
    for _ in range(rounds):  # alternating, so drift in the machine's speed falls on both alike
        stock_rates.append(samples_per_second(model, data, steps, batch))
        chosen_rates.append(samples_per_second(chosen, data, steps, batch))
    ratios = [c / s for s, c in zip(stock_rates, chosen_rates, strict=True)]
    row = {
        "family": family, "lengths": lengths_from, "width": width, "chosen": result.best, "batch": batch,
        "stock_samples_per_s": statistics.median(stock_rates), "chosen_samples_per_s": statistics.median(chosen_rates),
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "tune_table": [(m.name, m.samples_per_s, m.vs_input) for m in result.measurements],
    }
    print(
        f"{family}: stock {row['stock_samples_per_s']:.0f}/s, {result.best} {row['chosen_samples_per_s']:.0f}/s, "
        f"ratio {row['ratio_median']:.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--tune-steps", type=int, default=30)
    parser.add_argument("--families", nargs="+", default=["masked_lstm_classifier", "bilstm_tagger", "gru_classifier"])
    parser.add_argument("--lengths", choices=["uniform", "sst2"], default="uniform", help="where the sequences' lengths come from")
    parser.add_argument("--width", type=float, default=1.0, help="scale the embedding and recurrent units by this")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 24 steps, tune on 6 steps")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.tune_steps = 2, 24, 6
    machine = {**machine_summary(), "cpu_flags": sorted(f for f in hardware.cpu_flags() if f.startswith(("avx", "amx")))}
    print(json.dumps(machine))
    rows = [measure(family, args.rounds, args.steps, args.tune_steps, args.lengths, args.width) for family in args.families]
    print("\n| model | batch | stock samples/s | tune's choice | its samples/s | ratio (median of pairs, min-max) |")
    print("| --- | ---: | ---: | --- | ---: | --- |")
    for row in rows:
        print(
            f"| {row['family']} | {row['batch']} | {row['stock_samples_per_s']:.0f} | {row['chosen']} | "
            f"{row['chosen_samples_per_s']:.0f} | **{row['ratio_median']:.2f}×** ({row['ratio_min']:.2f}–{row['ratio_max']:.2f}) |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"machine": machine, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
