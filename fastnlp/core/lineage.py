"""What fastnlp did to make a model, kept with the model as data and saved with it.

A :class:`Lineage` is a frozen record: the speedups applied, in order, each as the entry shown to
users and as a :class:`Step` (the transform's name and the arguments that would apply it again, as
Composer's checkpoints keep them), the flavour the user's model started in (``strip_pruning`` returns
to it), the units structured pruning kept per layer, and, while the model trains under a
``tf.distribute`` strategy, how (:class:`Distribution`). It holds no live object and no function:
the strategy itself is the model's own (Keras keeps it as ``model.distribute_strategy``), and what
training under it needs is the model's class (``fastnlp.distribute`` returns a ``DistributedModel``).

It rides on the model as a small Keras object that ``model.save(".keras")`` writes into the archive's
assets (``assets/fastnlp_lineage/lineage.json``), in both flavours, the way Keras keeps a layer's dtype
policy with the layer; :func:`saved_lineage` reads it back, and ``fastnlp.load_checkpoint`` puts it on
the loaded model. The distribution is not saved: a reloaded model is distributed again if it is to
train so.

A model ``keras.models.load_model`` reads is the same model without the record (Keras skips the
asset). HDF5 (``.h5``) files have no assets and keep no lineage.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

from fastnlp.core import flavour as flavours
from fastnlp.core import notices

__all__ = [
    "ATTRIBUTE", "Distribution", "Lineage", "Step", "applied_speedups", "carry_lineage", "lineage_of", "record", "saved_lineage",
    "set_lineage",
]

#: The model attribute the record rides on, and so the assets folder ``model.save`` writes it to.
ATTRIBUTE = "fastnlp_lineage"
_FILE = "lineage.json"
_FORMAT = 2
_READABLE_FORMATS = (1, 2)  # format 1: entries only


@dataclasses.dataclass(frozen=True)
class Distribution:
    """How a model trains under a ``tf.distribute`` strategy: the strategy as described, and the backup folder."""

    strategy: str
    backup_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One applied speedup: the registered transform's name and the keyword arguments that apply it again.

    Arguments that JSON cannot hold are kept as their ``repr``.

    Examples:
        >>> Step.of("prune", {"sparsity": 0.5, "strategy": object}).arguments["sparsity"]
        0.5
    """

    name: str
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, name: str, arguments: Mapping[str, Any]) -> Step:
        """The step ``name(model, **arguments)``, its arguments made JSON-safe."""
        return cls(name, {key: _json_safe(value) for key, value in arguments.items()})


@dataclasses.dataclass(frozen=True)
class Lineage:
    """What fastnlp applied to make a model.

    Examples:
        >>> Lineage().then("use_xla (jit_compile=True)", "keras").applied
        ('use_xla (jit_compile=True)',)
    """

    applied: tuple[str, ...] = ()
    origin_flavour: str | None = None  # the flavour of the first model given to fastnlp
    steps: tuple[Step, ...] = ()  # one per entry of `applied` that a registered transform made
    units: Mapping[str, int] = dataclasses.field(default_factory=dict)  # units kept per layer by structured pruning
    distribution: Distribution | None = None  # while it trains under a strategy; never saved

    def then(
        self,
        entry: str,
        flavour: str,
        step: Step | None = None,
        distribution: Distribution | None = None,
        units: Mapping[str, int] | None = None,
    ) -> Lineage:
        """This lineage with ``entry`` (and its ``step``) applied to a model of ``flavour`` (``units``: the
        units it kept per layer, added to those kept before)."""
        return dataclasses.replace(
            self,
            applied=(*self.applied, entry),
            origin_flavour=self.origin_flavour or flavour,
            steps=(*self.steps, step) if step is not None else self.steps,
            units={**self.units, **(units or {})},
            distribution=distribution or self.distribution,
        )

    def to_json(self) -> str:
        """The saved part: everything but the distribution."""
        steps = [{"name": step.name, "arguments": dict(step.arguments)} for step in self.steps]
        return json.dumps({
            "format": _FORMAT, "applied": list(self.applied), "origin_flavour": self.origin_flavour, "steps": steps,
            "units": dict(self.units),
        })

    @classmethod
    def from_json(cls, text: str) -> Lineage:
        """The lineage :meth:`to_json` wrote.

        Examples:
            >>> Lineage.from_json(Lineage(("a", "b"), "keras").to_json())
            Lineage(applied=('a', 'b'), origin_flavour='keras', steps=(), units={}, distribution=None)
        """
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") not in _READABLE_FORMATS:
            raise ValueError(f"not a fastnlp lineage record (format {_FORMAT}): {text[:80]!r}")
        applied, origin = data.get("applied", []), data.get("origin_flavour")
        if not isinstance(applied, list) or not all(isinstance(entry, str) for entry in applied):
            raise ValueError(f"a lineage record's 'applied' must be a list of strings, got {applied!r:.80}")
        if origin is not None and origin not in flavours.FLAVOURS:
            raise ValueError(f"a lineage record's 'origin_flavour' must be one of {flavours.FLAVOURS}, got {origin!r:.80}")
        steps, units = data.get("steps", []), data.get("units", {})
        well_formed = isinstance(steps, list) and all(
            isinstance(step, dict) and isinstance(step.get("name"), str) and isinstance(step.get("arguments"), dict) for step in steps
        )
        if not well_formed:
            raise ValueError(f"a lineage record's 'steps' must be a list of {{'name', 'arguments'}}, got {steps!r:.80}")
        if not isinstance(units, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in units.values()):
            raise ValueError(f"a lineage record's 'units' must map layer names to counts, got {units!r:.80}")
        return cls(tuple(applied), origin, tuple(Step(step["name"], step["arguments"]) for step in steps), units)


def _json_safe(value: Any) -> Any:
    """``value`` where JSON holds it as it is, else its ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: _json_safe(item) for key, item in value.items()}
    return repr(value)


def lineage_of(model: Any) -> Lineage:
    """The lineage of ``model`` (empty for a model fastnlp did not make)."""
    carrier = getattr(model, ATTRIBUTE, None)
    return carrier.lineage if carrier is not None else Lineage()


def set_lineage(model: Any, lineage: Lineage) -> None:
    """Put ``lineage`` on ``model``, replacing any it had (an attribute Keras does not count as one of its layers)."""
    flavours.set_untracked(model, ATTRIBUTE, _carrier_class(flavours.detect(model))(lineage))


def record(
    model: Any,
    entry: str,
    source: Any,
    *,
    step: Step | None = None,
    distribution: Distribution | None = None,
    units: Mapping[str, int] | None = None,
) -> None:
    """Note on ``model`` that it is ``source`` with ``entry`` (``step``) applied (``distribution``: it now trains
    so; ``units``: the units it kept per layer)."""
    before = lineage_of(source)
    keep = distribution or lineage_of(model).distribution  # a rebuild under a strategy carried it over
    set_lineage(model, before.then(entry, flavours.detect(source), step, keep, units))


def carry_lineage(source: Any, copy: Any, *, distributed: bool = True) -> None:
    """Give ``copy``, rebuilt from ``source``, ``source``'s lineage: data only.

    ``distributed=False``: ``copy`` was not built under ``source``'s strategy, so its record leaves the distribution out.
    """
    lineage = lineage_of(source)
    if not distributed:
        lineage = dataclasses.replace(lineage, distribution=None)
    if lineage != Lineage():
        set_lineage(copy, lineage)


def applied_speedups(model: Any) -> tuple[str, ...]:
    """What fastnlp applied to make ``model``, in order (empty for a model it did not make).

    The record is saved with the model (``.keras`` files) and read back by :func:`fastnlp.load_checkpoint`.

    Args:
        model: a Keras model of either flavour.

    Returns:
        One entry per speedup, e.g. ``'set_steps_per_execution(steps=8)'``; an entry ending in
        ``': no effect'`` names a speedup that could not take effect and returned an unchanged copy.

    Raises:
        TypeError: ``model`` is not a Keras model.

    Examples:
        >>> from fastnlp import build_lstm
        >>> applied_speedups(build_lstm(10, units=4, num_layers=1, speedups=["enable_mixed_precision"]))[0][:24]
        'enable_mixed_precision(p'
    """
    try:
        flavours.detect(model)
    except TypeError:
        raise TypeError(f"applied_speedups expects a Keras model, got {type(model).__name__}") from None
    return lineage_of(model).applied


#: The largest lineage record read back; a real one is a few hundred bytes.
MAX_RECORD_BYTES = 2**20


def saved_lineage(path: str | os.PathLike) -> Lineage | None:
    """The lineage saved in the ``.keras`` archive at ``path`` (``None``: none, or not an archive).

    A record that is damaged, not a lineage, or larger than :data:`MAX_RECORD_BYTES` (however small it
    is compressed) is not read: a warning names the file, and the model loads without its lineage.
    """
    member = f"assets/{ATTRIBUTE}/{_FILE}"
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = archive.getinfo(member).file_size
            if claimed > MAX_RECORD_BYTES:
                raise ValueError(f"its lineage record claims {claimed} bytes (at most {MAX_RECORD_BYTES})")
            with archive.open(member) as record_file:
                raw = record_file.read(MAX_RECORD_BYTES + 1)
            if len(raw) > MAX_RECORD_BYTES:
                raise ValueError(f"its lineage record is over {MAX_RECORD_BYTES} bytes")
        return Lineage.from_json(raw.decode("utf-8"))
    except (KeyError, OSError, zipfile.BadZipFile):
        return None
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
        notices.warn(f"{os.fspath(path)}: loaded without fastnlp's lineage record: {error}", UserWarning)
        return None


@functools.cache
def _carrier_class(flavour: str) -> type:
    """A weightless Keras object of ``flavour`` that both flavours' ``.keras`` saving visit (a layer),
    writing the lineage into the archive's assets."""
    base = flavours.keras_module(flavour).layers.Layer

    class LineageCarrier(base):
        def __init__(self, lineage: Lineage) -> None:
            super().__init__(name=ATTRIBUTE, trainable=False)
            self.lineage = lineage

        def save_assets(self, dir_path: str) -> None:
            with open(os.path.join(dir_path, _FILE), "w", encoding="utf-8") as file:
                file.write(self.lineage.to_json())

    return LineageCarrier
