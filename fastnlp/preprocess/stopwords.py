"""NLTK's stopword lists, read from an installed NLTK data directory; never downloaded.

The corpus is found where NLTK looks for it (``nltk.data.path``: ``NLTK_DATA``, ``~/nltk_data``, ...)
or in a ``data_dir`` you name, as a ``corpora/stopwords/`` directory or the ``corpora/stopwords.zip``
that ``nltk.download`` leaves.

NLTK keeps its corpora outside the package, in an ``nltk_data`` directory that ``nltk.download``
fills from the internet. fastnlp never downloads (not at import, not at call): when the corpus is
absent it says how to install it, and any function that takes ``stopwords=`` also takes a set of
words instead of a language name.
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Iterable

__all__ = ["StopwordsNotFoundError", "load_stopwords", "resolve_stopwords", "stopword_languages"]


class StopwordsNotFoundError(LookupError):
    """NLTK's stopwords corpus (or the asked-for language of it) is not installed."""


_HOW_TO_INSTALL = (
    "install it once with `python -m nltk.downloader stopwords` (or `python -m nltk.downloader -d DIR "
    "stopwords` and point the NLTK_DATA environment variable at DIR), or pass your own words: stopwords={...}"
)


def _search_paths(data_dir: str | os.PathLike | None) -> tuple[str, ...]:
    if data_dir is not None:
        return (os.fspath(data_dir),)
    import nltk.data  # its search path: NLTK_DATA, ~/nltk_data, the interpreter's share/nltk_data, ...

    return tuple(str(path) for path in nltk.data.path)


def _corpus(paths: tuple[str, ...]) -> tuple[str, zipfile.ZipFile | None]:
    """The first stopwords corpus on ``paths``: a directory, or ``stopwords.zip`` as nltk.download leaves it."""
    for path in paths:
        directory = os.path.join(path, "corpora", "stopwords")
        if os.path.isdir(directory):
            return directory, None
        archive = directory + ".zip"
        if os.path.isfile(archive):
            return archive, zipfile.ZipFile(archive)
    raise StopwordsNotFoundError(f"NLTK's stopwords corpus is not installed (searched {list(paths)}); {_HOW_TO_INSTALL}")


def _is_language(name: str) -> bool:
    return name.isalpha() and name.islower() and name != "readme"


def stopword_languages(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The languages of the installed NLTK stopwords corpus.

    Raises:
        StopwordsNotFoundError: the corpus is not installed; the message says how to install it.
    """
    return _languages(_search_paths(data_dir))


def _languages(paths: tuple[str, ...]) -> list[str]:
    where, archive = _corpus(paths)
    if archive is None:
        return _languages_in(where, None)
    with archive:
        return _languages_in(where, archive)


def _languages_in(where: str, archive: zipfile.ZipFile | None) -> list[str]:
    if archive is None:
        names = os.listdir(where)
    else:
        names = [name.partition("/")[2] for name in archive.namelist() if name.startswith("stopwords/")]
    return sorted(name for name in names if _is_language(name))


@functools.lru_cache(maxsize=32)
def _load(language: str, paths: tuple[str, ...]) -> frozenset[str]:
    where, archive = _corpus(paths)
    if archive is None:
        text = _read(where, None, language)
    else:
        with archive:
            text = _read(where, archive, language)
    return frozenset(word.strip() for word in text.splitlines() if word.strip())


def _read(where: str, archive: zipfile.ZipFile | None, language: str) -> str:
    installed = _languages_in(where, archive)
    if language not in installed:
        raise StopwordsNotFoundError(f"NLTK's stopwords corpus has no language {language!r}; installed: {installed}")
    if archive is None:
        with open(os.path.join(where, language), encoding="utf-8") as stream:
            return stream.read()
    return archive.read(f"stopwords/{language}").decode("utf-8")


def load_stopwords(language: str = "english", *, data_dir: str | os.PathLike | None = None) -> frozenset[str]:
    """NLTK's stopword list for ``language``, from an installed NLTK data directory.

    Args:
        language: a file name of NLTK's stopwords corpus: ``"english"``, ``"german"``, ``"chinese"``...
        data_dir: an NLTK data directory to read instead of NLTK's search path (``NLTK_DATA``,
            ``~/nltk_data``, ...).

    Returns:
        The stopwords, lowercase, as NLTK lists them.

    Raises:
        StopwordsNotFoundError: the corpus or that language is not installed; the message says how to install it.

    Examples:
        >>> import pathlib, tempfile
        >>> data = pathlib.Path(tempfile.mkdtemp())
        >>> (data / "corpora" / "stopwords").mkdir(parents=True)
        >>> _ = (data / "corpora" / "stopwords" / "english").write_text("the\\na\\nof\\n")
        >>> sorted(load_stopwords("english", data_dir=data))
        ['a', 'of', 'the']
    """
    if not isinstance(language, str) or not language:
        raise TypeError(f"language must be the name of an NLTK stopword list such as 'english', got {language!r}")
    return _load(language, _search_paths(data_dir))


def resolve_stopwords(stopwords: str | Iterable[str] | None) -> frozenset[str]:
    """The words a ``stopwords=`` argument stands for: a language name, the words themselves, or none.

    Examples:
        >>> sorted(resolve_stopwords(["the", "a"]))
        ['a', 'the']
        >>> resolve_stopwords(None)
        frozenset()
    """
    if stopwords is None:
        return frozenset()
    if isinstance(stopwords, str):
        return load_stopwords(stopwords)
    if isinstance(stopwords, bytes) or not isinstance(stopwords, Iterable):
        raise TypeError(f"stopwords must be a language name, an iterable of words, or None; got {stopwords!r}")
    words = frozenset(stopwords)
    wrong = [w for w in words if not isinstance(w, str)]
    if wrong:
        raise TypeError(f"stopwords must be strings; got {wrong[:3]!r}")
    return words
