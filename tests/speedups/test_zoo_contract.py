"""Every registered transform on every zoo model: it works, keeping its contract, or refuses up front, clearly.
``tune`` and ``cudnn_report`` take every zoo model too, and ``to_tflite`` exports each in every quantization
(``LiteRTModel`` computing what the model does) or refuses it up front.

Works: the input is untouched, the result computes what the input did (within the transform's
tolerance), fits two steps, and saves and loads with its lineage. Refuses: a ``TypeError`` or
``ValueError`` raised by fastnlp before any work, naming a layer of the model or the model's class.
With ``FASTNLP_ZOO_RECORD=FILE`` each outcome is appended to FILE as a JSON line, from which
``python tests/zoo_matrix.py FILE docs/your-model.md`` writes the page (run with ``FASTNLP_ZOO=full``).
"""

import json
import os
import traceback
import warnings

import numpy as np
import pytest
import zoo
from speedup_settings import settings_for

from fastnlp import NoEffectWarning, applied_speedups, load_checkpoint
from fastnlp.core import flavour as flavours
from fastnlp.core.rebuild import wrapped_layers
from fastnlp.speedups import catalog

TRANSFORMS = catalog.transforms()
#: ``FASTNLP_ZOO=full``: every family in every flavour (the matrix page is made from that run). By default
#: each (transform, family) runs once, the flavours alternating, which keeps the suite within its time;
#: use_xla runs in Keras 3 there (an XLA compile of a tf_keras LSTM takes 10-30 s on two cores), and so do the
#: families in SLOW_IN_TF_KERAS.
FULL = os.environ.get("FASTNLP_ZOO") == "full"


#: families whose tf_keras models trace three times slower than their Keras 3 twins (tf_keras's Bidirectional): by
#: default they run in Keras 3, whose prune and quantize go through tf_keras all the same
SLOW_IN_TF_KERAS = frozenset({"stacked_bilstm_classifier", "bilstm_tagger", "bigru_classifier"})


#: by default, the transforms that copy a model whole (``whole=True``: use_xla, set_steps_per_execution, distribute)
#: run on these families, one of each thing a whole copy must carry (masks, wrappers, several inputs and outputs,
#: strings, nested and custom layers, subclassed models, the user's Loss); a whole copy changes no layer, so the
#: near-twins left out (a second masked stack, the GRUs, ...) add time and no case. The full run takes every family.
WHOLE_COPY_FAMILIES = frozenset({
    "masked_lstm_classifier", "bilstm_tagger", "seq2seq_trainer", "two_outputs", "string_lstm_classifier",
    "nested_vectorizer_conv1d", "custom_layer_without_config", "subclassed_tagger", "tagger_with_loss_subclass",
})


#: by default left to the full run, which makes the matrix page: Bidirectional LSTMs over a mask are the tagger's case
#: too, and what only this family has (a Bidirectional that returns its last step, after another) made it the
#: slowest family to prune and quantize
COVERED_BY_A_TWIN = frozenset({"stacked_bilstm_classifier"})


def _alternating_flavour(index: int, family: str) -> str:
    """The flavour a default run tries ``family`` in, at position ``index`` of its cases (Keras 3 where tf_keras is slow)."""
    return "keras" if family in SLOW_IN_TF_KERAS else flavours.FLAVOURS[index % 2]


def _selected(transform_index: int, transform, family_index: int, family: str, flavour: str) -> bool:
    if FULL:
        return True
    if family in COVERED_BY_A_TWIN or (transform.whole and family not in WHOLE_COPY_FAMILIES):
        return False
    if transform.name == "use_xla":
        return flavour == "keras"
    return flavour == _alternating_flavour(transform_index + family_index, family)


CASES = [
    (transform, family, flavour)
    for i, transform in enumerate(TRANSFORMS)
    for j, family in enumerate(zoo.FAMILIES)
    for flavour in zoo.FAMILIES[family][1]
    if _selected(i, transform, j, family, flavour)
]
pytestmark = [
    pytest.mark.filterwarnings("ignore::fastnlp.SpeedupWarning"),
    pytest.mark.filterwarnings("ignore::fastnlp.FlavourWarning"),
]


def record(transform, family, flavour, outcome, detail=""):
    record_named(transform.name, family, flavour, outcome, detail)


def record_named(name, family, flavour, outcome, detail=""):
    """Append the outcome of ``name`` (a transform, or an export such as ``to_tflite int8``) to ``FASTNLP_ZOO_RECORD``."""
    path = os.environ.get("FASTNLP_ZOO_RECORD")
    if path:
        line = json.dumps({"transform": name, "family": family, "flavour": flavour, "outcome": outcome, "detail": detail})
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")


def assert_clear_refusal(error, model):
    frames = traceback.extract_tb(error.__traceback__)
    raised_in = frames[-1].filename
    assert f"{os.sep}fastnlp{os.sep}" in raised_in and f"{os.sep}site-packages{os.sep}" not in raised_in.split("fastnlp")[0][-15:], (
        f"an error from inside {raised_in}, not a refusal of fastnlp's: {error}"
    )
    layers = flavours.leaf_layers(model) if hasattr(model, "layers") else []
    names = [layer.name for layer in layers] + [inner.name for layer in layers for _, inner in wrapped_layers(layer)]
    message = str(error)
    named = any(name in message for name in names) or type(model).__qualname__ in message or "model" in message
    assert named, f"the refusal names neither a layer nor the model: {message}"


def assert_same_outputs(model, reference, x):
    for got, want in zip(zoo.outputs(model, x), zoo.outputs(reference, x), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("family", "flavour"), [case for case in zoo.cases() if case[0] in zoo.CANNOT_LOAD])
def test_a_zoo_model_marked_unloadable_is_one_keras_cannot_load(family, flavour, tmp_path):
    example = zoo.build(family, flavour)
    path = str(tmp_path / "model.keras")
    example.model.save(path)
    with pytest.raises(Exception):  # noqa: B017 - whatever Keras raises, the mark must not hide a loadable model
        flavours.load_model(path, flavour)


@pytest.mark.parametrize(
    ("transform", "family", "flavour"), CASES, ids=[f"{t.name}-{family}-{flavour}" for t, family, flavour in CASES]
)
def test_a_transform_works_on_the_zoo_model_or_refuses_up_front(transform, family, flavour, tmp_path):
    settings = settings_for(transform.name)
    example = zoo.build(family, flavour)
    kwargs = {**settings.try_kwargs, **(settings.prepare(example.model, example.x) if settings.prepare else {})}
    expected = zoo.outputs(example.model, example.x)
    weights = [w.copy() for w in example.model.get_weights()]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = transform.func(example.model, **kwargs)
    except (TypeError, ValueError) as error:
        assert_clear_refusal(error, example.model)
        record(transform, family, flavour, "refused", str(error))
        return

    for before, after in zip(weights, example.model.get_weights(), strict=True):  # the input is untouched
        np.testing.assert_array_equal(before, after)
    for got, want in zip(zoo.outputs(result, example.x), expected, strict=True):  # and the copy computes the same
        np.testing.assert_allclose(got, want, rtol=0, atol=settings.atol)
    history = result.fit(example.x, example.y, batch_size=zoo.BATCH // 2, epochs=1, verbose=0)
    assert int(result.optimizer.iterations.numpy()) == 2 and np.isfinite(history.history["loss"]).all()

    if example.loads:
        path = str(tmp_path / f"model{settings.save_suffix}")
        result.save(path)
        loaded = load_checkpoint(path) if path.endswith(".keras") else flavours.load_model(path, flavours.detect(result))
        assert_same_outputs(loaded, result, example.x)
    else:  # Keras cannot load the input's file either: its weights must round-trip into another copy
        path = str(tmp_path / "model.weights.h5")
        result.save_weights(path)
        twin_example = zoo.build(family, flavour)
        twin = transform.func(twin_example.model, **{**settings.try_kwargs, **(settings.prepare(twin_example.model, twin_example.x) if settings.prepare else {})})
        twin.load_weights(path)
        assert_same_outputs(twin, result, example.x)
    entry = applied_speedups(result)[-1]
    assert entry.startswith(transform.name)
    if example.loads and path.endswith(".keras"):
        assert applied_speedups(loaded) == applied_speedups(result)
    no_effect = [str(w.message) for w in caught if issubclass(w.category, NoEffectWarning)]
    assert bool(no_effect) == entry.endswith(": no effect")  # said, and recorded, alike
    record(transform, family, flavour, "no effect" if no_effect else "works", no_effect[0] if no_effect else entry)


def zoo_dataset(example):
    """The zoo model's batch as a ``tf.data.Dataset`` of two batches (lists of inputs or labels as tuples)."""
    import tensorflow as tf

    def as_structure(value):
        return tuple(value) if isinstance(value, list) else value

    return tf.data.Dataset.from_tensor_slices((as_structure(example.x), as_structure(example.y))).batch(zoo.BATCH // 2)


#: by default the whole-copy families (tune copies the model whole, and the hoisting it tries is the transform
#: contract's on every family), each once, the flavours alternating (Keras 3 for those slow to trace in tf_keras)
TUNE_CASES = [
    (family, flavour)
    for j, family in enumerate(zoo.FAMILIES)
    for flavour in zoo.FAMILIES[family][1]
    if FULL or family in WHOLE_COPY_FAMILIES and (flavour == _alternating_flavour(j, family) or len(zoo.FAMILIES[family][1]) == 1)
]


@pytest.mark.parametrize(("family", "flavour"), TUNE_CASES)
def test_tune_and_cudnn_report_take_the_zoo_model_or_refuse_it_up_front(family, flavour):
    from fastnlp import cudnn_report, tune

    example = zoo.build(family, flavour)
    report = cudnn_report(example.model)
    assert all(status.reasons or status.eligible for status in report)  # every ineligible layer says why
    try:
        result = tune(example.model, zoo_dataset(example), [("hoisted", ["hoist_lstm_projection"])], steps=2, warmup_steps=1, rounds=1)
    except TypeError as error:  # only a model fastnlp cannot re-create, refused before any training
        assert family == "subclassed_tagger" and "subclassed model" in str(error)
        record_named("tune", family, flavour, "refused", str(error))
        return
    assert [m.name for m in result.measurements] == ["input", "hoisted"]
    assert result.measurements[0].samples_per_s > 0
    assert result.measurements[1].samples_per_s, result.measurements[1]  # the hoisted copy trained too (or had no effect)
    assert_same_outputs(result.model, example.model, example.x)  # whichever won computes what the input did
    record_named("tune", family, flavour, "works", f"chose {result.best}")


#: how far a LiteRT export's outputs may be from the model's, by quantization: 8-bit activations quantize
#: probabilities in steps of 1/256, float16 weights keep about three significant digits
EXPORT_TOLERANCE = {None: 1e-4, "float16": 1e-3, "dynamic": 2e-2, "int8": 5e-2}
#: by default, float exports of the families whose inputs and outputs are more than one array, or that hold a
#: loss of the user's own, the flavours alternating (test_export's int8 cases convert a custom layer and
#: loss in the converter's process); the full run takes every family in every quantization
EXPORT_FAMILIES = frozenset({"seq2seq_trainer", "seq2seq_inference_decoder", "two_outputs", "lstm_state_outputs", "tagger_with_loss_subclass"})
EXPORT_CASES = [
    (family, flavour, quantization)
    for j, family in enumerate(zoo.FAMILIES)
    for flavour in zoo.FAMILIES[family][1]
    for quantization in EXPORT_TOLERANCE
    if FULL or family in EXPORT_FAMILIES and flavour == _alternating_flavour(j, family) and quantization is None
]


@pytest.mark.parametrize(("family", "flavour", "quantization"), EXPORT_CASES)
def test_to_tflite_exports_the_zoo_model_or_refuses_it_up_front(family, flavour, quantization):
    from fastnlp import LiteRTModel, to_tflite

    example = zoo.build(family, flavour)
    any_length = any(None in tuple(t.shape[1:]) for t in getattr(example.model, "inputs", None) or [])  # a subclassed model has none
    kwargs = {"seq_len": zoo.LENGTH} if any_length else {}
    if quantization == "int8":
        kwargs["representative_data"] = example.x
    name = "to_tflite" if quantization is None else f"to_tflite {quantization}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unfused loop, an untrained model's near-tied top predictions
            lite = LiteRTModel(to_tflite(example.model, quantization, **kwargs))
    except (TypeError, ValueError) as error:
        assert_clear_refusal(error, example.model)
        record_named(name, family, flavour, "refused", str(error))
        return
    got = lite.predict(example.x)
    for have, want in zip(got if isinstance(got, list) else [got], zoo.outputs(example.model, example.x), strict=True):
        np.testing.assert_allclose(have, want, rtol=0, atol=EXPORT_TOLERANCE[quantization])
    record_named(name, family, flavour, "works", f"LiteRT ops: {', '.join(lite.ops)}")


#: by default the families with several inputs or outputs, the flavours alternating (test_pruning strips masked,
#: Bidirectional and string models); the full run takes every family
STRIP_FAMILIES = frozenset({"seq2seq_trainer", "two_outputs"})
STRIP_CASES = [
    (family, flavour)
    for j, family in enumerate(zoo.FAMILIES)
    for flavour in zoo.FAMILIES[family][1]
    if FULL or family in STRIP_FAMILIES and flavour == _alternating_flavour(j, family)
]


@pytest.mark.parametrize(("family", "flavour"), STRIP_CASES)
def test_strip_pruning_of_a_pruned_zoo_model_computes_what_it_did(family, flavour):
    """Pruned with masks updated on a 2-step fit, then stripped: the plain model in the user's flavour computes
    what the pruned one did (stripping once brought a mask back that the pruned model had dropped)."""
    from fastnlp import prune, strip_pruning

    example = zoo.build(family, flavour)
    try:
        pruned = prune(example.model, sparsity=0.5, frequency=1)
    except (TypeError, ValueError) as error:
        assert_clear_refusal(error, example.model)
        record_named("strip_pruning", family, flavour, "refused", f"nothing to strip: {error}")
        return
    pruned.fit(example.x, example.y, batch_size=zoo.BATCH // 2, epochs=1, verbose=0)

    plain = strip_pruning(pruned)

    assert flavours.detect(plain) == flavours.detect(example.model)
    assert_same_outputs(plain, pruned, example.x)
    record_named("strip_pruning", family, flavour, "works", applied_speedups(plain)[-1])
