"""Calls that failed late or deep inside Keras or TensorFlow: each is now refused up front, naming the argument."""

import numpy as np
import pytest
import zoo

from fastnlp import best_checkpoint, build_lstm, distribute, to_tflite


def test_a_best_checkpoint_made_for_the_other_flavour_is_refused_when_fit_starts(tmp_path):
    keras3, legacy = build_lstm(10, units=4, num_layers=1), build_lstm(10, units=4, num_layers=1, flavour="tf_keras")
    x = np.zeros((4, 5), "int32")
    with pytest.raises(TypeError, match="made for a keras model and is fitted with a tf_keras model"):
        legacy.fit(x, x, callbacks=[best_checkpoint(keras3, tmp_path / "best.keras", monitor="loss")], verbose=0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda model: to_tflite(zoo.build("subclassed_tagger", "keras").model), TypeError, "subclassed model"),
        (lambda model: to_tflite(model, path="/no/such/folder/m.tflite"), ValueError, "path '/no/such/folder/m.tflite': its folder does not exist"),
        (lambda model: to_tflite(model, "int8", representative_data=np.zeros((4, 7), "int32")), ValueError, r"representative_data: each sample must have .* shape \(5,\)"),
        (lambda model: to_tflite(model, "int8", representative_data=np.array([["a"] * 5] * 4)), ValueError, "representative_data must be numbers"),
    ],
    ids=["subclassed", "missing-folder", "calibration-shape", "calibration-strings"],
)
def test_to_tflite_refuses_before_converting(call, error, message):
    with pytest.raises(error, match=message):
        call(build_lstm(10, units=4, num_layers=1, seq_len=5))


def test_distribute_refuses_a_backup_dir_that_is_a_file(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="backup_dir .* is a file"):
        distribute(build_lstm(10, units=4, num_layers=1), backup_dir=tmp_path / "a-file")
