"""configure_gpu, cudnn_report and use_xla on a CPU-only machine (GPU paths through stand-in devices)."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from fastnlp import (
    SpeedupWarning,
    applied_speedups,
    build_lstm,
    configure_gpu,
    cudnn_report,
    enable_cudnn,
    enable_mixed_precision,
    use_xla,
)
from fastnlp.core import flavour as flavours
from fastnlp.core import hardware
from fastnlp.speedups import gpu as gpu_module


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"memory_fraction": 0}, r"memory_fraction must be in \(0, 1\]"),
        ({"memory_fraction": 1.5}, r"memory_fraction must be in \(0, 1\]"),
        ({"memory_limit_mb": -1}, "memory_limit_mb must be a positive integer"),
        ({"memory_fraction": 0.5, "memory_limit_mb": 100}, "not both"),
        ({"memory_limit_mb": 100, "memory_growth": True}, "either a memory cap or memory growth"),
    ],
)
def test_configure_gpu_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        configure_gpu(**kwargs)


def test_configure_gpu_without_a_gpu_warns_and_does_nothing():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.warns(SpeedupWarning, match="no GPU visible"):
        assert configure_gpu(memory_growth=True) == []


class FakeGPUs:
    """Stand-ins for tf.config's device calls, recording what configure_gpu asks of them."""

    def __init__(self, monkeypatch, count=2, initialised=False):
        self.devices = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]
        self.calls = []
        self.initialised = initialised
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: list(self.devices) if kind == "GPU" else [])
        monkeypatch.setattr(tf.config, "set_visible_devices", self.record("visible"))
        monkeypatch.setattr(tf.config.experimental, "set_memory_growth", self.record("growth"))
        monkeypatch.setattr(tf.config, "set_logical_device_configuration", self.record("logical"))

    def record(self, name):
        def call(*args):
            if self.initialised:
                raise RuntimeError("Physical devices cannot be modified after being initialized")
            self.calls.append((name, *args))

        return call


def test_configure_gpu_caps_each_gpu_at_a_fraction_of_its_memory(monkeypatch):
    fake = FakeGPUs(monkeypatch)
    monkeypatch.setattr(hardware, "gpu_total_memory_mb", lambda: [80_000, 40_000])

    applied = configure_gpu(memory_fraction=0.4)

    limits = [call[2][0].memory_limit for call in fake.calls if call[0] == "logical"]
    assert limits == [32_000, 16_000]
    assert applied == ["/physical_device:GPU:0: memory capped at 32000 MB", "/physical_device:GPU:1: memory capped at 16000 MB"]


def test_configure_gpu_selects_devices_and_growth(monkeypatch):
    fake = FakeGPUs(monkeypatch)
    configure_gpu(memory_growth=True, devices=[1])
    assert fake.calls == [("visible", [fake.devices[1]], "GPU"), ("growth", fake.devices[1], True)]
    with pytest.raises(ValueError, match="indices of the 2 visible GPU"):
        configure_gpu(devices=[2])


def test_configure_gpu_called_too_late_says_when_to_call_it(monkeypatch):
    FakeGPUs(monkeypatch, initialised=True)
    with pytest.raises(RuntimeError, match="must run before TensorFlow initialises the GPUs"):
        configure_gpu(memory_limit_mb=1000)


def test_a_fraction_needs_the_drivers_memory_figure(monkeypatch):
    FakeGPUs(monkeypatch)
    monkeypatch.setattr(hardware, "gpu_total_memory_mb", lambda: [])
    with pytest.raises(RuntimeError, match="pass memory_limit_mb instead"):
        configure_gpu(memory_fraction=0.5)


def recurrent_model(flavour, **lstm_options):
    keras = flavours.keras_module(flavour)
    inputs = keras.Input((5, 3))
    hidden = keras.layers.LSTM(4, return_sequences=True, name="plain")(inputs)
    hidden = keras.layers.LSTM(4, return_sequences=True, name="changed", **lstm_options)(hidden)
    outputs = keras.layers.GRU(2, name="gru", reset_after=False)(hidden)
    return keras.Model(inputs, outputs)


def test_cudnn_report_names_what_blocks_each_layer(flavour):
    report = {status.layer: status for status in cudnn_report(recurrent_model(flavour, recurrent_dropout=0.2, activation="relu"))}

    assert report["plain"].eligible and any("no GPU visible" in note for note in report["plain"].reasons) == (
        not tf.config.list_physical_devices("GPU")
    )
    assert not report["changed"].eligible
    assert "recurrent_dropout=0.2 (cuDNN needs 0)" in report["changed"].reasons
    assert "activation='relu' (cuDNN needs 'tanh')" in report["changed"].reasons
    assert not report["gru"].eligible and "reset_after=False" in str(report["gru"])
    assert [status.layer for status in cudnn_report(recurrent_model(flavour, unroll=True))][:2] == ["plain", "changed"]
    assert "unroll=True" in cudnn_report(recurrent_model(flavour, unroll=True))[1].reasons


def test_cudnn_report_notes_masks_and_xla(flavour):
    classifier = build_lstm(20, task="classify", units=4, num_layers=1, flavour=flavour)
    assert any("right-padded" in note for note in cudnn_report(classifier)[0].reasons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpeedupWarning)
        compiled = use_xla(build_lstm(20, units=4, num_layers=1, flavour=flavour))
    assert any("XLA cannot compile the cuDNN kernel" in note for note in cudnn_report(compiled)[0].reasons)


def test_keras3_use_cudnn_false_is_reported():
    import keras

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(3, use_cudnn=False, name="lstm")])
    assert "use_cudnn=False" in cudnn_report(model)[0].reasons


def test_use_xla_compiles_with_xla_warns_on_cpu_and_says_what_it_applied(flavour):
    model = build_lstm(20, units=4, num_layers=1, flavour=flavour)
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("the CPU warning")
    with pytest.warns(SpeedupWarning, match="no GPU visible"):
        result = use_xla(model)
    assert result.get_compile_config()["jit_compile"] is True
    assert model.get_compile_config().get("jit_compile") is not True
    assert applied_speedups(result) == ("use_xla (jit_compile=True)",)


def test_use_xla_needs_a_compiled_model(flavour):
    keras = flavours.keras_module(flavour)
    with pytest.raises(ValueError, match="compile the model first"):
        use_xla(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))


def test_gpu_memory_is_read_from_the_driver_without_tensorflow():
    assert all(isinstance(total, int) and total > 0 for total in hardware.gpu_total_memory_mb())
    assert gpu_module.__name__ == "fastnlp.speedups.gpu"


def test_enable_cudnn_fixes_what_does_not_change_the_math(flavour):
    keras = flavours.keras_module(flavour)
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(4, unroll=True, return_sequences=True, name="a"),
                              keras.layers.GRU(2, unroll=True, name="b")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpeedupWarning)
        fast = enable_cudnn(model)
    assert [status.eligible for status in cudnn_report(fast)] == [True, True]
    assert model.get_layer("a").get_config()["unroll"] is True  # the input is untouched
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_enable_cudnn_turns_keras3_use_cudnn_back_on_and_rebuilds_keep_it():
    import keras

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(3, use_cudnn=False, name="lstm")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert enable_mixed_precision(model, "mixed_bfloat16").get_layer("lstm").use_cudnn is False
        assert enable_cudnn(model).get_layer("lstm").use_cudnn == "auto"


def test_enable_cudnn_refuses_to_change_the_math(flavour):
    keras = flavours.keras_module(flavour)
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(4, recurrent_dropout=0.1, return_sequences=True, name="dropped"),
                              keras.layers.LSTM(4, unroll=True, name="unrolled")])
    with pytest.raises(ValueError, match=r"change the math of dropped: recurrent_dropout=0.1"):
        enable_cudnn(model)
    with pytest.warns(SpeedupWarning, match="left on the generic kernel: dropped"):
        fast = enable_cudnn(model, skip_blocked=True)
    assert fast.get_layer("dropped").get_config()["recurrent_dropout"] == 0.1
    assert fast.get_layer("unrolled").get_config()["unroll"] is False


def test_lstms_inside_bidirectional_are_reported_and_fixed(flavour):
    keras = flavours.keras_module(flavour)
    dropped = keras.Sequential([keras.Input((5, 4)), keras.layers.Bidirectional(keras.layers.LSTM(8, recurrent_dropout=0.1))])
    report = cudnn_report(dropped)  # it was [] : the wrapped layers went unseen
    assert [status.eligible for status in report] == [False, False]
    assert all("recurrent_dropout=0.1" in str(status) for status in report)
    with pytest.raises(ValueError, match="recurrent_dropout=0.1"):
        enable_cudnn(dropped)
    unrolled = keras.Sequential([keras.Input((5, 4)), keras.layers.Bidirectional(keras.layers.LSTM(8, unroll=True), name="bi")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = enable_cudnn(unrolled)  # it recorded itself as applied and left both directions unrolled
    wrapper = fast.get_layer("bi")
    assert wrapper.forward_layer.unroll is False and wrapper.backward_layer.unroll is False
    assert [status.eligible for status in cudnn_report(fast)] == [True, True]
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    np.testing.assert_allclose(fast.predict(x, verbose=0), unrolled.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_enable_cudnn_with_nothing_to_change_is_no_effect(flavour):
    from fastnlp.core.notices import NoEffectWarning

    k = flavours.keras_module(flavour)
    conv = k.Sequential([k.Input((6, 4)), k.layers.Conv1D(3, 2), k.layers.GlobalMaxPooling1D()])
    with pytest.warns(NoEffectWarning, match="no LSTM or GRU layer"):
        assert applied_speedups(enable_cudnn(conv)) == ("enable_cudnn: no effect",)
    eligible = k.Sequential([k.Input((6, 4)), k.layers.LSTM(3)])
    with pytest.warns(NoEffectWarning, match="cuDNN-eligible already"):
        enable_cudnn(eligible)
