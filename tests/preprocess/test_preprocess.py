import numpy as np
import pytest
from conftest import shared_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnlp import CharVocabulary, char_lm_dataset

# The blog's own text is Chinese, with full-width punctuation.
BLOG_TEXT = "自然语言处理（NLP）是人工智能的一个分支，它让计算机理解、解释和生成人类语言。深度学习让它更快！"


def batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_windows_do_not_overlap_and_target_every_position():
    rng = np.random.default_rng(0)
    text = "".join(chr(ord("a") + i) for i in rng.integers(0, 26, 1001))  # 10-letter slices are unique
    data = char_lm_dataset(text, seq_len=10, batch_size=7, validation_split=0.2)
    vocab = data.vocabulary
    train = batches(data.train)
    inputs = np.concatenate([x for x, _ in train])
    targets = np.concatenate([y for _, y in train])
    assert data.train_windows == 80 and data.validation_windows == 20
    assert inputs.shape == (80, 10) and inputs.dtype == np.int32
    np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])  # the next character at every position
    starts = sorted(text.index(vocab.decode(row)) for row in inputs)  # each window a distinct, non-overlapping slice
    assert starts == list(range(0, 800, 10))
    validation = batches(data.validation)
    first = validation[0][0][0]
    assert vocab.decode(first) == text[800:810]  # the held-out windows are the end of the text


def test_training_windows_are_reshuffled_each_epoch():
    text = "".join(np.random.default_rng(0).choice(list("abcdefghij"), 2001))
    data = char_lm_dataset(text, seq_len=10, batch_size=200, validation_split=0.0)
    assert data.validation is None
    first, second = (batches(data.train)[0][0] for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first, axis=0), np.sort(second, axis=0))


def test_non_ascii_text_round_trips_through_the_vocabulary():
    data = char_lm_dataset(BLOG_TEXT * 4, seq_len=16, batch_size=4, validation_split=0.0)
    vocab = data.vocabulary
    assert vocab.decode(vocab.encode(BLOG_TEXT)) == BLOG_TEXT
    assert {"，", "。", "、", "（", "！"} <= set(vocab.chars)
    x, _ = batches(data.train)[0]
    assert set(vocab.decode(x[0])) <= set(BLOG_TEXT)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_any_unicode_text_round_trips(text):
    vocab = CharVocabulary.from_text(text)
    ids = vocab.encode(text)
    assert ids.max() < vocab.size
    assert vocab.decode(ids) == text


def test_unknown_characters_are_named():
    with pytest.raises(ValueError, match=r"1 character\(s\) outside the vocabulary: \['z'\]"):
        CharVocabulary.from_text("abc").encode("abz")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": ""}, "text is empty"),
        ({"text": "short", "seq_len": 10}, "fewer than one window of seq_len"),
        ({"text": "abc" * 100, "seq_len": 0}, "seq_len must be a positive integer"),
        ({"text": "abc" * 100, "seq_len": -5}, "seq_len must be a positive integer"),
        ({"text": "abc" * 100, "batch_size": 0}, "batch_size must be a positive integer"),
        ({"text": "abc" * 100, "validation_split": 1.0}, "validation_split must be a number in"),
        ({"text": "abc" * 10, "seq_len": 10, "validation_split": 0.1}, "leaves no training or no validation"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        char_lm_dataset(**kwargs)
    with pytest.raises(TypeError, match="text must be a str"):
        char_lm_dataset(b"bytes are not text")


def test_tinyshakespeare_gives_a_window_per_hundred_characters():
    text = shared_corpus("tinyshakespeare/input.txt").read_text(encoding="utf-8")
    data = char_lm_dataset(text, seq_len=100, batch_size=64)
    assert data.vocabulary.size == 65
    assert data.train_windows + data.validation_windows == (len(text) - 1) // 100


def test_char_vocabulary_refuses_ids_it_cannot_decode_and_keeps_any_order():
    from fastnlp.preprocess import CharVocabulary

    vocabulary = CharVocabulary("ba")
    assert vocabulary.encode("a").tolist() == [1]  # it was refused: the lookup assumed sorted chars
    assert vocabulary.decode(vocabulary.encode("abba")) == "abba"
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 2\); ids\[0\] is -1"):  # it gave the last character
        vocabulary.decode([-1])
    with pytest.raises(ValueError, match="one sequence"):  # rows were run together
        vocabulary.decode([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match="ids must be integers"):
        vocabulary.decode([1.7])
    with pytest.raises(ValueError, match="must be distinct"):
        CharVocabulary("abca")


def test_char_lm_dataset_takes_numpy_integers():
    import numpy as np

    data = char_lm_dataset("abcdefgh" * 40, seq_len=np.int64(5), batch_size=np.int32(4))  # they were refused
    ids, _ = next(iter(data.train))
    assert tuple(ids.shape) == (4, 5)
