"""to_tflite and LiteRTModel: fused LSTM export in every quantization, checked against Keras."""

import warnings

import numpy as np
import pytest
import tf_keras
from compress_data import SEQ, VOCAB, pattern_data, trained_float_model

from fastnlp import (
    LiteRTModel,
    build_lstm,
    quantize,
    to_tflite,
)
from fastnlp.core import flavour as flavours
from fastnlp.core.convert import convert
from fastnlp.core.notices import SpeedupWarning

pytestmark = pytest.mark.filterwarnings("ignore::fastnlp.FlavourWarning")

# 8-bit activations quantize probabilities in steps of 1/256; float16 weights keep ~3 significant digits.
TOLERANCE = {None: 1e-5, "float16": 1e-3, "dynamic": 2e-2, "int8": 5e-2}


@pytest.mark.parametrize("quantization", list(TOLERANCE))
def test_exported_lstm_is_fused_and_matches_keras(flavour, quantization):
    model = trained_float_model()
    if flavour == "tf_keras":
        model = convert(model, "tf_keras")
    x, _ = pattern_data(seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "did not become the fused op" warning
        content = to_tflite(model, quantization, representative_data=x if quantization == "int8" else None, batch_size=4)

    lite = LiteRTModel(content)

    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops and "WHILE" not in lite.ops
    expected = model.predict(x[:7], verbose=0)
    for rows in (1, 3, 7):  # smaller than, and not a multiple of, the exported batch of 4
        got = lite.predict(x[:rows])
        assert got.shape == expected[:rows].shape
        np.testing.assert_allclose(got, expected[:rows], atol=TOLERANCE[quantization])
        assert (got.argmax(-1) == expected[:rows].argmax(-1)).mean() >= 0.95


def test_quantization_aware_model_exports_to_int8_and_runs(tmp_path):
    x, y = pattern_data(seed=3)
    qat = quantize(trained_float_model())
    qat.fit(x, y, epochs=10, batch_size=16, verbose=0)  # until the output ranges settle (see above)
    path = tmp_path / "qat.tflite"
    content = to_tflite(qat, "int8", representative_data=x, path=path)
    lite = LiteRTModel(path)
    assert path.read_bytes() == content
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops
    got, expected = lite.predict(x), qat.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE["int8"])  # measured max 0.015
    assert (got.argmax(-1) == expected.argmax(-1)).mean() == 1.0


def test_export_bad_calls():
    model = build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ)
    with pytest.raises(ValueError, match="needs representative_data"):
        to_tflite(model, "int8")
    with pytest.raises(ValueError, match="quantization must be one of"):
        to_tflite(model, "int4")
    with pytest.raises(ValueError, match="at least batch_size=4"):
        to_tflite(model, "int8", representative_data=np.zeros((2, SEQ), "int32"), batch_size=4)
    with pytest.raises(TypeError, match="expected a Keras 3"):
        to_tflite("model.keras")
    classifier = build_lstm(VOCAB, task="classify", units=8, num_layers=1, seq_len=SEQ)
    with pytest.raises(ValueError, match="cannot export a masked LSTM"):
        to_tflite(classifier, "int8", representative_data=np.ones((4, SEQ), "int32"))
    lite = LiteRTModel(to_tflite(model))
    with pytest.raises(ValueError, match=r"inputs must have shape \(n, 8\)"):
        lite.predict(np.zeros((2, SEQ + 1)))
    with pytest.raises(TypeError, match="fractional parts"):  # 1.7 became 1
        lite.predict(np.full((1, SEQ), 1.7))
    with pytest.raises(ValueError, match="within int32's range"):  # 2**32 + 3 became 3
        lite.predict(np.full((1, SEQ), 2**32 + 3, dtype=np.int64))
    assert lite.predict(np.zeros((0, SEQ), "int32")).shape == (0, SEQ, VOCAB)  # it failed: nothing to concatenate
    np.testing.assert_array_equal(lite.predict(np.ones((2, SEQ))), lite.predict(np.ones((2, SEQ), "int32")))


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_a_model_of_any_length_exports_the_length_asked_for_or_is_refused(flavour):
    model = build_lstm(VOCAB, units=8, num_layers=1, flavour=flavour)  # seq_len None: any length
    with pytest.raises(ValueError, match="any length.*pass seq_len=N"):  # it exported length 1, silently
        to_tflite(model, "dynamic")
    lite = LiteRTModel(to_tflite(model, "dynamic", seq_len=SEQ))
    x = np.random.default_rng(0).integers(0, VOCAB, (3, SEQ))
    assert lite.predict(x).shape == (3, SEQ, VOCAB)
    np.testing.assert_allclose(lite.predict(x), model.predict(x, verbose=0), atol=2e-2)
    fixed = build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ, flavour=flavour)
    with pytest.raises(ValueError, match=f"seq_len={SEQ + 1} differs from .* fixed sequence length {SEQ}"):
        to_tflite(fixed, seq_len=SEQ + 1)
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        to_tflite(model, seq_len=0)


def test_int8_of_a_recurrent_layer_that_cannot_fuse_is_refused_not_a_crash():
    from conftest import run_isolated

    # it crashed the interpreter (exit 139) for GRU and SimpleRNN in both flavours: run it apart
    out = run_isolated("""
import warnings, numpy as np, keras, tf_keras
warnings.simplefilter("ignore")
from fastnlp import to_tflite
x = np.random.default_rng(0).integers(0, 20, (16, 6)).astype("int32")
for K in (keras, tf_keras):
    for recurrent in (K.layers.GRU(8, return_sequences=True, name="g"), K.layers.SimpleRNN(8, name="s")):
        model = K.Sequential([K.Input((6,), dtype="int32"), K.layers.Embedding(20, 8), recurrent, K.layers.Dense(3)])
        try:
            to_tflite(model, "int8", representative_data=x)
        except ValueError as error:
            print("refused:", str(error).split(":")[0])
""")
    assert out.split("\n")[:4] == [
        "refused: quantization='int8' cannot export layer 'g' (GRU)", "refused: quantization='int8' cannot export layer 's' (SimpleRNN)",
    ] * 2


def test_int8_of_an_lstm_that_returns_its_states_is_refused_not_a_crash():
    from conftest import run_isolated

    # it crashed the interpreter (exit 139) in both flavours: run it apart
    out = run_isolated("""
import warnings, numpy as np, keras, tf_keras
warnings.simplefilter("ignore")
from fastnlp import to_tflite
x = np.random.default_rng(0).integers(0, 20, (16, 6)).astype("int32")
for K in (keras, tf_keras):
    inputs = K.Input((6,), dtype="int32")
    _, h, c = K.layers.LSTM(8, return_state=True, name="encoder")(K.layers.Embedding(20, 8)(inputs))
    try:
        to_tflite(K.Model(inputs, K.layers.Dense(3)(h)), "int8", representative_data=x)
    except ValueError as error:
        print("refused:", str(error).split(":")[0])
""")
    assert out.split("\n")[:2] == ["refused: quantization='int8' cannot export layer 'encoder'"] * 2


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_bidirectional_and_branched_models_export_and_match_keras(flavour):
    keras_ = flavours.keras_module(flavour)
    x = np.random.default_rng(0).integers(0, VOCAB, (5, SEQ))
    bidirectional = keras_.Sequential([
        keras_.Input((SEQ,), dtype="int32"), keras_.layers.Embedding(VOCAB, 8),
        keras_.layers.Bidirectional(keras_.layers.LSTM(8, return_sequences=True)), keras_.layers.Dense(VOCAB),
    ])  # tf_keras failed with "'str' object has no attribute 'name'"
    inputs = keras_.Input((SEQ,), dtype="int32")
    embedded = keras_.layers.Embedding(VOCAB, 8)(inputs)
    joined = keras_.layers.Concatenate()([keras_.layers.LSTM(8)(embedded), keras_.layers.GlobalAveragePooling1D()(embedded)])
    branched = keras_.Model(inputs, keras_.layers.Dense(3, activation="softmax")(joined))  # Keras 3's failed at invoke
    for model in (bidirectional, branched):
        lite = LiteRTModel(to_tflite(model, "dynamic"))
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops or "BIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops
        np.testing.assert_allclose(lite.predict(x), model.predict(x, verbose=0), atol=2e-2)


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_a_stateful_lstm_is_refused_up_front(flavour):
    keras_ = flavours.keras_module(flavour)
    model = keras_.Sequential([keras_.Input((SEQ,), batch_size=4, dtype="int32"), keras_.layers.Embedding(VOCAB, 8),
                               keras_.layers.LSTM(8, stateful=True, name="carry"), keras_.layers.Dense(3)])
    with pytest.raises(ValueError, match="cannot export layer 'carry': it is stateful"):
        to_tflite(model, batch_size=4)


def test_masked_classifier_exports_as_a_loop_and_says_so():
    model = build_lstm(50, task="classify", units=8, num_layers=1, seq_len=SEQ)
    x = np.random.default_rng(0).integers(1, 50, (4, SEQ))
    x[:, 5:] = 0
    with pytest.warns(SpeedupWarning, match="did not become UNIDIRECTIONAL_SEQUENCE_LSTM"):
        lite = LiteRTModel(to_tflite(model, "dynamic"))
    np.testing.assert_allclose(lite.predict(x), model.predict(x, verbose=0), atol=TOLERANCE["dynamic"])


def test_an_int8_export_that_disagrees_with_the_model_is_flagged(monkeypatch):
    import fastnlp.speedups.compress.export as export

    model = build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ)
    x, _ = pattern_data(16)
    monkeypatch.setattr(export, "_MIN_AGREEMENT", 1.01)  # no export can reach it: the check must speak
    with pytest.warns(SpeedupWarning, match="int8 export agrees with the model on only"):
        to_tflite(model, "int8", representative_data=x)


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_an_lstm_on_narrow_inputs_is_quantized_too(flavour, monkeypatch):
    import fastnlp.speedups.compress.export as export
    from fastnlp.harness.baseline import build_blog_model

    model = build_blog_model(VOCAB, SEQ, units=32, num_layers=2, flavour=flavour)  # the blog's (T, 1) float input
    x = np.random.default_rng(0).random((4, SEQ, 1)).astype("float32")
    widened = to_tflite(model, "dynamic")
    lite = LiteRTModel(widened)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops
    np.testing.assert_allclose(lite.predict(x), model.predict(x, verbose=0), atol=2e-2)
    monkeypatch.setattr(export, "_widen_narrow_lstm_inputs", lambda exported: exported)
    as_before = to_tflite(model, "dynamic")  # the first LSTM's 32 x 1 input weights kept the whole op float32
    assert len(widened) < 0.8 * len(as_before)



@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_an_encoder_decoder_with_two_inputs_and_two_outputs_exports_by_name(flavour):
    """The seq2seq trainer's shape: named inputs in, named outputs out, a list or a dict to LiteRT."""
    keras_ = flavours.keras_module(flavour)
    encoder_in = keras_.Input((SEQ,), dtype="int32", name="encoder_ids")
    decoder_in = keras_.Input((SEQ - 2,), dtype="int32", name="decoder_ids")
    _, h, c = keras_.layers.LSTM(8, return_state=True)(keras_.layers.Embedding(VOCAB, 4)(encoder_in))
    decoded = keras_.layers.LSTM(8, return_sequences=True)(keras_.layers.Embedding(VOCAB, 4)(decoder_in), initial_state=[h, c])
    tokens = keras_.layers.Dense(VOCAB, activation="softmax", name="tokens")(decoded)
    length = keras_.layers.Dense(1, name="length")(h)
    model = keras_.Model([encoder_in, decoder_in], [tokens, length])
    rng = np.random.default_rng(0)
    x = [rng.integers(0, VOCAB, (5, SEQ)), rng.integers(0, VOCAB, (5, SEQ - 2))]

    lite = LiteRTModel(to_tflite(model, batch_size=2))

    assert set(lite.input_names) == {"encoder_ids", "decoder_ids"} and set(lite.output_names) == {"tokens", "length"}
    expected = dict(zip(["tokens", "length"], model.predict(x, verbose=0), strict=True))
    by_name = lite.predict({"encoder_ids": x[0], "decoder_ids": x[1]})
    by_list = lite.predict([{"encoder_ids": x[0], "decoder_ids": x[1]}[name] for name in lite.input_names])
    for got in (by_list, by_name):
        for name, values in zip(lite.output_names, got, strict=True):
            np.testing.assert_allclose(values, expected[name], atol=1e-5)
    with pytest.raises(ValueError, match=r"missing \['decoder_ids'\]"):
        lite.predict({"encoder_ids": x[0]})
    with pytest.raises(ValueError, match="different numbers of samples"):
        lite.predict({"encoder_ids": x[0], "decoder_ids": x[1][:3]})
    with pytest.raises(ValueError, match="int8' calibrates a model with one input"):
        to_tflite(model, "int8", representative_data=x[0])


def test_a_keras_3_model_that_stays_keras_3_exports_its_weights():
    """A nested model does not convert to tf_keras; its Keras 3 export computed garbage (1.6e14) without a word."""
    import keras

    inner_in = keras.Input((SEQ,), dtype="int32")
    inner = keras.Model(inner_in, keras.layers.Dense(3)(keras.layers.Embedding(VOCAB, 4)(inner_in)), name="inner")
    ids = keras.Input((SEQ,), dtype="int32")
    outer = keras.Model(ids, keras.layers.Dense(2)(keras.layers.Flatten()(inner(ids))))
    x = np.random.default_rng(0).integers(0, VOCAB, (3, SEQ))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpeedupWarning)  # without a recurrent layer, staying Keras 3 costs nothing
        lite = LiteRTModel(to_tflite(outer))
    np.testing.assert_allclose(lite.predict(x), outer.predict(x, verbose=0), atol=1e-5)


def test_a_keras_3_lstm_model_that_stays_keras_3_says_so_and_int8_refuses_it():
    """A nested model keeps the LSTM a Keras 3 loop; its int8 calibration crashed the converter's process."""
    import keras

    inner_in = keras.Input((SEQ,), dtype="int32")
    inner = keras.Model(inner_in, keras.layers.Embedding(VOCAB, 4)(inner_in), name="inner")
    ids = keras.Input((SEQ,), dtype="int32")
    outer = keras.Model(ids, keras.layers.Dense(2)(keras.layers.LSTM(4, name="loop")(inner(ids))))
    x = np.random.default_rng(0).integers(0, VOCAB, (8, SEQ)).astype("int32")
    with pytest.warns(SpeedupWarning, match=r"exporting the Keras 3 model as it is \(.*inner"):
        lite = LiteRTModel(to_tflite(outer))
    np.testing.assert_allclose(lite.predict(x), outer.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match=r"cannot export layer 'loop' \(LSTM\): the model stays Keras 3 \(.*inner"):
        to_tflite(outer, "int8", representative_data=x)


def test_an_int8_converter_crash_is_contained_and_reported(monkeypatch):
    """The int8 converter runs in a Python of its own: with the check that refuses a GRU switched off, the
    calibration crash it foresees (exit 139) ends that process, and the caller gets a clear error."""
    from fastnlp.speedups.compress import export

    monkeypatch.setattr(export, "_check_int8_exportable", lambda model, why_not_tf_keras: None)
    inputs = tf_keras.Input((SEQ,), dtype="int32")
    h = tf_keras.layers.GRU(4, return_sequences=True)(tf_keras.layers.Embedding(VOCAB, 4)(inputs))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(VOCAB)(h), name="gru_model")
    x = np.random.default_rng(0).integers(0, VOCAB, (8, SEQ)).astype("int32")
    with pytest.raises(ValueError, match="the TFLite converter could not calibrate 'gru_model': its process died"):
        to_tflite(model, "int8", representative_data=x)


def _right_padded_ids(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (rows, SEQ))
    for row, length in enumerate(rng.integers(0, SEQ + 1, rows)):  # lengths 0 (all padding) to SEQ (none)
        x[row, length:] = 0
    return x


@pytest.mark.parametrize(("flavour", "quantization"), [("keras", None), ("tf_keras", "int8")])  # int8 runs a process
def test_a_masked_stack_over_right_padding_exports_fused_with_the_same_outputs(flavour, quantization):
    k = flavours.keras_module(flavour)
    model = k.Sequential([
        k.Input((SEQ,), dtype="int32"),
        k.layers.Embedding(VOCAB, 8, mask_zero=True),
        k.layers.LSTM(8, return_sequences=True),
        k.layers.Dropout(0.1),
        k.layers.LSTM(8),
        k.layers.Dense(3, activation="softmax"),
    ])
    x = _right_padded_ids(16)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "to_tflite: layer .* did not become")  # fused (an untrained model's top
        warnings.filterwarnings("ignore", "to_tflite: the int8 export agrees")  # predictions are near ties)
        content = to_tflite(model, quantization, representative_data=x if quantization else None, right_padded=True)
    lite = LiteRTModel(content)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops and "WHILE" not in lite.ops
    np.testing.assert_allclose(lite.predict(x), model.predict(x, verbose=0), atol=TOLERANCE[quantization])


def test_right_padded_export_refuses_what_it_cannot_compute():
    k = tf_keras
    ids = k.Input((SEQ,), dtype="int32")
    embedded = k.layers.Embedding(VOCAB, 8, mask_zero=True)(ids)
    both = k.Model(ids, k.layers.Bidirectional(k.layers.LSTM(4), name="both_ways")(embedded))
    with pytest.raises(ValueError, match="layer 'both_ways' .* backward direction reads the padding"):
        to_tflite(both, right_padded=True)
    tagger = k.Model(ids, k.layers.LSTM(4, return_sequences=True, name="tags")(embedded))
    with pytest.raises(ValueError, match="output of layer 'tags' is a sequence"):
        to_tflite(tagger, right_padded=True)
    unmasked = build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ)
    with pytest.raises(ValueError, match="one Embedding\\(mask_zero=True\\) .* has none"):
        to_tflite(unmasked, right_padded=True)
    classifier = build_lstm(VOCAB, task="classify", units=8, num_layers=1, seq_len=SEQ)
    left_padded = np.flip(_right_padded_ids(8), axis=1)
    with pytest.raises(ValueError, match="row .* has a real id after padding"):
        to_tflite(classifier, "int8", representative_data=left_padded, right_padded=True)
    with pytest.raises(TypeError, match="right_padded must be True or False"):
        to_tflite(classifier, right_padded="yes")


@pytest.mark.parametrize("flavour", ["keras"])  # the flavour that names both states after the layer
def test_every_output_exports_and_lite_keeps_the_models_order(flavour):
    """The seq2seq inference decoder: its LSTM's two states are two outputs of one layer (Keras 3 names both
    after it; the export kept one). Inputs and outputs go in and come out in Keras's order, not sorted."""
    keras_ = flavours.keras_module(flavour)
    token = keras_.Input((1,), dtype="int32", name="token")
    h_in, c_in = keras_.Input((8,), name="h"), keras_.Input((8,), name="c")
    sequence, h, c = keras_.layers.LSTM(8, return_sequences=True, return_state=True, name="decoder")(
        keras_.layers.Embedding(VOCAB, 4)(token), initial_state=[h_in, c_in]
    )
    model = keras_.Model([token, h_in, c_in], [keras_.layers.Dense(VOCAB, name="next")(sequence), h, c])
    rng = np.random.default_rng(0)
    x = [rng.integers(0, VOCAB, (5, 1)), rng.normal(size=(5, 8)).astype("float32"), rng.normal(size=(5, 8)).astype("float32")]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpeedupWarning)  # one step of a loop does not fuse
        lite = LiteRTModel(to_tflite(model))

    assert lite.input_names == ("token", "h", "c") and lite.output_names == ("next", "decoder", "decoder_1")
    for got, want in zip(lite.predict(x), model.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("flavour", ["tf_keras"])  # the zoo's two_outputs model exports in both flavours
def test_a_model_with_one_input_and_two_outputs_takes_its_array(flavour):
    keras_ = flavours.keras_module(flavour)
    ids = keras_.Input((SEQ,), dtype="int32", name="ids")
    pooled = keras_.layers.GlobalAveragePooling1D()(keras_.layers.Embedding(VOCAB, 4)(ids))
    model = keras_.Model(ids, [keras_.layers.Dense(3, name="topic")(pooled), keras_.layers.Dense(1, name="score")(pooled)])
    x = np.random.default_rng(0).integers(0, VOCAB, (5, SEQ))

    lite = LiteRTModel(to_tflite(model))

    assert lite.output_names == ("topic", "score")
    for inputs in (x, [x], {"ids": x}):
        for got, want in zip(lite.predict(inputs), model.predict(x, verbose=0), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_int8_needs_none_of_the_models_python_and_checks_every_output():
    """The converter's process gets a SavedModel: a custom layer and a loss of the user's own, which it could not
    import, no longer fail it; the agreement check reads each output with a top prediction."""
    import keras

    @keras.saving.register_keras_serializable("test_export")
    class Doubled(keras.layers.Layer):
        def call(self, inputs):
            return 2.0 * inputs

    class OwnLoss(keras.losses.Loss):
        def __init__(self, weight):
            super().__init__()
            self.weight = weight

        def call(self, y_true, y_pred):
            return self.weight * keras.losses.mean_squared_error(y_true, y_pred)

    ids = keras.Input((SEQ,), dtype="int32")
    pooled = Doubled()(keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, 8)(ids)))
    model = keras.Model(ids, [keras.layers.Dense(3, activation="softmax", name="topic")(pooled), keras.layers.Dense(1, name="score")(pooled)])
    model.compile(loss=[OwnLoss(2.0), "mse"])
    x = np.random.default_rng(0).integers(0, VOCAB, (32, SEQ)).astype("int32")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpeedupWarning)  # an untrained model's top predictions are near ties
        lite = LiteRTModel(to_tflite(model, "int8", representative_data=x))

    for got, want in zip(lite.predict(x), model.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(got, want, atol=TOLERANCE["int8"])
