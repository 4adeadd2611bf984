"""Registries of transforms, and the preamble every model transform shares.

A model transform is declared with :func:`speedup`, once: its descriptor (:class:`Transform`) says at
which stage it applies and what it cannot be combined with, and the decorator wraps the body in what
every speedup does alike: check that the model can be re-created, return an unchanged copy with a
:class:`~fastnlp.NoEffectWarning` when the body says it cannot take effect, and record the step in the
result's lineage (:mod:`fastnlp.core.lineage`). The written list of speedups and the plan that orders
them live in :mod:`fastnlp.speedups.catalog`; the shared tests loop over it, so a new transform is
checked for purity, a 2-step fit, save/load and bad input with no new test.

The order of the stages: layer settings (such as what makes an LSTM cuDNN-eligible) come first; a
dtype policy must be fixed before wrappers and before variables are created under a strategy;
wrappers (pruning, quantization) go around built layers and re-create the model in tf_keras, so the
strategy comes after them; and compile options come last because every rebuild recompiles (a rebuild
keeps the input's strategy).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from fastnlp.core.flavour import check_rebuildable
from fastnlp.core.lineage import Distribution, Step, record
from fastnlp.core.notices import warn_no_effect
from fastnlp.core.rebuild import rebuild

__all__ = [
    "STAGES", "Applied", "NoEffect", "Registry", "TextTransform", "Transform", "finishing_step", "model_transforms", "plan",
    "registered_text_transforms", "speedup", "text_transform",
]

#: Stages in the order they must be applied (see the module docstring for why).
STAGES: tuple[str, ...] = ("layer_config", "dtype_policy", "wrappers", "strategy", "compile_options")

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Entries by name, each registered once.

    Examples:
        >>> numbers = Registry("number")
        >>> numbers.add("one", 1)
        >>> numbers.add("one", 2)
        Traceback (most recent call last):
        ...
        ValueError: a number named 'one' is already registered
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> None:
        """Register ``entry`` as ``name``; ``ValueError`` if the name is taken."""
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry

    def entries(self) -> tuple[Entry, ...]:
        """Every entry, by name."""
        return tuple(self._entries[name] for name in sorted(self._entries))


@dataclasses.dataclass(frozen=True)
class Transform:
    """One registered model transform."""

    name: str
    func: Callable
    stage: str
    conflicts: frozenset[str] = frozenset()  # names of transforms it cannot be combined with
    returns: str | None = None  # the flavour it always returns (None: the flavour it was given)
    whole: bool = False  # it copies the model whole, so a subclassed model is accepted (see check_rebuildable)


@dataclasses.dataclass(frozen=True)
class Applied:
    """What a transform's body returns when it took effect: the new model and what to record."""

    model: Any
    entry: str
    distribution: Distribution | None = None  # the model now trains under a strategy
    units: Mapping[str, int] | None = None  # the units kept per layer (structured pruning)


@dataclasses.dataclass(frozen=True)
class NoEffect:
    """What a transform's body returns when it cannot take effect here: why, and the call to record."""

    reason: str
    entry: str


_MODEL_TRANSFORMS: Registry[Transform] = Registry("transform")


def speedup(
    *, stage: str, conflicts: Iterable[str] = (), returns: str | None = None, whole: bool = False
) -> Callable[[Callable], Callable]:
    """Register a model transform whose body returns :class:`Applied` or :class:`NoEffect`.

    The registered function checks the model first (``TypeError`` for anything but a Sequential or
    functional Keras model; with ``whole=True``, for a transform that copies the model whole and edits
    no layer, a subclassed model its class re-creates is accepted too), warns and returns an unchanged copy on :class:`NoEffect`, and records
    what was applied, with its arguments, on the model it returns. ``speedups=[...]`` lists take it.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")

    def decorate(body: Callable[..., Applied | NoEffect]) -> Callable:
        transform = _with_preamble(body, whole=whole)
        _MODEL_TRANSFORMS.add(body.__name__, Transform(body.__name__, transform, stage, frozenset(conflicts), returns, whole))
        return transform

    return decorate


def finishing_step(body: Callable[..., Applied | NoEffect]) -> Callable:
    """Wrap a model transform that ends a speedup's work (``strip_pruning``) in the same preamble and record as
    :func:`speedup`; it is not registered, since no ``speedups=[...]`` list applies it."""
    return _with_preamble(body)


def _with_preamble(body: Callable[..., Applied | NoEffect], *, whole: bool = False) -> Callable:
    """``body`` wrapped in what every model transform does alike (see :func:`speedup`)."""
    name = body.__name__
    signature = inspect.signature(body)

    @functools.wraps(body)
    def transform(model: Any, *args: Any, **kwargs: Any) -> Any:
        check_rebuildable(model, whole=whole)
        outcome = body(model, *args, **kwargs)
        given = signature.bind_partial(model, *args, **kwargs).arguments
        if isinstance(outcome, NoEffect):
            warn_no_effect(name, outcome.reason)
            outcome = Applied(rebuild(model), f"{outcome.entry}: no effect")
        step = Step.of(name, {key: value for key, value in list(given.items())[1:]})
        record(outcome.model, outcome.entry, model, step=step, distribution=outcome.distribution, units=outcome.units)
        return outcome.model

    # callers get a model, not the body's Applied/NoEffect: say so to inspect.signature and help()
    transform.__signature__ = signature.replace(return_annotation="Any")
    return transform


def model_transforms() -> tuple[Transform, ...]:
    """The model transforms registered so far, in application order (by stage, then by name)."""
    return tuple(sorted(_MODEL_TRANSFORMS.entries(), key=lambda t: (STAGES.index(t.stage), t.name)))


def _lookup(spec: Any, known: dict[str, Transform]) -> tuple[Transform, dict]:
    if isinstance(spec, str):
        if spec not in known:
            raise ValueError(f"unknown speedup {spec!r}; registered speedups are {sorted(known)}")
        return known[spec], {}
    if isinstance(spec, functools.partial):
        if spec.args:
            raise ValueError(f"give a speedup's options by keyword: functools.partial({spec.func.__name__}, key=value)")
        transform, kwargs = _lookup(spec.func, known)
        return transform, {**kwargs, **spec.keywords}
    for transform in known.values():
        if transform.func is spec:
            return transform, {}
    raise TypeError(
        f"speedups: a speedup is a registered transform function, its name, or functools.partial of one; "
        f"got {spec!r} (registered: {sorted(known)})"
    )


def plan(speedups: Iterable[Any], known: Iterable[Transform]) -> list[tuple[Transform, dict]]:
    """Resolve speedups (functions, names, or ``functools.partial`` with options) among ``known`` into application order.

    Raises:
        ValueError: an unknown name, the same speedup twice, or two speedups that cannot be combined.
        TypeError: ``speedups`` is not a list of speedups.
    """
    if isinstance(speedups, str):  # one name; iterating it read "use_xla" as the speedups 'u', 's', ...
        speedups = [speedups]
    if isinstance(speedups, bytes) or not isinstance(speedups, Iterable):
        raise TypeError(f"speedups must be a list of speedups (registered functions, their names, or functools.partial), got {type(speedups).__name__}")
    by_name = {t.name: t for t in known}
    steps = [_lookup(spec, by_name) for spec in speedups]
    names = [t.name for t, _ in steps]
    for i, (transform, _) in enumerate(steps):
        if transform.name in names[:i]:
            raise ValueError(f"speedup {transform.name!r} is listed twice; give it once (with its options)")
        clash = transform.conflicts.intersection(names)
        if clash:
            raise ValueError(f"speedup {transform.name!r} cannot be combined with {sorted(clash)}")
    return sorted(steps, key=lambda step: STAGES.index(step[0].stage))


@dataclasses.dataclass(frozen=True)
class TextTransform:
    """One registered text transform: texts (str, iterable, dataset or tensor of strings) in, the same kind out."""

    name: str
    func: Callable


_TEXT_TRANSFORMS: Registry[TextTransform] = Registry("text transform")


def text_transform(func: Callable) -> Callable:
    """Register a text transform under its function name (the shared text-transform tests loop over them)."""
    _TEXT_TRANSFORMS.add(func.__name__, TextTransform(func.__name__, func))
    return func


def registered_text_transforms() -> tuple[TextTransform, ...]:
    """The text transforms registered so far, by name (``fastnlp.preprocess.text_transforms`` lists them all)."""
    return _TEXT_TRANSFORMS.entries()
