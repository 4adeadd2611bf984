"""Preprocessing: fast, offline-safe text cleaning, and input pipelines that waste no compute.

* :mod:`~fastnlp.preprocess.text`: ``clean_text``, ``normalize_text``, ``remove_stopwords``, ``tokenize``;
* :mod:`~fastnlp.preprocess.stopwords`: NLTK's stopword lists, read offline;
* :mod:`~fastnlp.preprocess.characters`: the Unicode classes both cleaning engines share;
* :mod:`~fastnlp.preprocess.char_lm`: the character language-model dataset;
* :mod:`~fastnlp.preprocess.classify`: text classification batches, bucketed by length.
"""

from __future__ import annotations

from fastnlp.core.registry import TextTransform, registered_text_transforms
from fastnlp.preprocess.char_lm import CharLMData, CharVocabulary, char_lm_dataset
from fastnlp.preprocess.classify import (
    PaddingReport,
    TextClassificationData,
    text_classification_dataset,
)
from fastnlp.preprocess.stopwords import (
    StopwordsNotFoundError,
    load_stopwords,
    stopword_languages,
)
from fastnlp.preprocess.text import (
    clean_text,
    normalize_text,
    remove_stopwords,
    tokenize,
)

__all__ = [
    "CharLMData",
    "CharVocabulary",
    "PaddingReport",
    "StopwordsNotFoundError",
    "TextClassificationData",
    "char_lm_dataset",
    "clean_text",
    "load_stopwords",
    "normalize_text",
    "remove_stopwords",
    "stopword_languages",
    "text_classification_dataset",
    "text_transforms",
    "tokenize",
]


def text_transforms() -> tuple[TextTransform, ...]:
    """Every registered text transform, by name (the shared text-transform tests loop over them).

    Examples:
        >>> [t.name for t in text_transforms()]
        ['clean_text', 'normalize_text', 'remove_stopwords', 'tokenize']
    """
    return registered_text_transforms()
