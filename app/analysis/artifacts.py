"""Where a model's exported artifacts live and what they expect: shared by the export tool
(which writes them) and the worker's inference backends (which read them).

Kept apart from ``export`` (torch, ONNX, the verification run) so that the runtime depends
only on these names, never on the tool that makes the files.
"""

from __future__ import annotations

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

    @property
    def suffix(self) -> str:
        return {"onnx": ".onnx", "torchscript": ".ts.pt", "torch-export": ".pt2"}[self.value]


def artifact_path(models_dir: Path, spec: ModelSpec, fmt: ExportFormat) -> Path:
    """``X3D_XS.pyth`` -> ``X3D_XS.onnx`` (next to the weights)."""
    return models_dir / (Path(spec.weights).name.split(".")[0] + fmt.suffix)


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
