"""``models export NAME --format tflite|tf-savedmodel``: a verified TensorFlow port of a model.

The PyTorch model goes through the same ONNX export as ``--format onnx`` (Swish as
``nn.SiLU``, SlowFast's pathways as two inputs, dynamic batch), which ``onnx_to_tf``
rebuilds as TensorFlow ops and saves as a SavedModel directory or a ``.tflite`` file next
to the weights. The artifact is then checked like every export: the PyTorch model as the
service runs it and the artifact (TensorFlow, or the LiteRT interpreter) see the same
random and real clips, each in its own layout (PyTorch ``NCTHW``, the artifact ``NTHWC``:
the report says which), and the largest output difference and the top-1 agreement must stay
within the tolerance (``export_verification.compare``); a failed artifact is removed.

Needs the ``tf`` extra (``pip install -e '.[tf]'``): TensorFlow is never in the runtime
image, and the API and the worker never import this module.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.analysis.artifacts import ExportFormat, artifact_path, input_names, report_path
from app.analysis.export import ONNX_OPSET, exportable, write_artifact
from app.analysis.export_verification import Comparison, Runner, compare, random_clips, real_clips
from app.analysis.spec import ModelSpec

TF_FORMATS = tuple(fmt for fmt in ExportFormat if fmt.is_tensorflow)


@dataclass
class TfExportReport:
    model: str
    format: str
    artifact: str
    artifact_sha256: str
    artifact_bytes: int
    weights_sha256: str
    swish_replaced: int
    input_layout: str
    input_shapes: dict[str, list[int | None]]
    export_seconds: float
    atol: float
    random: Comparison
    real: Comparison
    passed: bool
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_tf_artifact(module: nn.Module, spec: ModelSpec, fmt: ExportFormat, target: Path) -> None:
    """``module`` (an ``export.exportable`` wrapper) as ``fmt`` at ``target``; nothing is left
    there unless the whole conversion succeeded (``ExportUnconvertible`` names the layer)."""
    from app.analysis.onnx_to_tf import save_savedmodel, save_tflite

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        write_artifact(module, spec, ExportFormat.ONNX, onnx_path)
        part = Path(scratch) / target.name
        (save_tflite if fmt is ExportFormat.TFLITE else save_savedmodel)(onnx_path, part)
        remove_artifact(target)
        part.replace(target)


def remove_artifact(target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)


def _files(target: Path) -> list[Path]:
    return sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]


def _sha256(target: Path) -> str:
    """A file's sha256; for a SavedModel directory, over each file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in _files(target):
        if target.is_dir():
            digest.update(str(path.relative_to(target)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


class TfRunner(Runner):
    """Runs a TensorFlow artifact like ``Runner`` runs the others: PyTorch-layout (``NCTHW``)
    tensors in, transposed to the artifact's ``NTHWC``; a ``(B, classes)`` tensor out."""

    def __init__(self, fmt: ExportFormat, path: Path, names: Sequence[str], threads: int = 1) -> None:
        self.fmt, self.names = fmt, list(names)
        if fmt is ExportFormat.TFLITE:
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.run = self.interpreter.get_signature_runner("serving_default")
        else:
            import tensorflow as tf

            self.saved = tf.saved_model.load(str(path))
            self.run = self.saved.signatures["serving_default"]

    def input_shapes(self) -> dict[str, list[int | None]]:
        """What the artifact takes, by input name (None: a dynamic dimension)."""
        if self.fmt is ExportFormat.TFLITE:
            details = self.run.get_input_details()
            return {k: [None if d < 0 else int(d) for d in v["shape_signature"]] for k, v in details.items()}
        specs = self.run.structured_input_signature[1]
        return {k: list(v.shape.as_list()) for k, v in specs.items()}

    def __call__(self, *paths: torch.Tensor) -> torch.Tensor:
        feeds = {
            name: p.detach().cpu().permute(0, 2, 3, 4, 1).contiguous().numpy()
            for name, p in zip(self.names, paths, strict=True)
        }
        if self.fmt is ExportFormat.TF_SAVEDMODEL:
            import tensorflow as tf

            feeds = {name: tf.constant(value) for name, value in feeds.items()}
        out = self.run(**feeds)["scores"]
        return torch.from_numpy(out if self.fmt is ExportFormat.TFLITE else out.numpy())


def verify_tf_artifact(
    reference: nn.Module,
    spec: ModelSpec,
    fmt: ExportFormat,
    target: Path,
    *,
    allowed_formats: Sequence[str],
    video: Path | None,
    clips: int,
    atol: float,
    weights_sha256: str,
    swish_replaced: int,
    export_seconds: float,
    threads: int = 1,
) -> TfExportReport:
    """Compare the artifact with ``reference``, write the report next to it, and remove the
    artifact when it fails."""
    from app.analysis.onnx_to_tf import CHANNELS_LAST

    names = input_names(spec)
    runner = TfRunner(fmt, target, names, threads)
    random_cmp = compare(reference, runner, random_clips(spec, clips), spec, atol)
    real_cmp = compare(reference, runner, real_clips(spec, video, clips, allowed_formats), spec, atol)
    passed = all(
        c.max_abs_diff <= atol and c.top1_disagreements_beyond_tolerance == 0 for c in (random_cmp, real_cmp)
    )
    report = TfExportReport(
        model=spec.name,
        format=fmt.value,
        artifact=target.name,
        artifact_sha256=_sha256(target),
        artifact_bytes=sum(p.stat().st_size for p in _files(target)),
        weights_sha256=weights_sha256,
        swish_replaced=swish_replaced,
        input_layout=CHANNELS_LAST,
        input_shapes=runner.input_shapes(),
        export_seconds=round(export_seconds, 3),
        atol=atol,
        random=random_cmp,
        real=real_cmp,
        passed=passed,
        versions=_versions(),
    )
    report_path(target).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not passed:
        remove_artifact(target)
    return report


def export_tf_model(
    models_dir: Path,
    spec: ModelSpec,
    fmt: ExportFormat,
    *,
    allowed_formats: Sequence[str],
    video: Path | None = None,
    clips: int = 4,
    atol: float = 1e-4,
    threads: int = 1,
) -> TfExportReport:
    """Port ``spec``'s weights to ``fmt`` next to them, verify, write the report."""
    from app.analysis.loader import ModelLoader

    loaded = ModelLoader(models_dir, cache_bytes=0).load(spec)
    reference = loaded.module.eval()
    module, swapped = exportable(reference, spec)
    target = artifact_path(models_dir, spec, fmt)
    started = time.monotonic()
    write_tf_artifact(module, spec, fmt, target)
    return verify_tf_artifact(
        reference,
        spec,
        fmt,
        target,
        allowed_formats=allowed_formats,
        video=video,
        clips=clips,
        atol=atol,
        weights_sha256=loaded.sha256,
        swish_replaced=swapped,
        export_seconds=time.monotonic() - started,
        threads=threads,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    import onnx
    import tensorflow as tf

    from app.analysis.results import versions

    return versions() | {
        "tensorflow": tf.__version__,
        "ai-edge-litert": version("ai-edge-litert"),
        "onnx": onnx.__version__,
        "opset": str(ONNX_OPSET),
    }
