"""Compile options as speedups: XLA (``jit_compile``) and several training steps per call.

Both are options of ``model.compile``, so each returns a copy compiled as the input was plus the
option; the input keeps its own.
"""

from __future__ import annotations

import warnings
from typing import Any

from fastnlp.core import flavour, hardware, notices
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import rebuild
from fastnlp.core.recurrent import cudnn_report
from fastnlp.core.registry import Applied, speedup
from fastnlp.core.validation import check_positive_int

__all__ = ["set_steps_per_execution", "use_xla"]


@speedup(stage="compile_options", whole=True)
def use_xla(model: Any) -> Applied:
    """Return a copy of ``model`` compiled with ``jit_compile=True`` (XLA); ``model`` is untouched.

    XLA fuses operations into compiled kernels. It is not always faster on a CPU (docs/gpu.md's
    method card has the figures), so it warns on a machine without a GPU; and a cuDNN LSTM cannot be
    XLA-compiled, so on a GPU it warns that the recurrent layers it names fall back to the generic
    kernel. Measure before you keep it (:func:`fastnlp.tune` does).

    Args:
        model: a compiled Keras 3 or tf_keras model: Sequential, functional, or subclassed if its class
            re-creates it from its config.

    Returns:
        A new model of the same flavour, compiled as ``model`` was plus ``jit_compile=True``.

    Raises:
        ValueError: ``model`` is not compiled (``jit_compile`` is a compile option), or holds a preprocessing
            layer such as ``TextVectorization`` (XLA compiles no string operations; the layer is named).
        TypeError: ``model`` is not a Keras model, or a subclassed one its class cannot re-create.

    Examples:
        >>> import warnings
        >>> from fastnlp import build_lstm
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     xla = use_xla(build_lstm(50, units=8, num_layers=1))
        >>> xla.get_compile_config()["jit_compile"]
        True
    """
    flavour.refuse_preprocessing(model, "use_xla", "works on strings or lookup tables, which XLA cannot compile")
    result = _recompiled(model, "use_xla", jit_compile=True)
    if not hardware.has_gpu():
        notices.warn(
            "use_xla: no GPU visible; on CPUs XLA often trains LSTMs slower (docs/gpu.md): measure before "
            "you keep it",
            SpeedupWarning,
        )
    else:
        eligible = [status.layer for status in cudnn_report(model) if status.eligible]
        if eligible:
            notices.warn(
                f"use_xla: XLA cannot compile the cuDNN kernel, so {eligible} run the generic kernel under XLA; "
                "compare with cudnn_report and a timed run",
                SpeedupWarning,
            )
    return Applied(result, "use_xla (jit_compile=True)")


@speedup(stage="compile_options", whole=True)
def set_steps_per_execution(model: Any, steps: int = 8) -> Applied:
    """Return a copy of ``model`` that runs ``steps`` training steps per call into TensorFlow; ``model`` is untouched.

    Fewer round trips between Python and the compiled graph: it helps most when steps are short
    (small models, small batches). Batch-level callbacks then run once every ``steps`` batches.

    Args:
        model: a compiled Keras 3 or tf_keras model: Sequential, functional, or subclassed if its class
            re-creates it from its config.
        steps: training steps per call, at least 1.

    Returns:
        A new model of the same flavour, compiled as ``model`` was with ``steps_per_execution=steps``.

    Raises:
        ValueError: ``steps`` is not a positive integer, or ``model`` is not compiled.
        TypeError: ``model`` is not a Keras model, or a subclassed one its class cannot re-create.

    Examples:
        >>> from fastnlp import build_lstm
        >>> set_steps_per_execution(build_lstm(30, units=8, num_layers=1), steps=4).get_compile_config()["steps_per_execution"]
        4
    """
    check_positive_int(steps=steps)
    result = _recompiled(model, "set_steps_per_execution", steps_per_execution=steps)
    return Applied(result, f"set_steps_per_execution(steps={steps})")


def _recompiled(model: Any, transform: str, **options: Any) -> Any:
    """A copy of the compiled ``model`` compiled as it was plus ``options``; ``transform`` names the caller."""
    flavour.require_compiled(model, f"{transform} sets a compile option")
    return rebuild(model, compile_options=options)
