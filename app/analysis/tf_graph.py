"""The state of an ONNX graph being rebuilt in TensorFlow (``onnx_to_tf``), shared by the
operator versions (``tf_ops``, ``tf_conv``): values, channels-last twins, and the error that
names the layer an operator came from.

Values are numpy arrays while they are constants (folded in numpy) and TensorFlow tensors once
they depend on the clip. Tensors keep ONNX's channels-first meaning; a tensor may also have a
channels-last twin (what convolutions and pools compute), so consecutive layers need no
transposes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from app.errors import ExportUnconvertible

Value = Any
"""``np.ndarray | tf.Tensor``."""


def layer_of(node_name: str) -> str:
    """``/model/blocks.1/conv/Conv_2`` -> ``model/blocks.1/conv`` (the PyTorch module path)."""
    parts = node_name.strip("/").split("/")
    return "/".join(parts[:-1]) if len(parts) > 1 else parts[0]


def unconvertible(node: onnx.NodeProto, why: str) -> ExportUnconvertible:
    """The error for an ONNX node that has no TensorFlow conversion, naming its layer."""
    layer = layer_of(node.name) or node.op_type
    op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    return ExportUnconvertible(f"layer {layer} (ONNX {op}): {why}", layer=layer, op=op)


class Graph:
    """The values of a graph being rebuilt, with the channels-last twin of each tensor that
    has one (so ops that run channels-last need no transpose in between)."""

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self._twins: dict[Any, Any] = {}

    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr in node.attribute:
            value = onnx.helper.get_attribute_value(attr)
            out[attr.name] = numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value
        return out

    @staticmethod
    def shape(value: Value) -> list[int | None]:
        if isinstance(value, np.ndarray):
            return [int(d) for d in value.shape]
        return list(value.shape.as_list())

    def rank(self, value: Value) -> int:
        return len(self.shape(value))

    def pair(self, tensor: Any, twin: Any) -> None:
        self._twins[tensor.ref()] = twin

    def channels_last(self, value: Value) -> Any:
        return None if isinstance(value, np.ndarray) else self._twins.get(value.ref())

    def channels_last_operand(self, value: Value, rank: int) -> Any:
        """``value`` as the other operand of an elementwise op computed channels-last: a
        tensor's twin, or a constant broadcast to ``rank`` and transposed."""
        if not isinstance(value, np.ndarray):
            return self.channels_last(value)
        if value.ndim == 0 or rank < 3:
            return value if value.ndim == 0 else None
        full = value.reshape((1,) * (rank - value.ndim) + value.shape)
        return np.ascontiguousarray(np.transpose(full, [0, *range(2, rank), 1]))


def constant(node: onnx.NodeProto) -> np.ndarray:
    """The value of an ONNX ``Constant`` node."""
    attrs = Graph.attrs(node)
    for key in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key])
    raise unconvertible(node, f"Constant with {sorted(attrs)}")
