"""Save the best model without ever leaving a corrupt file, and load it back safely.

The blog's ``ModelCheckpoint(save_best_only=True)`` writes straight into the best file, so a run
killed mid-save leaves a truncated "best" model. Here every save goes to a temporary file in the
same folder, is flushed to disk, and then atomically replaces the best file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core import notices
from fastnlp.core.lineage import saved_lineage, set_lineage
from fastnlp.core.validation import check_mapping, checked_path

__all__ = ["BestCheckpoint", "best_checkpoint", "load_checkpoint", "save_atomically"]


def save_atomically(model: Any, path: str | os.PathLike) -> None:
    """Save ``model`` to the ``.keras`` file ``path`` so that ``path`` is always either the old or the new model.

    Where ``path`` is a symbolic link, the file it points to is replaced and the link kept.

    Examples:
        >>> import keras, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
        >>> save_atomically(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), path)
        >>> os.listdir(os.path.dirname(path))
        ['best.keras']
    """
    path = _keras_path(path)
    if os.path.islink(path):  # replace the file the link names, not the link (its target kept the old model)
        path = os.path.realpath(path)
    folder = os.path.dirname(path) or "."
    _remove_abandoned_partials(folder, os.path.basename(path)[:-6])
    temporary = os.path.join(folder, f".{os.path.basename(path)[:-6]}.{os.getpid()}.partial.keras")
    try:
        model.save(temporary)
        with open(temporary, "rb+") as saved:
            os.fsync(saved.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _remove_abandoned_partials(folder: str, stem: str) -> None:
    """Delete the temporary files that killed saves of ``stem`` left (their process is gone)."""
    prefix, suffix = f".{stem}.", ".partial.keras"
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) : -len(suffix)] if name.startswith(prefix) and name.endswith(suffix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def load_checkpoint(path: str | os.PathLike, *, custom_objects: dict | None = None, safe_mode: bool = True) -> Any:
    """Load a ``.keras`` file with the Keras flavour that saved it, in ``safe_mode`` by default.

    Args:
        path: a ``.keras`` file saved by either flavour (e.g. by :func:`best_checkpoint`).
        custom_objects: your own layers or functions the file refers to.
        safe_mode: refuse to run code stored in the file (``Lambda`` layers); turn it off only
            for files you trust.

    Returns:
        The model, in the flavour that saved it (tf_keras files also load fastnlp's pruned models),
        with its lineage: :func:`fastnlp.applied_speedups` lists what fastnlp had applied to it.

    Raises:
        ValueError: ``path`` does not end in ``.keras``, the file is damaged or not a Keras file
            (the message names it), or (in safe mode) the file would run stored code.
        FileNotFoundError: no such file.

    Examples:
        >>> import tf_keras, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
        >>> tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(1)]).save(path)
        >>> type(load_checkpoint(path)).__module__.split(".")[0]
        'tf_keras'
    """
    path = _keras_path(path)
    check_mapping("custom_objects", custom_objects)
    try:
        with zipfile.ZipFile(path) as archive:
            version = json.loads(archive.read("metadata.json"))["keras_version"]
        flavour = "keras" if int(str(version).split(".")[0]) >= 3 else "tf_keras"
    except FileNotFoundError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:  # truncated, overwritten, not Keras's
        raise ValueError(f"{path} is not a readable .keras file ({type(error).__name__}: {error})") from error
    try:
        model = flavours.load_model(path, flavour, safe_mode=safe_mode, custom_objects=custom_objects)
        lineage = saved_lineage(path)
    except (OSError, zipfile.BadZipFile, KeyError) as error:  # a damaged weights file inside the archive
        raise ValueError(f"{path} is damaged: its model could not be read ({type(error).__name__}: {error})") from error
    if lineage is not None:
        set_lineage(model, lineage)
    return model


def best_checkpoint(model: Any, path: str | os.PathLike, monitor: str = "val_loss", mode: str = "min") -> Any:
    """A callback for ``model.fit`` that saves the model to ``path`` whenever ``monitor`` improves.

    Saves are atomic (see :func:`save_atomically`); reload with :func:`load_checkpoint`.

    Args:
        model: the model that will be fit (picks the Keras flavour of the callback).
        path: the ``.keras`` file to keep the best model in.
        monitor: the logged quantity to watch, e.g. ``"val_loss"`` or ``"loss"``.
        mode: ``"min"`` or ``"max"``: which direction is better.

    Returns:
        A callback of ``model``'s flavour, for ``model.fit(..., callbacks=[...])``.

    Without validation data a ``"val_..."`` monitor is not logged: then every epoch's model is
    saved, with one warning. A monitor that is not logged at all stops ``fit`` after the first
    epoch (its model saved), naming the quantities that are.

    Raises:
        ValueError: ``path`` does not end in ``.keras`` or its folder cannot be created, or an unknown ``mode``.

    Examples:
        >>> import numpy as np, tempfile, os
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(12, units=4, num_layers=1)
        >>> path = os.path.join(tempfile.mkdtemp(), "best.keras")
        >>> x = np.zeros((4, 5), "int32")
        >>> _ = model.fit(x, x, epochs=2, verbose=0, callbacks=[best_checkpoint(model, path, monitor="loss")])
        >>> load_checkpoint(path).count_params() == model.count_params()
        True
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"monitor must be the name of a logged quantity such as 'val_loss', got {monitor!r}")
    path = _keras_path(path)
    folder = os.path.dirname(path) or "."
    try:  # now, not at the end of the first epoch
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ValueError(f"path: cannot create the folder {folder!r} for {path!r}: {error.strerror}") from error
    return flavours.callback_class(BestCheckpoint, flavours.detect(model))(path, monitor, 1 if mode == "min" else -1)


class BestCheckpoint:
    """Callback hooks (see :func:`best_checkpoint`): save the model whenever ``monitor`` improves, atomically."""

    def __init__(self, path: str, monitor: str, sign: int) -> None:
        super().__init__()
        self.path, self.monitor, self.sign = path, monitor, sign
        self.best = math.inf  # sign * the best value seen
        self.warned = False

    def set_model(self, model: Any) -> None:
        made_for = "keras" if flavours.callback_base("keras") in type(self).__mro__ else "tf_keras"
        fitted = flavours.detect(model)
        if fitted != made_for:  # it failed deep inside the other flavour's fit
            raise TypeError(
                f"best_checkpoint was made for a {made_for} model and is fitted with a {fitted} model: make it with "
                f"the model you fit, best_checkpoint(model, ...)"
            )
        super().set_model(model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None:
            if self.sign * float(value) < self.best:
                self.best = self.sign * float(value)
                save_atomically(self.model, self.path)
            return
        # Never end a fit with nothing saved: keep the latest model, and say why it is not the best.
        save_atomically(self.model, self.path)
        if self.monitor.startswith("val_") and self.monitor[4:] in logs:
            if not self.warned:
                self.warned = True
                notices.warn(
                    f"best_checkpoint: {self.monitor!r} is not logged because fit has no validation data; saving "
                    f"each epoch's model to {self.path} instead of the best (pass validation_data, or monitor="
                    f"{self.monitor[4:]!r})",
                    UserWarning,
                )
            return
        raise ValueError(
            f"best_checkpoint: monitor={self.monitor!r} is not logged (logged: {sorted(logs)}); this epoch's model "
            f"was saved to {self.path}; pass one of the logged names"
        )


def _keras_path(path: str | os.PathLike) -> str:
    path = checked_path("path", path)
    if not path.endswith(".keras"):
        raise ValueError(f"path must end in '.keras' (the Keras v3 format), got {path!r}")
    return path
