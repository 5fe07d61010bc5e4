"""Settings that later code relies on being normalised once, at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings


def test_relative_dirs_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAS_MODELS_DIR", "weights")
    settings = Settings(data_dir=Path("data"))
    assert settings.models_dir == tmp_path / "weights"  # a weights_missing message names this folder
    assert settings.data_dir == tmp_path / "data"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'jobs.sqlite3'}"
