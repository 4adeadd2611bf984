"""Shared tests every registered text transform must pass: same kind back, input untouched, engines agree."""

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from speedup_settings import TEXT_TRANSFORMS, settings_for

from fastnlp.preprocess import text_transforms

TRANSFORMS = text_transforms()
pytestmark = pytest.mark.parametrize("transform", TRANSFORMS, ids=[t.name for t in TRANSFORMS])

SAMPLES = [
    "The 3 Quick-Brown foxes jumped over the lazy dog!",
    "机器学习，很有趣。自然语言、处理",
    "Ça coûte 42 € ! « Très » cher… ¿verdad?",
    "",
    "  tabs\tand\nnewlines\u3000and\u00a0no-break  ",
    "İstanbul ΣΟΦΟΣ ٣ apples",
]


def call(transform, texts, **kwargs):
    return transform.func(texts, **{**settings_for(transform.name, TEXT_TRANSFORMS).try_kwargs, **kwargs})


def as_python(value):
    """A string tensor (or ragged token tensor) element as Python str / list of str."""
    value = value.numpy() if hasattr(value, "numpy") else value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return [token.decode("utf-8") for token in value.tolist()]


def test_every_kind_of_input_gives_the_same_kind_back_and_is_untouched(transform):
    texts = list(SAMPLES)
    result = call(transform, texts)

    assert texts == SAMPLES
    assert isinstance(result, list) and len(result) == len(texts)
    assert call(transform, tuple(texts)) == tuple(result)
    assert call(transform, iter(texts)) == result
    assert [call(transform, text) for text in texts] == result
    assert [call(transform, text.encode("utf-8")) for text in texts] == result


def test_engines_give_identical_results(transform):
    assert call(transform, SAMPLES, engine="tensorflow") == call(transform, SAMPLES, engine="python")
    ascii_texts = [text for text in SAMPLES if text.isascii()]  # the Python engine's one-bytes-string path
    assert call(transform, ascii_texts) == [call(transform, text) for text in ascii_texts]
    for text in (SAMPLES[0], SAMPLES[2] * 1000):
        assert call(transform, text, engine="tensorflow") == call(transform, text, engine="python") == call(transform, text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=6))
def test_engines_agree_on_random_unicode(transform, texts):
    expected = [call(transform, text, engine="python") for text in texts]
    assert call(transform, texts, engine="python") == expected
    assert call(transform, texts, engine="tensorflow") == expected


def test_datasets_and_tensors(transform):
    expected = call(transform, SAMPLES)
    dataset = tf.data.Dataset.from_tensor_slices(SAMPLES)

    result = call(transform, dataset)

    assert isinstance(result, tf.data.Dataset)
    assert [as_python(element) for element in result] == expected
    assert [s.decode("utf-8") for s in dataset.as_numpy_iterator()] == SAMPLES  # input untouched
    batched = [as_python(element) for batch in call(transform, dataset.batch(4)) for element in batch]
    assert batched == expected
    tensor = call(transform, tf.constant(SAMPLES))
    assert [as_python(element) for element in tensor] == expected
    assert as_python(call(transform, tf.constant(SAMPLES[0]))) == expected[0]
    pairs = dataset.map(lambda text: (call(transform, text), 1))  # inside a user's own tf.data map
    assert [as_python(text) for text, _ in pairs] == expected


def test_bad_input_raises_a_clear_error(transform):
    with pytest.raises(TypeError, match="takes texts: a str"):
        call(transform, 42)
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        call(transform, ["fine", 3])
    with pytest.raises(TypeError, match="dataset of strings"):
        call(transform, tf.data.Dataset.range(3))
    with pytest.raises(ValueError, match="engine must be one of"):
        call(transform, "text", engine="gpu")
    with pytest.raises(ValueError, match="errors must be one of"):
        call(transform, "text", errors="skip")
    for engine in ("python", "tensorflow"):
        with pytest.raises(ValueError, match=r"texts\[1\]: invalid UTF-8 at byte 4"):
            call(transform, [b"good", b"bad \xff byte"], engine=engine)
    with pytest.raises(tf.errors.InvalidArgumentError, match="invalid UTF-8 at byte"):
        list(call(transform, tf.data.Dataset.from_tensor_slices([b"ok", b"bad \xff byte"])))
    for bad in settings_for(transform.name, TEXT_TRANSFORMS).bad_calls:
        with pytest.raises(bad.error, match=bad.match):
            transform.func("text", **bad.kwargs)


def test_undecodable_bytes_are_replaced_or_dropped_on_request(transform):
    data = [b"caf\xc3\xa9 bad \xff byte"]
    results = {}
    for errors in ("replace", "ignore"):
        results[errors] = call(transform, data, errors=errors, engine="python")
        assert call(transform, data, errors=errors, engine="tensorflow") == results[errors]
        dataset = call(transform, tf.data.Dataset.from_tensor_slices(data), errors=errors)
        assert [as_python(element) for element in dataset] == results[errors]
    assert "\ufffd" in str(results["replace"]) and "\ufffd" not in str(results["ignore"])
    assert "é" in str(results["ignore"])


def test_lone_surrogates_are_refused_or_replaced_alike_by_both_engines(transform):
    texts = ["fine", "a\ud800b c"]  # no UTF-8 form: the engines disagreed (one character against three)
    for engine in ("python", "tensorflow"):
        with pytest.raises(ValueError, match=r"texts\[1\]: a lone surrogate U\+D800 at character 1"):
            call(transform, texts, engine=engine)
    for errors in ("replace", "ignore"):
        assert call(transform, texts, errors=errors, engine="tensorflow") == call(transform, texts, errors=errors, engine="python")
    assert "\ufffd" in str(call(transform, texts, errors="replace")) and "\ufffd" not in str(call(transform, texts, errors="ignore"))
