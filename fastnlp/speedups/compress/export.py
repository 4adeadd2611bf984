"""Export to TFLite (LiteRT) with the LSTM as one fused op, and run the result.

Converting a Keras LSTM with a dynamic batch fails (``TensorListReserve``), and Keras 3's LSTM
converts to a ``WHILE`` loop of small ops, which full-int8 quantization cannot handle. tf_keras's
LSTM is tagged for the converter and becomes TFLite's fused ``UNIDIRECTIONAL_SEQUENCE_LSTM``, so
:func:`to_tflite` converts Keras 3 models to tf_keras first (exact weights) and exports a
fixed-batch concrete function. :class:`LiteRTModel` runs the bytes with ``ai-edge-litert`` on
batches of any size, in chunks of the exported batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours
from fastnlp.core import notices
from fastnlp.core.convert import convert, reassemble
from fastnlp.core.notices import SpeedupWarning
from fastnlp.core.rebuild import recreated_layer
from fastnlp.core.recurrent import makes_mask, recurrent_layers
from fastnlp.core.validation import check_positive_int, checked_path
from fastnlp.speedups.compress.common import value_named_like
from fastnlp.speedups.compress.conversion import flatbuffer, flatbuffer_apart, io_order, with_io_order
from fastnlp.speedups.hoisting import stock_recurrent_layers

__all__ = ["QUANTIZATIONS", "LiteRTModel", "to_tflite"]

QUANTIZATIONS: tuple[str | None, ...] = (None, "dynamic", "float16", "int8")
_FUSED_RECURRENT = {"LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM"}


def to_tflite(
    model: Any,
    quantization: str | None = None,
    representative_data: Any = None,
    *,
    batch_size: int = 1,
    seq_len: int | Mapping[str, int] | None = None,
    calibration_samples: int = 100,
    right_padded: bool = False,
    path: str | os.PathLike | None = None,
) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer that LiteRT runs; return the bytes (and write ``path``).

    Args:
        model: a Keras 3 or tf_keras model, e.g. from ``build_lstm``, ``prune`` (strip it first), or
            ``quantize`` (its learned weights are exported from plain layers, so that the LSTM stays
            one fused op; ``"int8"`` then calibrates the activations). A model with several inputs or
            outputs exports them by name (the input layers' and output layers' names);
            :class:`LiteRTModel` takes them as a list or a dict and returns a list.
        quantization: ``None`` (float32), ``"dynamic"`` (int8 weights, float activations),
            ``"float16"`` (float16 weights), or ``"int8"`` (int8 weights and activations,
            calibrated on ``representative_data``; converted in a Python process of its own, so that a
            converter crash cannot end yours: it becomes a ``ValueError``).
        representative_data: inputs to calibrate ``"int8"`` on: an array (samples first) or a
            ``tf.data.Dataset`` of inputs or ``(inputs, labels)`` batches.
        batch_size: the fixed batch of the export (``LiteRTModel`` runs any batch in chunks).
        seq_len: the sequence length to export, for a model that takes any length (``build_lstm``
            without ``seq_len``, ``train_char_lm``'s model); a TFLite model has fixed shapes. For a
            model with several inputs, one length for all, or ``{input name: length}``.
        calibration_samples: how many samples of ``representative_data`` to calibrate on.
        right_padded: the model's padding mask (``Embedding(mask_zero=True)``) marks padding at the end of
            each sequence only. Its LSTMs then export unmasked, as the fused op (``"int8"`` included), and
            compute what the masked model does on right-padded ids (on other padding they differ).
        path: also write the bytes to this file.

    Returns:
        The ``.tflite`` model as bytes. ``LiteRTModel(bytes).ops`` tells which ops it holds; a
        :class:`~fastnlp.core.notices.SpeedupWarning` says when an LSTM did not become the fused op, or
        when an ``"int8"`` export's top predictions on (up to 64) calibration inputs agree with the
        model's less than 90% of the time.

    Raises:
        ValueError: an unknown ``quantization``; ``"int8"`` without ``representative_data``, for a model
            with several inputs, or for a
            recurrent layer that does not become a fused op (a GRU, a SimpleRNN, an LSTM behind
            ``mask_zero=True`` without ``right_padded``, any recurrent layer of a Keras 3 model that does
            not convert to tf_keras): the converter's calibration of such a loop crashes
            the process; or the converter's process died. ``right_padded`` for a model whose mask is used
            otherwise than by LSTMs reading forward (named), or with calibration data padded elsewhere.
        TypeError: not a Keras model.
        ValueError: a model that takes any sequence length without ``seq_len``, or a ``seq_len``
            other than the model's fixed one; a stateful recurrent layer.

    Examples:
        >>> import numpy as np
        >>> from fastnlp import build_lstm
        >>> model = build_lstm(20, units=8, num_layers=1, seq_len=6)
        >>> lite = LiteRTModel(to_tflite(model, "dynamic"))
        >>> "UNIDIRECTIONAL_SEQUENCE_LSTM" in lite.ops
        True
        >>> x = np.random.default_rng(0).integers(0, 20, (5, 6))
        >>> bool(np.allclose(lite.predict(x), model.predict(x, verbose=0), atol=1e-3))
        True
    """
    import tensorflow as tf

    source = flavours.detect(model)
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' needs representative_data: a few hundred typical inputs to calibrate "
            "the activation ranges on (or use 'dynamic', which needs none)"
        )
    check_positive_int(batch_size=batch_size, calibration_samples=calibration_samples)
    if isinstance(seq_len, Mapping):
        names = _io_names(model)[0]
        unknown = sorted(set(seq_len) - set(names))
        if unknown:
            raise ValueError(f"seq_len names inputs the model does not have: {unknown} (its inputs: {names})")
        for length in seq_len.values():
            check_positive_int(seq_len=length)
    elif seq_len is not None:
        check_positive_int(seq_len=seq_len)
    if path is not None:  # not open(path): open(2, "wb") wrote the flatbuffer into stderr and closed it
        path = checked_path("path", path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise ValueError(f"path {path!r}: its folder does not exist (the conversion would be lost after the work)")
    flavours.check_rebuildable(model)  # a subclassed model is refused by name (it failed on model.inputs)
    flavours.refuse_preprocessing(
        model, "to_tflite", "holds a lookup table, which is not a TFLite op"
    )
    if quantization == "int8" and len(model.inputs) != 1:
        raise ValueError(
            f"quantization='int8' calibrates a model with one input; {model.name!r} has {len(model.inputs)}. Use "
            f"'dynamic' (int8 weights, float activations) or 'float16'"
        )
    if not isinstance(right_padded, bool):
        raise TypeError(f"right_padded must be True or False, got {right_padded!r}")
    _check_stateless(model)
    plain = stock_recurrent_layers(model)  # the converter fuses only the stock LSTM class
    why_not = ""  # why a Keras 3 model stays Keras 3
    if source == "keras":
        exported, why_not = _fused_flavour(plain)
        if why_not and recurrent_layers(exported, of=("RNN",)):
            notices.warn(
                f"to_tflite: exporting the Keras 3 model as it is ({why_not}); its LSTMs become WHILE loops, "
                f"slower than the fused op", SpeedupWarning,
            )
    else:
        exported = _without_fake_quantization(plain)
    if right_padded:  # imported here: the module defines a tf_keras layer class
        from fastnlp.speedups.compress.right_padding import check_right_padded, unmasked_for_right_padding

        exported = unmasked_for_right_padding(exported)
    if quantization == "int8":
        _check_int8_exportable(exported, why_not)  # after unwrapping quantization-aware layers: a wrapped GRU is a GRU
    if quantization == "dynamic":
        exported = _widen_narrow_lstm_inputs(exported)
    input_names, output_names = _io_names(exported)
    lengths = seq_len if isinstance(seq_len, Mapping) else dict.fromkeys(input_names, seq_len)
    signatures = [
        tf.TensorSpec((batch_size, *_sample_shape(model, tuple(spec.shape[1:]), lengths.get(name))), spec.dtype, name=name)
        for name, spec in zip(input_names, exported.inputs, strict=True)
    ]
    if quantization == "int8":
        (signature,) = signatures  # int8 exports one input (checked above)
        samples = list(_samples(representative_data, batch_size, calibration_samples, signature.dtype.name, tuple(signature.shape[1:])))
        if right_padded:
            check_right_padded(np.concatenate(samples))
        content = flatbuffer_apart(exported, signatures, output_names, samples)
    else:
        content = flatbuffer(exported, signatures, output_names, quantization)
    content = with_io_order(content, input_names, output_names)
    _warn_unfused(exported if right_padded else plain, LiteRTModel(content).ops)
    if quantization == "int8":
        _check_agreement(exported, content, np.concatenate(samples)[:_AGREEMENT_SAMPLES])
    if path is not None:
        with open(path, "wb") as file:
            file.write(content)
    return content


def _io_names(model: Any) -> tuple[list[str], list[str]]:
    """The names of ``model``'s input layers and of its outputs, in order.

    An output is named after the layer that makes it; a layer's second output (an LSTM's returned states)
    gets ``_1`` after its name, and so on, as tf_keras names them (Keras 3 repeats the layer's name, and
    the export's signature kept one of two outputs so named).
    """
    names: list[str] = []
    for tensor in model.outputs:
        layer_name = name = tensor._keras_history[0].name
        count = 0
        while name in names:
            count += 1
            name = f"{layer_name}_{count}"
        names.append(name)
    return [tensor._keras_history[0].name for tensor in model.inputs], names


#: The converter leaves a weight tensor with fewer elements than this in float32 under "dynamic";
#: for the fused LSTM one such tensor (the per-gate input weights, units x features) keeps the whole op float.
_MIN_QUANTIZED_ELEMENTS = 1024


def _widen_narrow_lstm_inputs(model: Any) -> Any:
    """``model`` with zero features appended before each LSTM whose per-gate input weights are too small
    to quantize, and zero rows appended to its kernel: the same outputs, and an op the converter quantizes
    (without it, such an LSTM stays float32 whole; docs/benchmarks.md has the sizes).
    """
    import tensorflow as tf

    keras = flavours.keras_module(flavours.detect(model))
    leaves = flavours.leaf_layers(model)
    if any(makes_mask(layer, keras) for layer in leaves):
        return model  # a padding layer would drop the mask; masked LSTMs export as loops anyway
    features = {}
    for layer in leaves:
        if type(layer) is keras.layers.LSTM and layer.built:
            width = int(layer.weights[0].shape[0])
            if layer.units * width < _MIN_QUANTIZED_ELEMENTS <= layer.units * layer.units:
                features[layer.name] = -(-_MIN_QUANTIZED_ELEMENTS // layer.units)  # ceil
    if not features:
        return model

    def widen(layer: Any, inputs: Any) -> Any:
        if layer.name not in features:
            return inputs
        extra = features[layer.name] - int(inputs.shape[-1])
        return keras.layers.Lambda(lambda x: tf.pad(x, [[0, 0], [0, 0], [0, extra]]), name=f"{layer.name}_widened")(inputs)

    widened, pairs = reassemble(model, keras, recreated_layer, widen)
    for layer, new in pairs:
        weights = layer.get_weights()
        if layer.name in features:
            kernel = weights[0]
            weights[0] = np.concatenate([kernel, np.zeros((features[layer.name] - kernel.shape[0], kernel.shape[1]), kernel.dtype)])
        new.set_weights(weights)
    return widened


def _check_stateless(model: Any) -> None:
    """Refuse a stateful recurrent layer up front: both flavours failed deep in tracing (Keras 3: "needs to
    know its batch size" even with the batch set; tf_keras: a variable-type error)."""
    for layer in flavours.leaf_layers(model):
        config = layer.get_config()
        stateful = config.get("stateful") or (config.get("layer", {}).get("config", {}).get("stateful"))
        if stateful:
            raise ValueError(
                f"to_tflite cannot export layer {layer.name!r}: it is stateful (stateful=True), and the export runs "
                f"every batch from a zero state. Build the same model with stateful=False, copy the weights "
                f"(model.get_weights()), and export that"
            )


def _check_int8_exportable(model: Any, why_not_tf_keras: str) -> None:
    """Refuse, naming the layer, a model whose int8 calibration would crash the converter (``why_not_tf_keras``: why
    a Keras 3 model stayed Keras 3, as the conversion said).

    Only an unmasked LSTM becomes a fused op; any other recurrent layer is exported as a loop of
    small ops, and calibrating that loop crashed the whole process (measured with TF 2.21: exit 139
    for GRU and SimpleRNN in both flavours; for a masked LSTM too, and for an LSTM with
    ``return_state=True``). Bidirectional LSTMs fuse.
    """
    flavour = flavours.detect(model)
    keras = flavours.keras_module(flavour)
    for recurrent, masked in recurrent_layers(model, of=("RNN",)):
        if flavour == "keras":  # not converted to tf_keras, whose LSTM alone is tagged for the fused op
            raise ValueError(
                f"quantization='int8' cannot export layer {recurrent.name!r} ({type(recurrent).__name__}): the model "
                f"stays Keras 3 ({why_not_tf_keras}), where a recurrent layer exports as a loop of small ops, "
                f"and calibrating that loop crashes the process. Use 'dynamic' (int8 weights, float activations)"
            )
        if not isinstance(recurrent, keras.layers.LSTM):
            raise ValueError(
                f"quantization='int8' cannot export layer {recurrent.name!r} ({type(recurrent).__name__}): the converter "
                f"has no fused op for it, and calibrating its loop crashes the process. Use 'dynamic' (int8 weights, "
                f"float activations), which exports it"
            )
        if recurrent.return_state:
            raise ValueError(
                f"quantization='int8' cannot export layer {recurrent.name!r}: it returns its states "
                f"(return_state=True), and calibrating an LSTM whose states leave it crashes the converter "
                f"(measured: exit 139). Use 'dynamic' (int8 weights, float activations)"
            )
        if masked is not None:
            raise ValueError(
                f"quantization='int8' cannot export a masked LSTM (layer {masked!r} masks padding): the "
                f"converter has no fused op for it and its int8 calibration crashes. If every sequence is padded at "
                f"its end, pass right_padded=True (the LSTM then exports unmasked, fused); else use 'dynamic'"
            )


def _sample_shape(model: Any, shape: tuple[int | None, ...], seq_len: int | None) -> tuple[int, ...]:
    """One input sample's shape to export: the model's, its time axis (the first) set to ``seq_len``.

    Without this, a time axis of None reached the converter, which exported length 1 without a word.
    """
    if not shape:
        return shape
    time, *rest = shape
    if None in rest:
        raise ValueError(f"to_tflite: model {model.name!r} takes inputs of shape {(None, *shape)}; only the time axis may be None")
    if time is None and seq_len is None:
        raise ValueError(
            f"to_tflite: model {model.name!r} takes sequences of any length (input shape {(None, *shape)}), and a "
            f"TFLite model has fixed shapes: pass seq_len=N, the length to export"
        )
    if time is not None and seq_len not in (None, time):
        raise ValueError(f"to_tflite: seq_len={seq_len} differs from model {model.name!r}'s fixed sequence length {time}")
    return (time or seq_len, *rest)


def _fused_flavour(model: Any) -> tuple[Any, str]:
    """The tf_keras twin of a Keras 3 model (its LSTMs convert to the fused op), or the model itself when it
    cannot be converted, with the reason ("" where it converted)."""
    try:
        return convert(model, "tf_keras"), ""
    except TypeError as error:
        return model, str(error)


def _without_fake_quantization(model: Any) -> Any:
    """``model`` itself, or for a :func:`~fastnlp.speedups.compress.quantize` model its float twin holding the
    weights quantization-aware training learned.

    The converter cannot fuse an LSTM whose weights pass through fake-quantization ops (measured:
    it became a WHILE loop, and int8 calibration of that graph crashed the converter), so the
    learned weights are exported from plain layers and the converter quantizes them itself.
    """
    if not any(type(layer).__module__.startswith("tensorflow_model_optimization") for layer in model.layers):
        return model  # no quantize model: tfmot need not be imported at all
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import (
        QuantizeLayer,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_wrapper import (
        QuantizeWrapper,
    )

    if not any(isinstance(layer, (QuantizeWrapper, QuantizeLayer)) for layer in model.layers):
        return model
    keras = flavours.keras_module("tf_keras")

    def unwrap(layer):
        if isinstance(layer, QuantizeLayer):
            return keras.layers.Identity(name=layer.name)
        inner = layer.layer if isinstance(layer, QuantizeWrapper) else layer
        config = {  # tfmot swaps activations for QuantizeAwareActivation(activation=...): take the original back
            key: value["config"]["activation"]
            if isinstance(value, dict) and value.get("class_name") == "QuantizeAwareActivation" else value
            for key, value in inner.get_config().items()
        }
        return inner.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=unwrap)
    for layer in model.layers:
        if isinstance(layer, QuantizeLayer) or not layer.weights:
            continue
        inner = layer.layer if isinstance(layer, QuantizeWrapper) else layer
        # the wrapped layer's kernels are attributes swapped for tensors; its variables are the wrapper's
        learned = {weight.name: weight for weight in layer.weights}
        target = twin.get_layer(inner.name)
        target.set_weights([value_named_like(weight.name, learned).numpy() for weight in target.weights])
    return twin


def _samples(data: Any, batch_size: int, limit: int, dtype: str, shape: tuple) -> Iterator[np.ndarray]:
    """Calibration inputs, ``batch_size`` samples at a time, ``limit`` samples in all."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        rows = (np.asarray(item[0] if isinstance(item, tuple) else item) for item in data.unbatch().as_numpy_iterator())
    else:
        rows = iter(np.asarray(data))
    taken = [row for _, row in zip(range(max(limit, batch_size)), rows)]
    if len(taken) < batch_size:
        raise ValueError(f"representative_data has {len(taken)} samples; at least batch_size={batch_size} are needed")
    wrong = next((row for row in taken if tuple(np.shape(row)) != shape), None)
    if wrong is not None:
        raise ValueError(f"representative_data: each sample must have the exported input's shape {shape}, got one of {np.shape(wrong)}")
    kind = np.asarray(taken[0]).dtype
    if not (np.issubdtype(kind, np.number) or kind == bool):
        raise ValueError(f"representative_data must be numbers (the model's {dtype} inputs), got {kind}")
    for start in range(0, len(taken) - batch_size + 1, batch_size):
        yield np.stack(taken[start : start + batch_size]).astype(dtype)


_AGREEMENT_SAMPLES = 64
_MIN_AGREEMENT = 0.9


def _check_agreement(model: Any, content: bytes, inputs: np.ndarray) -> None:
    """Warn when the int8 export's top predictions on calibration inputs differ from the model's.

    Full-int8 LSTMs are fragile: measured here, an SST-2 classifier exported to int8 predicted one
    class for every sentence while its float and dynamic-range exports matched Keras.
    """
    expected, got = model.predict(inputs, verbose=0), LiteRTModel(content).predict(inputs)
    pairs = zip(expected, got, strict=True) if isinstance(expected, (list, tuple)) else [(expected, got)]
    agreements = [float(np.mean(np.argmax(want, -1) == np.argmax(have, -1))) for want, have in pairs if np.shape(want)[-1] > 1]
    agreement = min(agreements, default=1.0)  # outputs one wide (a sigmoid, a regression) have no top prediction
    if agreement < _MIN_AGREEMENT:
        notices.warn(
            f"to_tflite: the int8 export agrees with the model on only {agreement:.0%} of the top predictions "
            f"for {len(inputs)} calibration inputs; check its quality, or use quantization='dynamic'",
            SpeedupWarning,
        )


def _warn_unfused(model: Any, ops: tuple[str, ...]) -> None:
    for layer in model.layers:
        kind = type(getattr(layer, "layer", layer)).__name__
        fused = _FUSED_RECURRENT.get(kind)
        if fused and fused not in ops:
            notices.warn(
                f"to_tflite: layer {layer.name!r} ({kind}) did not become {fused} (ops: {list(ops)}); "
                f"LiteRT will run it as a loop of small ops",
                SpeedupWarning,
            )
            return


class LiteRTModel:
    """Runs a ``.tflite`` model with ``ai-edge-litert`` on batches of any size.

    The model's batch is fixed at export; :meth:`predict` runs bigger inputs in chunks of it and
    pads the last chunk. Each chunk starts from a zero recurrent state, as Keras does: the fused LSTM
    op keeps its state in variable tensors between invocations, so they are reset before each one.
    A model with an unfused recurrent loop (a ``WHILE`` op) runs on LiteRT's built-in kernels only:
    the XNNPACK delegate computed an encoder's returned state wrong next to such a loop.

    Examples:
        >>> from fastnlp import build_lstm
        >>> lite = LiteRTModel(to_tflite(build_lstm(20, units=8, num_layers=1, seq_len=6), batch_size=4))
        >>> lite.batch_size, lite.predict(np.zeros((6, 6), "int32")).shape
        (4, (6, 6, 20))
    """

    def __init__(self, model: bytes | str | os.PathLike, *, num_threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if isinstance(model, (bytes, bytearray)):
            content = bytes(model)
        else:  # not open(model): open(2) is this process's stderr, and closing it lost every later error
            with open(checked_path("model", model), "rb") as file:
                content = file.read()
        if num_threads is not None:
            check_positive_int(num_threads=num_threads)
        if not content:
            raise ValueError("model is empty: give the bytes to_tflite returned, or the path of a .tflite file")
        self.size_bytes = len(content)
        try:
            self._interpreter = Interpreter(model_content=content, num_threads=num_threads)
            if "WHILE" in self.ops:  # XNNPACK computed an encoder's returned state wrong next to a loop (by 1e-2)
                self._interpreter = Interpreter(
                    model_content=content, num_threads=num_threads, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                )
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"model is not a TFLite model LiteRT can load: {error}") from error
        self._interpreter.allocate_tensors()
        signatures = self._interpreter.get_signature_list()
        key = next(iter(signatures), None)
        several = key is not None and (len(signatures[key]["inputs"]) > 1 or len(signatures[key]["outputs"]) > 1)
        self._runner = self._interpreter.get_signature_runner(key) if several else None
        if self._runner is None:
            (self._input,) = self._interpreter.get_input_details()
            (self._output,) = self._interpreter.get_output_details()
            self._inputs, self._outputs = {"": self._input}, {"": self._output}
        else:
            self._inputs, self._outputs = self._runner.get_input_details(), self._runner.get_output_details()
            order = io_order(content)  # the signature lists names sorted; to_tflite stored the model's order
            if order is not None and set(order[0]) == set(self._inputs) and set(order[1]) == set(self._outputs):
                self._inputs = {name: self._inputs[name] for name in order[0]}
                self._outputs = {name: self._outputs[name] for name in order[1]}
            self._input = next(iter(self._inputs.values()))

    @property
    def input_names(self) -> tuple[str, ...]:
        """The names of a model's inputs, in the order :meth:`predict` takes them as a list (empty: one input
        and one output). For an export of :func:`to_tflite`, the Keras model's order."""
        return tuple(self._inputs) if self._runner is not None else ()

    @property
    def output_names(self) -> tuple[str, ...]:
        """The names of a model's outputs, in the order :meth:`predict` returns them (empty: one input and one
        output). For an export of :func:`to_tflite`, the Keras model's order."""
        return tuple(self._outputs) if self._runner is not None else ()

    @property
    def batch_size(self) -> int:
        """The batch the model was exported with."""
        return int(self._input["shape"][0])

    @property
    def ops(self) -> tuple[str, ...]:
        """The distinct op names in the model, e.g. ``UNIDIRECTIONAL_SEQUENCE_LSTM``."""
        details = self._interpreter._get_ops_details()  # LiteRT has no public op listing
        return tuple(sorted({op["op_name"] for op in details}))

    def predict(self, inputs: Any) -> Any:
        """The model's outputs for ``inputs`` (samples first): one array, or a list in :attr:`output_names`' order.

        A model with several inputs takes a list (in :attr:`input_names`' order) or a dict by name; a model
        with one input takes its array (or a list or dict of that one array), whatever its outputs.

        Raises:
            ValueError: the wrong shape, inputs of different lengths, missing or unknown input names, or
                integer ids the model's integer input cannot hold.
            TypeError: ids with a fractional part for a model of integer ids (they were truncated).
        """
        named = self._named(inputs)
        count = len(next(iter(named.values())))
        if count == 0:
            empty = [np.zeros((0, *detail["shape"][1:]), detail["dtype"]) for detail in self._outputs.values()]
            return empty[0] if self._runner is None else empty
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in self._outputs}
        for start in range(0, count, self.batch_size):
            chunks = {name: self._chunk(values[start : start + self.batch_size]) for name, values in named.items()}
            filled = min(self.batch_size, count - start)
            self._interpreter.reset_all_variables()  # the fused LSTM keeps its state between invokes
            if self._runner is None:
                self._interpreter.set_tensor(self._input["index"], chunks[""])
                self._interpreter.invoke()
                outputs[""].append(self._interpreter.get_tensor(self._output["index"])[:filled].copy())
            else:
                results = self._runner(**chunks)
                for name in outputs:
                    outputs[name].append(np.asarray(results[name])[:filled].copy())
        joined = [np.concatenate(parts) for parts in outputs.values()]
        return joined[0] if self._runner is None else joined

    def _named(self, inputs: Any) -> dict[str, np.ndarray]:
        """``inputs`` by input name, each checked against its input's shape and dtype."""
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and np.ndim(inputs[0]) == len(self._input["shape"]):
            inputs = inputs[0]  # a list holding the one input's batch, as Keras takes it
        if len(self._inputs) == 1 and not isinstance(inputs, Mapping):
            given = {next(iter(self._inputs)): inputs}
        elif self._runner is None:
            raise ValueError("inputs: this model has one unnamed input; give its array")
        elif isinstance(inputs, Mapping):
            missing, unknown = sorted(set(self._inputs) - set(inputs)), sorted(set(inputs) - set(self._inputs))
            if missing or unknown:
                raise ValueError(f"inputs: missing {missing}, unknown {unknown}; the model's inputs are {list(self._inputs)}")
            given = dict(inputs)
        elif isinstance(inputs, (list, tuple)) and len(inputs) == len(self._inputs):
            given = dict(zip(self._inputs, inputs, strict=True))
        else:
            raise ValueError(f"inputs: give a list of {len(self._inputs)} arrays or a dict by name ({list(self._inputs)})")
        named = {}
        for name, values in given.items():
            detail = self._inputs[name]
            values = self._checked(np.asarray(values), detail)
            expected = tuple(detail["shape"][1:])
            if values.ndim == 0 or tuple(values.shape[1:]) != expected:
                label = f"inputs[{name!r}]" if name else "inputs"
                raise ValueError(f"{label} must have shape (n, {', '.join(map(str, expected))}), got {values.shape}")
            named[name] = values
        if len({len(values) for values in named.values()}) > 1:
            raise ValueError(f"inputs have different numbers of samples: { {name: len(v) for name, v in named.items()} }")
        return named

    def _chunk(self, values: np.ndarray) -> np.ndarray:
        """``values`` padded to the exported batch (repeating the last sample)."""
        if len(values) < self.batch_size:
            values = np.concatenate([values, np.repeat(values[-1:], self.batch_size - len(values), axis=0)])
        return values

    def _checked(self, inputs: np.ndarray, detail: dict) -> np.ndarray:
        """``inputs`` as the input's dtype, refusing what a cast would change silently."""
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.integer) and inputs.size:
            if not (np.issubdtype(inputs.dtype, np.integer) or np.issubdtype(inputs.dtype, np.floating)):
                raise TypeError(f"inputs must be integer ids, got {inputs.dtype}")
            if np.issubdtype(inputs.dtype, np.floating) and not np.array_equal(inputs, np.round(inputs)):
                raise TypeError("inputs must be integer ids; they have fractional parts (1.7 would become 1)")
            limits = np.iinfo(dtype)
            if inputs.min() < limits.min or inputs.max() > limits.max:
                raise ValueError(f"inputs must be ids within {dtype.name}'s range [{limits.min}, {limits.max}]; got {inputs.max()}")
        return inputs.astype(dtype)
