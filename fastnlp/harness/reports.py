"""What every measurement report carries: the machine it ran on, and loss-against-time plots."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from fastnlp.core import hardware

__all__ = ["loss_figure", "machine_summary", "new_figure", "save_figure"]


def machine_summary() -> dict[str, Any]:
    """CPU, core count, GPUs and library versions, for the record of a measurement.

    Examples:
        >>> sorted(machine_summary())
        ['cores', 'cpu', 'gpus', 'keras', 'python', 'tensorflow']
    """
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


def loss_figure(
    axes: Any, curves: Mapping[str, list[tuple[float, float]]], levels: Iterable[float] = (), *, ylabel: str = "validation loss",
    title: str = "", markersize: float = 3,
) -> None:
    """Draw on ``axes`` one loss-against-training-seconds curve per label, and a dotted line at each of ``levels``."""
    for label, curve in curves.items():
        if curve:
            times, losses = zip(*curve)
            axes.plot(times, losses, marker="o", markersize=markersize, label=label)
    for level in levels:
        axes.axhline(level, color="grey", linestyle=":", linewidth=0.8)
    axes.set(xlabel="training wall-clock time (s)", ylabel=ylabel, title=title)
    axes.legend(fontsize=8)


def new_figure(columns: int, size: tuple[float, float]) -> tuple[Any, Any]:
    """A matplotlib figure of ``columns`` side-by-side axes, drawn off-screen: made without pyplot, so the
    user's backend and open figures are left as they are (no display needed)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    return figure, figure.subplots(1, columns)


def save_figure(figure: Any, path: str, dpi: int = 110) -> None:
    """Write ``figure`` to ``path`` as a PNG."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
