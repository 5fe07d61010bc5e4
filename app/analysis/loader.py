"""Weights file -> ``nn.Module`` in eval mode, verified, cached per process.

Every path either loads the exact weights the catalog names (strict keys and shapes,
recorded sha256) or raises a coded error: a random init is never served. The cache is
an LRU bounded by parameter+buffer bytes, keyed by the spec, the file's identity
(size, mtime) and the device, so a job never rebuilds a model the worker already holds.
With ``auto_fetch`` (``VAS_AUTO_FETCH``) a missing zoo file is downloaded on first use
(``fetch.py``: hash-checked, atomic); offline that is still a ``weights_missing`` error.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.analysis.catalog import missing_weights
from app.analysis.fetch import fetch_weights
from app.analysis.lockfile import file_sha256, read_lock, record_sha256
from app.analysis.manifest import OTHER_BUILDERS
from app.analysis.pytorchvideo_import import import_pytorchvideo_module
from app.analysis.spec import ModelSpec
from app.errors import ManifestInvalid, WeightsInvalid

if TYPE_CHECKING:  # torch is imported where a module is built: a job on an export never needs it
    import torch
    from torch import nn

__all__ = [
    "LoadedModel",
    "ModelLoader",
    "build_model",
    "check_state_dict",
    "read_state_dict",
    "record_sha256",
]

log = logging.getLogger(__name__)

_BUILDER_PREFIX = "pytorchvideo.models."
_SHOW = 5


class LoadedModel:
    """A catalog model's checked weights file, and its PyTorch module built on first use.

    Built lazily because a worker whose backend is a verified export (OpenVINO, ONNX Runtime,
    made from this very file: same sha256) never runs it: not building it spares importing
    pytorchvideo and torchvision (about 2 CPU s of a CLI run here) and the module's memory.
    A file that does not fit the model fails where the module is first needed (``WeightsInvalid``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        build: Callable[[], nn.Module],
        weights_path: Path,
        sha256: str,
        device: str,
        nbytes: int,
    ) -> None:
        self.spec, self.weights_path, self.sha256, self.device = spec, weights_path, sha256, device
        self.nbytes = nbytes
        """The file's size until the module is built, then its parameters and buffers."""
        self._build: Callable[[], nn.Module] | None = build
        self._module: nn.Module | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._module is not None

    @property
    def module(self) -> nn.Module:
        with self._lock:
            if self._module is None:
                assert self._build is not None
                self._module = self._build()
                self._build = None
                self.nbytes = _nbytes(self._module)
            return self._module


def _tuples(value: Any) -> Any:
    """JSON lists -> tuples (pytorchvideo builders expect tuples of kernel sizes)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def build_model(spec: ModelSpec) -> nn.Module:
    """Instantiate the spec's builder without weights (``pretrained=False``: never downloads)."""
    other = spec.builder.startswith(OTHER_BUILDERS) and spec.task in ("detection", "person_detector")
    if not (spec.builder.startswith(_BUILDER_PREFIX) or other) or "__" in spec.builder:
        raise ManifestInvalid(
            f"model {spec.name!r}: builder must be under {_BUILDER_PREFIX}, got {spec.builder!r}"
        )
    module_name, _, attr = spec.builder.rpartition(".")
    try:
        module = importlib.import_module(module_name) if other else import_pytorchvideo_module(module_name)
        builder = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ManifestInvalid(f"model {spec.name!r}: builder {spec.builder!r} not found") from exc
    kwargs = _tuples(dict(spec.builder_kwargs))
    if spec.builder.startswith("torchvision.models.detection."):  # never torchvision's own download
        kwargs.setdefault("weights", None)
        kwargs.setdefault("weights_backbone", None)
    if "pretrained" in inspect.signature(builder).parameters:
        kwargs["pretrained"] = False
    try:
        model = builder(**kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise ManifestInvalid(f"model {spec.name!r}: {spec.builder}(**builder_kwargs) failed: {exc}") from exc
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ManifestInvalid(f"model {spec.name!r}: builder {spec.builder!r} did not return an nn.Module")
    return model


def fresh_inputs(model: nn.Module) -> nn.Module:
    """SlowFast's fusion blocks overwrite the caller's input list by default; turn that off."""
    fuse = import_pytorchvideo_module("pytorchvideo.models.net").MultiPathWayWithFuse  # no fvcore warning
    for module in model.modules():
        if isinstance(module, fuse):
            module.inplace = False
    return model


def read_state_dict(path: Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """The zoo container: ``ckpt[checkpoint_key]``, or the bare dict (efficient_x3d)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a usable checkpoint"
        raise WeightsInvalid(f"{path.name} is not a loadable PyTorch checkpoint: {exc}") from exc
    state = ckpt
    if spec.checkpoint_key is not None:
        if not isinstance(ckpt, Mapping) or spec.checkpoint_key not in ckpt:
            keys = list(ckpt)[:_SHOW] if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise WeightsInvalid(f"{path.name} has no {spec.checkpoint_key!r} entry (found: {keys})")
        state = ckpt[spec.checkpoint_key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsInvalid(f"{path.name} does not hold a state dict of tensors for {spec.name!r}")
    return dict(state)


def _strip_prefix(state: dict[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """PySlowFast's PTV wrappers save ``model.``-prefixed keys; DataParallel saves ``module.``."""
    for prefix in ("model.", "module."):
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in expected)
        ):
            return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], file_name: str) -> None:
    """Raise WeightsInvalid naming the first missing, unexpected and shape-mismatched keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
            problems.append(f"{what}: {', '.join(keys[:_SHOW])}{more}")
    if problems:
        raise WeightsInvalid(f"{file_name} does not match the model: " + "; ".join(problems))


def _nbytes(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


class ModelLoader:
    """Loads catalog models from one models directory onto one device, with a byte-bounded LRU."""

    def __init__(
        self,
        models_dir: Path,
        *,
        device: str = "cpu",
        cache_bytes: int = 2 * 1024**3,
        auto_fetch: bool = False,
        fetch_timeout: float = 30.0,
        torch_threads: int | None = None,
    ) -> None:
        self.models_dir, self.device, self.cache_bytes = models_dir, device, cache_bytes
        self.torch_threads = torch_threads
        """Set on torch before a module is built (where the process had not imported torch yet)."""
        self.auto_fetch, self.fetch_timeout = auto_fetch, fetch_timeout
        self._cache: OrderedDict[tuple[Any, ...], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def weights_path(self, spec: ModelSpec) -> Path:
        """The weights file, downloaded first when missing and ``auto_fetch`` allows it."""
        path = self.models_dir / spec.weights
        if path.is_file():
            return path
        if not (self.auto_fetch and spec.url):
            raise missing_weights(spec, self.models_dir)
        log.info("fetching %s for model %s from %s (auto_fetch)", spec.weights, spec.name, spec.url)
        fetched = fetch_weights(spec, self.models_dir, timeout=self.fetch_timeout)
        if fetched is not None:
            log.info("fetched %s: %d bytes, sha256 %s", spec.weights, fetched.size, fetched.sha256)
        return path

    def load(self, spec: ModelSpec, *, build: bool = True) -> LoadedModel:
        """The model, its file checked against the lock; ``build=False`` leaves the PyTorch
        module to be built on first use (the engine: an export may run instead)."""
        loaded = self._cached(spec)
        if build:
            loaded.module  # noqa: B018 (built and checked now: a bad file fails here)
        return loaded

    def _cached(self, spec: ModelSpec) -> LoadedModel:
        path = self.weights_path(spec)
        stat = path.stat()
        identity = (spec.builder, repr(spec.builder_kwargs), spec.checkpoint_key)
        key: tuple[Any, ...] = (spec.name, *identity, str(path), stat.st_size, stat.st_mtime_ns, self.device)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            loaded = self._load(spec, path)
            self._cache[key] = loaded
            total = sum(m.nbytes for m in self._cache.values())
            while total > self.cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                total -= evicted.nbytes
            return loaded

    def _load(self, spec: ModelSpec, path: Path) -> LoadedModel:
        digest = file_sha256(path)
        recorded = read_lock(self.models_dir).get(spec.weights)
        if recorded is not None and recorded != digest:
            raise WeightsInvalid(
                f"{spec.weights} sha256 is {digest} but weights.lock.json records {recorded}; "
                "the file is corrupt or was replaced (re-fetch it, or re-run `models hash` if intended)"
            )
        return LoadedModel(
            spec, lambda: self._build(spec, path), path, digest, self.device, path.stat().st_size
        )

    def _build(self, spec: ModelSpec, path: Path) -> nn.Module:
        import torch

        if self.torch_threads is not None and torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        model = build_model(spec)
        state = _strip_prefix(read_state_dict(path, spec), model.state_dict())
        check_state_dict(model, state, spec.weights)
        model.load_state_dict(state, strict=True)
        return fresh_inputs(model).eval().to(self.device)
