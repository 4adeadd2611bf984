"""NLTK stopwords offline: read from a data directory the test makes, never downloaded."""

import subprocess
import sys
import zipfile

import nltk
import pytest

from fastnlp import clean_text, load_stopwords, remove_stopwords
from fastnlp.preprocess import StopwordsNotFoundError, stopword_languages


@pytest.fixture
def nltk_data(tmp_path):
    """A small NLTK data directory with two stopword lists, in the layout nltk.download leaves."""
    corpus = tmp_path / "corpora" / "stopwords"
    corpus.mkdir(parents=True)
    (corpus / "english").write_text("the\na\nof\nnot\n", encoding="utf-8")
    (corpus / "german").write_text("der\ndie\ndas\nund\n", encoding="utf-8")
    (corpus / "README").write_text("a small test corpus", encoding="utf-8")
    return tmp_path


@pytest.fixture
def no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fastnlp must never download")

    monkeypatch.setattr(nltk, "download", refuse)


def test_reads_any_installed_language(nltk_data, no_download):
    assert load_stopwords("english", data_dir=nltk_data) == {"the", "a", "of", "not"}
    assert load_stopwords("german", data_dir=nltk_data) == {"der", "die", "das", "und"}
    assert stopword_languages(nltk_data) == ["english", "german"]


def test_reads_the_zipped_corpus_too(tmp_path, no_download):
    (tmp_path / "corpora").mkdir()
    with zipfile.ZipFile(tmp_path / "corpora" / "stopwords.zip", "w") as archive:
        archive.writestr("stopwords/english", "the\nand\n")
        archive.writestr("stopwords/french", "le\nla\n")
    assert load_stopwords("english", data_dir=tmp_path) == {"the", "and"}
    assert stopword_languages(tmp_path) == ["english", "french"]


def test_the_default_list_comes_from_nltks_search_path(nltk_data, monkeypatch, no_download):
    monkeypatch.setattr(nltk.data, "path", [str(nltk_data)])
    assert clean_text("The story of NOT a hero") == "story hero"
    assert remove_stopwords("die Katze und der Hund", "german") == "Katze Hund"


def test_absent_corpus_says_how_to_install_it(tmp_path, monkeypatch, no_download):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    for call in (lambda: load_stopwords("english"), lambda: clean_text("some text")):
        with pytest.raises(StopwordsNotFoundError, match=r"python -m nltk\.downloader stopwords.*NLTK_DATA"):
            call()
    assert clean_text("some text", stopwords={"some"}) == "text"  # your own words need no corpus


def test_unknown_language_names_the_installed_ones(nltk_data):
    with pytest.raises(StopwordsNotFoundError, match=r"no language 'klingon'; installed: \['english', 'german'\]"):
        load_stopwords("klingon", data_dir=nltk_data)


def test_bad_stopwords_arguments():
    with pytest.raises(TypeError, match="name of an NLTK stopword list"):
        load_stopwords("")
    with pytest.raises(TypeError, match="stopwords must be strings"):
        clean_text("text", stopwords=["ok", 3])


def test_importing_fastnlp_reads_no_nltk_data():
    code = "import sys, fastnlp, fastnlp.preprocess; print('nltk' in sys.modules, 'tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]
