"""prune and strip_pruning: pruning during a plain fit, the masks applied, files that reload."""


import numpy as np
import pytest
from compress_data import SEQ, VOCAB, masked_bidirectional_tagger, pattern_data

from fastnlp import (
    build_lstm,
    load_checkpoint,
    prune,
    strip_pruning,
    weight_sparsity,
)
from fastnlp.core import flavour as flavours
from fastnlp.core.notices import NoEffectWarning

pytestmark = pytest.mark.filterwarnings("ignore::fastnlp.FlavourWarning")


def test_pruned_model_predicts_as_the_input_before_training(flavour):
    model = build_lstm(VOCAB, units=8, num_layers=2, seq_len=SEQ, flavour=flavour)
    x, _ = pattern_data(8)
    pruned = prune(model, sparsity=0.5)
    assert flavours.detect(pruned) == "tf_keras"
    np.testing.assert_allclose(pruned.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


# each flavour with one of the two sparsities: the flavour's route and the sparsity reached are independent
@pytest.mark.parametrize(("flavour", "sparsity"), [("keras", 0.8), ("tf_keras", 0.5)])
def test_plain_fit_prunes_and_strip_keeps_the_zeros(flavour, sparsity):
    model = build_lstm(VOCAB, units=16, num_layers=2, seq_len=SEQ, flavour=flavour)
    x, y = pattern_data()
    pruned = prune(model, sparsity=sparsity, frequency=2)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0)  # no UpdatePruningStep callback

    plain = strip_pruning(pruned)

    assert flavours.detect(plain) == flavour  # back in the flavour given to prune
    assert not any("prune" in type(layer).__name__.lower() for layer in plain.layers)
    measured = weight_sparsity(plain)
    for name in ("lstm_1/kernel", "lstm_1/recurrent_kernel", "lstm_2/kernel", "logits/kernel"):
        assert measured[name] == pytest.approx(sparsity, abs=0.02), name
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)
    plain.fit(x, y, epochs=1, verbose=0)  # compiled as the input was


def test_polynomial_schedule_reaches_its_target_by_end_step():
    model = build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ, flavour="tf_keras")
    x, y = pattern_data(32)
    pruned = prune(model, 0.6, schedule="polynomial", initial_sparsity=0.1, end_step=4, frequency=1, layer_names=["lstm_1"])
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0)  # 2 steps: between the two
    halfway = weight_sparsity(pruned)["lstm_1/kernel"]
    pruned.fit(x, y, epochs=2, batch_size=16, verbose=0)  # steps 3-6
    measured = weight_sparsity(strip_pruning(pruned))
    assert 0.1 < halfway < 0.6
    assert measured["lstm_1/kernel"] == pytest.approx(0.6, abs=0.02)
    assert measured["logits/kernel"] == 0.0  # not chosen, not pruned


def test_pruned_model_reloads_without_custom_objects_and_keeps_pruning(tmp_path):
    x, y = pattern_data()
    pruned = prune(build_lstm(VOCAB, units=8, num_layers=1, seq_len=SEQ), sparsity=0.5, frequency=1)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "pruned.keras"
    pruned.save(path)

    loaded = load_checkpoint(path)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)

    np.testing.assert_allclose(strip_pruning(loaded, to="keras").predict(x, verbose=0),
                               strip_pruning(loaded).predict(x, verbose=0), atol=1e-5)
    assert weight_sparsity(strip_pruning(loaded))["lstm_1/kernel"] == pytest.approx(0.5, abs=0.02)


def test_strip_before_any_mask_update_says_nothing_was_pruned():
    pruned = prune(build_lstm(VOCAB, units=8, num_layers=1, flavour="tf_keras"), sparsity=0.5)
    with pytest.warns(NoEffectWarning, match="no weight was pruned"):
        strip_pruning(pruned)
    with pytest.raises(ValueError, match="no pruning wrappers"):
        strip_pruning(build_lstm(VOCAB, units=8, num_layers=1, flavour="tf_keras"))



def test_the_padding_mask_survives_pruning_and_stripping(flavour):
    import zoo

    example = zoo.build("masked_stack", flavour)
    pruned = prune(example.model, sparsity=0.5, frequency=1)
    assert zoo.padding_sensitivity(pruned, example.x) == 0.0  # tfmot's wrapper dropped the Embedding's mask
    np.testing.assert_allclose(pruned.predict(example.x, verbose=0), example.model.predict(example.x, verbose=0), atol=1e-6)
    pruned.fit(example.x, example.y, batch_size=4, epochs=1, verbose=0)
    stripped = strip_pruning(pruned)
    assert zoo.padding_sensitivity(stripped, example.x) == 0.0
    np.testing.assert_allclose(stripped.predict(example.x, verbose=0), pruned.predict(example.x, verbose=0), atol=1e-6)


def test_a_bidirectional_and_a_time_distributed_layer_are_pruned_and_stripped_back():
    # Keras 3, converted to tf_keras and back; the zoo's contract tests prune Bidirectional models in both flavours
    model = masked_bidirectional_tagger(flavours.keras_module("keras"), "GRU")
    x, y = pattern_data()
    pruned = prune(model, sparsity=0.5, frequency=2)
    pruned.fit(x, y, epochs=1, batch_size=16, verbose=0)

    plain = strip_pruning(pruned)

    assert flavours.detect(plain) == "keras"
    assert [type(plain.get_layer(name)).__name__ for name in ("both_ways", "per_token")] == ["Bidirectional", "TimeDistributed"]
    measured = weight_sparsity(pruned)
    for name in ("both_ways/forward_rnn/kernel", "both_ways/backward_rnn/recurrent_kernel", "per_token/kernel"):
        assert measured[name] == pytest.approx(0.5, abs=0.02), (name, measured)
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize(("flavour", "family"), [("keras", "custom_standardize_classifier"), ("tf_keras", "nested_vectorizer_conv1d")])
def test_a_string_model_is_pruned_around_its_vectorizer_and_stripped_back(flavour, family):
    import zoo

    example = zoo.build(family, flavour)
    pruned = prune(example.model, sparsity=0.5, frequency=1)
    np.testing.assert_allclose(zoo.outputs(pruned, example.x)[0], zoo.outputs(example.model, example.x)[0], atol=1e-6)
    pruned.fit(example.x, example.y, epochs=1, batch_size=4, verbose=0)

    plain = strip_pruning(pruned)

    assert flavours.detect(plain) == flavour
    (vectorizer,) = [layer for layer in plain.layers if type(layer).__name__ == "TextVectorization"]  # nested ones inlined
    (original,) = [layer for layer in flavours.leaf_layers(example.model) if type(layer).__name__ == "TextVectorization"]
    assert vectorizer.get_vocabulary() == original.get_vocabulary()
    np.testing.assert_allclose(zoo.outputs(plain, example.x)[0], zoo.outputs(pruned, example.x)[0], atol=1e-5)
    assert min(weight_sparsity(plain).values()) == pytest.approx(0.5, abs=0.02)
