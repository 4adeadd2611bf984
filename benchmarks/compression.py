"""Benchmark: what pruning, quantization-aware training and TFLite/LiteRT export give, measured.

For the tinyshakespeare character LM (3 x LSTM) and an SST-2 sentiment classifier (2 x LSTM, left-
padded, no mask, so its LSTMs export as the fused op), each trained briefly in float32 here:

1. TFLite size of float32, dynamic-range int8, float16 and full-int8 exports (target int8 >= 3.5x smaller);
2. batch-1 latency: Keras ``predict``, a direct call, a ``tf.function`` call, and LiteRT on each export
   (target >= 2x faster than the fastest Keras way);
3. quality of each export on held-out data (loss / accuracy) against Keras float32;
4. pruning to 50% and 80% (fine-tuned as long as a dense control): gzip size of the float32 export
   (target >= 3x smaller at 80%), quality, and training step time against the dense control;
5. quantization-aware training: quality after the same fine-tune, step time, and its int8 export.

Then the blog's 3 x LSTM(512) model goes through ``quantize`` in both Keras flavours, fine-tunes a few
steps and its int8 export runs in LiteRT, checked against Keras.

    python benchmarks/compression.py                  # ~30 minutes on 2 cores
    python benchmarks/compression.py --quick          # a smoke run, minutes
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from common import SHARED_DATA, char_lm_parser, read_corpus, read_sst2

from fastnlp import (
    LiteRTModel,
    build_lstm,
    prune,
    quantize,
    strip_pruning,
    to_tflite,
    weight_sparsity,
)
from fastnlp.core import flavour as flavours
from fastnlp.core.convert import convert
from fastnlp.core.measure import median_ms
from fastnlp.core.rebuild import rebuild
from fastnlp.harness.reports import machine_summary
from fastnlp.preprocess import CharVocabulary, text_classification_dataset

EXPORTS = (None, "dynamic", "float16", "int8")


def label(quantization: str | None) -> str:
    return quantization or "float32"


def timed_fit(model, x, y, steps: int, batch_size: int) -> float:
    """Train one batch (tracing), then ``steps`` batches; return seconds per step of the latter."""
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)
    rows = steps * batch_size
    order = np.random.default_rng(len(x)).permutation(len(x))[:rows] if rows <= len(x) else np.arange(rows) % len(x)
    start = time.perf_counter()
    model.fit(x[order], y[order], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / steps


class Task:
    """A trained float model, its held-out data, and how to score predictions."""

    def __init__(self, name, model, x, y, x_val, y_val, batch_size):
        self.name, self.model, self.batch_size = name, model, batch_size
        self.x, self.y, self.x_val, self.y_val = x, y, x_val, y_val

    def score(self, probabilities: np.ndarray) -> dict:
        picked = np.take_along_axis(probabilities, self.y_val[..., None], axis=-1)[..., 0]
        return {"loss": float(-np.log(np.clip(picked, 1e-7, 1)).mean()),
                "accuracy": float((probabilities.argmax(-1) == self.y_val).mean())}


def char_lm_task(args) -> Task | None:
    text = read_corpus(args.corpus)
    if text is None:
        return None
    vocabulary = CharVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    windows = len(ids) // (args.seq_len + 1)
    cut = ids[: windows * (args.seq_len + 1)].reshape(windows, args.seq_len + 1)
    held_out = max(args.validation_windows, 1)
    x, y = cut[:-held_out, :-1], cut[:-held_out, 1:]
    x_val, y_val = cut[-held_out:, :-1], cut[-held_out:, 1:]
    model = build_lstm(vocabulary.size, units=args.units, num_layers=args.layers, seq_len=args.seq_len, dropout=0.0)
    return Task("char_lm", model, x.astype("int32"), y.astype("int32"), x_val.astype("int32"), y_val.astype("int32"), 64)


def sst2_task(args) -> Task | None:
    import keras

    folder = os.path.join(SHARED_DATA, "sst2")
    if not os.path.isdir(folder):
        print(f"{folder} not found: skipping SST-2", file=sys.stderr)
        return None

    def left_padded(texts, labels, vocabulary):
        ids, _ = next(iter(text_classification_dataset(
            texts, labels, batch_size=len(texts), vocabulary=vocabulary, shuffle=False, bucket_boundaries=[]).dataset))
        ids = ids.numpy()[:, : args.sst2_length]  # longer sentences are cut (few are)
        ids = np.pad(ids, ((0, 0), (0, args.sst2_length - ids.shape[1])))
        lengths = (ids != 0).sum(1)
        return np.stack([np.roll(row, args.sst2_length - n) for row, n in zip(ids, lengths)]).astype("int32")

    texts, labels = read_sst2("train")
    dev_texts, dev_labels = read_sst2("dev")
    labels, dev_labels = np.array(labels, "int32"), np.array(dev_labels, "int32")
    vocabulary = text_classification_dataset(texts, labels, batch_size=32).vocabulary
    x, x_val = left_padded(texts, labels, vocabulary), left_padded(dev_texts, dev_labels, vocabulary)
    # no mask_zero: with left padding the last state has read every word, and the LSTMs export fused
    inputs = keras.Input((args.sst2_length,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(len(vocabulary), 64, name="embedding")(inputs)
    h = keras.layers.LSTM(args.sst2_units, return_sequences=True, name="lstm_1")(h)
    h = keras.layers.LSTM(args.sst2_units, name="lstm_2")(h)
    outputs = keras.layers.Activation("softmax", name="probabilities")(keras.layers.Dense(2, name="logits")(h))
    model = keras.Model(inputs, outputs, name="sst2_classifier")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return Task("sst2", model, x, labels, x_val, dev_labels, 64)


def export_study(task: Task, args) -> dict:
    model = task.model
    sample = task.x_val[:1]
    keras_scores = task.score(model.predict(task.x_val, batch_size=256, verbose=0))
    import tensorflow as tf

    compiled = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    rows = {"keras_float32": {**keras_scores,
                              "predict_ms": median_ms(lambda: model.predict(sample, verbose=0), args.repeats, warmup=1),
                              "call_ms": median_ms(lambda: model(sample, training=False), args.repeats, warmup=1),
                              "tf_function_call_ms": median_ms(lambda: compiled(sample), args.repeats, warmup=1)}}
    for quantization in EXPORTS:
        content = to_tflite(model, quantization, representative_data=task.x[: args.calibration], batch_size=1)
        lite = LiteRTModel(content)
        rows[label(quantization)] = {
            "bytes": len(content), "gzip_bytes": len(gzip.compress(content)), "ops": list(lite.ops),
            **task.score(lite.predict(task.x_val)),
            "latency_ms": median_ms(lambda: lite.predict(sample), args.repeats, warmup=1),
        }
    fastest_keras = min(rows["keras_float32"][key] for key in ("predict_ms", "call_ms", "tf_function_call_ms"))
    for quantization in EXPORTS:
        row = rows[label(quantization)]
        row["smaller_than_float32"] = rows["float32"]["bytes"] / row["bytes"]
        row["faster_than_keras"] = fastest_keras / row["latency_ms"]
        print(f"  {task.name} {label(quantization):8s} {row['bytes'] / 1e6:6.2f} MB ({row['smaller_than_float32']:.2f}x smaller) "
              f"latency {row['latency_ms']:.2f} ms ({row['faster_than_keras']:.1f}x Keras) loss {row['loss']:.4f} "
              f"accuracy {row['accuracy']:.4f}", flush=True)
    print(f"  {task.name} keras    predict {rows['keras_float32']['predict_ms']:.2f} ms, call "
          f"{rows['keras_float32']['call_ms']:.2f} ms, tf.function call {rows['keras_float32']['tf_function_call_ms']:.2f} ms, loss {keras_scores['loss']:.4f} accuracy {keras_scores['accuracy']:.4f}")
    return rows


def compression_study(task: Task, args) -> dict:
    """Dense control, pruned 50% / 80% and quantization-aware models, each fine-tuned the same steps."""
    base = convert(task.model, "tf_keras")  # the same weights in the flavour tfmot needs
    steps, batch = args.finetune_steps, task.batch_size
    results = {}
    candidates = {
        "dense": lambda: rebuild(base),
        "pruned_50": lambda: prune(base, 0.5, frequency=max(steps // 10, 1)),
        "pruned_80": lambda: prune(base, 0.8, frequency=max(steps // 10, 1)),
        "quantization_aware": lambda: quantize(base),
    }
    for name, make in candidates.items():
        model = make()
        seconds = timed_fit(model, task.x, task.y, steps, batch)
        final = strip_pruning(model) if name.startswith("pruned") else model
        content = to_tflite(final, None, batch_size=1)
        row = {"step_seconds": seconds, **task.score(final.predict(task.x_val, batch_size=256, verbose=0)),
               "float32_bytes": len(content), "float32_gzip_bytes": len(gzip.compress(content))}
        if name.startswith("pruned"):
            row["sparsity"] = weight_sparsity(final)
        if name in ("dense", "quantization_aware"):
            lite = LiteRTModel(to_tflite(final, "int8", representative_data=task.x[: args.calibration], batch_size=1))
            row["int8_export"] = task.score(lite.predict(task.x_val))
        results[name] = row
    dense = results["dense"]
    for name, row in results.items():
        row["step_time_vs_dense"] = row["step_seconds"] / dense["step_seconds"]
        row["gzip_smaller_than_dense"] = dense["float32_gzip_bytes"] / row["float32_gzip_bytes"]
        extra = f", int8 export loss {row['int8_export']['loss']:.4f} accuracy {row['int8_export']['accuracy']:.4f}" if "int8_export" in row else ""
        print(f"  {task.name} {name:18s} step {1000 * row['step_seconds']:.0f} ms ({row['step_time_vs_dense']:.2f}x dense), "
              f"gzip {row['float32_gzip_bytes'] / 1e6:.2f} MB ({row['gzip_smaller_than_dense']:.2f}x smaller), "
              f"loss {row['loss']:.4f} accuracy {row['accuracy']:.4f}{extra}", flush=True)
    return results


def blog_model_qat(vocabulary_size: int, args) -> dict:
    """The blog's 3 x LSTM(512) through quantize in both flavours: a few steps of fit, int8 export checked."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocabulary_size, (64, 100)).astype("int32")
    results = {}
    for flavour in flavours.FLAVOURS:
        model = build_lstm(vocabulary_size, seq_len=100, flavour=flavour)  # the blog's defaults: 3 x LSTM(512)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qat = quantize(model)
        start = time.perf_counter()
        history = qat.fit(x, x, batch_size=16, epochs=1, verbose=0)
        fit_seconds = time.perf_counter() - start
        lite = LiteRTModel(to_tflite(qat, "int8", representative_data=x[:16]))
        got, expected = lite.predict(x[:8]), qat.predict(x[:8], verbose=0)
        results[flavour] = {
            "quantize_returned": flavours.detect(qat), "fit_steps": 4, "fit_seconds": fit_seconds,
            "loss": float(history.history["loss"][0]), "ops": list(lite.ops),
            "max_abs_difference_int8_vs_keras": float(np.abs(got - expected).max()),
            "argmax_agreement": float((got.argmax(-1) == expected.argmax(-1)).mean()),
        }
        print(f"  blog 3 x LSTM(512), {flavour} input: quantize -> {results[flavour]['quantize_returned']}, 4 steps "
              f"in {fit_seconds:.1f} s, loss {results[flavour]['loss']:.3f}; int8 LiteRT vs Keras max |diff| "
              f"{results[flavour]['max_abs_difference_int8_vs_keras']:.4f}, argmax agreement "
              f"{results[flavour]['argmax_agreement']:.3f}", flush=True)
    return results


def main() -> int:
    parser = char_lm_parser(__doc__)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--train-steps", type=int, default=300, help="float32 training steps of the char LM")
    parser.add_argument("--finetune-steps", type=int, default=150)
    parser.add_argument("--validation-windows", type=int, default=256)
    parser.add_argument("--sst2-units", type=int, default=64)
    parser.add_argument("--sst2-length", type=int, default=48)
    parser.add_argument("--sst2-epochs", type=int, default=1)
    parser.add_argument("--calibration", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--skip-blog-model", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    parser.add_argument("--out", default="bench-output/compression.json")
    args = parser.parse_args()
    if args.quick:
        args.units, args.layers, args.train_steps, args.finetune_steps = 32, 1, 10, 10
        args.sst2_units, args.validation_windows, args.calibration, args.repeats = 16, 32, 16, 5
        args.skip_blog_model = True

    import keras

    keras.utils.set_random_seed(0)
    results = {"settings": vars(args), "machine": machine_summary()}
    char_lm = char_lm_task(args)
    if char_lm is not None:
        start = time.perf_counter()
        timed_fit(char_lm.model, char_lm.x, char_lm.y, args.train_steps, 64)
        print(f"char LM: {args.layers} x LSTM({args.units}), trained {args.train_steps} steps in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        results["char_lm"] = {"exports": export_study(char_lm, args), "compression": compression_study(char_lm, args)}
    sst2 = sst2_task(args)
    if sst2 is not None:
        start = time.perf_counter()
        sst2.model.fit(sst2.x, sst2.y, batch_size=64, epochs=args.sst2_epochs, verbose=0)
        print(f"SST-2: 2 x LSTM({args.sst2_units}), {args.sst2_epochs} epoch(s) in {time.perf_counter() - start:.0f} s", flush=True)
        results["sst2"] = {"exports": export_study(sst2, args), "compression": compression_study(sst2, args)}
    if not args.skip_blog_model and char_lm is not None:
        results["blog_model_qat"] = blog_model_qat(char_lm.model.output_shape[-1], args)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
