"""Command line: ``fastnlp train``, ``fastnlp demo``, ``fastnlp bench`` and ``fastnlp launch`` (also ``python -m fastnlp ...``)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import sys

from fastnlp.harness.corpora import default_corpus
from fastnlp.harness.quiet import quiet_command_output

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


#: The longest budget a command takes: a year of seconds (1e300 overflowed the recipe's arithmetic).
_MAX_SECONDS = 365 * 24 * 3600


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, got {text}")
    if value > _MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_SECONDS} seconds (a year), got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnlp", description="Composable, measured training speedups for Keras LSTMs.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="show the detail: a line per evaluation, TensorFlow's own log lines and library warnings",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_command = functools.partial(commands.add_parser, parents=[common])  # every command takes -v
    train = add_command("train", help="train the best character LM this machine can in a budget of seconds",
                         description="Train a character language model on CORPUS for --budget training seconds, with settings picked from the budget; hold out the last 10%% of the text and score on it. Writes OUT/model.keras (fastnlp.load_checkpoint loads it) and OUT/vocabulary.json.")
    train.add_argument("corpus", metavar="CORPUS", help="UTF-8 text file")
    train.add_argument("--budget", type=_positive_seconds, required=True, metavar="SECONDS", help="training seconds, from the first step")
    train.add_argument("--out", default="fastnlp-model", help="output folder (default: %(default)s)")
    train.add_argument("--flavour", choices=("keras", "tf_keras"), default="keras", help="Keras flavour of the model (default: %(default)s)")
    train.add_argument("--overwrite", action="store_true", help="replace the model and vocabulary an earlier run left in --out")
    demo = add_command("demo", help="train the blog's char-LM recipe and fastnlp's for the same time and compare them",
                         description="Train the blog's character-LM recipe and fastnlp's for the same wall-clock budget each, then print the losses they reach, the seconds each took to reach a ladder of losses, and text sampled from each; write results.json, loss_vs_time.png and the trained fastnlp model.")
    demo.add_argument("--corpus", metavar="FILE", help="UTF-8 text file (default: Python's bundled documentation)")
    demo.add_argument("--quick", action="store_true", help="a 12-second budget each: about a minute on 2 cores")
    demo.add_argument("--budget", type=_positive_seconds, metavar="SECONDS", help="training seconds for each recipe (default 75)")
    demo.add_argument("--blog-units", type=_positive_int, help="LSTM units per layer of the blog recipe (default 128)")
    demo.add_argument("--max-chars", type=_positive_int, help="use only the first N characters of the corpus")
    demo.add_argument("--out", default="fastnlp-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--overwrite", action="store_true", help="replace the results an earlier run left in --out")
    bench = add_command("bench", help="measure the baseline, each speedup alone and the whole stack; write JSON, a PNG and the docs table",
                         description="Train the same build_lstm model as the baseline, with each speedup alone and with all of them, each in a fresh process for the same time budget, plus an int8 export; print one table and write bench.json and bench.png. --docs regenerates that page's bench section from the JSON.")
    bench.add_argument("--corpus", metavar="FILE", help="UTF-8 text (char_lm) or text<TAB>label lines (classify); default: Python's bundled docs")
    bench.add_argument("--task", choices=("char_lm", "classify"), default="char_lm")
    bench.add_argument("--quick", action="store_true", help="a tiny model and a few seconds per configuration")
    bench.add_argument("--budget", type=_positive_seconds, metavar="SECONDS", help="training seconds per configuration")
    bench.add_argument("--units", type=_positive_int)
    bench.add_argument("--layers", type=_positive_int)
    bench.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations (and the baseline)")
    bench.add_argument("--out", default="fastnlp-bench", help="output folder (default: %(default)s)")
    bench.add_argument("--overwrite", action="store_true", help="replace the results an earlier run left in --out")
    bench.add_argument("--docs", metavar="PAGE", help="regenerate the bench section of this Markdown page")
    bench.add_argument("--from-json", metavar="FILE", help="measure nothing: redraw the table, chart and page from this record")
    launch = add_command("launch", help="run a training script as N workers on this machine (TF_CONFIG set for each)",
                         description="Run COMMAND as N multi-worker workers on 127.0.0.1, each with its TF_CONFIG; when one fails, stop the others and start them all again (--restarts times).")
    launch.add_argument("--workers", type=_positive_int, default=2, help="number of workers (default: %(default)s)")
    launch.add_argument("--restarts", type=int, default=0, help="start all workers again this many times after a failure")
    launch.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS", help="stop everything after this long")
    launch.add_argument("--log-dir", help="write worker i's output to LOG_DIR/worker-i.log")
    launch.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="e.g. -- python train.py")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"train": _train, "launch": _launch, "bench": _bench, "demo": _demo}
    # before TensorFlow is imported; launch's workers keep their own log level, so --log-dir gets every line
    with quiet_command_output(args.verbose, quiet_children=args.command != "launch"):
        return commands[args.command](args)


def _demo(args: argparse.Namespace) -> int:
    from fastnlp.harness import demo

    settings = demo.QUICK if args.quick else demo.DemoSettings()
    changes = {"budget_s": args.budget, "blog_units": args.blog_units, "max_chars": args.max_chars, "verbose": 1 + args.verbose}
    settings = dataclasses.replace(settings, **{key: value for key, value in changes.items() if value is not None})
    if args.corpus:
        text, corpus = _read_corpus(args.corpus, "demo"), os.path.basename(args.corpus)
    else:
        text, corpus = default_corpus()
    if text is None or not _make_out_folder(args.out, "demo", DEMO_FILES, args.overwrite):
        return 2
    print(f"corpus: {corpus}, {len(text)} characters")
    try:
        demo.run_demo(text, corpus, settings, args.out)
    except ValueError as error:  # a corpus too short, found before anything trains
        print(f"fastnlp demo: {error}", file=sys.stderr)
        return 2
    return 0


def _read_corpus(path: str, command: str) -> str | None:
    """The text of ``path``, or None after a one-line error naming it."""
    try:
        with open(path, encoding="utf-8") as corpus_file:
            return corpus_file.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"fastnlp {command}: cannot read {path!r} as UTF-8 text: {reason}", file=sys.stderr)
        return None


def _make_out_folder(path: str, command: str, writes: tuple[str, ...] = (), overwrite: bool = True) -> bool:
    """Create ``--out`` before any work, and check the files the command ``writes`` there (False after a one-line error).

    A file an earlier run left is replaced only with ``overwrite``; a folder where a file is to go is refused.
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        print(f"fastnlp {command}: cannot create --out {path!r}: {error.strerror or error}", file=sys.stderr)
        return False
    for name in writes:
        target = os.path.join(path, name)
        if os.path.isdir(target):
            print(f"fastnlp {command}: cannot write {target!r}: it is a folder", file=sys.stderr)
            return False
        if os.path.exists(target) and not overwrite:
            print(
                f"fastnlp {command}: --out {path!r} already holds {name} from an earlier run; pass --overwrite to "
                f"replace it, or choose another --out", file=sys.stderr,
            )
            return False
    return True


def _bench(args: argparse.Namespace) -> int:
    import json

    from fastnlp.harness import bench

    if not _docs_page_ready(args.docs):  # before any work
        return 2
    if args.from_json:
        try:
            with open(args.from_json, encoding="utf-8") as file:
                record = json.load(file)
        except (OSError, UnicodeDecodeError, ValueError) as error:
            print(f"fastnlp bench: cannot read --from-json {args.from_json!r}: {error}", file=sys.stderr)
            return 2
    else:
        settings = bench.QUICK if args.quick else bench.BenchSettings()
        changes = {"task": args.task, "budget_s": args.budget, "units": args.units, "num_layers": args.layers}
        settings = dataclasses.replace(settings, **{key: value for key, value in changes.items() if value is not None})
        corpus = args.corpus
        if corpus is None and args.task == "classify":
            print("fastnlp bench: --task classify needs --corpus FILE (text<TAB>label lines)", file=sys.stderr)
            return 2
        if (corpus is not None and _read_corpus(corpus, "bench") is None) or not _make_out_folder(
            args.out, "bench", ("bench.json", "bench.png"), args.overwrite
        ):
            return 2
        if args.task == "classify":
            try:
                bench.read_labelled(corpus)
            except ValueError as error:
                print(f"fastnlp bench: {error}", file=sys.stderr)
                return 2
        if corpus is None:
            corpus = os.path.join(args.out, "corpus.txt")
            with open(corpus, "w", encoding="utf-8") as file:
                file.write(default_corpus()[0])
        record = bench.run_bench(corpus, settings, only=args.only)
    if not _make_out_folder(args.out, "bench"):
        return 2
    if not args.from_json:
        with open(os.path.join(args.out, "bench.json"), "w", encoding="utf-8") as file:
            json.dump(record, file, indent=1)
    bench.plot_results(record, os.path.join(args.out, "bench.png"))
    print(bench.format_table(record))
    print(f"wrote {args.out}/bench.png" if args.from_json else f"wrote {args.out}/bench.json and {args.out}/bench.png")
    if args.docs:
        bench.update_docs(record, args.docs)
        print(f"regenerated the bench section of {args.docs}")
    return 0


def _docs_page_ready(page: str | None) -> bool:
    """Whether ``bench --docs`` can regenerate ``page`` (checked before measuring; False after a one-line error)."""
    from fastnlp.harness import bench

    if page is None:
        return True
    try:
        bench.check_docs_page(page)
    except ValueError as error:
        print(f"fastnlp bench: {error}", file=sys.stderr)
        return False
    return True


#: what ``fastnlp demo`` writes into ``--out``
DEMO_FILES = ("results.json", "loss_vs_time.png", "char_lm.keras")
#: what ``fastnlp train`` writes into ``--out``
TRAIN_FILES = ("model.keras", "vocabulary.json")


def _train(args: argparse.Namespace) -> int:
    import json
    import tempfile

    text = _read_corpus(args.corpus, "train")
    if text is None or not _make_out_folder(args.out, "train", TRAIN_FILES, args.overwrite):
        return 2
    from fastnlp.core.checkpoint import save_atomically
    from fastnlp.recipes.training import choose_recipe, train_char_lm

    recipe = choose_recipe(args.budget)
    print(f"corpus: {args.corpus}, {len(text)} characters; the last 10% held out for validation", flush=True)
    print(f"recipe: {recipe}", flush=True)
    try:
        report = (lambda line: print(line, flush=True)) if args.verbose else None
        print(f"training for {args.budget:g} s ...", flush=True)
        result = train_char_lm(text, args.budget, recipe=recipe, flavour=args.flavour, report=report)
    except ValueError as error:
        print(f"fastnlp train: {error}", file=sys.stderr)
        return 2
    # the vocabulary is written beside, then renamed into place right after the model's atomic save: a kill
    # during the save leaves the earlier pair whole, not a new model beside the old vocabulary
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=args.out, suffix=".partial", delete=False) as file:
        json.dump({"chars": result.vocabulary.chars}, file, ensure_ascii=False)
    save_atomically(result.model, os.path.join(args.out, "model.keras"))
    os.replace(file.name, os.path.join(args.out, "vocabulary.json"))
    print(
        f"validation loss {result.validation_loss:.4f} after {result.training_s:.1f} s ({result.steps} steps); "
        f"wrote {args.out}/model.keras and {args.out}/vocabulary.json"
    )
    return 0


def _launch(args: argparse.Namespace) -> int:
    from fastnlp.speedups.parallel.launch import (
        LauncherStopped,
        WorkerFailure,
        launch_local_workers,
    )

    command = args.worker_command[1:] if args.worker_command[:1] == ["--"] else args.worker_command
    if not command:
        print("fastnlp launch: give the worker command after --, e.g. fastnlp launch --workers 2 -- python train.py", file=sys.stderr)
        return 2
    if shutil.which(command[0]) is None:
        print(f"fastnlp launch: no such program {command[0]!r} (not a path to an executable, nor on PATH)", file=sys.stderr)
        return 2
    try:
        attempts = launch_local_workers(command, args.workers, restarts=args.restarts, timeout_s=args.timeout, log_dir=args.log_dir)
    except LauncherStopped as stopped:
        print(f"fastnlp launch: {stopped}", file=sys.stderr)
        return 128 + stopped.signum
    except (WorkerFailure, TimeoutError, OSError) as error:
        print(f"fastnlp launch: {error}", file=sys.stderr)
        return 1
    print(f"fastnlp launch: {args.workers} workers finished after {attempts} attempt(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
