"""Write docs/your-model.md, the zoo x transform matrix, from the outcomes a full zoo contract run recorded.

    rm -f zoo.jsonl
    FASTNLP_ZOO=full FASTNLP_ZOO_RECORD=zoo.jsonl python -m pytest -n 2 tests/speedups/test_zoo_contract.py
    python tests/zoo_matrix.py zoo.jsonl docs/your-model.md

Nothing on the page is typed by hand: the cells and reasons are the test run's own.
"""

from __future__ import annotations

import collections
import json
import re
import sys

import zoo

MARK = {"works": "works", "no effect": "no effect", "refused": "refused"}


def render(rows: list[dict]) -> str:
    """The Markdown page for the recorded ``rows``."""
    transforms = sorted({row["transform"] for row in rows})
    outcome = {(row["family"], row["flavour"], row["transform"]): row for row in rows}
    counts = collections.Counter(row["outcome"] for row in rows)
    lines = [
        "# Works with your model",
        "",
        "Every registered speedup, `tune`, and the TFLite export in each quantization, tried on every model of the",
        "test zoo (`tests/zoo.py`: small instances of the shapes Keras's NLP examples teach, and of what users bring",
        "beside them), in Keras 3 and tf_keras. A speedup's cell *works* when the input is untouched, the result",
        "computes what the input did, fits two steps and saves and loads with its lineage (its weights, for the two",
        "models Keras itself cannot load: a subclassed model and a custom layer without `get_config`); *no effect*",
        "when the speedup had nothing to change and said so; *refused* when it raised a clear error before any work.",
        "For `prune_units`, \"computes what the input did\" means: once the units it removes are silenced in the input.",
        "`tune` *works* when it measured the model and a hoisted copy and returned one that computes what the input",
        "did. `strip_pruning` *works* when the model `prune` returned, after a 2-step fit, strips to a model of the",
        "input's flavour that computes what the pruned one did. A `to_tflite` cell *works* when `LiteRTModel` runs the",
        "export and its outputs, in the model's order, are the model's (within 1e-4 in float32, 1e-3 in float16, 0.02",
        "dynamic, 0.05 int8). The reasons follow the table.",
        "",
        f"Generated from a test run (`tests/zoo_matrix.py`): {len(rows)} cells, {counts['works']} work, "
        f"{counts['no effect']} no effect, {counts['refused']} refused, and nothing else: no unclear error, crash "
        "or silent difference (such a cell fails the run).",
        "",
        "| model | flavour | " + " | ".join(f"`{name}`" for name in transforms) + " |",
        "| --- | --- | " + " | ".join("---" for _ in transforms) + " |",
    ]
    for family, (_, flavours) in zoo.FAMILIES.items():
        for flavour in flavours:
            cells = [MARK[outcome[(family, flavour, name)]["outcome"]] if (family, flavour, name) in outcome else "not run" for name in transforms]
            lines.append(f"| {family} | {flavour} | " + " | ".join(cells) + " |")
    lines += ["", "## Why not", ""]
    for name in transforms:
        reasons = collections.defaultdict(list)
        for row in rows:
            if row["transform"] == name and row["outcome"] != "works":
                reasons[_numbering_dropped(row["detail"].split("\n")[0])].append(f"{row['family']} ({row['flavour']})")
        if reasons:
            lines += [f"### `{name}`", ""]
            for reason, where in sorted(reasons.items()):
                lines.append(f"- {', '.join(where)}: {reason}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _numbering_dropped(reason: str) -> str:
    """``reason`` without the numbers Keras appends to default names ('embedding_172' -> 'embedding'), so that one
    reason given for differently numbered twins reads once."""
    return re.sub(r"'([A-Za-z]+(?:_[A-Za-z]+)*)_\d+'", r"'\1'", reason)


def main(argv: list[str]) -> int:
    source, page = argv
    with open(source, encoding="utf-8") as records:
        rows = [json.loads(line) for line in records if line.strip()]
    with open(page, "w", encoding="utf-8") as out:
        out.write(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
