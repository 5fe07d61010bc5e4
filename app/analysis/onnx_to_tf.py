"""Our ONNX export, rebuilt as a TensorFlow graph, saved as a SavedModel or a TFLite model.

The graph is walked node by node and each ONNX operator is replaced by TensorFlow ops
(``tf_ops``, ``tf_conv``); the weights are the ONNX initializers, copied as constants, so
the name map from PyTorch to TensorFlow is the ONNX node names (kept as TensorFlow name
scopes: ``/model/blocks.1/res_blocks.0/branch2/conv_a/Conv``). Why not a general converter
is in docs/MODELS.md ("TensorFlow and TFLite"): in short, onnx2tf's Python 3.11 releases
mis-convert 3D pooling, split a depthwise 3D convolution into one op per channel and leave
3D pools as ops the TFLite interpreter lacks, and its 2.x needs Python 3.12.

The artifact takes clips channels-last, ``(N, T, H, W, C)`` per pathway (TensorFlow's
layout, the one its kernels and TFLite delegates want); PyTorch and ONNX take ``(N, C, T,
H, W)``. The batch dimension stays dynamic unless a layer needs sizes that only a fixed
batch reveals (MViT: batch 1). An operator we have no version of, or (for TFLite) a
TensorFlow op with no TFLite builtin, raises ``ExportUnconvertible`` naming the layer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

from app.analysis.tf_graph import Graph, constant, layer_of, unconvertible
from app.analysis.tf_ops import OPS
from app.errors import ExportUnconvertible

CHANNELS_LAST = "NTHWC"
"""The layout the TensorFlow artifacts take (per pathway; PyTorch's is NCTHW)."""


def _scalar(graph: Graph, name: str, want: float) -> bool:
    value = graph.values.get(name)
    return (
        isinstance(value, np.ndarray) and value.size == 1 and abs(float(value.reshape(-1)[0]) - want) < 1e-6
    )


def _fuse_gelu(model: onnx.ModelProto, graph: Graph) -> list[onnx.NodeProto]:
    """The nodes, with PyTorch's exact GELU (``x * (1 + erf(x / sqrt 2))`` then ``* 0.5``)
    made one ``Gelu`` node: TFLite has a GELU builtin but no ``Erf``."""
    nodes = list(model.graph.node)
    for node in nodes:
        if node.op_type == "Constant":
            graph.values[node.output[0]] = constant(node)
    made = {out: n for n in nodes for out in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for name in n.input:
            readers.setdefault(name, []).append(n)

    def only_reader(name: str, op: str) -> onnx.NodeProto | None:
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op else None

    fused: dict[str, onnx.NodeProto] = {}
    dropped: set[str] = set()
    for erf in (n for n in nodes if n.op_type == "Erf"):
        div = made.get(erf.input[0])
        add = only_reader(erf.output[0], "Add")
        mul = only_reader(add.output[0], "Mul") if add else None
        half = only_reader(mul.output[0], "Mul") if mul else None
        if div is None or div.op_type != "Div" or add is None or mul is None or half is None:
            continue
        x = div.input[0]
        if not (
            _scalar(graph, div.input[1], 2**0.5) and x in mul.input and set(half.input) - {mul.output[0]}
        ):
            continue
        if not (_scalar(graph, next(i for i in add.input if i != erf.output[0]), 1.0)):
            continue
        if not _scalar(graph, next(i for i in half.input if i != mul.output[0]), 0.5):
            continue
        gelu = onnx.helper.make_node(
            "Gelu", [x], list(half.output), name=f"{erf.name.rpartition('/')[0]}/Gelu"
        )
        fused[half.output[0]] = gelu
        dropped.update(n.output[0] for n in (div, erf, add, mul) if len(readers.get(n.output[0], [])) == 1)
    return [
        fused.get(n.output[0], n) if n.output else n
        for n in nodes
        if not (n.output and n.output[0] in dropped)
    ]


def _run(model: onnx.ModelProto, inputs: Sequence[Any]) -> Any:
    """The ONNX graph on channels-last ``inputs``, as TensorFlow ops: the first output."""
    graph = Graph()
    graph.values.update({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    feeds = [i for i in model.graph.input if i.name not in graph.values]
    for spec, last in zip(feeds, inputs, strict=True):
        rank = len(last.shape)
        first = tf.transpose(last, [0, rank - 1, *range(1, rank - 1)])
        graph.pair(first, last)
        graph.values[spec.name] = first
    for node in _fuse_gelu(model, graph):
        if node.op_type == "Constant":
            graph.values[node.output[0]] = constant(node)
            continue
        run = OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if run is None:
            raise unconvertible(node, "no TensorFlow version of this operator")
        with tf.name_scope(_scope(node.name or node.op_type)):
            try:
                outputs = run(graph, node, [graph.values[i] if i else None for i in node.input])
            except ExportUnconvertible:
                raise
            except Exception as exc:
                error = unconvertible(node, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                error.extra["static_batch_may_help"] = True  # e.g. a size lost to a dynamic reshape
                raise error from exc
        folded = [np.asarray(v) if isinstance(v, np.generic) else v for v in outputs]  # numpy scalars
        graph.values.update(zip(node.output, folded, strict=False))
    out = graph.values[model.graph.output[0].name]
    return tf.constant(out) if isinstance(out, np.ndarray) else out


def _scope(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name.strip("/")) or "node"


def _input_specs(model: onnx.ModelProto, batch: int | None) -> list[tf.TensorSpec]:
    """Channels-last specs of the graph's inputs: ``batch`` (None: dynamic), then the rest."""
    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for spec in model.graph.input:
        if spec.name in initializers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in spec.type.tensor_type.shape.dim]
        specs.append(tf.TensorSpec([batch, *dims[2:], dims[1]], tf.float32, name=spec.name))
    return specs


def concrete_function(onnx_path: Path, batch: int | None = None) -> tuple[tf.Module, Any]:
    """A module and its traced ``serving_default`` function: channels-last clips in,
    ``{"scores": (N, classes)}`` out; ``batch`` fixes N (None: dynamic)."""
    model = onnx.load(str(onnx_path))
    module = tf.Module()

    def serve(*clips: Any) -> dict[str, Any]:
        return {"scores": tf.identity(_run(model, clips), name="scores")}

    module.serve = tf.function(serve, input_signature=_input_specs(model, batch), autograph=False)
    return module, module.serve.get_concrete_function()


def _traced(onnx_path: Path) -> tuple[tf.Module, Any]:
    """The function with a dynamic batch, or with a batch of 1 when a layer needs sizes that
    a dynamic batch leaves unknown (MViT's reshapes compute them from the input's shape)."""
    try:
        return concrete_function(onnx_path)
    except ExportUnconvertible as exc:
        if not exc.extra.get("static_batch_may_help"):
            raise
        return concrete_function(onnx_path, batch=1)


def save_savedmodel(onnx_path: Path, target: Path) -> None:
    module, function = _traced(onnx_path)
    tf.saved_model.save(module, str(target), signatures={"serving_default": function})


def save_tflite(onnx_path: Path, target: Path) -> None:
    """TFLite builtin ops only (a model needing TensorFlow "Flex" ops would not run in the
    plain interpreter): a TensorFlow op without a builtin is reported with its layer."""
    module, function = _traced(onnx_path)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        blob = converter.convert()
    except Exception as exc:
        raise _tflite_error(str(exc), function) from exc
    target.write_bytes(blob)


def _tflite_error(message: str, function: Any) -> ExportUnconvertible:
    """The converter's complaint, reduced to the TensorFlow op and the layer it came from
    (found in our graph: a TensorFlow op is named ``<ONNX node name>/<op>``)."""
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)))
    names = [o.name for o in function.graph.get_operations() if o.type in ops]
    layer = layer_of(layer_of(names[0])) if names else "?"
    op = ", ".join(f"tf.{o}" for o in ops) or message.strip().splitlines()[0][:200]
    return ExportUnconvertible(f"layer {layer} ({op}): not a TensorFlow Lite builtin op", layer=layer, op=op)
