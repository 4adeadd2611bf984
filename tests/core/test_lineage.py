"""The lineage: what fastnlp applied travels with the model, through copies, saves and loads."""

import warnings
import zipfile

import keras
import numpy as np
import pytest
import tf_keras

from fastnlp import (
    applied_speedups,
    best_checkpoint,
    build_lstm,
    enable_mixed_precision,
    load_checkpoint,
    prune,
    set_steps_per_execution,
    strip_pruning,
)
from fastnlp.core.lineage import ATTRIBUTE, Lineage, Step, lineage_of, saved_lineage


def tiny(flavour):
    return build_lstm(12, units=8, num_layers=1, embedding_dim=4, seq_len=10, flavour=flavour)


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_a_saved_and_reloaded_model_lists_what_was_applied(flavour, tmp_path, quiet):
    model = set_steps_per_execution(enable_mixed_precision(tiny(flavour), "mixed_bfloat16"), steps=2)
    path = tmp_path / "model.keras"
    model.save(path)  # Keras's own save

    reloaded = load_checkpoint(path)

    assert applied_speedups(reloaded) == applied_speedups(model) == (
        "enable_mixed_precision(policy='mixed_bfloat16')",
        "set_steps_per_execution(steps=2)",
    )
    assert lineage_of(reloaded).origin_flavour == flavour
    assert saved_lineage(path) == lineage_of(model) == lineage_of(reloaded)
    steps = lineage_of(reloaded).steps  # each with the arguments that apply it again
    assert steps == (Step("enable_mixed_precision", {"policy": "mixed_bfloat16"}), Step("set_steps_per_execution", {"steps": 2}))


def test_best_checkpoint_saves_the_lineage_too(flavour, tmp_path, quiet):
    model = set_steps_per_execution(tiny(flavour), steps=2)
    x = np.random.default_rng(0).integers(0, 12, (8, 10))
    path = tmp_path / "best.keras"
    model.fit(x, x, validation_data=(x, x), epochs=1, callbacks=[best_checkpoint(model, path)], verbose=0)
    assert applied_speedups(load_checkpoint(path)) == ("set_steps_per_execution(steps=2)",)


def test_plain_keras_still_loads_the_file_without_the_record(flavour, tmp_path, quiet):
    model = set_steps_per_execution(tiny(flavour), steps=2)
    path = tmp_path / "model.keras"
    model.save(path)
    assert f"assets/{ATTRIBUTE}/lineage.json" in zipfile.ZipFile(path).namelist()

    loaded = {"keras": keras, "tf_keras": tf_keras}[flavour].models.load_model(path)

    assert applied_speedups(loaded) == ()
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]


def test_the_record_is_no_layer_of_the_model(flavour, quiet):
    plain, fast = tiny(flavour), set_steps_per_execution(tiny(flavour), steps=2)
    assert len(fast.layers) == len(plain.layers) and len(fast.weights) == len(plain.weights)
    assert lineage_of(plain) == Lineage() and applied_speedups(plain) == ()


def test_a_file_fastnlp_did_not_make_has_no_lineage(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.save(tmp_path / "m.keras")
    assert saved_lineage(tmp_path / "m.keras") is None
    assert applied_speedups(load_checkpoint(tmp_path / "m.keras")) == ()


def test_strip_pruning_of_a_reloaded_model_returns_the_flavour_prune_was_given(tmp_path, quiet):
    pruned = prune(tiny("keras"), sparsity=0.5, frequency=1)  # tf_keras, from a Keras 3 model
    x = np.random.default_rng(0).integers(0, 12, (8, 10))
    pruned.fit(x, x, epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "pruned.keras"
    pruned.save(path)

    plain = strip_pruning(load_checkpoint(path))

    assert isinstance(plain, keras.Model)  # it guessed tf_keras before the lineage was saved
    assert applied_speedups(plain)[0].startswith("prune(sparsity=0.5")


def test_lineage_json_round_trip_and_bad_records():
    lineage = Lineage(("a", "b"), "tf_keras", (Step("prune", {"sparsity": 0.5}),), {"lstm": 64})
    assert Lineage.from_json(lineage.to_json()) == lineage
    assert Lineage.from_json('{"format": 1, "applied": ["a"], "origin_flavour": "keras"}') == Lineage(("a",), "keras")
    with pytest.raises(ValueError, match="not a fastnlp lineage record"):
        Lineage.from_json('{"format": 99}')
    with pytest.raises(ValueError, match="'steps' must be"):
        Lineage.from_json('{"format": 2, "applied": [], "steps": [{"name": 1}]}')
    with pytest.raises(ValueError, match="'units' must map"):
        Lineage.from_json('{"format": 2, "applied": [], "units": {"lstm": "half"}}')


def test_applied_speedups_refuses_what_is_no_model():
    with pytest.raises(TypeError, match="applied_speedups expects a Keras model, got NoneType"):
        applied_speedups(None)


def _with_lineage_member(source, target, content: bytes):
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            if not item.filename.endswith("lineage.json"):
                new.writestr(item, old.read(item.filename))
        new.writestr("assets/fastnlp_lineage/lineage.json", content)


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"format": 1, "applied": "use_xla", "origin_flavour": "keras"}', "must be a list of strings"),  # read as 'u', 's', ...
        (b'{"format": 1, "applied": [], "origin_flavour": "torch"}', "origin_flavour"),
        (b"\xff\xfe not json", "codec"),
        (b" " * (2**20 + 10) + b"{}", "over|claims"),  # inflated: it was read whole (300 MB -> 1.37 GB peak)
    ],
)
def test_a_bad_lineage_record_is_not_read_and_the_model_still_loads(tmp_path, content, message):
    from fastnlp import applied_speedups, load_checkpoint, use_xla

    with pytest.warns(UserWarning):  # no GPU: XLA may be slower here
        model = use_xla(_compiled_tf_keras())
    model.save(tmp_path / "good.keras")
    _with_lineage_member(tmp_path / "good.keras", tmp_path / "bad.keras", content)
    with pytest.warns(UserWarning, match=f"loaded without fastnlp's lineage record.*({message})"):
        loaded = load_checkpoint(tmp_path / "bad.keras")
    assert applied_speedups(loaded) == ()
    assert loaded.count_params() == model.count_params()


def _compiled_tf_keras():
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model
