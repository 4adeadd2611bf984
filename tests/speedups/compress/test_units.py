"""prune_units and prune_units_gradually: smaller dense models that compute what the silenced model did."""

import warnings

import numpy as np
import pytest
import zoo
from speedup_settings import silence_units_to_remove

from fastnlp import (
    LiteRTModel,
    applied_speedups,
    hoist_lstm_projection,
    load_checkpoint,
    prune_units,
    prune_units_gradually,
    quantize,
    to_tflite,
)
from fastnlp.core import flavour as flavours
from fastnlp.core.lineage import lineage_of

pytestmark = [pytest.mark.filterwarnings("ignore::fastnlp.SpeedupWarning"), pytest.mark.filterwarnings("ignore::fastnlp.FlavourWarning")]


def tagger(k, rng):
    """Embedding -> LSTM(8) -> GRU(6, reset_after=False) -> Dense(5, relu) -> Dense(3): one of each unit kind."""
    inputs = k.Input((7,), dtype="int32")
    x = k.layers.Embedding(30, 4)(inputs)
    x = k.layers.LSTM(8, return_sequences=True, name="lstm")(x)
    x = k.layers.GRU(6, return_sequences=True, reset_after=False, name="gru")(x)
    x = k.layers.Dense(5, activation="relu", name="hidden")(x)
    model = k.Model(inputs, k.layers.Dense(3, activation="softmax", name="head")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model, rng.integers(0, 30, (8, 7)), rng.integers(0, 3, (8, 7))


KEEP = {"lstm": [0, 2, 3, 6, 7], "gru": [1, 4], "hidden": [0, 1, 3]}  # the units the test keeps, not the last ones


def silence_all_but(model, keep):
    """Zero the columns each unit not in ``keep`` owns (written apart from fastnlp's unit bookkeeping)."""
    for name, kept in keep.items():
        layer = model.get_layer(name)
        gates = {"LSTM": 4, "GRU": 3}.get(type(layer).__name__, 1)
        silent = [g * layer.units + j for g in range(gates) for j in range(layer.units) if j not in kept]
        weights = [w.copy() for w in layer.get_weights()]
        for w in weights:
            w[..., silent] = 0.0
        layer.set_weights(weights)


def hand_built(k, model, keep):
    """The smaller model written out by hand, carrying the kept weights sliced here."""
    inputs = k.Input((7,), dtype="int32")
    x = k.layers.Embedding(30, 4, name="emb")(inputs)
    x = k.layers.LSTM(len(keep["lstm"]), return_sequences=True)(x)
    x = k.layers.GRU(len(keep["gru"]), return_sequences=True, reset_after=False)(x)
    x = k.layers.Dense(len(keep["hidden"]), activation="relu")(x)
    small = k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))

    def columns(gates, units, kept):
        return [g * units + j for g in range(gates) for j in kept]

    emb = model.layers[1].get_weights()
    lk, lr, lb = model.get_layer("lstm").get_weights()
    gk, gr, gb = model.get_layer("gru").get_weights()
    hk, hb = model.get_layer("hidden").get_weights()
    ok, ob = model.get_layer("head").get_weights()
    L, G, H = keep["lstm"], keep["gru"], keep["hidden"]
    small.layers[1].set_weights(emb)
    small.layers[2].set_weights([lk[:, columns(4, 8, L)], lr[np.ix_(L, columns(4, 8, L))], lb[columns(4, 8, L)]])
    small.layers[3].set_weights([gk[np.ix_(L, columns(3, 6, G))], gr[np.ix_(G, columns(3, 6, G))], gb[columns(3, 6, G)]])
    small.layers[4].set_weights([hk[np.ix_(G, H)], hb[H]])
    small.layers[5].set_weights([ok[H], ob])
    return small


def test_the_result_equals_a_hand_built_smaller_model_carrying_the_kept_weights(flavour):
    k = flavours.keras_module(flavour)
    model, x, _ = tagger(k, np.random.default_rng(0))
    silence_all_but(model, KEEP)
    counts = {name: len(kept) for name, kept in KEEP.items()}

    result = prune_units(model, units=counts, criterion="activation", data=x)

    assert {name: result.get_layer(name).units for name in KEEP} == counts
    assert type(result.get_layer("gru")).__name__ == "GRU" and result.get_layer("head").units == 3
    want = hand_built(k, model, KEEP)(x).numpy()
    np.testing.assert_allclose(result(x).numpy(), want, atol=1e-6)
    np.testing.assert_allclose(model(x).numpy(), want, atol=1e-6)  # and what the silenced model computes
    assert lineage_of(result).units == counts


def test_magnitude_keeps_the_units_with_the_largest_weights(flavour):
    k = flavours.keras_module(flavour)
    model, x, _ = tagger(k, np.random.default_rng(1))
    layer = model.get_layer("hidden")
    kernel, bias = layer.get_weights()
    kernel[:, [1, 4]] *= 50.0
    layer.set_weights([kernel, bias])
    result = prune_units(model, units={"hidden": 2})
    np.testing.assert_array_equal(result.get_layer("hidden").get_weights()[0], kernel[:, [1, 4]])


def test_the_encoder_and_decoder_tied_by_states_lose_the_same_units():
    example = zoo.build("seq2seq_trainer", "keras")
    result = prune_units(example.model, 0.5)
    assert result.get_layer("encoder").units == result.get_layer("decoder").units == 3
    assert lineage_of(result).units == {"encoder": 3, "decoder": 3}


def test_a_bidirectional_layer_loses_units_in_both_directions(flavour):
    example = zoo.build("bilstm_tagger", flavour)
    silence_units_to_remove(example.model, example.x)
    result = prune_units(example.model, 0.5, criterion="activation", data=example.x)
    bidirectional = next(layer for layer in result.layers if hasattr(layer, "forward_layer"))
    assert bidirectional.forward_layer.units == bidirectional.backward_layer.units == 3
    np.testing.assert_allclose(zoo.outputs(result, example.x)[0], zoo.outputs(example.model, example.x)[0], atol=1e-6)


def test_units_that_reach_an_output_or_an_unknown_layer_stay_and_the_reason_is_named():
    k = flavours.keras_module("keras")
    model, _, _ = tagger(k, np.random.default_rng(0))
    with pytest.raises(ValueError, match="units of layer 'head' cannot be removed: the activation 'softmax' of 'head' mixes"):
        prune_units(model, units={"head": 2})
    linear = k.Sequential([k.Input((4,)), k.layers.Dense(3, name="hidden"), k.layers.Dense(2, name="out")])
    with pytest.raises(ValueError, match="units of layer 'out' cannot be removed: they reach a model output"):
        prune_units(linear, units={"out": 1})
    with pytest.raises(ValueError, match=r"units\['lstm'\] must be in \[1, 8\]"):
        prune_units(model, units={"lstm": 0})
    example = zoo.build("lstm_state_outputs", "keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prune_units(example.model)
    assert any("no layer has units that can be removed" in str(w.message) for w in caught)


def test_the_result_saves_and_loads_with_the_units_kept(tmp_path):
    model, x, y = tagger(flavours.keras_module("keras"), np.random.default_rng(0))
    result = prune_units(model, 0.5)
    result.fit(x, y, epochs=1, verbose=0)
    result.save(tmp_path / "small.keras")
    loaded = load_checkpoint(str(tmp_path / "small.keras"))
    np.testing.assert_allclose(loaded(x).numpy(), result(x).numpy(), atol=1e-6)
    assert lineage_of(loaded).units == {"lstm": 4, "gru": 3, "hidden": 2}
    assert applied_speedups(loaded)[-1].startswith("prune_units(lstm: 8->4")


def test_it_composes_with_hoisting_quantization_and_a_fused_litert_export():
    model, x, y = tagger(flavours.keras_module("keras"), np.random.default_rng(0))
    small = prune_units(model, 0.5)
    hoisted = hoist_lstm_projection(small)
    np.testing.assert_allclose(hoisted(x).numpy(), small(x).numpy(), atol=1e-5)
    exported = to_tflite(small, "dynamic", seq_len=7)
    np.testing.assert_allclose(LiteRTModel(exported).predict(x.astype("int32")), small(x).numpy(), atol=2e-2)
    trained = quantize(small)
    assert trained.fit(x, y, epochs=1, verbose=0).history["loss"][0] > 0


def test_gradual_pruning_silences_units_on_schedule_and_removing_them_changes_nothing(flavour):
    k = flavours.keras_module(flavour)
    model, x, y = tagger(k, np.random.default_rng(0))
    pruning = prune_units_gradually(model, 0.5, end_step=6, frequency=2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[pruning])  # steps 1-2: part of the way
    assert 0 < pruning.silenced["lstm"] < 4
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[pruning])  # steps 3-6: all the way
    assert pruning.silenced == {"lstm": 4, "gru": 3, "hidden": 3}

    small = pruning.pruned_model()

    assert [small.get_layer(name).units for name in ("lstm", "gru", "hidden")] == [4, 3, 2]
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), atol=1e-5)


def test_gradual_pruning_refuses_a_schedule_that_ends_before_it_begins():
    model, _, _ = tagger(flavours.keras_module("keras"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="end_step"):
        prune_units_gradually(model, 0.5, begin_step=10, end_step=5)


def test_a_layer_called_twice_is_refused_by_name():
    k = flavours.keras_module("keras")
    shared = k.layers.Dense(4, activation="relu", name="shared")
    first, second = k.Input((3,)), k.Input((3,))
    model = k.Model([first, second], k.layers.Dense(1)(k.layers.Concatenate()([shared(first), shared(second)])))
    model.compile(loss="mse")
    with pytest.raises(TypeError, match="layer 'shared' \\(Dense\\) is called more than once"):
        prune_units(model)


def test_a_pruned_lstm_exports_to_int8_with_the_fused_op():
    from fastnlp import build_lstm

    model = build_lstm(20, units=16, num_layers=2, seq_len=6, flavour="keras")
    small = prune_units(model, 0.5)
    x = np.random.default_rng(0).integers(0, 20, (32, 6)).astype("int32")
    lite = LiteRTModel(to_tflite(small, "int8", representative_data=x))
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops and "WHILE" not in lite.ops
    assert lite.predict(x[:4]).shape == (4, 6, 20)


def test_units_are_followed_into_a_nested_model(flavour):
    k = flavours.keras_module(flavour)
    ids = k.Input((7,), dtype="int32")
    encoder = k.Model(ids, k.layers.LSTM(8, name="inner_lstm")(k.layers.Embedding(30, 4)(ids)), name="encoder")
    outer = k.Input((7,), dtype="int32")
    hidden = k.layers.Dense(6, activation="relu", name="hidden")(encoder(outer))
    model = k.Model(outer, k.layers.Dense(2, activation="softmax", name="head")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 30, (4, 7))
    before = model.predict(x, verbose=0)

    smaller = prune_units(model, 0.5)

    assert model.predict(x, verbose=0) == pytest.approx(before)  # the input untouched
    assert "encoder" not in [layer.name for layer in smaller.layers]  # flat: the encoder's layers in its place
    assert (smaller.get_layer("inner_lstm").units, smaller.get_layer("hidden").units) == (4, 3)
    assert lineage_of(smaller).units == {"inner_lstm": 4, "hidden": 3}


def test_units_behind_a_nested_vectorizer_are_removed_and_the_vectorizer_kept(flavour):
    """Keras's export recipe with an LSTM: the flat copy keeps the vectorizer as it was, which the nested model calls
    too; the walk takes its call in the copy's graph (it refused, naming the nested model's input layer)."""
    k = flavours.keras_module(flavour)
    texts = ["the film was great", "awful plot", "a great cast", "bored"]
    vectorizer = k.layers.TextVectorization(max_tokens=20, output_sequence_length=6)
    vectorizer.adapt(texts)
    raw = k.Input((1,), dtype="string")
    vectorize = k.Model(raw, vectorizer(raw), name="vectorize")
    ids = k.Input((6,), dtype="int64")
    hidden = k.layers.LSTM(8, name="lstm")(k.layers.Embedding(20, 4)(ids))
    classifier = k.Model(ids, k.layers.Dense(2, name="head")(hidden), name="classifier")
    outer = k.Input((1,), dtype="string")
    model = k.Model(outer, classifier(vectorize(outer)))

    result = prune_units(model, 0.5)

    assert result.get_layer("lstm").units == 4
    kept = next(layer for layer in flavours.leaf_layers(result) if type(layer).__name__ == "TextVectorization")
    assert kept.get_vocabulary() == vectorizer.get_vocabulary()
    assert np.asarray(result(np.array([[t] for t in texts]))).shape == (4, 2)
