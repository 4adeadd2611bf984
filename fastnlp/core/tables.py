"""Plain-text tables, drawn by ``rich`` (which Keras already depends on), for reports and results."""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["text_table"]


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None, align: str | None = None) -> str:
    """``rows`` under ``columns`` as a text table.

    ``align`` has a letter per column, ``l`` (left) or ``r`` (right); by default the first column is
    left-aligned and the others right-aligned (names, then numbers).

    Examples:
        >>> print(text_table(["name", "value"], [["a", "1.0"], ["bb", "22.0"]]))
        ┏━━━━━━┳━━━━━━━┓
        ┃ name ┃ value ┃
        ┡━━━━━━╇━━━━━━━┩
        │ a    │   1.0 │
        │ bb   │  22.0 │
        └──────┴───────┘
    """
    from rich.console import Console
    from rich.table import Table

    align = align or "l" + "r" * (len(columns) - 1)
    if len(align) != len(columns) or set(align) - {"l", "r"}:
        raise ValueError(f"align must have an 'l' or 'r' per column ({len(columns)}), got {align!r}")
    table = Table(title=title, title_justify="left")
    for column, side in zip(columns, align, strict=True):
        table.add_column(column, justify="left" if side == "l" else "right")
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=200, force_terminal=False, color_system=None).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip().splitlines())
