"""Benchmark: time to a good character LM on tinyshakespeare, and the hoisted LSTM step against the stock one.

Rows, each trained in a fresh process on the first 90% of the corpus and scored on the last 10%:

1. the blog recipe (3 x LSTM(512), 100-character stride-1 windows, one target each, batch 64), for
   the longest budget; it predicts one character per window, so it is scored on the character after
   each of 256 held-out 100-character contexts (an easier measure than the one below: every
   prediction sees 100 characters of context);
2. stock Keras at fastnlp's model size: ``build_lstm`` with the recipe's width, windows and batch, the
   stock LSTM layer and Keras's default constant Adam rate (1e-3), for the longest budget;
3. ``train_char_lm`` (the fastnlp recipe), once per budget (its schedule ends at the budget).

Rows 2 and 3 are scored with nanoGPT's ``shakespeare_char`` measure: the held-out text as
64-character windows, each from a zero state, mean cross-entropy over every position (nats).

Then the same two rows on a text the rules were not tuned on (``--unseen``, *Alice in Wonderland*), at
the shortest budget. Then the training step of one LSTM layer, hoisted against stock, alternating in one process
(forward and backward, gradients of the weights and the input), median of pair-by-pair ratios.

    python benchmarks/time_to_quality.py                     # ~18 minutes on 2 cores
    python benchmarks/time_to_quality.py --quick             # a smoke run, ~2 minutes
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import char_lm_parser, read_corpus

from fastnlp.core import hardware
from fastnlp.core.measure import in_fresh_process, time_to
from fastnlp.harness.reports import machine_summary

LADDER = (2.0, 1.88, 1.70, 1.60)
#: (batch, time steps, input width, units): a stacked layer whose input is as wide as it (the second
#: layer of 2 x LSTM(256)), a first layer over a 64-wide embedding, and the recipe's own layers.
STEP_SHAPES = ((64, 100, 256, 256), (64, 100, 64, 256), (32, 32, 64, 256), (32, 32, 64, 512))


def fastnlp_recipe(text: str, budget_s: float) -> dict:
    import warnings

    from fastnlp.recipes.training import train_char_lm

    warnings.simplefilter("ignore")
    result = train_char_lm(text, budget_s, evaluations=12)
    return {"recipe": vars(result.recipe), "curve": result.curve, "steps": result.steps, "training_s": result.training_s}


def stock_keras(text: str, budget_s: float) -> dict:
    """The recipe's model, windows and batch with the stock LSTM and Keras's default constant Adam rate."""
    from fastnlp import build_lstm, char_lm_dataset
    from fastnlp.core.measure import TrainingRun, timed_training_callback
    from fastnlp.preprocess import CharVocabulary
    from fastnlp.recipes.training import char_lm_loss, choose_recipe, split_text

    recipe = choose_recipe(budget_s)
    train_text, held_out = split_text(text)
    vocabulary = CharVocabulary.from_text(text)
    ids = vocabulary.encode(held_out)
    data = char_lm_dataset(train_text, recipe.seq_len, recipe.batch_size, 0.0, vocabulary=vocabulary)
    model = build_lstm(vocabulary.size, units=recipe.units, num_layers=recipe.num_layers, dropout=0.0,
                       embedding_dim=recipe.embedding_dim, learning_rate=1e-3)
    run = TrainingRun(recipe.batch_size)
    clock = timed_training_callback(model, lambda: char_lm_loss(model, ids), run, budget_s, min_gap_s=budget_s / 12, growth=1.0)
    model.fit(data.train, epochs=1_000_000, shuffle=False, callbacks=[clock], verbose=0)
    return {"recipe": {"units": recipe.units, "seq_len": recipe.seq_len, "batch_size": recipe.batch_size, "learning_rate": 1e-3},
            "curve": run.curve, "steps": len(run.batch_seconds), "training_s": run.training_seconds}


def blog_recipe(text: str, budget_s: float) -> dict:
    import numpy as np

    from fastnlp.core.measure import TrainingRun, timed_training_callback
    from fastnlp.harness.baseline import blog_windows, build_blog_model
    from fastnlp.preprocess import CharVocabulary
    from fastnlp.recipes.training import split_text

    train_text, held_out = split_text(text)
    vocabulary = CharVocabulary.from_text(text)
    held = vocabulary.encode(held_out)
    contexts = np.stack([held[k : k + 100] for k in range(0, 256 * 101, 101)])
    following = np.array([held[k + 100] for k in range(0, 256 * 101, 101)])
    inputs = (contexts.astype(np.float32) / np.float32(vocabulary.size))[..., None]
    x, y = blog_windows(vocabulary.encode(train_text), vocabulary.size, 100)
    model = build_blog_model(vocabulary.size, 100, 512, 3)

    def evaluate() -> float:
        probabilities = model.predict(inputs, batch_size=256, verbose=0)
        return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(following)), following], 1e-7, 1))))

    run = TrainingRun(64)
    clock = timed_training_callback(model, evaluate, run, budget_s, min_gap_s=budget_s / 12, growth=1.0)
    model.fit(x, y, batch_size=64, epochs=1000, callbacks=[clock], verbose=0)
    return {"recipe": {"units": 512, "num_layers": 3, "seq_len": 100, "batch_size": 64}, "curve": run.curve,
            "steps": len(run.batch_seconds), "training_s": run.training_seconds}


def lstm_step(shapes: tuple, rounds: int) -> list[dict]:
    """Seconds per training step of one LSTM layer, hoisted and stock, alternating."""
    import keras
    import tensorflow as tf

    from fastnlp.speedups.hoisted_lstm import hoisted_lstm_class

    rows = []
    for batch, steps, width, units in shapes:
        x = tf.random.normal((batch, steps, width))
        stock = keras.layers.LSTM(units, return_sequences=True)
        stock(x)
        hoisted = hoisted_lstm_class("keras").from_config(stock.get_config())
        hoisted(x)
        hoisted.set_weights(stock.get_weights())

        def training_step(layer):
            @tf.function
            def step(inputs):
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    outputs = layer(inputs, training=True)
                    loss = tf.reduce_sum(outputs * outputs)
                return tape.gradient(loss, [inputs, *[w.value for w in layer.trainable_weights]])

            return step

        steps_of = {"stock": training_step(stock), "hoisted": training_step(hoisted)}
        times = {name: [] for name in steps_of}
        for name, step in steps_of.items():
            step(x)  # trace
        for _ in range(rounds):
            for name, step in steps_of.items():
                start = time.perf_counter()
                [value.numpy() for value in step(x)]
                times[name].append(time.perf_counter() - start)
        ratios = [s / h for s, h in zip(times["stock"], times["hoisted"])]
        rows.append({
            "batch": batch, "time_steps": steps, "input_width": width, "units": units,
            "stock_samples_per_s": batch / statistics.median(times["stock"]),
            "hoisted_samples_per_s": batch / statistics.median(times["hoisted"]),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        })
        print(f"  LSTM step B{batch} T{steps} in {width} units {units}: hoisted/stock {rows[-1]['ratio_median']:.2f}x "
              f"(pairs {min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    return rows


def loss_at(curve: list, seconds: float) -> float | None:
    """The last evaluated loss at or before ``seconds`` of training (None past the curve's end)."""
    if curve[-1][0] < seconds * 0.97:
        return None
    return min(value for t, value in curve if t <= seconds * 1.03)


def render(record: dict) -> str:
    """Markdown tables of a record (what docs/benchmarks.md shows)."""
    budgets = record["budgets"]
    lines = ["| recipe | steps | " + " | ".join(f"s to {loss}" for loss in LADDER) + " | "
             + " | ".join(f"loss at {b:g} s" for b in budgets) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in LADDER) + " | " + " | ".join("---:" for _ in budgets) + " |"]

    def cell(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    for name, row in record["rows"].items():
        lines.append(f"| {name} | {row['steps']} | " + " | ".join(cell(row["time_to"][str(loss)], 1) for loss in LADDER)
                     + " | " + " | ".join(cell(row["loss_at"][str(b)], 3) for b in budgets) + " |")
    lines += ["", "| LSTM layer: batch, steps, input width, units | stock samples/s | hoisted samples/s | hoisted / stock, median (pairs) |",
              "| --- | ---: | ---: | --- |"]
    for row in record["lstm_step"]:
        lines.append(f"| {row['batch']}, {row['time_steps']}, {row['input_width']}, {row['units']} | {row['stock_samples_per_s']:.0f} | "
                     f"{row['hoisted_samples_per_s']:.0f} | **{row['ratio_median']:.2f}×** ({row['ratio_min']:.2f}–{row['ratio_max']:.2f}) |")
    return "\n".join(lines)


def main() -> int:
    parser = char_lm_parser(__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--from-json", metavar="FILE", help="measure nothing: print the tables of this record")
    parser.add_argument("--unseen", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "alice", "wonderland.txt"),
                        help="a corpus the recipe was not tuned on, scored at the shortest budget")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "results", "time_to_quality.json"))
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as file:
            print(render(json.load(file)))
        return 0
    text = read_corpus(args.corpus)
    if text is None:
        return 1
    budgets = (4.0, 8.0) if args.quick else (37.0, 75.0, 300.0)
    longest = budgets[-1]
    record = {"machine": machine_summary(), "cpu_flags_bf16": "avx512_bf16" in hardware.cpu_flags(), "budgets": budgets, "rows": {}}
    print(f"corpus {args.corpus}: {len(text)} characters; budgets {budgets}", flush=True)
    record["lstm_step"] = in_fresh_process(lstm_step, STEP_SHAPES[:1] if args.quick else STEP_SHAPES, 3 if args.quick else 15)
    for budget in budgets:
        row = in_fresh_process(fastnlp_recipe, text, budget)
        record["rows"][f"fastnlp recipe, {budget:g} s budget"] = row
        print(f"  fastnlp recipe, {budget:g} s: validation loss {row['curve'][-1][1]:.4f} ({row['steps']} steps)", flush=True)
    for name, function in (("stock Keras, fastnlp's model size", stock_keras), ("blog recipe", blog_recipe)):
        row = in_fresh_process(function, text, longest)
        record["rows"][name] = row
        print(f"  {name}: validation loss {row['curve'][-1][1]:.4f} after {row['training_s']:.0f} s ({row['steps']} steps)", flush=True)
    unseen = read_corpus(args.unseen)
    if unseen is not None:
        for name, function in (("fastnlp recipe", fastnlp_recipe), ("stock Keras, fastnlp's model size", stock_keras)):
            row = in_fresh_process(function, unseen, budgets[0])
            record["rows"][f"{name}, unseen text ({os.path.basename(args.unseen)})"] = row
            print(f"  {name} on {args.unseen}: validation loss {row['curve'][-1][1]:.4f} after {row['training_s']:.0f} s", flush=True)
    for row in record["rows"].values():
        row["time_to"] = {str(loss): time_to(row["curve"], loss) for loss in LADDER}
        row["loss_at"] = {str(b): loss_at(row["curve"], b) for b in budgets}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(record, out, indent=1)
    print(render(record))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
