"""Import pytorchvideo's model modules without running deprecated ``torch.jit.script``.

pytorchvideo's models import ``fvcore.nn.weight_init`` (and x3d ``fvcore.nn.squeeze_excitation``,
its layers ``fvcore.nn.distributed``). Importing any submodule first runs ``fvcore/nn/__init__.py``,
which imports ``focal_loss``, which calls ``torch.jit.script`` at import time: every ``analyze``
and every worker printed torch's "`torch.jit.script` is deprecated" FutureWarning, and a torch
without ``jit.script`` (Python 3.14 already warns that it may break) would fail every model
import. pytorchvideo uses only those submodules, never the package's re-exports, so ``fvcore.nn``
is registered as its bare package (real spec and ``__path__``, ``__init__`` not run) before the
first pytorchvideo import. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

_FVCORE_NN = "fvcore.nn"
_lock = threading.Lock()


def _register_bare_fvcore_nn() -> None:
    """Make ``fvcore.nn`` importable without its ``__init__`` (no-op once it is imported)."""
    with _lock:
        if _FVCORE_NN in sys.modules:
            return
        try:
            spec = importlib.util.find_spec(_FVCORE_NN)
        except ImportError:
            return  # no fvcore: pytorchvideo's own import reports it
        if spec is None or spec.submodule_search_locations is None:
            return
        package = importlib.util.module_from_spec(spec)  # a package module, its __init__ not executed
        sys.modules[_FVCORE_NN] = package
        parent = importlib.import_module("fvcore")  # fvcore/__init__.py only sets __version__
        setattr(parent, "nn", package)  # noqa: B010 (what the import system does for a submodule)


def import_pytorchvideo_module(name: str) -> ModuleType:
    """``importlib.import_module(name)`` for a ``pytorchvideo`` module, fvcore's scripting skipped."""
    _register_bare_fvcore_nn()
    return importlib.import_module(name)
