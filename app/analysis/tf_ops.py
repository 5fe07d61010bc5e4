"""TensorFlow versions of the ONNX operators our exported models use (``onnx_to_tf``).

Each takes the ``Graph`` being rebuilt, the ONNX node and its input values, and returns its
outputs. Constant inputs fold in numpy; elementwise ops on a tensor with a channels-last
twin also compute the twin (``tf_graph``), so a convolution after them needs no transpose.
Convolutions and pools are in ``tf_conv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
import tensorflow as tf

from app.analysis.tf_conv import conv, global_average_pool, pool
from app.analysis.tf_graph import Graph, Value, unconvertible

Op = Callable[[Graph, onnx.NodeProto, list[Value]], list[Value]]
INT64_MAX = 2**63 - 1


def _const(value: Value, node: onnx.NodeProto) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    raise unconvertible(node, "an input that must be constant depends on the clip")


def _ints(value: Value, node: onnx.NodeProto) -> list[int]:
    return [int(v) for v in np.asarray(_const(value, node)).reshape(-1)]


def _unary(np_fn: Callable[[np.ndarray], np.ndarray], tf_fn: Callable[[Any], Any], keeps_layout: bool) -> Op:
    def run(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
        (x,) = inputs[:1]
        if isinstance(x, np.ndarray):
            return [np_fn(x)]
        out = tf_fn(x)
        if keeps_layout and (twin := graph.channels_last(x)) is not None:
            graph.pair(out, tf_fn(twin))
        return [out]

    return run


def _binary(np_fn: Callable[[Any, Any], Any], tf_fn: Callable[[Any, Any], Any], keeps_layout: bool) -> Op:
    def run(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
        a, b = inputs
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return [np.asarray(np_fn(a, b))]
        out = tf_fn(a, b)
        if keeps_layout:
            twins = [graph.channels_last_operand(v, graph.rank(out)) for v in (a, b)]
            if twins[0] is not None and twins[1] is not None:
                graph.pair(out, tf_fn(twins[0], twins[1]))
        return [out]

    return run


def _erf(x: Any) -> Any:
    return tf.math.erf(x)


def _gelu(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    """ONNX ``Gelu`` (exact; also PyTorch's fused ``x * 0.5 * (1 + erf(x / sqrt 2))``)."""
    x = inputs[0]
    out = tf.nn.gelu(x, approximate=graph.attrs(node).get("approximate", b"none") in (b"tanh", "tanh"))
    return [out]


def _identity(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    return [inputs[0]]


def _reduce_mean(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    x = inputs[0]
    rank = graph.rank(x)
    axes = sorted(
        a % rank for a in (attrs.get("axes") or (_ints(inputs[1], node) if len(inputs) > 1 else []))
    )
    keep = bool(attrs.get("keepdims", 1))
    out = tf.reduce_mean(x, axis=axes or None, keepdims=keep)
    twin = graph.channels_last(x)
    if twin is not None and keep and axes and 1 not in axes:
        moved = {a: a - 1 for a in range(2, rank)}
        graph.pair(out, tf.reduce_mean(twin, axis=[moved[a] for a in axes], keepdims=True))
    return [out]


def _softmax(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    return [tf.nn.softmax(inputs[0], axis=int(graph.attrs(node).get("axis", -1)))]


def _layer_norm(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    x, scale = inputs[0], inputs[1]
    rank = graph.rank(x)
    axes = list(range(int(attrs.get("axis", -1)) % rank, rank))
    mean = tf.reduce_mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = tf.reduce_mean(tf.square(centred), axis=axes, keepdims=True)
    out = centred * tf.math.rsqrt(var + float(attrs.get("epsilon", 1e-5))) * scale
    return [out + inputs[2] if len(inputs) > 2 and inputs[2] is not None else out]


def _matmul(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    return [tf.linalg.matmul(inputs[0], inputs[1])]


def _gemm(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    a, b = inputs[0], inputs[1]
    out = tf.linalg.matmul(
        a, b, transpose_a=bool(attrs.get("transA", 0)), transpose_b=bool(attrs.get("transB", 0))
    )
    out = out * float(attrs.get("alpha", 1.0)) if attrs.get("alpha", 1.0) != 1.0 else out
    if len(inputs) > 2 and inputs[2] is not None:
        out = out + float(attrs.get("beta", 1.0)) * inputs[2]
    return [out]


def _transpose(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    perm = graph.attrs(node).get("perm")
    x = inputs[0]
    if isinstance(x, np.ndarray):
        return [np.transpose(x, perm)]
    return [tf.transpose(x, perm)]


def _reshape(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    x, shape = inputs
    if isinstance(shape, np.ndarray):
        dims = [int(d) for d in shape.reshape(-1)]
        if not graph.attrs(node).get("allowzero", 0) and 0 in dims:
            static = graph.shape(x)
            shape = [(static[i] or tf.shape(x)[i]) if d == 0 else d for i, d in enumerate(dims)]
        else:
            shape = dims
    if isinstance(x, np.ndarray) and isinstance(shape, list):
        return [x.reshape(shape)]
    return [tf.reshape(x, shape)]


def _flatten(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    axis = int(graph.attrs(node).get("axis", 1))
    x = inputs[0]
    rest = [d for d in graph.shape(x)[axis:] if d is not None]
    if axis != 1 or len(rest) != graph.rank(x) - 1:
        raise unconvertible(node, f"Flatten at axis {axis} of a tensor with unknown dimensions")
    return [tf.reshape(x, [-1, int(np.prod(rest))])]


def _shape(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    x = inputs[0]
    start, end = attrs.get("start", 0), attrs.get("end")
    static = graph.shape(x)[start:end]
    if all(d is not None for d in static):
        return [np.array(static, dtype=np.int64)]
    return [tf.shape(x, out_type=tf.int64)[start:end]]


def _gather(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    data, indices = inputs
    axis = int(graph.attrs(node).get("axis", 0))
    if isinstance(data, np.ndarray) and isinstance(indices, np.ndarray):
        return [np.take(data, indices, axis=axis)]
    return [tf.gather(data, indices, axis=axis)]


def _unsqueeze(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    axes = graph.attrs(node).get("axes") or _ints(inputs[1], node)
    rank = graph.rank(x) + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = np.expand_dims(x, axis) if isinstance(x, np.ndarray) else tf.expand_dims(x, axis)
    return [x]


def _squeeze(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    x = inputs[0]
    axes = graph.attrs(node).get("axes") or (_ints(inputs[1], node) if len(inputs) > 1 else None)
    if isinstance(x, np.ndarray):
        return [np.squeeze(x, axis=tuple(axes) if axes else None)]
    return [tf.squeeze(x, axis=axes)]


def _concat(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    axis = int(graph.attrs(node)["axis"])
    if all(isinstance(v, np.ndarray) for v in inputs):
        return [np.concatenate(inputs, axis=axis)]
    dtype = next(v.dtype for v in inputs if not isinstance(v, np.ndarray))
    out = tf.concat([tf.cast(v, dtype) if isinstance(v, np.ndarray) else v for v in inputs], axis=axis)
    twins = [graph.channels_last(v) for v in inputs]
    rank = graph.rank(out)
    if rank > 2 and axis % rank == 1 and all(t is not None for t in twins):
        graph.pair(out, tf.concat(twins, axis=-1))
    return [out]


def _slice(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    data = inputs[0]
    starts, ends = _ints(inputs[1], node), _ints(inputs[2], node)
    rank = graph.rank(data)
    axes = _ints(inputs[3], node) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = _ints(inputs[4], node) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        stop = None if abs(end) >= INT64_MAX // 2 else end
        index[axis % rank] = slice(start, stop, step)
    return [data[tuple(index)]]


def _constant_of_shape(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    value = attrs.get("value", np.zeros(1, dtype=np.float32)).reshape(-1)[0]
    shape = inputs[0]
    if isinstance(shape, np.ndarray):
        return [np.full([int(d) for d in shape], value)]
    return [tf.fill(shape, tf.constant(value))]


def _cast(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    dtype = onnx.helper.tensor_dtype_to_np_dtype(int(graph.attrs(node)["to"]))
    x = inputs[0]
    return [x.astype(dtype) if isinstance(x, np.ndarray) else tf.cast(x, tf.as_dtype(dtype))]


def _where(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    cond, a, b = inputs
    if all(isinstance(v, np.ndarray) for v in inputs):
        return [np.where(cond, a, b)]
    return [tf.where(cond, a, b)]


def _expand(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    x, shape = inputs
    if isinstance(x, np.ndarray) and isinstance(shape, np.ndarray):
        return [x * np.ones([int(d) for d in shape], dtype=x.dtype)]
    return [x * tf.ones(shape, dtype=x.dtype)]


def _tile(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    x, repeats = inputs
    if isinstance(x, np.ndarray) and isinstance(repeats, np.ndarray):
        return [np.tile(x, repeats)]
    return [tf.tile(x, repeats)]


OPS: dict[str, Op] = {
    "Identity": _identity,
    "Dropout": _identity,
    "Relu": _unary(lambda x: np.maximum(x, 0), tf.nn.relu, True),
    "Sigmoid": _unary(lambda x: 1 / (1 + np.exp(-x)), tf.math.sigmoid, True),
    "Tanh": _unary(np.tanh, tf.math.tanh, True),
    "Erf": _unary(np.vectorize(math.erf), _erf, True),
    "Gelu": _gelu,
    "Sqrt": _unary(np.sqrt, tf.math.sqrt, True),
    "Neg": _unary(np.negative, tf.math.negative, True),
    "Add": _binary(np.add, tf.math.add, True),
    "Sub": _binary(np.subtract, tf.math.subtract, True),
    "Mul": _binary(np.multiply, tf.math.multiply, True),
    "Div": _binary(np.divide, tf.math.divide, True),
    "Pow": _binary(np.power, tf.math.pow, True),
    "Equal": _binary(np.equal, tf.math.equal, False),
    "Conv": conv,
    "MaxPool": pool,
    "AveragePool": pool,
    "GlobalAveragePool": global_average_pool,
    "ReduceMean": _reduce_mean,
    "Softmax": _softmax,
    "LayerNormalization": _layer_norm,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Shape": _shape,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Slice": _slice,
    "ConstantOfShape": _constant_of_shape,
    "Cast": _cast,
    "Where": _where,
    "Expand": _expand,
    "Tile": _tile,
}
"""ONNX op type -> its TensorFlow version (``Constant`` is read by the graph walk itself)."""


def missing_ops(ops: Sequence[str]) -> list[str]:
    """The op types in ``ops`` this converter has no version of."""
    return [op for op in ops if op not in OPS and op != "Constant"]
