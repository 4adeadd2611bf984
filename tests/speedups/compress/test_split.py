"""split_preprocessing: a string model as its vectorizer and a numeric model that trains and exports alone."""

import warnings

import numpy as np
import pytest
import zoo

from fastnlp import LiteRTModel, build_lstm, split_preprocessing, to_tflite


@pytest.mark.parametrize("family", ["string_lstm_classifier", "custom_standardize_classifier", "nested_vectorizer_conv1d"])
def test_the_two_parts_compute_the_model_and_the_numeric_part_exports(flavour, family):
    case = zoo.build(family, flavour)
    model = case.model
    before = [w.copy() for w in model.get_weights()]

    vectorizer, numeric = split_preprocessing(model)

    ids = np.asarray(vectorizer(case.x))
    assert np.issubdtype(ids.dtype, np.integer) and ids.shape[0] == len(case.x)
    np.testing.assert_allclose(numeric.predict(ids, verbose=0), model.predict(case.x, verbose=0), atol=1e-6)
    numeric.fit(ids, case.y, epochs=1, batch_size=4, verbose=0)  # its own weights: the model is untouched
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a masked LSTM exports as a loop, and says so
        lite = LiteRTModel(to_tflite(numeric, "dynamic"))
    np.testing.assert_allclose(lite.predict(ids), numeric.predict(ids, verbose=0), atol=2e-2)


def test_a_model_without_preprocessing_or_not_functional_is_refused(flavour):
    numeric = build_lstm(20, units=4, num_layers=1, seq_len=5, flavour=flavour)
    with pytest.raises(ValueError, match="no preprocessing layer"):
        split_preprocessing(numeric)
    with pytest.raises(TypeError, match="expected a Keras 3"):
        split_preprocessing("model.keras")


def test_to_tflite_refuses_a_string_model_and_names_the_way_out(flavour):
    with pytest.raises(ValueError, match=r"to_tflite: layer .*TextVectorization.*split_preprocessing\(model\)"):
        to_tflite(zoo.build("string_lstm_classifier", flavour).model)
