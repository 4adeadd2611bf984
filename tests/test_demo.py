import json

import pytest

from fastnlp.demo import DemoSettings, default_corpus, format_table, run_demo

TINY = DemoSettings(units=8, num_layers=2, seq_len=20, fastnlp_seq_len=10, batch_size=16, budget_s=3.0, validation_windows=16, max_chars=40_000, verbose=0)


@pytest.mark.filterwarnings("ignore::fastnlp.NoEffectWarning")
def test_demo_compares_both_recipes_and_writes_its_results(tmp_path, capsys):
    text, corpus = default_corpus()
    results = run_demo(text, corpus, TINY, str(tmp_path))

    blog, fast = results["recipes"]["blog"], results["recipes"]["fastnlp"]
    assert results["target_val_loss"] == blog["final_val_loss"]
    assert blog["training_s"] >= TINY.budget_s
    assert blog["time_to_target_s"] <= blog["training_s"]
    assert fast["predicted_chars_per_s"] == pytest.approx(fast["samples_per_s"] * TINY.fastnlp_seq_len)
    assert blog["predicted_chars_per_s"] == pytest.approx(blog["samples_per_s"])
    for recipe in (blog, fast):
        times = [t for t, _ in recipe["curve"]]
        assert times == sorted(times) and recipe["curve"][0][0] == 0.0
        assert recipe["peak_rss_mb"] > 0
    if fast["time_to_target_s"] is None:  # ran the whole budget without reaching the blog's loss
        assert fast["training_s"] >= TINY.budget_s
        assert results["speedup_time_to_target"] is None
    else:  # stopped at the target (at 0 s when the blog recipe made no progress in its tiny budget)
        assert fast["final_val_loss"] <= results["target_val_loss"]
        if fast["time_to_target_s"] > 0:
            assert results["speedup_time_to_target"] == pytest.approx(blog["time_to_target_s"] / fast["time_to_target_s"])

    written = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert written["recipes"]["blog"]["curve"] == [list(point) for point in blog["curve"]]
    assert (tmp_path / "loss_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "char_lm.keras").exists()
    printed = capsys.readouterr().out
    assert format_table(results) in printed
    assert "fastnlp applied: char_lm_dataset" in printed


def test_too_short_a_corpus_is_refused(tmp_path):
    with pytest.raises(ValueError, match="too short"):
        run_demo("abc" * 100, "tiny", TINY, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
