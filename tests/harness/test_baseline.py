import numpy as np
import pytest

from fastnlp.harness.baseline import blog_windows, build_blog_model


def test_blog_windows_slide_by_one_with_float_ids_and_one_hot_targets():
    ids = np.arange(12) % 5
    x, y = blog_windows(ids, vocab_size=5, seq_len=4)
    assert x.shape == (8, 4, 1) and x.dtype == np.float32
    assert y.shape == (8, 5)
    np.testing.assert_allclose(x[1, :, 0], ids[1:5] / 5)
    assert y[1].argmax() == ids[5] and y.sum() == 8
    with pytest.raises(ValueError, match="more than seq_len"):
        blog_windows(ids[:4], 5, seq_len=4)


def test_blog_model_is_the_three_lstm_stack_with_categorical_crossentropy(flavour):
    model = build_blog_model(vocab_size=40, units=16, flavour=flavour)
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds == ["LSTM", "Dropout", "LSTM", "Dropout", "LSTM", "Dropout", "Dense"]
    assert [layer.return_sequences for layer in model.layers if kinds[model.layers.index(layer)] == "LSTM"] == [True, True, False]
    assert model.input_shape == (None, 100, 1) and model.output_shape == (None, 40)
    assert model.loss == "categorical_crossentropy"
