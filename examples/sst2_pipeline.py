"""SST-2 sentiment, end to end: bucketed batches -> training -> pruning -> int8 export -> LiteRT inference.

    python examples/sst2_pipeline.py --quick      # 2,000 sentences, a small model: about a minute on 2 cores
    python examples/sst2_pipeline.py              # all 67,349 training sentences

Reads SST-2 from ../shared/data/sst2 beside the repository (or --data DIR: train.tsv and dev.tsv,
"sentence<TAB>label" per line).
"""

import argparse
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from fastnlp import (  # noqa: E402
    LiteRTModel,
    prune,
    strip_pruning,
    text_classification_dataset,
    to_tflite,
    weight_sparsity,
)

HERE = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser()
parser.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "sst2"))
parser.add_argument("--quick", action="store_true")
parser.add_argument("--max-length", type=int, default=48, help="tokens per sentence (longer ones are cut)")
args = parser.parse_args()
if not os.path.exists(os.path.join(args.data, "train.tsv")):
    sys.exit(f"SST-2 not found in {args.data}: pass --data DIR (train.tsv and dev.tsv)")


def read(split):
    with open(os.path.join(args.data, f"{split}.tsv"), encoding="utf-8") as tsv:
        rows = [line.rstrip("\n").rsplit("\t", 1) for line in tsv if line.strip()]
    return [text for text, _ in rows], np.array([int(label) for _, label in rows], "int32")


texts, labels = read("train")
dev_texts, dev_labels = read("dev")
if args.quick:
    texts, labels = texts[:2000], labels[:2000]
units, epochs = (32, 1) if args.quick else (64, 2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def left_aligned(ids, label):
    """Move each row's padding to the front ([a b c 0 0] -> [0 0 a b c]): an unmasked LSTM then ends on
    the last word, and an unmasked LSTM is what exports to the fused int8 TFLite op."""
    length = tf.shape(ids)[1]
    words = tf.reduce_sum(tf.cast(ids != 0, tf.int32), axis=1, keepdims=True)
    return tf.gather(ids, (tf.range(length)[None, :] + words) % length, batch_dims=1), label


# 1. Bucketed batches: sentences of similar length together, so little padding is computed.
bucketed = text_classification_dataset(texts, labels, batch_size=32, max_length=args.max_length)
vocabulary = bucketed.vocabulary
print(f"bucketing: {bucketed.padding}")
train = bucketed.dataset.map(left_aligned)
(dev_ids, _), = text_classification_dataset(
    dev_texts, dev_labels, batch_size=len(dev_texts), vocabulary=vocabulary, max_length=args.max_length,
    shuffle=False, bucket_boundaries=[]).dataset.map(left_aligned).take(1)
dev_ids = np.pad(dev_ids.numpy(), ((0, 0), (args.max_length - dev_ids.shape[1], 0)))  # one fixed length

# 2. A plain classifier (no mask: see left_aligned), any sentence length while training.
def classifier(length=None):
    return keras.Sequential([
        keras.Input((length,), dtype="int32"),
        keras.layers.Embedding(len(vocabulary), 64),
        keras.layers.LSTM(units, return_sequences=True),
        keras.layers.LSTM(units),
        keras.layers.Dense(2, activation="softmax"),
    ])


model = classifier()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs=epochs, verbose=2)


def accuracy(probabilities):
    return float((probabilities.argmax(-1) == dev_labels).mean())


# 3. Prune half of every weight matrix while fine-tuning, then strip the wrappers (back to Keras 3).
steps = sum(1 for _ in train)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # prune says it returns tf_keras (tfmot's only flavour)
    pruned = prune(model, 0.5, frequency=max(steps // 4, 1))
pruned.fit(train, epochs=1, verbose=2)
plain = strip_pruning(pruned)
print("sparsity:", {name: round(value, 2) for name, value in weight_sparsity(plain).items()})

# 4. int8 export at a fixed length, run with LiteRT.
fixed = classifier(args.max_length)  # the exporter needs one fixed length
fixed.set_weights(plain.get_weights())
calibration = dev_ids[np.random.default_rng(0).permutation(len(dev_ids))[:128]]
exported = to_tflite(fixed, "int8", representative_data=calibration)
lite = LiteRTModel(exported)
keras_accuracy = accuracy(fixed.predict(dev_ids, batch_size=256, verbose=0))
lite_accuracy = accuracy(lite.predict(dev_ids))
print(f"dev accuracy: Keras {keras_accuracy:.3f}, LiteRT int8 {lite_accuracy:.3f}; "
      f"{len(exported) / 1024:.0f} KiB, fused ops: {'UNIDIRECTIONAL_SEQUENCE_LSTM' in lite.ops}")
