"""ONNX ``Conv``, ``MaxPool``, ``AveragePool`` and ``GlobalAveragePool`` as TensorFlow Lite builtins.

TensorFlow's convolutions and pools run channels-last, so each works on the tensor's
channels-last twin (made by one transpose when the producer did not leave one) and leaves
its own twin for the next layer. TensorFlow Lite has ``CONV_3D`` but neither a depthwise 3D
convolution nor 3D pooling (converted naively, a depthwise ``Conv3d`` becomes one
convolution per channel and 3D pools become "Flex" ops that the interpreter lacks). Both are
separable, so here they are:

* a depthwise 3D convolution: for each kernel time step, a ``DEPTHWISE_CONV_2D`` of the
  time-shifted frames (time folded into the batch), summed;
* a 3D pool: a 2D pool of every frame, then the maximum or mean of strided time slices.

Only the summation order differs from PyTorch (differences ~1e-6; the export verifies).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import tensorflow as tf

from app.analysis.tf_graph import Graph, Value, unconvertible


def _twin(graph: Graph, x: Value) -> Any:
    twin = graph.channels_last(x)
    if twin is None:
        rank = graph.rank(x)
        twin = tf.transpose(x, [0, *range(2, rank), 1])
        graph.pair(x, twin)
    return twin


def _finish(graph: Graph, twin: Any) -> Any:
    """The channels-first tensor for ``twin`` (the transpose is pruned when nothing reads it)."""
    rank = len(twin.shape)
    out = tf.transpose(twin, [0, rank - 1, *range(1, rank - 1)])
    graph.pair(out, twin)
    return out


def _pad(x: Any, pads: list[int], value: float = 0.0) -> Any:
    """Pad the spatial axes of a channels-last tensor by ONNX's ``[b1, b2, ..., e1, e2, ...]``."""
    half = len(pads) // 2
    if not any(pads):
        return x
    widths = [[0, 0], *([pads[i], pads[i + half]] for i in range(half)), [0, 0]]
    return tf.pad(x, widths, constant_values=value)


def _frames(x: Any) -> Any:
    """``(N, T, H, W, C)`` -> ``(N*T, H, W, C)``."""
    _, _, h, w, c = x.shape
    return tf.reshape(x, [-1, h, w, c])


def _unframes(x: Any, frames: int) -> Any:
    _, h, w, c = x.shape
    return tf.reshape(x, [-1, frames, h, w, c])


def _time_slices(x: Any, kernel: int, stride: int, dilation: int = 1) -> list[Any]:
    frames = int(x.shape[1])
    count = (frames - dilation * (kernel - 1) - 1) // stride + 1
    span = stride * (count - 1) + 1
    return [x[:, dt * dilation : dt * dilation + span : stride] for dt in range(kernel)]


def _depthwise(x: Any, weight: np.ndarray, strides: list[int], dilations: list[int]) -> Any:
    """Depthwise convolution of a padded channels-last tensor; ``weight`` is ONNX's
    ``(C*m, 1, *kernel)``."""
    channels = int(x.shape[-1])
    spatial = weight.shape[2:]
    kernel = weight.reshape(channels, -1, *spatial)  # (C, m, *k)
    if len(spatial) == 2:
        filt = np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))
        return tf.nn.depthwise_conv2d(x, filt, [1, *strides, 1], "VALID", dilations=dilations)
    total = None
    for dt, frames in enumerate(_time_slices(x, spatial[0], strides[0], dilations[0])):
        filt = np.ascontiguousarray(kernel[:, :, dt].transpose(2, 3, 0, 1))
        step = tf.nn.depthwise_conv2d(
            _frames(frames), filt, [1, *strides[1:], 1], "VALID", dilations=dilations[1:]
        )
        step = _unframes(step, int(frames.shape[1]))
        total = step if total is None else total + step
    return total


def conv(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if not isinstance(weight, np.ndarray) or (bias is not None and not isinstance(bias, np.ndarray)):
        raise unconvertible(node, "weights computed from the input")
    n = weight.ndim - 2
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or n not in (2, 3):
        raise unconvertible(node, f"{n}D convolution with auto_pad={attrs.get('auto_pad')}")
    strides = list(attrs.get("strides", [1] * n))
    dilations = list(attrs.get("dilations", [1] * n))
    groups = int(attrs.get("group", 1))
    padded = _pad(_twin(graph, x), list(attrs.get("pads", [0] * 2 * n)))
    channels = int(padded.shape[-1])
    if groups == 1:
        filt = np.ascontiguousarray(weight.transpose(*range(2, n + 2), 1, 0))
        out = tf.nn.convolution(padded, filt, strides, "VALID", dilations=dilations)
    elif groups == channels and weight.shape[1] == 1:
        out = _depthwise(padded, weight, strides, dilations)
    else:
        parts = tf.split(padded, groups, axis=-1)
        filters = np.split(weight, groups, axis=0)
        out = tf.concat(
            [
                tf.nn.convolution(
                    p,
                    np.ascontiguousarray(f.transpose(*range(2, n + 2), 1, 0)),
                    strides,
                    "VALID",
                    dilations=dilations,
                )
                for p, f in zip(parts, filters, strict=True)
            ],
            axis=-1,
        )
    if bias is not None:
        out = out + bias
    return [_finish(graph, out)]


def pool(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    attrs = graph.attrs(node)
    is_max = node.op_type == "MaxPool"
    kernel = list(attrs["kernel_shape"])
    n = len(kernel)
    strides = list(attrs.get("strides", [1] * n))
    pads = list(attrs.get("pads", [0] * 2 * n))
    if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1] * n)) or n not in (2, 3):
        raise unconvertible(node, f"{node.op_type} {n}D with ceil_mode or dilations")
    if not is_max and any(pads) and not attrs.get("count_include_pad", 0):
        raise unconvertible(node, "AveragePool with padding that is not counted (count_include_pad=0)")
    if len(node.output) > 1:
        raise unconvertible(node, "MaxPool returning indices")
    fill = float("-inf") if is_max else 0.0
    x = _pad(_twin(graph, inputs[0]), pads, fill)
    op = tf.nn.max_pool2d if is_max else tf.nn.avg_pool2d
    if n == 2:
        return [_finish(graph, op(x, kernel, strides, "VALID"))]
    frames = int(x.shape[1])
    pooled = _unframes(op(_frames(x), kernel[1:], strides[1:], "VALID"), frames)
    if kernel[0] == 1 and strides[0] == 1:
        return [_finish(graph, pooled)]
    slices = _time_slices(pooled, kernel[0], strides[0])
    out = slices[0]
    for step in slices[1:]:
        out = tf.maximum(out, step) if is_max else out + step
    return [_finish(graph, out if is_max else out / float(kernel[0]))]


def global_average_pool(graph: Graph, node: onnx.NodeProto, inputs: list[Value]) -> list[Value]:
    twin = _twin(graph, inputs[0])
    rank = len(twin.shape)
    return [_finish(graph, tf.reduce_mean(twin, axis=list(range(1, rank - 1)), keepdims=True))]
