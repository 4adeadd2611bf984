"""The model zoo: small instances of the text models Keras users write, for the shared contract tests.

Each family re-creates, in our own code and at a tiny size, a shape that Keras's own NLP examples
teach (the guide's §1 lists them), or one that users bring beside them: a custom layer, a subclassed
model, a loss with its own ``__init__``. :func:`build` returns a compiled model with a batch of data;
``FAMILIES`` lists each family with the flavours that can express it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

VOCAB, LENGTH, BATCH, UNITS = 20, 8, 8, 6
#: families whose saved file Keras cannot load (a test checks each is so)
CANNOT_LOAD = frozenset({"custom_layer_without_config", "subclassed_tagger"})


@dataclass(frozen=True)
class ZooModel:
    """A compiled zoo model and a batch to call and fit it on (``x`` and ``y`` may be lists or dicts)."""

    family: str
    model: Any
    x: Any
    y: Any

    @property
    def loads(self) -> bool:
        """Whether Keras itself can load the saved model (not where its class or a layer cannot be re-created)."""
        return self.family not in CANNOT_LOAD


def _ids(rng: np.random.Generator, masked: bool = False) -> np.ndarray:
    ids = rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32")
    if masked:  # right-padded with zeros, as padded text is
        for row, length in enumerate(rng.integers(3, LENGTH + 1, BATCH)):
            ids[row, length:] = 0
    return ids


def _texts(rng: np.random.Generator) -> list[str]:
    words = ["the", "film", "was", "great", "awful", "a", "plot", "Actors,", "SHINE!", "bored"]
    return [" ".join(rng.choice(words, rng.integers(2, LENGTH))) for _ in range(BATCH)]


def _string_batch(rng: np.random.Generator) -> Any:
    """A (batch, 1) string tensor: what an end-to-end model on raw text is called with."""
    import tensorflow as tf

    return tf.constant([[text] for text in _texts(rng)])


def _classes(rng: np.random.Generator, n: int = 2) -> np.ndarray:
    return rng.integers(0, n, (BATCH,)).astype("int32")


def _compile(model: Any, k: ModuleType, loss: Any = "sparse_categorical_crossentropy", **kwargs: Any) -> Any:
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss=loss, **kwargs)
    return model


def char_lstm(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """The character generator: ids -> Embedding -> LSTM(return_sequences) -> per-step softmax."""
    inputs = k.Input((None,), dtype="int32", name="chars")
    x = k.layers.Embedding(VOCAB, 8)(inputs)
    x = k.layers.LSTM(UNITS, return_sequences=True)(x)
    model = _compile(k.Model(inputs, k.layers.Dense(VOCAB, activation="softmax")(x)), k)
    return ZooModel("char_lstm", model, _ids(rng), _ids(rng))


def _masked_lstms(k: ModuleType, rng: np.random.Generator, family: str, layers: int) -> ZooModel:
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    for i in range(layers):
        x = k.layers.LSTM(UNITS, return_sequences=i < layers - 1)(x)
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel(family, model, _ids(rng, masked=True), _classes(rng))


def masked_lstm_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """An LSTM classifier over ``Embedding(mask_zero=True)``: padded text, masked."""
    return _masked_lstms(k, rng, "masked_lstm_classifier", layers=1)


def masked_stack(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """Two stacked LSTMs over ``Embedding(mask_zero=True)``: the mask must pass the first LSTM to reach the second."""
    return _masked_lstms(k, rng, "masked_stack", layers=2)


def stacked_bilstm_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """Two ``Bidirectional(LSTM)`` over a masked embedding, as Keras's bidirectional classifier."""
    inputs = k.Input((None,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    x = k.layers.Bidirectional(k.layers.LSTM(UNITS, return_sequences=True))(x)
    x = k.layers.Bidirectional(k.layers.LSTM(UNITS))(x)
    model = _compile(k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(x)), k, loss="binary_crossentropy")
    return ZooModel("stacked_bilstm_classifier", model, _ids(rng, masked=True), _classes(rng).astype("float32"))


def bilstm_tagger(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """The NER shape: a masked ``Bidirectional(LSTM, return_sequences=True)`` into a per-token Dense."""
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    x = k.layers.Bidirectional(k.layers.LSTM(UNITS, return_sequences=True), merge_mode="sum")(x)
    outputs = k.layers.TimeDistributed(k.layers.Dense(5, activation="softmax"))(x)
    model = _compile(k.Model(inputs, outputs), k)
    return ZooModel("bilstm_tagger", model, _ids(rng, masked=True), rng.integers(0, 5, (BATCH, LENGTH)))


def gru_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """A ``GRU`` classifier, as often written as the LSTM one."""
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8)(inputs)
    x = k.layers.GRU(UNITS, return_sequences=True)(x)
    x = k.layers.GRU(UNITS)(x)
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel("gru_classifier", model, _ids(rng), _classes(rng))


def bigru_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """A ``Bidirectional(GRU)`` over a masked embedding (``reset_after=False``, the other GRU)."""
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    x = k.layers.Bidirectional(k.layers.GRU(UNITS, reset_after=False))(x)
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel("bigru_classifier", model, _ids(rng, masked=True), _classes(rng))


def seq2seq_trainer(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """The encoder-decoder: an encoder LSTM's states are the decoder LSTM's initial state (two inputs)."""
    encoder_inputs = k.Input((None,), dtype="int32", name="source")
    decoder_inputs = k.Input((None,), dtype="int32", name="target_in")
    _, h, c = k.layers.LSTM(UNITS, return_state=True, name="encoder")(k.layers.Embedding(VOCAB, 8)(encoder_inputs))
    x = k.layers.Embedding(VOCAB, 8)(decoder_inputs)
    x = k.layers.LSTM(UNITS, return_sequences=True, name="decoder")(x, initial_state=[h, c])
    outputs = k.layers.Dense(VOCAB, activation="softmax")(x)
    model = _compile(k.Model([encoder_inputs, decoder_inputs], outputs), k)
    return ZooModel("seq2seq_trainer", model, [_ids(rng), _ids(rng)], _ids(rng))


def seq2seq_inference_decoder(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """The separate inference decoder: takes a token and the states, returns probabilities and the new states."""
    token = k.Input((1,), dtype="int32", name="token")
    h_in, c_in = k.Input((UNITS,), name="h"), k.Input((UNITS,), name="c")
    x = k.layers.Embedding(VOCAB, 8)(token)
    x, h, c = k.layers.LSTM(UNITS, return_sequences=True, return_state=True)(x, initial_state=[h_in, c_in])
    probabilities = k.layers.Dense(VOCAB, activation="softmax", name="next")(x)
    model = k.Model([token, h_in, c_in], [probabilities, h, c])
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss=["sparse_categorical_crossentropy", "mse", "mse"])
    states = rng.normal(size=(BATCH, UNITS)).astype("float32")
    x_data = [_ids(rng)[:, :1], states, states]
    return ZooModel("seq2seq_inference_decoder", model, x_data, [_ids(rng)[:, :1], states, states])


def repeat_vector_seq2seq(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """The addition example: LSTM -> RepeatVector -> LSTM -> TimeDistributed(Dense)."""
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.LSTM(UNITS)(k.layers.Embedding(VOCAB, 8)(inputs))
    x = k.layers.RepeatVector(4)(x)
    x = k.layers.LSTM(UNITS, return_sequences=True)(x)
    outputs = k.layers.TimeDistributed(k.layers.Dense(VOCAB, activation="softmax"))(x)
    model = _compile(k.Model(inputs, outputs), k)
    return ZooModel("repeat_vector_seq2seq", model, _ids(rng), rng.integers(0, VOCAB, (BATCH, 4)))


def conv1d_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """A Conv1D text classifier: Embedding -> Conv1D -> MaxPooling1D -> Conv1D -> GlobalMaxPooling1D -> Dense."""
    model = k.Sequential([
        k.Input((LENGTH,), dtype="int32"),
        k.layers.Embedding(VOCAB, 8),
        k.layers.Conv1D(8, 3, activation="relu"),
        k.layers.MaxPooling1D(2),
        k.layers.Conv1D(8, 2, activation="relu"),
        k.layers.GlobalMaxPooling1D(),
        k.layers.Dense(2, activation="softmax"),
    ])
    return ZooModel("conv1d_classifier", _compile(model, k), _ids(rng), _classes(rng))


def _vectorizer(k: ModuleType, rng: np.random.Generator, standardize: Any = "lower_and_strip_punctuation") -> Any:
    layer = k.layers.TextVectorization(max_tokens=VOCAB, output_sequence_length=LENGTH, standardize=standardize)
    layer.adapt(_texts(rng))
    return layer


def string_lstm_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """End to end on raw strings: an adapted ``TextVectorization`` inside the model, a masked LSTM after it."""
    inputs = k.Input((1,), dtype="string")
    x = _vectorizer(k, rng)(inputs)
    x = k.layers.Embedding(VOCAB, 8, mask_zero=True)(x)
    x = k.layers.LSTM(UNITS)(x)
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel("string_lstm_classifier", model, _string_batch(rng), _classes(rng))


def lowercase_only(text: Any) -> Any:
    """A custom ``standardize`` for ``TextVectorization``: lower case, punctuation kept."""
    import tensorflow as tf

    return tf.strings.lower(text)


_REGISTERED: dict[tuple[str, str], Any] = {}


def _registered(k: ModuleType, obj: Any) -> Any:
    """``obj`` registered for loading in ``k``'s serialization, as Keras's guide tells users to (once per
    flavour and name: the first one registered is kept, as tf_keras refuses a second)."""
    key = (k.__name__, obj.__name__)
    if key not in _REGISTERED:
        register = k.saving.register_keras_serializable if k.__name__ == "keras" else k.utils.register_keras_serializable
        _REGISTERED[key] = register(package=f"zoo_{k.__name__}")(obj)  # a user registers for their flavour only
    return _REGISTERED[key]


def custom_standardize_classifier(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """An adapted ``TextVectorization`` with a custom ``standardize`` function, then an LSTM."""
    inputs = k.Input((1,), dtype="string")
    x = _vectorizer(k, rng, standardize=_registered(k, lowercase_only))(inputs)
    x = k.layers.LSTM(UNITS)(k.layers.Embedding(VOCAB, 8)(x))
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel("custom_standardize_classifier", model, _string_batch(rng), _classes(rng))


def nested_vectorizer_conv1d(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """Keras's export recipe: the vectorizer as a nested sub-model in front of a Conv1D classifier."""
    raw = k.Input((1,), dtype="string")
    vectorize = k.Model(raw, _vectorizer(k, rng)(raw), name="vectorize")
    ids = k.Input((LENGTH,), dtype="int64")
    x = k.layers.Embedding(VOCAB, 8)(ids)
    x = k.layers.GlobalMaxPooling1D()(k.layers.Conv1D(8, 3, activation="relu")(x))
    classifier = k.Model(ids, k.layers.Dense(2, activation="softmax")(x), name="classifier")
    outer = k.Input((1,), dtype="string")
    model = _compile(k.Model(outer, classifier(vectorize(outer))), k)
    return ZooModel("nested_vectorizer_conv1d", model, _string_batch(rng), _classes(rng))


def two_outputs(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """One LSTM, two heads: a topic and a sentiment."""
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.LSTM(UNITS)(k.layers.Embedding(VOCAB, 8)(inputs))
    topic = k.layers.Dense(3, activation="softmax", name="topic")(x)
    sentiment = k.layers.Dense(1, activation="sigmoid", name="sentiment")(x)
    model = k.Model(inputs, [topic, sentiment])
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss=["sparse_categorical_crossentropy", "binary_crossentropy"])
    return ZooModel("two_outputs", model, _ids(rng), [_classes(rng, 3), _classes(rng).astype("float32")])


def lstm_state_outputs(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """An encoder that returns its ``LSTM(return_state=True)`` states as outputs (the inference encoder)."""
    inputs = k.Input((LENGTH,), dtype="int32")
    _, h, c = k.layers.LSTM(UNITS, return_state=True)(k.layers.Embedding(VOCAB, 8)(inputs))
    model = k.Model(inputs, [h, c])
    model.compile(optimizer=k.optimizers.Adam(1e-3), loss="mse")
    states = rng.normal(size=(BATCH, UNITS)).astype("float32")
    return ZooModel("lstm_state_outputs", model, _ids(rng), [states, states])


def _transformer_layers(k: ModuleType) -> tuple[type, type]:
    """Keras's transformer example's two custom layers, with ``get_config``, registered for loading."""

    class TokenAndPositionEmbedding(k.layers.Layer):
        def __init__(self, maxlen: int, vocab_size: int, embed_dim: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
            self.token_emb = k.layers.Embedding(vocab_size, embed_dim)
            self.pos_emb = k.layers.Embedding(maxlen, embed_dim)

        def call(self, x):
            import tensorflow as tf

            positions = tf.range(start=0, limit=tf.shape(x)[-1], delta=1)
            return self.token_emb(x) + self.pos_emb(positions)

        def get_config(self):
            return {**super().get_config(), "maxlen": self.maxlen, "vocab_size": self.vocab_size, "embed_dim": self.embed_dim}

    class TransformerBlock(k.layers.Layer):
        def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
            self.att = k.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = k.Sequential([k.layers.Dense(ff_dim, activation="relu"), k.layers.Dense(embed_dim)])
            self.norm1 = k.layers.LayerNormalization(epsilon=1e-6)
            self.norm2 = k.layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            out1 = self.norm1(inputs + self.att(inputs, inputs))
            return self.norm2(out1 + self.ffn(out1))

        def get_config(self):
            return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads, "ff_dim": self.ff_dim}

    return _registered(k, TokenAndPositionEmbedding), _registered(k, TransformerBlock)


def transformer_custom_layers(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """Keras's transformer text classifier: custom embedding and block layers with ``get_config``."""
    embedding, block = _transformer_layers(k)
    inputs = k.Input((LENGTH,), dtype="int32")
    x = embedding(LENGTH, VOCAB, 8)(inputs)
    x = block(8, 2, 8)(x)
    x = k.layers.GlobalAveragePooling1D()(x)
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel("transformer_custom_layers", model, _ids(rng), _classes(rng))


def custom_layer_without_config(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """A custom layer whose ``__init__`` takes no ``**kwargs`` and that has no ``get_config``."""

    class Scale(k.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

    inputs = k.Input((LENGTH,), dtype="int32")
    x = Scale(0.5)(k.layers.Embedding(VOCAB, 8)(inputs))
    x = k.layers.LSTM(UNITS)(x)
    model = _compile(k.Model(inputs, k.layers.Dense(2, activation="softmax")(x)), k)
    return ZooModel("custom_layer_without_config", model, _ids(rng), _classes(rng))


def subclassed_tagger(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """A subclassed ``keras.Model``: Embedding -> LSTM -> per-token Dense, in ``call``."""

    class Tagger(k.Model):
        def __init__(self) -> None:
            super().__init__()
            self.embed = k.layers.Embedding(VOCAB, 8)
            self.lstm = k.layers.LSTM(UNITS, return_sequences=True)
            self.head = k.layers.Dense(5, activation="softmax")

        def call(self, inputs):
            return self.head(self.lstm(self.embed(inputs)))

    model = Tagger()
    x = _ids(rng)
    model(x)
    return ZooModel("subclassed_tagger", _compile(model, k), x, rng.integers(0, 5, (BATCH, LENGTH)))


def _loss_with_own_init(k: ModuleType) -> Any:
    """A ``Loss`` subclass whose ``__init__`` takes no ``reduction`` (as in Keras's NER example)."""

    class MaskedTokenLoss(k.losses.Loss):
        def __init__(self):
            super().__init__(name="masked_token_loss")
            self.inner = k.losses.SparseCategoricalCrossentropy(reduction="none")

        def call(self, y_true, y_pred):
            return self.inner(y_true, y_pred)

        @classmethod
        def from_config(cls, config):  # its __init__ takes nothing: what a loader calls
            return cls()

    return _registered(k, MaskedTokenLoss)()


def tagger_with_loss_subclass(k: ModuleType, rng: np.random.Generator) -> ZooModel:
    """The NER example's tagger compiled with its own ``Loss`` subclass."""
    inputs = k.Input((LENGTH,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8)(inputs)
    x = k.layers.LSTM(UNITS, return_sequences=True)(x)
    model = k.Model(inputs, k.layers.Dense(5, activation="softmax")(x))
    model = _compile(model, k, loss=_loss_with_own_init(k))
    return ZooModel("tagger_with_loss_subclass", model, _ids(rng), rng.integers(0, 5, (BATCH, LENGTH)))


#: family -> (builder, the flavours that can express it)
FAMILIES: dict[str, tuple[Callable[[ModuleType, np.random.Generator], ZooModel], tuple[str, ...]]] = {
    builder.__name__: (builder, flavours)
    for builder, flavours in [
        (char_lstm, ("keras", "tf_keras")),
        (masked_lstm_classifier, ("keras", "tf_keras")),
        (masked_stack, ("keras", "tf_keras")),
        (stacked_bilstm_classifier, ("keras", "tf_keras")),
        (bilstm_tagger, ("keras", "tf_keras")),
        (gru_classifier, ("keras", "tf_keras")),
        (bigru_classifier, ("keras", "tf_keras")),
        (seq2seq_trainer, ("keras", "tf_keras")),
        (seq2seq_inference_decoder, ("keras", "tf_keras")),
        (repeat_vector_seq2seq, ("keras", "tf_keras")),
        (conv1d_classifier, ("keras", "tf_keras")),
        (string_lstm_classifier, ("keras", "tf_keras")),
        (custom_standardize_classifier, ("keras", "tf_keras")),
        (nested_vectorizer_conv1d, ("keras", "tf_keras")),
        (two_outputs, ("keras", "tf_keras")),
        (lstm_state_outputs, ("keras", "tf_keras")),
        (transformer_custom_layers, ("keras", "tf_keras")),
        (custom_layer_without_config, ("keras", "tf_keras")),
        (subclassed_tagger, ("keras", "tf_keras")),
        (tagger_with_loss_subclass, ("keras", "tf_keras")),
    ]
}


def build(family: str, flavour: str, seed: int = 0) -> ZooModel:
    """A fresh compiled instance of ``family`` in ``flavour`` (``"keras"`` or ``"tf_keras"``)."""
    import importlib

    builder, _ = FAMILIES[family]
    return builder(importlib.import_module(flavour), np.random.default_rng(seed))


def cases() -> list[tuple[str, str]]:
    """Every (family, flavour) the zoo holds."""
    return [(family, flavour) for family, (_, flavours) in FAMILIES.items() for flavour in flavours]


def padding_sensitivity(model: Any, x: Any) -> float:
    """How much ``model``'s outputs on ``x`` move when the padding id's embedding row changes (restored
    after): 0.0 where the padding mask reaches every layer, more where padding leaks into the result."""
    embeddings = [layer for layer in _leaves(model) if type(getattr(layer, "layer", layer)).__name__ == "Embedding"]
    saved = [layer.get_weights() for layer in embeddings]
    before = outputs(model, x)
    for layer, weights in zip(embeddings, saved):
        table = next(i for i, weight in enumerate(weights) if weight.ndim == 2)
        moved = [weight.copy() for weight in weights]
        moved[table][0] += 5.0
        layer.set_weights(moved)
    after = outputs(model, x)
    for layer, weights in zip(embeddings, saved):
        layer.set_weights(weights)
    return max(float(np.abs(a - b).max()) for a, b in zip(before, after))


def _leaves(model: Any) -> list:
    found = []
    for layer in model.layers:
        found.extend(_leaves(layer) if hasattr(layer, "layers") and not hasattr(layer, "forward_layer") else [layer])
    return found


def outputs(model: Any, x: Any) -> list[np.ndarray]:
    """``model``'s outputs on ``x`` as a list of float64 arrays (one per model output)."""
    predicted = model(x, training=False)  # a direct call: predict() traces a function per model
    return [np.asarray(output, "float64") for output in (predicted if isinstance(predicted, (list, tuple)) else [predicted])]

