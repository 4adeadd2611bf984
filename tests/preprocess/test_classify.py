"""text_classification_dataset: bucketed batches, padding id 0, a truthful padding report, clear errors."""

import collections

import numpy as np
import pytest
from conftest import shared_corpus

from fastnlp import build_lstm, text_classification_dataset
from fastnlp.preprocess import TextClassificationData

TEXTS = [
    "a fine film",
    "dull",
    "not good at all, not at all",
    "the best film of the year by far",
    "bad",
    "I loved it",
    "boring and far too long for what it is",
    "great",
]
LABELS = [1, 0, 0, 1, 0, 1, 0, 1]


def batches(data):
    return [(ids.numpy(), labels.numpy()) for ids, labels in data.dataset]


def test_batches_are_padded_with_zero_to_their_own_longest_text():
    data = text_classification_dataset(TEXTS, LABELS, batch_size=2, bucket_boundaries=[2, 5])
    seen = collections.Counter()
    for ids, labels in batches(data):
        assert ids.dtype == np.int32 and len(ids) == len(labels) <= 2
        lengths = (ids != 0).sum(axis=1)
        assert lengths.max() == ids.shape[1]  # no batch is padded beyond its longest text
        for row, length, label in zip(ids, lengths, labels):
            assert (row[:length] != 0).all() and (row[length:] == 0).all()
            seen[(tuple(row[:length]), int(label))] += 1
    assert sum(seen.values()) == len(TEXTS)  # every text once per epoch
    assert data.dataset.cardinality().numpy() == len(batches(data))  # Keras knows how long an epoch is
    assert data.vocabulary[:2] == ("", "[UNK]")


def test_the_padding_report_is_what_an_epoch_feeds():
    data = text_classification_dataset(TEXTS, LABELS, batch_size=2, shuffle=False)
    fed = sum(ids.size for ids, _ in batches(data))
    real = sum((ids != 0).sum() for ids, _ in batches(data))
    report = data.padding
    assert (report.real_tokens, report.bucketed_tokens) == (real, fed)
    assert report.pad_to_longest_tokens == len(TEXTS) * 9
    assert 0 < report.saved_fraction <= 1
    assert isinstance(data, TextClassificationData) and not hasattr(data.dataset, "padding")  # nothing set on the dataset
    assert "padding saved" in str(report)


def test_shuffled_epochs_differ_but_hold_the_same_texts():
    data = text_classification_dataset(TEXTS * 4, LABELS * 4, batch_size=4, seed=1)
    first, second = batches(data), batches(data)
    assert [ids.tolist() for ids, _ in first] != [ids.tolist() for ids, _ in second]
    flatten = lambda epoch: sorted(tuple(row[row != 0]) for ids, _ in epoch for row in ids)  # noqa: E731
    assert flatten(first) == flatten(second)


def test_validation_data_reuses_the_training_vocabulary():
    train = text_classification_dataset(TEXTS, LABELS, shuffle=False)
    dev = text_classification_dataset(["a fine zebra"], [1], vocabulary=train.vocabulary, shuffle=False)
    (ids, _), = batches(dev)
    assert ids.tolist() == [[train.vocabulary.index("a"), train.vocabulary.index("fine"), 1]]


def test_options_cut_and_clean():
    data = text_classification_dataset(["One, two, three four!"], [0], max_length=2, clean=False, shuffle=False)
    assert data.vocabulary[2:] == (",", "!", "One", "four", "three", "two")  # by frequency, then alphabetically
    (ids, _), = batches(data)
    assert ids.shape == (1, 2)
    small = text_classification_dataset(TEXTS, LABELS, max_tokens=3)
    assert len(small.vocabulary) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"texts": [], "labels": []}, ValueError, "texts is empty"),
        ({"texts": ["a", "b"], "labels": [1]}, ValueError, "2 texts but 1 labels"),
        ({"texts": ["a", "b"], "labels": [0, 2], "num_classes": 2}, ValueError, r"labels\[1\] is 2"),
        ({"texts": ["a"], "labels": [-1]}, ValueError, r"\[0, 0\)"),
        ({"texts": ["a"], "labels": [0.5]}, ValueError, "labels must be integers"),
        ({"texts": ["a", "b"], "labels": [0, 2**40]}, ValueError, r"below 2\*\*31; labels\[1\] is 1099511627776"),
        ({"texts": "just one text", "labels": [0]}, TypeError, "not a single text"),
        ({"texts": ["a"], "labels": [0], "batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"texts": ["a"], "labels": [0], "vocabulary": ["a", "b"]}, ValueError, "vocabulary must start with"),
        ({"texts": ["a"], "labels": [0], "bucket_boundaries": [5, 3]}, ValueError, "increasing positive"),
        ({"texts": ["a"], "labels": [0], "clean": "yes"}, TypeError, "clean must be"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        text_classification_dataset(**kwargs)


@pytest.mark.filterwarnings("error:Your input ran out of data")
def test_a_classifier_trains_on_every_batch_of_every_epoch(flavour):
    data = text_classification_dataset(TEXTS * 3, LABELS * 3, batch_size=4, bucket_boundaries=[2, 4, 6])
    model = build_lstm(len(data.vocabulary), task="classify", units=8, num_layers=1, embedding_dim=4, flavour=flavour)
    history = model.fit(data.dataset, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.optimizer.iterations.numpy()) == 3 * len(batches(data))


def test_sst2_saves_most_of_the_padding():
    rows = [line.rsplit("\t", 1) for line in shared_corpus("sst2/train.tsv").read_text(encoding="utf-8").splitlines()]
    data = text_classification_dataset([text for text, _ in rows], [int(label) for _, label in rows], batch_size=64)
    assert data.padding.saved_fraction > 0.5


def test_a_token_listed_twice_in_the_vocabulary_is_refused():
    from fastnlp import text_classification_dataset

    with pytest.raises(ValueError, match=r"vocabulary lists tokens more than once: \['film'\]"):
        text_classification_dataset(["a good film"], [1], vocabulary=["", "[UNK]", "film", "good", "film"])
