"""Inference backends as runners (``runners.py``): a batch array per input in, a ``(batch,
classes)`` array out. ``torch`` runs the loaded module; ``onnx`` the verified ONNX export with ONNX
Runtime; ``openvino`` / ``openvino-bf16`` the verified OpenVINO IR; ``auto`` (the default)
lets the exports' own benchmarks decide (the rule: ``backend_choice``).

An export is only used when its verification report passed for the very weights file
loaded. A backend set explicitly fails the job without such an export (naming the command
to run); ``auto`` falls back to the next fastest, and to PyTorch, when an export cannot be
used. The choice and its reason go into each result's provenance. Nothing here imports
torch: a job on an export never loads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from app.analysis.artifacts import cpu_model, input_names
from app.analysis.backend_choice import (
    Backend,
    Choice,
    Measured,
    auto_ranking,
    auto_reason,
    export_command,
    setting_for,
    verified_export,
)
from app.analysis.openvino_runtime import CompiledIR, EarlyCompile, Precision, cache_dir_for
from app.analysis.runners import OnnxRunner, OpenVinoRunner, Runner, as_runner
from app.errors import WeightsInvalid, WeightsMissing

if TYPE_CHECKING:
    from app.analysis.loader import LoadedModel

log = logging.getLogger(__name__)


class Backends:
    """Picks each model's backend from settings (``auto``: from its export reports); the
    choice and any session or compiled model are kept per weights file version."""

    def __init__(
        self,
        models_dir: Path,
        choices: Mapping[str, str],
        *,
        default: str = Backend.AUTO,
        threads: int = 1,
        batch: int = 1,
        device: str = "cpu",
    ) -> None:
        self.models_dir, self.choices, self.default = models_dir, dict(choices), default
        self.threads, self.batch, self.device = threads, batch, device
        self.cache_dir = cache_dir_for(models_dir)
        self._decided: dict[tuple[str, str], tuple[Choice, Runner | None]] = {}
        """Per weights file version: the choice, and the export running it unless torch's."""
        self._early: list[EarlyCompile] = []
        self._lock = threading.Lock()

    def adopt(self, early: EarlyCompile) -> None:
        """A compile started early (``python -m app analyze`` starts it before importing
        torch); a ``resolve`` that picks the same IR and configuration takes its result."""
        with self._lock:
            self._early.append(early)

    def resolve(self, loaded: LoadedModel) -> tuple[Runner, Choice]:
        """What runs ``loaded`` and the choice behind it (decided once per weights file
        version; the torch module itself stays the loader's, under its memory bound, and is
        built, torch imported, only when the choice is torch)."""
        key = (loaded.spec.name, loaded.sha256)
        with self._lock:
            if key not in self._decided:
                choice, module = self._decided[key] = self._decide(loaded)
                log.info(
                    "inference backend for %s: %s (%s)",
                    loaded.spec.name,
                    choice.name,
                    choice.reason,
                    extra={"model": loaded.spec.name, "backend": choice.name},
                )
            choice, module = self._decided[key]
            return (module if module is not None else as_runner(loaded.module, loaded.device)), choice

    def _decide(self, loaded: LoadedModel) -> tuple[Choice, Runner | None]:
        name = loaded.spec.name
        value, source = setting_for(name, self.choices, self.default)
        if value is Backend.TORCH:
            return Choice(Backend.TORCH, f"set: {source} = torch"), None
        if value is not Backend.AUTO:
            return self._explicit(loaded, value, f"set: {source} = {value}")
        if self.device != "cpu":
            return Choice(Backend.TORCH, f"auto: the device is {self.device} (exports run on CPU)"), None
        faster, notes = auto_ranking(
            self.models_dir,
            loaded.spec,
            loaded.sha256,
            threads=self.threads,
            batch=self.batch,
            cpu=cpu_model(),
        )
        failed: list[str] = []
        for measured in faster:
            try:
                module = self._module(loaded, measured.backend, measured.path)
            except Exception as exc:  # a corrupt file, a runtime that cannot load it: try the next
                failed.append(
                    f"{_runtime(measured)} could not load {measured.path.name} ({str(exc)[:200]}); "
                )
                continue
            return Choice(measured.backend, auto_reason(notes, prefix="".join(failed))), module
        return Choice(Backend.TORCH, auto_reason(notes, prefix="".join(failed))), None

    def _explicit(self, loaded: LoadedModel, value: Backend, reason: str) -> tuple[Choice, Runner]:
        """A backend set by name: its verified export or a coded error naming the command."""
        name, fmt = loaded.spec.name, value.export_format
        assert fmt is not None
        if self.device != "cpu":
            raise WeightsInvalid(f"the {value} backend runs on CPU; {name} is set up for {self.device}")
        try:
            path, report = verified_export(self.models_dir, loaded.spec, fmt, loaded.sha256)
        except (WeightsMissing, WeightsInvalid) as exc:
            raise type(exc)(f"{name} is set to the {value} backend, but {exc.detail}") from None
        if value is Backend.OPENVINO_BF16 and not isinstance(report.get("bf16"), dict):
            raise WeightsInvalid(
                f"{name} is set to the {value} backend, but its export report has no bf16 measurement "
                f"(speed and agreement with f32): {export_command(name, fmt)} without --no-speed"
            )
        module = self._module(loaded, value, path)
        compiled = module.compiled if isinstance(module, OpenVinoRunner) else None
        if value is Backend.OPENVINO_BF16 and compiled and compiled.precision is not Precision.BF16:
            note = "this CPU has no native bf16, so OpenVINO compiled it to f32"
            return Choice(Backend.OPENVINO, f"{reason} ({note})"), module
        return Choice(value, reason), module

    def _module(self, loaded: LoadedModel, backend: Backend, path: Path) -> Runner:
        if backend is Backend.ONNX:
            return OnnxRunner(path, input_names(loaded.spec), self.threads)
        precision = Precision.BF16 if backend is Backend.OPENVINO_BF16 else Precision.F32
        return OpenVinoRunner(self._compiled(path, precision))

    def _compiled(self, xml: Path, precision: Precision) -> CompiledIR:
        """The early compile of this very IR and configuration if one was started, else a new one."""
        key = (xml, self.threads, precision, self.cache_dir)
        early = [e for e in self._early if e.key == key]
        if early:
            self._early.remove(early[0])
            try:
                compiled = early[0].result()
            except Exception:  # compiled again below: the same error, raised where it is needed
                pass
            else:
                log.info("%s: compiled early, while torch was loading", xml.name)
                return compiled
        return CompiledIR(xml, threads=self.threads, precision=precision, cache_dir=self.cache_dir)


def for_crops(loaded: LoadedModel, module: Runner, choice: Choice, crops: int) -> tuple[Runner, Choice]:
    """The module for a job with ``crops`` spatial crops: an export takes the 1-crop size
    only (``export.export_clip_shape``), so a job whose crops are another size runs on
    PyTorch, and its provenance says why."""
    spec = loaded.spec
    size = spec.crop_geometry(crops)[1]
    if choice.name == Backend.TORCH or size == spec.crop:
        return module, choice
    why = f"its {choice.name} export takes {spec.crop}x{spec.crop} clips, this job's {crops}-crop views are {size}x{size}"
    return as_runner(loaded.module, loaded.device), Choice(Backend.TORCH, f"torch: {why} ({choice.reason})")


def _runtime(measured: Measured) -> str:
    return "ONNX Runtime" if measured.backend is Backend.ONNX else "OpenVINO"
