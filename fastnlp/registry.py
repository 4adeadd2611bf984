"""The registry of transforms: each registered once, with a tiny example to try it on.

Model transforms: the shared tests in ``tests/test_transform_contract.py`` loop over
:func:`transforms`, so a newly registered transform is checked for purity, a 2-step fit, save/load
and bad input with no new test. Text transforms (str, lists, ``tf.data`` datasets of strings):
``tests/test_text_transform_contract.py`` loops over :func:`text_transforms` and checks that the
input is untouched, every kind of input gives the same kind back, both engines agree, and bad input
raises a clear error.
The order in which :func:`plan` applies transforms lives here, once: layer settings (such as what
makes an LSTM cuDNN-eligible) come first; a dtype policy must be fixed before wrappers and before
variables are created under a strategy; wrappers (pruning, quantization) go around built layers and
re-create the model in tf_keras, so the strategy comes after them; and compile options come last
because every rebuild recompiles (a rebuild keeps the input's strategy).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "STAGES", "BadCall", "Example", "TextTransform", "Transform", "plan", "register", "register_text_transform",
    "text_transforms", "transforms",
]

#: Stages in the order they must be applied (see the module docstring for why).
STAGES: tuple[str, ...] = ("layer_config", "dtype_policy", "wrappers", "strategy", "compile_options")

#: Modules whose import registers transforms.
_TRANSFORM_MODULES: tuple[str, ...] = (
    "fastnlp.precision", "fastnlp.gpu", "fastnlp.hoisting", "fastnlp.parallel", "fastnlp.tuning", "fastnlp.compress.pruning", "fastnlp.compress.quantization",
)
_TEXT_TRANSFORM_MODULES: tuple[str, ...] = ("fastnlp.preprocess.text",)


@dataclass(frozen=True)
class Example:
    """A tiny compiled model and a batch of data to try a transform on."""

    model: Any
    x: Any
    y: Any


@dataclass(frozen=True)
class BadCall:
    """Keyword arguments that must make a transform raise ``error`` with ``match`` in its message."""

    kwargs: Mapping[str, Any]
    error: type[Exception]
    match: str


def tiny_char_lm(flavour: str) -> Example:
    """A 1-layer character LM (vocabulary 12, 8 units, sequences of 10) and 8 random samples."""
    import numpy as np

    from fastnlp.models import build_lstm

    rng = np.random.default_rng(0)
    model = build_lstm(12, units=8, num_layers=1, embedding_dim=4, seq_len=10, flavour=flavour)
    return Example(model, rng.integers(0, 12, (8, 10)), rng.integers(0, 12, (8, 10)))


@dataclass(frozen=True)
class Transform:
    """One registered model transform."""

    name: str
    func: Callable
    stage: str
    try_kwargs: Mapping[str, Any] = field(default_factory=dict)  # arguments that make it take effect in tests
    bad_calls: tuple[BadCall, ...] = ()
    conflicts: frozenset[str] = frozenset()  # names of transforms it cannot be combined with
    example: Callable[[str], Example] = tiny_char_lm
    returns: str | None = None  # the flavour it always returns (None: the flavour it was given)
    save_suffix: str = ".keras"  # the file format its results save to and load from


_REGISTRY: dict[str, Transform] = {}


def register(
    *,
    stage: str,
    try_kwargs: Mapping[str, Any] | None = None,
    bad_calls: Iterable[BadCall] = (),
    conflicts: Iterable[str] = (),
    example: Callable[[str], Example] = tiny_char_lm,
    returns: str | None = None,
    save_suffix: str = ".keras",
) -> Callable[[Callable], Callable]:
    """Decorator that registers a model transform under its function name."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")

    def decorate(func: Callable) -> Callable:
        if func.__name__ in _REGISTRY:
            raise ValueError(f"a transform named {func.__name__!r} is already registered")
        _REGISTRY[func.__name__] = Transform(
            func.__name__, func, stage, dict(try_kwargs or {}), tuple(bad_calls), frozenset(conflicts), example,
            returns, save_suffix,
        )
        return func

    return decorate


def transforms() -> tuple[Transform, ...]:
    """Every registered transform, in application order.

    Examples:
        >>> [t.name for t in transforms()][:3]
        ['enable_cudnn', 'hoist_lstm_projection', 'enable_mixed_precision']
    """
    for module in _TRANSFORM_MODULES:
        importlib.import_module(module)
    # by stage, then by name: the order modules happened to be imported in must not show
    return tuple(sorted(_REGISTRY.values(), key=lambda t: (STAGES.index(t.stage), t.name)))


def _lookup(spec: Any) -> tuple[Transform, dict]:
    known = {t.name: t for t in transforms()}
    if isinstance(spec, str):
        if spec not in known:
            raise ValueError(f"unknown speedup {spec!r}; registered speedups are {sorted(known)}")
        return known[spec], {}
    if isinstance(spec, functools.partial):
        if spec.args:
            raise ValueError(f"give a speedup's options by keyword: functools.partial({spec.func.__name__}, key=value)")
        transform, kwargs = _lookup(spec.func)
        return transform, {**kwargs, **spec.keywords}
    for transform in known.values():
        if transform.func is spec:
            return transform, {}
    raise TypeError(
        f"speedups: a speedup is a registered transform function, its name, or functools.partial of one; "
        f"got {spec!r} (registered: {sorted(known)})"
    )


def plan(speedups: Iterable[Any]) -> list[tuple[Transform, dict]]:
    """Resolve speedups (functions, names, or ``functools.partial`` with options) into application order.

    Raises:
        ValueError: an unknown name, the same speedup twice, or two speedups that cannot be combined.

    Examples:
        >>> [t.name for t, kwargs in plan(["enable_mixed_precision"])]
        ['enable_mixed_precision']
    """
    if isinstance(speedups, str):  # one name; iterating it read "use_xla" as the speedups 'u', 's', ...
        speedups = [speedups]
    if isinstance(speedups, bytes) or not isinstance(speedups, Iterable):
        raise TypeError(f"speedups must be a list of speedups (registered functions, their names, or functools.partial), got {type(speedups).__name__}")
    steps = [_lookup(spec) for spec in speedups]
    names = [t.name for t, _ in steps]
    for i, (transform, _) in enumerate(steps):
        if transform.name in names[:i]:
            raise ValueError(f"speedup {transform.name!r} is listed twice; give it once (with its options)")
        clash = transform.conflicts.intersection(names)
        if clash:
            raise ValueError(f"speedup {transform.name!r} cannot be combined with {sorted(clash)}")
    return sorted(steps, key=lambda step: STAGES.index(step[0].stage))



@dataclass(frozen=True)
class TextTransform:
    """One registered text transform: texts (str, iterable, dataset or tensor of strings) in, the same kind out."""

    name: str
    func: Callable
    try_kwargs: Mapping[str, Any] = field(default_factory=dict)  # arguments that need no installed data
    bad_calls: tuple[BadCall, ...] = ()


_TEXT_REGISTRY: dict[str, TextTransform] = {}


def register_text_transform(
    *, try_kwargs: Mapping[str, Any] | None = None, bad_calls: Iterable[BadCall] = ()
) -> Callable[[Callable], Callable]:
    """Decorator that registers a text transform under its function name."""

    def decorate(func: Callable) -> Callable:
        if func.__name__ in _TEXT_REGISTRY:
            raise ValueError(f"a text transform named {func.__name__!r} is already registered")
        _TEXT_REGISTRY[func.__name__] = TextTransform(func.__name__, func, dict(try_kwargs or {}), tuple(bad_calls))
        return func

    return decorate


def text_transforms() -> tuple[TextTransform, ...]:
    """Every registered text transform, by name.

    Examples:
        >>> [t.name for t in text_transforms()]
        ['clean_text', 'normalize_text', 'remove_stopwords', 'tokenize']
    """
    for module in _TEXT_TRANSFORM_MODULES:
        importlib.import_module(module)
    return tuple(sorted(_TEXT_REGISTRY.values(), key=lambda t: t.name))
