"""Shared fixtures: generated videos and zoo-format checkpoints written from a random init."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"

REQUIRE_ALL_ENV = "VAS_TEST_REQUIRE_ALL"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a test whose outside part (PostgreSQL, nginx, chromium, hadolint, root) is missing,
    or fail it where the run says everything must run (CI sets VAS_TEST_REQUIRE_ALL=1), so a
    broken machine cannot turn half the suite into silent skips."""
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ALL_ENV}=1: this run must not skip it)", pytrace=False)
    pytest.skip(reason)


def write_zoo_checkpoint(models_dir: Path, builder: str, file_name: str, *, seed: int = 0) -> Path:
    """Build a hub model from a random init and save it the way the zoo publishes weights."""
    import torch
    from pytorchvideo.models import hub

    torch.manual_seed(seed)
    model = getattr(hub, builder)(pretrained=False)
    path = models_dir / file_name
    torch.save({"model_state": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def zoo_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding a random-init X3D_XS.pyth (the only weights most tests need)."""
    models = tmp_path_factory.mktemp("models")
    write_zoo_checkpoint(models, "x3d_xs", "X3D_XS.pyth")
    return models


@pytest.fixture(scope="session")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def short_clip(videos_dir: Path) -> Path:
    from tests.media import write_video

    return write_video(videos_dir / "short.mp4", seconds=4.0, fps=30, width=128, height=96)
