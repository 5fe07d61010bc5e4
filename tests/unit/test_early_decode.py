"""The CLI's decode planned and started before torch is imported (``early_decode``): the
engine takes its children when its own plan is the same and gets the result it would get
on its own; another plan, a bad video or a job that never decodes leave no child behind."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
from app.analysis.early_decode import EarlyDecode
from app.analysis.engine import Analyzer
from app.analysis.limits import MediaLimits
from app.analysis.prep import FramePrep
from app.errors import ServiceError
from app.options import JobOptions
from app.settings import Settings
from tests.unit.test_cli_analyze import models, run_cli  # noqa: F401  (models: a fixture)
from tests.unit.test_decode_children import long_video  # noqa: F401
from tests.unit.test_decode_spares import scores as summary

MODEL = "x3d_xs"


@pytest.fixture(autouse=True)
def two_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAS_DECODE_CHILDREN", "2")


def early_for(settings: Settings, video: Path, options: JobOptions) -> EarlyDecode:
    from app.analysis.catalog import load_catalog

    spec = load_catalog(settings.models_dir).get(MODEL)
    media, prep = MediaLimits.from_settings(settings), FramePrep.for_spec(spec, 3)
    limits = SandboxLimits.from_settings(settings)  # as the engine's, so that it adopts the child
    sandbox = DecodeSandbox(video, settings.allowed_format_list, media, prep, spec.frames, limits=limits)
    return EarlyDecode(sandbox, video, spec, options, settings, MediaLimits.from_settings(settings))


def test_the_cli_takes_the_early_children_and_gets_the_engines_result(
    models: Path,  # noqa: F811
    long_video: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.analysis.early_decode")
    assert run_cli("analyze", str(long_video), "--model", MODEL, "--segment-seconds", "2", "--json") == 0
    got = json.loads(capsys.readouterr().out)
    assert "the early decode's 2 child(ren) taken" in caplog.messages
    engine = Analyzer.from_settings(Settings(models_dir=models, decode_children=2))
    want = engine.analyze(long_video, MODEL, JobOptions(segment_seconds=2.0)).to_dict()
    assert summary(got) == summary(want) and len(got["segments"]) == 12


def test_another_plan_is_dropped_and_the_engine_starts_its_own(models: Path, long_video: Path) -> None:  # noqa: F811
    settings = Settings(models_dir=models, decode_children=2)
    early = early_for(settings, long_video, JobOptions(segment_seconds=3.0))
    early.wait()
    assert early.planned
    first = early.sandbox
    engine = Analyzer.from_settings(settings)
    engine.adopt_early(early)
    got = engine.analyze(long_video, MODEL, JobOptions(segment_seconds=2.0)).to_dict()
    want = (
        Analyzer.from_settings(settings).analyze(long_video, MODEL, JobOptions(segment_seconds=2.0)).to_dict()
    )
    assert summary(got) == summary(want)
    assert not first._child.alive(), "the first child was given the other plan: closed"
    early.close()


def test_an_unreadable_video_is_reported_by_the_engine_as_always(models: Path, tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    settings = Settings(models_dir=models, decode_children=2)
    early = early_for(settings, bad, JobOptions(segment_seconds=2.0))
    early.wait()
    assert not early.planned
    engine = Analyzer.from_settings(settings)
    engine.adopt_early(early)
    with pytest.raises(ServiceError) as caught:
        engine.analyze(bad, MODEL, JobOptions(segment_seconds=2.0))
    fresh = Analyzer.from_settings(settings)
    with pytest.raises(ServiceError) as plain:
        fresh.analyze(bad, MODEL, JobOptions(segment_seconds=2.0))
    assert caught.value.code == plain.value.code
    early.close()
    early.sandbox.close()


def test_children_never_taken_are_closed(models: Path, long_video: Path) -> None:  # noqa: F811
    settings = Settings(models_dir=models, decode_children=2)
    early = early_for(settings, long_video, JobOptions(segment_seconds=2.0))
    early.wait()
    started = early._started
    assert started is not None and len(started[2]) == 2
    early.close()
    assert not started[2][1]._child.alive(), "the second child is closed"
    early.sandbox.close()


def test_the_children_outlive_the_thread_that_planned_them(
    models: Path,  # noqa: F811
    long_video: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child dies with the thread that started it (``PR_SET_PDEATHSIG``), and the planning
    thread ends as soon as the children start: they must be started on one that lives on."""
    from app.analysis import early_decode

    real = early_decode.start_parts

    def then_linger(*args: Any, **kwargs: Any) -> list[DecodeSandbox]:
        started = real(*args, **kwargs)
        time.sleep(1.0)  # the children have tied themselves to their starting thread by now
        return started

    monkeypatch.setattr(early_decode, "start_parts", then_linger)
    # a queue of two clips: the children wait for the engine, alive, with most of their part to go
    settings = Settings(models_dir=models, decode_children=2, decode_queue_bytes=1024**2)
    early = early_for(settings, long_video, JobOptions(segment_seconds=2.0))
    early.wait()
    time.sleep(0.5)
    started = early._started
    assert started is not None and len(started[2]) == 2
    assert all(child._child.alive() for child in started[2])
    engine = Analyzer.from_settings(settings)
    engine.adopt_early(early)
    got = engine.analyze(long_video, MODEL, JobOptions(segment_seconds=2.0)).to_dict()
    assert len(summary(got)) == 12
    early.close()
    early.sandbox.close()


def test_the_early_plan_imports_no_torch(models: Path, long_video: Path) -> None:  # noqa: F811
    """The point of starting early: the plan and the children come before ``import torch``
    (torch's linspace emulated, ``plan.WITHOUT_TORCH``), in a process that has not imported it."""
    code = f"""
import sys
from pathlib import Path
from app.analysis.catalog import load_catalog
from app.analysis.decode_sandbox import DecodeSandbox, SandboxLimits
from app.analysis.early_decode import EarlyDecode
from app.analysis.limits import MediaLimits
from app.analysis.prep import FramePrep
from app.options import JobOptions
from app.settings import Settings
settings = Settings(models_dir=Path({str(models)!r}), decode_children=2)
spec, video, media = load_catalog(settings.models_dir).get({MODEL!r}), Path({str(long_video)!r}), MediaLimits()
first = DecodeSandbox(video, settings.allowed_format_list, media, FramePrep.for_spec(spec, 3), spec.frames)
early = EarlyDecode(first, video, spec, JobOptions(segment_seconds=2.0), settings, media)
early.wait()
assert early._started is not None and len(early._started[2]) == 2, early._started
assert "torch" not in sys.modules, "planning imported torch"
early.close()
first.close()
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
