import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastnlp import best_checkpoint, build_lstm, load_checkpoint
from fastnlp.core.checkpoint import save_atomically


def test_saves_only_on_improvement_and_reloads_safely(flavour, tmp_path):
    model = build_lstm(12, units=4, num_layers=1, flavour=flavour)
    path = tmp_path / "best.keras"
    callback = best_checkpoint(model, path)
    callback.set_model(model)

    callback.on_epoch_end(0, {"val_loss": 2.0})
    saved = path.stat().st_mtime_ns
    callback.on_epoch_end(1, {"val_loss": 3.0})
    assert path.stat().st_mtime_ns == saved
    callback.on_epoch_end(2, {"val_loss": 1.0})
    assert path.stat().st_mtime_ns != saved
    assert callback.best == 1.0
    assert os.listdir(tmp_path) == ["best.keras"]  # no temporary file left behind

    loaded = load_checkpoint(path)
    x = np.arange(10).reshape(2, 5)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert type(loaded).__module__.split(".")[0] == flavour


def test_max_mode_and_bad_arguments(tmp_path):
    model = build_lstm(12, units=4, num_layers=1)
    callback = best_checkpoint(model, tmp_path / "best.keras", monitor="val_accuracy", mode="max")
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    callback.on_epoch_end(1, {"val_accuracy": 0.7})
    assert callback.best == -0.7
    with pytest.warns(UserWarning, match="'val_accuracy' is not logged because fit has no validation data"):
        callback.on_epoch_end(2, {"loss": 1.0, "accuracy": 0.1})
    with pytest.raises(ValueError, match="must end in '.keras'"):
        best_checkpoint(model, tmp_path / "best.h5")
    with pytest.raises(ValueError, match="mode must be"):
        best_checkpoint(model, tmp_path / "best.keras", mode="lowest")


SAVE_FOREVER = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from fastnlp import build_lstm
    from fastnlp.core.checkpoint import save_atomically
    model = build_lstm(40, units=128, num_layers=2, flavour=sys.argv[2])  # a few MB per save
    step = 0
    while True:
        model.get_layer("logits").bias.assign(model.get_layer("logits").bias + 1.0)
        save_atomically(model, sys.argv[1])
        step += 1
        print(step, flush=True)
    """
)


@pytest.mark.parametrize("kill_after_saves", [1, 3, 6])
def test_a_process_killed_while_saving_never_leaves_a_corrupt_best_file(tmp_path, kill_after_saves):
    path = tmp_path / "best.keras"
    flavour = "keras" if kill_after_saves % 2 else "tf_keras"
    process = subprocess.Popen(
        [sys.executable, "-c", SAVE_FOREVER, str(path), flavour], stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(kill_after_saves):  # wait for this many completed saves
            assert process.stdout.readline(), "the saving process died"
        time.sleep(0.05 * kill_after_saves)  # then kill it somewhere inside a later save
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()

    model = load_checkpoint(path)  # the last completed save, whole
    bias = model.get_layer("logits").bias.numpy()
    assert bias.min() == bias.max() >= kill_after_saves
    save_atomically(model, path)  # the next save clears what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]


def test_inside_fit_it_keeps_the_best_epoch(flavour, tmp_path):
    model = build_lstm(12, units=4, num_layers=1, flavour=flavour)
    x = np.random.default_rng(0).integers(0, 12, (16, 6))
    path = tmp_path / "best.keras"
    history = model.fit(
        x, x, validation_data=(x, x), epochs=3, verbose=0, callbacks=[best_checkpoint(model, path)]
    )
    best = min(history.history["val_loss"])
    reloaded = load_checkpoint(path)
    assert reloaded.evaluate(x, x, verbose=0) == pytest.approx(best, rel=1e-5)


def test_without_validation_data_every_epoch_is_saved_with_one_warning(flavour, tmp_path):
    model = build_lstm(12, units=4, num_layers=1, flavour=flavour)
    x = np.random.default_rng(0).integers(0, 12, (16, 6))
    path = tmp_path / "best.keras"
    with pytest.warns(UserWarning, match="no validation data") as said:  # it saved nothing, the whole fit
        model.fit(x, x, epochs=2, verbose=0, callbacks=[best_checkpoint(model, path)])
    assert len([w for w in said if "best_checkpoint" in str(w.message)]) == 1
    np.testing.assert_allclose(load_checkpoint(path).predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_a_misspelled_monitor_stops_after_the_first_epoch_with_its_model_saved(flavour, tmp_path):
    model = build_lstm(12, units=4, num_layers=1, flavour=flavour)
    x = np.random.default_rng(0).integers(0, 12, (16, 6))
    path = tmp_path / "best.keras"
    with pytest.raises(ValueError, match=r"monitor='val_los' is not logged \(logged: \['loss', 'val_loss'\]\)"):
        model.fit(x, x, validation_data=(x, x), epochs=3, verbose=0, callbacks=[best_checkpoint(model, path, monitor="val_los")])
    assert path.exists()


def test_the_folder_is_made_or_refused_when_the_callback_is(tmp_path):
    model = build_lstm(12, units=4, num_layers=1)
    best_checkpoint(model, tmp_path / "new" / "deeper" / "best.keras")
    assert (tmp_path / "new" / "deeper").is_dir()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ValueError, match="path: cannot create the folder"):  # it failed at the end of epoch 1
        best_checkpoint(model, tmp_path / "file" / "best.keras")


def test_a_damaged_file_is_named_in_the_error(tmp_path):
    model = build_lstm(12, units=4, num_layers=1)
    path = tmp_path / "best.keras"
    save_atomically(model, path)
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not a zip at all", whole.replace(b"metadata.json", b"metadata.jsoX")):
        path.write_bytes(damaged)  # they gave a bare BadZipFile, KeyError or h5py error
        with pytest.raises(ValueError, match=f"{path}.*(not a readable .keras file|is damaged)"):
            load_checkpoint(path)


def test_a_symlinked_path_replaces_the_file_the_link_names(tmp_path):
    import keras

    target, link = tmp_path / "store" / "best.keras", tmp_path / "best.keras"
    target.parent.mkdir()
    first = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    save_atomically(first, target)
    link.symlink_to(target)
    second = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    save_atomically(second, link)
    assert link.is_symlink()  # the link was replaced by a file, and its target kept the old model
    assert load_checkpoint(target).output_shape == (None, 2)
