import functools
import warnings

import numpy as np
import pytest
from conftest import expect_slow_bf16_warning

from fastnlp import SpeedupWarning, applied_speedups, build_lstm, enable_mixed_precision
from fastnlp.core import registry
from fastnlp.speedups import catalog


def test_defaults_are_the_blogs_three_lstm_512_stack():
    model = build_lstm(65)
    lstms = [layer for layer in model.layers if layer.__class__.__name__ == "LSTM"]
    dropouts = [layer for layer in model.layers if layer.__class__.__name__ == "Dropout"]
    assert [layer.units for layer in lstms] == [512, 512, 512]
    assert [layer.rate for layer in dropouts] == [0.2, 0.2, 0.2]
    names = [layer.name for layer in model.layers]
    assert names == ["token_ids", "embedding", "lstm_1", "dropout_1", "lstm_2", "dropout_2", "lstm_3", "dropout_3", "logits", "probabilities"]
    assert model.get_layer("probabilities").get_config()["activation"] == "softmax"
    assert model.output_shape == (None, None, 65)  # char_lm: a prediction at every position
    assert model.loss == "sparse_categorical_crossentropy"


def test_char_lm_trains_on_integer_ids(flavour):
    model = build_lstm(20, units=8, num_layers=2, embedding_dim=4, seq_len=12, flavour=flavour)
    x = np.random.default_rng(0).integers(0, 20, (8, 12))
    history = model.fit(x, np.roll(x, -1, axis=1), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).shape == (8, 12, 20)


def test_classify_gives_one_label_per_sequence_and_masks_padding(flavour):
    model = build_lstm(50, task="classify", num_classes=3, units=8, num_layers=2, flavour=flavour)
    assert model.output_shape == (None, 3)
    assert model.get_layer("embedding").get_config()["mask_zero"] is True
    x = np.array([[5, 6, 7, 0, 0], [5, 6, 7, 0, 0]])
    padded_more = np.array([[5, 6, 7, 0, 0, 0, 0, 0], [5, 6, 7, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(padded_more, verbose=0), atol=1e-6)
    model.fit(x, np.array([0, 2]), epochs=1, verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"vocab_size": 1}, "vocab_size must be at least 2"),
        ({"vocab_size": 10, "units": 0}, "units must be a positive integer"),
        ({"vocab_size": 10, "num_layers": 2.5}, "num_layers must be a positive integer"),
        ({"vocab_size": 10, "dropout": 1.0}, "dropout must be a number in"),
        ({"vocab_size": 10, "task": "translate"}, "task must be one of"),
        ({"vocab_size": 10, "task": "classify", "num_classes": 1}, "num_classes must be"),
        ({"vocab_size": 10, "seq_len": 0}, "seq_len must be a positive integer"),
        ({"vocab_size": 10, "learning_rate": 0}, "learning_rate must be a positive"),
        ({"vocab_size": 10, "flavour": "keras2"}, "flavour must be one of"),
        ({"vocab_size": 10, "speedups": ["turbo"]}, "unknown speedup 'turbo'; registered speedups are"),
        ({"vocab_size": 10, "speedups": ["enable_mixed_precision", enable_mixed_precision]}, "listed twice"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_lstm(**kwargs)


def test_a_speedup_must_be_a_registered_transform():
    with pytest.raises(TypeError, match="registered transform function"):
        build_lstm(10, speedups=[print])
    with pytest.raises(ValueError, match="by keyword"):
        build_lstm(10, speedups=[functools.partial(enable_mixed_precision, "mixed_bfloat16")])


def test_speedups_by_name_function_or_partial_equal_plain_chaining(flavour, cpu_kind):
    bf16 = functools.partial(enable_mixed_precision, policy="mixed_bfloat16")
    with expect_slow_bf16_warning(cpu_kind):
        chained = enable_mixed_precision(build_lstm(12, units=8, num_layers=1, flavour=flavour), policy="mixed_bfloat16")
        built = build_lstm(12, units=8, num_layers=1, flavour=flavour, speedups=[bf16])
    assert [layer.dtype_policy.name for layer in built.layers] == [layer.dtype_policy.name for layer in chained.layers]
    assert applied_speedups(built) == applied_speedups(chained)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpeedupWarning)
        for spec in ("enable_mixed_precision", enable_mixed_precision):
            assert build_lstm(12, units=8, num_layers=1, flavour=flavour, speedups=[spec]) is not None


@pytest.fixture
def extra_transforms(monkeypatch):
    """Fake transforms in later stages that record their calls; one cannot be combined with mixed precision."""
    known = registry._MODEL_TRANSFORMS
    monkeypatch.setattr(known, "_entries", dict(known._entries))  # the fakes leave with the test
    calls = []

    def recorder(name):
        def transform(model):
            calls.append(name)
            return registry.Applied(model, name)

        transform.__name__ = name
        return transform

    registry.speedup(stage="wrappers")(recorder("fake_wrapper"))
    registry.speedup(stage="strategy")(recorder("fake_strategy"))
    registry.speedup(stage="compile_options", conflicts=["enable_mixed_precision"])(recorder("fake_conflict"))
    return calls


def test_speedups_are_applied_in_stage_order_whatever_the_listing(extra_transforms):
    order = [t.name for t, _ in catalog.plan(["fake_strategy", "fake_wrapper", "enable_mixed_precision"])]
    assert order == ["enable_mixed_precision", "fake_wrapper", "fake_strategy"]
    build_lstm(10, units=4, num_layers=1, speedups=["fake_strategy", "fake_wrapper"])
    assert extra_transforms == ["fake_wrapper", "fake_strategy"]


def test_an_impossible_combination_is_refused_before_building(extra_transforms):
    with pytest.raises(ValueError, match=r"'fake_conflict' cannot be combined with \['enable_mixed_precision'\]"):
        build_lstm(10, speedups=["enable_mixed_precision", "fake_conflict"])
    assert extra_transforms == []


def test_a_transform_is_registered_once(extra_transforms):
    def fake_wrapper(model):
        return model

    with pytest.raises(ValueError, match="already registered"):
        registry.speedup(stage="wrappers")(fake_wrapper)
    with pytest.raises(ValueError, match="stage must be one of"):
        registry.speedup(stage="later")


def test_numpy_integers_a_single_speedup_name_and_bad_rates():
    import warnings

    import numpy as np

    from fastnlp import applied_speedups

    model = build_lstm(np.int64(20), units=np.int32(8), num_layers=1, seq_len=np.int64(5))  # NumPy integers are integers
    assert model.output_shape == (None, 5, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = build_lstm(20, units=8, num_layers=1, speedups="use_xla")  # it said "unknown speedup 'u'"
    assert applied_speedups(fast)[0].startswith("use_xla")
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number, got inf"):
        build_lstm(20, units=8, num_layers=1, learning_rate=float("inf"))
    with pytest.raises(ValueError, match="dropout must be a number in"):
        build_lstm(20, units=8, num_layers=1, dropout=None)
    with pytest.raises(TypeError, match="applied_speedups expects a Keras model, got NoneType"):  # "cannot create weak reference"
        applied_speedups(None)
