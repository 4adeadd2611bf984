import json

import pytest

from fastnlp.harness.corpora import default_corpus
from fastnlp.harness.demo import LADDER, DemoSettings, HeldOut, format_table, run_demo

TINY = DemoSettings(budget_s=3.0, blog_units=8, blog_layers=2, validation_contexts=16, sample_chars=20, max_chars=60_000, verbose=0)


@pytest.mark.filterwarnings("ignore::fastnlp.SpeedupWarning")
def test_demo_gives_both_recipes_the_same_budget_and_writes_its_results(tmp_path, capsys):
    text, corpus = default_corpus()
    results = run_demo(text, corpus, TINY, str(tmp_path))

    blog, fast = results["recipes"]["blog"], results["recipes"]["fastnlp"]
    for recipe in (blog, fast):
        times = [t for t, _ in recipe["curve"]]
        assert times == sorted(times) and recipe["curve"][0][0] == 0.0
        assert recipe["training_s"] >= TINY.budget_s  # the same budget, each (where it stops is learning_rate_budget's test)
        assert recipe["peak_rss_mb"] > 0 and recipe["steps"] > 0
        assert len(recipe["sample"]) == TINY.sample_chars
    written = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert written["recipes"]["blog"]["curve"] == [list(point) for point in blog["curve"]]
    assert (tmp_path / "loss_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "char_lm.keras").exists()
    printed = capsys.readouterr().out
    table = format_table(results)
    assert table in printed
    for loss in LADDER:
        assert f"seconds to loss {loss}" in table
    assert fast["sample"] in table and blog["sample"] in table


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
