"""Where a model's exported artifacts live and what they expect: shared by the export tool
(which writes them) and the worker's inference backends (which read them).

Kept apart from ``export`` (torch, ONNX, the verification run) so that the runtime depends
only on these names, never on the tool that makes the files.
"""

from __future__ import annotations

import hashlib
import platform
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.analysis.spec import ModelSpec


class ExportFormat(StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch-export"
    OPENVINO = "openvino"
    TFLITE = "tflite"  # TensorFlow ports (export_tf): a .tflite file, a SavedModel directory
    TF_SAVEDMODEL = "tf-savedmodel"

    @property
    def suffix(self) -> str:
        return {
            "onnx": ".onnx",
            "torchscript": ".ts.pt",
            "torch-export": ".pt2",
            "openvino": ".openvino.xml",
            "tflite": ".tflite",
            "tf-savedmodel": ".savedmodel",
        }[self.value]

    @property
    def is_tensorflow(self) -> bool:
        """A TensorFlow port (``export_tf``, the ``tf`` extra); no worker backend runs it."""
        return self in (ExportFormat.TFLITE, ExportFormat.TF_SAVEDMODEL)


def artifact_path(models_dir: Path, spec: ModelSpec, fmt: ExportFormat) -> Path:
    """``X3D_XS.pyth`` -> ``X3D_XS.onnx`` (next to the weights)."""
    return models_dir / (Path(spec.weights).name.split(".")[0] + fmt.suffix)


def artifact_files(artifact: Path) -> list[Path]:
    """Every file an artifact is made of: an OpenVINO IR is its ``.xml`` graph and the
    ``.bin`` weights beside it; the other formats are one file."""
    if artifact.name.endswith(ExportFormat.OPENVINO.suffix):
        return [artifact, artifact.with_suffix(".bin")]
    return [artifact]


def artifacts_sha256(paths: list[Path]) -> str:
    """The sha256 of an artifact's files read one after the other (an IR: graph, then
    weights), as its report records it; missing files hash as absent."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            with path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
        except FileNotFoundError:
            digest.update(b"\0missing")
    return digest.hexdigest()


def report_path(artifact: Path) -> Path:
    """The verification report written next to ``artifact`` (``<artifact>.json``)."""
    return artifact.with_name(artifact.name + ".json")


def input_names(spec: ModelSpec) -> list[str]:
    """The exported graph's input names: SlowFast's two pathways, or one clip."""
    return ["slow", "fast"] if spec.alpha else ["clip"]


def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``), else what ``platform`` knows: an
    export's speed figures hold only on the CPU model they were measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
