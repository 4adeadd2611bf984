"""The tiny learnable task and the trained float model the compression tests share."""

import functools

import keras
import numpy as np

from fastnlp import build_lstm

VOCAB, SEQ = 12, 8


def pattern_data(n=64, seed=0):
    """A learnable next-character task: each sequence counts up from a random start, modulo VOCAB."""
    starts = np.random.default_rng(seed).integers(0, VOCAB, (n, 1))
    ids = (starts + np.arange(SEQ + 1)) % VOCAB
    return ids[:, :-1].astype("int32"), ids[:, 1:].astype("int32")


@functools.cache
def trained_float_model():
    """A Keras 3 char LM that has learned pattern_data (shared read-only by the tests below)."""
    keras.utils.set_random_seed(0)
    model = build_lstm(VOCAB, units=16, num_layers=2, embedding_dim=8, dropout=0.0, seq_len=SEQ, learning_rate=0.02)
    x, y = pattern_data()
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    return model



def masked_bidirectional_tagger(k, recurrent: str = "LSTM"):
    """A per-token tagger in flavour module ``k``: masked Embedding -> Bidirectional(``recurrent`` named ``rnn``)
    named ``both_ways`` -> TimeDistributed(Dense) named ``per_token``, compiled."""
    inputs = k.Input((SEQ,), dtype="int32")
    h = k.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    h = k.layers.Bidirectional(getattr(k.layers, recurrent)(8, return_sequences=True, name="rnn"), name="both_ways")(h)
    model = k.Model(inputs, k.layers.TimeDistributed(k.layers.Dense(VOCAB, activation="softmax"), name="per_token")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model
