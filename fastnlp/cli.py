"""Command line: ``fastnlp demo`` (also ``python -m fastnlp demo``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnlp", description="Composable, measured training speedups for Keras LSTMs.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train the blog's char-LM recipe and fastnlp's side by side and compare them",
        description="Train the blog's character-LM recipe and fastnlp's at the same model size, then print a "
        "table, and write results.json, loss_vs_time.png and the trained model.",
    )
    demo.add_argument("--corpus", metavar="FILE", help="UTF-8 text file (default: Python's bundled documentation)")
    demo.add_argument("--quick", action="store_true", help="small model and budget: about a minute on 2 cores")
    demo.add_argument("--policy", choices=("auto", "mixed_float16", "mixed_bfloat16", "float32"), help="mixed precision for the fastnlp recipe (default: auto)")
    demo.add_argument("--budget", type=float, metavar="SECONDS", help="training seconds of the blog recipe")
    demo.add_argument("--units", type=int, help="LSTM units per layer (both recipes)")
    demo.add_argument("--layers", type=int, help="LSTM layers (both recipes)")
    demo.add_argument("--window", type=int, help="characters per training window of the fastnlp recipe (default 10)")
    demo.add_argument("--max-chars", type=int, help="use only the first N characters of the corpus")
    demo.add_argument("--out", default="fastnlp-demo", help="output folder (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fastnlp import demo

    settings = demo.QUICK if args.quick else demo.DemoSettings()
    changes = {"policy": args.policy, "budget_s": args.budget, "units": args.units, "num_layers": args.layers, "max_chars": args.max_chars, "fastnlp_seq_len": args.window}
    settings = dataclasses.replace(settings, **{key: value for key, value in changes.items() if value is not None})
    if args.corpus:
        with open(args.corpus, encoding="utf-8") as corpus_file:
            text, corpus = corpus_file.read(), os.path.basename(args.corpus)
    else:
        text, corpus = demo.default_corpus()
    print(f"corpus: {corpus}, {len(text)} characters")
    demo.run_demo(text, corpus, settings, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
