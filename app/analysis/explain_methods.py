"""Which explanation method a model gets, picked by its family (the spec's builder).

| family (builder name) | method |
|---|---|
| single-pathway 3D CNNs: X3D, Slow, C2D, I3D, R(2+1)D, CSN, ResNet (``create_x3d``, ``slow_r50``...) | ``hirescam`` (``explain.py``) |
| SlowFast (``slowfast_*``, ``create_slowfast``) | ``hirescam-slowfast-fused`` (``explain_slowfast.py``) |
| MViT (``mvit_*``, ``create_multiscale_vision_transformers``) | ``hirescam-patch-tokens`` (``explain_rollout.py``) |

Any other builder (a user's ``models add`` of another pytorchvideo family) has no method:
``method_for`` says why in one line, which the job's provenance carries (``explain_note``);
the job is scored as usual. A model of a known family that still does not fit its method
(``ExplainUnsupported`` at run time) is reported the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn

from app.analysis.explain import METHOD as HIRESCAM
from app.analysis.explain import Cam, ExplainUnsupported, grad_cam
from app.analysis.explain_rollout import METHOD as PATCH_TOKENS
from app.analysis.explain_rollout import patch_token_cam
from app.analysis.explain_slowfast import METHOD as SLOWFAST
from app.analysis.explain_slowfast import slowfast_cam

TorchInput = torch.Tensor | list[torch.Tensor]
"""One view as the torch module takes it: a clip tensor, or SlowFast's [slow, fast]."""


class Family(StrEnum):
    CNN = "3d-cnn"
    SLOWFAST = "slowfast"
    MVIT = "mvit"


_CNN_NAMES = ("x3d", "slow_", "c2d", "i3d", "csn", "r2plus1d", "resnet")
_CNN_MODULES = ("x3d", "resnet", "csn", "r2plus1d")


def family_of(builder: str) -> Family | None:
    """The family of a builder path such as ``pytorchvideo.models.hub.slowfast_r50``."""
    module, _, name = builder.rpartition(".")
    module = module.rpartition(".")[2]
    if "slowfast" in name or module == "slowfast":
        return Family.SLOWFAST
    if "mvit" in name or "multiscale_vision_transformers" in name or module == "vision_transformers":
        return Family.MVIT
    if module in _CNN_MODULES or any(part in name for part in _CNN_NAMES):
        return Family.CNN
    return None


@dataclass(frozen=True)
class Method:
    """How a family is explained: the name results carry and the function that makes the maps."""

    name: str
    explain: Callable[[nn.Module, TorchInput, list[int]], list[Cam]]


def _cnn(module: nn.Module, view: TorchInput, class_ids: list[int]) -> list[Cam]:
    if not isinstance(view, torch.Tensor):
        raise ExplainUnsupported("a single-pathway CNN takes one clip tensor")
    return grad_cam(module, view, class_ids)


def _slowfast(module: nn.Module, view: TorchInput, class_ids: list[int]) -> list[Cam]:
    if isinstance(view, torch.Tensor):
        raise ExplainUnsupported("a SlowFast model takes a list of pathways")
    return slowfast_cam(module, view, class_ids)


def _mvit(module: nn.Module, view: TorchInput, class_ids: list[int]) -> list[Cam]:
    if not isinstance(view, torch.Tensor):
        raise ExplainUnsupported("an MViT takes one clip tensor")
    return patch_token_cam(module, view, class_ids)


METHODS = {
    Family.CNN: Method(HIRESCAM, _cnn),
    Family.SLOWFAST: Method(SLOWFAST, _slowfast),
    Family.MVIT: Method(PATCH_TOKENS, _mvit),
}


def method_for(builder: str) -> Method | str:
    """The method for a model built by ``builder``, or a one-line note on why there is none."""
    family = family_of(builder)
    if family is None:
        return (
            f"no explanation method for models built by {builder}; the segments are scored but not explained"
        )
    return METHODS[family]
