"""``fastnlp bench``: the baseline, each speedup alone and the whole stack, measured side by side.

Every configuration trains the same ``build_lstm`` model on the same data in a fresh process, for
the same training-time budget, and is measured there: training throughput, time to the baseline's
final validation loss, peak memory, saved model size, batch-1 latency and which fast paths were in
effect. A last row exports the baseline to a dynamic-range int8 TFLite model and measures its size
and LiteRT latency. The record is JSON; the table and chart are drawn from it, and so is the section
of ``docs/benchmarks.md`` between ``<!-- bench:begin -->`` and ``<!-- bench:end -->``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import warnings
from typing import Any

from fastnlp.core.tables import text_table
from fastnlp.harness.reports import loss_figure, new_figure, save_figure

__all__ = [
    "BenchSettings", "check_docs_page", "configurations", "format_table", "load_datasets", "plot_results", "read_labelled", "render_markdown",
    "run_bench", "update_docs",
]

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What to train and for how long; :data:`QUICK` is a minute-long version for CI."""

    task: str = "char_lm"  # "char_lm" (any UTF-8 text) or "classify" (TSV: text<TAB>label)
    units: int = 256
    num_layers: int = 2
    seq_len: int = 50  # char_lm windows; classify cuts sentences to this many tokens
    batch_size: int = 64
    budget_s: float = 60.0  # training seconds per configuration
    max_chars: int = 1_000_000  # char_lm: use the corpus's first characters only
    max_examples: int = 20_000  # classify: use the first training examples only


QUICK = BenchSettings(units=16, num_layers=1, seq_len=20, budget_s=6.0, max_chars=30_000, max_examples=1_000)
THROUGHPUT_STEPS = 24  # timed training steps per configuration, after the budgeted run


def configurations() -> list[tuple[str, list]]:
    """The baseline, each speedup ``tune`` would try on this machine alone, ``distribute``, and all of them together.

    Examples:
        >>> [name for name, _ in configurations()][:3]
        ['baseline', 'mixed_bfloat16', 'xla']
    """
    from fastnlp.speedups import catalog
    from fastnlp.speedups.parallel.distribute import distribute
    from fastnlp.speedups.tuning import default_candidates

    alone = [*default_candidates(), ("distribute", [distribute])]
    stack: dict[str, Any] = {}  # one of each speedup: the last listed (the larger steps per execution)
    for _, speedups in alone:
        for transform, options in catalog.plan(speedups):
            stack[transform.name] = functools.partial(transform.func, **options)
    return [("baseline", []), *alone, ("whole stack", list(stack.values()))]


def run_bench(corpus_path: str, settings: BenchSettings = BenchSettings(), only: list[str] | None = None) -> dict[str, Any]:
    """Measure every configuration (or those named in ``only``) on ``corpus_path``; return the record.

    Args:
        corpus_path: a UTF-8 text file (``char_lm``) or a TSV file of ``text<TAB>label`` lines (``classify``).
        settings: model size, batch size and the training-time budget per configuration.
        only: names of configurations to run (the baseline always runs: it sets the quality target).

    Returns:
        The record: ``settings``, ``machine``, ``corpus``, ``target_val_loss`` and one row per configuration.

    Raises:
        ValueError: an unknown task or configuration name.

    Examples:
        >>> run_bench("corpus.txt", BenchSettings(task="translation"))
        Traceback (most recent call last):
        ...
        ValueError: task must be 'char_lm' or 'classify', got 'translation'
    """
    if settings.task not in ("char_lm", "classify"):
        raise ValueError(f"task must be 'char_lm' or 'classify', got {settings.task!r}")
    from fastnlp.core.measure import in_fresh_process, time_to
    from fastnlp.harness.reports import machine_summary

    names = [name for name, _ in configurations()]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown configurations {unknown}; known: {names}")
    chosen = [name for name in names if only is None or name in only or name == "baseline"]
    rows = []
    for name in chosen:
        print(f"{name} ...", flush=True)
        rows.append(in_fresh_process(_measure_configuration, corpus_path, settings, name))
    rows.append(in_fresh_process(_measure_export, corpus_path, settings))
    target = rows[0]["final_val_loss"]
    for row in rows:
        row["seconds_to_target"] = time_to(row.get("curve") or [], target)
    return {
        "settings": dataclasses.asdict(settings), "machine": machine_summary(), "corpus": os.path.basename(corpus_path),
        "target_val_loss": target, "rows": rows,
    }


def load_datasets(corpus_path: str, settings: BenchSettings) -> tuple[Any, Any, int]:
    """``(train, validation, vocabulary size)`` for the task."""
    if settings.task == "char_lm":
        from fastnlp.preprocess import char_lm_dataset

        with open(corpus_path, encoding="utf-8") as corpus:
            text = corpus.read()[: settings.max_chars]
        data = char_lm_dataset(text, seq_len=settings.seq_len, batch_size=settings.batch_size, validation_split=0.1)
        return data.train, data.validation.take(20), data.vocabulary.size
    from fastnlp.preprocess import text_classification_dataset

    texts, labels = read_labelled(corpus_path, settings.max_examples)
    held_out = max(len(texts) // 10, 1)
    classes = max(labels[held_out:]) + 1
    if max(labels[:held_out]) >= classes:
        raise ValueError(
            f"{corpus_path}: the held-out first {held_out} lines have label {max(labels[:held_out])}, which the training "
            f"lines (labels 0 to {classes - 1}) never have"
        )
    train = text_classification_dataset(texts[held_out:], labels[held_out:], batch_size=settings.batch_size, max_length=settings.seq_len)
    validation = text_classification_dataset(
        texts[:held_out], labels[:held_out], batch_size=settings.batch_size, vocabulary=train.vocabulary,
        max_length=settings.seq_len, shuffle=False, num_classes=classes,
    )
    return train.dataset, validation.dataset, len(train.vocabulary)


def read_labelled(path: str, limit: int | None = None) -> tuple[list[str], list[int]]:
    """``(texts, labels)`` from the ``text<TAB>label`` lines of ``path`` (the first ``limit``); ``ValueError``
    naming the first line whose label is not a non-negative integer, or a file with no such lines.

    Examples:
        >>> import tempfile
        >>> path = tempfile.mktemp()
        >>> _ = open(path, "w").write("a fine film\\t1\\nnot for me\\tx\\n")
        >>> read_labelled(path)
        Traceback (most recent call last):
        ...
        ValueError: ... line 2: the label 'x' is not a non-negative integer (text<TAB>label lines)
    """
    texts, labels = [], []
    with open(path, encoding="utf-8") as tsv:
        for number, line in enumerate(tsv, start=1):
            if "\t" not in line:
                continue
            text, label = line.rstrip("\n").rsplit("\t", 1)
            if not label.strip().isdigit():
                raise ValueError(f"{path} line {number}: the label {label!r} is not a non-negative integer (text<TAB>label lines)")
            texts.append(text)
            labels.append(int(label))
            if limit is not None and len(texts) == limit:
                break
    if not texts:
        raise ValueError(f"{path} has no text<TAB>label lines")
    return texts, labels


def _build(vocab_size: int, settings: BenchSettings, speedups: list, seq_len: int | None) -> Any:
    from fastnlp.recipes.models import build_lstm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what could not take effect shows in the fast-paths column
        return build_lstm(
            vocab_size, task=settings.task, units=settings.units, num_layers=settings.num_layers,
            seq_len=seq_len, speedups=speedups,
        )


def _padded_to(length: int) -> Any:
    """A ``dataset.map`` function padding ``(token_ids, label)`` batches to ``length`` tokens."""
    import tensorflow as tf

    def pad(ids: Any, label: Any) -> tuple[Any, Any]:
        return tf.pad(ids, [[0, 0], [0, length - tf.shape(ids)[1]]]), label

    return pad


def _measure_configuration(corpus_path: str, settings: BenchSettings, name: str) -> dict[str, Any]:
    from fastnlp.core.lineage import applied_speedups
    from fastnlp.core.measure import (
        PeakMemory,
        TrainingRun,
        fast_paths,
        median_ms,
        step_clock,
        timed_training_callback,
    )

    speedups = dict(configurations())[name]
    with PeakMemory() as memory:
        train, validation, vocab_size = load_datasets(corpus_path, settings)
        bucketed = settings.task == "classify"  # bucketed batches vary in length
        model = _build(vocab_size, settings, speedups, seq_len=None if bucketed else settings.seq_len)
        # Quality against time: the clock runs from the start of fit, so tracing and compiling count.
        run = TrainingRun(batch_size=settings.batch_size)
        clock = timed_training_callback(model, lambda: _validation_loss(model, validation), run, settings.budget_s)
        model.fit(train.repeat(), epochs=1, steps_per_epoch=10**9, callbacks=[clock], verbose=0)
        # Throughput: the median rate over timed steps of the already traced model.
        steps_per_call = (model.get_compile_config() or {}).get("steps_per_execution") or 1
        rate = step_clock(model, settings.batch_size)
        steps = steps_per_call * max(2, -(-THROUGHPUT_STEPS // steps_per_call))
        model.fit(train.repeat(), epochs=1, steps_per_epoch=steps, callbacks=[rate], verbose=0)
    row = {
        "name": name, "applied": list(applied_speedups(model)), "fast_paths": fast_paths(model),
        "samples_per_s": rate.samples_per_second(warmup_steps=steps_per_call),
        "final_val_loss": run.final_loss, "curve": run.curve, "peak_memory_mb": memory.peak_mb,
        "model_bytes": _saved_bytes(model),
    }
    import tensorflow as tf

    sample = next(iter(validation))[0][:1]
    predict = tf.function(lambda inputs: model(inputs, training=False), autograph=False)  # the fastest Keras call
    row["latency_ms"] = median_ms(lambda: predict(sample))
    return row


def _validation_loss(model: Any, validation: Any) -> float:
    result = model.evaluate(validation, verbose=0)
    return float(result[0] if isinstance(result, list) else result)


def _measure_export(corpus_path: str, settings: BenchSettings) -> dict[str, Any]:
    """The baseline, briefly trained, exported as dynamic-range int8 TFLite and run with LiteRT."""
    from fastnlp.core.measure import PeakMemory, median_ms
    from fastnlp.speedups.compress import LiteRTModel, to_tflite

    with PeakMemory() as memory:
        train, validation, vocab_size = load_datasets(corpus_path, settings)
        if settings.task == "classify":  # the exporter needs one sequence length: pad every batch to it
            train, validation = (data.map(_padded_to(settings.seq_len)) for data in (train, validation))
        model = _build(vocab_size, settings, [], seq_len=settings.seq_len)
        model.fit(train.take(20), epochs=1, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = to_tflite(model, "dynamic", batch_size=1)
        lite = LiteRTModel(content)
        sample = next(iter(validation))[0][:1].numpy()
        latency = median_ms(lambda: lite.predict(sample))
    paths = "fused int8 LSTM op" if "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops else "LSTM as a loop"
    return {
        "name": "int8 export (dynamic, LiteRT)", "applied": ["to_tflite(quantization='dynamic')"], "fast_paths": paths,
        "samples_per_s": None, "final_val_loss": None, "curve": [], "peak_memory_mb": memory.peak_mb,
        "model_bytes": len(content), "latency_ms": latency,
    }


def _saved_bytes(model: Any) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        return os.path.getsize(path)


COLUMNS = ("configuration", "samples/s", "vs baseline", "s to target", "peak MB", "size KB", "latency ms", "fast paths")


def format_table(record: dict[str, Any]) -> str:
    """The record as a text table, one line per configuration.

    Examples:
        >>> print(format_table(_EXAMPLE).splitlines()[3])
        │ baseline      │     100.0 │       1.00x │         9.0 │     500 │     120 │       2.00 │ float32    │
    """
    return text_table(COLUMNS, [_cells(row, record["rows"][0]) for row in record["rows"]], align="lrrrrrrl")


def render_markdown(record: dict[str, Any]) -> str:
    """The record as the Markdown section ``docs/benchmarks.md`` shows (regenerated, never typed).

    Examples:
        >>> print(render_markdown(_EXAMPLE).splitlines()[-3])
        | baseline | 100.0 | 1.00x | 9.0 | 500 | 120 | 2.00 | float32 |
    """
    settings, machine = record["settings"], record["machine"]
    gpus = ", ".join(machine["gpus"]) or "no GPU"
    lines = [
        "Generated by `python -m fastnlp bench` from [results/bench.json](results/bench.json); do not edit by hand.",
        "",
        f"{settings['task']} on `{record['corpus']}`, {settings['num_layers']} x LSTM({settings['units']}), batch "
        f"{settings['batch_size']}, sequence length {settings['seq_len']}, {settings['budget_s']:g} s of training per "
        f"configuration, each in a fresh process; machine: {machine['cpu']}, {machine['cores']} cores, {gpus}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}. \"s to target\": training seconds to the "
        f"baseline's final validation loss ({record['target_val_loss']:.4f}; \"-\": not reached in the budget).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(_cells(row, record["rows"][0])) + " |" for row in record["rows"]]
    lines += ["", "![throughput and validation loss against time per configuration](results/bench.png)"]
    return "\n".join(lines)


def _cells(row: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    rate, base = row.get("samples_per_s"), baseline.get("samples_per_s")
    to_target = row.get("seconds_to_target")
    return [
        row["name"],
        "-" if rate is None else f"{rate:.1f}",
        "-" if rate is None or not base else f"{rate / base:.2f}x",
        "-" if to_target is None else f"{to_target:.1f}",
        f"{row['peak_memory_mb']:.0f}",
        f"{row['model_bytes'] / 1024:.0f}",
        f"{row['latency_ms']:.2f}",
        row["fast_paths"],
    ]


def plot_results(record: dict[str, Any], path: str) -> None:
    """A PNG: samples/s per configuration, and validation loss against training time."""
    trained = [row for row in record["rows"] if row.get("samples_per_s")]
    figure, (rates, curves) = new_figure(2, (12, 4.5))
    rates.barh([row["name"] for row in trained], [row["samples_per_s"] for row in trained])
    rates.invert_yaxis()
    rates.set(xlabel="training samples/s", title="throughput")
    curves.axhline(record["target_val_loss"], color="grey", linestyle="--", label="baseline's final val loss")
    loss_figure(curves, {row["name"]: row.get("curve") or [] for row in trained}, title="quality against time", markersize=2)
    save_figure(figure, path, dpi=100)


def check_docs_page(page: str) -> None:
    """``ValueError`` unless ``page`` can be read and holds the bench markers (checked before any measuring)."""
    try:
        with open(page, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read --docs {page!r}: {getattr(error, 'strerror', None) or error}") from None
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page} has no {BEGIN} ... {END} section to regenerate")
    if not os.access(page, os.W_OK):
        raise ValueError(f"cannot write --docs {page!r}")


def update_docs(record: dict[str, Any], page: str) -> None:
    """Replace the text between the bench markers of ``page`` with :func:`render_markdown` of ``record``.

    Raises:
        ValueError: ``page`` lacks the markers.
    """
    with open(page, encoding="utf-8") as file:
        text = file.read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{page} has no {BEGIN} ... {END} section to regenerate")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(page, "w", encoding="utf-8") as file:
        file.write(f"{head}{BEGIN}\n{render_markdown(record)}\n{END}{tail}")


_EXAMPLE = {  # a hand-made record for the doctests above, not a measurement
    "settings": dataclasses.asdict(QUICK), "corpus": "example.txt", "target_val_loss": 2.0,
    "machine": {"cpu": "example CPU", "cores": 2, "gpus": [], "tensorflow": "2.21.0", "keras": "3"},
    "rows": [{"name": "baseline", "samples_per_s": 100.0, "seconds_to_target": 9.0, "peak_memory_mb": 500.0,
              "model_bytes": 122880, "latency_ms": 2.0, "fast_paths": "float32"}],
}
