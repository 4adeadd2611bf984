import warnings

import numpy as np
import pytest

from fastnlp import (
    NoEffectWarning,
    SpeedupWarning,
    applied_speedups,
    build_lstm,
    enable_mixed_precision,
)
from fastnlp.core.flavour import keras_module
from fastnlp.speedups import precision

from conftest import AMX_CPU, expect_slow_bf16_warning

CPU_AVX512_BF16 = {"avx2", "avx512f", "avx512_bf16"}


@pytest.mark.parametrize(
    ("gpus", "tpu", "flags", "expected"),
    [
        ([(8, 0)], False, set(), "mixed_float16"),
        ([(7, 0), (9, 0)], False, set(), "mixed_float16"),
        ([(6, 1)], False, {"amx_bf16"}, None),  # a pre-Tensor-Core GPU: no gain, and the GPU decides
        ([], True, set(), "mixed_bfloat16"),
        ([], False, {"amx_bf16", "amx_tile", "avx512_bf16"}, "mixed_bfloat16"),
        ([], False, {"avx512_bf16"}, None),
        ([], False, {"avx2"}, None),
    ],
)
def test_auto_policy_follows_the_hardware(gpus, tpu, flags, expected):
    chosen, reason = precision.auto_policy(gpus, tpu, flags)
    assert chosen == expected
    assert bool(reason) == (expected is None)


def test_auto_without_a_fast_path_returns_an_unchanged_copy_and_says_why(machine, flavour):
    machine.pretend(cpu_flags=CPU_AVX512_BF16)
    model = build_lstm(12, units=8, num_layers=1, flavour=flavour)
    with pytest.warns(NoEffectWarning, match="AVX512-BF16 but no AMX"):
        result = enable_mixed_precision(model)
    assert result is not model
    assert {layer.dtype_policy.name for layer in result.layers} == {layer.dtype_policy.name for layer in model.layers}
    assert "no effect" in applied_speedups(result)[-1]


def test_auto_on_a_tensor_core_gpu_picks_float16(machine, flavour):
    machine.pretend(cpu_flags=set(), gpus=[(9, 0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto picking the right thing says nothing
        result = enable_mixed_precision(build_lstm(12, units=8, num_layers=1, flavour=flavour))
    assert result.get_layer("lstm_1").dtype_policy.name == "mixed_float16"


@pytest.mark.parametrize(("policy", "atol"), [("mixed_float16", 5e-3), ("mixed_bfloat16", 3e-2)])
def test_explicit_policy_is_honoured_with_float32_outputs(machine, flavour, policy, atol):
    machine.pretend(cpu_flags=CPU_AVX512_BF16)
    model = build_lstm(30, units=16, num_layers=2, seq_len=20, flavour=flavour)
    x = np.random.default_rng(1).integers(0, 30, (16, 20))

    with pytest.warns(SpeedupWarning):
        result = enable_mixed_precision(model, policy)

    policies = {layer.name: layer.dtype_policy.name for layer in result.layers}
    assert policies["token_ids"] in ("float32", "int32")  # the input keeps its own dtype
    assert {policies[name] for name in ("embedding", "lstm_1", "lstm_2", "dropout_1", "logits")} == {policy}
    assert policies["probabilities"] == "float32"
    assert result.output.dtype == "float32"
    # float16 needs loss scaling, bfloat16 does not
    assert ("LossScale" in type(result.optimizer).__name__) == (policy == "mixed_float16")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(result.predict(x, verbose=0), expected, rtol=0, atol=atol)
    assert applied_speedups(result) == (f"enable_mixed_precision(policy={policy!r})",)


def test_recompiles_with_the_same_loss_metrics_and_optimizer_config(flavour, cpu_kind):
    model = build_lstm(12, task="classify", units=8, num_layers=1, learning_rate=0.0123, flavour=flavour)
    with expect_slow_bf16_warning(cpu_kind):
        result = enable_mixed_precision(model, "mixed_bfloat16")
    before, after = model.get_compile_config(), result.get_compile_config()
    assert after == before
    assert result.optimizer is not model.optimizer
    assert float(result.optimizer.learning_rate.numpy()) == pytest.approx(0.0123)


def test_switching_a_float16_model_to_bfloat16_drops_loss_scaling(flavour):
    with pytest.warns(SpeedupWarning):
        half = enable_mixed_precision(build_lstm(12, units=8, num_layers=1, flavour=flavour), "mixed_float16")
        brain = enable_mixed_precision(half, "mixed_bfloat16")
    assert "LossScale" not in type(brain.optimizer).__name__
    assert brain.get_layer("lstm_1").dtype_policy.name == "mixed_bfloat16"
    assert len(applied_speedups(brain)) == 2


def test_an_uncompiled_model_stays_uncompiled(flavour, cpu_kind):
    from fastnlp.core.flavour import compile_arguments, keras_module

    k = keras_module(flavour)
    inputs = k.Input((5,), dtype="int32")
    model = k.Model(inputs, k.layers.Dense(3)(k.layers.Dense(4)(k.layers.Embedding(10, 4)(inputs))))
    with expect_slow_bf16_warning(cpu_kind):
        result = enable_mixed_precision(model, "mixed_bfloat16")
    assert compile_arguments(result) is None
    assert result.layers[-1].dtype_policy.name == "float32"


@pytest.mark.parametrize("policy", ["float16", "mixed_float32", "", 16])
def test_unknown_policy_names_the_valid_ones(policy):
    model = build_lstm(12, units=4, num_layers=1)
    with pytest.raises(ValueError, match="'auto', 'mixed_float16', 'mixed_bfloat16'"):
        enable_mixed_precision(model, policy)


def test_auto_on_a_cpu_with_amx_picks_bfloat16_and_says_nothing(machine, flavour):
    machine.pretend(cpu_flags=AMX_CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = enable_mixed_precision(build_lstm(12, units=8, num_layers=1, flavour=flavour))
    assert result.get_layer("lstm_1").dtype_policy.name == "mixed_bfloat16"
    assert applied_speedups(result) == ("enable_mixed_precision(policy='mixed_bfloat16')",)


def test_the_layers_inside_bidirectional_compute_in_the_policy(flavour):
    k = keras_module(flavour)
    inputs = k.Input((6,), dtype="int32")
    x = k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True))(k.layers.Embedding(10, 4, mask_zero=True)(inputs))
    model = k.Model(inputs, k.layers.TimeDistributed(k.layers.Dense(3, activation="softmax"))(x))
    with pytest.warns(SpeedupWarning):
        result = enable_mixed_precision(model, "mixed_bfloat16")
    both = result.layers[2]
    assert [both.forward_layer.dtype_policy.name, both.backward_layer.dtype_policy.name] == ["mixed_bfloat16"] * 2
    assert result.layers[-1].layer.dtype_policy.name == "float32"  # the wrapped output layer stays float32
    x = np.random.default_rng(0).integers(0, 10, (4, 6))
    np.testing.assert_allclose(result.predict(x, verbose=0), model.predict(x, verbose=0), atol=3e-2)


def test_a_model_whose_only_computing_layer_is_an_output_is_no_effect(flavour):
    k = keras_module(flavour)
    inputs = k.Input((6,), dtype="int32")
    _, h, c = k.layers.LSTM(4, return_state=True)(k.layers.Embedding(10, 4)(inputs))
    model = k.Model(inputs, [h, c])  # an inference encoder: its LSTM makes the outputs
    with pytest.warns(NoEffectWarning, match="every layer with weights to multiply produces a model output"):
        result = enable_mixed_precision(model, "mixed_bfloat16")
    assert applied_speedups(result) == ("enable_mixed_precision(policy='mixed_bfloat16'): no effect",)
