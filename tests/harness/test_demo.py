"""The demo's parts; the whole demo, as a user runs it, is tests/harness/test_cli_output.py's."""

import pytest

from fastnlp.harness.demo import DemoSettings, HeldOut, run_demo

TINY = DemoSettings(budget_s=3.0, blog_units=8, blog_layers=2, validation_contexts=16, sample_chars=20, max_chars=60_000, verbose=0)


def test_both_recipes_are_scored_on_the_same_held_out_contexts():
    text = "".join(chr(97 + i % 26) for i in range(20_000))
    held_out = HeldOut.from_text(text, 8)
    assert held_out.contexts.shape == (8, 100) and held_out.next_ids.shape == (8,)
    tail = held_out.vocabulary.encode(text[18_000:])
    assert (held_out.contexts[0] == tail[:100]).all() and held_out.next_ids[0] == tail[100]


def test_too_short_a_corpus_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="too short"):
        run_demo("abc" * 100, "tiny", TINY, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
