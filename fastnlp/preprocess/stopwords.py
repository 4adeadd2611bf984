"""NLTK's stopword lists, offline: an installed NLTK corpus first, else the English list fastnlp ships.

Where a list comes from, in order:

1. ``data_dir``, when you name one: only that NLTK data directory is read.
2. NLTK's search path (``nltk.data.path``: ``NLTK_DATA``, ``~/nltk_data``, ...), as a
   ``corpora/stopwords/`` directory or the ``corpora/stopwords.zip`` that ``nltk.download`` leaves.
   An installed corpus takes precedence, so an updated NLTK list wins.
3. For ``"english"`` only: the copy of NLTK's English list shipped in ``fastnlp/preprocess/data/``
   (its source, checksum and licence are in ``SOURCE.md`` there). So ``clean_text`` works on a fresh,
   offline install.

NLTK keeps its corpora outside its package, in an ``nltk_data`` directory that ``nltk.download``
fills from the internet. fastnlp never downloads (not at import, not at call): for other languages
without the corpus it says how to install it, and any function that takes ``stopwords=`` also takes
a set of words instead of a language name.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import zipfile
from collections.abc import Iterable

from fastnlp.core import notices
from fastnlp.core.validation import checked_path

__all__ = ["StopwordsNotFoundError", "load_stopwords", "resolve_stopwords", "stopword_languages"]


class StopwordsNotFoundError(LookupError):
    """NLTK's stopwords corpus (or the asked-for language of it) is not installed."""


_HOW_TO_INSTALL = (
    "install it once with `python -m nltk.downloader stopwords` (or `python -m nltk.downloader -d DIR "
    "stopwords` and point the NLTK_DATA environment variable at DIR), or pass your own words: stopwords={...}"
)


# Lists shipped with fastnlp, used when no NLTK corpus on the search path has the language.
_SHIPPED = {"english": "english_stopwords.txt"}


def _search_paths(data_dir: str | os.PathLike | None) -> tuple[str, ...]:
    if data_dir is not None:
        return (checked_path("data_dir", data_dir),)
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
    raise StopwordsNotFoundError(
        f"NLTK's stopwords corpus is not installed (searched {list(paths)}) and fastnlp ships only the English "
        f"list; {_HOW_TO_INSTALL}"
    )


def _is_language(name: str) -> bool:
    return name.isalpha() and name.islower() and name != "readme"


def stopword_languages(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The stopword languages that :func:`load_stopwords` can read: the installed corpus's, and English.

    Args:
        data_dir: list only this NLTK data directory's languages (no shipped list is added).

    Raises:
        StopwordsNotFoundError: ``data_dir`` holds no stopwords corpus; the message says how to install it.

    Examples:
        >>> "english" in stopword_languages()
        True
    """
    if data_dir is not None:
        return _languages(_search_paths(data_dir))
    try:
        installed = _languages(_search_paths(None))
    except StopwordsNotFoundError:
        installed = []
    return sorted(set(installed) | set(_SHIPPED))


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
    """The words of ``language`` from the first corpus on ``paths``; ``ValueError`` naming a corpus that cannot be read."""
    try:
        where, archive = _corpus(paths)
        if archive is None:
            text = _read(where, None, language)
        else:
            with archive:
                text = _read(where, archive, language)
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as error:
        raise ValueError(f"NLTK's stopwords corpus on {list(paths)} cannot be read ({type(error).__name__}: {error})") from None
    return _words(text)


def _read(where: str, archive: zipfile.ZipFile | None, language: str) -> str:
    installed = _languages_in(where, archive)
    if language not in installed:
        raise StopwordsNotFoundError(f"NLTK's stopwords corpus has no language {language!r}; installed: {installed}")
    if archive is None:
        with open(os.path.join(where, language), encoding="utf-8") as stream:
            return stream.read()
    return archive.read(f"stopwords/{language}").decode("utf-8")


def load_stopwords(language: str = "english", *, data_dir: str | os.PathLike | None = None) -> frozenset[str]:
    """NLTK's stopword list for ``language``: from installed NLTK data, else (English) the shipped copy.

    Args:
        language: a file name of NLTK's stopwords corpus: ``"english"``, ``"german"``, ``"chinese"``...
        data_dir: an NLTK data directory to read instead of NLTK's search path (``NLTK_DATA``,
            ``~/nltk_data``, ...); only it is read, the shipped English list is not a fallback.

    Returns:
        The stopwords, lowercase, as NLTK lists them.

    Raises:
        StopwordsNotFoundError: the corpus or that language is not installed (and fastnlp ships no
            copy of it); the message says how to install it.
        ValueError: the corpus found cannot be read (a damaged zip, a file that is not UTF-8). For
            English on NLTK's search path, a warning says so and the shipped list is used instead.

    Examples:
        >>> words = load_stopwords("english")  # works offline: installed NLTK data, else the shipped copy
        >>> {"the", "and", "of"} <= words
        True
        >>> import pathlib, tempfile
        >>> data = pathlib.Path(tempfile.mkdtemp())
        >>> (data / "corpora" / "stopwords").mkdir(parents=True)
        >>> _ = (data / "corpora" / "stopwords" / "english").write_text("the\\na\\nof\\n")
        >>> sorted(load_stopwords("english", data_dir=data))
        ['a', 'of', 'the']
    """
    if not isinstance(language, str) or not language:
        raise TypeError(f"language must be the name of an NLTK stopword list such as 'english', got {language!r}")
    if data_dir is not None:
        try:
            return _load(language, _search_paths(data_dir))
        except ValueError as damaged:
            raise ValueError(f"data_dir {os.fspath(data_dir)!r}: {damaged}") from None
    if language not in _SHIPPED:
        return _load(language, _search_paths(None))
    try:
        return _load(language, _search_paths(None))
    except StopwordsNotFoundError:
        return _load_shipped(language)
    except ValueError as damaged:  # a broken download on NLTK's path must not break the default
        notices.warn(f"{damaged}; using the English list fastnlp ships", UserWarning)
        return _load_shipped(language)


@functools.cache
def _load_shipped(language: str) -> frozenset[str]:
    text = importlib.resources.files(__package__).joinpath("data", _SHIPPED[language]).read_text(encoding="utf-8")
    return _words(text)


def _words(text: str) -> frozenset[str]:
    """The words of a stopword file, one a line, as NLTK's word-list reader reads them."""
    return frozenset(word.strip() for word in text.splitlines() if word.strip())


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
        if not stopwords:
            raise TypeError("stopwords must be a language name such as 'english', your own words, or None; got ''")
        return load_stopwords(stopwords)
    if isinstance(stopwords, bytes) or not isinstance(stopwords, Iterable):
        raise TypeError(f"stopwords must be a language name, an iterable of words, or None; got {stopwords!r}")
    words = frozenset(stopwords)
    wrong = [w for w in words if not isinstance(w, str)]
    if wrong:
        raise TypeError(f"stopwords must be strings; got {wrong[:3]!r}")
    return words
