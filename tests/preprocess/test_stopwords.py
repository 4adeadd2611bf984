"""NLTK stopwords offline: read from a data directory the test makes, else the shipped English list; never downloaded."""

import hashlib
import importlib.resources
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
    for call in (lambda: load_stopwords("german"), lambda: remove_stopwords("die Katze", "german")):
        with pytest.raises(StopwordsNotFoundError, match=r"ships only the English.*python -m nltk\.downloader stopwords.*NLTK_DATA"):
            call()
    with pytest.raises(StopwordsNotFoundError, match="not installed"):  # a named data_dir is read alone
        load_stopwords("english", data_dir=tmp_path)
    assert clean_text("some text", stopwords={"some"}) == "text"  # your own words need no corpus


SHIPPED_SHA256 = "019f104ba2ed07436d05f9cdd3383034ad66014edc27fc651f837e1a038b6451"  # as in data/SOURCE.md


def shipped_english():
    return importlib.resources.files("fastnlp.preprocess").joinpath("data", "english_stopwords.txt")


def test_without_nltk_data_english_is_the_shipped_copy(tmp_path, monkeypatch, no_download):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # an empty search path: a fresh, offline machine
    assert clean_text("The 3 cats, and THE dog!") == "cats dog"
    assert clean_text(["The 3 cats, and THE dog!"], engine="tensorflow") == ["cats dog"]
    assert stopword_languages() == ["english"]
    words = load_stopwords()
    assert len(words) == 179 and {"i", "me", "wouldn't", "should've", "y"} <= words


def test_the_shipped_copy_is_nltks_list_unchanged(tmp_path, monkeypatch):
    data = shipped_english().read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHIPPED_SHA256
    assert "english_stopwords.txt" in (shipped_english().parent / "SOURCE.md").read_text(encoding="utf-8")
    # read by NLTK's own word-list reader, the file gives exactly the words fastnlp uses
    corpus = tmp_path / "corpora" / "stopwords"
    corpus.mkdir(parents=True)
    (corpus / "english").write_bytes(data)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # NLTK reads corpora only on its search path
    reader = nltk.corpus.reader.WordListCorpusReader(str(corpus), ["english"])
    assert frozenset(reader.words("english")) == load_stopwords("english", data_dir=tmp_path)
    assert len(reader.words("english")) == len(set(reader.words("english"))) == 179


def test_an_installed_corpus_takes_precedence_over_the_shipped_copy(nltk_data, monkeypatch, no_download):
    monkeypatch.setattr(nltk.data, "path", [str(nltk_data)])
    assert load_stopwords() == {"the", "a", "of", "not"}
    assert stopword_languages() == ["english", "german"]


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


def test_a_broken_download_on_nltks_path_falls_back_to_the_shipped_list_with_a_warning(tmp_path, monkeypatch, no_download):
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "stopwords.zip").write_bytes(b"PK\x03\x04 cut short by a failed download")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.warns(UserWarning, match="cannot be read.*BadZipFile.*the English list fastnlp ships"):
        assert clean_text("The 3 cats, and THE dog!") == "cats dog"  # it raised BadZipFile from the default


@pytest.mark.parametrize(
    "corpus",
    [{"stopwords.zip": b"PK\x03\x04 not a zip"}, {"stopwords/english": b"the\n\xff\xfe\n"}],
    ids=["corrupt-zip", "not-utf-8"],
)
def test_an_unreadable_corpus_in_data_dir_names_it(tmp_path, corpus, no_download):
    for name, content in corpus.items():
        (tmp_path / "corpora" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpora" / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"data_dir '{tmp_path}'.*cannot be read"):
        load_stopwords("english", data_dir=tmp_path)
