"""OpenVINO on CPU: an IR (``models export NAME --format openvino``) compiled the way the
worker runs it, and the compilation started early.

Precision is never left to OpenVINO: its CPU plugin infers in bf16 by default where the
CPU has native bf16 (AMX, AVX512-BF16), which moves outputs far beyond the export
tolerance. Every compile sets ``INFERENCE_PRECISION_HINT`` explicitly, f32 unless the
user asked for bf16 (``VAS_BACKENDS='{"x3d_s": "openvino-bf16"}'``); what OpenVINO then
chose (a CPU without bf16 runs f32 whatever the hint) is read back from the compiled model.

Compiling costs 0.3 s (X3D-S, SlowFast) to 1.5 s (MViT) on two vCPUs. OpenVINO's on-disk model
cache (``CACHE_DIR``) makes that a one-time cost per IR and configuration: the next
worker or CLI run loads the compiled blob. OpenVINO's own cache key is the ``.xml``'s path,
size and mtime in whole seconds, blind to the ``.bin``: a re-export with new weights and the
same graph within one second got the old blob; and it ignores ``INFERENCE_PRECISION_HINT``:
a bf16 compile after an f32 one loaded the f32 blob (and crashed on MViT, on an AMX Xeon). So
every IR gets its own cache folder named by the size, mtime (ns) and inode of both files, with
a folder per precision inside (``blob_dir``), and a new IR's folder replaces the old ones: a
stale or foreign blob is never served. No torch here: the CLI starts a compile
(``EarlyCompile``) while torch is still importing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

CACHE_DIR_NAME = ".openvino-cache"


class Precision(StrEnum):
    F32 = "f32"
    BF16 = "bf16"


def cache_dir_for(models_dir: Path) -> Path:
    """Where compiled blobs go: beside the IRs when the models dir is writable (a checkout),
    else in the temp dir (a read-only ``/models`` volume in a container)."""
    if os.access(models_dir, os.W_OK):
        return models_dir / CACHE_DIR_NAME
    return Path(tempfile.gettempdir()) / f"vas{CACHE_DIR_NAME}"


def blob_dir(cache_dir: Path, xml: Path, precision: Precision) -> Path:
    """The cache folder of this version of the IR (``xml`` and its ``.bin``) at ``precision``;
    folders of its earlier versions are removed (a worker still running one keeps its blob)."""
    digest = hashlib.sha256()
    for part in (xml, xml.with_suffix(".bin")):
        stat = part.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino};".encode())
    folder = cache_dir / f"{xml.name}@{digest.hexdigest()[:16]}"
    if not folder.is_dir():
        for old in cache_dir.glob(f"{xml.name}@*"):
            shutil.rmtree(old, ignore_errors=True)
    (folder / precision.value).mkdir(parents=True, exist_ok=True)
    return folder / precision.value


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin says this CPU can do (``FP32``, ``BF16``, ``INT8``, ...)."""
    import openvino as ov

    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def compile_config(threads: int, precision: Precision, cache_dir: Path | None) -> dict[str, Any]:
    """The worker's configuration: one stream of ``threads`` threads (as torch gets), latency
    first, no pinning (several workers and the decoder share the cores), explicit precision."""
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": precision.value,
    }
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    return config


class CompiledIR:
    """One compiled IR and its infer request: arrays in (one per graph input), scores out."""

    def __init__(
        self, xml: Path, *, threads: int = 1, precision: Precision = Precision.F32, cache_dir: Path | None
    ) -> None:
        import openvino as ov

        self.xml, self.threads, self.requested = xml, threads, precision
        blobs = blob_dir(cache_dir, xml, precision) if cache_dir is not None else None
        self.compiled = ov.Core().compile_model(str(xml), "CPU", compile_config(threads, precision, blobs))
        self.request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    @property
    def precision(self) -> Precision:
        """The precision OpenVINO compiled to (f32 when bf16 was asked on a CPU without it)."""
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return Precision.BF16 if hint.get_type_name() == "bf16" else Precision.F32

    @property
    def loaded_from_cache(self) -> bool:
        return bool(self.compiled.get_property("LOADED_FROM_CACHE"))

    def infer(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of one batch (f32 inputs)."""
        return self.outputs([np.ascontiguousarray(a, dtype=np.float32) for a in arrays])[0]

    def outputs(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every output of one run, as the graph's input types want them; copies, since the
        request reuses its output buffers."""
        with self._lock:
            self.request.infer([np.ascontiguousarray(a) for a in arrays], share_inputs=True)
            count = len(self.compiled.outputs)
            return [
                np.array(self.request.get_output_tensor(k).data, dtype=np.float32, copy=True)
                for k in range(count)
            ]


def convert_onnx(onnx: Path, xml: Path) -> None:
    """An ONNX graph as OpenVINO IR (``xml`` and the ``.bin`` beside it), weights kept in f32
    (``save_model`` would halve them to f16 by default)."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx)), str(xml), compress_to_fp16=False)


class EarlyCompile:
    """A compile running in a thread (OpenVINO releases the GIL), handed to the backends that
    will run it; a mismatch (another precision, another IR) is simply never used."""

    def __init__(self, xml: Path, *, threads: int, precision: Precision, cache_dir: Path | None) -> None:
        self.key = (xml, threads, precision, cache_dir)
        self._compiled: CompiledIR | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="openvino-compile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        xml, threads, precision, cache_dir = self.key
        try:
            self._compiled = CompiledIR(xml, threads=threads, precision=precision, cache_dir=cache_dir)
        except BaseException as exc:  # re-raised by result(), in the thread that needs it
            self._error = exc

    def wait(self) -> None:
        """Let an unused compile finish before the process exits (OpenVINO's threads are not
        to be cut off by interpreter shutdown)."""
        self._thread.join()

    def result(self) -> CompiledIR:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._compiled is not None
        return self._compiled
