"""The demo: the blog's character-LM recipe against fastnlp's, same model size, same run, same machine.

Both recipes train on the same text and are scored on the same held-out windows with the same
measure: cross-entropy of the character that follows a ``seq_len``-character context. The blog
recipe trains for a fixed budget; fastnlp's trains until it reaches the blog's final validation
loss (or the same budget). Timings are training wall-clock seconds, graph tracing included and
evaluation excluded.

The fastnlp recipe: integer ids through an embedding, non-overlapping windows with a target at every
position, a ``tf.data`` pipeline, ``enable_mixed_precision("auto")``, and short training windows
(``fastnlp_seq_len``, 10 characters): both recipes spend their first dozens of steps on the
unigram plateau, and shorter windows make each of those steps cheaper.
"""

from __future__ import annotations

import functools
import json
import os
import platform
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from fastnlp import hardware
from fastnlp.baseline import blog_windows, build_blog_model
from fastnlp.checkpoint import save_atomically
from fastnlp.measure import PeakMemory, TrainingRun, in_fresh_process, timed_training_callback
from fastnlp.models import build_lstm
from fastnlp.notices import applied_speedups
from fastnlp.precision import enable_mixed_precision
from fastnlp.preprocess import CharVocabulary, char_lm_dataset

__all__ = [
    "Corpus",
    "DemoSettings",
    "QUICK",
    "build_fastnlp_model",
    "compare_recipes",
    "default_corpus",
    "machine_summary",
    "run_blog_recipe",
    "run_demo",
    "run_fastnlp_recipe",
    "split_corpus",
]


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and budgets of a comparison (the defaults are the demo's ~4-minute run on 2 CPU cores)."""

    units: int = 128
    num_layers: int = 3
    seq_len: int = 100
    batch_size: int = 64
    fastnlp_seq_len: int = 10  # fastnlp trains on windows this long; both recipes are scored on seq_len contexts
    budget_s: float = 75.0  # training seconds for the blog recipe, and at most for fastnlp's
    validation_windows: int = 256
    policy: str = "auto"  # fastnlp recipe: an enable_mixed_precision policy, or "float32" for none
    max_chars: int | None = None  # use only the start of the corpus
    verbose: int = 1  # 1: Keras progress bars; 2: a line per evaluation; 0: silent


QUICK = DemoSettings(units=32, budget_s=12.0, validation_windows=64, max_chars=150_000)


def default_corpus() -> tuple[str, str]:
    """Python's own bundled documentation (``pydoc_data.topics``): text every CPython install has."""
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some distributions strip it
        raise RuntimeError("this Python has no pydoc_data; pass a text file with --corpus FILE") from error
    return "\n\n".join(topics[key] for key in sorted(topics)), "Python documentation (pydoc_data.topics)"


def machine_summary() -> dict[str, Any]:
    """CPU, core count, GPUs and library versions, for the record of a measurement."""
    import keras
    import tensorflow as tf

    return {
        "cpu": hardware.cpu_model(),
        "cores": os.cpu_count(),
        "gpus": hardware.gpu_names(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


@dataclass(frozen=True)
class Corpus:
    """A corpus split for the comparison: training text, and held-out windows both recipes are scored on."""

    chars: int  # characters used, training and held out
    train_text: str
    vocabulary: CharVocabulary
    contexts: np.ndarray  # (windows, seq_len) ids of held-out text
    next_chars: np.ndarray  # (windows,) the id that follows each context

    def validation_loss(self, probabilities: np.ndarray) -> float:
        """Mean cross-entropy (nats) of the next characters under ``probabilities`` (windows, vocab)."""
        chosen = probabilities[np.arange(len(self.next_chars)), self.next_chars]
        return float(-np.mean(np.log(np.clip(chosen, 1e-7, 1.0))))


def split_corpus(text: str, settings: DemoSettings = DemoSettings()) -> Corpus:
    """Hold out the end of ``text`` (``validation_windows`` contexts, at most a tenth) and keep the rest for training.

    Raises:
        ValueError: the text is too short for the settings.
    """
    if settings.max_chars:
        text = text[: settings.max_chars]
    held_out = min(settings.validation_windows * settings.seq_len + 1, len(text) // 10)
    windows = (held_out - 1) // settings.seq_len
    if windows < 1 or len(text) - held_out < settings.seq_len * settings.batch_size:
        raise ValueError(
            f"the corpus ({len(text)} characters) is too short for seq_len={settings.seq_len} and "
            f"batch_size={settings.batch_size}: give at least {20 * settings.seq_len * settings.batch_size} characters"
        )
    vocabulary = CharVocabulary.from_text(text)
    ids = vocabulary.encode(text[-held_out:])
    return Corpus(
        len(text),
        text[:-held_out],
        vocabulary,
        ids[: windows * settings.seq_len].reshape(windows, settings.seq_len),
        ids[settings.seq_len :: settings.seq_len][:windows],
    )


def compare_recipes(text: str, settings: DemoSettings = DemoSettings(), model_path: str | None = None) -> dict[str, Any]:
    """Train both recipes on ``text`` and return everything measured (see the module docstring).

    ``model_path``: where to save the trained fastnlp model.
    """
    corpus = split_corpus(text, settings)
    blog = run_blog_recipe(corpus, settings)
    target = blog["final_val_loss"]
    fast = run_fastnlp_recipe(corpus, settings, target, model_path)
    return {
        "machine": fast.pop("machine"),
        "chars": corpus.chars,
        "vocab_size": corpus.vocabulary.size,
        "vocabulary": corpus.vocabulary.chars,
        "settings": asdict(settings),
        "target_val_loss": target,
        "speedup_time_to_target": _speedup(blog, fast),
        "recipes": {"blog": blog, "fastnlp": fast},
    }


def run_blog_recipe(corpus: Corpus, settings: DemoSettings) -> dict[str, Any]:
    """Train the blog recipe for ``settings.budget_s`` in a fresh process; its measurements."""
    return in_fresh_process(_train_blog, corpus, settings)


def run_fastnlp_recipe(corpus: Corpus, settings: DemoSettings, target: float, model_path: str | None = None) -> dict[str, Any]:
    """Train the fastnlp recipe until validation loss <= ``target`` (or the budget) in a fresh process."""
    return in_fresh_process(_train_fastnlp, corpus, settings, target, model_path)


def _train_blog(corpus: Corpus, settings: DemoSettings) -> dict[str, Any]:
    seq_len, vocabulary = settings.seq_len, corpus.vocabulary
    with PeakMemory() as memory:
        x, y = blog_windows(vocabulary.encode(corpus.train_text), vocabulary.size, seq_len)
        model = build_blog_model(vocabulary.size, seq_len, settings.units, settings.num_layers)
        inputs = (corpus.contexts.astype(np.float32) / np.float32(vocabulary.size))[..., None]
        run = TrainingRun(settings.batch_size)
        clock = timed_training_callback(
            model, lambda: corpus.validation_loss(model.predict(inputs, batch_size=256, verbose=0)), run,
            settings.budget_s, report=_reporter(settings),
        )
        _print_header("blog recipe", f"{len(x)} stride-1 windows, one target each, for {settings.budget_s:g} s", settings)
        model.fit(x, y, batch_size=settings.batch_size, epochs=1000, callbacks=[clock], verbose=int(settings.verbose == 1))
    result = _summary(run, memory, predictions_per_sample=1, applied=["blog recipe (baseline)"])
    return {**result, "time_to_target_s": run.time_to(run.final_loss)}


def build_fastnlp_model(vocab_size: int, settings: DemoSettings) -> Any:
    """The fastnlp recipe's model: any sequence length (trained on short windows, scored on long contexts)."""
    speedups = [] if settings.policy == "float32" else [functools.partial(enable_mixed_precision, policy=settings.policy)]
    return build_lstm(vocab_size, units=settings.units, num_layers=settings.num_layers, speedups=speedups)


def _train_fastnlp(corpus: Corpus, settings: DemoSettings, target: float, model_path: str | None) -> dict[str, Any]:
    vocabulary = corpus.vocabulary
    with PeakMemory() as memory:
        window = settings.fastnlp_seq_len
        data = char_lm_dataset(corpus.train_text, window, settings.batch_size, 0.0, vocabulary=vocabulary)
        model = build_fastnlp_model(vocabulary.size, settings)
        run = TrainingRun(settings.batch_size)
        clock = timed_training_callback(
            model,
            lambda: corpus.validation_loss(model.predict(corpus.contexts, batch_size=256, verbose=0)[:, -1, :]),
            run,
            settings.budget_s,
            target_loss=target,
            report=_reporter(settings),
        )
        _print_header(
            "fastnlp recipe",
            f"{data.train_windows} windows of {window} characters, a target at each, until val loss <= {target:.4f}",
            settings,
        )
        # shuffle=False: the dataset reshuffles itself every epoch
        model.fit(data.train, epochs=1000, shuffle=False, callbacks=[clock], verbose=int(settings.verbose == 1))
    if model_path:
        os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)
        save_atomically(model, model_path)
    applied = [f"char_lm_dataset({window}-character windows, a target at every position)", *applied_speedups(model)]
    result = _summary(run, memory, window, applied)
    return {**result, "time_to_target_s": run.time_to(target), "machine": machine_summary()}


def _reporter(settings: DemoSettings) -> Any:
    return functools.partial(print, flush=True) if settings.verbose == 2 else None


def _print_header(name: str, detail: str, settings: DemoSettings) -> None:
    if settings.verbose:
        print(f"\n== {name}: {settings.num_layers} x LSTM({settings.units}), {detail}", flush=True)


def _summary(run: TrainingRun, memory: PeakMemory, predictions_per_sample: int, applied: list[str]) -> dict[str, Any]:
    samples = run.samples_per_second()
    return {
        "samples_per_s": samples,
        "predicted_chars_per_s": samples * predictions_per_sample,
        "training_s": run.training_seconds,
        "final_val_loss": run.final_loss,
        "peak_rss_mb": memory.peak_mb,  # the recipe's own process
        "peak_rss_increase_mb": memory.peak_increase_mb,  # above what that process held before the recipe
        "curve": run.curve,
        "applied": applied,
    }


_LABELS = {"blog": "blog recipe", "fastnlp": "fastnlp recipe"}


def _speedup(blog: dict[str, Any], recipe: dict[str, Any]) -> float | None:
    """How many times sooner ``recipe`` reached the blog's final loss (None: not reached, or at 0 s)."""
    return blog["time_to_target_s"] / recipe["time_to_target_s"] if recipe["time_to_target_s"] else None


def format_table(results: dict[str, Any]) -> str:
    """The side-by-side table the demo prints, a column per recipe."""
    recipes = results["recipes"]
    target = results["target_val_loss"]

    def seconds(value: float | None) -> str:
        return "not reached" if value is None else f"{value:.1f}"

    rows = {
        "samples/s": lambda r: f"{r['samples_per_s']:.1f}",
        "predicted chars/s": lambda r: f"{r['predicted_chars_per_s']:.0f}",
        f"s to val loss {target:.4f}": lambda r: seconds(r["time_to_target_s"]),
        "speedup to that loss": lambda r: "-" if _speedup(recipes["blog"], r) is None else f"{_speedup(recipes['blog'], r):.1f}x",
        "peak memory, MB (+ over start)": lambda r: f"{r['peak_rss_mb']:.0f} (+{r['peak_rss_increase_mb']:.0f})",
        "final val loss": lambda r: f"{r['final_val_loss']:.4f}",
        "training s": lambda r: f"{r['training_s']:.1f}",
    }
    labels = [recipe.get("label", _LABELS.get(name, name)) for name, recipe in recipes.items()]
    width = max(map(len, rows))
    columns = [max(16, len(label)) for label in labels]
    lines = ["  ".join([" " * width, *(f"{label:>{w}}" for label, w in zip(labels, columns))])]
    for name, cell in rows.items():
        lines.append("  ".join([f"{name:{width}}", *(f"{cell(r):>{w}}" for r, w in zip(recipes.values(), columns))]))
    lines.append(f"fastnlp applied: {'; '.join(recipes['fastnlp']['applied'])}")
    return "\n".join(lines)


def plot_curves(results: dict[str, Any], path: str) -> None:
    """Write a PNG of validation loss against training wall-clock time, a curve per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, recipe in results["recipes"].items():
        times, losses = zip(*recipe["curve"])
        axes.plot(times, losses, marker="o", markersize=3, label=recipe.get("label", _LABELS.get(name, name)))
    axes.axhline(results["target_val_loss"], color="grey", linestyle="--", label="blog's final val loss")
    settings = results["settings"]
    axes.set(
        xlabel="training wall-clock time (s)",
        ylabel="validation loss (next char, nats)",
        title=f"{settings['num_layers']} x LSTM({settings['units']}) on {results.get('corpus', 'corpus')}",
    )
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_demo(text: str, corpus: str, settings: DemoSettings, out_dir: str) -> dict[str, Any]:
    """Compare the recipes, print the table, and write ``results.json``, ``loss_vs_time.png`` and the model."""
    results = compare_recipes(text, settings, model_path=os.path.join(out_dir, "char_lm.keras"))
    results["corpus"] = corpus
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1, ensure_ascii=False)
    plot_curves(results, os.path.join(out_dir, "loss_vs_time.png"))
    print()
    print(format_table(results))
    print(f"\nwrote {out_dir}/results.json, {out_dir}/loss_vs_time.png and the trained model {out_dir}/char_lm.keras")
    return results

