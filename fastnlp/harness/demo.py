"""The demo: the blog's character-LM recipe against fastnlp's, the same wall-clock budget each, the same run.

Each recipe trains in a fresh process on the first 90% of the text for ``budget_s`` training
seconds (graph tracing included, evaluation excluded) and is scored on the same held-out contexts
from the last 10%: the cross-entropy of the character that follows each 100-character context,
the one measure the blog's model (one prediction per window) can be given. The table shows the
loss each reaches and the seconds each took to reach a ladder of losses; below it, 200 characters
sampled from each model, since a sample says more than a number.

The blog recipe (:mod:`fastnlp.harness.baseline`): 100-character windows at stride 1, ids as floats, one
target per window, a stack of LSTMs with dropout, a constant learning rate. The fastnlp recipe is
:func:`fastnlp.train_char_lm`: every-position targets on short windows, a hoisted-projection LSTM
sized for the budget, a learning rate that warms up and decays to the end of the budget.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fastnlp.core.checkpoint import save_atomically
from fastnlp.core.measure import (
    PeakMemory,
    TrainingRun,
    in_fresh_process,
    time_to,
    timed_training_callback,
)
from fastnlp.core.tables import text_table
from fastnlp.harness.baseline import blog_windows, build_blog_model
from fastnlp.harness.reports import (
    loss_figure,
    machine_summary,
    new_figure,
    save_figure,
)
from fastnlp.preprocess import CharVocabulary
from fastnlp.recipes.training import (
    char_lm_sampler,
    sample_text,
    split_text,
    train_char_lm,
)

__all__ = [
    "CONTEXT",
    "DemoSettings",
    "HeldOut",
    "LADDER",
    "QUICK",
    "format_table",
    "plot_curves",
    "run_blog_recipe",
    "run_demo",
    "run_fastnlp_recipe",
]

#: Characters of context before each scored character (the blog's window).
CONTEXT = 100
#: The validation losses whose time to reach the table shows.
LADDER: tuple[float, ...] = (3.0, 2.5, 2.2, 2.0)


@dataclass(frozen=True)
class DemoSettings:
    """Budget and sizes of a comparison (the defaults take about 3 minutes on 2 CPU cores)."""

    budget_s: float = 75.0  # training seconds for each recipe
    blog_units: int = 128  # the blog's stack is 3 x LSTM(512); smaller, it makes more progress in the budget
    blog_layers: int = 3
    validation_contexts: int = 256
    sample_chars: int = 200
    max_chars: int | None = None  # use only the start of the corpus
    verbose: int = 1  # 0: silent; 1: a line per phase; 2: a line per evaluation too


QUICK = DemoSettings(budget_s=12.0, blog_units=32, validation_contexts=64, sample_chars=100, max_chars=300_000)


@dataclass(frozen=True)
class HeldOut:
    """The held-out contexts both recipes are scored on, and the character after each."""

    vocabulary: CharVocabulary
    contexts: np.ndarray  # (contexts, CONTEXT) ids
    next_ids: np.ndarray  # (contexts,)

    @classmethod
    def from_text(cls, text: str, count: int) -> HeldOut:
        """Up to ``count`` non-overlapping contexts from the last 10% of ``text`` (vocabulary: all of ``text``).

        Raises:
            ValueError: the held-out text has room for no context.
        """
        vocabulary = CharVocabulary.from_text(text)
        ids = vocabulary.encode(split_text(text)[1])
        count = min(count, (len(ids) - 1) // (CONTEXT + 1))
        if count < 1:
            raise ValueError(
                f"the corpus ({len(text)} characters) is too short: its last 10% must hold at least one "
                f"{CONTEXT + 1}-character context; give at least {10 * (CONTEXT + 1) * 4} characters"
            )
        starts = np.arange(count) * (CONTEXT + 1)
        return cls(vocabulary, ids[starts[:, None] + np.arange(CONTEXT)], ids[starts + CONTEXT])

    def loss(self, probabilities: np.ndarray) -> float:
        """Mean cross-entropy (nats) of the next characters under ``probabilities`` (contexts, vocabulary)."""
        chosen = probabilities[np.arange(len(self.next_ids)), self.next_ids]
        return float(-np.mean(np.log(np.clip(chosen, 1e-7, 1.0))))


def run_blog_recipe(text: str, settings: DemoSettings) -> dict[str, Any]:
    """Train the blog recipe for ``settings.budget_s`` in a fresh process; its measurements and a sample."""
    return in_fresh_process(_train_blog, text, settings)


def run_fastnlp_recipe(text: str, settings: DemoSettings, model_path: str | None = None) -> dict[str, Any]:
    """Train ``train_char_lm`` for ``settings.budget_s`` in a fresh process; its measurements and a sample."""
    return in_fresh_process(_train_fastnlp, text, settings, model_path)


def _train_blog(text: str, settings: DemoSettings) -> dict[str, Any]:
    held_out = HeldOut.from_text(text, settings.validation_contexts)
    vocabulary = held_out.vocabulary

    def as_input(ids: np.ndarray) -> np.ndarray:
        return (ids.astype(np.float32) / np.float32(vocabulary.size))[..., None]

    with PeakMemory() as memory:
        x, y = blog_windows(vocabulary.encode(split_text(text)[0]), vocabulary.size, CONTEXT)
        model = build_blog_model(vocabulary.size, CONTEXT, settings.blog_units, settings.blog_layers)
        run = TrainingRun(64)
        clock = timed_training_callback(
            model, lambda: held_out.loss(model.predict(as_input(held_out.contexts), batch_size=256, verbose=0)), run,
            settings.budget_s, min_gap_s=settings.budget_s / 10, growth=1.0, report=_reporter("blog", settings),
        )
        model.fit(x, y, batch_size=64, epochs=1000, callbacks=[clock], verbose=0)
    predict = functools.partial(model.predict, batch_size=1, verbose=0)
    sample = sample_text(lambda ids: predict(as_input(ids[None, -CONTEXT:]))[0], vocabulary, _prompt(held_out), settings.sample_chars)
    return {
        "label": f"blog recipe: {settings.blog_layers} x LSTM({settings.blog_units}), 100-char windows, one target each",
        "curve": run.curve, "steps": len(run.batch_seconds), "training_s": run.training_seconds,
        "peak_rss_mb": memory.peak_mb, "sample": sample,
    }


def _train_fastnlp(text: str, settings: DemoSettings, model_path: str | None) -> dict[str, Any]:
    import warnings

    held_out = HeldOut.from_text(text, settings.validation_contexts)

    def validate(model: Any, _held_out_ids: np.ndarray) -> float:
        return held_out.loss(np.asarray(model.predict(held_out.contexts, batch_size=256, verbose=0))[:, -1, :])

    with PeakMemory() as memory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train_char_lm(text, settings.budget_s, evaluations=10, validate=validate, report=_reporter("fastnlp", settings))
    if model_path:
        os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)
        save_atomically(result.model, model_path)
    recipe = result.recipe
    sample = sample_text(char_lm_sampler(result.model), result.vocabulary, _prompt(held_out), settings.sample_chars)
    return {
        "label": f"fastnlp recipe: {recipe.num_layers} x LSTM({recipe.units}), {recipe.seq_len}-char windows, a target at each",
        "curve": result.curve, "steps": result.steps, "training_s": result.training_s,
        "peak_rss_mb": memory.peak_mb, "sample": sample, "recipe": asdict(recipe),
    }


def _prompt(held_out: HeldOut) -> str:
    return held_out.vocabulary.decode(held_out.contexts[0])


def _reporter(name: str, settings: DemoSettings) -> Any:
    if settings.verbose < 2:
        return None
    return lambda line: print(f"  {name:8s}{line}", flush=True)


def format_table(results: dict[str, Any]) -> str:
    """The side-by-side table the demo prints (a column per recipe), then each recipe's sample."""
    recipes = list(results["recipes"].values())
    rows = [["validation loss at the end", *(f"{r['curve'][-1][1]:.3f}" for r in recipes)]]
    for loss in LADDER:
        cells = [time_to(r["curve"], loss) for r in recipes]
        rows.append([f"seconds to loss {loss}", *("not reached" if t is None else f"{t:.1f}" for t in cells)])
    rows.append(["training steps", *(str(r["steps"]) for r in recipes)])
    rows.append(["peak memory, MB", *(f"{r['peak_rss_mb']:.0f}" for r in recipes)])
    title = f"{results['budget_s']:g} s of training each on {results['corpus']}"
    table = text_table(["", *(r["label"] for r in recipes)], rows, title=title)
    samples = [f"\n{recipe['label']}, {len(recipe['sample'])} characters sampled:\n{recipe['sample']}" for recipe in recipes]
    return table + "\n" + "\n".join(samples)


def plot_curves(results: dict[str, Any], path: str) -> None:
    """Write a PNG of validation loss against training wall-clock time, a curve per recipe."""
    figure, axes = new_figure(1, (7, 4.5))
    curves = {recipe["label"]: recipe["curve"] for recipe in results["recipes"].values()}
    loss_figure(
        axes, curves, LADDER, ylabel=f"validation loss (next char after {CONTEXT}, nats)",
        title=f"{results['budget_s']:g} s each on {results['corpus']}",
    )
    save_figure(figure, path)


def run_demo(text: str, corpus: str, settings: DemoSettings, out_dir: str) -> dict[str, Any]:
    """Train both recipes, print the table and samples, and write ``results.json``, ``loss_vs_time.png`` and the model.

    Raises:
        ValueError: the corpus is too short (checked before anything trains).
    """
    if settings.max_chars:
        text = text[: settings.max_chars]
    HeldOut.from_text(text, settings.validation_contexts)  # too short a corpus fails here, before any training
    os.makedirs(out_dir, exist_ok=True)  # and an --out that cannot be made
    say = print if settings.verbose else lambda *_args, **_kwargs: None
    say(f"each recipe trains {settings.budget_s:g} s on {len(text)} characters (the last 10% held out)", flush=True)
    recipes = {}
    for name, run in (("blog", run_blog_recipe), ("fastnlp", functools.partial(run_fastnlp_recipe, model_path=os.path.join(out_dir, "char_lm.keras")))):
        say(f"training the {name} recipe ...", end=" ", flush=True)
        recipes[name] = run(text, settings)
        say(f"{recipes[name]['steps']} steps in {recipes[name]['training_s']:.1f} s, validation loss {recipes[name]['curve'][-1][1]:.3f}", flush=True)
    results = {
        "corpus": corpus, "chars": len(text), "budget_s": settings.budget_s, "settings": asdict(settings),
        "machine": machine_summary(), "recipes": recipes,
    }
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1, ensure_ascii=False)
    plot_curves(results, os.path.join(out_dir, "loss_vs_time.png"))
    print()
    print(format_table(results))
    print(f"\nwrote {out_dir}/results.json, {out_dir}/loss_vs_time.png and the trained model {out_dir}/char_lm.keras")
    return results
