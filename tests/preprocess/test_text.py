"""What each cleaning function does: the blog's semantics on ASCII, Unicode done right, bytes, progress."""

import string
import unicodedata

import pytest
from conftest import shared_corpus
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnlp import clean_text, normalize_text, remove_stopwords, tokenize
from fastnlp.harness.baseline import blog_clean_text, blog_normalize_text
from fastnlp.preprocess import text as text_module

STOPWORDS = {"the", "a", "of", "and", "to", "i", "it", "is", "don't", "not", "you"}
ASCII = st.text(alphabet=string.printable, max_size=80)


@settings(max_examples=200, deadline=None)
@given(ASCII)
def test_clean_text_is_the_blogs_on_ascii(text):
    assert clean_text(text, stopwords=STOPWORDS) == blog_clean_text(text, STOPWORDS)


@settings(max_examples=100, deadline=None)
@given(st.lists(ASCII, max_size=5))
def test_lists_of_ascii_texts_are_the_blogs_too(texts):  # the one-bytes-string path
    assert clean_text(texts, stopwords=STOPWORDS) == [blog_clean_text(text, STOPWORDS) for text in texts]
    assert normalize_text(texts) == [blog_normalize_text(text) for text in texts]


@settings(max_examples=200, deadline=None)
@given(ASCII)
def test_normalize_text_is_the_blogs_on_ascii(text):
    assert normalize_text(text) == blog_normalize_text(text)


def test_the_blogs_own_symbols_go_too():
    assert clean_text("$5 + <tag> = ^caret^ | ~tilde~ `tick`", stopwords=None) == "tag caret tilde tick"


def test_clean_text_matches_the_blog_on_a_real_corpus():
    lines = shared_corpus("tinyshakespeare/input.txt").read_text(encoding="utf-8").splitlines()[:3000]
    expected = [blog_clean_text(line, STOPWORDS) for line in lines]
    assert clean_text(lines, stopwords=STOPWORDS) == expected
    assert clean_text(lines, stopwords=STOPWORDS, engine="tensorflow") == expected


def test_chinese_punctuation_goes_and_every_han_character_stays():
    text = "深度学习，自然语言处理。机器学习、数据：好！"
    cleaned = clean_text(text, stopwords=None)
    assert not set("，。、：！") & set(cleaned)
    assert [c for c in text if unicodedata.name(c).startswith("CJK UNIFIED")] == list(cleaned)


def test_accented_latin_is_not_mangled():
    assert clean_text("Crème BRÛLÉE à São Paulo, naïve Ærø!", stopwords=None) == "crème brûlée à são paulo naïve ærø"
    decomposed = unicodedata.normalize("NFD", "Café déjà vu")
    assert clean_text(decomposed, stopwords=None) == unicodedata.normalize("NFD", "café déjà vu")
    assert tokenize(decomposed) == unicodedata.normalize("NFD", "Café déjà vu").split()


def test_every_step_can_be_kept():
    text = "Hello, World 42"
    assert clean_text(text, lowercase=False, stopwords=None) == "Hello World"
    assert clean_text(text, drop_digits=False, stopwords=None) == "hello world 42"
    assert clean_text(text, drop_punctuation=False, stopwords=None) == "hello, world"
    assert clean_text(text, stopwords={"hello"}) == "world"
    assert normalize_text(" A  1 ", lowercase=False) == "A 0"
    assert normalize_text(" A  1 ", collapse_whitespace=False) == " a  0 "
    assert normalize_text(" A  1 ", zero_digits=False) == "a 1"


def test_lowercase_is_one_character_at_a_time():
    # unlike str.lower(): a final sigma is not special, and İ does not grow a combining dot
    assert normalize_text("ΟΔΟΣ İ") == "οδοσ i"


def test_remove_stopwords_matches_whole_words_exactly():
    assert remove_stopwords("The the theme a", {"the", "a"}) == "The theme"


def test_tokenize_keeps_words_of_every_script_whole():
    assert tokenize("東京は晴れ。Snake_case, x²!") == ["東京は晴れ", "。", "Snake_case", ",", "x²", "!"]
    assert tokenize("Hello World", lowercase=True) == ["hello", "world"]
    assert tokenize(["a b", ""]) == [["a", "b"], []]


def test_bytes_are_decoded_as_utf8():
    assert clean_text("Crème".encode(), stopwords=None) == "crème"
    with pytest.raises(ValueError, match=r"invalid UTF-8 at byte 2 \(b'\\xe8me "):
        clean_text("Crème brûlée".encode("latin-1"), stopwords=None)
    assert clean_text("Crème".encode("latin-1"), stopwords=None, errors="replace") == "cr\ufffdme"
    assert clean_text("Crème".encode("latin-1"), stopwords=None, errors="ignore") == "crme"


def test_a_progress_bar_for_large_corpora(monkeypatch, capsys):
    monkeypatch.setattr(text_module, "PROGRESS_CHARACTERS", 100)
    clean_text(["word " * 50] * 4, stopwords=None)
    assert "clean_text: " in capsys.readouterr().err
    clean_text(["word " * 50] * 4, stopwords=None, progress=False)
    assert capsys.readouterr().err == ""
    clean_text(["short"], stopwords=None, engine="tensorflow", progress=True)
    assert "100%" in capsys.readouterr().err
