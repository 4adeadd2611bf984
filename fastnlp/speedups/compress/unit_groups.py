"""Which hidden units of a model can be removed together, and where each one's weights are.

A unit of an LSTM, a GRU or a hidden ``Dense`` owns one column per gate in its layer's kernel,
recurrent kernel and bias, and one row in the recurrent kernel; every layer that consumes the unit's
output owns one input row for it. Layers that pass features through (dropout, pooling over time,
``RepeatVector``, a ``Concatenate``) carry those units to their consumers; an RNN given another RNN's
states as its initial states, an ``Add`` of two outputs or a ``Bidirectional`` merged by sum ties the
two layers' units, which are then removed together. Units that reach a model output, or a layer this
module does not know, stay. :func:`unit_groups` finds all of that from the model's graph, in either
flavour, and :func:`weight_axes` says, for a choice of units to keep, which index of every axis of
every weight survives, so one plan serves removal (slicing) and gradual pruning (masking) alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from fastnlp.core import flavour as flavours

__all__ = ["Group", "UnitPlan", "unit_groups", "weight_axes"]

#: layers whose output has the features of their (first) input, in the same order
_PASSTHROUGH = frozenset({
    "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization",
    "RepeatVector", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "MaxPooling1D", "AveragePooling1D", "Identity",
})
_ELEMENTWISE_MERGES = frozenset({"Add", "Average", "Maximum", "Minimum", "Multiply", "Subtract"})
#: activations computed unit by unit (removing one unit changes no other unit's value)
_PER_UNIT_ACTIVATIONS = frozenset({
    "linear", "relu", "tanh", "sigmoid", "elu", "selu", "gelu", "swish", "silu", "softplus", "softsign",
    "hard_sigmoid", "leaky_relu", "relu6", "exponential",
})
_GATES = {"LSTM": 4, "GRU": 3}
_STATES = {"LSTM": 2, "GRU": 1}  # states a recurrent layer returns with return_state


@dataclasses.dataclass
class Group:
    """Units removed together: each member layer's own units (``(layer name, direction)``; direction is
    ``""``, or ``"forward"`` / ``"backward"`` in a ``Bidirectional``), all of the same number."""

    size: int
    members: list[tuple[str, str]]
    removable: bool = True
    why_kept: str = ""


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of a tensor's last axis: the units of group ``group`` (``None``: features that stay)."""

    group: int | None
    size: int


@dataclasses.dataclass
class UnitPlan:
    """A model's unit groups, and per layer what its input features and its own units are."""

    groups: list[Group]
    inputs: dict[str, tuple[Segment, ...]]  # layer name -> segments of its (first) input's features
    own: dict[str, dict[str, int]]  # layer name -> {direction: group} for the layers that own units
    kinds: dict[str, str]  # layer name -> "LSTM", "GRU", "Dense", "Bidirectional", "TimeDistributed", "Conv1D"
    gates: dict[str, int]  # layer name (or "name/direction") -> gates per unit of its recurrent cell
    outputs: dict[str, list[tuple[Segment, ...]]]  # layer that owns units -> segments of each of its outputs

    def removable(self) -> list[int]:
        """Indices of the groups whose units can be removed."""
        return [i for i, group in enumerate(self.groups) if group.removable]

    def groups_of(self, layer_name: str) -> list[int]:
        """The groups of ``layer_name``'s own units (both directions of a ``Bidirectional``)."""
        own = self.own.get(layer_name)
        if not own:
            raise ValueError(f"layer {layer_name!r} has no hidden units to remove; layers with units: {sorted(self.own)}")
        return list(own.values())


class _Groups:
    """Union-find over unit groups (tied groups share their kept units)."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.groups: list[Group] = []

    def new(self, size: int, member: tuple[str, str]) -> int:
        self.parent.append(len(self.parent))
        self.groups.append(Group(size, [member]))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def tie(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
            self.groups[a].members += self.groups[b].members
            if not self.groups[b].removable:
                self.keep(a, self.groups[b].why_kept)

    def keep(self, i: int, why: str) -> None:
        group = self.groups[self.find(i)]
        if group.removable:
            group.removable, group.why_kept = False, why


def unit_groups(model: Any) -> UnitPlan:
    """The unit groups of a Sequential or functional ``model`` of either flavour (see the module docstring).

    Examples:
        >>> import keras
        >>> inputs = keras.Input((5,), dtype="int32")
        >>> x = keras.layers.LSTM(8, name="lstm")(keras.layers.Embedding(20, 4)(inputs))
        >>> x = keras.layers.Dense(6, activation="relu", name="hidden")(x)
        >>> plan = unit_groups(keras.Model(inputs, keras.layers.Dense(2, name="head")(x)))
        >>> [(g.size, g.members, g.removable) for g in plan.groups]
        [(8, [('lstm', '')], True), (6, [('hidden', '')], True), (2, [('head', '')], False)]
    """
    keras = flavours.keras_module(flavours.detect(model))
    groups = _Groups()
    segments: dict[int, tuple[Segment, ...]] = {}  # id(tensor) -> its features
    inputs: dict[str, tuple[Segment, ...]] = {}
    own: dict[str, dict[str, int]] = {}
    kinds: dict[str, str] = {}
    gates: dict[str, int] = {}
    produced: dict[str, list[tuple[Segment, ...]]] = {}
    pairs: list[tuple[int, int]] = []  # a Bidirectional's two directions: removed from both or neither

    def of(tensor: Any) -> tuple[Segment, ...]:
        return segments.get(id(tensor), (Segment(None, int(tensor.shape[-1] or 0)),))

    def keep_all(parts: tuple[Segment, ...], why: str) -> None:
        for part in parts:
            if part.group is not None:
                groups.keep(part.group, why)

    seen = {id(tensor) for tensor in model.inputs}  # tensors of this model's graph, as the walk meets them
    for layer in model.layers:
        if not _called(layer):
            raise _called_elsewhere(layer)
        called_on, made = _call(layer, seen)
        sources = [tensor for tensor in _flat(called_on) if _is_features(tensor)]
        for tensor in sources:
            if id(tensor) not in seen:  # made by another call of its layer than the one the walk followed
                raise _called_elsewhere(tensor._keras_history[0])
        outputs = _flat(made)
        seen.update(id(tensor) for tensor in outputs)
        kind = _kind(layer, keras)
        main = of(sources[0]) if sources else ()
        name = layer.name
        if kind in ("LSTM", "GRU"):
            kinds[name], gates[name] = kind, _GATES[kind]
            inputs[name] = main
            group = groups.new(layer.units, (name, ""))
            own[name] = {"": group}
            for state in sources[1:]:  # initial states: the same units as this layer's
                _tie_state(groups, of(state), group, name)
            produced[name] = [(Segment(group, layer.units),)] * len(outputs)
            for tensor in outputs:
                segments[id(tensor)] = (Segment(group, layer.units),)
        elif kind == "Bidirectional":
            kinds[name] = kind
            inputs[name] = main
            directions = {}
            for direction, inner in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
                gates[f"{name}/{direction}"] = _GATES[_kind(inner, keras)]
                directions[direction] = groups.new(inner.units, (name, direction))
            own[name] = directions
            forward, backward = directions["forward"], directions["backward"]
            pairs.append((forward, backward))
            size = layer.forward_layer.units
            if layer.merge_mode == "concat":
                merged = (Segment(forward, size), Segment(backward, size))
            elif layer.merge_mode is None:
                merged = None
            else:  # sum, mul, ave: unit j of each direction meets unit j of the other
                groups.tie(forward, backward)
                merged = (Segment(forward, size),)
            if merged is None:
                per_output = [(Segment(forward, size),), (Segment(backward, size),)]
            else:
                per_output = [merged]
            states = _STATES[_kind(layer.forward_layer, keras)] * layer.return_state
            per_output += [(Segment(forward, size),)] * states + [(Segment(backward, size),)] * states
            produced[name] = per_output
            for tensor, parts in zip(outputs, per_output):
                segments[id(tensor)] = parts
            for state in sources[1:]:
                keep_all(of(state), f"it gives initial states to {name!r}")
                groups.keep(forward, f"{name!r} is given initial states")
        elif kind == "Dense":
            kinds[name] = kind
            inputs[name] = main
            group = groups.new(layer.units, (name, ""))
            own[name] = {"": group}
            if _activation(layer) not in _PER_UNIT_ACTIVATIONS:
                groups.keep(group, f"the activation {_activation(layer)!r} of {name!r} mixes its units")
            produced[name] = [(Segment(group, layer.units),)]
            segments[id(outputs[0])] = (Segment(group, layer.units),)
        elif kind in ("TimeDistributed", "Conv1D"):  # consumers: their input rows go; their outputs stay
            kinds[name] = kind
            inputs[name] = main
        elif type(layer).__name__ in _PASSTHROUGH and sources:
            segments[id(outputs[0])] = main
        elif type(layer).__name__ == "Activation" and layer.get_config().get("activation") in _PER_UNIT_ACTIVATIONS:
            segments[id(outputs[0])] = main
        elif type(layer).__name__ == "Concatenate" and layer.axis in (-1, len(outputs[0].shape) - 1):
            segments[id(outputs[0])] = tuple(part for tensor in sources for part in of(tensor))
        elif type(layer).__name__ in _ELEMENTWISE_MERGES and sources:
            _tie_elementwise(groups, [of(tensor) for tensor in sources], name)
            segments[id(outputs[0])] = of(sources[0])
        elif sources:  # Embedding, Input, anything else: its inputs' units stay, its outputs are its own
            for tensor in sources:
                keep_all(of(tensor), f"{name!r} ({type(layer).__name__}) consumes them")
    for tensor in model.outputs:
        if id(tensor) not in seen:
            raise _called_elsewhere(tensor._keras_history[0])
        keep_all(of(tensor), "they reach a model output")
    for forward, backward in pairs:
        for one, other in ((forward, backward), (backward, forward)):
            if not groups.groups[groups.find(one)].removable:
                groups.keep(other, f"the other direction's units stay ({groups.groups[groups.find(one)].why_kept})")
    return _resolved(groups, inputs, own, kinds, gates, produced)


def _resolved(groups: _Groups, inputs: dict, own: dict, kinds: dict, gates: dict, produced: dict) -> UnitPlan:
    """The plan with every group index replaced by its tie's representative, numbered from 0."""
    roots = sorted({groups.find(i) for i in range(len(groups.parent))})
    number = {root: n for n, root in enumerate(roots)}

    def final(i: int | None) -> int | None:
        return None if i is None else number[groups.find(i)]

    return UnitPlan(
        groups=[groups.groups[root] for root in roots],
        inputs={name: tuple(Segment(final(s.group), s.size) for s in parts) for name, parts in inputs.items()},
        own={name: {direction: final(g) for direction, g in directions.items()} for name, directions in own.items()},
        kinds=kinds,
        gates=gates,
        outputs={name: [tuple(Segment(final(s.group), s.size) for s in parts) for parts in outputs] for name, outputs in produced.items()},
    )


def _tie_state(groups: _Groups, parts: tuple[Segment, ...], group: int, layer_name: str) -> None:
    if len(parts) == 1 and parts[0].group is not None:
        groups.tie(group, parts[0].group)
    else:
        groups.keep(group, f"{layer_name!r} is given initial states that are not another layer's units")
        for part in parts:
            if part.group is not None:
                groups.keep(part.group, f"they are initial states of {layer_name!r}")


def _tie_elementwise(groups: _Groups, operands: list[tuple[Segment, ...]], layer_name: str) -> None:
    """Tie the units met position by position; where the operands' runs do not line up, keep them all."""
    first = operands[0]
    aligned = all([s.size for s in parts] == [s.size for s in first] for parts in operands)
    for parts in operands:
        for position, part in enumerate(parts):
            if part.group is None:
                continue
            other = first[position]
            if aligned and other.group is not None:
                groups.tie(other.group, part.group)
            else:
                groups.keep(part.group, f"{layer_name!r} adds them to features that stay")
    if aligned:  # a unit added to a feature that stays must stay too
        for position in range(len(first)):
            if any(parts[position].group is None for parts in operands):
                for parts in operands:
                    if parts[position].group is not None:
                        groups.keep(parts[position].group, f"{layer_name!r} adds them to features that stay")


def weight_axes(layer: Any, plan: UnitPlan, kept: Mapping[int, np.ndarray]) -> list[tuple[np.ndarray | None, ...]] | None:
    """For each weight of ``layer`` (in ``get_weights()`` order), the indices kept along each axis (``None``:
    all), given the units ``kept`` per removable group; ``None`` when the layer loses nothing."""
    name = layer.name
    kind = plan.kinds.get(name)
    if kind is None:
        return None
    rows = _feature_index(plan.inputs.get(name, ()), kept)
    weights = layer.get_weights()
    if kind == "Dense":
        columns = kept.get(plan.own[name][""])
        axes = [(rows, columns), (columns,)]
    elif kind in ("LSTM", "GRU"):
        axes = _recurrent_axes(layer, rows, kept.get(plan.own[name][""]), plan.gates[name])
    elif kind == "Bidirectional":
        axes = []
        for direction, inner in (("forward", layer.forward_layer), ("backward", layer.backward_layer)):
            units = kept.get(plan.own[name][direction])
            axes += _recurrent_axes(inner, rows, units, plan.gates[f"{name}/{direction}"])
    elif kind == "TimeDistributed":
        axes = [(rows, None), (None,)]
    else:  # Conv1D: (width, in, out)
        axes = [(None, rows, None), (None,)]
    axes = axes[: len(weights)]
    return None if all(index is None for weight in axes for index in weight) else axes


def _recurrent_axes(layer: Any, rows: np.ndarray | None, units: np.ndarray | None, gates: int) -> list[tuple]:
    columns = None if units is None else np.concatenate([gate * layer.units + units for gate in range(gates)])
    bias_shape = np.shape(layer.get_weights()[2]) if layer.use_bias else ()
    bias = (None, columns) if len(bias_shape) == 2 else (columns,)  # a GRU with reset_after keeps two biases
    return [(rows, columns), (units, columns), bias]


def _feature_index(parts: tuple[Segment, ...], kept: Mapping[int, np.ndarray]) -> np.ndarray | None:
    """The indices kept of a tensor's features made of ``parts``; ``None`` when all are kept."""
    if not any(part.group in kept for part in parts):
        return None
    pieces, offset = [], 0
    for part in parts:
        local = kept.get(part.group) if part.group is not None else None
        pieces.append(offset + (np.arange(part.size) if local is None else np.asarray(local)))
        offset += part.size
    return np.concatenate(pieces)


def _kind(layer: Any, keras: Any) -> str | None:
    for kind in ("LSTM", "GRU", "Bidirectional", "Dense", "TimeDistributed", "Conv1D"):
        if isinstance(layer, getattr(keras.layers, kind)):
            if kind == "Bidirectional" and _kind(layer.forward_layer, keras) not in _GATES:
                return None
            if kind == "TimeDistributed" and not isinstance(layer.layer, keras.layers.Dense):
                return None
            return kind
    return None


def _activation(layer: Any) -> str:
    activation = layer.get_config().get("activation", "linear")
    return activation if isinstance(activation, str) else str(activation.get("config", activation))


def _is_features(tensor: Any) -> bool:
    """Whether a layer input carries features (Keras 3 also passes a padding mask, a boolean tensor)."""
    return str(getattr(tensor.dtype, "name", tensor.dtype)) != "bool"


def _called(layer: Any) -> bool:
    try:
        layer.output  # noqa: B018 - raises for a layer never called
    except (AttributeError, ValueError):
        return False
    return True


def _call(layer: Any, seen: set[int]) -> tuple[Any, Any]:
    """``(inputs, outputs)`` of ``layer``'s call in the model's graph, whose tensors met so far are ``seen`` (a nested
    model's own ``.input`` and ``.output`` are those of its inner graph, its call in the outer graph its one
    inbound node; a layer that another model calls too, as a vectorizer a flat copy keeps as it was, has its
    call here among others)."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if hasattr(layer, "layers") and len(nodes) == 1:
        return nodes[0].input_tensors, nodes[0].output_tensors
    here = [node for node in nodes if all(id(tensor) in seen for tensor in _flat(node.input_tensors))]
    if len(nodes) > 1 and len(here) == 1:
        return here[0].input_tensors, here[0].output_tensors
    return layer.input, layer.output


def _called_elsewhere(layer: Any) -> TypeError:
    """The refusal for a model whose graph the walk cannot follow through ``layer`` (called several times, or
    first called in another model's graph, as a seq2seq example's inference models are)."""
    return TypeError(
        f"fastnlp follows units through models in which each layer is called once, first in this model; layer "
        f"{layer.name!r} ({type(layer).__name__}) is called more than once, never, or first in another model"
    )


def _flat(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [item for inner in value for item in _flat(inner)]
    return [value]
