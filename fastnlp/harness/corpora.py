"""Text to train on when the user gives none."""

from __future__ import annotations

__all__ = ["default_corpus"]


def default_corpus() -> tuple[str, str]:
    """Python's own bundled documentation (``pydoc_data.topics``): text every CPython install has.

    Returns:
        The text and a name for it.

    Raises:
        RuntimeError: this Python has no ``pydoc_data`` (some distributions strip it).

    Examples:
        >>> text, name = default_corpus()
        >>> len(text) > 100_000, name
        (True, 'Python documentation (pydoc_data.topics)')
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as error:  # some distributions strip it
        raise RuntimeError("this Python has no pydoc_data; pass a text file with --corpus FILE") from error
    return "\n\n".join(topics[key] for key in sorted(topics)), "Python documentation (pydoc_data.topics)"
