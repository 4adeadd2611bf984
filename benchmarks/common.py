"""What the benchmark scripts share: the corpus argument, the model-size arguments, and corpus readers."""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_DATA = os.path.join(HERE, "..", "..", "shared", "data")


def char_lm_parser(description: str, units: int = 256, layers: int = 3) -> argparse.ArgumentParser:
    """An argument parser with ``--corpus`` (tinyshakespeare by default), ``--units`` and ``--layers``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt"))
    parser.add_argument("--units", type=int, default=units)
    parser.add_argument("--layers", type=int, default=layers)
    return parser


def read_corpus(path: str) -> str | None:
    """The corpus text, or None after saying on stderr that it is missing."""
    if not os.path.exists(path):
        print(f"corpus {path} not found; pass --corpus FILE", file=sys.stderr)
        return None
    with open(path, encoding="utf-8") as corpus:
        return corpus.read()


def read_sst2(split: str) -> tuple[list[str], list[int]]:
    """SST-2's ``split`` ("train", "dev", "test") under ../shared/data: sentences and 0/1 labels."""
    with open(os.path.join(SHARED_DATA, "sst2", f"{split}.tsv"), encoding="utf-8") as tsv:
        rows = [line.rstrip("\n").rsplit("\t", 1) for line in tsv if line.strip()]
    return [text for text, _ in rows], [int(label) for _, label in rows]
